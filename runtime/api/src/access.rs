//! Who may call the API, over the API: `GET/POST /api/tokens`, `DELETE /api/tokens/{name}`
//! and the audit log (`GET /api/audit`). Every change is audited with its caller.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use tocsin_store::{AuditEntry, TokenRecord};

use crate::auth::{Caller, Role, digest, new_secret};
use crate::error::AppError;
use crate::metrics::{blocking, now_ms};
use crate::state::AppState;

fn describe(t: &TokenRecord) -> Value {
    json!({
        "name": t.name, "role": t.role, "client": t.client,
        "created_ms": t.created_ms, "created_by": t.created_by,
    })
}

/// `GET /api/tokens`: names, roles and clients — never secrets or digests.
pub async fn list_tokens(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let tokens = blocking(&state, |store| Ok(store.tokens()?)).await?;
    Ok(Json(
        json!({ "tokens": tokens.iter().map(describe).collect::<Vec<_>>() }),
    ))
}

/// Body of `POST /api/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Unique name: letters, digits, `-`, `_`, `.` (at most 64).
    name: String,
    /// `admin`, `operator` or `client`.
    role: String,
    /// The client id a client token ingests for (required for, and only for, clients).
    client: Option<String>,
}

/// Whether `name` is a usable token or client name.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Check a new token's fields; answers its role.
pub fn check_new(name: &str, role: &str, client: Option<&str>) -> Result<Role, String> {
    if !valid_name(name) {
        return Err(format!(
            "token name `{name}`: 1 to 64 letters, digits, `-`, `_` or `.`"
        ));
    }
    let role =
        Role::parse(role).ok_or_else(|| format!("role `{role}`: admin, operator or client"))?;
    match (role, client) {
        (Role::Client, Some(c)) if valid_name(c) => Ok(role),
        (Role::Client, Some(c)) => Err(format!(
            "client id `{c}`: 1 to 64 letters, digits, `-`, `_` or `.`"
        )),
        (Role::Client, None) => Err("a client token needs `client` (the id it ingests for)".into()),
        (_, Some(_)) => Err("only client tokens have a `client`".into()),
        (_, None) => Ok(role),
    }
}

/// `POST /api/tokens`: create a token and answer its secret — the only time it is shown.
pub async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<NewToken>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let Json(b) = body.map_err(AppError::from)?;
    check_new(&b.name, &b.role, b.client.as_deref()).map_err(AppError::bad_request)?;
    let secret = new_secret()?;
    let now = now_ms();
    let record = TokenRecord {
        name: b.name,
        role: b.role,
        client: b.client,
        sha256: digest(&secret),
        created_ms: now,
        created_by: caller.actor(),
    };
    let stored = record.clone();
    blocking(&state, move |store| {
        store.create_token(&stored).map_err(|e| match e {
            tocsin_store::StoreError::Refused(m) => AppError::new(StatusCode::CONFLICT, m),
            other => other.into(),
        })?;
        store.audit(&AuditEntry {
            ts_ms: now,
            actor: caller.actor(),
            action: "token.create".into(),
            target: stored.name.clone(),
            detail: format!("role {}", stored.role),
        })?;
        Ok(())
    })
    .await?;
    state.load_tokens()?;
    let mut answer = describe(&record);
    answer["token"] = Value::from(secret);
    Ok((StatusCode::CREATED, Json(answer)))
}

/// `DELETE /api/tokens/{name}`: revoke at once.
pub async fn revoke_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, AppError> {
    let now = now_ms();
    let old = blocking(&state, move |store| {
        let old = store.revoke_token(&name).map_err(|e| match e {
            tocsin_store::StoreError::Refused(m) => AppError::not_found(m),
            other => other.into(),
        })?;
        store.audit(&AuditEntry {
            ts_ms: now,
            actor: caller.actor(),
            action: "token.revoke".into(),
            target: old.name.clone(),
            detail: format!("role {}", old.role),
        })?;
        Ok(old)
    })
    .await?;
    state.load_tokens()?;
    Ok(Json(json!({ "revoked": describe(&old) })))
}

/// Parameters of `GET /api/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only entries at or after this time (ms); default all.
    since: Option<i64>,
    /// At most this many (default 100, max 1000).
    limit: Option<usize>,
}

/// `GET /api/audit`: who changed what, newest first.
pub async fn audit(
    State(state): State<AppState>,
    Query(p): Query<AuditParams>,
) -> Result<Json<Value>, AppError> {
    let since = p.since.unwrap_or(0);
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let entries = blocking(&state, move |store| Ok(store.audit_log(since, limit)?)).await?;
    Ok(Json(json!({ "entries": entries })))
}
