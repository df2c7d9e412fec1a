//! One alert rule in the host: its policy (selectors, lookback, timing, params), its live
//! guest instance, and one evaluation: gather the selected series from the store, call the
//! guest with them and the keys of its active alerts, run the lifecycle, write the records
//! in one durable transaction, and keep what happened for `why did it fire`.

use std::time::Instant;

use tocsin_engine::types::{Context, Severity, Signal};
use tocsin_engine::{GuestInstance, GuestStats};
use tocsin_policy::LoadedPolicy;
use tocsin_store::{AlertPhase, AlertRecord, Store, StoreError};

use crate::input::ms;
use crate::lifecycle::{self, Condition, Event, Outcome, Timing};

/// Most input series shown back by [`Evaluation::input`] (the guest gets them all).
pub const SHOWN_INPUT: usize = 50;

/// An input series as shown back: identity and newest point.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSeries {
    /// Metric name.
    pub name: String,
    /// Labels.
    pub labels: Vec<(String, String)>,
    /// Newest point handed to the guest.
    pub newest: Option<(i64, f64)>,
}

/// What one evaluation saw and did.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The rule.
    pub rule: String,
    /// Evaluation time (ms).
    pub at_ms: i64,
    /// Input series handed to the guest.
    pub input_series: usize,
    /// Input points handed to the guest.
    pub input_points: usize,
    /// The first [`SHOWN_INPUT`] input series.
    pub input: Vec<InputSeries>,
    /// The outcome (the guest's conditions, no data, or the error).
    pub outcome: Outcome,
    /// Lifecycle changes.
    pub events: Vec<Event>,
    /// Wall time of the whole evaluation (µs).
    pub duration_us: u64,
    /// Wall time of the guest call (µs).
    pub guest_us: u64,
}

/// Most evaluations one backtest makes.
pub const MAX_BACKTEST_STEPS: u64 = 20_000;

