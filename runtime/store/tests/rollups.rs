//! Rollups answer exactly what the raw points answer: across checkpoints, partial flushes
//! (two rows for one bucket), the in-memory head, reopen, and stale markers.

use tocsin_store::{RollupAgg, STALE_NAN, Sample, Store, WINDOW_MS};

const T0: i64 = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000;

fn s(host: &str, ts: i64, v: f64) -> Sample {
    Sample {
        name: "load".into(),
        labels: vec![("host".into(), host.into())],
        ts_ms: ts,
        value: v,
    }
}

/// 7 hours of irregular points for three hosts: two sparse (every 7-23 s, so their
/// 1-minute rows defer to the raw chunks) and one dense (every 1-4 s).
fn data() -> Vec<Sample> {
    let mut out = Vec::new();
    let mut x = 12345u64;
    for (h, (host, min, spread)) in [
        ("a", 7_000, 16_000),
        ("b", 7_000, 16_000),
        ("c", 1_000, 3_000),
    ]
    .iter()
    .enumerate()
    {
        let mut ts = T0 + h as i64 * 3000;
        let mut v = 50.0;
        while ts < T0 + 7 * 3_600_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v += (x % 200) as f64 / 100.0 - 1.0;
            out.push(s(host, ts, (v * 100.0f64).round() / 100.0));
            ts += min + (x % spread) as i64;
        }
    }
    out
}

/// `agg` over the raw points in `(t - step, t]`, computed the obvious way.
fn reference(points: &[(i64, f64)], t: i64, step: i64, agg: RollupAgg) -> Option<f64> {
    let vs: Vec<f64> = points
        .iter()
        .filter(|p| p.0 > t - step && p.0 <= t)
        .map(|p| p.1)
        .collect();
    if vs.is_empty() {
        return None;
    }
    Some(match agg {
        RollupAgg::Min => vs.iter().copied().fold(f64::INFINITY, f64::min),
        RollupAgg::Max => vs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        RollupAgg::Avg => vs.iter().sum::<f64>() / vs.len() as f64,
        RollupAgg::Sum => vs.iter().sum(),
        RollupAgg::Count => vs.len() as f64,
        RollupAgg::Last => vs[vs.len() - 1],
    })
}

fn check_against_raw(store: &Store) {
    let raw = store.query_raw("load", i64::MIN, i64::MAX).expect("raw");
    assert_eq!(raw.len(), 3);
    for (start, step) in [(T0, 300_000), (T0 + 3_600_000, 3_600_000), (T0, 60_000)] {
        let end = T0 + 7 * 3_600_000;
        for agg in [
            RollupAgg::Min,
            RollupAgg::Max,
            RollupAgg::Avg,
            RollupAgg::Sum,
            RollupAgg::Count,
            RollupAgg::Last,
        ] {
            let got = store
                .query_rollup("load", start, end, step, agg)
                .expect("rollup");
            assert_eq!(got.len(), 3);
            for (series, want) in got.iter().zip(&raw) {
                assert_eq!(series.key, want.key);
                let mut expected = Vec::new();
                let mut t = start;
                while t <= end {
                    if let Some(v) = reference(&want.points, t, step, agg) {
                        expected.push((t, v));
                    }
                    t += step;
                }
                assert_eq!(series.points.len(), expected.len(), "{agg:?} step {step}");
                for (g, e) in series.points.iter().zip(&expected) {
                    assert_eq!(g.0, e.0);
                    assert!(
                        (g.1 - e.1).abs() <= 1e-9 * e.1.abs().max(1.0),
                        "{agg:?} {g:?} {e:?}"
                    );
                }
            }
        }
        // The aligned query_range (served from `last`) equals the raw one.
        for lookback in [300_000, 3_600_000] {
            let fast = store
                .query_range("load", start, end, step, lookback)
                .expect("range");
            let slow = store
                .query_range_raw("load", start, end, step, lookback)
                .expect("raw range");
            assert_eq!(fast, slow, "step {step} lookback {lookback}");
        }
    }
}

