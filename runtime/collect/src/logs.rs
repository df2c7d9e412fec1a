//! Log sources into the log store: followed files, the systemd journal (`journalctl -o
//! json -f`) and the kernel ring buffer (`/dev/kmsg`). One thread writes every 250 ms: the
//! records, `log_lines_total{source,level}` counters, and where each source stopped
//! (kv namespace `@collect/logs`), so a restart resumes instead of re-reading.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tocsin_store::{Level, LogRecord, Sample};

use crate::{Sink, now_ms};

use crate::tail::{Tailer, detect_level};

/// The kv namespace holding positions.
pub const POSITIONS_NAMESPACE: &str = "@collect/logs";

/// Records kept for a retry while the store refuses them; past this the oldest go.
const MAX_PENDING: usize = 200_000;

/// How often sources are polled and records written.
const TICK: Duration = Duration::from_millis(250);

/// Counters are written at least this often, changed or not, so `rate()` has points.
const COUNTER_REFRESH: Duration = Duration::from_secs(15);

/// A followed log file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFileConfig {
    /// The file (rotation by rename or truncation is followed).
    pub path: PathBuf,
    /// The records' source; the path when absent.
    #[serde(default)]
    pub source: Option<String>,
    /// Read a file seen for the first time from its start (default: only new lines).
    #[serde(default)]
    pub from_start: bool,
}

impl LogFileConfig {
    /// The records' source name.
    pub fn source(&self) -> String {
        self.source
            .clone()
            .unwrap_or_else(|| self.path.display().to_string())
    }
}

/// A record from a reader thread, with the position to save once it is stored.
struct Incoming {
    record: LogRecord,
    checkpoint: Option<(&'static str, String)>,
}

/// Start the log thread (and the journal/kmsg readers asked for).
pub fn spawn(
    files: Vec<LogFileConfig>,
    journal: bool,
    kmsg: bool,
    store: Arc<dyn Sink>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let (tx, rx) = sync_channel::<Incoming>(10_000);
    if journal {
        let cursor = store.position("journal");
        let (tx, stop) = (tx.clone(), stop.clone());
        std::thread::Builder::new()
            .name("logs-journal".into())
            .spawn(move || read_journal(cursor, tx, stop))?;
    }
    if kmsg {
        let seq = store.position("kmsg");
        let (tx, stop) = (tx.clone(), stop.clone());
        std::thread::Builder::new()
            .name("logs-kmsg".into())
            .spawn(move || read_kmsg(seq, tx, stop))?;
    }
    drop(tx);
    let tailers: Vec<(String, Tailer)> = files
        .iter()
        .map(|f| {
            let key = f.path.display().to_string();
            let position = store
                .position(&key)
                .and_then(|v| serde_json::from_str(&v).ok());
            (
                f.source(),
                Tailer::new(f.path.clone(), f.from_start, position),
            )
        })
        .collect();
    std::thread::Builder::new()
        .name("logs".into())
        .spawn(move || write_loop(tailers, rx, store, stop))?;
    Ok(())
}

fn write_loop(
    mut tailers: Vec<(String, Tailer)>,
    rx: Receiver<Incoming>,
    store: Arc<dyn Sink>,
    stop: Arc<AtomicBool>,
) {
    let mut counts: BTreeMap<(String, Level), u64> = BTreeMap::new();
    let mut last_counters = Instant::now();
    let mut failing: BTreeMap<String, String> = BTreeMap::new();
    // Records and positions the store refused, tried again next tick (bounded).
    let mut records: Vec<LogRecord> = Vec::new();
    let mut checkpoints: BTreeMap<String, String> = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let now = now_ms();
        let new_from = records.len();
        for (source, tailer) in &mut tailers {
            match tailer.poll() {
                Ok(lines) => {
                    if failing.remove(source).is_some() {
                        tracing::info!(source = %source, "log file readable again");
                    }
                    records.extend(lines.into_iter().map(|line| LogRecord {
                        source: source.clone(),
                        level: detect_level(&line),
                        ts_ms: now,
                        message: line,
                        fields: Vec::new(),
                    }));
                    if let Some(p) = tailer.position() {
                        let key = tailer.path().display().to_string();
                        checkpoints.insert(key, serde_json::to_string(&p).unwrap_or_default());
                    }
                }
                Err(e) => {
                    if failing.insert(source.clone(), e.to_string()).is_none() {
                        tracing::warn!(source = %source, error = %e, "reading a log file");
                    }
                }
            }
        }
        while let Ok(incoming) = rx.try_recv() {
            if let Some((key, value)) = incoming.checkpoint {
                checkpoints.insert(key.to_string(), value);
            }
            records.push(incoming.record);
            if records.len() >= 50_000 {
                break;
            }
        }
        for r in &records[new_from..] {
            *counts.entry((r.source.clone(), r.level)).or_default() += 1;
        }
        let fresh = records.len() > new_from;
        if !records.is_empty() {
            match store.logs(&records) {
                Ok(_) => {
                    records.clear();
                    if let Err(e) = save_checkpoints(store.as_ref(), &checkpoints) {
                        tracing::warn!(error = %e, "saving log positions");
                    }
                    checkpoints.clear();
                }
                Err(e) => {
                    tracing::error!(error = %e, records = records.len(), "storing log records; retrying");
                    if records.len() > MAX_PENDING {
                        let dropped = records.len() - MAX_PENDING;
                        records.drain(..dropped);
                        tracing::error!(dropped, "log records dropped: the store refuses them");
                    }
                }
            }
        }
        if fresh || last_counters.elapsed() >= COUNTER_REFRESH {
            last_counters = Instant::now();
            let samples: Vec<Sample> = counts
                .iter()
                .map(|((source, level), n)| Sample {
                    name: "log_lines_total".into(),
                    labels: vec![
                        ("level".into(), level.name().into()),
                        ("source".into(), source.clone()),
                    ],
                    ts_ms: now,
                    value: *n as f64,
                })
                .collect();
            if !samples.is_empty()
                && let Err(e) = store.samples(&samples)
            {
                tracing::warn!(error = %e, "storing log counters");
            }
        }
        std::thread::sleep(TICK.saturating_sub(started.elapsed()));
    }
}

