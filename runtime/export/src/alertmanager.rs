//! Forwarding alerts to external Alertmanagers, as Prometheus does: every firing alert is
//! posted to `/api/v2/alerts` when it starts and again every `resend` (with `endsAt` four
//! resends ahead, so an Alertmanager that stops hearing from Tocsin resolves it), and a
//! resolved alert once with its end time. Each Alertmanager is sent everything (an HA
//! cluster deduplicates); a failing one is retried with backoff, never blocking the others.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::config::AlertmanagerConfig;

/// Resolved alerts are still sent this long after resolving (Prometheus' 15 minutes).
const RESOLVED_FOR_MS: i64 = 15 * 60_000;

/// An alert to forward.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Labels (with `alertname`).
    pub labels: Vec<(String, String)>,
    /// Annotations.
    pub annotations: Vec<(String, String)>,
    /// Firing, else resolved.
    pub firing: bool,
    /// When it began (ms).
    pub starts_ms: i64,
    /// When it resolved (ms).
    pub resolved_ms: Option<i64>,
}

fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The body Alertmanager's API v2 takes for `alerts`, at `now`.
pub fn payload(alerts: &[&Alert], resend_ms: i64, now: i64, generator: &str) -> Value {
    Value::Array(
        alerts
            .iter()
            .map(|a| {
                let map = |pairs: &[(String, String)]| -> BTreeMap<String, String> {
                    pairs.iter().cloned().collect()
                };
                let ends = match (a.firing, a.resolved_ms) {
                    (false, Some(r)) => r,
                    (false, None) => now,
                    (true, _) => now + 4 * resend_ms,
                };
                let rule = a
                    .labels
                    .iter()
                    .find(|(k, _)| k == "alertname")
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("");
                json!({
                    "labels": map(&a.labels),
                    "annotations": map(&a.annotations),
                    "startsAt": rfc3339(a.starts_ms),
                    "endsAt": rfc3339(ends),
                    "generatorURL": format!("{}/api/rules/{rule}", generator.trim_end_matches('/')),
                })
            })
            .collect(),
    )
}

/// What one Alertmanager has been told, and when to try it next.
#[derive(Debug, Default)]
struct Peer {
    /// Labels → (told firing?, when).
    told: HashMap<Vec<(String, String)>, (bool, i64)>,
    next_try_ms: i64,
    backoff_ms: i64,
}

impl Peer {
    /// The alerts this peer must be told now.
    fn due<'a>(&self, alerts: &'a [Alert], resend_ms: i64, now: i64) -> Vec<&'a Alert> {
        alerts
            .iter()
            .filter(|a| match (a.firing, self.told.get(&a.labels)) {
                (true, Some(&(true, at))) => now - at >= resend_ms,
                (true, _) => true,
                (false, told) => {
                    a.resolved_ms.is_some_and(|r| now - r <= RESOLVED_FOR_MS)
                        && told.is_none_or(|&(firing, _)| firing)
                }
            })
            .collect()
    }
}

/// Post to `{url}/api/v2/alerts`.
fn post(agent: &ureq::Agent, url: &str, body: &Value) -> Result<(), String> {
    let target = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
    let shown = crate::config::shown_url(&target);
    let response = agent
        .post(&target)
        .send_json(body)
        .map_err(|e| format!("{shown}: {e}"))?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("{shown}: HTTP {status}"))
    }
}

/// Forward what `source` answers, once a second, until `stop`.
pub fn spawn(
    config: AlertmanagerConfig,
    generator: String,
    source: impl Fn() -> Vec<Alert> + Send + 'static,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("alertmanager".into())
        .spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(config.timeout))
                .http_status_as_error(false)
                .build()
                .into();
            let resend_ms = i64::try_from(config.resend.as_millis()).unwrap_or(60_000).max(1000);
            let mut peers: Vec<Peer> = config.urls.iter().map(|_| Peer::default()).collect();
            while !stop.load(Ordering::Relaxed) {
                let alerts = source();
                let now = now_ms();
                for (url, peer) in config.urls.iter().zip(peers.iter_mut()) {
                    if now < peer.next_try_ms {
                        continue;
                    }
                    let due = peer.due(&alerts, resend_ms, now);
                    if due.is_empty() {
                        continue;
                    }
                    match post(&agent, url, &payload(&due, resend_ms, now, &generator)) {
                        Ok(()) => {
                            for a in due {
                                peer.told.insert(a.labels.clone(), (a.firing, now));
                            }
                            // What was told resolved long ago is never sent again.
                            peer.told.retain(|_, (firing, at)| {
                                *firing || now - *at <= RESOLVED_FOR_MS
                            });
                            peer.backoff_ms = 0;
                        }
                        Err(e) => {
                            peer.backoff_ms = (peer.backoff_ms * 2).clamp(1000, 30_000);
                            peer.next_try_ms = now + peer.backoff_ms;
                            tracing::warn!(error = %e, retry_in_ms = peer.backoff_ms, "forwarding alerts failed");
                        }
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(name: &str, firing: bool, resolved_ms: Option<i64>) -> Alert {
        Alert {
            labels: vec![
                ("alertname".into(), name.into()),
                ("host".into(), "a".into()),
            ],
            annotations: vec![("summary".into(), "hot".into())],
            firing,
            starts_ms: 1_000,
            resolved_ms,
        }
    }

    #[test]
    fn firing_alerts_are_resent_and_resolved_ones_sent_once() {
        let now = 10_000_000;
        let alerts = [
            alert("a", true, None),
            alert("b", false, Some(now - 1000)),
            alert("old", false, Some(now - RESOLVED_FOR_MS - 1)),
        ];
        let mut peer = Peer::default();
        let due = peer.due(&alerts, 60_000, now);
        let names: Vec<&str> = due.iter().map(|a| a.labels[0].1.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        for a in &due {
            peer.told.insert(a.labels.clone(), (a.firing, now));
        }
        assert!(peer.due(&alerts, 60_000, now + 59_000).is_empty());
        let again = peer.due(&alerts, 60_000, now + 60_000);
        assert_eq!(again.len(), 1, "only the firing one is resent");
        let resolved = [alert("a", false, Some(now + 61_000))];
        assert_eq!(
            peer.due(&resolved, 60_000, now + 62_000).len(),
            1,
            "told it resolved"
        );
    }

    #[test]
    fn the_payload_is_alertmanagers_v2_shape() {
        let a = alert("cpu", true, None);
        let r = alert("disk", false, Some(5_000));
        let body = payload(&[&a, &r], 60_000, 2_000, "http://tocsin:8080/");
        assert_eq!(body[0]["labels"]["alertname"], "cpu");
        assert_eq!(body[0]["annotations"]["summary"], "hot");
        assert_eq!(body[0]["startsAt"], "1970-01-01T00:00:01.000Z");
        assert_eq!(body[0]["endsAt"], "1970-01-01T00:04:02.000Z");
        assert_eq!(body[0]["generatorURL"], "http://tocsin:8080/api/rules/cpu");
        assert_eq!(body[1]["endsAt"], "1970-01-01T00:00:05.000Z");
    }
}