#[test]
fn rollups_match_raw_points_through_checkpoints_heads_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.redb");
    let all = data();
    let (first, rest) = all.split_at(all.len() / 3);
    {
        let store = Store::open(&path).expect("open");
        store.ingest(first).expect("ingest");
        // A partial flush mid-window: later points of the same window and bucket land
        // in another row.
        store.flush().expect("flush");
        let (middle, last) = rest.split_at(rest.len() / 2);
        store.ingest(middle).expect("ingest");
        store.checkpoint().expect("checkpoint");
        store.ingest(last).expect("ingest");
        check_against_raw(&store);
    }
    // Reopen: the head comes back from the WAL, rollups from disk.
    let store = Store::open(&path).expect("reopen");
    check_against_raw(&store);
    store.flush().expect("flush");
    check_against_raw(&store);
}

#[test]
fn a_stale_marker_ends_a_series_in_every_query() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("s.redb")).expect("open");
    let mut batch: Vec<Sample> = (0..10).map(|i| s("a", T0 + i * 60_000, i as f64)).collect();
    batch.push(Sample::stale(
        "load",
        &[("host".into(), "a".into())],
        T0 + 600_000,
    ));
    store.ingest(&batch).expect("ingest");
    let stored = store.query_raw("load", i64::MIN, i64::MAX).expect("raw");
    assert_eq!(
        stored[0].points[10].1.to_bits(),
        STALE_NAN,
        "marker kept bit for bit"
    );

    let at = T0 + 660_000;
    assert!(
        store
            .latest("load", at, 300_000)
            .expect("latest")
            .is_empty()
    );
    let before = store.latest("load", T0 + 540_000, 300_000).expect("latest");
    assert_eq!(before[0].value, 9.0);
    for range in [
        store.query_range("load", T0, at, 60_000, 300_000),
        store.query_range_raw("load", T0, at, 60_000, 300_000),
    ] {
        let pts = &range.expect("range")[0].points;
        assert_eq!(
            pts.last(),
            Some(&(T0 + 540_000, 9.0)),
            "no value after the marker"
        );
    }
    store.flush().expect("flush");
    let range = store
        .query_range("load", T0, at, 60_000, 300_000)
        .expect("range");
    assert_eq!(range[0].points.len(), 10);
    let count = store
        .query_rollup("load", at, at, 720_000, RollupAgg::Count)
        .expect("count");
    assert_eq!(count[0].points, vec![(at, 10.0)], "markers are not points");
    // A NaN measurement is a value, not a marker.
    store
        .ingest(&[s("a", T0 + 720_000, f64::NAN)])
        .expect("ingest");
    let latest = store.latest("load", T0 + 720_000, 300_000).expect("latest");
    assert!(latest[0].value.is_nan());
}

#[test]
fn hourly_rollups_outlive_raw_points() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("h.redb")).expect("open");
    store.ingest(&data()).expect("ingest");
    store.flush().expect("flush");
    let end = T0 + 7 * 3_600_000;
    let hourly = |store: &Store| {
        store
            .query_rollup("load", T0 + 3_600_000, end, 3_600_000, RollupAgg::Max)
            .expect("hourly")
    };
    let before = hourly(&store);
    // Raw retention drops whole 2 h windows of points and 1-minute rows before the cutoff.
    let cut = (T0 + 4 * 3_600_000) - (T0 + 4 * 3_600_000) % WINDOW_MS;
    assert!(store.enforce_retention(cut).expect("retention") > 0);
    let old = store.query_raw("load", T0, cut - 1).expect("raw");
    assert!(old.iter().all(|s| s.points.is_empty()));
    let minutes = store
        .query_rollup("load", T0 + 60_000, end, 60_000, RollupAgg::Avg)
        .expect("minutes");
    assert!(minutes.iter().all(|s| s.points[0].0 > cut));
    assert_eq!(
        hourly(&store),
        before,
        "hourly rollups keep their own retention"
    );
    assert!(
        store
            .enforce_hourly_retention(end + 3_600_000)
            .expect("hourly")
            > 0
    );
    assert!(hourly(&store).is_empty());
}
