//! Delivery from the durable outbox. One thread per channel (mail, webhook, pipe) takes
//! the channel's due messages, renders them, sends them and records the outcome: the
//! server's acceptance (so a restart never sends twice), or a retry with exponential
//! backoff and jitter, or — past `retry.give_up_after` — a failure. A recipient over its
//! rate limit gets its waiting alert messages folded into one digest instead of losing any.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tocsin_alerting::Receiver;
use tocsin_store::{OutboxMessage, Store, StoreError};

use crate::chart::ChartRules;
use crate::config::{MailConfig, NotifyConfig};
use crate::mail::{Email, FileAttachment, Mailer};
use crate::render::{Rendered, Templates};
use crate::vars::{Site, vars};

/// Kinds that may be folded into a digest (account messages never are).
const FOLDABLE: [&str; 1] = ["server_alert"];

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Messages accepted by their server (folded ones included).
    pub delivered: usize,
    /// Of those, messages that went out inside a digest.
    pub folded: usize,
    /// Attempts that failed and will be retried.
    pub retried: usize,
    /// Messages given up (or refused by configuration).
    pub failed: usize,
    /// Messages held back by the rate limit.
    pub postponed: usize,
}

/// A send failure.
type SendResult = Result<String, String>;

/// Delivery times per (channel, recipient).
type SentLog = HashMap<(String, String), VecDeque<i64>>;

/// Content-ID of the chart in a mail.
const CHART_CID: &str = "chart";

/// How the reply recorded for a digest's messages starts.
const DIGEST_REPLY: &str = "digest of ";

/// Delivers one channel's messages.
pub struct Deliverer {
    store: Arc<Store>,
    templates: Templates,
    charts: ChartRules,
    config: NotifyConfig,
    mail_config: MailConfig,
    mailer: Result<Mailer, String>,
    receivers: Vec<Receiver>,
    site: Site,
    /// Delivery times within the rate window, per (channel, recipient); read from the
    /// store on the first pass.
    sent: Option<SentLog>,
    rng: fastrand::Rng,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer").finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Wall-clock milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Deliverer {
    /// A deliverer over `store`; the rate windows are seeded from what was delivered lately.
    pub fn new(
        store: Arc<Store>,
        templates: Templates,
        charts: ChartRules,
        config: NotifyConfig,
        mail_config: MailConfig,
        receivers: Vec<Receiver>,
    ) -> Deliverer {
        let mailer = Mailer::new(&mail_config).map_err(|e| e.to_string());
        let site = Site {
            server_name: config.server_name(),
            base_url: config.base_url.trim_end_matches('/').to_string(),
        };
        Deliverer {
            store,
            templates,
            charts,
            config,
            mail_config,
            mailer,
            receivers,
            site,
            sent: None,
            rng: fastrand::Rng::new(),
        }
    }

    /// The rate windows as the store remembers them (after a restart, too).
    fn seed_rate_windows(&self, now: i64) -> Result<SentLog, StoreError> {
        let since = now - ms(self.config.rate_limit.per);
        let mut sent = SentLog::new();
        // A digest marks all its messages with the same reply: count it once.
        let mut digests = std::collections::HashSet::new();
        for m in self.store.recent_messages(2000)?.iter().rev() {
            let Some(at) = m.delivered_ms.filter(|t| *t > since) else {
                continue;
            };
            let reply = m.server_reply.clone().unwrap_or_default();
            if reply.starts_with(DIGEST_REPLY) && !digests.insert(reply) {
                continue;
            }
            let key = (m.message.channel.clone(), m.message.recipient.clone());
            sent.entry(key).or_default().push_back(at);
        }
        Ok(sent)
    }

