//! The alert lifecycle as a pure function: previous records + what an evaluation found →
//! records to write, keys to delete, and events to route. Prometheus' semantics: a new
//! condition is `pending` until it has held for `for`, then `firing`; a firing alert whose
//! condition stopped holding keeps firing for `keep_firing_for`, then `resolved`; a pending
//! one that stops holding is dropped. Hysteresis lives in the guest, which is told which
//! alerts are active. A rule whose inputs are missing (`no_data`) or whose guest failed
//! (`error`) gets one rule-level record; its instance alerts keep their state untouched, so
//! a blip neither resolves nor re-fires anything.

use std::collections::{BTreeMap, BTreeSet};

use tocsin_store::{AlertPhase, AlertRecord};

/// Key of a rule's own record (no-data, error).
pub const RULE_KEY: &str = "__rule__";
/// How long a resolved alert stays listed.
pub const RESOLVED_KEEP_MS: i64 = 15 * 60_000;

/// A rule's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timing {
    /// Pending duration before firing (ms).
    pub for_ms: i64,
    /// Firing continues this long after the condition stops (ms).
    pub keep_firing_for_ms: i64,
}

/// A condition that holds now, as the guest reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The alert's identifying labels.
    pub labels: Vec<(String, String)>,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// The value that crossed the threshold.
    pub value: f64,
    /// Summary, description and the rest.
    pub annotations: Vec<(String, String)>,
}

/// What one evaluation found.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The guest ran; these conditions hold (none: all clear).
    Conditions(Vec<Condition>),
    /// The rule selects series and none exist.
    NoData,
    /// The guest failed (trap, deadline, memory, error value).
    Error(String),
}

/// What changed, for routing and notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An alert began firing (or its severity rose while firing).
    Firing,
    /// A firing alert resolved.
    Resolved,
    /// The rule lost its inputs.
    NoData,
    /// The rule's guest began failing.
    Error,
}

impl EventKind {
    /// Its name in the API and the history: `firing`, `resolved`, `no_data`, `error`.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Firing => "firing",
            EventKind::Resolved => "resolved",
            EventKind::NoData => "no_data",
            EventKind::Error => "error",
        }
    }
}

/// A change of an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The alert after the change.
    pub alert: AlertRecord,
}

/// The result of a lifecycle step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    /// Records to write.
    pub put: Vec<AlertRecord>,
    /// Keys to delete.
    pub delete: Vec<String>,
    /// Changes to route.
    pub events: Vec<Event>,
    /// Whether anything a restart must see changed (a record appeared, went, or changed
    /// phase or severity); otherwise only values and times moved.
    pub material: bool,
}

/// The canonical key of a label set: `name="value"` pairs sorted by name, comma separated.
pub fn alert_key(labels: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = labels.iter().collect();
    sorted.sort();
    let parts: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    parts.join(",")
}

fn rank(severity: &str) -> u8 {
    match severity {
        "critical" => 2,
        "warning" => 1,
        _ => 0,
    }
}

