//! The Prometheus HTTP query API over Tocsin's store, for Grafana's Prometheus data source
//! and other Prometheus clients: `/api/v1/query`, `/api/v1/query_range`, `/api/v1/series`,
//! `/api/v1/labels`, `/api/v1/label/{name}/values` (GET or form POST), answering in
//! Prometheus' JSON shapes, errors included. Queries are the [`tocsin_store::promql`] subset.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde_json::{Value, json};
use tocsin_store::query::step_times;
use tocsin_store::{Aggregation, Store, is_stale};

use crate::metrics::{blocking, now_ms};
use crate::state::AppState;
use tocsin_store::promql::{Expr, Grouping, RangeFn, duration_ms, parse};

/// How far back an instant selector looks for a point (Prometheus' default).
const LOOKBACK_MS: i64 = 5 * 60_000;
/// Most steps of a range query (Prometheus' limit).
const MAX_STEPS: i64 = 11_000;

type Labels = Vec<(String, String)>;

/// One result series: labels (with `__name__` where kept) and points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Labels, sorted.
    pub labels: Labels,
    /// Points.
    pub points: Vec<(i64, f64)>,
}

/// What a query evaluates to.
#[derive(Debug, Clone, PartialEq)]
pub enum Evaluated {
    /// A number (at every step).
    Scalar(f64),
    /// Series.
    Series(Vec<Series>),
}

/// An error in Prometheus' shape.
#[derive(Debug)]
pub struct PromError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl PromError {
    fn bad(message: impl Into<String>) -> PromError {
        PromError {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_data",
            message: message.into(),
        }
    }
}

impl From<crate::AppError> for PromError {
    fn from(e: crate::AppError) -> PromError {
        let kind = match e.status() {
            StatusCode::BAD_REQUEST => "bad_data",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "execution",
        };
        PromError {
            status: e.status(),
            kind,
            message: e.message().to_string(),
        }
    }
}

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        let body = json!({ "status": "error", "errorType": self.kind, "error": self.message });
        (self.status, Json(body)).into_response()
    }
}

fn with_name(name: &str, labels: &[(String, String)]) -> Labels {
    let mut out = labels.to_vec();
    out.push(("__name__".into(), name.into()));
    out.sort();
    out
}

fn over_range(func: RangeFn, points: &[(i64, f64)], window: i64, t: i64) -> Option<f64> {
    // Points are ascending: find the window's points by binary search, not a full pass.
    let lo = points.partition_point(|p| p.0 <= t.saturating_sub(window));
    let hi = points.partition_point(|p| p.0 <= t);
    let points = &points[lo..hi.max(lo)];
    match func {
        RangeFn::Rate => return tocsin_store::query::rate(points, window, t),
        RangeFn::Increase => return tocsin_store::query::increase(points, window, t),
        _ => {}
    }
    let inside: Vec<f64> = points
        .iter()
        .filter(|p| p.0 > t.saturating_sub(window) && p.0 <= t && !is_stale(p.1))
        .map(|p| p.1)
        .collect();
    let last = *inside.last()?;
    let n = inside.len() as f64;
    Some(match func {
        RangeFn::AvgOverTime => inside.iter().sum::<f64>() / n,
        RangeFn::MinOverTime => inside.iter().copied().fold(f64::INFINITY, f64::min),
        RangeFn::MaxOverTime => inside.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        RangeFn::SumOverTime => inside.iter().sum(),
        RangeFn::CountOverTime => n,
        RangeFn::LastOverTime | RangeFn::Rate | RangeFn::Increase => last,
    })
}

fn aggregate(op: Aggregation, grouping: &Grouping, series: Vec<Series>) -> Vec<Series> {
    let mut groups: BTreeMap<Labels, BTreeMap<i64, Vec<f64>>> = BTreeMap::new();
    for s in series {
        let key: Labels = s
            .labels
            .into_iter()
            .filter(|(k, _)| match grouping {
                Grouping::By(keep) => keep.contains(k),
                Grouping::Without(drop) => k != "__name__" && !drop.contains(k),
            })
            .collect();
        let group = groups.entry(key).or_default();
        for (t, v) in s.points {
            group.entry(t).or_default().push(v);
        }
    }
    groups
        .into_iter()
        .map(|(labels, at)| {
            let points = at
                .into_iter()
                .map(|(t, vs)| {
                    let values: Vec<(Labels, f64)> =
                        vs.into_iter().map(|v| (Vec::new(), v)).collect();
                    let v = tocsin_store::query::aggregate(&values, op, &[])
                        .first()
                        .map(|g| g.1)
                        .unwrap_or(f64::NAN);
                    (t, v)
                })
                .collect();
            Series { labels, points }
        })
        .collect()
}

