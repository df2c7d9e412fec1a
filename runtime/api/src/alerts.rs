//! Alerts over HTTP: `GET /api/alerts` (every alert record, `?phase=` to filter),
//! `GET /api/rules` and `GET /api/rules/{name}` (each rule's newest evaluation — its input,
//! the guest's output, the lifecycle events — and its guest counters: why a rule fired).

use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use tocsin_alerting::{Evaluation, Outcome};
use tocsin_engine::GuestStats;
use tocsin_store::AlertRecord;

use crate::auth::Caller;
use crate::error::AppError;
use crate::metrics::{blocking, now_ms, number};
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
            "kind": ev.kind.name(),
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

/// Body of `POST /api/silences`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// Matchers in selector syntax, e.g. `{alertname="cpu-high",host="a"}`.
    matchers: String,
    /// Start (ms); default now.
    starts_ms: Option<i64>,
    /// End (ms); or give `duration`.
    ends_ms: Option<i64>,
    /// Length, e.g. `"2h"`, when `ends_ms` is not given.
    duration: Option<String>,
    /// Who (default: the token's name).
    #[serde(default)]
    author: String,
    /// Why.
    comment: String,
}

fn silence(s: &tocsin_store::Silence, now: i64) -> Value {
    let state = if now < s.starts_ms {
        "pending"
    } else if now < s.ends_ms {
        "active"
    } else {
        "expired"
    };
    json!({
        "id": s.id, "matchers": s.matchers, "starts_ms": s.starts_ms, "ends_ms": s.ends_ms,
        "author": s.author, "comment": s.comment, "state": state,
    })
}

/// `GET /api/silences`.
pub async fn silences(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let now = now_ms();
    let all = blocking(&state, |store| Ok(store.silences()?)).await?;
    Ok(Json(
        json!({ "silences": all.iter().map(|s| silence(s, now)).collect::<Vec<_>>() }),
    ))
}

/// `POST /api/silences`: create one; answers its id.
pub async fn create_silence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<NewSilence>, axum::extract::rejection::JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<Value>), AppError> {
    let Json(b) = body.map_err(AppError::from)?;
    tocsin_alerting::routing::matchers(&b.matchers)
        .map_err(|e| AppError::bad_request(format!("matchers: {e}")))?;
    if b.comment.trim().is_empty() {
        return Err(AppError::bad_request("a silence needs a comment (why)"));
    }
    let author = if b.author.trim().is_empty() {
        caller.name.clone()
    } else {
        b.author
    };
    let now = now_ms();
    let starts = b.starts_ms.unwrap_or(now);
    let ends = match (b.ends_ms, &b.duration) {
        (Some(e), None) => e,
        (None, Some(d)) => {
            let d = humantime::parse_duration(d)
                .map_err(|e| AppError::bad_request(format!("duration: {e}")))?;
            starts.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        }
        _ => {
            return Err(AppError::bad_request(
                "give exactly one of ends_ms and duration",
            ));
        }
    };
    if ends <= starts || ends <= now {
        return Err(AppError::bad_request(
            "the silence must end after it starts and after now",
        ));
    }
    let s = tocsin_store::Silence {
        id: 0,
        matchers: b.matchers,
        starts_ms: starts,
        ends_ms: ends,
        author,
        comment: b.comment,
    };
    let id = blocking(&state, move |store| {
        let id = store.create_silence(&s)?;
        store.audit(&tocsin_store::AuditEntry {
            ts_ms: now,
            actor: caller.actor(),
            action: "silence.create".into(),
            target: id.to_string(),
            detail: format!(
                "{} until {} by {} ({})",
                s.matchers, s.ends_ms, s.author, s.comment
            ),
        })?;
        Ok(id)
    })
    .await?;
    Ok((axum::http::StatusCode::CREATED, Json(json!({ "id": id }))))
}

/// `DELETE /api/silences/{id}`: expire it now.
pub async fn expire_silence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
) -> Result<Json<Value>, AppError> {
    let now = now_ms();
    let s = blocking(&state, move |store| {
        let s = store.expire_silence(id, now).map_err(|e| match e {
            tocsin_store::StoreError::Refused(m) => AppError::not_found(m),
            other => other.into(),
        })?;
        store.audit(&tocsin_store::AuditEntry {
            ts_ms: now,
            actor: caller.actor(),
            action: "silence.expire".into(),
            target: id.to_string(),
            detail: s.matchers.clone(),
        })?;
        Ok(s)
    })
    .await?;
    Ok(Json(silence(&s, now)))
}

