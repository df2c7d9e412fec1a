//! Policies over HTTP: `GET /api/policies` (each policy's running version and history of
//! versions, with the errors of refused versions) and `POST /api/policies/{name}/rollback`.

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
