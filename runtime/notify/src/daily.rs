//! The daily digest: once a day at a set time (UTC), a summary of the last 24 hours —
//! alerts firing now, fired and resolved, the newest health score — is queued for the
//! configured receivers. The day is marked in the same transaction as the messages, so a
//! restart neither skips nor repeats it; a runtime that was down at that time sends it
//! when it comes back the same day.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tocsin_alerting::Receiver;
use tocsin_store::{AlertPhase, NewMessage, Store, StoreError};

use crate::vars::rfc3339;

const DAY_MS: i64 = 86_400_000;

/// The `[notify.daily_digest]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DailyDigestConfig {
    /// Receivers (`routing.receivers[].name`) that get it; empty: no digest.
    pub receivers: Vec<String>,
    /// Time of day it is sent, `HH:MM` UTC.
    pub at: String,
}

impl Default for DailyDigestConfig {
    fn default() -> Self {
        DailyDigestConfig {
            receivers: Vec::new(),
            at: "08:00".into(),
        }
    }
}

impl DailyDigestConfig {
    /// Minutes after midnight UTC.
    pub fn minute(&self) -> Result<i64, String> {
        tocsin_alerting::routing::minutes(&self.at)
            .map_err(|e| format!("notify.daily_digest.at: {e} (HH:MM, UTC)"))
    }

    /// Check the time and that every receiver exists.
    pub fn validate(&self, receivers: &[Receiver]) -> Result<(), String> {
        self.minute()?;
        for name in &self.receivers {
            if !receivers.iter().any(|r| &r.name == name) {
                return Err(format!(
                    "notify.daily_digest.receivers: no receiver named `{name}`"
                ));
            }
        }
        Ok(())
    }
}

/// The digest's messages at `now` for `receivers`.
pub fn messages(
    store: &Store,
    config: &DailyDigestConfig,
    receivers: &[Receiver],
    now: i64,
) -> Result<Vec<NewMessage>, StoreError> {
    let since = now - DAY_MS;
    let firing: Vec<_> = store
        .all_alerts()?
        .into_iter()
        .filter(|a| a.phase == AlertPhase::Firing)
        .collect();
    let history = store.alert_history(None, since, 100_000)?;
    let count = |kind: &str| history.iter().filter(|e| e.kind == kind).count();
    let health = store
        .latest("health_score", now, DAY_MS)?
        .into_iter()
        .map(|v| v.value)
        .find(|v| v.is_finite())
        .map(|v| format!("{v:.0}"))
        .unwrap_or_default();
    let alerts: Vec<serde_json::Value> = firing
        .iter()
        .map(|a| {
            json!({
                "name": a.rule,
                "severity": a.severity,
                "summary": a.annotations.iter().find(|(k, _)| k == "summary").map(|(_, v)| v.as_str()).unwrap_or(""),
                "started": rfc3339(a.active_since_ms),
            })
        })
        .collect();
    let vars = json!({
        "period": "the last 24 hours",
        "from": rfc3339(since),
        "firing_count": firing.len().to_string(),
        "fired": count("firing").to_string(),
        "resolved": count("resolved").to_string(),
        "health_score": health,
        "alerts": serde_json::Value::Array(alerts).to_string(),
    });
    let mut out = Vec::new();
    for r in receivers
        .iter()
        .filter(|r| config.receivers.contains(&r.name))
    {
        let to = if r.to.is_empty() {
            vec![String::new()]
        } else {
            r.to.clone()
        };
        for recipient in to {
            out.push(NewMessage {
                channel: r.channel.clone(),
                recipient,
                kind: "daily_digest".into(),
                payload: json!({ "receiver": r.name, "vars": vars }),
                not_before_ms: now,
            });
        }
    }
    Ok(out)
}

/// Queue today's digest if its time has come and it was not queued yet. Returns whether
/// it queued one.
pub fn tick(
    store: &Store,
    config: &DailyDigestConfig,
    receivers: &[Receiver],
    now: i64,
) -> Result<bool, StoreError> {
    let Ok(at) = config.minute() else {
        return Ok(false);
    };
    if config.receivers.is_empty() || now.rem_euclid(DAY_MS) < at * 60_000 {
        return Ok(false);
    }
    let day = u64::try_from(now.div_euclid(DAY_MS)).unwrap_or(0);
    if store.job_period("daily_digest")?.is_some_and(|d| d >= day) {
        return Ok(false); // cheap: the summary is not computed again
    }
    let msgs = messages(store, config, receivers, now)?;
    store.enqueue_once("daily_digest", day, &msgs)
}

/// Check every 30 s until `stop`.
pub fn spawn(
    store: Arc<Store>,
    config: DailyDigestConfig,
    receivers: Vec<Receiver>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    if config.receivers.is_empty() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("daily-digest".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match tick(&store, &config, &receivers, crate::deliver::now_ms()) {
                    Ok(true) => tracing::info!("daily digest queued"),
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %e, "daily digest failed"),
                }
                for _ in 0..300 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver() -> Receiver {
        Receiver {
            name: "ops".into(),
            channel: "mail".into(),
            to: vec!["ops@example.org".into()],
            format: "generic".into(),
            routing_key: Default::default(),
        }
    }

    #[test]
    fn it_is_queued_once_a_day_after_its_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("store");
        let config = DailyDigestConfig {
            receivers: vec!["ops".into()],
            at: "08:00".into(),
        };
        let day = 20_000 * DAY_MS;
        let r = [receiver()];
        assert!(!tick(&store, &config, &r, day + 7 * 3_600_000).expect("before"));
        assert!(tick(&store, &config, &r, day + 8 * 3_600_000).expect("at"));
        assert!(!tick(&store, &config, &r, day + 20 * 3_600_000).expect("later"));
        assert!(tick(&store, &config, &r, day + DAY_MS + 9 * 3_600_000).expect("next day"));
        let queued = store.due_messages(i64::MAX, 10).expect("due");
        assert_eq!(queued.len(), 2);
        assert_eq!(queued[0].message.kind, "daily_digest");
        assert_eq!(queued[0].message.recipient, "ops@example.org");
        assert_eq!(queued[0].message.payload["vars"]["firing_count"], "0");
    }

    #[test]
    fn unknown_receivers_and_bad_times_are_named() {
        let mut c = DailyDigestConfig {
            receivers: vec!["nobody".into()],
            ..DailyDigestConfig::default()
        };
        assert!(
            c.validate(&[receiver()])
                .expect_err("an error")
                .contains("nobody")
        );
        c.receivers.clear();
        c.at = "25:00".into();
        assert!(c.validate(&[]).expect_err("an error").contains("HH:MM"));
    }
}
