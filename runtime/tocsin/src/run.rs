//! `tocsin run`: open the store, build the engine, start the scheduler, deploy the policy
//! set and keep watching it, enforce retention, serve HTTP until interrupted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use tocsin_alerting::Router;
use tocsin_api::AppState;
use tocsin_engine::{Engine, EngineConfig, Providers};
use tocsin_store::Store;

use crate::config::{Config, RetentionConfig};
use crate::reload::{Admin, Reloader, spawn_watcher};

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Run until SIGINT/SIGTERM.
pub fn run(config: Config) -> anyhow::Result<()> {
    crate::logging::init(&config.log, &config.data_dir)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;
    let store = Arc::new(Store::open(&config.data_dir.join("tocsin.redb"))?);
    // One NVML handle for the built-in collector (`collect.gpu`) and guests' `sensors`.
    let gpus = Arc::new(tocsin_capabilities::gpu::GpuMonitor::nvml());
    let engine = Engine::new(
        EngineConfig {
            cache_dir: config
                .engine
                .compile_cache
                .then(|| config.data_dir.join("cache")),
            epoch_tick: Duration::from_millis(config.engine.epoch_tick_ms),
            ..EngineConfig::default()
        },
        Providers::local_with_gpus(gpus.clone()).with_metrics(store.clone()),
    )?;

    let state = AppState::with_store(store.clone());
    if let Some(path) = crate::access::bootstrap_admin(&store, &config.data_dir)? {
        tracing::warn!(
            file = %path.display(),
            "no admin token existed: created `admin`, its secret is in this file (log in with it, or send it as `Authorization: Bearer`)"
        );
    }
    state.load_tokens()?;
    let stop = Arc::new(AtomicBool::new(false));
    // Before anything ingests: the tap sees every sample from the start.
    crate::exporters::spawn_remote_write(&config.remote_write, &state, &store, stop.clone())?;
    state.set_limits(tocsin_api::Limits {
        max_body_bytes: config.http.max_body_bytes,
        request_timeout: config.http.request_timeout,
        metrics_public: config.http.metrics_public,
        metrics_export_series: config.http.metrics_export_series,
        https: config.http.tls_cert.is_some(),
    });
    let router = Router::new(config.routing.clone(), Default::default())
        .map_err(|e| anyhow::anyhow!("routing configuration: {e}"))?;
    let (_, control) =
        tocsin_alerting::spawn(router, store.clone(), state.board().clone(), stop.clone())
            .context("starting the alert rule thread")?;
    // Start-up deploys the policy set through the same path as every later change.
    let mut reloader = Reloader::new(
        &config.policies.dir,
        engine,
        store.clone(),
        state.clone(),
        control,
        stop.clone(),
        config.policies.allow_new_grants,
    );
    let report = reloader.reconcile("startup");
    tracing::info!(
        deployed = report.deployed.len(),
        refused = report.refused.len(),
        "policy set loaded"
    );
    let reloader = Arc::new(Mutex::new(reloader));
    state.set_admin(Arc::new(Admin(reloader.clone())));
    if let Err(e) = spawn_watcher(
        reloader.clone(),
        &config.policies.dir,
        config.policies.rescan,
        stop.clone(),
    ) {
        tracing::error!(error = %e, dir = %config.policies.dir.display(), "policy directory not watched; changes need a restart");
    }

    state.set_receivers(config.routing.receivers.clone());
    let chart_key = crate::access::chart_key(&config.data_dir)?;
    let mut site = config.notify.site();
    site.chart_key = chart_key.clone();
    state.set_site(site);
    {
        let (store, templates) = (store.clone(), state.templates().clone());
        let charts = state.charts().clone();
        let (notify, mail) = (config.notify.clone(), config.mail.clone());
        let receivers = config.routing.receivers.clone();
        tocsin_notify::spawn(
            move || {
                tocsin_notify::Deliverer::new(
                    store.clone(),
                    templates.clone(),
                    charts.clone(),
                    notify.clone(),
                    mail.clone(),
                    receivers.clone(),
                )
                .with_chart_key(chart_key.clone())
            },
            &["mail", "webhook", "mqtt", "pipe"],
            Duration::from_millis(500),
            stop.clone(),
        )
        .context("starting the notification threads")?;
    }
    tocsin_notify::daily::spawn(
        store.clone(),
        config.notify.daily_digest.clone(),
        config.routing.receivers.clone(),
        stop.clone(),
    )
    .context("starting the daily digest thread")?;
    if config.mqtt.enabled {
        let stats = tocsin_fleet::start(&config.mqtt, store.clone(), stop.clone()).with_context(|| {
            format!(
                "starting the MQTT fleet (mqtt.listen {}: set another address, use an external broker with mqtt.embedded = false, or mqtt.enabled = false)",
                config.mqtt.listen
            )
        })?;
        crate::exporters::fleet_metrics(&state, stats.clone());
        state.set_fleet(stats);
    }
    tocsin_collect::start(&config.collect, gpus, store.clone(), stop.clone())
        .context("starting the built-in collectors")?;
    crate::exporters::spawn_snmp(&config.snmp, state.clone(), store.clone(), stop.clone())?;
    crate::exporters::spawn_alertmanager(
        &config.alertmanager,
        state.clone(),
        config.notify.site().base_url,
        stop.clone(),
    )?;
    spawn_retention(store.clone(), config.retention.clone(), stop.clone())?;
    spawn_guest_metrics(state.clone(), store.clone(), stop.clone())?;

    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(serve(&config, state));
    stop.store(true, Ordering::Relaxed);
    // Not needed for durability (the WAL has everything); it leaves a compact file.
    if let Err(e) = store.flush() {
        tracing::warn!(error = %e, "flushing the store at shutdown");
    }
    result
}

