//! Host-side bindings for the `tocsin:monitor` WIT package: the only `bindgen!` site.
//!
//! [`host`] generates one Rust module per host interface (`sensors`, `metrics`, ...) with
//! its `Host` trait and `add_to_linker`. Each guest world ([`collector`], [`scorer`],
//! [`alert_rule`], [`template`], [`ingest`]) reuses those modules through `with`, so a
//! capability is implemented once and serves every kind of guest. Nothing here has
//! behaviour of its own: it must stay generated code and re-exports.

/// The host interfaces and shared types.
pub mod host {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "host",
    });
}

macro_rules! guest_world {
    ($(#[$doc:meta])* $module:ident, $world:literal) => {
        $(#[$doc])*
        pub mod $module {
            wasmtime::component::bindgen!({
                path: "../../wit",
                world: $world,
                with: {
                    "tocsin:monitor/types": crate::host::tocsin::monitor::types,
                    "tocsin:monitor/sensors": crate::host::tocsin::monitor::sensors,
                    "tocsin:monitor/metrics": crate::host::tocsin::monitor::metrics,
                    "tocsin:monitor/logs": crate::host::tocsin::monitor::logs,
                    "tocsin:monitor/kv": crate::host::tocsin::monitor::kv,
                    "tocsin:monitor/mqtt": crate::host::tocsin::monitor::mqtt,
                    "tocsin:monitor/pipes": crate::host::tocsin::monitor::pipes,
                    "tocsin:monitor/mail": crate::host::tocsin::monitor::mail,
                },
            });
        }
    };
}

guest_world!(
    /// `collector`: `collect(ctx) -> result<list<sample>, string>`.
    collector, "collector"
);
guest_world!(
    /// `scorer`: `score(ctx, input) -> result<health, string>`.
    scorer, "scorer"
);
guest_world!(
    /// `alert-rule`: `evaluate(ctx, input, active) -> result<list<signal>, string>`.
    alert_rule, "alert-rule"
);
guest_world!(
    /// `template`: `render(kind, vars) -> result<rendered, string>`.
    template, "template"
);
guest_world!(
    /// `ingest`: `on-message(topic, payload) -> result<list<ingested>, string>`.
    ingest, "ingest"
);

pub use host::tocsin::monitor::{kv, logs, mail, metrics, mqtt, pipes, sensors, types};
