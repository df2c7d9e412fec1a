//! The route table — every endpoint once, with the role it needs and what the OpenAPI
//! document says of it — and `app`, which builds the router from it with the limits
//! every request is held to (body size, time) and JSON errors for every failure.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};

use crate::auth::Need;
use crate::error::AppError;
use crate::state::AppState;

/// How an endpoint takes its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Path and query only.
    None,
    /// A JSON body.
    Json,
    /// An HTML form (`application/x-www-form-urlencoded`).
    Form,
    /// A snappy-compressed protobuf (remote_write).
    Protobuf,
    /// Plain text (the Prometheus text exposition format).
    Text,
}

/// What an endpoint answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// JSON.
    Json,
    /// An HTML page (or a redirect).
    Html,
    /// A PNG image.
    Png,
    /// Prometheus text exposition.
    Text,
    /// Nothing (204).
    Empty,
}

/// One endpoint.
pub struct Endpoint {
    /// Its method.
    pub method: Method,
    /// Its path, with `{name}` parameters.
    pub path: &'static str,
    /// Who may call it.
    pub need: Need,
    /// One line on what it does.
    pub summary: &'static str,
    /// Its query parameters.
    pub query: &'static [&'static str],
    /// Its body.
    pub input: Input,
    /// Its answer.
    pub output: Output,
    /// Bounded by its own limits rather than `http.request_timeout` (a deploy compiling
    /// a large component, a backtest of many evaluations). Only reads (GET) are cut at
    /// the deadline in any case.
    pub slow: bool,
    handler: MethodRouter<AppState>,
}

fn at(
    method: Method,
    path: &'static str,
    need: Need,
    summary: &'static str,
    handler: MethodRouter<AppState>,
) -> Endpoint {
    let input = if matches!(method, Method::POST) {
        Input::Json
    } else {
        Input::None
    };
    Endpoint {
        method,
        path,
        need,
        summary,
        query: &[],
        input,
        output: Output::Json,
        slow: false,
        handler,
    }
}

impl Endpoint {
    fn query(mut self, names: &'static [&'static str]) -> Endpoint {
        self.query = names;
        self
    }

    fn slow(mut self) -> Endpoint {
        self.slow = true;
        self
    }

    fn io(mut self, input: Input, output: Output) -> Endpoint {
        self.input = input;
        self.output = output;
        self
    }
}

