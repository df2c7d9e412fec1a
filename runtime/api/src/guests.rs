//! The loaded guests over HTTP: `/healthz`, the status page, `/api/guests` and the latest
//! samples of each collector.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Html;
use serde_json::{Value, json};
use tocsin_engine::Guest;

use crate::error::AppError;
use crate::state::AppState;

pub async fn healthz(State(state): State<AppState>) -> Json<Value> {
    let guests = state.guests();
    let errors = state.load_errors();
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.uptime_seconds(),
        "guests": guests.len(),
        "policy_errors": errors.len(),
        "series": state.store().map(|s| s.series_count()),
    }))
}

pub async fn status_page(State(state): State<AppState>) -> Html<String> {
    let guests = state
        .guests()
        .iter()
        .map(|g| {
            let stats = g.stats();
            tocsin_web::GuestRow {
                name: g.name().to_string(),
                kind: g.kind().to_string(),
                grants: g.grants().iter().map(|c| c.name().to_string()).collect(),
                calls: stats.calls,
                faults: stats.deadline + stats.memory + stats.output + stats.trap,
                last_error: stats.last_error,
            }
        })
        .collect();
    Html(tocsin_web::status_page(&tocsin_web::StatusView {
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_seconds: state.uptime_seconds(),
        guests,
        errors: state.load_errors(),
    }))
}

fn describe(g: &Guest) -> Value {
    json!({
        "name": g.name(),
        "kind": g.kind(),
        "sha256": g.sha256(),
        "grants": g.grants().iter().map(|c| c.name()).collect::<Vec<_>>(),
        "budgets": g.budgets(),
        "stats": g.stats(),
    })
}

pub async fn list_guests(State(state): State<AppState>) -> Json<Value> {
    let guests: Vec<Value> = state.guests().iter().map(describe).collect();
    Json(json!({ "guests": guests, "errors": state.load_errors() }))
}

pub async fn get_guest(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, AppError> {
    state
        .guests()
        .iter()
        .find(|g| g.name() == name)
        .map(|g| Json(describe(g)))
        .ok_or_else(|| AppError::not_found(format!("no guest named `{name}`")))
}

pub async fn latest_samples(State(state): State<AppState>) -> Json<Value> {
    let rounds: serde_json::Map<String, Value> = state
        .latest()
        .into_iter()
        .map(|(name, round)| {
            let samples: Vec<Value> = round
                .samples
                .iter()
                .map(|s| {
                    let labels: serde_json::Map<String, Value> = s
                        .labels
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                        .collect();
                    // NaN and infinities are not JSON numbers: they travel as strings.
                    let value = if s.value.is_finite() {
                        Value::from(s.value)
                    } else {
                        Value::from(s.value.to_string())
                    };
                    json!({ "name": s.name, "labels": labels, "ts_ms": s.ts_ms, "value": value })
                })
                .collect();
            (name, json!({ "at_ms": round.at_ms, "samples": samples }))
        })
        .collect();
    Json(Value::Object(rounds))
}
