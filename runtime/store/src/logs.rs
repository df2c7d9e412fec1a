//! Log records in the store: append in durable batches, query newest-first by source,
//! minimum level and time, count per source and level over the last hours, and retention.
//!
//! Tables: `logs` holds the records by `(ts, seq)`; `logs_by_source` and `logs_by_level`
//! index them; `log_counts` keeps per-hour counts by `(source, hour, level)` so the 24 h
//! summary never scans records.

use redb::{ReadableDatabase, ReadableTable};

use crate::error::StoreError;
use crate::store::Store;
use crate::tables::{LOG_COUNTS, LOGS, LOGS_BY_LEVEL, LOGS_BY_SOURCE, META};

/// Most records one query returns.
pub const MAX_LOG_LIMIT: usize = 500;
/// Records a query returns when it does not say.
pub const DEFAULT_LOG_LIMIT: usize = 50;
/// Longest message kept; longer ones are cut (and marked) rather than refused.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Sources of fleet clients' logs start with this (`client/{id}`); they have their own
/// retention (90 days by default, against 7 for the host's own logs).
pub const CLIENT_SOURCE_PREFIX: &str = "client/";

const HOUR_MS: i64 = 3600 * 1000;

/// Log severity, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Debug.
    Debug = 0,
    /// Info.
    Info = 1,
    /// Warning.
    Warn = 2,
    /// Error.
    Error = 3,
}

impl Level {
    /// All levels, lowest first.
    pub const ALL: [Level; 4] = [Level::Debug, Level::Info, Level::Warn, Level::Error];

    fn from_u8(v: u8) -> Option<Level> {
        Level::ALL.get(usize::from(v)).copied()
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "debug" | "trace" => Ok(Level::Debug),
            "info" | "notice" => Ok(Level::Info),
            "warn" | "warning" => Ok(Level::Warn),
            "error" | "err" | "crit" | "critical" | "fatal" | "alert" | "emerg" => Ok(Level::Error),
            other => Err(format!("unknown level `{other}`")),
        }
    }
}

/// One log line.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// Where it came from: a file, `journal`, `kmsg`, a client id.
    pub source: String,
    /// Severity.
    pub level: Level,
    /// When it was written (ms since the epoch).
    pub ts_ms: i64,
    /// The text.
    pub message: String,
    /// Structured fields.
    pub fields: Vec<(String, String)>,
}

/// A log query; newest records first.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Only this source.
    pub source: Option<String>,
    /// Only this level and above.
    pub min_level: Option<Level>,
    /// Only records at or after this time.
    pub since_ms: Option<i64>,
    /// At most this many (default 50, capped at 500).
    pub limit: Option<usize>,
}

fn put(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn encode(r: &LogRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(r.message.len() + r.source.len() + 32);
    out.push(r.level as u8);
    put(&mut out, &r.source);
    put(&mut out, &r.message);
    for (k, v) in &r.fields {
        put(&mut out, k);
        put(&mut out, v);
    }
    out
}

fn decode(ts_ms: i64, bytes: &[u8]) -> Option<LogRecord> {
    let (&level, mut rest) = bytes.split_first()?;
    let mut take = || -> Option<String> {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let s = String::from_utf8(rest.get(4..4 + len)?.to_vec()).ok()?;
        rest = &rest[4 + len..];
        Some(s)
    };
    let source = take()?;
    let message = take()?;
    let mut fields = Vec::new();
    while let Some(k) = take() {
        fields.push((k, take()?));
    }
    Some(LogRecord {
        source,
        level: Level::from_u8(level)?,
        ts_ms,
        message,
        fields,
    })
}

fn corrupt(message: String) -> StoreError {
    StoreError::Corrupt {
        what: "log record",
        message,
    }
}

/// Cut `s` to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [truncated]", &s[..end])
}

