//! Metric queries over HTTP: `GET /api/metrics/query_range` (step-aligned values or a
//! step aggregate, optionally aggregated across series by labels) and
//! `GET /api/metrics/latest`. Times in ms since the epoch; values that are not finite
//! travel as strings.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use tocsin_store::query::aggregate_series;
use tocsin_store::{Aggregation, RollupAgg, SeriesData, Store};

use crate::error::AppError;
use crate::state::AppState;

/// Parameters of `query_range`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeParams {
    /// Series selector, e.g. `cpu_usage{host="a"}`.
    selector: String,
    /// Start (ms); default `end` - 1 h.
    start: Option<i64>,
    /// End (ms); default now.
    end: Option<i64>,
    /// Step (ms); default 60 000.
    step: Option<i64>,
    /// Per step: `last` (default, newest value within `lookback`), or `avg`, `min`,
    /// `max`, `sum`, `count` of the points in the step.
    #[serde(rename = "fn")]
    func: Option<String>,
    /// Lookback for `last` (ms); default 5 min.
    lookback: Option<i64>,
    /// Across series: `sum`, `avg`, `min`, `max` or `count` …
    agg: Option<String>,
    /// … grouped by these labels (comma separated).
    by: Option<String>,
}

/// Parameters of `latest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatestParams {
    /// Series selector.
    selector: String,
    /// Lookback (ms); default 5 min.
    lookback: Option<i64>,
}

/// Now, in ms since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn number(v: f64) -> Value {
    if v.is_finite() {
        Value::from(v)
    } else {
        Value::from(v.to_string())
    }
}

fn render(series: &[SeriesData]) -> Vec<Value> {
    series
        .iter()
        .map(|s| {
            let labels: serde_json::Map<String, Value> = s
                .key
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect();
            let points: Vec<Value> = s
                .points
                .iter()
                .map(|&(ts, v)| json!([ts, number(v)]))
                .collect();
            json!({ "name": s.key.name, "labels": labels, "points": points })
        })
        .collect()
}

pub(crate) async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Store) -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    let store: Arc<Store> = state
        .store_handle()
        .ok_or_else(|| AppError::unavailable("no metric store in this process"))?;
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| AppError::internal(format!("query task failed: {e}")))?
}

/// `GET /api/metrics/query_range`.
pub async fn query_range(
    State(state): State<AppState>,
    Query(p): Query<RangeParams>,
) -> Result<Json<Value>, AppError> {
    let end = p.end.unwrap_or_else(now_ms);
    let start = p.start.unwrap_or(end.saturating_sub(3_600_000));
    let step = p.step.unwrap_or(60_000);
    let lookback = p.lookback.unwrap_or(300_000);
    let func = p.func.as_deref().unwrap_or("last");
    let per_step: Option<RollupAgg> = match func {
        "last" => None,
        other => Some(other.parse().map_err(AppError::bad_request)?),
    };
    let across: Option<Aggregation> = p
        .agg
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(AppError::bad_request)?;
    let by: Vec<String> =
        p.by.as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
    if across.is_none() && !by.is_empty() {
        return Err(AppError::bad_request("`by` needs `agg`"));
    }
    let selector = p.selector;
    let series = blocking(&state, move |store| {
        Ok(match per_step {
            None => store.query_range(&selector, start, end, step, lookback)?,
            Some(f) => store.query_rollup(&selector, start, end, step, f)?,
        })
    })
    .await?;
    let series = match across {
        Some(op) => aggregate_series(&series, op, &by, p.agg.as_deref().unwrap_or("")),
        None => series,
    };
    Ok(Json(json!({
        "start": start, "end": end, "step": step, "fn": func,
        "series": render(&series),
    })))
}

/// `GET /api/metrics/latest`.
pub async fn latest(
    State(state): State<AppState>,
    Query(p): Query<LatestParams>,
) -> Result<Json<Value>, AppError> {
    let at = now_ms();
    let lookback = p.lookback.unwrap_or(300_000);
    let selector = p.selector;
    let values = blocking(&state, move |store| {
        Ok(store.latest(&selector, at, lookback)?)
    })
    .await?;
    let out: Vec<Value> = values
        .iter()
        .map(|v| {
            let labels: serde_json::Map<String, Value> = v
                .key
                .labels
                .iter()
                .map(|(k, l)| (k.clone(), Value::from(l.as_str())))
                .collect();
            json!({ "name": v.key.name, "labels": labels, "ts_ms": v.ts_ms, "value": number(v.value) })
        })
        .collect();
    Ok(Json(json!({ "at": at, "values": out })))
}