fn save_checkpoints(
    store: &dyn Sink,
    checkpoints: &BTreeMap<String, String>,
) -> Result<(), String> {
    if checkpoints.is_empty() {
        return Ok(());
    }
    let writes: Vec<(&str, &str)> = checkpoints
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    store.save_positions(&writes)
}

fn send(tx: &SyncSender<Incoming>, incoming: Incoming, stop: &AtomicBool) -> bool {
    let mut incoming = incoming;
    loop {
        match tx.try_send(incoming) {
            Ok(()) => return true,
            Err(TrySendError::Full(back)) => {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                incoming = back;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(TrySendError::Disconnected(_)) => return false,
        }
    }
}

/// Syslog priority (0 emerg .. 7 debug) as a level.
pub fn priority_level(priority: u8) -> Level {
    match priority {
        0..=3 => Level::Error,
        4 => Level::Warn,
        5 | 6 => Level::Info,
        _ => Level::Debug,
    }
}

/// Follow the journal; when `journalctl` ends (a vacuumed cursor, journald restarted),
/// start it again after a pause, from where the last record stored left off — or from
/// now, when the saved cursor itself was the problem.
fn read_journal(cursor: Option<String>, tx: SyncSender<Incoming>, stop: Arc<AtomicBool>) {
    let mut cursor = cursor;
    while !stop.load(Ordering::Relaxed) {
        let mut command = Command::new("journalctl");
        command.args(["-o", "json", "-f", "--no-pager"]);
        match &cursor {
            Some(c) => command.arg(format!("--after-cursor={c}")),
            None => command.args(["-n", "0"]),
        };
        let mut child = match command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(error = %e, "no systemd journal to follow (journalctl)");
                return;
            }
        };
        let Some(stdout) = child.stdout.take() else {
            return;
        };
        let mut read = 0usize;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Some(incoming) = journal_record(&line) else {
                continue;
            };
            if let Some((_, c)) = &incoming.checkpoint {
                cursor = Some(c.clone());
            }
            read += 1;
            if !send(&tx, incoming, &stop) {
                break;
            }
        }
        let _ = child.kill();
        let mut why = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut why);
        }
        let _ = child.wait();
        if stop.load(Ordering::Relaxed) {
            return;
        }
        tracing::warn!(stderr = %why.trim(), records = read, "journalctl ended; following again in 5 s");
        if read == 0 {
            cursor = None;
        }
        for _ in 0..50 {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One `journalctl -o json` line as a record.
fn journal_record(line: &str) -> Option<Incoming> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let message = match v.get("MESSAGE") {
        Some(serde_json::Value::String(s)) => s.clone(),
        // Non-UTF-8 messages come as byte arrays.
        Some(serde_json::Value::Array(bytes)) => {
            let b: Vec<u8> = bytes
                .iter()
                .filter_map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok()))
                .collect();
            String::from_utf8_lossy(&b).into_owned()
        }
        _ => return None,
    };
    let level = text("PRIORITY")
        .and_then(|p| p.parse().ok())
        .map_or(Level::Info, priority_level);
    let ts_ms = text("__REALTIME_TIMESTAMP")
        .and_then(|t| t.parse::<i64>().ok())
        .map_or_else(now_ms, |us| us / 1000);
    let mut fields = Vec::new();
    for (key, name) in [
        ("_SYSTEMD_UNIT", "unit"),
        ("SYSLOG_IDENTIFIER", "identifier"),
        ("_PID", "pid"),
    ] {
        if let Some(v) = text(key) {
            fields.push((name.to_string(), v));
        }
    }
    Some(Incoming {
        record: LogRecord {
            source: "journal".into(),
            level,
            ts_ms,
            message,
            fields,
        },
        checkpoint: text("__CURSOR").map(|c| ("journal", c)),
    })
}

