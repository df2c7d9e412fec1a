//! The HTTP API: `fn app(state) -> Router`. The status page (`/`, rendered by
//! `tocsin-web`) behind a login, health, guests, series, alerts, silences, notifications,
//! policies, tokens and the audit log, `/metrics` for Prometheus and the OpenAPI document —
//! every route declared once in the route table with the role it needs. Only this crate
//! (and `web/`) speaks HTTP.

mod access;
mod alerts;
pub mod auth;
mod clients;
mod error;
mod exposition;
pub mod grafana;
mod guests;
mod ingest;
mod login;
mod logs;
mod metrics;
mod notify;
mod openapi;
mod policies;
mod prom_api;
mod routes;
mod scrape;
mod state;

pub use access::check_new;
pub use error::AppError;
pub use routes::{Endpoint, app, endpoints};
pub use state::{AppState, DeployRefusal, Family, Limits, MetricsSource, PolicyAdmin, Round};
