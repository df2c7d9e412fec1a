//! The router: from the alert records in the store to messages in the outbox, with
//! Alertmanager's semantics. Firing alerts (and rules in `no_data`/`error`) are muted by
//! active silences, maintenance windows and inhibition, routed to a receiver, and grouped
//! by the route's `group_by` labels. A group is notified `group_wait` after it appears,
//! then at most every `group_interval` while it changes (alerts join, or resolve), and every
//! `repeat_interval` while it fires unchanged. What each group last sent is kept in the
//! store and written in the same transaction as the messages, so a restart neither repeats
//! nor loses a notification.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tocsin_store::{AlertPhase, AlertRecord, NewMessage, Selector, Store, StoreError};

use crate::lifecycle::RULE_KEY;
use crate::routing::{RoutingConfig, alert_key, matchers};

/// What a group last sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct GroupState {
    created_ms: i64,
    last_flush_ms: Option<i64>,
    /// Receiver and group labels, to tell a group whose alerts all vanished.
    receiver: String,
    labels: Vec<(String, String)>,
    /// The firing alerts of the last notification, by id.
    sent: BTreeMap<String, SentAlert>,
}

/// What was said about a firing alert: enough to say it resolved if it vanishes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct SentAlert {
    rule: String,
    labels: Vec<(String, String)>,
    severity: String,
    summary: String,
}

/// An alert as the router sees it.
#[derive(Debug, Clone)]
struct Candidate<'a> {
    id: String,
    labels: Vec<(String, String)>,
    firing: bool,
    record: &'a AlertRecord,
}

/// Alerts notified together.
struct Group<'a> {
    receiver: String,
    labels: Vec<(String, String)>,
    alerts: Vec<&'a Candidate<'a>>,
}

/// What a tick did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TickReport {
    /// Messages put in the outbox.
    pub messages: usize,
    /// Alerts muted by silences or maintenance.
    pub silenced: usize,
    /// Alerts muted by inhibition.
    pub inhibited: usize,
    /// Firing alerts by severity (`info`, `warning`, `critical` always present), muted or
    /// not: what the fleet's health counts.
    pub firing: BTreeMap<String, usize>,
    /// Every firing and resolved alert of rules not in shadow mode, with its full labels
    /// (rule labels, `alertname`, `severity`), muted or not: what an external
    /// Alertmanager is told.
    pub alerts: Vec<AlertView>,
}

/// An alert as another system sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertView {
    /// Labels, sorted, with `alertname` and `severity`.
    pub labels: Vec<(String, String)>,
    /// Annotations (summary, description, ...).
    pub annotations: Vec<(String, String)>,
    /// Firing (or in `no_data`/`error`, which notify like firing); else resolved.
    pub firing: bool,
    /// When it began (firing time, else when the condition started).
    pub starts_ms: i64,
    /// When it resolved.
    pub resolved_ms: Option<i64>,
}

struct CompiledRoute {
    matchers: Option<Selector>,
    receiver: String,
    group_by: Vec<String>,
    continue_: bool,
}

/// The router over a configuration.
pub struct Router {
    config: RoutingConfig,
    routes: Vec<CompiledRoute>,
    inhibit: Vec<(Selector, Selector, Vec<String>)>,
    maintenance: Vec<Selector>,
    rule_labels: BTreeMap<String, Vec<(String, String)>>,
    shadow: BTreeSet<String>,
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn label<'a>(labels: &'a [(String, String)], name: &str) -> &'a str {
    labels
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

impl Router {
    /// A router for `config` (validated here); `rule_labels` are each rule's `[rule.labels]`.
    pub fn new(
        config: RoutingConfig,
        rule_labels: BTreeMap<String, Vec<(String, String)>>,
    ) -> Result<Router, String> {
        config.validate()?;
        let mut routes = Vec::new();
        for r in &config.routes {
            routes.push(CompiledRoute {
                matchers: Some(matchers(&r.matchers)?),
                receiver: r.receiver.clone(),
                group_by: r
                    .group_by
                    .clone()
                    .unwrap_or_else(|| config.group_by.clone()),
                continue_: r.continue_,
            });
        }
        let mut inhibit = Vec::new();
        for i in &config.inhibit {
            inhibit.push((matchers(&i.source)?, matchers(&i.target)?, i.equal.clone()));
        }
        let maintenance = config
            .maintenance
            .iter()
            .map(|w| matchers(&w.matchers))
            .collect::<Result<_, _>>()?;
        Ok(Router {
            config,
            routes,
            inhibit,
            maintenance,
            rule_labels,
            shadow: BTreeSet::new(),
        })
    }

