//! Handler tests through `oneshot`.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::state::AppState;

const ADMIN: &str = "tsn_test_admin";
const OPERATOR: &str = "tsn_test_operator";
const CLIENT: &str = "tsn_test_client";

/// The router over `state`, accepting the three test tokens.
fn app(state: AppState) -> Router {
    let token =
        |name: &str, role: &str, secret: &str, client: Option<&str>| tocsin_store::TokenRecord {
            name: name.into(),
            role: role.into(),
            client: client.map(str::to_string),
            sha256: crate::auth::digest(secret),
            created_ms: 0,
            created_by: "test".into(),
        };
    state.tokens().replace(&[
        token("root", "admin", ADMIN, None),
        token("ops", "operator", OPERATOR, None),
        token("probe", "client", CLIENT, Some("probe-1")),
    ]);
    super::app(state)
}

async fn call(
    app: Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Body,
) -> axum::response::Response {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    app.oneshot(request.body(body).expect("request"))
        .await
        .expect("response")
}

async fn json_of(response: axum::response::Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn get_json(app: Router, uri: &str) -> (StatusCode, Value) {
    let response = call(app, "GET", uri, Some(ADMIN), Body::empty()).await;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, serde_json::from_slice(&bytes).expect("json"))
}

#[tokio::test]
async fn healthz_reports_ok_and_counts() {
    let state = AppState::new();
    state.set_guests(vec![], vec!["p.toml: broken".into()]);
    let (status, body) = get_json(app(state), "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["guests"], 0);
    assert_eq!(body["policy_errors"], 1);
}

#[tokio::test]
async fn status_page_is_html_with_policy_errors() {
    let state = AppState::new();
    state.set_guests(vec![], vec!["bad.toml: broken".into()]);
    let response = call(app(state), "GET", "/", Some(OPERATOR), Body::empty()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    let html = String::from_utf8(bytes.to_vec()).expect("utf8");
    assert!(html.contains("<title>Tocsin</title>"));
    assert!(html.contains("bad.toml: broken"));
}

#[tokio::test]
async fn healthz_counts_stored_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = tocsin_store::Store::open(&dir.path().join("db")).expect("store");
    let sample = |host: &str| tocsin_store::Sample {
        name: "up".into(),
        labels: vec![("host".into(), host.into())],
        ts_ms: 1,
        value: 1.0,
    };
    store.ingest(&[sample("a"), sample("b")]).expect("ingest");
    let (_, body) = get_json(
        app(AppState::with_store(std::sync::Arc::new(store))),
        "/healthz",
    )
    .await;
    assert_eq!(body["series"], 2);
    let (_, body) = get_json(app(AppState::new()), "/healthz").await;
    assert!(body["series"].is_null());
}

#[tokio::test]
async fn metric_queries_step_aggregate_and_refuse_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = tocsin_store::Store::open(&dir.path().join("db")).expect("store");
    let now = 1_800_000_000_000i64; // minute-aligned
    let mut batch = Vec::new();
    for (host, core, base) in [("a", "0", 10.0), ("a", "1", 30.0), ("b", "0", 50.0)] {
        for i in 0..10 {
            batch.push(tocsin_store::Sample {
                name: "cpu".into(),
                labels: vec![("host".into(), host.into()), ("core".into(), core.into())],
                ts_ms: now - 600_000 + i * 60_000,
                value: base + i as f64,
            });
        }
    }
    store.ingest(&batch).expect("ingest");
    let app = app(AppState::with_store(std::sync::Arc::new(store)));
    let range = |q: &str| {
        format!(
            "/api/metrics/query_range?start={}&end={now}&step=60000&{q}",
            now - 600_000
        )
    };
    let (status, body) = get_json(app.clone(), &range("selector=cpu")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["series"].as_array().expect("series").len(), 3);
    assert_eq!(body["series"][0]["points"][1], json!([now - 540_000, 11.0]));

    let (_, body) = get_json(app.clone(), &range("selector=cpu&agg=avg&by=host")).await;
    let series = body["series"].as_array().expect("series");
    assert_eq!(series.len(), 2);
    assert_eq!(series[0]["labels"], json!({"host": "a"}));
    assert_eq!(series[0]["points"][0], json!([now - 600_000, 20.0]));

    // Max over 5-minute steps, summed over every series.
    let (_, body) = get_json(
        app.clone(),
        &format!(
            "/api/metrics/query_range?selector=cpu&start={}&end={now}&step=300000&fn=max&agg=sum",
            now - 300_000
        ),
    )
    .await;
    assert_eq!(
        body["series"][0]["points"][0],
        json!([now - 300_000, 10.0 + 30.0 + 50.0 + 15.0])
    );

    for bad in [
        range("selector=cpu{host="),
        range("selector=cpu&fn=median"),
        range("selector=cpu&by=host"),
        "/api/metrics/query_range?selector=cpu&start=10&end=5".to_string(),
        // Would wrap around i64 and loop "forever" if the step count overflowed.
        format!(
            "/api/metrics/query_range?selector=cpu&start={}&end={}&step=1",
            i64::MIN + 1,
            i64::MAX
        ),
        format!(
            "/api/metrics/query_range?selector=cpu&start={}&end={}&step=1&fn=max",
            i64::MIN + 1,
            i64::MAX
        ),
        "/api/metrics/latest?selector=cpu&lookback=-5".to_string(),
    ] {
        let (status, body) = get_json(app.clone(), &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}: {body}"
        );
    }
    let (status, body) = get_json(
        self::app(AppState::new()),
        "/api/metrics/latest?selector=cpu",
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}

