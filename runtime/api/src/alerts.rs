//! Alerts over HTTP: `GET /api/alerts` (every alert record, `?phase=` to filter),
//! `GET /api/rules` and `GET /api/rules/{name}` (each rule's newest evaluation — its input,
//! the guest's output, the lifecycle events — and its guest counters: why a rule fired).

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use tocsin_alerting::{Evaluation, Outcome};
use tocsin_engine::GuestStats;
use tocsin_store::AlertRecord;

use crate::error::AppError;
use crate::metrics::{blocking, number};
use crate::state::AppState;

/// Filter of `GET /api/alerts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertParams {
    /// `pending`, `firing`, `resolved`, `no_data` or `error`.
    phase: Option<String>,
    /// Only this rule.
    rule: Option<String>,
}

fn pairs(labels: &[(String, String)]) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect(),
    )
}

fn alert(r: &AlertRecord) -> Value {
    json!({
        "rule": r.rule,
        "key": r.key,
        "labels": pairs(&r.labels),
        "phase": r.phase,
        "severity": r.severity,
        "value": number(r.value),
        "active_since_ms": r.active_since_ms,
        "fired_at_ms": r.fired_at_ms,
        "resolved_at_ms": r.resolved_at_ms,
        "last_eval_ms": r.last_eval_ms,
        "last_notified_ms": r.last_notified_ms,
        "annotations": pairs(&r.annotations),
    })
}

/// `GET /api/alerts`.
pub async fn list(
    State(state): State<AppState>,
    Query(p): Query<AlertParams>,
) -> Result<Json<Value>, AppError> {
    let phase = match p.phase.as_deref() {
        None => None,
        Some(text) => Some(
            serde_json::from_value::<tocsin_store::AlertPhase>(Value::from(text)).map_err(
                |_| {
                    AppError::bad_request(format!(
                        "unknown phase `{text}` (pending, firing, resolved, no_data, error)"
                    ))
                },
            )?,
        ),
    };
    let rule = p.rule;
    let records = blocking(&state, move |store| {
        Ok(match &rule {
            Some(r) => store.alerts_of(r)?,
            None => store.all_alerts()?,
        })
    })
    .await?;
    let alerts: Vec<Value> = records
        .iter()
        .filter(|r| phase.is_none_or(|p| r.phase == p))
        .map(alert)
        .collect();
    Ok(Json(json!({ "alerts": alerts })))
}

fn evaluation(e: &Evaluation) -> Value {
    let outcome = match &e.outcome {
        Outcome::Conditions(c) => json!({
            "kind": "conditions",
            "conditions": c.iter().map(|c| json!({
                "labels": pairs(&c.labels),
                "severity": c.severity,
                "value": number(c.value),
                "annotations": pairs(&c.annotations),
            })).collect::<Vec<_>>(),
        }),
        Outcome::NoData => json!({ "kind": "no_data" }),
        Outcome::Error(m) => json!({ "kind": "error", "error": m }),
    };
    json!({
        "at_ms": e.at_ms,
        "input_series": e.input_series,
        "input_points": e.input_points,
        "input": e.input.iter().map(|s| json!({
            "name": s.name,
            "labels": pairs(&s.labels),
            "newest": s.newest.map(|(ts, v)| json!([ts, number(v)])),
        })).collect::<Vec<_>>(),
        "outcome": outcome,
        "events": e.events.iter().map(|ev| json!({
            "kind": format!("{:?}", ev.kind).to_lowercase(),
            "alert": alert(&ev.alert),
        })).collect::<Vec<_>>(),
        "duration_us": e.duration_us,
        "guest_us": e.guest_us,
    })
}

fn rule(name: &str, eval: &Option<Evaluation>, stats: &GuestStats) -> Value {
    json!({
        "name": name,
        "last_evaluation": eval.as_ref().map(evaluation),
        "stats": stats,
    })
}

/// `GET /api/rules`.
pub async fn rules(State(state): State<AppState>) -> Json<Value> {
    let rules: Vec<Value> = state
        .board()
        .snapshot()
        .iter()
        .map(|(n, e, s)| rule(n, e, s))
        .collect();
    Json(json!({ "rules": rules }))
}

/// `GET /api/rules/{name}`.
pub async fn one_rule(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, AppError> {
    state
        .board()
        .snapshot()
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(n, e, s)| Json(rule(n, e, s)))
        .ok_or_else(|| AppError::not_found(format!("no alert rule named `{name}`")))
}