/// Evaluate `expr` at `start, start+step, .. <= end`.
pub fn evaluate(
    store: &Store,
    expr: &Expr,
    start: i64,
    end: i64,
    step: i64,
) -> Result<Evaluated, String> {
    Ok(match expr {
        Expr::Number(n) => Evaluated::Scalar(*n),
        Expr::Select(selector) => Evaluated::Series(
            store
                .query_range(selector, start, end, step, LOOKBACK_MS)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|s| Series {
                    labels: with_name(&s.key.name, &s.key.labels),
                    points: s.points,
                })
                .collect(),
        ),
        Expr::Range {
            func,
            selector,
            window_ms,
        } => {
            let raw = store
                .query_raw(selector, start.saturating_sub(*window_ms), end)
                .map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            for s in raw {
                let points: Vec<(i64, f64)> = step_times(start, end, step)
                    .filter_map(|t| over_range(*func, &s.points, *window_ms, t).map(|v| (t, v)))
                    .collect();
                if points.is_empty() {
                    continue;
                }
                let labels = if *func == RangeFn::LastOverTime {
                    with_name(&s.key.name, &s.key.labels)
                } else {
                    s.key.labels.clone()
                };
                out.push(Series { labels, points });
            }
            Evaluated::Series(out)
        }
        Expr::Filter { expr, op, value } => match evaluate(store, expr, start, end, step)? {
            Evaluated::Scalar(n) if op.holds(n, *value) => Evaluated::Scalar(n),
            Evaluated::Scalar(_) => Evaluated::Series(Vec::new()),
            Evaluated::Series(series) => Evaluated::Series(
                series
                    .into_iter()
                    .filter_map(|mut s| {
                        s.points.retain(|p| op.holds(p.1, *value));
                        (!s.points.is_empty()).then_some(s)
                    })
                    .collect(),
            ),
        },
        Expr::Aggregate { op, grouping, expr } => match evaluate(store, expr, start, end, step)? {
            Evaluated::Scalar(_) => return Err("an aggregation needs series, not a number".into()),
            Evaluated::Series(series) => Evaluated::Series(aggregate(*op, grouping, series)),
        },
    })
}

/// Prometheus' sample value: a string.
fn sample(t: i64, v: f64) -> Value {
    let text = if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        v.to_string()
    };
    json!([t as f64 / 1000.0, text])
}

fn metric(labels: &Labels) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect(),
    )
}

/// A Prometheus time: unix seconds (fractions allowed) or RFC 3339. Answers ms.
fn time_ms(text: &str) -> Result<i64, PromError> {
    if let Ok(seconds) = text.parse::<f64>() {
        let ms = seconds * 1000.0;
        if ms.is_finite() && ms.abs() < 1e15 {
            return Ok(ms.round() as i64);
        }
    }
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .ok_or_else(|| PromError::bad(format!("cannot parse `{text}` as a time")))
}

/// The form or query parameters of a request.
struct Params(Vec<(String, String)>);