async fn send(app: Router, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    json_of(call(app, method, uri, Some(ADMIN), Body::from(body.to_string())).await).await
}

#[tokio::test]
async fn template_previews_render_without_sending_and_refuse_bad_input() {
    let app = app(AppState::new());
    let (status, body) = send(
        app.clone(),
        "POST",
        "/api/templates/server_alert/render",
        r#"{"firing": [{"id": "cpu-high/a", "rule": "cpu-high", "status": "firing",
                "severity": "critical", "summary": "CPU at 97%", "labels": {"host": "a"}}],
                "status": "firing"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["subject"], "[FIRING:1] cpu-high on tocsin");
    assert!(body["text"].as_str().unwrap_or("").contains("CPU at 97%"));
    assert!(
        body["fallback"]
            .as_str()
            .unwrap_or("")
            .contains("no template")
    );
    let (status, body) = send(app.clone(), "POST", "/api/templates/welcome/render", "[1]").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = send(app.clone(), "POST", "/api/templates/welcome/render", "{").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = send(app.clone(), "POST", "/api/templates/a%20b/render", "{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = get_json(app, "/api/templates").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["templates"], serde_json::json!([]));
}

#[tokio::test]
async fn notifications_are_queued_only_for_configured_receivers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        std::sync::Arc::new(tocsin_store::Store::open(&dir.path().join("db")).expect("store"));
    let state = AppState::with_store(store.clone());
    state.set_receivers(vec![tocsin_alerting::Receiver {
        name: "ops".into(),
        channel: "mail".into(),
        to: vec!["a@example.org".into(), "b@example.org".into()],
        format: "generic".into(),
        routing_key: Default::default(),
    }]);
    let app = app(state);
    let (status, body) = send(
        app.clone(),
        "POST",
        "/api/notifications",
        r#"{"receiver": "ops", "kind": "maintenance", "vars": {"title": "DB"}, "author": "ana"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["ids"].as_array().map(Vec::len), Some(2));
    let queued = store.due_messages(i64::MAX, 10).expect("due");
    let to: Vec<&str> = queued
        .iter()
        .map(|m| m.message.recipient.as_str())
        .collect();
    assert_eq!(to, ["a@example.org", "b@example.org"]);
    assert_eq!(queued[0].message.payload["vars"]["title"], "DB");
    let audit = &store.audit_log(0, 10).expect("audit")[0];
    assert_eq!(audit.actor, "token:root");
    assert!(audit.detail.ends_with("for ana"), "{}", audit.detail);
    for (body, why) in [
        (
            r#"{"receiver": "nobody", "kind": "custom"}"#,
            "unknown receiver",
        ),
        (
            r#"{"receiver": "ops", "kind": "server_alert"}"#,
            "alerts are the router's",
        ),
        (
            r#"{"receiver": "ops", "kind": "password_reset", "vars": {"reset_link": "http://evil"}}"#,
            "no anonymous account mail",
        ),
        (
            r#"{"receiver": "ops", "kind": "custom", "vars": {"base_url": "http://evil"}}"#,
            "server variables are the server's",
        ),
        (r#"{"receiver": "ops", "kind": "a b"}"#, "bad kind"),
        (
            r#"{"receiver": "ops", "kind": "custom", "to": "x@y"}"#,
            "no recipients from requests",
        ),
        (
            r#"{"receiver": "ops", "kind": "custom", "vars": {"n": 1}}"#,
            "vars are strings",
        ),
    ] {
        let (status, reply) = send(app.clone(), "POST", "/api/notifications", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {reply}");
        assert!(reply["error"].is_string(), "{why}");
    }
    assert_eq!(store.due_messages(i64::MAX, 10).expect("due").len(), 2);
}

#[tokio::test]
async fn silences_are_created_listed_expired_and_audited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        std::sync::Arc::new(tocsin_store::Store::open(&dir.path().join("db")).expect("store"));
    let app = app(AppState::with_store(store.clone()));
    let (status, body) = send(
            app.clone(),
            "POST",
            "/api/silences",
            r#"{"matchers": "{alertname=\"cpu-high\",host=\"a\"}", "duration": "2h", "author": "ana", "comment": "fan swap"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_u64().expect("id");
    for bad in [
        r#"{"matchers": "{host=", "duration": "2h", "author": "a", "comment": "c"}"#,
        r#"{"matchers": "{host=\"a\"}", "author": "a", "comment": "c"}"#,
        r#"{"matchers": "{host=\"a\"}", "duration": "2h", "author": "a", "comment": " "}"#,
        r#"{"matchers": "{host=\"a\"}", "duration": "soon", "author": "a", "comment": "c"}"#,
        r#"{"matchers": 5}"#,
        "not json",
    ] {
        let (status, body) = send(app.clone(), "POST", "/api/silences", bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
    let (_, list) = get_json(app.clone(), "/api/silences").await;
    assert_eq!(list["silences"][0]["state"], "active");
    assert_eq!(list["silences"][0]["comment"], "fan swap");
    let (status, body) = send(app.clone(), "DELETE", &format!("/api/silences/{id}"), "").await;
    assert_eq!(
        (status, body["state"].as_str()),
        (StatusCode::OK, Some("expired"))
    );
    let (status, _) = send(app.clone(), "DELETE", "/api/silences/999", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let audit = store.audit_log(0, 10).expect("audit");
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["silence.expire", "silence.create"]);
}

#[tokio::test]
async fn unknown_guest_and_route_are_json_404s() {
    let (status, body) = get_json(app(AppState::new()), "/api/guests/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no guest named `nope`");
    let (status, body) = get_json(app(AppState::new()), "/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no such route");
}

#[tokio::test]
async fn latest_samples_render_non_finite_values_as_strings() {
    use tocsin_engine::types::Sample;
    let state = AppState::new();
    let sample = |name: &str, value| Sample {
        name: name.into(),
        labels: vec![("core".into(), "0".into())],
        ts_ms: 5,
        value,
    };
    state.set_latest(
        "basics",
        crate::Round {
            at_ms: 5,
            samples: vec![sample("a", 1.5), sample("b", f64::NAN)],
        },
    );
    let (status, body) = get_json(app(state), "/api/samples/latest").await;
    assert_eq!(status, StatusCode::OK);
    let samples = &body["basics"]["samples"];
    assert_eq!(samples[0]["value"], 1.5);
    assert_eq!(samples[0]["labels"]["core"], "0");
    assert_eq!(samples[1]["value"], "NaN");
}

#[tokio::test]
async fn guests_list_carries_load_errors() {
    let state = AppState::new();
    state.set_guests(vec![], vec!["x.toml: bad".into()]);
    let (status, body) = get_json(app(state), "/api/guests").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["guests"], json!([]));
    assert_eq!(body["errors"][0], "x.toml: bad");
}

/// A concrete URI for a route: path parameters filled in.
fn uri_of(path: &str) -> String {
    path.split('/')
        .map(|seg| if seg.starts_with('{') { "1" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_route_refuses_missing_unknown_and_too_weak_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        std::sync::Arc::new(tocsin_store::Store::open(&dir.path().join("db")).expect("store"));
    let app = app(AppState::with_store(store));
    let table = crate::routes::endpoints(crate::auth::Need::Operator);
    assert!(table.len() > 25);
    // What docs/api.md promises, written out here rather than read from the table under
    // test: a route given the wrong role fails this.
    use crate::auth::Need;
    let promised = |method: &str, path: &str| match (method, path) {
        (_, "/healthz" | "/login" | "/logout" | "/api/openapi.json") => Need::Public,
        ("GET", "/") => Need::Page,
        ("POST", "/api/metrics" | "/api/metrics/text" | "/api/v1/write") => Need::Client,
        (
            "POST",
            "/api/notifications" | "/api/policies/{name}" | "/api/policies/{name}/rollback",
        )
        | (_, "/api/tokens" | "/api/tokens/{name}" | "/api/audit") => Need::Admin,
        _ => Need::Operator,
    };
    for e in &table {
        let need = promised(e.method.as_str(), e.path);
        // The chart checks its token itself (a signed link may stand in for one).
        let declared = if e.path == "/api/charts/alert.png" {
            Need::Operator
        } else {
            e.need
        };
        assert_eq!(declared, need, "{} {}", e.method, e.path);
        let uri = uri_of(e.path);
        let method = e.method.as_str();
        let body = || Body::from("{}");
        let missing = call(app.clone(), method, &uri, None, body()).await;
        let unknown = call(app.clone(), method, &uri, Some("tsn_nope"), body()).await;
        let client = call(app.clone(), method, &uri, Some(CLIENT), body()).await;
        let operator = call(app.clone(), method, &uri, Some(OPERATOR), body()).await;
        let admin = call(app.clone(), method, &uri, Some(ADMIN), body()).await;
        let what = format!("{method} {uri}");
        match need {
            Need::Public => {
                assert!(![401, 403].contains(&missing.status().as_u16()), "{what}");
            }
            Need::Page => {
                assert_eq!(missing.status(), StatusCode::SEE_OTHER, "{what}");
                assert_eq!(missing.headers()["location"], "/login", "{what}");
                assert_eq!(client.status(), StatusCode::FORBIDDEN, "{what}");
                assert_eq!(operator.status(), StatusCode::OK, "{what}");
            }
            need => {
                let www = missing.headers().get("www-authenticate").cloned();
                let (status, body) = json_of(missing).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
                assert!(body["error"].is_string(), "{what}: {body}");
                assert!(www.is_some(), "{what}: WWW-Authenticate");
                assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED, "{what}");
                use crate::auth::Role;
                for (response, role) in [(client, Role::Client), (operator, Role::Operator)] {
                    let (status, body) = json_of(response).await;
                    assert_eq!(
                        status == StatusCode::FORBIDDEN,
                        !role.allows(need),
                        "{what}: {role:?} got {status} {body}"
                    );
                    if status == StatusCode::FORBIDDEN {
                        assert!(
                            body["error"]
                                .as_str()
                                .is_some_and(|e| e.contains(role.name()))
                        );
                    }
                }
            }
        }
        // The admin reaches every route: whatever it answers, it is not an auth
        // failure and not the fallback.
        let (status, body) = json_of(admin).await;
        assert!(![401, 403].contains(&status.as_u16()), "{what}: {status}");
        assert_ne!(body["error"], "no such route", "{what}");
    }
}

#[tokio::test]
async fn oversized_malformed_and_misdirected_requests_get_json_errors() {
    let state = AppState::new();
    state.set_limits(crate::Limits {
        max_body_bytes: 1024,
        ..Default::default()
    });
    let app = app(state);
    let big = format!(r#"{{"comment": "{}"}}"#, "x".repeat(4096));
    for (method, uri, body, expect) in [
        (
            "POST",
            "/api/silences",
            big.as_str(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "POST",
            "/api/silences",
            "{not json",
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/silences",
            "[]",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("PUT", "/api/silences", "{}", StatusCode::METHOD_NOT_ALLOWED),
        (
            "GET",
            "/api/alerts/history?limit=lots",
            "",
            StatusCode::BAD_REQUEST,
        ),
        ("DELETE", "/api/silences/x", "", StatusCode::BAD_REQUEST),
    ] {
        let response = call(
            app.clone(),
            method,
            uri,
            Some(ADMIN),
            Body::from(body.to_string()),
        )
        .await;
        let (status, reply) = json_of(response).await;
        let what = format!("{method} {uri} {}", &body[..body.len().min(20)]);
        assert!(
            status == expect
                || (expect == StatusCode::UNPROCESSABLE_ENTITY
                    && status == StatusCode::BAD_REQUEST),
            "{what}: {status} {reply}"
        );
        assert!(
            reply["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {reply}"
        );
    }
}

#[tokio::test]
async fn slow_requests_are_cut_at_the_deadline_with_a_json_error() {
    let state = AppState::new();
    state.set_limits(crate::Limits {
        request_timeout: std::time::Duration::from_millis(50),
        ..Default::default()
    });
    let slow = Router::new()
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                "late"
            }),
        )
        .layer(axum::middleware::from_fn_with_state(state, super::deadline));
    let started = std::time::Instant::now();
    let (status, body) = json_of(call(slow, "GET", "/slow", None, Body::empty()).await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("50ms")),
        "{body}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes() {
    let (status, doc) = json_of(
        call(
            app(AppState::new()),
            "GET",
            "/api/openapi.json",
            None,
            Body::empty(),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let table = crate::routes::endpoints(crate::auth::Need::Operator);
    let mut listed: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            listed.push((method.to_uppercase(), path.clone()));
            let declared: Vec<&str> = op["parameters"]
                .as_array()
                .expect("parameters")
                .iter()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            let in_path: Vec<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            assert_eq!(declared, in_path, "{method} {path}");
            assert!(op["responses"]["2XX"].is_object(), "{method} {path}");
        }
    }
    let mut expected: Vec<(String, String)> = table
        .iter()
        .map(|e| (e.method.to_string(), e.path.to_string()))
        .collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(doc["paths"]["/metrics"]["get"]["responses"]["401"]["description"].is_string());
    assert_eq!(doc["paths"]["/healthz"]["get"]["security"], json!([]));
    assert_eq!(
        doc["paths"]["/api/tokens"]["post"]["x-tocsin-roles"],
        "admin"
    );
}

#[tokio::test]
async fn tokens_are_created_used_limited_revoked_and_audited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        std::sync::Arc::new(tocsin_store::Store::open(&dir.path().join("db")).expect("store"));
    let state = AppState::with_store(store.clone());
    let app = app(state.clone());
    let (status, made) = send(
        app.clone(),
        "POST",
        "/api/tokens",
        r#"{"name": "grafana", "role": "operator"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let secret = made["token"].as_str().expect("secret").to_string();
    assert!(secret.starts_with("tsn_"));
    // The router sees the new token at once (the test tokens were replaced by the
    // store's, so it is the only one now).
    let (status, _) = json_of(
        call(
            app.clone(),
            "GET",
            "/api/guests",
            Some(&secret),
            Body::empty(),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = json_of(
        call(
            app.clone(),
            "POST",
            "/api/tokens",
            Some(&secret),
            Body::from(r#"{"name": "x", "role": "admin"}"#),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an operator makes no tokens");
    let listed = store.tokens().expect("tokens");
    assert_eq!(listed[0].sha256, crate::auth::digest(&secret));
    assert!(
        !serde_json::to_string(&listed)
            .expect("json")
            .contains(&secret)
    );

    // The admin token of the test was replaced by the store's set: add one back.
    let admin = crate::auth::new_secret().expect("secret");
    store
        .create_token(&tocsin_store::TokenRecord {
            name: "root".into(),
            role: "admin".into(),
            client: None,
            sha256: crate::auth::digest(&admin),
            created_ms: 0,
            created_by: "test".into(),
        })
        .expect("admin");
    state.load_tokens().expect("load");
    let admin_call = |method: &'static str, uri: &'static str, body: &'static str| {
        let app = app.clone();
        let admin = admin.clone();
        async move { json_of(call(app, method, uri, Some(&admin), Body::from(body)).await).await }
    };
    let (_, list) = admin_call("GET", "/api/tokens", "").await;
    assert_eq!(list["tokens"][0]["name"], "grafana");
    assert!(list["tokens"][0].get("sha256").is_none());
    for (body, expect) in [
        (
            r#"{"name": "grafana", "role": "operator"}"#,
            StatusCode::CONFLICT,
        ),
        (
            r#"{"name": "a b", "role": "operator"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (r#"{"name": "x", "role": "root"}"#, StatusCode::BAD_REQUEST),
        (
            r#"{"name": "x", "role": "client"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"name": "x", "role": "operator", "client": "c"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (r#"{"name": "x"}"#, StatusCode::BAD_REQUEST),
    ] {
        let (status, reply) = admin_call("POST", "/api/tokens", body).await;
        assert_eq!(status, expect, "{body}: {reply}");
    }
    let (status, _) = admin_call(
        "POST",
        "/api/tokens",
        r#"{"name": "dev-1", "role": "client", "client": "dev-1"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = admin_call("DELETE", "/api/tokens/grafana", "").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = admin_call("DELETE", "/api/tokens/grafana", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = json_of(
        call(
            app.clone(),
            "GET",
            "/api/guests",
            Some(&secret),
            Body::empty(),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked at once");
    let (_, audit) = admin_call("GET", "/api/audit", "").await;
    let actions: Vec<(&str, &str, &str)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or(""),
                e["target"].as_str().unwrap_or(""),
                e["actor"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("token.revoke", "grafana", "token:root"),
            ("token.create", "dev-1", "token:root"),
            ("token.create", "grafana", "token:root"),
        ]
    );
}

#[tokio::test]
async fn a_browser_logs_in_with_a_token_and_gets_a_strict_cookie() {
    let app = app(AppState::new());
    let form = |token: &str| {
        Request::post("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={token}")))
            .expect("request")
    };
    let ok = app.clone().oneshot(form(OPERATOR)).await.expect("response");
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let cookie = ok.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    for part in ["tocsin_token=", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let pair = cookie.split(';').next().expect("pair").to_string();
    let page = app
        .clone()
        .oneshot(
            Request::get("/")
                .header("cookie", pair)
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(page.status(), StatusCode::OK);
    for (token, expect) in [
        ("tsn_wrong", StatusCode::UNAUTHORIZED),
        (CLIENT, StatusCode::FORBIDDEN),
    ] {
        let refused = app.clone().oneshot(form(token)).await.expect("response");
        assert_eq!(refused.status(), expect);
        assert!(refused.headers().get("set-cookie").is_none());
        let html = axum::body::to_bytes(refused.into_body(), 1 << 20)
            .await
            .expect("body");
        assert!(
            String::from_utf8_lossy(&html).contains("<form"),
            "the form again"
        );
    }
    let out = app
        .oneshot(
            Request::post("/logout")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .expect("cookie")
            .contains("Max-Age=0")
    );
}

#[tokio::test]
async fn metrics_expose_own_counters_and_optionally_stored_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        std::sync::Arc::new(tocsin_store::Store::open(&dir.path().join("db")).expect("store"));
    let now = crate::metrics::now_ms();
    store
        .ingest(&[
            tocsin_store::Sample {
                name: "node_load1".into(),
                labels: vec![("host".into(), "a \"b\"".into())],
                ts_ms: now - 1000,
                value: 0.5,
            },
            tocsin_store::Sample {
                // Named like one of Tocsin's own families: left out of the export.
                name: "tocsin_series".into(),
                labels: vec![],
                ts_ms: now - 1000,
                value: 1.0,
            },
        ])
        .expect("ingest");
    let state = AppState::with_store(store);
    let text = |app: Router| async move {
        let response = call(app, "GET", "/metrics", Some(OPERATOR), Body::empty()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap_or("")
                .starts_with("text/plain; version=0.0.4")
        );
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        String::from_utf8(bytes.to_vec()).expect("utf8")
    };
    let page = text(app(state.clone())).await;
    assert!(
        page.contains("# TYPE tocsin_build_info gauge\ntocsin_build_info{version=\""),
        "{page}"
    );
    assert!(page.contains("tocsin_series 2\n"), "{page}");
    assert!(
        !page.contains("node_load1"),
        "series are not exported unless asked"
    );
    state.set_limits(crate::Limits {
        metrics_export_series: true,
        ..Default::default()
    });
    let page = text(app(state.clone())).await;
    assert!(
        page.contains("node_load1{host=\"a \\\"b\\\"\"} 0.5\n"),
        "{page}"
    );
    assert!(page.contains("tocsin_metrics_skipped 1\n"), "{page}");
    let response = call(app(state.clone()), "GET", "/metrics", None, Body::empty()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    state.set_limits(crate::Limits {
        metrics_public: true,
        ..Default::default()
    });
    let response = call(app(state), "GET", "/metrics", None, Body::empty()).await;
    assert_eq!(response.status(), StatusCode::OK, "public when configured");
}

#[tokio::test]
async fn the_prometheus_query_api_answers_in_prometheus_shapes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        std::sync::Arc::new(tocsin_store::Store::open(&dir.path().join("db")).expect("store"));
    let t0 = 1_800_000_000_000i64;
    let mut batch = Vec::new();
    for i in 0..=20 {
        for (host, per_s) in [("a", 10.0), ("b", 30.0)] {
            batch.push(tocsin_store::Sample {
                name: "net_bytes_total".into(),
                labels: vec![("host".into(), host.into()), ("dir".into(), "rx".into())],
                ts_ms: t0 + i * 15_000,
                value: per_s * 15.0 * i as f64,
            });
            batch.push(tocsin_store::Sample {
                name: "load1".into(),
                labels: vec![("host".into(), host.into())],
                ts_ms: t0 + i * 15_000,
                value: if host == "a" { 1.0 } else { 3.0 },
            });
        }
    }
    store.ingest(&batch).expect("ingest");
    let app = app(AppState::with_store(store));
    let end = (t0 + 300_000) / 1000;
    let q = |query: &str| {
        format!(
            "/api/v1/query?time={end}&query={}",
            query
                .replace('{', "%7B")
                .replace('}', "%7D")
                .replace('"', "%22")
                .replace(' ', "%20")
                .replace('[', "%5B")
                .replace(']', "%5D")
                .replace('=', "%3D")
                .replace('>', "%3E")
        )
    };
    let (status, body) = get_json(app.clone(), &q("load1")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["resultType"], "vector");
    let result = body["data"]["result"].as_array().expect("result");
    assert_eq!(result.len(), 2);
    assert_eq!(
        result[0]["metric"],
        json!({"__name__": "load1", "host": "a"})
    );
    assert_eq!(result[0]["value"], json!([end as f64, "1"]));

    let (_, body) = get_json(app.clone(), &q("sum by (dir) (rate(net_bytes_total[1m]))")).await;
    let result = &body["data"]["result"];
    assert_eq!(result[0]["metric"], json!({"dir": "rx"}), "{body}");
    let rate: f64 = result[0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("rate");
    assert!((rate - 40.0).abs() < 1e-6, "{rate}");

    let (_, body) = get_json(app.clone(), &q("max(load1) without (host)")).await;
    assert_eq!(body["data"]["result"][0]["value"][1], "3", "{body}");
    let (_, body) = get_json(app.clone(), &q("count(load1 > 2)")).await;
    assert_eq!(body["data"]["result"][0]["value"][1], "1", "{body}");
    let (_, body) = get_json(app.clone(), &q("1")).await;
    assert_eq!(
        body["data"],
        json!({"resultType": "scalar", "result": [end as f64, "1"]})
    );

    // Grafana posts forms.
    let form = format!(
        "query=avg_over_time(load1%7Bhost%3D%22b%22%7D%5B1m%5D)&start={}&end={end}&step=60",
        end - 240
    );
    let response = app
        .clone()
        .oneshot(
            Request::post("/api/v1/query_range")
                .header("authorization", format!("Bearer {OPERATOR}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(form))
                .expect("request"),
        )
        .await
        .expect("response");
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["resultType"], "matrix");
    let values = body["data"]["result"][0]["values"]
        .as_array()
        .expect("values");
    assert_eq!(values.len(), 5);
    assert_eq!(values[4], json!([end as f64, "3"]));
    assert_eq!(body["data"]["result"][0]["metric"], json!({"host": "b"}));

    let (_, body) = get_json(app.clone(), "/api/v1/labels").await;
    assert_eq!(body["data"], json!(["__name__", "dir", "host"]));
    let (_, body) = get_json(app.clone(), "/api/v1/label/__name__/values").await;
    assert_eq!(body["data"], json!(["load1", "net_bytes_total"]));
    let (_, body) = get_json(
        app.clone(),
        "/api/v1/series?match[]=load1%7Bhost%3D%22a%22%7D",
    )
    .await;
    assert_eq!(body["data"], json!([{"__name__": "load1", "host": "a"}]));

    for bad in [
        q("load1 + 1"),
        q("rate(load1)"),
        "/api/v1/query".to_string(),
        format!(
            "/api/v1/query_range?query=load1&start={end}&end={}&step=1",
            end + 86_400
        ),
        "/api/v1/query_range?query=load1&start=10&end=5&step=1".to_string(),
        "/api/v1/series".to_string(),
        q("sum(1)"),
    ] {
        let (status, body) = get_json(app.clone(), &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["status"], "error", "{bad}");
        assert_eq!(body["errorType"], "bad_data", "{bad}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
}

#[tokio::test]
async fn clients_ingest_only_under_their_own_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        std::sync::Arc::new(tocsin_store::Store::open(&dir.path().join("db")).expect("store"));
    let app = app(AppState::with_store(store.clone()));
    let post = |token: &'static str, uri: &'static str, body: Vec<u8>| {
        let app = app.clone();
        async move { json_of(call(app, "POST", uri, Some(token), Body::from(body)).await).await }
    };
    let (status, body) = post(
        CLIENT,
        "/api/metrics",
        br#"{"samples": [{"name": "temp_celsius", "labels": {"client": "someone-else", "room": "a"}, "ts_ms": 1000, "value": 21.5},
                          {"name": "bad name", "value": 1}]}"#
            .to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["accepted"], 1, "the valid sample is kept: {body}");
    assert!(
        body["rejected"][0]
            .as_str()
            .is_some_and(|e| e.contains("sample 1")),
        "{body}"
    );
    let stored = store.query_raw("temp_celsius", 0, i64::MAX).expect("query");
    assert_eq!(
        stored[0].key.labels,
        vec![
            ("client".to_string(), "probe-1".to_string()),
            ("room".to_string(), "a".to_string())
        ],
        "a client cannot speak for another"
    );

    // The text format, as a script prints it: bad lines named, the rest kept, pinned.
    let (status, body) = post(
        CLIENT,
        "/api/metrics/text",
        b"# HELP queue_depth Jobs\nqueue_depth{queue=\"mail\",client=\"x\"} 7 3000\nnot a sample\n"
            .to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    assert!(
        body["rejected"][0]
            .as_str()
            .is_some_and(|e| e.starts_with("line 3:")),
        "{body}"
    );
    let depth = store.query_raw("queue_depth", 0, i64::MAX).expect("query");
    assert_eq!(
        depth[0].key.labels[0],
        ("client".to_string(), "probe-1".to_string())
    );
    assert_eq!(depth[0].points, vec![(3000, 7.0)]);
    let (status, _) = post(CLIENT, "/api/metrics/text", vec![0xff, 0xfe]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Another Tocsin (or Prometheus) forwarding with remote_write.
    let batch = vec![tocsin_store::Sample {
        name: "up".into(),
        labels: vec![("job".into(), "edge".into())],
        ts_ms: 2000,
        value: 1.0,
    }];
    let body = tocsin_export::remote_write::encode(&batch).expect("encode");
    let (status, reply) = post(ADMIN, "/api/v1/write", body.clone()).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{reply}");
    let (status, _) = post(CLIENT, "/api/v1/write", body).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let ups = store.query_raw("up", 0, i64::MAX).expect("query");
    let labels: Vec<_> = ups.iter().map(|s| s.key.labels.clone()).collect();
    assert_eq!(labels.len(), 2, "{labels:?}");
    assert!(
        labels.contains(&vec![("job".into(), "edge".into())]),
        "admins send as they are"
    );
    let (status, reply) = post(ADMIN, "/api/v1/write", b"not snappy at all".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .is_some_and(|e| e.contains("snappy"))
    );
}

#[tokio::test]
async fn logs_are_listed_by_source_and_level_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        std::sync::Arc::new(tocsin_store::Store::open(&dir.path().join("db")).expect("store"));
    let now = crate::metrics::now_ms();
    let record = |source: &str, level, ts_ms, message: &str| tocsin_store::LogRecord {
        source: source.into(),
        level,
        ts_ms,
        message: message.into(),
        fields: vec![("unit".into(), "nginx".into())],
    };
    use tocsin_store::Level;
    store
        .append_logs(&[
            record("journal", Level::Info, now - 3000, "started"),
            record("journal", Level::Error, now - 2000, "disk failed"),
            record("/var/log/app.log", Level::Warn, now - 1000, "slow"),
        ])
        .expect("append");
    let app = app(AppState::with_store(store));
    let (status, body) = get_json(app.clone(), "/api/logs?level=warn").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let messages: Vec<&str> = body["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .filter_map(|l| l["message"].as_str())
        .collect();
    assert_eq!(
        messages,
        ["slow", "disk failed"],
        "newest first, warn and above"
    );
    assert_eq!(body["logs"][1]["fields"]["unit"], "nginx");
    let (_, body) = get_json(app.clone(), "/api/logs?source=journal&limit=1").await;
    assert_eq!(body["logs"][0]["message"], "disk failed");
    let (_, body) = get_json(app.clone(), "/api/logs/summary?hours=2").await;
    let journal = body["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .find(|s| s["source"] == "journal")
        .cloned()
        .expect("journal");
    assert_eq!(
        journal["counts"],
        json!({"debug": 0, "info": 1, "warn": 0, "error": 1})
    );
    let (status, _) = get_json(app, "/api/logs?level=loud").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_session_cookie_reads_but_never_changes_anything() {
    let app = app(AppState::new());
    let with_cookie = |method: &str, uri: &str| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("cookie", format!("tocsin_token={ADMIN}"))
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .expect("request")
    };
    let read = app
        .clone()
        .oneshot(with_cookie("GET", "/api/guests"))
        .await
        .expect("read");
    assert_eq!(read.status(), StatusCode::OK);
    for (method, uri) in [
        ("POST", "/api/policies/x/rollback"),
        ("POST", "/api/tokens"),
        ("DELETE", "/api/silences/1"),
    ] {
        let change = app
            .clone()
            .oneshot(with_cookie(method, uri))
            .await
            .expect("change");
        assert_eq!(change.status(), StatusCode::UNAUTHORIZED, "{method} {uri}");
    }
}

#[tokio::test]
async fn chart_links_work_signed_or_with_a_token() {
    let state = AppState::new();
    let key = tocsin_notify::chart_link::ChartKey(vec![9; 32]);
    state.set_site(tocsin_notify::Site {
        chart_key: key.clone(),
        ..Default::default()
    });
    let app = app(state);
    let now = crate::metrics::now_ms() / 1000;
    let signed = tocsin_notify::chart_link::sign(&key, "rule=cpu-high&host=a", now);
    let status = |uri: String, token: Option<&'static str>| {
        let app = app.clone();
        async move { call(app, "GET", &uri, token, Body::empty()).await.status() }
    };
    // No store here: a request that passes the check meets 503, not 401.
    let base = "/api/charts/alert.png";
    assert_eq!(
        status(format!("{base}?{signed}"), None).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        status(format!("{base}?rule=cpu-high&host=a"), None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(
            format!("{base}?{}", signed.replace("host=a", "host=b")),
            None
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(format!("{base}?rule=x"), Some(CLIENT)).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(format!("{base}?rule=x"), Some(OPERATOR)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}
