//! Logs over HTTP: `GET /api/logs` (newest first, by source, level and time) and
//! `GET /api/logs/summary` (records per source and level over the last hours).

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use tocsin_store::{Level, LogQuery};

use crate::error::AppError;
use crate::metrics::{blocking, now_ms};
use crate::state::AppState;

/// Parameters of `GET /api/logs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogParams {
    /// Only this source (a file, `journal`, `kmsg`, `client/ID`).
    source: Option<String>,
    /// Only this level and above: `debug`, `info`, `warn`, `error`.
    level: Option<String>,
    /// Only records at or after this time (ms).
    since: Option<i64>,
    /// At most this many (default 50, max 500).
    limit: Option<usize>,
}

/// `GET /api/logs`.
pub async fn list(
    State(state): State<AppState>,
    Query(p): Query<LogParams>,
) -> Result<Json<Value>, AppError> {
    let out = records(&state, p.source, p.level.as_deref(), p.since, p.limit).await?;
    Ok(Json(json!({ "logs": out })))
}

/// The records of `source` (every source when `None`) at `level` and above, newest
/// first, as JSON; the store applies the default and the cap of `limit`.
pub(crate) async fn records(
    state: &AppState,
    source: Option<String>,
    level: Option<&str>,
    since_ms: Option<i64>,
    limit: Option<usize>,
) -> Result<Vec<Value>, AppError> {
    let min_level = level
        .map(str::parse::<Level>)
        .transpose()
        .map_err(AppError::bad_request)?;
    let q = LogQuery {
        source,
        min_level,
        since_ms,
        limit,
    };
    let found = blocking(state, move |store| Ok(store.query_logs(&q)?)).await?;
    Ok(found.iter().map(record_json).collect())
}

/// A log record as the API shows it.
pub(crate) fn record_json(r: &tocsin_store::LogRecord) -> Value {
    json!({
        "source": r.source, "level": r.level.name(), "ts_ms": r.ts_ms,
        "message": r.message,
        "fields": r.fields.iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect::<serde_json::Map<String, Value>>(),
    })
}

/// Parameters of `GET /api/logs/summary`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryParams {
    /// Whole hours back (default 24, max 8760).
    hours: Option<i64>,
}

/// `GET /api/logs/summary`.
pub async fn summary(
    State(state): State<AppState>,
    Query(p): Query<SummaryParams>,
) -> Result<Json<Value>, AppError> {
    let hours = p.hours.unwrap_or(24).clamp(1, 8760);
    let now = now_ms();
    let counts = blocking(&state, move |store| Ok(store.log_counts(now, hours)?)).await?;
    let sources: Vec<Value> = counts
        .iter()
        .map(|(source, c)| {
            let by_level: serde_json::Map<String, Value> = Level::ALL
                .iter()
                .map(|l| (l.name().to_string(), Value::from(c[*l as usize])))
                .collect();
            json!({ "source": source, "counts": by_level })
        })
        .collect();
    Ok(Json(json!({ "hours": hours, "sources": sources })))
}
