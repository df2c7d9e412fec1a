//! Alert rules in the host: each `alert-rule` policy's guest is called on its interval with
//! the series its manifest selects; the host runs the lifecycle (pending → firing →
//! resolved, `for`, `keep_firing_for`, no-data and error states) and keeps it in the store,
//! so restarts and hot swaps neither reset timers nor re-fire alerts.
//!
//! This crate decides when rules run and what their results mean; the engine isolates the
//! guests, the store keeps the records, and routing/notification consume the events.

mod input;
pub mod lifecycle;
mod router;
pub mod routing;
mod rule;
mod scheduler;
pub mod scoring;

pub use lifecycle::{Condition, Event, EventKind, Outcome, RULE_KEY, Timing};
pub use router::{AlertView, Router, TickReport, deliver_log_channel};
pub use routing::{Receiver, RoutingConfig, Secret, WEBHOOK_FORMATS};
pub use rule::{Evaluation, InputSeries, MAX_BACKTEST_STEPS, Rule, SHOWN_INPUT};
pub use scheduler::{Board, Command, Control, spawn};
pub use scoring::{ScoreRound, ScoreSummary, Scorer};
