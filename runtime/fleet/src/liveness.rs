//! Client liveness as series: a sweep every second moves silent clients to `stale` and
//! `offline` (the store decides and records the change), and every
//! `liveness_interval` each known client's state is written, so rules such as `host-down`
//! always have input.
//!
//! Series: `client_up{client}` 1 (online or stale) or 0 (offline);
//! `client_liveness{client}` 2 online, 1 stale, 0 offline;
//! `client_heartbeat_age_seconds{client}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tocsin_store::{LivenessState, Sample, Store};

use crate::{FleetError, MqttConfig, now_ms};

/// The liveness series of `client` in `state` at `ts_ms`, last seen at `last_seen_ms`.
pub fn up_samples(
    client: &str,
    state: LivenessState,
    ts_ms: i64,
    last_seen_ms: i64,
) -> Vec<Sample> {
    let labels = vec![("client".to_string(), client.to_string())];
    let (up, level) = match state {
        LivenessState::Online => (1.0, 2.0),
        LivenessState::Stale => (1.0, 1.0),
        LivenessState::Offline => (0.0, 0.0),
    };
    let sample = |name: &str, value: f64| Sample {
        name: name.into(),
        labels: labels.clone(),
        ts_ms,
        value,
    };
    vec![
        sample("client_up", up),
        sample("client_liveness", level),
        sample(
            "client_heartbeat_age_seconds",
            (ts_ms - last_seen_ms).max(0) as f64 / 1000.0,
        ),
    ]
}

/// One sweep: transitions of silent clients, as samples.
pub fn sweep(
    store: &Store,
    config: &MqttConfig,
    now: i64,
) -> Result<Vec<Sample>, tocsin_store::StoreError> {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let changed = store.sweep_liveness(now, ms(config.stale_after), ms(config.offline_after))?;
    let mut out = Vec::new();
    for t in &changed {
        tracing::info!(client = %t.client, from = ?t.from, to = ?t.to, "client liveness");
        let last_seen = store.liveness(&t.client)?.map_or(now, |l| l.last_seen_ms);
        out.extend(up_samples(&t.client, t.to, now, last_seen));
    }
    Ok(out)
}

/// Every known client's state now, as samples.
pub fn snapshot(store: &Store, now: i64) -> Result<Vec<Sample>, tocsin_store::StoreError> {
    Ok(store
        .all_liveness()?
        .iter()
        .flat_map(|l| up_samples(&l.client, l.state, now, l.last_seen_ms))
        .collect())
}

/// Start the sweep thread. Silence is only evidence while Tocsin hears the broker: the
/// sweep waits while the subscriber is disconnected and for `stale_after` after each
/// (re)connect (clients' next heartbeats arrive meanwhile), so a Tocsin restart or a
/// broker outage does not make the whole fleet stale.
pub fn spawn(
    config: &MqttConfig,
    store: Arc<Store>,
    stats: Arc<crate::Stats>,
    stop: Arc<AtomicBool>,
) -> Result<(), FleetError> {
    let config = config.clone();
    std::thread::Builder::new()
        .name("fleet-liveness".into())
        .spawn(move || {
            let mut next_snapshot = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let now = now_ms();
                let hearing = stats.connected.load(Ordering::Relaxed)
                    && now.saturating_sub(stats.connected_at_ms.load(Ordering::Relaxed))
                        >= i64::try_from(config.stale_after.as_millis()).unwrap_or(i64::MAX);
                let swept = if hearing {
                    sweep(&store, &config, now)
                } else {
                    Ok(Vec::new())
                };
                let mut samples = match swept {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "liveness sweep failed");
                        Vec::new()
                    }
                };
                if Instant::now() >= next_snapshot {
                    next_snapshot = Instant::now() + config.liveness_interval;
                    match snapshot(&store, now) {
                        Ok(s) => samples.extend(s),
                        Err(e) => tracing::error!(error = %e, "reading client liveness failed"),
                    }
                }
                if !samples.is_empty()
                    && let Err(e) = store.ingest(&samples)
                {
                    tracing::error!(error = %e, "writing client liveness failed");
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
        .map_err(|e| FleetError::Broker(format!("starting the liveness thread: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_clients_go_stale_then_offline_as_series() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("t.redb")).expect("store");
        let config = MqttConfig::default(); // stale 60 s, offline 180 s
        store.record_heartbeats(&[("k1", 1_000)]).expect("beat");
        assert!(sweep(&store, &config, 30_000).expect("sweep").is_empty());
        let stale = sweep(&store, &config, 61_000).expect("sweep");
        let v = |s: &[Sample], n: &str| s.iter().find(|x| x.name == n).map(|x| x.value);
        assert_eq!(v(&stale, "client_liveness"), Some(1.0));
        assert_eq!(v(&stale, "client_up"), Some(1.0));
        assert_eq!(v(&stale, "client_heartbeat_age_seconds"), Some(60.0));
        let offline = sweep(&store, &config, 181_000).expect("sweep");
        assert_eq!(v(&offline, "client_up"), Some(0.0));
        assert!(
            sweep(&store, &config, 500_000).expect("sweep").is_empty(),
            "no change, no samples"
        );
        let all = snapshot(&store, 500_000).expect("snapshot");
        assert_eq!(v(&all, "client_up"), Some(0.0));
    }
}
