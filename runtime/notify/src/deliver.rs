//! Delivery from the durable outbox. One thread per channel (mail, webhook, pipe) takes
//! the channel's due messages, renders them, sends them and records the outcome: the
//! server's acceptance (so a restart never sends twice), or a retry with exponential
//! backoff and jitter, or — for a permanent refusal, or past `retry.give_up_after` — a
//! failure. Messages are handled per (receiver, recipient), oldest first. A destination
//! that fails is paused until its retry, so one dead server costs one attempt, not one per
//! waiting message. Each (receiver, recipient) gets at most `rate_limit.max` messages per
//! `rate_limit.per`; past it, its waiting alert messages are folded into one digest and
//! other kinds wait for the window — nothing is dropped.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tocsin_alerting::Receiver;
use tocsin_store::{OutboxMessage, Store, StoreError};

use crate::chart::ChartRules;
use crate::config::{MailConfig, NotifyConfig};
use crate::mail::Mailer;
use crate::render::Templates;
use crate::send::{CHART_CID, Channels, Failure, Outgoing, redact};
use crate::vars::vars;

/// Kinds that may be folded into a digest (account messages never are).
const FOLDABLE: [&str; 1] = ["server_alert"];

/// How the reply recorded for a digest's messages starts.
const DIGEST_REPLY: &str = "digest of ";

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Messages accepted by their server (folded ones included).
    pub delivered: usize,
    /// Of those, messages that went out inside a digest.
    pub folded: usize,
    /// Attempts that failed and will be retried.
    pub retried: usize,
    /// Messages given up, refused for good, or refused by configuration.
    pub failed: usize,
    /// Messages held back by the rate limit or a paused destination.
    pub postponed: usize,
}

/// Rate windows: delivery times per (receiver, recipient).
type SentLog = HashMap<(String, String), VecDeque<i64>>;

/// Delivers one channel's messages.
pub struct Deliverer {
    store: Arc<Store>,
    templates: Templates,
    charts: ChartRules,
    config: NotifyConfig,
    mail_config: MailConfig,
    receivers: Vec<Receiver>,
    channels: Channels,
    /// Read from the store on the first pass.
    sent: Option<SentLog>,
    /// Destinations (the SMTP server, a URL, a command) paused until a time, after a failure.
    paused: HashMap<String, i64>,
    /// Messages a server accepted whose record failed: recorded before anything else is
    /// sent, and never sent again meanwhile.
    unrecorded: Vec<(Vec<u64>, i64, String)>,
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

fn receiver_of(m: &OutboxMessage) -> &str {
    m.message.payload["receiver"].as_str().unwrap_or("")
}

impl Deliverer {
    /// Sign the chart links of chat messages with `key`.
    pub fn with_chart_key(mut self, key: crate::chart_link::ChartKey) -> Deliverer {
        self.channels.site.chart_key = key;
        self
    }

    /// A deliverer over `store`.
    pub fn new(
        store: Arc<Store>,
        templates: Templates,
        charts: ChartRules,
        config: NotifyConfig,
        mail_config: MailConfig,
        receivers: Vec<Receiver>,
    ) -> Deliverer {
        let channels = Channels {
            mailer: Mailer::new(&mail_config).map_err(|e| e.to_string()),
            mail_host: mail_config.endpoint().map(|e| e.host).unwrap_or_default(),
            site: config.site(),
            timeout: config.timeout,
        };
        Deliverer {
            store,
            templates,
            charts,
            config,
            mail_config,
            receivers,
            channels,
            sent: None,
            paused: HashMap::new(),
            unrecorded: Vec::new(),
            rng: fastrand::Rng::new(),
        }
    }

    /// The rate windows as the store remembers them (after a restart, too).
    fn seed_rate_windows(&self, now: i64) -> Result<SentLog, StoreError> {
        let since = now - ms(self.config.rate_limit.per);
        let mut sent = SentLog::new();
        // A digest marks all its messages with the same reply: count it once.
        let mut digests = std::collections::HashSet::new();
        for m in self.store.recent_messages(2000)? {
            let Some(at) = m.delivered_ms.filter(|t| *t > since) else {
                continue;
            };
            let reply = m.server_reply.clone().unwrap_or_default();
            if reply.starts_with(DIGEST_REPLY) && !digests.insert(reply) {
                continue;
            }
            let key = (receiver_of(&m).to_string(), m.message.recipient.clone());
            sent.entry(key).or_default().push_back(at);
        }
        for times in sent.values_mut() {
            times.make_contiguous().sort_unstable();
        }
        Ok(sent)
    }