/// Every endpoint of the server. `metrics` is the need of `/metrics` (public when the
/// configuration says scrapers come without a token).
#[rustfmt::skip]
pub fn endpoints(metrics: Need) -> Vec<Endpoint> {
    use crate::{access, alerts, clients, guests, ingest, login, logs, notify, openapi, policies, prom_api, scrape};
    use Method as M;
    use Need::{Admin, Client, Operator, Page, Public};
    vec![
        at(M::GET, "/", Page, "The status page", get(guests::status_page)).io(Input::None, Output::Html),
        at(M::GET, "/login", Public, "The login form", get(login::form)).io(Input::None, Output::Html),
        at(M::POST, "/login", Public, "Log in with a token (sets the session cookie)", post(login::submit)).io(Input::Form, Output::Html),
        at(M::POST, "/logout", Public, "Forget the session cookie", post(login::logout)).io(Input::None, Output::Html),
        at(M::GET, "/healthz", Public, "Liveness, version and counts", get(guests::healthz)),
        at(M::GET, "/api/openapi.json", Public, "This API's OpenAPI document", get(openapi::document)),
        at(M::GET, "/metrics", metrics, "Tocsin's own metrics in the Prometheus text format", get(scrape::metrics)).io(Input::None, Output::Text),
        at(M::GET, "/api/guests", Operator, "Loaded guests with grants, budgets and counters", get(guests::list_guests)),
        at(M::GET, "/api/guests/{name}", Operator, "One loaded guest", get(guests::get_guest)),
        at(M::GET, "/api/samples/latest", Operator, "The latest round of each collector", get(guests::latest_samples)),
        at(M::GET, "/api/metrics/query_range", Operator, "Stored series over a time range", get(crate::metrics::query_range))
            .query(&["selector", "start", "end", "step", "fn", "lookback", "agg", "by"]),
        at(M::GET, "/api/metrics/latest", Operator, "The newest point of each selected series", get(crate::metrics::latest))
            .query(&["selector", "lookback"]),
        at(M::POST, "/api/metrics", Client, "A JSON batch of samples (a client token's samples get its client label)", post(ingest::json_batch)),
        at(M::POST, "/api/metrics/text", Client, "Samples in the Prometheus text format, one per line (a client token's samples get its client label)", post(ingest::text_batch)).io(Input::Text, Output::Json),
        at(M::POST, "/api/v1/write", Client, "Prometheus remote_write into Tocsin (a client token's samples get its client label)", post(ingest::remote_write))
            .io(Input::Protobuf, Output::Empty),
        at(M::GET, "/api/logs", Operator, "Log records, newest first", get(logs::list)).query(&["source", "level", "since", "limit"]),
        at(M::GET, "/api/logs/summary", Operator, "Log records per source and level over the last hours", get(logs::summary)).query(&["hours"]),
        at(M::GET, "/api/clients", Operator, "Fleet clients: liveness, health, 24 h log counts; MQTT ingest counters", get(clients::list)),
        at(M::GET, "/api/clients/summary", Operator, "Log records per client and level over the last 24 h", get(clients::summary)),
        at(M::GET, "/api/clients/{id}", Operator, "One fleet client", get(clients::one)),
        at(M::GET, "/api/clients/{id}/logs", Operator, "A client's log records, newest first", get(clients::logs)).query(&["level", "limit", "since"]),
        at(M::GET, "/api/alerts", Operator, "Alert records", get(alerts::list)).query(&["phase", "rule"]),
        at(M::GET, "/api/alerts/history", Operator, "Alert changes, newest first", get(alerts::history)).query(&["rule", "since", "limit"]),
        at(M::GET, "/api/rules", Operator, "Each rule's newest evaluation", get(alerts::rules)),
        at(M::GET, "/api/rules/{name}", Operator, "One rule's newest evaluation", get(alerts::one_rule)),
        at(M::POST, "/api/rules/{name}/backtest", Operator, "Replay stored history through a rule: when it would have fired", post(policies::backtest)).slow(),
        at(M::GET, "/api/silences", Operator, "Silences", get(alerts::silences)),
        at(M::POST, "/api/silences", Operator, "Create a silence", post(alerts::create_silence)),
        at(M::DELETE, "/api/silences/{id}", Operator, "Expire a silence now", delete(alerts::expire_silence)),
        at(M::GET, "/api/notifications", Operator, "Queued and sent notifications", get(alerts::notifications)),
        at(M::POST, "/api/notifications", Admin, "Queue a maintenance or custom message", post(notify::enqueue)),
        at(M::GET, "/api/templates", Operator, "Template kinds and their guests", get(notify::list)),
        at(M::POST, "/api/templates/{kind}/render", Operator, "Render a template without sending", post(notify::render)),
        at(M::GET, "/api/charts/alert.png", Public, "The chart of an alert's series (a signed link or an operator token)", get(notify::alert_chart))
            .query(&["rule"]).io(Input::None, Output::Png),
        at(M::GET, "/api/health", Operator, "Health scores with history", get(alerts::health)).query(&["window"]),
        at(M::GET, "/api/policies", Operator, "Policies, running versions and history", get(policies::list)),
        at(M::POST, "/api/policies/{name}", Admin, "Deploy a version (manifest + base64 component); 409 lists grants it would add", post(policies::deploy)
            .layer(DefaultBodyLimit::max(policies::MAX_DEPLOY_BYTES))).slow(),
        at(M::POST, "/api/policies/{name}/rollback", Admin, "Run a policy's previous version", post(policies::rollback))
            .io(Input::None, Output::Json),
        at(M::GET, "/api/tokens", Admin, "API tokens (names and roles, never secrets)", get(access::list_tokens)),
        at(M::POST, "/api/tokens", Admin, "Create a token; its secret is shown once", post(access::create_token)),
        at(M::DELETE, "/api/tokens/{name}", Admin, "Revoke a token", delete(access::revoke_token)),
        at(M::GET, "/api/audit", Admin, "The audit log, newest first", get(access::audit)).query(&["since", "limit"]),
        at(M::GET, "/api/v1/query", Operator, "Prometheus API: instant query (PromQL subset)", get(prom_api::query))
            .query(&["query", "time"]),
        at(M::POST, "/api/v1/query", Operator, "Prometheus API: instant query (form body)", post(prom_api::query))
            .io(Input::Form, Output::Json),
        at(M::GET, "/api/v1/query_range", Operator, "Prometheus API: range query (PromQL subset)", get(prom_api::query_range))
            .query(&["query", "start", "end", "step"]),
        at(M::POST, "/api/v1/query_range", Operator, "Prometheus API: range query (form body)", post(prom_api::query_range))
            .io(Input::Form, Output::Json),
        at(M::GET, "/api/v1/series", Operator, "Prometheus API: series matching match[]", get(prom_api::series))
            .query(&["match[]", "start", "end"]),
        at(M::POST, "/api/v1/series", Operator, "Prometheus API: series (form body)", post(prom_api::series))
            .io(Input::Form, Output::Json),
        at(M::GET, "/api/v1/labels", Operator, "Prometheus API: label names", get(prom_api::labels))
            .query(&["match[]", "start", "end"]),
        at(M::POST, "/api/v1/labels", Operator, "Prometheus API: label names (form body)", post(prom_api::labels))
            .io(Input::Form, Output::Json),
        at(M::GET, "/api/v1/label/{name}/values", Operator, "Prometheus API: values of a label", get(prom_api::label_values))
            .query(&["match[]", "start", "end"]),
    ]
}

