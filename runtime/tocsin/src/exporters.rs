//! Wiring of the exporters (`tocsin-export`) into a running Tocsin: the SNMP agent's tree
//! built from the store and the loaded guests, and the alerts forwarded to Alertmanagers
//! (the router's view of them, shadow rules left out).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use tocsin_api::AppState;
use tocsin_export::snmp::{self, AgentStats, Tree, Value};
use tocsin_export::{AlertmanagerConfig, SnmpConfig};
use tocsin_store::Store;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The objects under the base OID, as documented in docs/api.md: `(arc, name)`.
pub const OBJECTS: &[(u32, &str)] = &[
    (1, "tocsinVersion"),
    (2, "tocsinUptime"),
    (3, "tocsinHealthScore"),
    (4, "tocsinAlertsCritical"),
    (5, "tocsinAlertsWarning"),
    (6, "tocsinAlertsInfo"),
    (7, "tocsinClientsOnline"),
    (8, "tocsinClientsOffline"),
    (9, "tocsinSeries"),
    (10, "tocsinGuestsLoaded"),
    (11, "tocsinCpuUsagePercent"),
    (12, "tocsinMemoryUsedPercent"),
];

fn gauge(v: f64) -> Value {
    Value::Gauge(v.round().clamp(0.0, u32::MAX as f64) as u32)
}

/// Tocsin's tree now.
pub fn tree(base: &[u32], state: &AppState, store: &Store) -> Tree {
    let now = now_ms();
    let latest = |selector: &str| -> Vec<f64> {
        store
            .latest(selector, now, 5 * 60_000)
            .map(|v| v.into_iter().map(|v| v.value).collect())
            .unwrap_or_default()
    };
    let mut firing: BTreeMap<String, f64> = BTreeMap::new();
    for a in store.all_alerts().unwrap_or_default() {
        if a.phase == tocsin_store::AlertPhase::Firing {
            *firing.entry(a.severity).or_default() += 1.0;
        }
    }
    let firing = |s: &str| gauge(firing.get(s).copied().unwrap_or(0.0));
    let clients = latest("client_up");
    let online = clients.iter().filter(|v| **v >= 1.0).count() as f64;
    // The worst scorer's score; -1 while no scorer has one.
    let health = state
        .board()
        .scores()
        .into_iter()
        .filter_map(|(_, round, _)| round?.score)
        .fold(None, |worst: Option<f64>, s| {
            Some(worst.map_or(s, |w| w.min(s)))
        });
    let first = |v: Vec<f64>| v.first().copied().map(gauge).unwrap_or(Value::Gauge(0));
    let values = [
        Value::Text(env!("CARGO_PKG_VERSION").into()),
        Value::Ticks((state.uptime_seconds().saturating_mul(100)).min(u32::MAX as u64) as u32),
        Value::Integer(health.map_or(-1, |h| h.round() as i64)),
        firing("critical"),
        firing("warning"),
        firing("info"),
        gauge(online),
        gauge(clients.len() as f64 - online),
        gauge(store.series_count() as f64),
        gauge(state.guests().len() as f64),
        first(latest("cpu_usage_percent")),
        first(latest("memory_used_percent")),
    ];
    OBJECTS
        .iter()
        .zip(values)
        .map(|((arc, _), value)| {
            let mut oid = base.to_vec();
            oid.extend([*arc, 0]);
            (oid, value)
        })
        .collect()
}

/// Start the SNMP agent when configured.
pub fn spawn_snmp(
    config: &SnmpConfig,
    state: AppState,
    store: Arc<Store>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    if !config.enabled {
        return Ok(());
    }
    if config.community.is_empty() {
        anyhow::bail!("snmp.community must be set when snmp.enabled is true");
    }
    let base =
        snmp::parse_oid(&config.base_oid).map_err(|e| anyhow::anyhow!("snmp.base_oid: {e}"))?;
    snmp::spawn(
        config.listen,
        config.community.clone().into_bytes(),
        move || tree(&base, &state, &store),
        Arc::new(AgentStats::default()),
        stop,
    )
    .with_context(|| format!("binding snmp.listen {}", config.listen))?;
    tracing::info!(addr = %config.listen, base_oid = %config.base_oid, "serving SNMPv2c");
    Ok(())
}

/// Start forwarding alerts to the configured Alertmanagers.
pub fn spawn_alertmanager(
    config: &AlertmanagerConfig,
    state: AppState,
    generator: String,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    if config.urls.is_empty() {
        return Ok(());
    }
    let board = state.board().clone();
    tocsin_export::alertmanager::spawn(
        config.clone(),
        generator,
        move || {
            board
                .alert_views()
                .into_iter()
                .map(|a| tocsin_export::alertmanager::Alert {
                    labels: a.labels,
                    annotations: a.annotations,
                    firing: a.firing,
                    starts_ms: a.starts_ms,
                    resolved_ms: a.resolved_ms,
                })
                .collect()
        },
        stop,
    )
    .context("starting the alertmanager thread")?;
    tracing::info!(
        urls = config.urls.len(),
        "forwarding alerts to Alertmanager"
    );
    Ok(())
}
