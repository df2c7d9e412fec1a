//! The `metrics` capability: guests read the time-series store (range, latest, rate).
//!
//! [`MetricsSource`] is the seam; [`tocsin_store::Store`] implements it. Every answer is
//! bounded ([`MAX_POINTS`]) so a guest cannot make the host materialise the whole store.

use tocsin_bindings::metrics::Host;
use tocsin_bindings::types::{Error, Sample, Series};
use tocsin_store::{InstantValue, Store, StoreError};
use wasmtime::component::{HasData, Linker};

/// Most points (or samples) one call may return.
pub const MAX_POINTS: usize = 1_000_000;

/// A source of stored metrics.
pub trait MetricsSource: Send + Sync {
    /// Points of matching series in `[start, end]`; `step` 0 for raw points, else aligned
    /// with a 5-minute lookback.
    fn query_range(
        &self,
        selector: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Vec<Series>, Error>;
    /// The newest point of every matching series.
    fn latest(&self, selector: &str) -> Result<Vec<Sample>, Error>;
    /// Per-second rate over `window` ending at `at`.
    fn rate(&self, selector: &str, window: i64, at: i64) -> Result<Vec<Sample>, Error>;
}

const LOOKBACK_MS: i64 = 5 * 60 * 1000;

fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::Selector { .. } | StoreError::Query(_) => Error::Invalid(e.to_string()),
        other => Error::Unavailable(other.to_string()),
    }
}

fn too_large(n: usize) -> Result<(), Error> {
    if n > MAX_POINTS {
        return Err(Error::Invalid(format!(
            "query returns {n} points, more than {MAX_POINTS}: narrow the selector or range, or raise the step"
        )));
    }
    Ok(())
}

/// One sample per series, as guests receive them, bounded like every answer.
fn instant_samples(values: Result<Vec<InstantValue>, StoreError>) -> Result<Vec<Sample>, Error> {
    let values = values.map_err(store_error)?;
    too_large(values.len())?;
    Ok(values
        .into_iter()
        .map(|v| Sample {
            name: v.key.name,
            labels: v.key.labels,
            ts_ms: v.ts_ms,
            value: v.value,
        })
        .collect())
}

impl MetricsSource for Store {
    fn query_range(
        &self,
        selector: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Vec<Series>, Error> {
        if step < 0 {
            return Err(Error::Invalid("step must be >= 0".into()));
        }
        let data = if step == 0 {
            self.query_raw(selector, start, end)
        } else {
            self.query_range(selector, start, end, step, LOOKBACK_MS)
        }
        .map_err(store_error)?;
        too_large(data.iter().map(|s| s.points.len()).sum())?;
        Ok(data
            .into_iter()
            .map(|s| Series {
                name: s.key.name,
                labels: s.key.labels,
                points: s.points,
            })
            .collect())
    }

    fn latest(&self, selector: &str) -> Result<Vec<Sample>, Error> {
        instant_samples(Store::latest(self, selector, i64::MAX, i64::MAX))
    }

    fn rate(&self, selector: &str, window: i64, at: i64) -> Result<Vec<Sample>, Error> {
        instant_samples(Store::rate(self, selector, window, at))
    }
}

/// A guest's view of the `metrics` capability.
pub struct MetricsCtx<'a> {
    source: &'a dyn MetricsSource,
}

impl<'a> MetricsCtx<'a> {
    /// Serve `source` to a guest.
    pub fn new(source: &'a dyn MetricsSource) -> Self {
        MetricsCtx { source }
    }
}

/// A store type that can lend its guest the `metrics` capability.
pub trait MetricsView {
    /// The metrics for the current call.
    fn metrics(&mut self) -> MetricsCtx<'_>;
}

struct MetricsData;
impl HasData for MetricsData {
    type Data<'a> = MetricsCtx<'a>;
}

/// Wire `metrics` into `linker`.
pub fn add_to_linker<T: MetricsView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    tocsin_bindings::metrics::add_to_linker::<T, MetricsData>(linker, |t| t.metrics())
}

impl Host for MetricsCtx<'_> {
    fn query_range(
        &mut self,
        selector: String,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<Series>, Error> {
        self.source
            .query_range(&selector, start_ms, end_ms, step_ms)
    }
    fn latest(&mut self, selector: String) -> Result<Vec<Sample>, Error> {
        self.source.latest(&selector)
    }
    fn rate(&mut self, selector: String, window_ms: i64, at_ms: i64) -> Result<Vec<Sample>, Error> {
        self.source.rate(&selector, window_ms, at_ms)
    }
}

#[cfg(test)]
mod tests {
    use tocsin_store::Sample as StoreSample;

    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("store");
        let batch: Vec<StoreSample> = (0..10i64)
            .map(|i| StoreSample {
                name: "req_total".into(),
                labels: vec![("host".into(), "a".into())],
                ts_ms: i * 10_000,
                value: (i * 5) as f64,
            })
            .collect();
        store.ingest(&batch).expect("ingest");
        (dir, store)
    }

    #[test]
    fn the_store_answers_through_the_capability() {
        let (_dir, store) = store();
        let mut ctx = MetricsCtx::new(&store);
        let raw = ctx
            .query_range("req_total".into(), 0, 100_000, 0)
            .expect("raw");
        assert_eq!(raw[0].points.len(), 10);
        assert_eq!(raw[0].labels, vec![("host".to_string(), "a".to_string())]);
        let aligned = ctx
            .query_range("req_total".into(), 0, 90_000, 30_000)
            .expect("aligned");
        assert_eq!(
            aligned[0].points,
            vec![(0, 0.0), (30_000, 15.0), (60_000, 30.0), (90_000, 45.0)]
        );
        let latest = ctx.latest(r#"req_total{host="a"}"#.into()).expect("latest");
        assert_eq!((latest[0].ts_ms, latest[0].value), (90_000, 45.0));
        let rate = ctx.rate("req_total".into(), 60_000, 90_000).expect("rate");
        assert!((rate[0].value - 0.5).abs() < 1e-9, "{rate:?}");
    }

    #[test]
    fn bad_queries_are_invalid_not_traps() {
        let (_dir, store) = store();
        let mut ctx = MetricsCtx::new(&store);
        assert!(matches!(ctx.latest("bad{".into()), Err(Error::Invalid(_))));
        assert!(matches!(
            ctx.query_range("x".into(), 10, 0, 5),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            ctx.query_range("x".into(), 0, 10, -1),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            ctx.rate("x".into(), 0, 10),
            Err(Error::Invalid(_))
        ));
        assert!(too_large(MAX_POINTS + 1).is_err());
    }
}