/// The API router over `state`, with the limits `state` holds now.
pub fn app(state: AppState) -> Router {
    let limits = state.limits();
    let metrics = if limits.metrics_public {
        Need::Public
    } else {
        Need::Operator
    };
    let mut paths: BTreeMap<&'static str, MethodRouter<AppState>> = BTreeMap::new();
    for e in endpoints(metrics) {
        // Reads (GET, and the Prometheus API's form POSTs) are cut at the deadline. Writes
        // are not: their blocking work would finish
        // after a 503 that said it had not (a remote_write sender would send it again).
        let read = e.method == Method::GET
            || (e.path.starts_with("/api/v1/") && e.path != "/api/v1/write");
        let timed = if e.slow || !read {
            e.handler
        } else {
            e.handler
                .route_layer(middleware::from_fn_with_state(state.clone(), deadline))
        };
        let guarded = timed.route_layer(middleware::from_fn_with_state(
            (state.clone(), e.need),
            crate::auth::require,
        ));
        let merged = match paths.remove(e.path) {
            Some(other) => other.merge(guarded),
            None => guarded,
        };
        paths.insert(e.path, merged);
    }
    let mut router = Router::new();
    for (path, methods) in paths {
        router = router.route(path, methods);
    }
    router
        .fallback(|| async { AppError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn(json_errors))
        .with_state(state)
}

/// Answer 503 when a handler takes longer than the configured request timeout.
async fn deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.limits().request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request took longer than {}",
                humantime::format_duration(limit)
            ),
        )
        .into_response(),
    }
}

/// Turn every error that is not JSON yet (axum's rejections: a body over the limit, a
/// malformed query, a wrong method) into `{"error": "..."}`, keeping its status and headers.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    // axum's rejections are plain text (or empty); JSON errors and HTML pages stay.
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut json = AppError::new(status, message).into_response();
    json.headers_mut().extend(parts.headers);
    json
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
