//! `GET /api/openapi.json`: the OpenAPI 3.1 document, generated from the route table the
//! router is built from, so the two cannot disagree: every path and method, its path and
//! query parameters, its body, who may call it and the JSON error of each failure.

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use crate::auth::Need;
use crate::routes::{Endpoint, Input, Output, endpoints};
use crate::state::AppState;

/// `GET /api/openapi.json`.
pub async fn document(State(state): State<AppState>) -> Json<Value> {
    let metrics = if state.limits().metrics_public {
        Need::Public
    } else {
        Need::Operator
    };
    Json(spec(&endpoints(metrics)))
}

fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
    })
}

fn operation(e: &Endpoint) -> Value {
    let mut parameters: Vec<Value> = e
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    parameters.extend(e.query.iter().map(|name| {
        json!({ "name": name, "in": "query", "required": false, "schema": { "type": "string" } })
    }));
    let content = match e.output {
        Output::Json => json!({ "application/json": { "schema": { "type": "object" } } }),
        Output::Html => json!({ "text/html": { "schema": { "type": "string" } } }),
        Output::Png => {
            json!({ "image/png": { "schema": { "type": "string", "contentMediaType": "image/png" } } })
        }
        Output::Text => json!({ "text/plain": { "schema": { "type": "string" } } }),
        Output::Empty => json!({}),
    };
    let mut responses = Map::new();
    responses.insert(
        "2XX".into(),
        json!({ "description": "Success", "content": content }),
    );
    responses.insert(
        "400".into(),
        error("The request is malformed; `error` says how"),
    );
    if e.need != Need::Public {
        responses.insert(
            "401".into(),
            error("No token, or an unknown or revoked one"),
        );
        responses.insert("403".into(), error("The token's role may not call this"));
    }
    if e.input != Input::None {
        responses.insert(
            "413".into(),
            error("The body is over `http.max_body_bytes`"),
        );
    }
    responses.insert("default".into(), error("Any other failure"));
    let mut op = json!({
        "operationId": operation_id(e),
        "summary": e.summary,
        "description": format!("Who may call it: {}.", e.need.roles()),
        "parameters": parameters,
        "responses": responses,
        "x-tocsin-roles": e.need.roles(),
    });
    op["security"] = if e.need == Need::Public {
        json!([])
    } else {
        json!([{ "bearer": [] }, { "cookie": [] }])
    };
    match e.input {
        Input::None => {}
        Input::Json => {
            op["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": { "type": "object" } } },
            });
        }
        Input::Protobuf => {
            op["requestBody"] = json!({
                "required": true,
                "content": { "application/x-protobuf": { "schema": {
                    "type": "string", "contentMediaType": "application/x-protobuf",
                    "description": "snappy-compressed prometheus.WriteRequest",
                } } },
            });
        }
        Input::Text => {
            op["requestBody"] = json!({
                "required": true,
                "content": { "text/plain": { "schema": {
                    "type": "string",
                    "description": "Prometheus text exposition: `name{label=\"v\"} value [timestamp-ms]` per line",
                } } },
            });
        }
        Input::Form => {
            op["requestBody"] = json!({
                "required": true,
                "content": { "application/x-www-form-urlencoded": { "schema": {
                    "type": "object", "properties": { "token": { "type": "string" } },
                    "required": ["token"],
                } } },
            });
        }
    }
    op
}

fn operation_id(e: &Endpoint) -> String {
    let path: String = e
        .path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let path = path
        .split('_')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    let path = if path.is_empty() { "root".into() } else { path };
    format!("{}_{path}", e.method.as_str().to_ascii_lowercase())
}

/// The document for `endpoints`.
pub fn spec(endpoints: &[Endpoint]) -> Value {
    let mut paths = Map::new();
    for e in endpoints {
        let item = paths
            .entry(e.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        item[e.method.as_str().to_ascii_lowercase()] = operation(e);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Tocsin",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Tocsin's HTTP API. Send `Authorization: Bearer <token>`; \
                roles: admin (everything), operator (read and silences), client (ingest \
                for its own id). Every error is `{\"error\": \"...\"}`.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "cookie": { "type": "apiKey", "in": "cookie", "name": "tocsin_token" },
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": { "type": "string" } },
                },
            },
        },
    })
}
