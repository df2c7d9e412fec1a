//! Samples sent over HTTP: `POST /api/v1/write` (Prometheus remote_write, so another
//! Tocsin or a Prometheus can forward here), `POST /api/metrics` (a JSON batch) and
//! `POST /api/metrics/text` (Prometheus text exposition lines, what a script prints). A
//! client token's samples all carry `client="<its id>"`, whatever they said; an admin's
//! are stored as sent. Valid samples are stored even when others in the batch are not.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use tocsin_store::Sample;

use crate::auth::{Caller, Role};
use crate::error::AppError;
use crate::metrics::{blocking, now_ms};
use crate::state::AppState;

/// Most samples in one request.
pub const MAX_SAMPLES: usize = 100_000;

/// Pin every sample of a client token to its client id.
fn pin(caller: &Caller, samples: &mut [Sample]) -> Result<(), AppError> {
    if caller.role != Role::Client {
        return Ok(());
    }
    let id = caller.client.clone().ok_or_else(|| {
        AppError::new(StatusCode::FORBIDDEN, "a client token without a client id")
    })?;
    for s in samples.iter_mut() {
        s.labels.retain(|(k, _)| k != "client");
        s.labels.push(("client".into(), id.clone()));
    }
    Ok(())
}

async fn store(
    state: &AppState,
    caller: &Caller,
    mut samples: Vec<Sample>,
) -> Result<(usize, Vec<String>), AppError> {
    if samples.len() > MAX_SAMPLES {
        return Err(AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} samples, at most {MAX_SAMPLES} per request",
                samples.len()
            ),
        ));
    }
    pin(caller, &mut samples)?;
    let report = blocking(state, move |store| Ok(store.ingest(&samples)?)).await?;
    let errors = report
        .rejected
        .iter()
        .take(10)
        .map(|(i, e)| format!("sample {i}: {e}"))
        .collect();
    Ok((report.accepted, errors))
}

/// `POST /api/v1/write`: a remote_write request.
pub async fn remote_write(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<StatusCode, AppError> {
    let samples = tocsin_export::remote_write::decode(&body, MAX_SAMPLES).map_err(|e| {
        if e.contains("more than") || e.contains("would take") {
            AppError::new(StatusCode::PAYLOAD_TOO_LARGE, e)
        } else {
            AppError::bad_request(e)
        }
    })?;
    let (accepted, errors) = store(&state, &caller, samples).await?;
    if errors.is_empty() {
        Ok(StatusCode::NO_CONTENT)
    } else {
        // 400 is final for a remote_write sender: the rejected samples will not improve.
        Err(AppError::bad_request(format!(
            "{accepted} stored; rejected: {}",
            errors.join("; ")
        )))
    }
}

/// One sample of `POST /api/metrics`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonSample {
    /// Metric name.
    name: String,
    /// Labels.
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// Time (ms); default now.
    ts_ms: Option<i64>,
    /// Value.
    value: f64,
}

/// Body of `POST /api/metrics`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonBatch {
    /// The samples.
    samples: Vec<JsonSample>,
}

/// 200 when every sample was stored, else 400; both name what was stored and why the rest
/// was not.
fn answer(accepted: usize, errors: Vec<String>) -> (StatusCode, Json<Value>) {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    (
        status,
        Json(json!({ "accepted": accepted, "rejected": errors })),
    )
}

/// `POST /api/metrics/text`: Prometheus text exposition (`name{label="v"} value [ts-ms]`
/// lines; `#` lines skipped). Lines that are not samples are named in the answer; the
/// others are stored.
pub async fn text_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let text = std::str::from_utf8(&body)
        .map_err(|e| AppError::new(StatusCode::BAD_REQUEST, format!("body is not UTF-8: {e}")))?;
    let (samples, bad_lines) = tocsin_store::exposition::parse_text(text, now_ms());
    let (accepted, mut errors) = store(&state, &caller, samples).await?;
    errors.extend(
        bad_lines
            .iter()
            .take(10)
            .map(|(line, why)| format!("line {line}: {why}")),
    );
    Ok(answer(accepted, errors))
}

/// `POST /api/metrics`: a JSON batch; answers what was stored and why the rest was not.
pub async fn json_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<JsonBatch>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let Json(batch) = body.map_err(AppError::from)?;
    let now = now_ms();
    let samples: Vec<Sample> = batch
        .samples
        .into_iter()
        .map(|s| Sample {
            name: s.name,
            labels: s.labels.into_iter().collect(),
            ts_ms: s.ts_ms.unwrap_or(now),
            value: s.value,
        })
        .collect();
    let (accepted, errors) = store(&state, &caller, samples).await?;
    Ok(answer(accepted, errors))
}
