//! The client topic scheme and payload schemas: a message on `PREFIX/ID/KIND[/LEVEL]`
//! becomes samples, log records, a heartbeat, a health report or a status change — or a
//! [`MessageError`] that names what is wrong. Schemas are in docs/fleet.md.

use std::collections::BTreeMap;

use serde::Deserialize;
use tocsin_store::{Level, LogRecord, Sample};

/// Most samples in one metrics message.
pub const MAX_SAMPLES: usize = 10_000;

/// Why a message was not ingested.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MessageError {
    /// The topic is not `PREFIX/ID/KIND`.
    #[error("topic: {0}")]
    Topic(String),
    /// The payload does not match its topic's schema.
    #[error("payload: {0}")]
    Payload(String),
}

/// What a topic names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `metrics`: a batch of samples.
    Metrics,
    /// `logs/LEVEL`.
    Logs(Level),
    /// `health`: expected vs actual state of the client's process and screen.
    Health,
    /// `heartbeat`.
    Heartbeat,
    /// `status`: retained `online`, or `offline` (the Last Will).
    Status,
}

/// A parsed topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic<'a> {
    /// The fleet prefix it matched.
    pub prefix: &'a str,
    /// The client id.
    pub client: &'a str,
    /// What it carries.
    pub kind: Kind,
}

/// Parse `topic` against the fleet `prefixes`.
pub fn parse_topic<'a>(topic: &'a str, prefixes: &[String]) -> Result<Topic<'a>, MessageError> {
    let bad = |why: &str| MessageError::Topic(format!("`{topic}`: {why}"));
    let (prefix, rest) = prefixes
        .iter()
        .find_map(|p| {
            topic
                .strip_prefix(p.as_str())
                .and_then(|r| r.strip_prefix('/'))
                .map(|r| (&topic[..p.len()], r))
        })
        .ok_or_else(|| bad("not under a fleet prefix"))?;
    let (client, kind) = rest
        .split_once('/')
        .ok_or_else(|| bad("expected PREFIX/ID/KIND"))?;
    check_client(client).map_err(|e| bad(&e))?;
    let kind =
        match kind {
            "metrics" => Kind::Metrics,
            "health" => Kind::Health,
            "heartbeat" => Kind::Heartbeat,
            "status" => Kind::Status,
            other => match other.strip_prefix("logs/") {
                Some(level) => Kind::Logs(parse_level(level).ok_or_else(|| {
                    bad(&format!("log level `{level}` (error, warn, info, debug)"))
                })?),
                None => {
                    return Err(bad(&format!(
                        "unknown kind `{other}` (metrics, logs/LEVEL, health, heartbeat, status)"
                    )));
                }
            },
        };
    Ok(Topic {
        prefix,
        client,
        kind,
    })
}

/// A client id: 1 to 128 characters of letters, digits, `-`, `_`, `.`, `:`.
pub fn check_client(client: &str) -> Result<(), String> {
    let ok = (1..=128).contains(&client.len())
        && client
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "client id `{}`: 1-128 letters, digits, `-_.:`",
            client.escape_default()
        ))
    }
}

fn parse_level(s: &str) -> Option<Level> {
    match s.to_ascii_lowercase().as_str() {
        "error" | "err" => Some(Level::Error),
        "warn" | "warning" => Some(Level::Warn),
        "info" => Some(Level::Info),
        "debug" => Some(Level::Debug),
        _ => None,
    }
}

/// One sample of a metrics message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSample {
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    ts_ms: Option<i64>,
    value: f64,
}

/// A metrics message `{"samples": [...]}` (or the bare list, parsed directly).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonBatch {
    samples: Vec<JsonSample>,
}

/// The samples of a metrics message, each labelled `client=ID` (a client cannot write
/// another's series).
pub fn metrics(client: &str, payload: &[u8], now_ms: i64) -> Result<Vec<Sample>, MessageError> {
    // Picked by the first byte: an untagged enum would buffer the whole payload first.
    let list: Vec<JsonSample> = match payload.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice(payload).map_err(payload_error)?,
        _ => {
            serde_json::from_slice::<JsonBatch>(payload)
                .map_err(payload_error)?
                .samples
        }
    };
    if list.len() > MAX_SAMPLES {
        return Err(MessageError::Payload(format!(
            "{} samples in one message (at most {MAX_SAMPLES})",
            list.len()
        )));
    }
    Ok(list
        .into_iter()
        .map(|s| {
            let mut labels: Vec<(String, String)> = s
                .labels
                .into_iter()
                .filter(|(k, _)| k != "client")
                .collect();
            labels.push(("client".into(), client.into()));
            Sample {
                name: s.name,
                labels,
                ts_ms: s.ts_ms.unwrap_or(now_ms),
                value: s.value,
            }
        })
        .collect())
}

