//! Wiring of the exporters (`tocsin-export`) into a running Tocsin: the SNMP agent's tree
//! built from the store and the loaded guests, remote_write fed by a store tap, and the
//! alerts forwarded to Alertmanagers (the router's view of them, shadow rules left out);
//! their counters on `/metrics`.

use crate::run::now_ms;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use tocsin_api::AppState;
use tocsin_api::Family;
use tocsin_export::snmp::{self, AgentStats, Tree, Value};
use tocsin_export::{AlertmanagerConfig, RemoteWriteConfig, SnmpConfig};
use tocsin_store::Store;

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
        // This host's own series: a client's carry a `client` label.
        first(latest(r#"cpu_usage_percent{client=""}"#)),
        first(latest(r#"memory_used_percent{client=""}"#)),
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
    let stats = Arc::new(AgentStats::default());
    let counters = stats.clone();
    state.add_metrics(Arc::new(move || {
        let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed) as f64;
        vec![Family {
            name: "tocsin_snmp_requests_total".into(),
            kind: "counter",
            help: "SNMP datagrams: answered, malformed (not SNMPv2c requests) or with another community (dropped)".into(),
            points: vec![
                (vec![("outcome".into(), "answered".into())], n(&counters.answered)),
                (vec![("outcome".into(), "malformed".into())], n(&counters.malformed)),
                (vec![("outcome".into(), "wrong_community".into())], n(&counters.wrong_community)),
            ],
        }]
    }));
    let tree_state = state.clone();
    snmp::spawn(
        config.listen,
        config.community.clone().into_bytes(),
        move || tree(&base, &tree_state, &store),
        stats,
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

/// Start remote_write to the configured receivers: a store tap feeds their queues.
pub fn spawn_remote_write(
    config: &RemoteWriteConfig,
    state: &AppState,
    store: &Store,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    if config.urls.is_empty() {
        return Ok(());
    }
    let queues = tocsin_export::remote_write::spawn(config, stop)
        .context("starting the remote_write threads")?;
    let fed: Vec<_> = queues.iter().map(|(_, q)| q.clone()).collect();
    store.add_tap(Arc::new(move |samples| {
        for q in &fed {
            q.push(samples);
        }
    }));
    let labelled: Vec<(String, _)> = queues
        .into_iter()
        .map(|(u, q)| (tocsin_export::shown_url(&u), q))
        .collect();
    state.add_metrics(Arc::new(move || {
        let family =
            |name: &str,
             kind: &'static str,
             help: &str,
             pick: fn(&tocsin_export::remote_write::Stats) -> u64| Family {
                name: name.into(),
                kind,
                help: help.into(),
                points: labelled
                    .iter()
                    .map(|(url, q)| {
                        (
                            vec![("url".to_string(), url.clone())],
                            pick(&q.stats) as f64,
                        )
                    })
                    .collect(),
            };
        vec![
            family(
                "tocsin_remote_write_sent_samples_total",
                "counter",
                "Samples a remote_write receiver accepted",
                |s| s.sent.load(Ordering::Relaxed),
            ),
            family(
                "tocsin_remote_write_dropped_samples_total",
                "counter",
                "Samples dropped from a full remote_write queue (oldest first)",
                |s| s.dropped.load(Ordering::Relaxed),
            ),
            family(
                "tocsin_remote_write_rejected_samples_total",
                "counter",
                "Samples a remote_write receiver refused for good (4xx)",
                |s| s.rejected.load(Ordering::Relaxed),
            ),
            family(
                "tocsin_remote_write_failed_attempts_total",
                "counter",
                "remote_write requests that failed and were retried",
                |s| s.failed_attempts.load(Ordering::Relaxed),
            ),
            family(
                "tocsin_remote_write_queued_samples",
                "gauge",
                "Samples waiting for a remote_write receiver",
                |s| s.queued.load(Ordering::Relaxed),
            ),
        ]
    }));
    tracing::info!(receivers = config.urls.len(), "remote_write on");
    Ok(())
}

/// The MQTT fleet's counters on `/metrics`.
pub fn fleet_metrics(state: &AppState, stats: Arc<tocsin_fleet::Stats>) {
    state.add_metrics(Arc::new(move || {
        let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed) as f64;
        let outcome = |o: &str| vec![("outcome".to_string(), o.to_string())];
        vec![
            Family {
                name: "tocsin_mqtt_messages_total".into(),
                kind: "counter",
                help: "Fleet MQTT messages received, and those refused as malformed".into(),
                points: vec![
                    (outcome("received"), n(&stats.received)),
                    (outcome("malformed"), n(&stats.malformed)),
                    (outcome("dropped_info"), n(&stats.dropped_info)),
                ],
            },
            Family {
                name: "tocsin_mqtt_ingested_total".into(),
                kind: "counter",
                help: "What fleet messages stored: samples, log records, heartbeats".into(),
                points: vec![
                    (vec![("kind".into(), "samples".into())], n(&stats.samples)),
                    (vec![("kind".into(), "logs".into())], n(&stats.logs)),
                    (
                        vec![("kind".into(), "heartbeats".into())],
                        n(&stats.heartbeats),
                    ),
                ],
            },
            Family {
                name: "tocsin_mqtt_connected".into(),
                kind: "gauge",
                help: "1 while Tocsin's subscriber is connected to the broker".into(),
                points: vec![(
                    vec![],
                    f64::from(u8::from(stats.connected.load(Ordering::Relaxed))),
                )],
            },
        ]
    }));
}