    /// One pass over `channel`'s due messages at `now` (the clock moves on from `now` as
    /// the pass takes time).
    pub fn pass(&mut self, channel: &str, now: i64) -> Result<PassReport, StoreError> {
        let started = Instant::now();
        let clock = move || now.saturating_add(ms(started.elapsed()));
        let mut report = PassReport::default();
        // Acceptances not yet recorded come first: nothing else goes out until they are.
        while let Some((ids, at, reply)) = self.unrecorded.first().cloned() {
            match self.store.mark_all_delivered(&ids, at, &reply) {
                Ok(()) | Err(StoreError::Refused(_)) => {
                    self.unrecorded.remove(0);
                }
                Err(e) => return Err(e),
            }
        }
        if self.sent.is_none() {
            self.sent = Some(self.seed_rate_windows(now)?);
        }
        let mut groups: BTreeMap<(String, String), Vec<OutboxMessage>> = BTreeMap::new();
        for m in self.store.due_messages_on(channel, now, 1000)? {
            if let Some(reason) = self.refusal(&m) {
                tracing::warn!(id = m.id, recipient = %redact(&m.message.recipient), "not sent: {reason}");
                self.store.mark_attempt_failed(m.id, &reason, None)?;
                report.failed += 1;
                continue;
            }
            let key = (receiver_of(&m).to_string(), m.message.recipient.clone());
            groups.entry(key).or_default().push(m);
        }
        let window = ms(self.config.rate_limit.per);
        let max = usize::try_from(self.config.rate_limit.max).unwrap_or(usize::MAX);
        // Groups by the age of their oldest message, so no recipient always goes first.
        let mut groups: Vec<((String, String), Vec<OutboxMessage>)> = groups.into_iter().collect();
        for (_, messages) in &mut groups {
            messages.sort_by_key(|m| m.id);
        }
        groups.sort_by_key(|(_, messages)| messages.first().map_or(0, |m| m.id));
        for (key, messages) in groups {
            // Paused: the destination for everyone, or this recipient alone.
            let destination = if channel == "mail" {
                "mail".to_string()
            } else {
                format!("{channel}:{}", key.1)
            };
            let recipient_pause = format!("{channel}:{}:{}", key.0, key.1);
            let times = self
                .sent
                .get_or_insert_default()
                .entry(key.clone())
                .or_default();
            while times.front().is_some_and(|t| *t <= now - window) {
                times.pop_front();
            }
            let room = max.saturating_sub(times.len());
            let window_frees = times.front().map_or(now, |t| t + window);
            let (alerts, others): (Vec<_>, Vec<_>) = messages
                .into_iter()
                .partition(|m| FOLDABLE.contains(&m.message.kind.as_str()));
            // Units of one slot each: every message when all fit; else the alerts folded
            // into one digest and the other messages one by one, oldest first.
            let mut units: Vec<Vec<OutboxMessage>> = Vec::new();
            if alerts.len() + others.len() <= room {
                units.extend(alerts.into_iter().map(|m| vec![m]));
            } else if !alerts.is_empty() {
                units.push(alerts);
            }
            units.extend(others.into_iter().map(|m| vec![m]));
            units.sort_by_key(|u| u.first().map_or(0, |m| m.id));
            let held: Vec<u64> = units
                .iter()
                .skip(room)
                .flat_map(|u| u.iter().map(|m| m.id))
                .collect();
            if !held.is_empty() {
                self.store.reschedule(&held, window_frees.max(now + 1))?;
                report.postponed += held.len();
            }
            for batch in units.into_iter().take(room) {
                let paused = [&destination, &recipient_pause]
                    .iter()
                    .filter_map(|k| self.paused.get(*k).copied())
                    .max()
                    .filter(|u| *u > clock());
                if let Some(until) = paused {
                    let ids: Vec<u64> = batch.iter().map(|m| m.id).collect();
                    self.store.reschedule(&ids, until)?;
                    report.postponed += ids.len();
                    continue;
                }
                let pauses = [destination.as_str(), recipient_pause.as_str()];
                self.send_batch(channel, &key, pauses, &batch, clock(), &mut report)?;
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
        let name = receiver_of(m);
        let Some(receiver) = self.receivers.iter().find(|r| r.name == name) else {
            return Some(format!("receiver `{name}` is no longer configured"));
        };
        if receiver.channel != m.message.channel
            || !(receiver.to.contains(&m.message.recipient)
                || receiver.to.is_empty() && m.message.recipient.is_empty())
        {
            return Some(format!(
                "receiver `{name}` no longer sends to this recipient on {}",
                m.message.channel
            ));
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

    /// Send `batch` (one message, or several as a digest) and record the outcome.
    fn send_batch(
        &mut self,
        channel: &str,
        key: &(String, String),
        pauses: [&str; 2],
        batch: &[OutboxMessage],
        now: i64,
        report: &mut PassReport,
    ) -> Result<(), StoreError> {
        let Some(first) = batch.first() else {
            return Ok(());
        };
        let recipient = key.1.as_str();
        let (kind, payload) = if batch.len() == 1 {
            (first.message.kind.clone(), first.message.payload.clone())
        } else {
            ("alert_digest".to_string(), digest(batch))
        };
        let mut v = vars(&kind, recipient, &payload, &self.channels.site, now);
        // Mail shows the chart inline; webhooks link to it (see `webhook::bodies`).
        let chart = (channel == "mail")
            .then(|| self.chart(&payload, now))
            .flatten();
        if chart.is_some() {
            v.push(("chart_cid".into(), CHART_CID.into()));
        }
        let rendered = self.templates.render(&kind, &v);
        let ids: Vec<u64> = batch.iter().map(|m| m.id).collect();
        let receiver = self.receivers.iter().find(|r| r.name == key.0);
        let outgoing = Outgoing {
            kind: &kind,
            receiver,
            recipient,
            rendered: &rendered,
            payload: &payload,
            ids: &ids,
            chart,
        };
        let started = Instant::now();
        let sent = self.channels.send(channel, outgoing);
        // Outcomes are timed when the send returned (a timeout can take long).
        let now = now.saturating_add(ms(started.elapsed()));
        match sent {
            Ok(reply) => {
                for p in pauses {
                    self.paused.remove(p);
                }
                let reply = if ids.len() > 1 {
                    format!("{DIGEST_REPLY}{} (with #{}): {reply}", ids.len(), ids[0])
                } else {
                    reply
                };
                self.sent
                    .get_or_insert_default()
                    .entry(key.clone())
                    .or_default()
                    .push_back(now);
                report.delivered += ids.len();
                if ids.len() > 1 {
                    report.folded += ids.len();
                }
                if let Err(e) = self.store.mark_all_delivered(&ids, now, &reply) {
                    // Accepted but not recorded: keep it, so it is recorded, not resent.
                    self.unrecorded.push((ids, now, reply));
                    return Err(e);
                }
            }
            Err(failure) => {
                let error = failure.text().to_string();
                // One retry time for the batch, so it stays together.
                let attempts = batch.iter().map(|m| m.attempts).max().unwrap_or(0);
                let (retry, pause) = match failure {
                    Failure::Permanent(_) => (None, None),
                    Failure::Retry(_) => (Some(self.retry_at(attempts, now)), Some(pauses[0])),
                    Failure::RetryRecipient(_) => {
                        (Some(self.retry_at(attempts, now)), Some(pauses[1]))
                    }
                };
                if let (Some(at), Some(p)) = (retry, pause) {
                    self.paused.insert(p.to_string(), at);
                }
                let give_up = ms(self.config.retry.give_up_after);
                for m in batch {
                    let retry = retry.filter(|_| now - m.message.not_before_ms < give_up);
                    if retry.is_none() {
                        tracing::error!(id = m.id, channel, error = %error, "notification not delivered, given up");
                        report.failed += 1;
                    } else {
                        report.retried += 1;
                    }
                    self.store.mark_attempt_failed(m.id, &error, retry)?;
                }
                if retry.is_some() {
                    tracing::warn!(channel, recipient = %redact(recipient), error = %error, "delivery failed; will retry");
                }
            }
        }
        Ok(())
    }

    /// Exponential backoff with jitter: between half and all of `initial × 2^attempts`,
    /// capped at `max`.
    fn retry_at(&mut self, attempts: u32, now: i64) -> i64 {
        let retry = &self.config.retry;
        let exp = ms(retry.initial).saturating_mul(1i64 << attempts.min(30));
        let delay = exp.min(ms(retry.max)).max(1);
        let half = delay / 2;
        now + half + self.rng.i64(0..=delay - half)
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
}

/// One payload for several alert messages (given oldest first): each alert once, in its
/// newest state.
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
        "receiver": messages.first().map(receiver_of).unwrap_or(""),
        "status": if firing.is_empty() { "resolved" } else { "firing" },
        "group_labels": {},
        "firing": firing,
        "resolved": resolved,
        "vars": { "message_count": messages.len() },
    })
}

/// Run a deliverer per channel until `stop`; each pass every `interval`. A pass that
/// panics is logged and the thread goes on.
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
                        let pass = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            d.pass(&channel, now_ms())
                        }));
                        match pass {
                            Ok(Ok(r)) if r != PassReport::default() => {
                                tracing::info!(channel = %channel, delivered = r.delivered, folded = r.folded, retried = r.retried, failed = r.failed, postponed = r.postponed, "notifications")
                            }
                            Ok(Ok(_)) => {}
                            Ok(Err(e)) => tracing::error!(channel = %channel, error = %e, "outbox pass failed"),
                            Err(_) => tracing::error!(channel = %channel, "outbox pass panicked; going on"),
                        }
                        std::thread::sleep(interval);
                    }
                })?,
        );
    }
    Ok(handles)
}
