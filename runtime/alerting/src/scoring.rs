//! Health scorers in the host: each `scorer` policy's guest is called on its interval with
//! its `[input]` series; its score and factor scores are stored as series
//! (`health_score{scorer}`, `health_factor_score{scorer,factor}`) — the history — and a
//! summary (current, min/max/avg over a window, trend) is computed from them.

use std::time::Instant;

use tocsin_engine::types::{Context, Health};
use tocsin_engine::{GuestInstance, GuestStats};
use tocsin_policy::LoadedPolicy;
use tocsin_store::{RollupAgg, Sample, Store, StoreError};

use crate::input::{gather, ms};

/// `healthy` (90-100), `warning` (70-89) or `critical` (below 70).
pub fn status(score: f64) -> &'static str {
    match score {
        s if s >= 90.0 => "healthy",
        s if s >= 70.0 => "warning",
        _ => "critical",
    }
}

/// One factor of a score.
#[derive(Debug, Clone, PartialEq)]
pub struct FactorScore {
    /// Name (`cpu`, `alerts`, ...).
    pub name: String,
    /// Its score, 0-100.
    pub score: f64,
    /// Its weight.
    pub weight: f64,
    /// Detail for people.
    pub detail: String,
}

/// What one scoring round produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRound {
    /// The scorer.
    pub scorer: String,
    /// When (ms).
    pub at_ms: i64,
    /// The score, clamped to 0-100; `None` when the guest failed.
    pub score: Option<f64>,
    /// The guest's summary line.
    pub summary: String,
    /// The breakdown.
    pub factors: Vec<FactorScore>,
    /// The guest's error, when it failed.
    pub error: Option<String>,
    /// Input series handed to it.
    pub input_series: usize,
    /// Wall time (µs).
    pub duration_us: u64,
}

/// A scorer ready to run.
pub struct Scorer {
    name: String,
    select: Vec<String>,
    lookback_ms: i64,
    params: Vec<(String, String)>,
    interval_ms: i64,
    instance: GuestInstance,
}

fn sample(name: &str, labels: Vec<(String, String)>, ts_ms: i64, value: f64) -> Sample {
    Sample {
        name: name.into(),
        labels,
        ts_ms,
        value,
    }
}

impl Scorer {
    /// The scorer of a loaded `scorer` policy.
    pub fn from_policy(policy: &LoadedPolicy) -> Scorer {
        Scorer {
            name: policy.name.clone(),
            select: policy.manifest.input.select.clone(),
            lookback_ms: ms(policy.manifest.input.lookback).max(1),
            params: policy.manifest.params_list(),
            interval_ms: ms(policy.manifest.interval).max(100),
            instance: policy.guest.instance(),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its interval (ms).
    pub fn interval_ms(&self) -> i64 {
        self.interval_ms
    }

    /// The guest's counters.
    pub fn stats(&self) -> GuestStats {
        self.instance.guest().stats()
    }

    /// Score at `now` and store the score and its factors as series.
    pub fn evaluate(&mut self, store: &Store, now: i64) -> Result<ScoreRound, StoreError> {
        let started = Instant::now();
        let input = gather(store, &self.select, self.lookback_ms, now)?;
        let ctx = Context {
            now_ms: now,
            params: self.params.clone(),
        };
        let mut round = ScoreRound {
            scorer: self.name.clone(),
            at_ms: now,
            score: None,
            summary: String::new(),
            factors: Vec::new(),
            error: None,
            input_series: input.len(),
            duration_us: 0,
        };
        match self.instance.score(&ctx, &input) {
            Ok(Health {
                score,
                factors,
                summary,
            }) if score.is_finite() => {
                let score = score.clamp(0.0, 100.0);
                let scorer = || ("scorer".to_string(), self.name.clone());
                let mut batch = vec![sample("health_score", vec![scorer()], now, score)];
                for f in &factors {
                    let labels = vec![scorer(), ("factor".to_string(), f.name.clone())];
                    batch.push(sample("health_factor_score", labels, now, f.score));
                }
                let report = store.ingest(&batch)?;
                for (i, e) in &report.rejected {
                    tracing::warn!(scorer = %self.name, sample = i, error = %e, "factor not stored");
                }
                round.score = Some(score);
                round.summary = summary;
                round.factors = factors
                    .into_iter()
                    .map(|f| FactorScore {
                        name: f.name,
                        score: f.score,
                        weight: f.weight,
                        detail: f.detail,
                    })
                    .collect();
            }
            Ok(h) => round.error = Some(format!("score {} is not a number", h.score)),
            Err(e) => round.error = Some(e.to_string()),
        }
        if let Some(e) = &round.error {
            tracing::warn!(scorer = %self.name, error = %e, "scoring failed");
        }
        round.duration_us = started.elapsed().as_micros() as u64;
        Ok(round)
    }
}

/// A score's history over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreSummary {
    /// Newest score in the window.
    pub current: Option<f64>,
    /// Lowest.
    pub min: Option<f64>,
    /// Highest.
    pub max: Option<f64>,
    /// Mean.
    pub avg: Option<f64>,
    /// Least-squares slope of the per-minute means, in points per hour (+ improving).
    pub trend_per_hour: Option<f64>,
    /// Step means (1 min up to a day's window, coarser beyond), oldest first, for a
    /// sparkline.
    pub minutes: Vec<(i64, f64)>,
}

/// Summary of `scorer`'s score over `(now - window, now]`.
pub fn summary(
    store: &Store,
    scorer: &str,
    now: i64,
    window_ms: i64,
) -> Result<ScoreSummary, StoreError> {
    let selector = format!("health_score{{scorer={scorer:?}}}");
    // Per-minute means for a day; coarser steps (whole minutes) for longer windows.
    let window_ms = window_ms.clamp(60_000, 400 * 86_400_000);
    let step = (window_ms / 1440).max(60_000) / 60_000 * 60_000;
    let end = now - now.rem_euclid(step);
    let start = end.saturating_sub(window_ms) + step;
    let minutes: Vec<(i64, f64)> = store
        .query_rollup(&selector, start, end, step, RollupAgg::Avg)?
        .into_iter()
        .next()
        .map(|s| s.points)
        .unwrap_or_default();
    let raw = store.query_raw(&selector, now.saturating_sub(window_ms) + 1, now)?;
    let values: Vec<f64> = raw
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .collect();
    let n = values.len() as f64;
    let trend_per_hour = (minutes.len() >= 2).then(|| {
        let m = minutes.len() as f64;
        let mx = minutes.iter().map(|p| p.0 as f64).sum::<f64>() / m;
        let my = minutes.iter().map(|p| p.1).sum::<f64>() / m;
        let sxy: f64 = minutes.iter().map(|p| (p.0 as f64 - mx) * (p.1 - my)).sum();
        let sxx: f64 = minutes.iter().map(|p| (p.0 as f64 - mx).powi(2)).sum();
        if sxx > 0.0 {
            sxy / sxx * 3_600_000.0
        } else {
            0.0
        }
    });
    Ok(ScoreSummary {
        current: raw.first().and_then(|s| s.points.last()).map(|p| p.1),
        min: values.iter().copied().reduce(f64::min),
        max: values.iter().copied().reduce(f64::max),
        avg: (n > 0.0).then(|| values.iter().sum::<f64>() / n),
        trend_per_hour,
        minutes,
    })
}