fn read_kmsg(saved: Option<String>, tx: SyncSender<Incoming>, stop: Arc<AtomicBool>) {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    // Records up to the saved sequence number of this boot were stored before.
    let after = saved.and_then(|s| {
        let (boot, seq) = s.split_once(':')?;
        (boot == boot_id).then(|| seq.parse::<u64>().ok()).flatten()
    });
    let mut file = match std::fs::File::open("/dev/kmsg") {
        Ok(f) => f,
        Err(e) => {
            tracing::info!(error = %e, "no kernel ring buffer to follow (/dev/kmsg)");
            return;
        }
    };
    if after.is_none() {
        use std::io::{Seek, SeekFrom};
        let _ = file.seek(SeekFrom::End(0));
    }
    let boot_ms = procfs_boot_ms();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // Each read returns exactly one record.
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(32) => continue, // EPIPE: overwritten, skip
            Err(_) => break,
        };
        let Some((seq, incoming)) = kmsg_record(&buf[..n], boot_ms, &boot_id) else {
            continue;
        };
        if after.is_some_and(|a| seq <= a) {
            continue;
        }
        if !send(&tx, incoming, &stop) {
            break;
        }
    }
}

fn procfs_boot_ms() -> i64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<i64>().ok())
        })
        .map_or(0, |s| s * 1000)
}

