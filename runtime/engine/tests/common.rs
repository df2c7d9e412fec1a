//! Shared helpers for engine tests: locate guests built by `cargo xtask guests`.

#![allow(dead_code)]

use std::path::PathBuf;

use tocsin_engine::types::{Context, Series};
use tocsin_engine::{Budgets, Engine, EngineConfig, Grants, Guest, GuestKind, Providers};

/// Bytes of the guest component `name` (crate name with `_`), built for wasm32-wasip2.
pub fn guest_bytes(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../guests/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "guest {} missing ({e}): build guests with `cargo xtask guests`",
            path.display()
        )
    })
}

pub fn engine() -> Engine {
    Engine::new(EngineConfig::default(), Providers::local()).expect("engine")
}

pub fn load(engine: &Engine, name: &str, kind: GuestKind, budgets: Budgets) -> Guest {
    engine
        .load(name, &guest_bytes(name), kind, Grants::none(), budgets)
        .expect("load guest")
}

pub fn ctx(params: &[(&str, &str)]) -> Context {
    Context {
        now_ms: 1_700_000_000_000,
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

pub fn series(name: &str, host: &str, values: &[f64]) -> Series {
    Series {
        name: name.to_string(),
        labels: vec![("host".to_string(), host.to_string())],
        points: values
            .iter()
            .enumerate()
            .map(|(i, v)| (1_700_000_000_000 + i as i64 * 1000, *v))
            .collect(),
    }
}
