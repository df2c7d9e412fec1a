//! `GET /metrics`: Tocsin's own metrics for Prometheus — build, uptime, stored series,
//! loaded guests and their counters, quarantines, active alerts, health scores, what other
//! parts add (remote_write, SNMP) — and, when configured, the newest stored value of every
//! series.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::error::AppError;
use crate::exposition::{Exposition, Point};
use crate::metrics::{blocking, now_ms};
use crate::state::AppState;

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// How far back a stored series' newest point may lie to be exported.
const EXPORT_LOOKBACK_MS: i64 = 5 * 60_000;

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, AppError> {
    let mut e = Exposition::default();
    e.family(
        "tocsin_build_info",
        "gauge",
        "Tocsin's version (always 1)",
        vec![(labels(&[("version", env!("CARGO_PKG_VERSION"))]), 1.0)],
    );
    e.family(
        "tocsin_uptime_seconds",
        "gauge",
        "Seconds since this process started",
        vec![(vec![], state.uptime_seconds() as f64)],
    );
    e.family(
        "tocsin_policy_errors",
        "gauge",
        "Policies that failed to load",
        vec![(vec![], state.load_errors().len() as f64)],
    );
    guests(&mut e, &state);
    scores(&mut e, &state);
    for f in state.extra_metrics() {
        e.family(&f.name, f.kind, &f.help, f.points);
    }
    if state.store().is_none() {
        return Ok(text(e));
    }
    let export = state.limits().metrics_export_series;
    let now = now_ms();
    let (series, alerts, latest) = blocking(&state, move |store| {
        let latest = if export {
            store.latest(r#"{__name__=~".+"}"#, now, EXPORT_LOOKBACK_MS)?
        } else {
            Vec::new()
        };
        Ok((store.series_count(), store.all_alerts()?, latest))
    })
    .await?;
    e.family(
        "tocsin_series",
        "gauge",
        "Series in the store",
        vec![(vec![], series as f64)],
    );
    let mut active: BTreeMap<(String, String), f64> = BTreeMap::new();
    for a in &alerts {
        let phase = serde_json::to_value(a.phase)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        if phase == "firing" || phase == "pending" {
            *active.entry((phase, a.severity.clone())).or_default() += 1.0;
        }
    }
    e.family(
        "tocsin_alerts_active",
        "gauge",
        "Pending and firing alerts by severity",
        active
            .into_iter()
            .map(|((phase, severity), n)| {
                (labels(&[("phase", &phase), ("severity", &severity)]), n)
            })
            .collect(),
    );
    let mut by_name: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    for v in latest {
        by_name
            .entry(v.key.name.clone())
            .or_default()
            .push((v.key.labels.clone(), v.value));
    }
    for (name, points) in by_name {
        e.family(
            &name,
            "untyped",
            "Newest stored value of this Tocsin series",
            points,
        );
    }
    let skipped = e.skipped();
    e.family(
        "tocsin_metrics_skipped",
        "gauge",
        "Samples of this page left out (a name Prometheus does not accept, or a series named like one of Tocsin's own)",
        vec![(vec![], skipped as f64)],
    );
    Ok(text(e))
}

fn text(e: Exposition) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        e.finish(),
    )
}

fn guests(e: &mut Exposition, state: &AppState) {
    let guests = state.guests();
    let mut loaded: BTreeMap<String, f64> = BTreeMap::new();
    let (mut calls, mut faults, mut failed, mut busy, mut memory, mut quarantined) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut durations = Vec::new();
    for g in &guests {
        let kind = g.kind().to_string();
        *loaded.entry(kind.clone()).or_default() += 1.0;
        let s = g.stats();
        let base = labels(&[("policy", g.name()), ("kind", &kind)]);
        calls.push((base.clone(), s.calls as f64));
        for (fault, n) in [
            ("deadline", s.deadline),
            ("memory", s.memory),
            ("output", s.output),
            ("trap", s.trap),
        ] {
            let mut l = base.clone();
            l.push(("fault".into(), fault.into()));
            faults.push((l, n as f64));
        }
        failed.push((base.clone(), s.failed as f64));
        durations.push(crate::exposition::Histogram {
            labels: base.clone(),
            buckets: tocsin_engine::CALL_BUCKETS_US
                .iter()
                .zip(s.call_buckets)
                .map(|(us, n)| (*us as f64 / 1e6, n))
                .collect(),
            sum: s.busy_us as f64 / 1e6,
            count: s.calls,
        });
        busy.push((base.clone(), s.busy_us as f64 / 1e6));
        memory.push((base.clone(), s.memory_high_water as f64));
        let q = state.board().is_quarantined(g.name());
        quarantined.push((base, if q { 1.0 } else { 0.0 }));
    }
    e.family(
        "tocsin_guests_loaded",
        "gauge",
        "Loaded guests by kind",
        loaded
            .into_iter()
            .map(|(k, n)| (labels(&[("kind", &k)]), n))
            .collect(),
    );
    e.family(
        "tocsin_guest_calls_total",
        "counter",
        "Calls into each guest",
        calls,
    );
    e.family(
        "tocsin_guest_faults_total",
        "counter",
        "Guest calls stopped by the host: deadline, memory cap, output cap or trap",
        faults,
    );
    e.family(
        "tocsin_guest_failed_total",
        "counter",
        "Guest calls that returned the guest's own error",
        failed,
    );
    e.histogram(
        "tocsin_guest_call_duration_seconds",
        "How long guest calls take",
        durations,
    );
    e.family(
        "tocsin_guest_busy_seconds_total",
        "counter",
        "Time spent in guest calls",
        busy,
    );
    e.family(
        "tocsin_guest_memory_high_water_bytes",
        "gauge",
        "Highest linear memory a guest has used",
        memory,
    );
    e.family(
        "tocsin_guest_quarantined",
        "gauge",
        "1 when a guest is quarantined after repeated faults",
        quarantined,
    );
}

fn scores(e: &mut Exposition, state: &AppState) {
    let points = state
        .board()
        .scores()
        .into_iter()
        .filter_map(|(name, round, _)| {
            let score = round?.score?;
            Some((labels(&[("scorer", &name)]), score))
        })
        .collect();
    e.family(
        "tocsin_health_score",
        "gauge",
        "Each scorer's newest health score (0-100)",
        points,
    );
}