impl Params {
    fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &str) -> Result<&str, PromError> {
        self.one(name)
            .ok_or_else(|| PromError::bad(format!("missing parameter `{name}`")))
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

fn success(data: Value) -> Json<Value> {
    Json(json!({ "status": "success", "data": data }))
}

/// `GET|POST /api/v1/query`.
pub async fn query(
    State(state): State<AppState>,
    Form(p): Form<Vec<(String, String)>>,
) -> Result<Json<Value>, PromError> {
    let p = Params(p);
    let expr = parse(p.required("query")?).map_err(PromError::bad)?;
    let at = match p.one("time") {
        Some(t) => time_ms(t)?,
        None => now_ms(),
    };
    let result = blocking(&state, move |store| {
        evaluate(store, &expr, at, at, 1).map_err(crate::AppError::bad_request)
    })
    .await?;
    Ok(success(match result {
        Evaluated::Scalar(n) => json!({ "resultType": "scalar", "result": sample(at, n) }),
        Evaluated::Series(series) => json!({
            "resultType": "vector",
            "result": series
                .iter()
                .filter_map(|s| {
                    let &(t, v) = s.points.last()?;
                    Some(json!({ "metric": metric(&s.labels), "value": sample(t, v) }))
                })
                .collect::<Vec<_>>(),
        }),
    }))
}

/// `GET|POST /api/v1/query_range`.
pub async fn query_range(
    State(state): State<AppState>,
    Form(p): Form<Vec<(String, String)>>,
) -> Result<Json<Value>, PromError> {
    let p = Params(p);
    let expr = parse(p.required("query")?).map_err(PromError::bad)?;
    let start = time_ms(p.required("start")?)?;
    let end = time_ms(p.required("end")?)?;
    let step = duration_ms(p.required("step")?).map_err(PromError::bad)?;
    if end < start {
        return Err(PromError::bad("end is before start"));
    }
    if (end - start) / step >= MAX_STEPS {
        return Err(PromError::bad(format!(
            "more than {MAX_STEPS} steps: use a larger step"
        )));
    }
    let result = blocking(&state, move |store| {
        evaluate(store, &expr, start, end, step).map_err(crate::AppError::bad_request)
    })
    .await?;
    let series = match result {
        Evaluated::Scalar(n) => vec![Series {
            labels: Vec::new(),
            points: step_times(start, end, step).map(|t| (t, n)).collect(),
        }],
        Evaluated::Series(series) => series,
    };
    Ok(success(json!({
        "resultType": "matrix",
        "result": series
            .iter()
            .map(|s| json!({
                "metric": metric(&s.labels),
                "values": s.points.iter().map(|&(t, v)| sample(t, v)).collect::<Vec<_>>(),
            }))
            .collect::<Vec<_>>(),
    })))
}

/// The series selected by the `match[]` parameters (every series when there are none).
async fn matched(state: &AppState, p: &Params) -> Result<Vec<Labels>, PromError> {
    let mut selectors = p.all("match[]");
    if selectors.is_empty() {
        selectors.push(r#"{__name__=~".+"}"#.to_string());
    }
    let keys = blocking(state, move |store| {
        let mut out = BTreeSet::new();
        for s in &selectors {
            for k in store.series_keys(s)? {
                out.insert(with_name(&k.name, &k.labels));
            }
        }
        Ok(out)
    })
    .await?;
    Ok(keys.into_iter().collect())
}

/// `GET|POST /api/v1/series`: the label sets of the series `match[]` selects.
pub async fn series(
    State(state): State<AppState>,
    Form(p): Form<Vec<(String, String)>>,
) -> Result<Json<Value>, PromError> {
    let p = Params(p);
    if p.all("match[]").is_empty() {
        return Err(PromError::bad("no match[] parameter provided"));
    }
    let keys = matched(&state, &p).await?;
    Ok(success(Value::Array(keys.iter().map(metric).collect())))
}

/// `GET|POST /api/v1/labels`: every label name.
pub async fn labels(
    State(state): State<AppState>,
    Form(p): Form<Vec<(String, String)>>,
) -> Result<Json<Value>, PromError> {
    let keys = matched(&state, &Params(p)).await?;
    let names: BTreeSet<&str> = keys
        .iter()
        .flat_map(|l| l.iter().map(|(k, _)| k.as_str()))
        .collect();
    Ok(success(json!(names)))
}

/// `GET /api/v1/label/{name}/values`: every value of one label.
pub async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Form(p): Form<Vec<(String, String)>>,
) -> Result<Json<Value>, PromError> {
    let keys = matched(&state, &Params(p)).await?;
    let values: BTreeSet<&str> = keys
        .iter()
        .flat_map(|l| {
            l.iter()
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
        })
        .collect();
    Ok(success(json!(values)))
}
