//! The HTTP API: `fn app(state) -> Router`. The status page (`/`, rendered by
//! `tocsin-web`), health, the loaded guests with their grants, budgets and counters, and
//! the latest samples of each collector. Only this crate (and `web/`) speaks HTTP.

mod alerts;
mod error;
mod metrics;
mod notify;
mod policies;
mod routes;
mod state;

pub use error::AppError;
pub use routes::app;
pub use state::{AppState, PolicyAdmin, Round};