    /// Set the `[rule.labels]` of `rule` and whether it is in shadow mode (recorded,
    /// never notified); called when a version is deployed.
    pub fn set_rule(&mut self, rule: &str, labels: Vec<(String, String)>, shadow: bool) {
        self.rule_labels.insert(rule.to_string(), labels);
        if shadow {
            self.shadow.insert(rule.to_string());
        } else {
            self.shadow.remove(rule);
        }
    }

    /// Forget a removed rule's labels and mode.
    pub fn forget_rule(&mut self, rule: &str) {
        self.rule_labels.remove(rule);
        self.shadow.remove(rule);
    }

    fn candidates<'a>(&self, records: &'a [AlertRecord]) -> Vec<Candidate<'a>> {
        let mut out = Vec::new();
        for r in records.iter().filter(|r| !self.shadow.contains(&r.rule)) {
            let (firing, state) = match r.phase {
                AlertPhase::Firing => (true, None),
                AlertPhase::Resolved => (false, None),
                AlertPhase::NoData => (true, Some("no_data")),
                AlertPhase::Error => (true, Some("error")),
                AlertPhase::Pending => continue,
            };
            let mut labels = r.labels.clone();
            labels.retain(|(k, _)| k != "alertname" && k != "severity");
            labels.push(("alertname".into(), r.rule.clone()));
            labels.push(("severity".into(), r.severity.clone()));
            if let Some(s) = state {
                labels.push(("alertstate".into(), s.into()));
            }
            for (k, v) in self.rule_labels.get(&r.rule).into_iter().flatten() {
                if !labels.iter().any(|(l, _)| l == k) {
                    labels.push((k.clone(), v.clone()));
                }
            }
            labels.sort();
            out.push(Candidate {
                id: format!(
                    "{}/{}",
                    r.rule,
                    if r.key.is_empty() { RULE_KEY } else { &r.key }
                ),
                labels,
                firing,
                record: r,
            });
        }
        out
    }

    /// One pass at `now`: notify the groups that are due. Cheap when nothing is due.
    pub fn tick(&self, store: &Store, now: i64) -> Result<TickReport, StoreError> {
        let records = store.all_alerts()?;
        let silences: Vec<Selector> = store
            .silences()?
            .into_iter()
            .filter(|s| s.starts_ms <= now && now < s.ends_ms)
            .filter_map(|s| matchers(&s.matchers).ok())
            .collect();
        let windows: Vec<&Selector> = self
            .config
            .maintenance
            .iter()
            .zip(&self.maintenance)
            .filter(|(w, _)| w.active(now))
            .map(|(_, m)| m)
            .collect();
        let mut report = TickReport::default();
        for severity in ["info", "warning", "critical"] {
            report.firing.insert(severity.to_string(), 0);
        }
        for r in records.iter().filter(|r| r.phase == AlertPhase::Firing) {
            *report.firing.entry(r.severity.clone()).or_default() += 1;
        }
        let candidates = self.candidates(&records);
        report.alerts = candidates
            .iter()
            .map(|c| AlertView {
                labels: c.labels.clone(),
                annotations: c.record.annotations.clone(),
                firing: c.firing,
                starts_ms: c.record.fired_at_ms.unwrap_or(c.record.active_since_ms),
                resolved_ms: c.record.resolved_at_ms.filter(|_| !c.firing),
            })
            .collect();
        let key_of = |c: &Candidate| alert_key(&c.record.rule, &c.labels);
        // Inhibition looks at firing alerts before silencing, as Alertmanager does.
        let sources: Vec<&Candidate> = candidates.iter().filter(|c| c.firing).collect();
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        // Still firing but silenced or inhibited: not notified, and not "resolved" either.
        let mut muted: BTreeSet<String> = BTreeSet::new();
        for c in &candidates {
            let key = key_of(c);
            if silences.iter().any(|s| s.matches(&key)) || windows.iter().any(|s| s.matches(&key)) {
                report.silenced += 1;
                muted.insert(c.id.clone());
                continue;
            }
            let inhibited = self.inhibit.iter().any(|(src, target, equal)| {
                target.matches(&key)
                    && sources.iter().any(|s| {
                        s.id != c.id
                            && src.matches(&key_of(s))
                            && equal
                                .iter()
                                .all(|l| label(&s.labels, l) == label(&c.labels, l))
                    })
            });
            if inhibited {
                report.inhibited += 1;
                muted.insert(c.id.clone());
                continue;
            }
            let mut matched = false;
            for (i, r) in self.routes.iter().enumerate() {
                if r.matchers.as_ref().is_some_and(|m| m.matches(&key)) {
                    matched = true;
                    self.group(&mut groups, i.to_string(), &r.receiver, &r.group_by, c);
                    if !r.continue_ {
                        break;
                    }
                }
            }
            if !matched {
                self.group(
                    &mut groups,
                    "root".into(),
                    &self.config.receiver,
                    &self.config.group_by,
                    c,
                );
            }
        }

        let mut states: BTreeMap<String, GroupState> = BTreeMap::new();
        for (k, bytes) in store.route_groups()? {
            match serde_json::from_slice(&bytes) {
                Ok(s) => {
                    states.insert(k, s);
                }
                Err(e) => tracing::warn!(group = %k, error = %e, "unreadable group state dropped"),
            }
        }
        let mut updates: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        let mut messages = Vec::new();
        let mut notified: Vec<AlertRecord> = Vec::new();
        let encode =
            |s: &GroupState| serde_json::to_vec(s).map_err(|e| StoreError::Db(e.to_string()));
        // Groups with alerts now, then groups whose alerts all vanished since they were
        // notified (resolved records expired, rule-level records cleared, rule removed).
        let mut keys: Vec<String> = groups.keys().cloned().collect();
        keys.extend(states.keys().filter(|k| !groups.contains_key(*k)).cloned());
        for gkey in keys {
            let empty = Vec::new();
            let group = groups.get(&gkey);
            let alerts: &Vec<&Candidate> = group.map_or(&empty, |g| &g.alerts);
            let firing: BTreeMap<String, &Candidate> = alerts
                .iter()
                .filter(|c| c.firing)
                .map(|c| (c.id.clone(), *c))
                .collect();
            let Some(state) = states.remove(&gkey).or_else(|| {
                let g = group?;
                (!firing.is_empty()).then(|| GroupState {
                    created_ms: now,
                    receiver: g.receiver.clone(),
                    labels: g.labels.clone(),
                    ..GroupState::default()
                })
            }) else {
                continue;
            };
            // Sent as firing, not firing now, not merely muted: resolved.
            let resolved: Vec<Value> = state
                .sent
                .iter()
                .filter(|(id, _)| !firing.contains_key(*id) && !muted.contains(*id))
                .map(|(id, sent)| match alerts.iter().find(|c| &c.id == id) {
                    Some(c) => describe(c),
                    None => vanished(id, sent, now),
                })
                .collect();
            let severity_changed = firing.iter().any(|(id, c)| {
                state
                    .sent
                    .get(id)
                    .is_some_and(|s| s.severity != c.record.severity)
            });
            let new_firing = firing.keys().any(|id| !state.sent.contains_key(id));
            let changed = new_firing || severity_changed || !resolved.is_empty();
            let due = match state.last_flush_ms {
                None => state.created_ms + ms(self.config.group_wait),
                Some(t) if changed => t + ms(self.config.group_interval),
                Some(t) => t + ms(self.config.repeat_interval),
            };
            let still_muted = state.sent.keys().any(|id| muted.contains(id));
            if firing.is_empty() && resolved.is_empty() {
                // Nothing to say; keep the state only while its alerts are muted.
                if !still_muted {
                    updates.push((gkey.clone(), None));
                }
                continue;
            }
            if now < due {
                if state.last_flush_ms.is_none() && state.created_ms == now {
                    updates.push((gkey.clone(), Some(encode(&state)?)));
                }
                continue;
            }
            let firing_values: Vec<Value> = firing.values().map(|c| describe(c)).collect();
            let payload = json!({
                "receiver": state.receiver,
                "status": if firing.is_empty() { "resolved" } else { "firing" },
                "group_labels": state.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
                "firing": firing_values,
                "resolved": resolved,
            });
            let target = self
                .config
                .receivers
                .iter()
                .find(|r| r.name == state.receiver);
            let (channel, to) = match target {
                Some(r) if !r.to.is_empty() => (r.channel.clone(), r.to.clone()),
                Some(r) => (r.channel.clone(), vec![String::new()]),
                None => ("log".to_string(), vec![String::new()]),
            };
            for recipient in to {
                messages.push(NewMessage {
                    channel: channel.clone(),
                    recipient,
                    kind: "server_alert".into(),
                    payload: payload.clone(),
                    not_before_ms: now,
                });
            }
            notified.extend(firing.values().map(|c| AlertRecord {
                last_notified_ms: Some(now),
                ..c.record.clone()
            }));
            // Muted alerts that were sent stay "sent": a silence ending re-notifies only at
            // the next repeat, as Alertmanager's notification log does.
            let mut sent: BTreeMap<String, SentAlert> = state
                .sent
                .iter()
                .filter(|(id, _)| muted.contains(*id))
                .map(|(id, s)| (id.clone(), s.clone()))
                .collect();
            for (id, c) in &firing {
                sent.insert(
                    id.clone(),
                    SentAlert {
                        rule: c.record.rule.clone(),
                        labels: c.labels.clone(),
                        severity: c.record.severity.clone(),
                        summary: annotation(c.record, "summary").to_string(),
                    },
                );
            }
            let next = GroupState {
                last_flush_ms: Some(now),
                sent,
                ..state
            };
            updates.push((
                gkey.clone(),
                if next.sent.is_empty() {
                    None
                } else {
                    Some(encode(&next)?)
                },
            ));
        }
        if !updates.is_empty() || !messages.is_empty() {
            report.messages = messages.len();
            store.commit_flush(&updates, &messages)?;
        }
        if !notified.is_empty() {
            // Cosmetic (the group state is what prevents repeats): a cheap commit. The
            // scheduler thread runs rules and the router in turn, so the records read at
            // the start of this tick are still the current ones.
            store.save_alerts(&notified, &[], false)?;
        }
        Ok(report)
    }

    fn group<'a>(
        &self,
        groups: &mut BTreeMap<String, Group<'a>>,
        route: String,
        receiver: &str,
        group_by: &[String],
        c: &'a Candidate<'a>,
    ) {
        let group_labels: Vec<(String, String)> = group_by
            .iter()
            .map(|l| (l.clone(), label(&c.labels, l).to_string()))
            .collect();
        let values: Vec<String> = group_labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        let key = format!("{receiver}|{route}|{}", values.join(","));
        groups
            .entry(key)
            .or_insert_with(|| Group {
                receiver: receiver.to_string(),
                labels: group_labels,
                alerts: Vec::new(),
            })
            .alerts
            .push(c);
    }
}