/// Every 15 s, store each running guest's counters as series (`guest_*{policy}`), so
/// dashboards and rules see calls, faults by kind, busy time and memory high-water marks.
fn spawn_guest_metrics(
    state: AppState,
    store: Arc<Store>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("guest-metrics".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let now = now_ms();
                let mut batch = Vec::new();
                for g in state.guests() {
                    let s = g.stats();
                    let policy = || vec![("policy".to_string(), g.name().to_string())];
                    let mut push = |name: &str, mut labels: Vec<(String, String)>, v: f64| {
                        labels.sort();
                        batch.push(tocsin_store::Sample {
                            name: name.into(),
                            labels,
                            ts_ms: now,
                            value: v,
                        });
                    };
                    push("guest_calls_total", policy(), s.calls as f64);
                    push("guest_errors_total", policy(), s.failed as f64);
                    for (kind, n) in [
                        ("deadline", s.deadline),
                        ("memory", s.memory),
                        ("output", s.output),
                        ("trap", s.trap),
                    ] {
                        let mut l = policy();
                        l.push(("kind".into(), kind.into()));
                        push("guest_faults_total", l, n as f64);
                    }
                    push("guest_busy_seconds_total", policy(), s.busy_us as f64 / 1e6);
                    push(
                        "guest_memory_high_water_bytes",
                        policy(),
                        s.memory_high_water as f64,
                    );
                    let quarantined = state.board().is_quarantined(g.name());
                    push(
                        "guest_quarantined",
                        policy(),
                        f64::from(u8::from(quarantined)),
                    );
                }
                if let Err(e) = store.ingest(&batch) {
                    tracing::error!(error = %e, "storing guest counters failed");
                }
                for _ in 0..150 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
        .context("starting the guest metrics thread")?;
    Ok(())
}

/// Enforce retention at start and every ten minutes.
fn spawn_retention(
    store: Arc<Store>,
    keep: RetentionConfig,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let (metrics_ms, hourly_ms) = (ms(keep.metrics), ms(keep.hourly));
    let (logs_ms, client_logs_ms) = (ms(keep.logs), ms(keep.client_logs));
    std::thread::Builder::new()
        .name("retention".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match store.enforce_retention(now_ms().saturating_sub(metrics_ms)) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(chunks = n, "retention: old chunks deleted"),
                    Err(e) => tracing::error!(error = %e, "metric retention failed"),
                }
                match store.enforce_alert_history_retention(now_ms().saturating_sub(metrics_ms)) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(events = n, "retention: old alert history deleted"),
                    Err(e) => tracing::error!(error = %e, "alert history retention failed"),
                }
                match store.enforce_hourly_retention(now_ms().saturating_sub(hourly_ms)) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "retention: old hourly rollups deleted"),
                    Err(e) => tracing::error!(error = %e, "rollup retention failed"),
                }
                let now = now_ms();
                match store.enforce_log_retention(
                    now.saturating_sub(logs_ms),
                    now.saturating_sub(client_logs_ms),
                ) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(records = n, "retention: old log records deleted"),
                    Err(e) => tracing::error!(error = %e, "log retention failed"),
                }
                for _ in 0..600 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        })
        .context("starting the retention thread")?;
    Ok(())
}

async fn serve(config: &Config, state: AppState) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding http.listen {}", config.http.listen))?;
    let app = tocsin_api::app(state);
    match (&config.http.tls_cert, &config.http.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = crate::tls::server_config(cert, key)?;
            let listener = crate::tls::TlsListener::new(listener, tls)?;
            tracing::info!(addr = %config.http.listen, "serving HTTPS");
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await?;
        }
        (None, None) => {
            tracing::info!(addr = %listener.local_addr()?, "serving HTTP");
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await?;
        }
        _ => anyhow::bail!("http.tls_cert and http.tls_key go together: set both or neither"),
    }
    tracing::info!("stopped");
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
