//! Routes and handlers.

use axum::extract::{Path, State};
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tocsin_engine::Guest;

use crate::error::AppError;
use crate::state::AppState;

/// The API router over `state`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/healthz", get(healthz))
        .route("/api/guests", get(list_guests))
        .route("/api/guests/{name}", get(get_guest))
        .route("/api/samples/latest", get(latest_samples))
        .route("/api/metrics/query_range", get(crate::metrics::query_range))
        .route("/api/metrics/latest", get(crate::metrics::latest))
        .route("/api/alerts", get(crate::alerts::list))
        .route("/api/alerts/history", get(crate::alerts::history))
        .route("/api/rules", get(crate::alerts::rules))
        .route("/api/rules/{name}", get(crate::alerts::one_rule))
        .route(
            "/api/silences",
            get(crate::alerts::silences).post(crate::alerts::create_silence),
        )
        .route(
            "/api/silences/{id}",
            axum::routing::delete(crate::alerts::expire_silence),
        )
        .route(
            "/api/notifications",
            get(crate::alerts::notifications).post(crate::notify::enqueue),
        )
        .route("/api/templates", get(crate::notify::list))
        .route("/api/charts/alert.png", get(crate::notify::alert_chart))
        .route(
            "/api/templates/{kind}/render",
            axum::routing::post(crate::notify::render),
        )
        .route("/api/health", get(crate::alerts::health))
        .route("/api/policies", get(crate::policies::list))
        .route(
            "/api/policies/{name}/rollback",
            axum::routing::post(crate::policies::rollback),
        )
        .fallback(|| async { AppError::not_found("no such route") })
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Json<Value> {
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

async fn status_page(State(state): State<AppState>) -> Html<String> {
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

async fn list_guests(State(state): State<AppState>) -> Json<Value> {
    let guests: Vec<Value> = state.guests().iter().map(describe).collect();
    Json(json!({ "guests": guests, "errors": state.load_errors() }))
}

async fn get_guest(
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

async fn latest_samples(State(state): State<AppState>) -> Json<Value> {
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    async fn get_json(app: Router, uri: &str) -> (StatusCode, Value) {
        let response = app
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("response");
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
        let response = app(state)
            .oneshot(Request::get("/").body(Body::empty()).expect("request"))
            .await
            .expect("response");
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
            &format!("/api/metrics/query_range?selector=cpu&start={}&end={now}&step=300000&fn=max&agg=sum", now - 300_000),
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
            super::app(AppState::new()),
            "/api/metrics/latest?selector=cpu",
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }

    async fn send(app: Router, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("request");
        let response = app.oneshot(request).await.expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
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
        let (status, body) =
            send(app.clone(), "POST", "/api/templates/welcome/render", "[1]").await;
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
        assert_eq!(store.audit_log(0, 10).expect("audit")[0].actor, "ana");
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
            r#"{"matchers": "{host=\"a\"}", "duration": "2h", "author": "", "comment": "c"}"#,
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
}
