//! The default scorer guest on a real store: scores and factor scores become series, the
//! summary reads their history, and a scorer without input reports an error and stores
//! nothing.

use std::path::{Path, PathBuf};

use tocsin_alerting::Scorer;
use tocsin_alerting::scoring::{status, summary};
use tocsin_engine::{Engine, EngineConfig, Providers};
use tocsin_store::{Sample, Store};

const T0: i64 = 1_800_000_000_000;

fn scorer(dir: &Path, input: &str) -> Scorer {
    let wasm = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../guests/target/wasm32-wasip2/release/fleet_health.wasm");
    let path = dir.join("fleet-health.toml");
    std::fs::write(
        &path,
        format!(
            "kind = \"scorer\"\ncomponent = {:?}\ninterval = \"30s\"\n[input]\n{input}\n",
            wasm.display().to_string()
        ),
    )
    .expect("manifest");
    let config = EngineConfig {
        cache_dir: Some(dir.join("cache")),
        ..EngineConfig::default()
    };
    let engine = Engine::new(config, Providers::local()).expect("engine");
    Scorer::from_policy(&tocsin_policy::load_one(&engine, &path).expect("policy"))
}

fn gauge(store: &Store, name: &str, labels: &[(&str, &str)], at: i64, value: f64) {
    store
        .ingest(&[Sample {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ts_ms: at,
            value,
        }])
        .expect("ingest");
}

#[test]
fn scores_become_history_with_a_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("store");
    let mut s = scorer(
        dir.path(),
        "select = [\"cpu_usage_percent\", \"alerts_firing\"]\nlookback = \"1m\"",
    );
    // CPU climbs from 50 % to 100 % over ten minutes: the score falls from 100 to 50
    // (cpu factor 100 → 0, alerts factor 100).
    let mut last = None;
    for minute in 0..=10 {
        let at = T0 + minute * 60_000;
        gauge(
            &store,
            "cpu_usage_percent",
            &[("host", "a")],
            at - 1_000,
            50.0 + 5.0 * minute as f64,
        );
        gauge(
            &store,
            "alerts_firing",
            &[("severity", "critical")],
            at - 1_000,
            0.0,
        );
        let round = s.evaluate(&store, at).expect("score");
        assert_eq!(round.error, None);
        assert_eq!(round.factors.len(), 2);
        last = round.score;
    }
    assert_eq!(last, Some(50.0));
    assert_eq!(status(50.0), "critical");
    let stored = store
        .query_raw(
            r#"health_factor_score{scorer="fleet-health",factor="cpu"}"#,
            0,
            i64::MAX,
        )
        .expect("factors");
    assert_eq!(stored[0].points.len(), 11, "a point per round");

    let sum = summary(&store, "fleet-health", T0 + 600_000, 3_600_000).expect("summary");
    assert_eq!(sum.current, Some(50.0));
    assert_eq!(sum.max, Some(100.0));
    assert_eq!(sum.min, Some(50.0));
    assert_eq!(sum.minutes.len(), 11);
    // Score 100 until 80 % CPU (minute 6), then -12.5 a minute: falling.
    assert!(sum.trend_per_hour.expect("trend") < -100.0, "{sum:?}");
}

#[test]
fn a_scorer_without_input_reports_an_error_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("store");
    let mut s = scorer(dir.path(), "select = [\"cpu_usage_percent\"]");
    let round = s.evaluate(&store, T0).expect("round");
    assert!(
        round
            .error
            .as_deref()
            .is_some_and(|e| e.contains("no input")),
        "{round:?}"
    );
    assert_eq!(round.score, None);
    assert_eq!(s.stats().failed, 1);
    assert!(
        store
            .query_raw("health_score", 0, i64::MAX)
            .expect("raw")
            .is_empty()
    );
}