/// One step of `rule`'s lifecycle at `now`.
pub fn step(rule: &str, prev: &[AlertRecord], outcome: &Outcome, now: i64, timing: Timing) -> Step {
    let mut out = Step::default();
    let rule_record = prev.iter().find(|r| r.key == RULE_KEY);
    match outcome {
        Outcome::Conditions(conditions) => {
            if rule_record.is_some() {
                out.delete.push(RULE_KEY.to_string());
            }
            let by_key: BTreeMap<&str, &AlertRecord> =
                prev.iter().map(|r| (r.key.as_str(), r)).collect();
            // The newest condition wins when a guest repeats a key.
            let mut current: BTreeMap<String, &Condition> = BTreeMap::new();
            for c in conditions {
                current.insert(alert_key(&c.labels), c);
            }
            for (key, c) in &current {
                let (mut r, fresh) = match by_key.get(key.as_str()) {
                    Some(r) if matches!(r.phase, AlertPhase::Pending | AlertPhase::Firing) => {
                        ((*r).clone(), false)
                    }
                    _ => (
                        AlertRecord {
                            rule: rule.to_string(),
                            key: key.clone(),
                            labels: c.labels.clone(),
                            phase: AlertPhase::Pending,
                            severity: c.severity.clone(),
                            active_since_ms: now,
                            fired_at_ms: None,
                            resolved_at_ms: None,
                            last_eval_ms: now,
                            last_active_ms: now,
                            value: c.value,
                            annotations: c.annotations.clone(),
                            last_notified_ms: None,
                        },
                        true,
                    ),
                };
                let escalated =
                    r.phase == AlertPhase::Firing && rank(&c.severity) > rank(&r.severity);
                if fresh || r.severity != c.severity {
                    out.material = true;
                }
                r.severity = c.severity.clone();
                r.value = c.value;
                r.annotations = c.annotations.clone();
                r.last_eval_ms = now;
                r.last_active_ms = now;
                if r.phase == AlertPhase::Pending && now - r.active_since_ms >= timing.for_ms {
                    out.material = true;
                    r.phase = AlertPhase::Firing;
                    r.fired_at_ms = Some(now);
                    out.events.push(Event {
                        kind: EventKind::Firing,
                        alert: r.clone(),
                    });
                } else if escalated {
                    out.events.push(Event {
                        kind: EventKind::Firing,
                        alert: r.clone(),
                    });
                }
                out.put.push(r);
            }
            let seen: BTreeSet<&str> = current.keys().map(String::as_str).collect();
            for r in prev
                .iter()
                .filter(|r| r.key != RULE_KEY && !seen.contains(r.key.as_str()))
            {
                match r.phase {
                    AlertPhase::Pending => out.delete.push(r.key.clone()),
                    AlertPhase::Firing if now - r.last_active_ms < timing.keep_firing_for_ms => {
                        let mut r = r.clone();
                        r.last_eval_ms = now;
                        out.put.push(r);
                    }
                    AlertPhase::Firing => {
                        out.material = true;
                        let mut r = r.clone();
                        r.phase = AlertPhase::Resolved;
                        r.resolved_at_ms = Some(now);
                        r.last_eval_ms = now;
                        out.events.push(Event {
                            kind: EventKind::Resolved,
                            alert: r.clone(),
                        });
                        out.put.push(r);
                    }
                    _ => {
                        let since = r.resolved_at_ms.unwrap_or(r.last_eval_ms);
                        if now - since >= RESOLVED_KEEP_MS {
                            out.delete.push(r.key.clone());
                        }
                    }
                }
            }
        }
        Outcome::NoData => rule_level(&mut out, rule, rule_record, AlertPhase::NoData, None, now),
        Outcome::Error(message) => rule_level(
            &mut out,
            rule,
            rule_record,
            AlertPhase::Error,
            Some(message),
            now,
        ),
    }
    out.material |= !out.delete.is_empty() || !out.events.is_empty();
    out
}

