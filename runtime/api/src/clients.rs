//! The fleet over HTTP: `GET /api/clients` (every client's liveness, health report and
//! 24 h log counts, plus the MQTT ingest counters and the newest malformed messages),
//! `GET /api/clients/{id}`, `GET /api/clients/{id}/logs` and `GET /api/clients/summary`.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use tocsin_store::{CLIENT_SOURCE_PREFIX, Level, Liveness, Store};

use crate::error::AppError;
use crate::metrics::{blocking, now_ms};
use crate::state::AppState;

/// Log counts of every client over the last `hours`: client id → counts per level.
fn client_counts(
    store: &Store,
    now: i64,
    hours: i64,
) -> Result<Vec<(String, [u64; 4])>, tocsin_store::StoreError> {
    Ok(store
        .log_counts(now, hours)?
        .into_iter()
        .filter_map(|(source, c)| {
            source
                .strip_prefix(CLIENT_SOURCE_PREFIX)
                .map(|id| (id.to_string(), c))
        })
        .collect())
}

fn counts_json(c: &[u64; 4]) -> Value {
    Value::Object(
        Level::ALL
            .iter()
            .map(|l| (l.name().to_string(), Value::from(c[*l as usize])))
            .collect(),
    )
}

fn client_json(l: &Liveness, health: Option<Value>, counts: Option<&[u64; 4]>, now: i64) -> Value {
    json!({
        "client": l.client,
        "state": l.state,
        "since_ms": l.since_ms,
        "last_seen_ms": l.last_seen_ms,
        "heartbeat_age_s": (now - l.last_seen_ms).max(0) as f64 / 1000.0,
        "heartbeats": l.heartbeats,
        "health": health,
        "logs_24h": counts_json(counts.unwrap_or(&[0; 4])),
    })
}

fn health_of(store: &Store, client: &str) -> Result<Option<Value>, tocsin_store::StoreError> {
    Ok(store
        .kv_get(tocsin_fleet::HEALTH_NAMESPACE, client)?
        .and_then(|bytes| serde_json::from_slice::<tocsin_fleet::Health>(&bytes).ok())
        .map(|h| {
            let ok = h.ok();
            let mut v = serde_json::to_value(h).unwrap_or(Value::Null);
            v["ok"] = Value::from(ok);
            v
        }))
}

/// `GET /api/clients`.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let now = now_ms();
    let clients = blocking(&state, move |store| {
        let counts: std::collections::HashMap<String, [u64; 4]> =
            client_counts(store, now, 24)?.into_iter().collect();
        let mut out = Vec::new();
        for l in store.all_liveness()? {
            let c = counts.get(&l.client);
            out.push(client_json(&l, health_of(store, &l.client)?, c, now));
        }
        Ok(out)
    })
    .await?;
    let count = |s: &str| clients.iter().filter(|c| c["state"] == s).count();
    let fleet =
        json!({ "online": count("online"), "stale": count("stale"), "offline": count("offline") });
    let ingest = state.fleet().map(|s| {
        use std::sync::atomic::Ordering::Relaxed;
        json!({
            "connected": s.connected.load(Relaxed),
            "received": s.received.load(Relaxed),
            "samples": s.samples.load(Relaxed),
            "logs": s.logs.load(Relaxed),
            "heartbeats": s.heartbeats.load(Relaxed),
            "dropped_info": s.dropped_info.load(Relaxed),
            "malformed": s.malformed.load(Relaxed),
            "store_errors": s.store_errors.load(Relaxed),
            "recent_malformed": s.recent(),
        })
    });
    Ok(Json(
        json!({ "clients": clients, "fleet": fleet, "mqtt": ingest }),
    ))
}

/// `GET /api/clients/{id}`.
pub async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    tocsin_fleet::message::check_client(&id).map_err(AppError::bad_request)?;
    let now = now_ms();
    let found = blocking(&state, move |store| {
        let Some(l) = store.liveness(&id)? else {
            return Ok(Err(id));
        };
        let counts = client_counts(store, now, 24)?;
        let c = counts.iter().find(|(c, _)| *c == l.client).map(|(_, c)| c);
        Ok(Ok(client_json(&l, health_of(store, &l.client)?, c, now)))
    })
    .await?;
    found
        .map(Json)
        .map_err(|id| AppError::not_found(format!("no client `{id}` has reported")))
}

/// Parameters of `GET /api/clients/{id}/logs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientLogParams {
    /// Only this level and above: `debug`, `info`, `warn`, `error`.
    level: Option<String>,
    /// At most this many (default 50, max 500).
    limit: Option<usize>,
    /// Only records at or after this time (ms).
    since: Option<i64>,
}

/// `GET /api/clients/{id}/logs`: the client's log records, newest first.
pub async fn logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(p): Query<ClientLogParams>,
) -> Result<Json<Value>, AppError> {
    tocsin_fleet::message::check_client(&id).map_err(AppError::bad_request)?;
    let source = format!("{CLIENT_SOURCE_PREFIX}{id}");
    let out =
        crate::logs::records(&state, Some(source), p.level.as_deref(), p.since, p.limit).await?;
    Ok(Json(json!({ "client": id, "logs": out })))
}

/// `GET /api/clients/summary`: log records per client and level over the last 24 h.
pub async fn summary(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let now = now_ms();
    let counts = blocking(&state, move |store| Ok(client_counts(store, now, 24)?)).await?;
    let clients: Vec<Value> = counts
        .iter()
        .map(|(id, c)| json!({ "client": id, "counts": counts_json(c) }))
        .collect();
    Ok(Json(json!({ "hours": 24, "clients": clients })))
}