/// An alert rule ready to evaluate.
pub struct Rule {
    name: String,
    select: Vec<String>,
    lookback_ms: i64,
    timing: Timing,
    params: Vec<(String, String)>,
    interval_ms: i64,
    labels: Vec<(String, String)>,
    no_data_ok: bool,
    instance: GuestInstance,
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

fn condition(s: Signal) -> Condition {
    let mut annotations = vec![
        ("summary".to_string(), s.summary),
        ("description".to_string(), s.description),
    ];
    annotations.extend(s.annotations);
    Condition {
        labels: s.key,
        severity: severity(s.severity).to_string(),
        value: s.value,
        annotations,
    }
}

impl Rule {
    /// The rule of a loaded `alert-rule` policy.
    pub fn from_policy(policy: &LoadedPolicy) -> Rule {
        let r = &policy.manifest.rule;
        Rule {
            name: policy.name.clone(),
            select: policy.manifest.input.select.clone(),
            lookback_ms: ms(policy.manifest.input.lookback).max(1),
            timing: Timing {
                for_ms: ms(r.for_),
                keep_firing_for_ms: ms(r.keep_firing_for),
            },
            params: policy.manifest.params_list(),
            interval_ms: ms(policy.manifest.interval).max(100),
            labels: r
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            no_data_ok: r.no_data == tocsin_policy::NoData::Ok,
            instance: policy.guest.instance(),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Labels its manifest adds to every alert (`[rule.labels]`).
    pub fn labels(&self) -> &[(String, String)] {
        &self.labels
    }

    /// Its evaluation interval (ms).
    pub fn interval_ms(&self) -> i64 {
        self.interval_ms
    }

    /// The guest's counters.
    pub fn stats(&self) -> GuestStats {
        self.instance.guest().stats()
    }

    /// Call the guest at `now` with the input the store holds then and the alerts active in
    /// `prev`: the input and what it means.
    fn judge(
        &mut self,
        store: &Store,
        now: i64,
        prev: &[AlertRecord],
    ) -> Result<(Vec<tocsin_engine::types::Series>, Outcome, u64), StoreError> {
        let input = crate::input::gather(store, &self.select, self.lookback_ms, now)?;
        let active: Vec<Vec<(String, String)>> = prev
            .iter()
            .filter(|r| matches!(r.phase, AlertPhase::Pending | AlertPhase::Firing))
            .filter(|r| r.key != lifecycle::RULE_KEY)
            .map(|r| r.labels.clone())
            .collect();
        let ctx = Context {
            now_ms: now,
            params: self.params.clone(),
        };
        let called = Instant::now();
        let result = self.instance.evaluate(&ctx, &input, &active);
        let guest_us = called.elapsed().as_micros() as u64;
        let outcome = match result {
            Ok(signals)
                if signals.is_empty()
                    && input.is_empty()
                    && !self.select.is_empty()
                    && !self.no_data_ok =>
            {
                Outcome::NoData
            }
            Ok(signals) => Outcome::Conditions(signals.into_iter().map(condition).collect()),
            Err(e) => Outcome::Error(e.to_string()),
        };
        Ok((input, outcome, guest_us))
    }

    /// Replay history: evaluate at `from, from + step, .. <= to` against what the store
    /// held then, alert state carried in memory from nothing (nothing is written): the
    /// changes the rule would have made, oldest first. At most [`MAX_BACKTEST_STEPS`].
    pub fn backtest(
        &mut self,
        store: &Store,
        from: i64,
        to: i64,
        step: i64,
    ) -> Result<Vec<(i64, Event)>, StoreError> {
        if step <= 0 || to < from {
            return Err(StoreError::Query("need step > 0 and from <= to".into()));
        }
        let steps = (i128::from(to) - i128::from(from)) / i128::from(step) + 1;
        if steps > i128::from(MAX_BACKTEST_STEPS) {
            return Err(StoreError::Query(format!(
                "{steps} evaluations, at most {MAX_BACKTEST_STEPS}: use a larger step"
            )));
        }
        let mut state: Vec<AlertRecord> = Vec::new();
        let mut out = Vec::new();
        for now in tocsin_store::query::step_times(from, to, step) {
            let (_, outcome, _) = self.judge(store, now, &state)?;
            let change = lifecycle::step(&self.name, &state, &outcome, now, self.timing);
            state.retain(|r| !change.delete.contains(&r.key));
            for put in change.put {
                state.retain(|r| r.key != put.key);
                state.push(put);
            }
            out.extend(change.events.into_iter().map(|e| (now, e)));
        }
        Ok(out)
    }

    /// Evaluate at `now`: the store's records of this rule move one lifecycle step.
    pub fn evaluate(&mut self, store: &Store, now: i64) -> Result<Evaluation, StoreError> {
        let started = Instant::now();
        let prev = store.alerts_of(&self.name)?;
        let (input, outcome, guest_us) = self.judge(store, now, &prev)?;
        let step = lifecycle::step(&self.name, &prev, &outcome, now, self.timing);
        let delete: Vec<(&str, &str)> = step
            .delete
            .iter()
            .map(|k| (self.name.as_str(), k.as_str()))
            .collect();
        let history: Vec<tocsin_store::AlertEvent> = step
            .events
            .iter()
            .map(|e| tocsin_store::AlertEvent {
                ts_ms: now,
                kind: e.kind.name().to_string(),
                alert: e.alert.clone(),
            })
            .collect();
        if !step.put.is_empty() || !delete.is_empty() {
            store.save_alerts_with_history(&step.put, &delete, &history, step.material)?;
        }
        for e in &step.events {
            tracing::info!(rule = %self.name, alert = %e.alert.key, kind = ?e.kind, severity = %e.alert.severity, "alert {:?}", e.kind);
        }
        Ok(Evaluation {
            rule: self.name.clone(),
            at_ms: now,
            input_series: input.len(),
            input_points: input.iter().map(|s| s.points.len()).sum(),
            input: input
                .iter()
                .take(SHOWN_INPUT)
                .map(|s| InputSeries {
                    name: s.name.clone(),
                    labels: s.labels.clone(),
                    newest: s.points.last().copied(),
                })
                .collect(),
            outcome,
            events: step.events,
            duration_us: started.elapsed().as_micros() as u64,
            guest_us,
        })
    }
}
