//! Store benchmarks (plain binary, release). Node-like data: 1,000 series × 10,000 samples
//! at 15 s (40 % random-walk gauges with 2 decimals, 40 % counters, 20 % near-constant
//! gauges), ingested in batches of 10 timestamps × 1,000 series, each batch one durable
//! commit. Prints `bench: NAME VALUE UNIT` lines for `cargo xtask bench`.

use std::time::Instant;

use tocsin_store::{Resolution, RollupAgg, Sample, Store};

const SERIES: usize = 1000;
const SAMPLES: usize = 10_000;
const STEP_MS: i64 = 15_000;
const T0: i64 = 1_700_000_000_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn report(name: &str, value: f64, unit: &str) {
    println!("bench: {name} {value:.3} {unit}");
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.redb");
    let mut store = Store::open(&path).expect("open");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let names: Vec<(String, Vec<(String, String)>)> = (0..SERIES)
        .map(|i| {
            let kind = match i % 10 {
                0..=3 => "node_gauge",
                4..=7 => "node_counter_total",
                _ => "node_const",
            };
            (
                kind.to_string(),
                vec![
                    ("host".into(), format!("host-{}", i / 50)),
                    ("id".into(), i.to_string()),
                ],
            )
        })
        .collect();
    let mut state: Vec<f64> = (0..SERIES)
        .map(|i| if i % 10 >= 8 { 8.0e9 } else { 50.0 })
        .collect();

    let mut ingest_secs = 0.0;
    let batch_ts = 10;
    for block in 0..SAMPLES / batch_ts {
        let mut batch = Vec::with_capacity(SERIES * batch_ts);
        for t in 0..batch_ts {
            let ts = T0 + ((block * batch_ts + t) as i64) * STEP_MS;
            for (i, (name, labels)) in names.iter().enumerate() {
                let v = &mut state[i];
                match i % 10 {
                    0..=3 => {
                        *v = ((*v + (rng.next() - 0.5) * 2.0).clamp(0.0, 100.0) * 100.0).round()
                            / 100.0
                    }
                    4..=7 => *v += (rng.next() * 1000.0).floor(),
                    _ => {
                        if rng.next() < 0.01 {
                            *v += 4096.0;
                        }
                    }
                }
                batch.push(Sample {
                    name: name.clone(),
                    labels: labels.clone(),
                    ts_ms: ts,
                    value: *v,
                });
            }
        }
        let started = Instant::now();
        store.ingest(&batch).expect("ingest");
        ingest_secs += started.elapsed().as_secs_f64();
    }
    let total = (SERIES * SAMPLES) as f64;
    report(
        "store_ingest_samples_per_s",
        total / ingest_secs,
        "samples/s",
    );

    store.flush().expect("flush");
    let chunk_bytes = store.chunk_bytes().expect("chunk bytes") as f64;
    report("store_chunk_bytes_per_sample", chunk_bytes / total, "B");
    for (res, name) in [
        (Resolution::Minute, "store_rollup_1m_bytes_per_sample"),
        (Resolution::Hour, "store_rollup_1h_bytes_per_sample"),
    ] {
        let bytes = store.rollup_bytes(res).expect("rollup bytes") as f64;
        report(name, bytes / total, "B");
    }
    if let Some(path) = std::env::var_os("TOCSIN_BENCH_OPENMETRICS") {
        write_openmetrics(&store, std::path::Path::new(&path));
    }
    store.compact().expect("compact");
    let bytes = std::fs::metadata(&path).expect("size").len() as f64;
    report("store_bytes_per_sample", bytes / total, "B");

    // A dashboard's 24 h range: the newest minute, 60 s step, 5 min lookback.
    let last = T0 + (SAMPLES as i64 - 1) * STEP_MS;
    let end = last - last % 60_000;
    let start = end - 24 * 3600 * 1000;
    let selector = r#"{__name__=~"node_.*"}"#;
    let median = |expect: usize, f: &dyn Fn() -> usize| {
        let mut times = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            assert_eq!(f(), expect);
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let points = |out: Vec<tocsin_store::SeriesData>| out.iter().map(|s| s.points.len()).sum();
    let range = median(SERIES * 1441, &|| {
        points(
            store
                .query_range(selector, start, end, 60_000, 300_000)
                .expect("range"),
        )
    });
    report("store_query_range_ms", range, "ms");
    let avg = median(SERIES * 1441, &|| {
        points(
            store
                .query_rollup(selector, start, end, 60_000, RollupAgg::Avg)
                .expect("avg"),
        )
    });
    report("store_query_avg_1m_ms", avg, "ms");
    // The whole 41.7 h at a 1 h step (a long chart): 1-hour rollups, no raw points.
    let hour = 3_600_000;
    let first = T0 - T0 % hour + hour;
    let hours = ((end - first) / hour + 1) as usize;
    let hourly = median(SERIES * hours, &|| {
        points(
            store
                .query_rollup(selector, first, end, hour, RollupAgg::Avg)
                .expect("avg"),
        )
    });
    report("store_query_avg_1h_ms", hourly, "ms");
    drop(store);

    // Rate over 5 minutes for 10,000 counters with 10 minutes of 15 s data.
    let rate_path = dir.path().join("rate.redb");
    let store = Store::open(&rate_path).expect("open");
    for step in 0..40i64 {
        let batch: Vec<Sample> = (0..10_000)
            .map(|i| Sample {
                name: "http_requests_total".into(),
                labels: vec![("instance".into(), format!("i{i}"))],
                ts_ms: T0 + step * STEP_MS,
                value: (step * (i % 17 + 1)) as f64,
            })
            .collect();
        store.ingest(&batch).expect("ingest");
    }
    let at = T0 + 39 * STEP_MS;
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let out = store
            .rate("http_requests_total", 300_000, at)
            .expect("rate");
        times.push(started.elapsed().as_secs_f64() * 1e3);
        assert_eq!(out.len(), 10_000);
    }
    times.sort_by(f64::total_cmp);
    report("store_rate_ms", times[times.len() / 2], "ms");
}

/// The benchmark data as OpenMetrics text (each series' samples together), for
/// `promtool tsdb create-blocks-from openmetrics` (see docs/benchmarks.md).
fn write_openmetrics(store: &Store, path: &std::path::Path) {
    use std::io::Write;
    let file = std::fs::File::create(path).expect("create openmetrics file");
    let mut out = std::io::BufWriter::new(file);
    for family in ["node_gauge", "node_counter_total", "node_const"] {
        for series in store.query_raw(family, i64::MIN, i64::MAX).expect("raw") {
            let labels: Vec<String> = series
                .key
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            let labels = labels.join(",");
            for (ts, v) in series.points {
                writeln!(
                    out,
                    "{family}{{{labels}}} {v} {}.{:03}",
                    ts / 1000,
                    ts % 1000
                )
                .expect("write");
            }
        }
    }
    writeln!(out, "# EOF").expect("write");
}