/// A structured log message.
#[derive(Debug, Deserialize)]
struct JsonLog {
    #[serde(alias = "msg")]
    message: String,
    ts_ms: Option<i64>,
    /// RFC 3339, when `ts_ms` is not given.
    timestamp: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, serde_json::Value>,
}

/// The log record of a `logs/LEVEL` message: JSON `{"message", "ts_ms"|"timestamp",
/// "fields"}`, or any UTF-8 text as the message.
pub fn log(
    client: &str,
    level: Level,
    payload: &[u8],
    now_ms: i64,
) -> Result<LogRecord, MessageError> {
    let text = std::str::from_utf8(payload)
        .map_err(|e| MessageError::Payload(format!("log message is not UTF-8: {e}")))?;
    let source = format!("{}{client}", tocsin_store::CLIENT_SOURCE_PREFIX);
    if !text.trim_start().starts_with('{') {
        if text.trim().is_empty() {
            return Err(MessageError::Payload("empty log message".into()));
        }
        return Ok(LogRecord {
            source,
            level,
            ts_ms: now_ms,
            message: text.trim_end().into(),
            fields: vec![],
        });
    }
    let j: JsonLog = serde_json::from_str(text).map_err(payload_error)?;
    let ts_ms = match (j.ts_ms, &j.timestamp) {
        (Some(ts), _) => ts,
        (None, Some(t)) => humantime::parse_rfc3339_weak(t)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .ok_or_else(|| MessageError::Payload(format!("timestamp `{t}` is not RFC 3339")))?,
        (None, None) => now_ms,
    };
    let fields = j
        .fields
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect();
    Ok(LogRecord {
        source,
        level,
        ts_ms,
        message: j.message,
        fields,
    })
}

/// A client's process and screen, as it reports them on `health`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct Health {
    /// The managed process.
    pub process: String,
    /// Its pid, when running.
    #[serde(default)]
    pub pid: Option<u32>,
    /// `running`, `crashed`, `starting` or `stopped`.
    pub status: ProcessStatus,
    /// The state it should be in (default `running`).
    #[serde(default = "running")]
    pub expected_status: ProcessStatus,
    /// Restarts so far.
    #[serde(default, alias = "restarts")]
    pub restart_count: u64,
    /// `OK`, `BLACK`, `FROZEN` or `UNKNOWN`.
    #[serde(default)]
    pub screen: Screen,
    /// When the server received it (ms).
    #[serde(default)]
    pub received_ms: i64,
}

fn running() -> ProcessStatus {
    ProcessStatus::Running
}

/// A process state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessStatus {
    Running,
    Crashed,
    Starting,
    Stopped,
}

/// What the screen shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Screen {
    Ok,
    Black,
    Frozen,
    #[default]
    Unknown,
}

impl Health {
    /// Whether the client is as it should be: the expected process state, and a screen
    /// that is not black or frozen.
    pub fn ok(&self) -> bool {
        self.status == self.expected_status
            && !matches!(self.screen, Screen::Black | Screen::Frozen)
    }

    /// The series a health report writes.
    pub fn samples(&self, client: &str, ts_ms: i64) -> Vec<Sample> {
        let base = vec![("client".to_string(), client.to_string())];
        let mut with_process = base.clone();
        with_process.push(("process".into(), self.process.clone()));
        let mut out = vec![
            Sample {
                name: "client_health_ok".into(),
                labels: base.clone(),
                ts_ms,
                value: f64::from(u8::from(self.ok())),
            },
            Sample {
                name: "client_process_up".into(),
                labels: with_process.clone(),
                ts_ms,
                value: f64::from(u8::from(self.status == ProcessStatus::Running)),
            },
            Sample {
                name: "client_process_restarts_total".into(),
                labels: with_process,
                ts_ms,
                value: self.restart_count as f64,
            },
        ];
        if self.screen != Screen::Unknown {
            out.push(Sample {
                name: "client_screen_ok".into(),
                labels: base,
                ts_ms,
                value: f64::from(u8::from(self.screen == Screen::Ok)),
            });
        }
        out
    }
}

/// The health report of a `health` message.
pub fn health(payload: &[u8], now_ms: i64) -> Result<Health, MessageError> {
    let mut h: Health = serde_json::from_slice(payload).map_err(payload_error)?;
    h.received_ms = now_ms;
    Ok(h)
}

/// Whether a `status` message says the client went away: `offline` (plain or
/// `{"status": "offline"}`); `online` is a heartbeat.
pub fn status_offline(payload: &[u8]) -> Result<bool, MessageError> {
    #[derive(Deserialize)]
    struct J {
        status: String,
    }
    let text = std::str::from_utf8(payload)
        .map_err(|e| MessageError::Payload(format!("status is not UTF-8: {e}")))?
        .trim();
    let word = if text.starts_with('{') {
        serde_json::from_str::<J>(text)
            .map_err(payload_error)?
            .status
    } else {
        text.to_string()
    };
    match word.to_ascii_lowercase().as_str() {
        "offline" => Ok(true),
        "online" => Ok(false),
        other => Err(MessageError::Payload(format!(
            "status `{other}` (online or offline)"
        ))),
    }
}

