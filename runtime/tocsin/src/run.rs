//! `tocsin run`: build the engine, load the policy set, start the collectors and the alert
//! rules on their intervals, serve HTTP until interrupted.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use tocsin_alerting::{Router, Rule, Scorer};
use tocsin_api::{AppState, Round};
use tocsin_engine::types::Context;
use tocsin_engine::{Engine, EngineConfig, GuestKind, Providers};
use tocsin_policy::LoadedPolicy;
use tocsin_store::{Sample, Store};

use crate::config::{Config, RetentionConfig};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Run until SIGINT/SIGTERM.
pub fn run(config: Config) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&config.log.level)?)
        .init();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;
    let store = Arc::new(Store::open(&config.data_dir.join("tocsin.redb"))?);
    let engine = Engine::new(
        EngineConfig {
            cache_dir: config
                .engine
                .compile_cache
                .then(|| config.data_dir.join("cache")),
            epoch_tick: Duration::from_millis(config.engine.epoch_tick_ms),
            ..EngineConfig::default()
        },
        Providers::local().with_metrics(store.clone()),
    )?;

    let state = AppState::with_store(store.clone());
    let policies = load_policies(&engine, &config, &state);
    let stop = Arc::new(AtomicBool::new(false));
    let mut rules = Vec::new();
    let mut scorers = Vec::new();
    for policy in policies {
        match policy.manifest.kind {
            GuestKind::Collector => {
                spawn_collector(policy, state.clone(), store.clone(), stop.clone())?
            }
            GuestKind::AlertRule => rules.push(Rule::from_policy(&policy)),
            GuestKind::Scorer => scorers.push(Scorer::from_policy(&policy)),
            _ => {}
        }
    }
    tracing::info!(
        rules = rules.len(),
        scorers = scorers.len(),
        "rules and scorers scheduled"
    );
    let rule_labels = rules
        .iter()
        .map(|r| (r.name().to_string(), r.labels().to_vec()))
        .collect();
    let router = Router::new(config.routing.clone(), rule_labels)
        .map_err(|e| anyhow::anyhow!("routing configuration: {e}"))?;
    tocsin_alerting::spawn(
        rules,
        scorers,
        router,
        store.clone(),
        state.board().clone(),
        stop.clone(),
    )
    .context("starting the alert rule thread")?;

    spawn_retention(store.clone(), config.retention.clone(), stop.clone())?;

    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(serve(&config, state));
    stop.store(true, Ordering::Relaxed);
    // Not needed for durability (the WAL has everything); it leaves a compact file.
    if let Err(e) = store.flush() {
        tracing::warn!(error = %e, "flushing the store at shutdown");
    }
    result
}

fn load_policies(engine: &Engine, config: &Config, state: &AppState) -> Vec<LoadedPolicy> {
    let dir = &config.policies.dir;
    let (loaded, errors) = match tocsin_policy::load_dir(engine, dir) {
        Ok(result) => result,
        Err(e) => {
            tracing::warn!(error = %e, "no policies loaded");
            (Vec::new(), vec![e])
        }
    };
    for e in &errors {
        tracing::error!(error = %e, "policy not loaded");
    }
    for p in &loaded {
        tracing::info!(policy = %p.name, kind = %p.manifest.kind, sha256 = %p.guest.sha256(), "policy loaded");
    }
    state.set_guests(
        loaded.iter().map(|p| p.guest.clone()).collect(),
        errors.iter().map(ToString::to_string).collect(),
    );
    loaded
}

fn spawn_collector(
    policy: LoadedPolicy,
    state: AppState,
    store: Arc<Store>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let name = policy.name.clone();
    std::thread::Builder::new()
        .name(format!("collector-{name}"))
        .spawn(move || {
            let mut instance = policy.guest.instance();
            let params = policy.manifest.params_list();
            let mut reported: HashSet<SeriesId> = HashSet::new();
            while !stop.load(Ordering::Relaxed) {
                let ctx = Context { now_ms: now_ms(), params: params.clone() };
                match instance.collect(&ctx) {
                    Ok(samples) => {
                        tracing::debug!(collector = %policy.name, samples = samples.len(), "collected");
                        let mut batch: Vec<Sample> = samples
                            .iter()
                            .map(|s| Sample {
                                name: s.name.clone(),
                                labels: s.labels.clone(),
                                ts_ms: s.ts_ms,
                                value: s.value,
                            })
                            .collect();
                        let now: HashSet<SeriesId> =
                            batch.iter().map(|s| (s.name.clone(), s.labels.clone())).collect();
                        batch.extend(stale_markers(&reported, &now, ctx.now_ms));
                        reported = now;
                        match store.ingest(&batch) {
                            Ok(report) => {
                                for (i, e) in &report.rejected {
                                    tracing::warn!(collector = %policy.name, sample = i, error = %e, "sample rejected");
                                }
                            }
                            Err(e) => tracing::error!(collector = %policy.name, error = %e, "storing samples failed"),
                        }
                        state.set_latest(&policy.name, Round { at_ms: ctx.now_ms, samples });
                    }
                    Err(e) => {
                        tracing::warn!(collector = %policy.name, error = %e, "collect failed");
                        // Like a failed scrape: what it reported is no longer known.
                        let markers = stale_markers(&reported, &HashSet::new(), ctx.now_ms);
                        if let Err(e) = store.ingest(&markers) {
                            tracing::error!(collector = %policy.name, error = %e, "storing stale markers failed");
                        }
                        reported.clear();
                    }
                }
                std::thread::sleep(policy.manifest.interval);
            }
        })
        .with_context(|| format!("starting collector {name}"))?;
    Ok(())
}

/// A series as a collector reports it: name and labels.
type SeriesId = (String, Vec<(String, String)>);

/// Stale markers at `at_ms` for the series reported last round and missing from this one,
/// so queries stop showing their last value (a stopped process, an unplugged disk).
fn stale_markers(before: &HashSet<SeriesId>, now: &HashSet<SeriesId>, at_ms: i64) -> Vec<Sample> {
    let mut gone: Vec<&SeriesId> = before.difference(now).collect();
    gone.sort();
    gone.into_iter()
        .map(|(name, labels)| Sample::stale(name, labels, at_ms))
        .collect()
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
    tracing::info!(addr = %listener.local_addr()?, "serving HTTP");
    axum::serve(listener, tocsin_api::app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_that_stop_reporting_get_a_stale_marker() {
        let id = |n: &str| (n.to_string(), vec![("host".to_string(), "a".to_string())]);
        let before: HashSet<SeriesId> = [id("cpu"), id("disk_free")].into();
        let now: HashSet<SeriesId> = [id("cpu")].into();
        let markers = stale_markers(&before, &now, 42);
        assert_eq!(markers.len(), 1);
        assert_eq!(markers[0].name, "disk_free");
        assert_eq!(markers[0].ts_ms, 42);
        assert!(tocsin_store::is_stale(markers[0].value));
        assert!(stale_markers(&now, &before, 42).is_empty());
    }
}