/// Enter or stay in a rule-level phase; an event on entry only.
fn rule_level(
    out: &mut Step,
    rule: &str,
    existing: Option<&AlertRecord>,
    phase: AlertPhase,
    message: Option<&String>,
    now: i64,
) {
    let mut annotations = vec![(
        "summary".to_string(),
        match phase {
            AlertPhase::NoData => format!("rule {rule}: no input series"),
            _ => format!("rule {rule}: evaluation failed"),
        },
    )];
    if let Some(m) = message {
        annotations.push(("error".to_string(), m.clone()));
    }
    let mut r = match existing {
        Some(r) if r.phase == phase => r.clone(),
        _ => {
            let r = AlertRecord {
                rule: rule.to_string(),
                key: RULE_KEY.to_string(),
                labels: Vec::new(),
                phase,
                severity: "warning".to_string(),
                active_since_ms: now,
                fired_at_ms: Some(now),
                resolved_at_ms: None,
                last_eval_ms: now,
                last_active_ms: now,
                value: f64::NAN,
                annotations: annotations.clone(),
                last_notified_ms: None,
            };
            out.events.push(Event {
                kind: if phase == AlertPhase::NoData {
                    EventKind::NoData
                } else {
                    EventKind::Error
                },
                alert: r.clone(),
            });
            r
        }
    };
    r.last_eval_ms = now;
    r.last_active_ms = now;
    r.annotations = annotations;
    out.put.push(r);
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timing = Timing {
        for_ms: 60_000,
        keep_firing_for_ms: 0,
    };

    fn cond(host: &str, severity: &str, value: f64) -> Condition {
        Condition {
            labels: vec![("host".into(), host.into())],
            severity: severity.into(),
            value,
            annotations: vec![("summary".into(), format!("{host} hot"))],
        }
    }

    /// Apply a step to a record set, as the store would.
    fn apply(prev: &[AlertRecord], s: &Step) -> Vec<AlertRecord> {
        let mut map: BTreeMap<String, AlertRecord> =
            prev.iter().map(|r| (r.key.clone(), r.clone())).collect();
        for k in &s.delete {
            map.remove(k);
        }
        for r in &s.put {
            map.insert(r.key.clone(), r.clone());
        }
        map.into_values().collect()
    }

    fn run(
        prev: &[AlertRecord],
        o: Outcome,
        now: i64,
        t: Timing,
    ) -> (Vec<AlertRecord>, Vec<EventKind>) {
        let s = step("cpu", prev, &o, now, t);
        let kinds = s.events.iter().map(|e| e.kind).collect();
        (apply(prev, &s), kinds)
    }

    #[test]
    fn pending_then_firing_after_for_then_resolved() {
        let on = || Outcome::Conditions(vec![cond("a", "warning", 95.0)]);
        let (r, e) = run(&[], on(), 0, T);
        assert_eq!((r[0].phase, e.len()), (AlertPhase::Pending, 0));
        let (r, e) = run(&r, on(), 59_999, T);
        assert_eq!((r[0].phase, e.len()), (AlertPhase::Pending, 0));
        let (r, e) = run(&r, on(), 60_000, T);
        assert_eq!(
            (r[0].phase, e),
            (AlertPhase::Firing, vec![EventKind::Firing])
        );
        assert_eq!(r[0].fired_at_ms, Some(60_000));
        let (r, e) = run(&r, on(), 75_000, T);
        assert!(e.is_empty(), "firing does not re-fire");
        let (r, e) = run(&r, Outcome::Conditions(vec![]), 90_000, T);
        assert_eq!(
            (r[0].phase, e),
            (AlertPhase::Resolved, vec![EventKind::Resolved])
        );
        // A resolved alert is listed for a while, then dropped.
        let (r, _) = run(
            &r,
            Outcome::Conditions(vec![]),
            90_000 + RESOLVED_KEEP_MS - 1,
            T,
        );
        assert_eq!(r.len(), 1);
        let (r, _) = run(
            &r,
            Outcome::Conditions(vec![]),
            90_000 + RESOLVED_KEEP_MS,
            T,
        );
        assert!(r.is_empty());
    }

    #[test]
    fn a_pending_alert_that_clears_is_dropped_and_restarts_its_timer() {
        let on = || Outcome::Conditions(vec![cond("a", "warning", 95.0)]);
        let (r, _) = run(&[], on(), 0, T);
        let (r, e) = run(&r, Outcome::Conditions(vec![]), 30_000, T);
        assert!(r.is_empty() && e.is_empty());
        let (r, _) = run(&r, on(), 45_000, T);
        assert_eq!(r[0].active_since_ms, 45_000);
        let (r, _) = run(&r, on(), 100_000, T);
        assert_eq!(r[0].phase, AlertPhase::Pending, "55 s is not 60 s");
    }

    #[test]
    fn keep_firing_for_bridges_gaps() {
        let t = Timing {
            for_ms: 0,
            keep_firing_for_ms: 30_000,
        };
        let (r, e) = run(
            &[],
            Outcome::Conditions(vec![cond("a", "warning", 95.0)]),
            0,
            t,
        );
        assert_eq!(
            (r[0].phase, e),
            (AlertPhase::Firing, vec![EventKind::Firing]),
            "for = 0 fires at once"
        );
        let (r, e) = run(&r, Outcome::Conditions(vec![]), 29_999, t);
        assert_eq!((r[0].phase, e.len()), (AlertPhase::Firing, 0));
        let (r, e) = run(&r, Outcome::Conditions(vec![]), 30_000, t);
        assert_eq!(
            (r[0].phase, e),
            (AlertPhase::Resolved, vec![EventKind::Resolved])
        );
    }

    #[test]
    fn no_data_and_error_leave_instances_alone() {
        let t = Timing::default();
        let (r, _) = run(
            &[],
            Outcome::Conditions(vec![cond("a", "warning", 95.0)]),
            0,
            t,
        );
        let (r, e) = run(&r, Outcome::NoData, 15_000, t);
        assert_eq!(e, vec![EventKind::NoData]);
        assert_eq!(r.len(), 2);
        assert_eq!(
            r.iter().find(|x| x.key != RULE_KEY).map(|x| x.phase),
            Some(AlertPhase::Firing)
        );
        let (r, e) = run(&r, Outcome::NoData, 30_000, t);
        assert!(e.is_empty(), "no-data is announced once");
        let (r, e) = run(&r, Outcome::Error("trap".into()), 45_000, t);
        assert_eq!(e, vec![EventKind::Error]);
        let rule = r.iter().find(|x| x.key == RULE_KEY).expect("rule record");
        assert_eq!(rule.phase, AlertPhase::Error);
        assert!(
            rule.annotations
                .iter()
                .any(|(k, v)| k == "error" && v == "trap")
        );
        // Recovery clears the rule record; the instance is still firing, not re-fired.
        let (r, e) = run(
            &r,
            Outcome::Conditions(vec![cond("a", "warning", 96.0)]),
            60_000,
            t,
        );
        assert!(e.is_empty());
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].value, 96.0);
    }

    #[test]
    fn escalation_while_firing_is_an_event() {
        let t = Timing::default();
        let (r, _) = run(
            &[],
            Outcome::Conditions(vec![cond("a", "warning", 95.0)]),
            0,
            t,
        );
        let (r, e) = run(
            &r,
            Outcome::Conditions(vec![cond("a", "critical", 99.0)]),
            15_000,
            t,
        );
        assert_eq!(e, vec![EventKind::Firing]);
        let (_, e) = run(
            &r,
            Outcome::Conditions(vec![cond("a", "warning", 95.0)]),
            30_000,
            t,
        );
        assert!(e.is_empty(), "de-escalation is not a new notification");
    }

    #[test]
    fn only_changes_a_restart_must_see_are_material() {
        let on = |v: f64| Outcome::Conditions(vec![cond("a", "warning", v)]);
        let s = step("cpu", &[], &on(95.0), 0, T);
        assert!(s.material, "a new pending alert");
        let r = apply(&[], &s);
        let s = step("cpu", &r, &on(96.0), 15_000, T);
        assert!(!s.material, "only the value moved");
        let r = apply(&r, &s);
        assert!(step("cpu", &r, &on(96.0), 60_000, T).material, "fires");
        assert!(
            step("cpu", &r, &Outcome::Conditions(vec![]), 30_000, T).material,
            "dropped"
        );
    }

    #[test]
    fn keys_are_canonical() {
        let a = vec![
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1,x".to_string()),
        ];
        assert_eq!(alert_key(&a), "a=\"1,x\",b=\"2\"");
    }
}
