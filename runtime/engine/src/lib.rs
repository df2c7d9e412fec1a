//! The sandboxed wasm engine: one wasmtime `Engine`, guests loaded with their grants
//! checked, every call under a deadline, a memory cap and an output cap.
//!
//! ```no_run
//! use tocsin_engine::{Budgets, Engine, EngineConfig, GuestKind, Grants};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::new(EngineConfig::default(), tocsin_capabilities::Providers::local())?;
//! let bytes = std::fs::read("guests/target/wasm32-wasip2/release/cpu_high.wasm")?;
//! let guest = engine.load("cpu-high", &bytes, GuestKind::AlertRule, Grants::none(), Budgets::default())?;
//! let mut instance = guest.instance();
//! let ctx = tocsin_engine::types::Context { now_ms: 0, params: vec![] };
//! let signals = instance.evaluate(&ctx, &[], &[])?;
//! # let _ = signals;
//! # Ok(()) }
//! ```
//!
//! This crate owns isolation: what a guest can reach (WASI with nothing granted, plus the
//! capabilities its grants name) and how much it can consume. It does not decide *when*
//! guests run (schedulers do) nor keep their results (the store does).

mod cache;
mod engine;
mod error;
mod grants;
mod guest;
mod limits;
mod output;
mod state;

pub use cache::{CacheOutcome, CompileCache, sha256_hex};
pub use engine::{Engine, EngineConfig};
pub use error::{CallError, LoadError};
pub use grants::{Grants, check_imports};
pub use guest::{CALL_BUCKETS_US, Guest, GuestInstance, GuestKind, GuestStats};
pub use limits::Budgets;
pub use tocsin_bindings::types;
pub use tocsin_capabilities::{Capability, Providers};