/// `GET /api/notifications`: the newest outbox messages.
pub async fn notifications(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let recent = blocking(&state, |store| Ok(store.recent_messages(100)?)).await?;
    let out: Vec<Value> = recent
        .iter()
        .map(|m| {
            json!({
                // Webhook URLs are credentials: shown without their path.
                "id": m.id, "channel": m.message.channel,
                "recipient": tocsin_notify::redact(&m.message.recipient),
                "kind": m.message.kind, "delivery": m.delivery, "attempts": m.attempts,
                "last_error": m.last_error, "server_reply": m.server_reply,
                "payload": m.message.payload,
            })
        })
        .collect();
    Ok(Json(json!({ "notifications": out })))
}

/// Parameters of `GET /api/health`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthParams {
    /// Summary window, e.g. `24h` (default).
    window: Option<String>,
}

/// `GET /api/health`: every scorer's newest score with its breakdown, and its history
/// over the window (min/max/avg, trend, per-minute means).
pub async fn health(
    State(state): State<AppState>,
    Query(p): Query<HealthParams>,
) -> Result<Json<Value>, AppError> {
    let window = match &p.window {
        Some(w) => humantime::parse_duration(w)
            .map_err(|e| AppError::bad_request(format!("window: {e}")))?,
        None => std::time::Duration::from_secs(24 * 3600),
    };
    let window_ms = i64::try_from(window.as_millis())
        .unwrap_or(i64::MAX)
        .max(60_000);
    let scores = state.board().scores();
    let names: Vec<String> = scores.iter().map(|(n, _, _)| n.clone()).collect();
    let now = now_ms();
    let summaries = blocking(&state, move |store| {
        names
            .iter()
            .map(|n| Ok(tocsin_alerting::scoring::summary(store, n, now, window_ms)?))
            .collect::<Result<Vec<_>, AppError>>()
    })
    .await?;
    let out: Vec<Value> = scores
        .iter()
        .zip(&summaries)
        .map(|((name, round, stats), sum)| {
            let current = round.as_ref().map(|r| {
                json!({
                    "at_ms": r.at_ms,
                    "score": r.score,
                    "status": r.score.map(tocsin_alerting::scoring::status),
                    "summary": r.summary,
                    "error": r.error,
                    "factors": r.factors.iter().map(|f| json!({
                        "name": f.name, "score": f.score, "weight": f.weight, "detail": f.detail,
                    })).collect::<Vec<_>>(),
                })
            });
            json!({
                "scorer": name,
                "current": current,
                "window_ms": window_ms,
                "history": {
                    "current": sum.current, "min": sum.min, "max": sum.max, "avg": sum.avg,
                    "trend_per_hour": sum.trend_per_hour,
                    "minutes": sum.minutes.iter().map(|(t, v)| json!([t, v])).collect::<Vec<_>>(),
                },
                "stats": stats,
            })
        })
        .collect();
    Ok(Json(json!({ "scorers": out })))
}

/// Parameters of `GET /api/alerts/history`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// Only this rule.
    rule: Option<String>,
    /// Only events at or after this time (ms); default the last 7 days.
    since: Option<i64>,
    /// At most this many (default 50, max 500).
    limit: Option<usize>,
}

/// `GET /api/alerts/history`: alert changes, newest first.
pub async fn history(
    State(state): State<AppState>,
    Query(p): Query<HistoryParams>,
) -> Result<Json<Value>, AppError> {
    let since = p.since.unwrap_or(now_ms() - 7 * 86_400_000);
    let limit = p.limit.unwrap_or(50).clamp(1, 500);
    let events = blocking(&state, move |store| {
        Ok(store.alert_history(p.rule.as_deref(), since, limit)?)
    })
    .await?;
    let out: Vec<Value> = events
        .iter()
        .map(|e| json!({ "ts_ms": e.ts_ms, "kind": e.kind, "alert": alert(&e.alert) }))
        .collect();
    Ok(Json(json!({ "events": out })))
}