    /// One pass over `channel`'s due messages at `now`.
    pub fn pass(&mut self, channel: &str, now: i64) -> Result<PassReport, StoreError> {
        let mut report = PassReport::default();
        let mut by_recipient: BTreeMap<String, Vec<OutboxMessage>> = BTreeMap::new();
        for m in self.store.due_messages_on(channel, now, 1000)? {
            if let Some(reason) = self.refusal(&m) {
                tracing::warn!(id = m.id, recipient = %m.message.recipient, "not sent: {reason}");
                self.store.mark_attempt_failed(m.id, &reason, None)?;
                report.failed += 1;
                continue;
            }
            by_recipient
                .entry(m.message.recipient.clone())
                .or_default()
                .push(m);
        }
        let window = ms(self.config.rate_limit.per);
        if self.sent.is_none() {
            self.sent = Some(self.seed_rate_windows(now)?);
        }
        for (recipient, messages) in by_recipient {
            let key = (channel.to_string(), recipient.clone());
            let times = self.sent.get_or_insert_default().entry(key).or_default();
            while times.front().is_some_and(|t| *t <= now - window) {
                times.pop_front();
            }
            let room = usize::try_from(self.config.rate_limit.max)
                .unwrap_or(usize::MAX)
                .saturating_sub(times.len());
            let oldest = times.front().copied();
            let (foldable, single): (Vec<_>, Vec<_>) = messages
                .into_iter()
                .partition(|m| FOLDABLE.contains(&m.message.kind.as_str()));
            for m in single {
                self.send_one(channel, &[m], now, &mut report)?;
            }
            if foldable.is_empty() {
                continue;
            }
            if foldable.len() <= room {
                for m in foldable {
                    self.send_one(channel, &[m], now, &mut report)?;
                }
            } else if room >= 1 {
                self.send_one(channel, &foldable, now, &mut report)?;
            } else {
                let at = oldest.unwrap_or(now) + window;
                let ids: Vec<u64> = foldable.iter().map(|m| m.id).collect();
                self.store.reschedule(&ids, at)?;
                report.postponed += ids.len();
            }
        }
        Ok(report)
    }

    /// Why a message must not be sent at all, if so.
    fn refusal(&self, m: &OutboxMessage) -> Option<String> {
        let kind = &m.message.kind;
        if !self.config.enabled(kind) {
            return Some(format!("kind `{kind}` is turned off (notify.kinds)"));
        }
        if m.message.channel == "mail"
            && self.mail_config.alerts_admins_only
            && FOLDABLE.contains(&kind.as_str())
            && !self.mail_config.admins.contains(&m.message.recipient)
        {
            return Some("alerts go to administrators only (mail.alerts_admins_only)".into());
        }
        None
    }

    /// Send `messages` (one, or several as a digest) and record the outcome.
    fn send_one(
        &mut self,
        channel: &str,
        messages: &[OutboxMessage],
        now: i64,
        report: &mut PassReport,
    ) -> Result<(), StoreError> {
        let Some(first) = messages.first() else {
            return Ok(());
        };
        let recipient = first.message.recipient.clone();
        let (kind, payload) = if messages.len() == 1 {
            (first.message.kind.clone(), first.message.payload.clone())
        } else {
            ("alert_digest".to_string(), digest(messages))
        };
        let mut v = vars(&kind, &recipient, &payload, &self.site, now);
        // Mail shows the chart inline; webhooks link to it (see `webhook::bodies`).
        let chart = (channel == "mail")
            .then(|| self.chart(&payload, now))
            .flatten();
        if chart.is_some() {
            v.push(("chart_cid".into(), CHART_CID.into()));
        }
        let rendered = self.templates.render(&kind, &v);
        let ids: Vec<u64> = messages.iter().map(|m| m.id).collect();
        let sent = self.send(channel, &kind, &recipient, &rendered, &payload, &ids, chart);
        match sent {
            Ok(reply) => {
                let reply = if ids.len() > 1 {
                    format!("{DIGEST_REPLY}{} (with #{}): {reply}", ids.len(), ids[0])
                } else {
                    reply
                };
                self.store.mark_all_delivered(&ids, now, &reply)?;
                self.sent
                    .get_or_insert_default()
                    .entry((channel.to_string(), recipient))
                    .or_default()
                    .push_back(now);
                report.delivered += ids.len();
                if ids.len() > 1 {
                    report.folded += ids.len();
                }
            }
            Err(error) => {
                for m in messages {
                    let retry = self.retry_at(m, now);
                    if retry.is_none() {
                        tracing::error!(id = m.id, channel, error = %error, "notification given up");
                        report.failed += 1;
                    } else {
                        report.retried += 1;
                    }
                    self.store.mark_attempt_failed(m.id, &error, retry)?;
                }
                tracing::warn!(channel, recipient = %first.message.recipient, error = %error, "delivery failed; will retry");
            }
        }
        Ok(())
    }

    /// Exponential backoff with jitter (half fixed, half random); `None` past the give-up age.
    fn retry_at(&mut self, m: &OutboxMessage, now: i64) -> Option<i64> {
        let retry = &self.config.retry;
        if now - m.message.not_before_ms >= ms(retry.give_up_after) {
            return None;
        }
        let exp = ms(retry.initial).saturating_mul(1i64 << m.attempts.min(30));
        let delay = exp.min(ms(retry.max)).max(1);
        let half = delay / 2;
        Some(now + half + self.rng.i64(0..=delay - half))
    }

