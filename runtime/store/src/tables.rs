//! Every redb table of the store, in one place.

use redb::TableDefinition;

/// Store-wide counters: `format`, `next_series`, `next_wal`, `next_chunk`, `next_log`, ...
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Series id → encoded [`crate::SeriesKey`].
pub const SERIES: TableDefinition<u64, &[u8]> = TableDefinition::new("series");
/// (window, series id, chunk sequence) → chunk: `[last ts: i64 LE][codec bytes]`. The
/// sequence grows with every chunk cut, so late data never replaces a chunk.
pub const CHUNKS: TableDefinition<(i64, u64, i64), &[u8]> = TableDefinition::new("chunks");
/// 1-minute rollups, keyed like [`CHUNKS`]: the buckets of the chunk cut with that key
/// (see [`crate::rollup`]).
pub const ROLLUP_1M: TableDefinition<(i64, u64, i64), &[u8]> = TableDefinition::new("rollup_1m");
/// 1-hour rollups, keyed like [`CHUNKS`].
pub const ROLLUP_1H: TableDefinition<(i64, u64, i64), &[u8]> = TableDefinition::new("rollup_1h");
/// Write-ahead log: sequence → batch of `(series id, ts, value)` not yet in chunks.
pub const WAL: TableDefinition<u64, &[u8]> = TableDefinition::new("wal");

/// Log records: (ts, seq) → encoded record.
pub const LOGS: TableDefinition<(i64, u64), &[u8]> = TableDefinition::new("logs");
/// Index: (source, ts, seq).
pub const LOGS_BY_SOURCE: TableDefinition<(&str, i64, u64), ()> =
    TableDefinition::new("logs_by_source");
/// Index: (level, ts, seq).
pub const LOGS_BY_LEVEL: TableDefinition<(u8, i64, u64), ()> =
    TableDefinition::new("logs_by_level");
/// Records per (source, hour since the epoch, level).
pub const LOG_COUNTS: TableDefinition<(&str, i64, u8), u64> = TableDefinition::new("log_counts");

/// Liveness per fleet client: client id → JSON [`crate::Liveness`].
pub const HEARTBEATS: TableDefinition<&str, &[u8]> = TableDefinition::new("heartbeats");
/// Alert state: (rule, alert key) → JSON [`crate::AlertRecord`].
pub const ALERTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("alerts");
/// Alert history: (ts, seq) → JSON [`crate::AlertEvent`], append-only.
pub const ALERT_EVENTS: TableDefinition<(i64, u64), &[u8]> = TableDefinition::new("alert_events");
/// Notification outbox: message id → JSON [`crate::OutboxMessage`].
pub const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// Pending outbox messages by (next attempt, id).
pub const OUTBOX_DUE: TableDefinition<(i64, u64), ()> = TableDefinition::new("outbox_due");
/// Guest key-value namespaces: (guest, key) → value bytes.
pub const GUEST_KV: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("guest_kv");
/// Audit log: (ts, seq) → JSON [`crate::AuditEntry`].
pub const AUDIT: TableDefinition<(i64, u64), &[u8]> = TableDefinition::new("audit");
/// Policy versions: (policy, version) → JSON [`crate::PolicyVersion`].
pub const POLICY_VERSIONS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("policy_versions");
/// Component bytes by sha256, for every recorded policy version (what rollback loads).
pub const COMPONENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("components");
/// The version of each policy that runs now.
pub const POLICY_CURRENT: TableDefinition<&str, u64> = TableDefinition::new("policy_current");

/// Silences: id → JSON [`crate::Silence`].
pub const SILENCES: TableDefinition<u64, &[u8]> = TableDefinition::new("silences");
/// Notification groups of the router: group key → its state (JSON, owned by the router).
pub const ROUTE_GROUPS: TableDefinition<&str, &[u8]> = TableDefinition::new("route_groups");

/// API tokens: name → JSON [`crate::TokenRecord`] (the secret's SHA-256, never the secret).
pub const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");

/// The on-disk format this code writes.
pub const FORMAT_VERSION: u64 = 4;

/// Create the record tables (so readers never meet a missing table).
/// The agent's spool: sequence → topic and payload of a message waiting for the server.
pub const SPOOL: TableDefinition<u64, &[u8]> = TableDefinition::new("spool");

pub(crate) fn create_record_tables(txn: &redb::WriteTransaction) -> Result<(), crate::StoreError> {
    txn.open_table(HEARTBEATS)?;
    txn.open_table(ALERTS)?;
    txn.open_table(ALERT_EVENTS)?;
    txn.open_table(OUTBOX)?;
    txn.open_table(OUTBOX_DUE)?;
    txn.open_table(GUEST_KV)?;
    txn.open_table(AUDIT)?;
    txn.open_table(POLICY_VERSIONS)?;
    txn.open_table(POLICY_CURRENT)?;
    txn.open_table(COMPONENTS)?;
    txn.open_table(SILENCES)?;
    txn.open_table(ROUTE_GROUPS)?;
    txn.open_table(TOKENS)?;
    txn.open_table(SPOOL)?;
    Ok(())
}
