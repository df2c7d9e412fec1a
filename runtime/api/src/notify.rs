//! Notification templates over HTTP: which kinds have a template guest, a preview that
//! renders a kind from variables without sending anything (what the dashboard shows), and
//! the PNG chart of an alert's series that chat messages link to; and queueing a message
//! (maintenance notice, custom text, account message) for a configured receiver.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::AppError;
use crate::metrics::now_ms;
use crate::state::AppState;

/// `GET /api/templates`: the kinds rendered by a template guest, and by which.
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let t = state.templates();
    let kinds: Vec<Value> = t
        .kinds()
        .into_iter()
        .map(|k| {
            let policy = t.get(&k).map(|g| g.name().to_string());
            json!({ "kind": k, "policy": policy })
        })
        .collect();
    Json(json!({ "templates": kinds }))
}

fn check_kind(kind: &str) -> Result<(), AppError> {
    let ok = !kind.is_empty()
        && kind.len() <= 64
        && kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(AppError::bad_request(
            "kind: letters, digits and `_`, at most 64",
        ))
    }
}

/// Kinds `POST /api/notifications` queues.
const API_KINDS: [&str; 2] = ["maintenance", "custom"];

/// Variables the server sets in every message; a request may not override them.
const RESERVED_VARS: [&str; 8] = [
    "kind",
    "server_name",
    "base_url",
    "timestamp",
    "recipient",
    "username",
    "display_name",
    "chart_cid",
];

/// Body of `POST /api/notifications`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNotification {
    /// A configured receiver (`routing.receivers[].name`): it names channel and recipients.
    receiver: String,
    /// `maintenance` or `custom`.
    kind: String,
    /// The template's variables (strings).
    #[serde(default)]
    vars: BTreeMap<String, String>,
    /// Who asks, when not the token's owner (recorded in the audit log).
    #[serde(default)]
    author: String,
}

/// `POST /api/notifications`: queue a message of `kind` for every recipient of a
/// configured receiver. Recipients come only from the configuration, never the request.
pub async fn enqueue(
    State(state): State<AppState>,
    Extension(caller): Extension<crate::auth::Caller>,
    body: Result<Json<NewNotification>, axum::extract::rejection::JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<Value>), AppError> {
    let Json(b) = body.map_err(AppError::from)?;
    check_kind(&b.kind)?;
    // Account messages (welcome, password reset, ...) wait for authenticated users: an
    // anonymous request must not send a password-reset link in this server's name.
    if !API_KINDS.contains(&b.kind.as_str()) {
        return Err(AppError::bad_request(format!(
            "kind `{}`: the API queues {} (alerts come from the router)",
            b.kind,
            API_KINDS.join(", ")
        )));
    }
    if let Some(k) = b.vars.keys().find(|k| RESERVED_VARS.contains(&k.as_str())) {
        return Err(AppError::bad_request(format!(
            "vars.{k} is set by the server, not the request"
        )));
    }
    let receiver = state
        .receivers()
        .into_iter()
        .find(|r| r.name == b.receiver)
        .ok_or_else(|| AppError::bad_request(format!("no receiver named `{}`", b.receiver)))?;
    let now = now_ms();
    let to = if receiver.to.is_empty() {
        vec![String::new()]
    } else {
        receiver.to.clone()
    };
    let messages: Vec<tocsin_store::NewMessage> = to
        .into_iter()
        .map(|recipient| tocsin_store::NewMessage {
            channel: receiver.channel.clone(),
            recipient,
            kind: b.kind.clone(),
            payload: json!({ "receiver": receiver.name, "vars": b.vars }),
            not_before_ms: now,
        })
        .collect();
    let author = if b.author.trim().is_empty() {
        String::new()
    } else {
        format!(" for {}", b.author)
    };
    let ids = crate::metrics::blocking(&state, move |store| {
        let ids = store.enqueue(&messages)?;
        store.audit(&tocsin_store::AuditEntry {
            ts_ms: now,
            actor: caller.actor(),
            action: "notification.enqueue".into(),
            target: b.receiver.clone(),
            detail: format!("{} message(s) of kind {}{author}", ids.len(), b.kind),
        })?;
        Ok(ids)
    })
    .await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(json!({ "ids": ids })),
    ))
}

/// `POST /api/templates/{kind}/render`: the body is a flat object of variables, or a
/// queued payload (`firing`/`resolved` alert lists, `vars`); the answer is the subject,
/// HTML and text, and `fallback` saying why the built-in rendering was used, if it was.
pub async fn render(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, AppError> {
    let Json(input) = body.map_err(AppError::from)?;
    if !input.is_object() {
        return Err(AppError::bad_request(
            "the body must be a JSON object of variables or a queued payload",
        ));
    }
    check_kind(&kind)?;
    let recipient = input["recipient"].as_str().unwrap_or("").to_string();
    let payload = tocsin_notify::as_payload(&input);
    let templates = state.templates().clone();
    let site = state.site();
    let rendered = tokio::task::spawn_blocking(move || {
        let vars = tocsin_notify::vars(&kind, &recipient, &payload, &site, now_ms());
        templates.render(&kind, &vars)
    })
    .await
    .map_err(|e| AppError::internal(format!("render task failed: {e}")))?;
    Ok(Json(json!({
        "subject": rendered.subject,
        "html": rendered.html,
        "text": rendered.text,
        "fallback": rendered.fallback,
    })))
}

/// `GET /api/charts/alert.png?rule=NAME&label=value...`: the series the alert fired on over
/// the last three hours with the rule's threshold, as a PNG. Open to a signed, unexpired
/// link (`&exp=..&sig=..`, what chat messages carry) or an operator token.
pub async fn alert_chart(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    Query(mut q): Query<BTreeMap<String, String>>,
) -> Result<axum::response::Response, axum::response::Response> {
    // A signed link (what chat messages carry) or an operator's token.
    let signed = tocsin_notify::chart_link::verify(
        &state.site().chart_key,
        raw.as_deref().unwrap_or(""),
        now_ms() / 1000,
    );
    if !signed {
        crate::auth::check(
            &state,
            &axum::http::Method::GET,
            &headers,
            crate::auth::Need::Operator,
        )?;
    }
    q.remove("exp");
    q.remove("sig");
    let rule = q
        .remove("rule")
        .ok_or_else(|| AppError::bad_request("rule is required").into_response())?;
    let charts = state.charts().clone();
    let now = now_ms();
    let png = crate::metrics::blocking(&state, move |store| Ok(charts.png(store, &rule, &q, now)))
        .await
        .map_err(IntoResponse::into_response)?
        .ok_or_else(|| {
            AppError::not_found("no series for this rule and these labels").into_response()
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        png,
    )
        .into_response())
}
