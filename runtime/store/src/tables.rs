//! Every redb table of the store, in one place.

use redb::TableDefinition;

/// Store-wide counters: `format`, `next_series`, `next_wal`, `next_log`.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Series id → encoded [`crate::SeriesKey`].
pub const SERIES: TableDefinition<u64, &[u8]> = TableDefinition::new("series");
/// (window, series id, first timestamp) → chunk: `[last ts: i64 LE][codec bytes]`.
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

/// The on-disk format this code writes.
pub const FORMAT_VERSION: u64 = 3;