    /// The chart of the first firing alert (else the first alert) of an alert payload.
    fn chart(&self, payload: &Value, now: i64) -> Option<Vec<u8>> {
        let alert = payload["firing"]
            .as_array()
            .and_then(|a| a.first())
            .or_else(|| payload["resolved"].as_array().and_then(|a| a.first()))?;
        let rule = alert["rule"].as_str()?;
        let labels: BTreeMap<String, String> = alert["labels"]
            .as_object()?
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
        self.charts.png(&self.store, rule, &labels, now)
    }

    #[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
    fn send(
        &self,
        channel: &str,
        kind: &str,
        recipient: &str,
        rendered: &Rendered,
        payload: &Value,
        ids: &[u64],
        chart: Option<Vec<u8>>,
    ) -> Result<String, String> {
        match channel {
            "mail" => {
                let mailer = self.mailer.as_ref().map_err(Clone::clone)?;
                let host = self
                    .mail_config
                    .endpoint()
                    .map(|e| e.host)
                    .unwrap_or_default();
                let email = Email {
                    to: vec![recipient.to_string()],
                    subject: rendered.subject.clone(),
                    text: rendered.text.clone(),
                    html: rendered.html.clone(),
                    attachments: Vec::new(),
                    inline: chart
                        .map(|bytes| FileAttachment {
                            name: CHART_CID.into(),
                            content_type: "image/png".into(),
                            bytes,
                        })
                        .into_iter()
                        .collect(),
                    // Stable across retries, so a receiver can drop a repeat.
                    message_id: Some(format!(
                        "<tocsin.{}.{}@{}>",
                        ids.first().copied().unwrap_or(0),
                        ids.len(),
                        if host.is_empty() { "tocsin" } else { &host }
                    )),
                };
                mailer.send(&email).map_err(|e| e.to_string())
            }
            "webhook" => {
                let receiver = payload["receiver"].as_str().unwrap_or("");
                let r = self.receivers.iter().find(|r| r.name == receiver);
                let format = r.map_or("generic", |r| r.format.as_str());
                let key = r.map_or("", |r| r.routing_key.0.as_str());
                let bodies =
                    crate::webhook::bodies(format, key, kind, rendered, payload, &self.site);
                crate::webhook::post(recipient, &bodies, self.config.timeout)
            }
            "pipe" => {
                let input = json!({
                    "kind": kind,
                    "subject": rendered.subject,
                    "text": rendered.text,
                    "payload": payload,
                    "ids": ids,
                });
                crate::command::run(recipient, input.to_string().as_bytes(), self.config.timeout)
            }
            other => SendResult::Err(format!("no deliverer for channel `{other}`")),
        }
    }
}

/// One payload for several alert messages: each alert once, in its newest state.
fn digest(messages: &[OutboxMessage]) -> Value {
    let mut order: Vec<String> = Vec::new();
    let mut latest: HashMap<String, Value> = HashMap::new();
    for m in messages {
        let p = &m.message.payload;
        for a in p["firing"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(p["resolved"].as_array().into_iter().flatten())
        {
            let id = a["id"].as_str().unwrap_or("").to_string();
            if latest.insert(id.clone(), a.clone()).is_none() {
                order.push(id);
            }
        }
    }
    let alerts: Vec<Value> = order.iter().filter_map(|id| latest.remove(id)).collect();
    let (firing, resolved): (Vec<Value>, Vec<Value>) =
        alerts.into_iter().partition(|a| a["status"] == "firing");
    json!({
        "receiver": messages[0].message.payload["receiver"],
        "status": if firing.is_empty() { "resolved" } else { "firing" },
        "group_labels": {},
        "firing": firing,
        "resolved": resolved,
        "vars": { "message_count": messages.len() },
    })
}

/// Run a deliverer per channel until `stop`; each pass every `interval`.
pub fn spawn(
    make: impl Fn() -> Deliverer,
    channels: &[&str],
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let mut handles = Vec::new();
    for channel in channels {
        let mut d = make();
        let channel = channel.to_string();
        let stop = stop.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("deliver-{channel}"))
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match d.pass(&channel, now_ms()) {
                            Ok(r) if r != PassReport::default() => {
                                tracing::info!(channel = %channel, delivered = r.delivered, folded = r.folded, retried = r.retried, failed = r.failed, postponed = r.postponed, "notifications")
                            }
                            Ok(_) => {}
                            Err(e) => tracing::error!(channel = %channel, error = %e, "outbox pass failed"),
                        }
                        std::thread::sleep(interval);
                    }
                })?,
        );
    }
    Ok(handles)
}