fn annotation<'a>(r: &'a AlertRecord, name: &str) -> &'a str {
    label(&r.annotations, name)
}

/// An alert as a notification describes it.
fn describe(c: &Candidate) -> Value {
    let r = c.record;
    json!({
        "id": c.id,
        "rule": r.rule,
        "status": if c.firing { "firing" } else { "resolved" },
        "labels": c.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
        "severity": r.severity,
        "value": if r.value.is_finite() { json!(r.value) } else { json!(r.value.to_string()) },
        "summary": annotation(r, "summary"),
        "description": annotation(r, "description"),
        "annotations": r.annotations.iter().cloned().collect::<BTreeMap<_, _>>(),
        "started_ms": r.active_since_ms,
        "fired_ms": r.fired_at_ms,
        "resolved_ms": r.resolved_at_ms,
    })
}

/// A notified alert whose record is gone, described from what was sent.
fn vanished(id: &str, sent: &SentAlert, now: i64) -> Value {
    json!({
        "id": id,
        "rule": sent.rule,
        "status": "resolved",
        "labels": sent.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
        "severity": sent.severity,
        "summary": sent.summary,
        "resolved_ms": now,
    })
}

/// Deliver due messages of the `log` channel into the runtime's log and mark them
/// delivered. (Mail, webhooks, MQTT and pipes have their own deliverers.)
pub fn deliver_log_channel(store: &Store, now: i64) -> Result<usize, StoreError> {
    let mut n = 0;
    for m in store.due_messages_on("log", now, 100)? {
        let p = &m.message.payload;
        let summaries: Vec<&str> = p["firing"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(p["resolved"].as_array().into_iter().flatten())
            .filter_map(|a| a["summary"].as_str())
            .collect();
        tracing::warn!(
            receiver = %p["receiver"].as_str().unwrap_or(""),
            status = %p["status"].as_str().unwrap_or(""),
            firing = p["firing"].as_array().map_or(0, Vec::len),
            resolved = p["resolved"].as_array().map_or(0, Vec::len),
            "notification: {}",
            summaries.join("; ")
        );
        store.mark_delivered(m.id, now, "logged")?;
        n += 1;
    }
    Ok(n)
}
