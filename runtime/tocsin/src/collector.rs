//! Collector threads: each `collector` policy runs on its own thread (a slow sensor read
//! never delays another collector or a rule), stores what it returns, writes stale markers
//! for series it stopped reporting, and ends at a round boundary when its version is
//! retired by a reload.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use tocsin_api::{AppState, Round};
use tocsin_engine::types::Context;
use tocsin_policy::LoadedPolicy;
use tocsin_store::{Sample, Store};

use crate::run::now_ms;

pub(crate) fn spawn_collector(
    policy: LoadedPolicy,
    state: AppState,
    store: Arc<Store>,
    stop: Arc<AtomicBool>,
    retired: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let name = policy.name.clone();
    std::thread::Builder::new()
        .name(format!("collector-{name}"))
        .spawn(move || {
            let mut instance = policy.guest.instance();
            let params = policy.manifest.params_list();
            let mut reported: HashSet<SeriesId> = HashSet::new();
            while !stop.load(Ordering::Relaxed) && !retired.load(Ordering::Relaxed) {
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