fn payload_error(e: serde_json::Error) -> MessageError {
    MessageError::Payload(format!("invalid JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes() -> Vec<String> {
        vec!["tocsin".into(), "infoscreen".into()]
    }

    #[test]
    fn topics_of_every_kind_and_prefix() {
        let t = parse_topic("tocsin/kiosk-1/metrics", &prefixes()).expect("metrics");
        assert_eq!(
            (t.prefix, t.client, t.kind),
            ("tocsin", "kiosk-1", Kind::Metrics)
        );
        let t = parse_topic("infoscreen/9b2c1e4e-aa/logs/warning", &prefixes()).expect("logs");
        assert_eq!((t.client, t.kind), ("9b2c1e4e-aa", Kind::Logs(Level::Warn)));
        for (topic, kind) in [
            ("health", Kind::Health),
            ("heartbeat", Kind::Heartbeat),
            ("status", Kind::Status),
        ] {
            assert_eq!(
                parse_topic(&format!("tocsin/a/{topic}"), &prefixes())
                    .expect(topic)
                    .kind,
                kind
            );
        }
        for bad in [
            "other/a/metrics",
            "tocsin/a",
            "tocsin//metrics",
            "tocsin/a/b/c",
            "tocsin/a/logs/loud",
            "tocsinx/a/metrics",
            "tocsin/a b/metrics",
        ] {
            assert!(parse_topic(bad, &prefixes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn metrics_are_pinned_to_their_client() {
        let s = metrics(
            "k1",
            br#"{"samples":[{"name":"temp","labels":{"client":"other","room":"a"},"value":21.5}]}"#,
            7,
        )
        .expect("batch");
        assert_eq!(s[0].ts_ms, 7);
        assert_eq!(
            s[0].labels,
            vec![("room".into(), "a".into()), ("client".into(), "k1".into())]
        );
        let s = metrics(
            "k1",
            br#"[{"name":"a","value":1,"ts_ms":5},{"name":"b","value":2}]"#,
            7,
        )
        .expect("list");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].ts_ms, 5);
        for bad in [
            &b"{"[..],
            b"[{\"name\":\"a\"}]",
            b"{\"samples\":[{\"name\":\"a\",\"value\":\"x\"}]}",
            b"[{\"name\":\"a\",\"value\":1,\"extra\":1}]",
        ] {
            assert!(
                metrics("k1", bad, 0).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn logs_as_text_or_json() {
        let r = log("k1", Level::Error, b"disk full\n", 9).expect("text");
        assert_eq!(
            (r.source.as_str(), r.message.as_str(), r.ts_ms),
            ("client/k1", "disk full", 9)
        );
        let r = log(
            "k1",
            Level::Warn,
            br#"{"msg":"slow","timestamp":"2026-11-26T10:00:00Z","fields":{"ms":120}}"#,
            9,
        )
        .expect("json");
        assert_eq!(r.message, "slow");
        assert_eq!(r.ts_ms, 1_795_687_200_000);
        assert_eq!(r.fields, vec![("ms".into(), "120".into())]);
        assert!(log("k1", Level::Warn, b"{\"message\":1}", 0).is_err());
        assert!(log("k1", Level::Warn, b"  ", 0).is_err());
        assert!(log("k1", Level::Warn, &[0xff, 0xfe], 0).is_err());
        assert!(
            log(
                "k1",
                Level::Warn,
                br#"{"message":"x","timestamp":"yesterday"}"#,
                0
            )
            .is_err()
        );
    }

    #[test]
    fn health_reports_and_their_series() {
        let h = health(br#"{"process":"chromium","pid":42,"status":"running","restart_count":2,"screen":"FROZEN"}"#, 5).expect("health");
        assert!(!h.ok(), "a frozen screen is not ok");
        let s = h.samples("k1", 5);
        let v = |n: &str| s.iter().find(|x| x.name == n).map(|x| x.value);
        assert_eq!(v("client_health_ok"), Some(0.0));
        assert_eq!(v("client_process_up"), Some(1.0));
        assert_eq!(v("client_process_restarts_total"), Some(2.0));
        assert_eq!(v("client_screen_ok"), Some(0.0));
        let h = health(
            br#"{"process":"player","status":"stopped","expected_status":"stopped"}"#,
            5,
        )
        .expect("health");
        assert!(h.ok());
        assert!(health(br#"{"process":"p","status":"exploded"}"#, 0).is_err());
    }

    #[test]
    fn status_words() {
        assert_eq!(status_offline(b"offline"), Ok(true));
        assert_eq!(status_offline(br#"{"status":"ONLINE"}"#), Ok(false));
        assert!(status_offline(b"maybe").is_err());
    }
}
