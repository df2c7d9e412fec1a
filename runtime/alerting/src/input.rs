//! What rules and scorers are called with: the series their `[input] select` names over
//! `(now - lookback, now]`, stale points dropped and series that ended left out.

use std::collections::BTreeSet;

use tocsin_engine::types::Series;
use tocsin_store::{Store, StoreError, is_stale};

/// A duration in ms, saturating.
pub(crate) fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The selected series, each once, in selector order.
pub(crate) fn gather(
    store: &Store,
    select: &[String],
    lookback_ms: i64,
    now: i64,
) -> Result<Vec<Series>, StoreError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for sel in select {
        for s in store.query_raw(sel, now.saturating_sub(lookback_ms) + 1, now)? {
            if s.points.last().is_none_or(|p| is_stale(p.1)) || !seen.insert(s.key.clone()) {
                continue;
            }
            out.push(Series {
                name: s.key.name,
                labels: s.key.labels,
                points: s.points.into_iter().filter(|p| !is_stale(p.1)).collect(),
            });
        }
    }
    Ok(out)
}