/// One `/dev/kmsg` record (`PRI,SEQ,USEC,FLAGS;MESSAGE`) with its sequence number.
fn kmsg_record(raw: &[u8], boot_ms: i64, boot_id: &str) -> Option<(u64, Incoming)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once(';')?;
    let mut parts = head.split(',');
    let prival: u32 = parts.next()?.parse().ok()?;
    let seq: u64 = parts.next()?.parse().ok()?;
    let usec: i64 = parts.next()?.parse().ok()?;
    // Continuation lines (" KEY=value") follow the message; keep the message only.
    let message = body.lines().next().unwrap_or("").to_string();
    let level = priority_level(u8::try_from(prival & 7).unwrap_or(6));
    Some((
        seq,
        Incoming {
            record: LogRecord {
                source: "kmsg".into(),
                level,
                ts_ms: boot_ms + usec / 1000,
                message,
                fields: Vec::new(),
            },
            checkpoint: Some(("kmsg", format!("{boot_id}:{seq}"))),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tocsin_store::Store;

    #[test]
    fn journal_and_kmsg_records_are_read() {
        let j = journal_record(
            r#"{"__CURSOR":"s=abc;i=1","__REALTIME_TIMESTAMP":"1700000000123456","PRIORITY":"3","_SYSTEMD_UNIT":"nginx.service","MESSAGE":"bind failed"}"#,
        )
        .expect("test");
        assert_eq!(j.record.level, Level::Error);
        assert_eq!(j.record.ts_ms, 1_700_000_000_123);
        assert_eq!(
            j.record.fields,
            vec![("unit".to_string(), "nginx.service".to_string())]
        );
        assert_eq!(j.checkpoint, Some(("journal", "s=abc;i=1".to_string())));
        let bytes = journal_record(r#"{"MESSAGE":[104,105,255],"PRIORITY":"4"}"#).expect("test");
        assert_eq!(
            (bytes.record.message.as_str(), bytes.record.level),
            ("hi\u{fffd}", Level::Warn)
        );
        assert!(journal_record("not json").is_none());

        let (seq, k) = kmsg_record(
            b"4,812,5000000,-;usb 1-1: device descriptor read error\n SUBSYSTEM=usb",
            1000,
            "b",
        )
        .expect("test");
        assert_eq!(seq, 812);
        assert_eq!(k.record.level, Level::Warn);
        assert_eq!(k.record.ts_ms, 1000 + 5000);
        assert_eq!(k.record.message, "usb 1-1: device descriptor read error");
        assert_eq!(k.checkpoint, Some(("kmsg", "b:812".to_string())));
        assert!(kmsg_record(b"garbage", 0, "b").is_none());
    }

    #[test]
    fn a_followed_file_lands_in_the_store_and_resumes_after_restart() {
        let dir = tempfile::tempdir().expect("test");
        let log = dir.path().join("app.log");
        std::fs::write(&log, "").expect("test");
        let store = Arc::new(Store::open(&dir.path().join("t.redb")).expect("test"));
        let files = vec![LogFileConfig {
            path: log.clone(),
            source: Some("app".into()),
            from_start: false,
        }];
        let stop = Arc::new(AtomicBool::new(false));
        spawn(files.clone(), false, false, store.clone(), stop.clone()).expect("test");
        std::thread::sleep(Duration::from_millis(400));
        std::fs::write(&log, "ERROR one\nWARN two\nthree\n").expect("test");
        let query = tocsin_store::LogQuery {
            source: Some("app".into()),
            limit: Some(100),
            ..Default::default()
        };
        let wait = |n: usize| {
            for _ in 0..100 {
                if store.query_logs(&query).expect("test").len() >= n {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            store.query_logs(&query).expect("test")
        };
        let got = wait(3);
        let mut levels: Vec<Level> = got.iter().map(|r| r.level).collect();
        levels.sort();
        assert_eq!(levels, vec![Level::Info, Level::Warn, Level::Error]);
        let errors = store
            .latest(
                "log_lines_total{source=\"app\",level=\"error\"}",
                now_ms() + 1000,
                60_000,
            )
            .expect("test");
        assert_eq!(
            errors.iter().map(|v| v.value).collect::<Vec<_>>(),
            vec![1.0]
        );
        stop.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(400));

        // Lines written while stopped are read once after the restart.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("test");
        std::io::Write::write_all(&mut f, b"four\n").expect("test");
        let stop = Arc::new(AtomicBool::new(false));
        spawn(files, false, false, store.clone(), stop.clone()).expect("test");
        let got = wait(4);
        stop.store(true, Ordering::Relaxed);
        let messages: Vec<&str> = got.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(messages.len(), 4, "{messages:?}");
        assert!(messages.contains(&"four"));
    }
}
