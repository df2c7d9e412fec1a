//! Policies over HTTP: `GET /api/policies` (each policy's running version and history of
//! versions, with the errors of refused versions), `POST /api/policies/{name}` (deploy an
//! uploaded version, with the permission diff) and `POST /api/policies/{name}/rollback`.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde_json::{Value, json};
use tocsin_store::PolicyVersion;

use crate::error::AppError;
use crate::metrics::blocking;
use crate::state::AppState;

fn version(v: &PolicyVersion) -> Value {
    json!({
        "version": v.version, "sha256": v.sha256, "grants": v.grants,
        "deployed_ms": v.deployed_ms, "actor": v.actor,
    })
}

/// `GET /api/policies`.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let names: Vec<String> = state
        .guests()
        .iter()
        .map(|g| g.name().to_string())
        .collect();
    let quarantined: Vec<bool> = names
        .iter()
        .map(|n| state.board().is_quarantined(n))
        .collect();
    let errors = state.load_errors();
    let rows = blocking(&state, move |store| {
        names
            .iter()
            .map(|n| {
                Ok((
                    n.clone(),
                    store.current_policy_version(n)?,
                    store.policy_versions(n)?,
                ))
            })
            .collect::<Result<Vec<_>, AppError>>()
    })
    .await?;
    let policies: Vec<Value> = rows
        .iter()
        .zip(quarantined)
        .map(|((name, current, versions), quarantined)| {
            json!({
                "name": name,
                "current": current.as_ref().map(version),
                "versions": versions.iter().map(version).collect::<Vec<_>>(),
                "quarantined": quarantined,
            })
        })
        .collect();
    Ok(Json(json!({ "policies": policies, "errors": errors })))
}

/// `POST /api/policies/{name}/rollback`: run the previous version again.
pub async fn rollback(
    State(state): State<AppState>,
    Extension(caller): Extension<crate::auth::Caller>,
    Path(name): Path<String>,
) -> Result<Json<Value>, AppError> {
    let admin = state
        .admin()
        .ok_or_else(|| AppError::unavailable("this process does not manage policies"))?;
    let back = tokio::task::spawn_blocking(move || admin.rollback(&name, &caller.actor()))
        .await
        .map_err(|e| AppError::internal(format!("rollback task failed: {e}")))?
        .map_err(AppError::bad_request)?;
    Ok(Json(
        json!({ "policy": back.policy, "running": version(&back) }),
    ))
}

/// Largest deploy request: a Python or JavaScript component is tens of megabytes.
pub const MAX_DEPLOY_BYTES: usize = 96 << 20;

/// Body of `POST /api/policies/{name}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// The manifest (TOML); its `component` is replaced by the uploaded one.
    manifest: String,
    /// The component (`.wasm`), base64.
    component_base64: String,
    /// Confirm grants the running version does not have.
    #[serde(default)]
    allow_new_grants: bool,
}

/// `POST /api/policies/{name}`: deploy a version through the same checks as a file change;
/// 409 with the added grants when it asks for more than the running one without
/// `allow_new_grants`.
pub async fn deploy(
    State(state): State<AppState>,
    Extension(caller): Extension<crate::auth::Caller>,
    Path(name): Path<String>,
    body: Result<Json<Deploy>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, axum::response::Response> {
    use axum::response::IntoResponse;
    use base64::Engine as _;
    let Json(b) = body.map_err(|e| AppError::from(e).into_response())?;
    let component = base64::engine::general_purpose::STANDARD
        .decode(b.component_base64.trim())
        .map_err(|e| AppError::bad_request(format!("component_base64: {e}")).into_response())?;
    let admin = state.admin().ok_or_else(|| {
        AppError::unavailable("this process does not manage policies").into_response()
    })?;
    let actor = caller.actor();
    let result = tokio::task::spawn_blocking(move || {
        admin.deploy(&name, &b.manifest, component, b.allow_new_grants, &actor)
    })
    .await
    .map_err(|e| AppError::internal(format!("deploy task failed: {e}")).into_response())?;
    match result {
        Ok(v) => Ok(Json(json!({ "policy": v.policy, "running": version(&v) }))),
        Err(crate::DeployRefusal::NewGrants { added, running }) => Err((
            axum::http::StatusCode::CONFLICT,
            Json(json!({
                "error": format!(
                    "this version asks for grants the running one does not have: {}; \
                     confirm with allow_new_grants (tocsin rule deploy --allow-new-grants)",
                    added.join(", ")
                ),
                "added_grants": added,
                "running_grants": running,
            })),
        )
            .into_response()),
        Err(crate::DeployRefusal::Invalid(e)) => Err(AppError::bad_request(e).into_response()),
    }
}

/// Body of `POST /api/rules/{name}/backtest`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backtest {
    /// Start (ms).
    from_ms: i64,
    /// End (ms); default now.
    to_ms: Option<i64>,
    /// Between evaluations (ms); default 15 000.
    step_ms: Option<i64>,
}

/// `POST /api/rules/{name}/backtest`: when the running version of a rule would have gone
/// pending, fired and resolved over stored history (nothing is written or notified).
pub async fn backtest(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<Backtest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, AppError> {
    let Json(b) = body.map_err(AppError::from)?;
    let admin = state
        .admin()
        .ok_or_else(|| AppError::unavailable("this process does not manage policies"))?;
    let to = b.to_ms.unwrap_or_else(crate::metrics::now_ms);
    let step = b.step_ms.unwrap_or(15_000);
    let events = tokio::task::spawn_blocking(move || admin.backtest(&name, b.from_ms, to, step))
        .await
        .map_err(|e| AppError::internal(format!("backtest task failed: {e}")))?
        .map_err(AppError::bad_request)?;
    let out: Vec<Value> = events
        .iter()
        .map(|(at, e)| {
            let summary = e
                .alert
                .annotations
                .iter()
                .find(|(k, _)| k == "summary")
                .map(|(_, v)| v.as_str())
                .unwrap_or("");
            json!({
                "at_ms": at, "kind": e.kind.name(), "key": e.alert.key,
                "labels": e.alert.labels.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                "severity": e.alert.severity, "value": crate::metrics::number(e.alert.value),
                "summary": summary,
            })
        })
        .collect();
    Ok(Json(
        json!({ "from_ms": b.from_ms, "to_ms": to, "step_ms": step, "events": out }),
    ))
}