impl Store {
    /// Append records in one durable transaction. Sources are cut to 256 bytes, messages to
    /// [`MAX_MESSAGE_BYTES`]; nothing is refused for length.
    pub fn append_logs(&self, records: &[LogRecord]) -> Result<usize, StoreError> {
        if records.is_empty() {
            return Ok(0);
        }
        let txn = self.durable_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let mut seq = meta.get("next_log")?.map(|v| v.value()).unwrap_or(1);
            let mut logs = txn.open_table(LOGS)?;
            let mut by_source = txn.open_table(LOGS_BY_SOURCE)?;
            let mut by_level = txn.open_table(LOGS_BY_LEVEL)?;
            let mut counts = txn.open_table(LOG_COUNTS)?;
            for r in records {
                let record = LogRecord {
                    source: truncate(&r.source, 256),
                    message: truncate(&r.message, MAX_MESSAGE_BYTES),
                    ..r.clone()
                };
                logs.insert((record.ts_ms, seq), encode(&record).as_slice())?;
                by_source.insert((record.source.as_str(), record.ts_ms, seq), ())?;
                by_level.insert((record.level as u8, record.ts_ms, seq), ())?;
                let key = (
                    record.source.as_str(),
                    record.ts_ms.div_euclid(HOUR_MS),
                    record.level as u8,
                );
                let n = counts.get(key)?.map(|v| v.value()).unwrap_or(0);
                counts.insert(key, n + 1)?;
                seq += 1;
            }
            meta.insert("next_log", seq)?;
        }
        txn.commit()?;
        Ok(records.len())
    }

    /// Records matching `q`, newest first.
    pub fn query_logs(&self, q: &LogQuery) -> Result<Vec<LogRecord>, StoreError> {
        let limit = q.limit.unwrap_or(DEFAULT_LOG_LIMIT).clamp(1, MAX_LOG_LIMIT);
        let since = q.since_ms.unwrap_or(i64::MIN);
        let min_level = q.min_level.unwrap_or(Level::Debug);
        let read = self.db().begin_read()?;
        let logs = read.open_table(LOGS)?;
        let fetch = |ts: i64, seq: u64| -> Result<Option<LogRecord>, StoreError> {
            match logs.get((ts, seq))? {
                Some(v) => decode(ts, v.value())
                    .map(Some)
                    .ok_or_else(|| corrupt(format!("at {ts}/{seq}"))),
                None => Ok(None),
            }
        };
        let mut out = Vec::new();
        if let Some(source) = &q.source {
            // Newest first through the source index; the level filter is applied on the way.
            let index = read.open_table(LOGS_BY_SOURCE)?;
            for row in index
                .range((source.as_str(), since, 0)..=(source.as_str(), i64::MAX, u64::MAX))?
                .rev()
            {
                let (key, _) = row?;
                let (_, ts, seq) = key.value();
                if let Some(r) = fetch(ts, seq)?
                    && r.level >= min_level
                {
                    out.push(r);
                    if out.len() == limit {
                        break;
                    }
                }
            }
        } else {
            // Newest `limit` of each wanted level, merged.
            let index = read.open_table(LOGS_BY_LEVEL)?;
            let mut keys: Vec<(i64, u64)> = Vec::new();
            for level in Level::ALL.into_iter().filter(|l| *l >= min_level) {
                let l = level as u8;
                for row in index
                    .range((l, since, 0)..=(l, i64::MAX, u64::MAX))?
                    .rev()
                    .take(limit)
                {
                    let (key, _) = row?;
                    let (_, ts, seq) = key.value();
                    keys.push((ts, seq));
                }
            }
            keys.sort_unstable_by(|a, b| b.cmp(a));
            for (ts, seq) in keys.into_iter().take(limit) {
                if let Some(r) = fetch(ts, seq)? {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// Per source, the number of records of each level in the hours overlapping
    /// `[now - hours, now]` (whole hours), sorted by source.
    pub fn log_counts(
        &self,
        now_ms: i64,
        hours: i64,
    ) -> Result<Vec<(String, [u64; 4])>, StoreError> {
        let first_hour = now_ms.div_euclid(HOUR_MS) - hours.max(1) + 1;
        let read = self.db().begin_read()?;
        let counts = read.open_table(LOG_COUNTS)?;
        let mut out: Vec<(String, [u64; 4])> = Vec::new();
        for row in counts.iter()? {
            let (key, n) = row?;
            let (source, hour, level) = key.value();
            if hour < first_hour || hour > now_ms.div_euclid(HOUR_MS) {
                continue;
            }
            let Some(level) = Level::from_u8(level) else {
                continue;
            };
            match out.last_mut() {
                Some((s, c)) if s == source => c[level as usize] += n.value(),
                _ => {
                    let mut c = [0u64; 4];
                    c[level as usize] = n.value();
                    out.push((source.to_string(), c));
                }
            }
        }
        Ok(out)
    }

    /// Delete records older than their kind's cutoff — `client_cutoff_ms` for sources
    /// under [`CLIENT_SOURCE_PREFIX`], `cutoff_ms` for the rest — with their index entries,
    /// and take them out of the hourly counts. Walks the source index, so each source reads
    /// only its own old records. Returns the records deleted.
    pub fn enforce_log_retention(
        &self,
        cutoff_ms: i64,
        client_cutoff_ms: i64,
    ) -> Result<usize, StoreError> {
        let txn = self.durable_write()?;
        let deleted = {
            let mut logs = txn.open_table(LOGS)?;
            let mut by_source = txn.open_table(LOGS_BY_SOURCE)?;
            let mut by_level = txn.open_table(LOGS_BY_LEVEL)?;
            let mut counts = txn.open_table(LOG_COUNTS)?;
            let mut old: Vec<(String, i64, u64)> = Vec::new();
            // Jump from source to source: the next one sorts after `source + "\0"`.
            let mut next: Option<String> = Some(String::new());
            while let Some(from) = next.take() {
                let Some(first) = by_source.range((from.as_str(), i64::MIN, 0)..)?.next() else {
                    break;
                };
                let source = first?.0.value().0.to_string();
                let cutoff = if source.starts_with(CLIENT_SOURCE_PREFIX) {
                    client_cutoff_ms
                } else {
                    cutoff_ms
                };
                for row in
                    by_source.range((source.as_str(), i64::MIN, 0)..(source.as_str(), cutoff, 0))?
                {
                    let (_, ts, seq) = row?.0.value();
                    old.push((source.clone(), ts, seq));
                }
                next = Some(format!("{source}\0"));
            }
            for (source, ts, seq) in &old {
                let level = match logs.remove((*ts, *seq))? {
                    Some(v) => v.value().first().copied().unwrap_or(0),
                    None => return Err(corrupt(format!("index entry without record {ts}/{seq}"))),
                };
                by_source.remove((source.as_str(), *ts, *seq))?;
                by_level.remove((level, *ts, *seq))?;
                // Counts follow the records they count.
                let key = (source.as_str(), ts.div_euclid(HOUR_MS), level);
                let n = counts.get(key)?.map(|v| v.value()).unwrap_or(0);
                if n <= 1 {
                    counts.remove(key)?;
                } else {
                    counts.insert(key, n - 1)?;
                }
            }
            old.len()
        };
        txn.commit()?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_roundtrip_and_levels_parse() {
        let r = LogRecord {
            source: "app".into(),
            level: Level::Warn,
            ts_ms: 5,
            message: "disk almost full ✓".into(),
            fields: vec![("mount".into(), "/".into())],
        };
        assert_eq!(decode(5, &encode(&r)), Some(r));
        assert_eq!(decode(5, &[9, 0]), None);
        assert_eq!("WARNING".parse::<Level>(), Ok(Level::Warn));
        assert_eq!("crit".parse::<Level>(), Ok(Level::Error));
        assert!("loud".parse::<Level>().is_err());
        assert!(truncate(&"é".repeat(10), 5).starts_with("éé…"));
    }
}
