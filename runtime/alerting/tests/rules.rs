//! Alert rules end to end with real guests and a real store: `for`, hysteresis, restart
//! without re-firing, no-data, and a trapping rule isolated from the others.

use std::path::{Path, PathBuf};

use tocsin_alerting::{EventKind, Outcome, RULE_KEY, Rule};
use tocsin_engine::{Engine, EngineConfig, Providers};
use tocsin_store::{AlertPhase, Sample, Store};

const T0: i64 = 1_800_000_000_000;

fn wasm(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../guests/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"))
}

/// Write `NAME.toml` for guest `guest` into `dir` and load it.
fn rule(engine: &Engine, dir: &Path, name: &str, guest: &str, rule: &str) -> Rule {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "kind = \"alert-rule\"\ncomponent = {:?}\ninterval = \"15s\"\n\
         [params]\nthreshold = \"90\"\nclear = \"80\"\ncritical = \"98\"\n{rule}\n",
        wasm(guest).display().to_string()
    );
    std::fs::write(&path, text).expect("manifest");
    let policy = tocsin_policy::load_one(engine, &path).expect("policy loads");
    Rule::from_policy(&policy)
}

fn engine(dir: &Path) -> Engine {
    let config = EngineConfig {
        cache_dir: Some(dir.join("cache")),
        ..EngineConfig::default()
    };
    Engine::new(config, Providers::local()).expect("engine")
}

fn cpu(store: &Store, host: &str, at: i64, value: f64) {
    store
        .ingest(&[Sample {
            name: "cpu_usage_percent".into(),
            labels: vec![("host".into(), host.into())],
            ts_ms: at,
            value,
        }])
        .expect("ingest");
}

const CPU_RULE: &str =
    "[input]\nselect = [\"cpu_usage_percent\"]\nlookback = \"10s\"\n[rule]\nfor = \"1m\"";

fn kinds(eval: &tocsin_alerting::Evaluation) -> Vec<EventKind> {
    eval.events.iter().map(|e| e.kind).collect()
}

fn phase(store: &Store, rule: &str, key: &str) -> Option<AlertPhase> {
    store
        .alerts_of(rule)
        .expect("alerts")
        .into_iter()
        .find(|r| r.key == key)
        .map(|r| r.phase)
}

#[test]
fn fires_after_for_holds_with_hysteresis_and_resolves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("store");
    let engine = engine(dir.path());
    let mut r = rule(&engine, dir.path(), "cpu-high", "cpu_high", CPU_RULE);
    let key = "host=\"a\"";
    let mut at = |t: i64, v: f64| {
        cpu(&store, "a", T0 + t - 1_000, v);
        let e = r.evaluate(&store, T0 + t).expect("evaluate");
        (kinds(&e), phase(&store, "cpu-high", key))
    };
    assert_eq!(at(0, 95.0), (vec![], Some(AlertPhase::Pending)));
    assert_eq!(at(30_000, 95.0), (vec![], Some(AlertPhase::Pending)));
    assert_eq!(
        at(60_000, 95.0),
        (vec![EventKind::Firing], Some(AlertPhase::Firing))
    );
    assert_eq!(
        at(75_000, 85.0),
        (vec![], Some(AlertPhase::Firing)),
        "85 > clear 80: still firing"
    );
    assert_eq!(
        at(90_000, 70.0),
        (vec![EventKind::Resolved], Some(AlertPhase::Resolved))
    );
    // Below the threshold but above clear does not start a new alert.
    assert_eq!(at(105_000, 85.0), (vec![], Some(AlertPhase::Resolved)));
    // The history kept both changes, newest first.
    let history = store
        .alert_history(Some("cpu-high"), 0, 10)
        .expect("history");
    let kinds: Vec<(&str, i64)> = history.iter().map(|e| (e.kind.as_str(), e.ts_ms)).collect();
    assert_eq!(
        kinds,
        vec![("resolved", T0 + 90_000), ("firing", T0 + 60_000)]
    );
    assert!(
        store
            .alert_history(Some("other"), 0, 10)
            .expect("history")
            .is_empty()
    );
}

#[test]
fn a_restart_keeps_pending_timers_and_does_not_refire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    {
        let store = Store::open(&db).expect("store");
        let engine = engine(dir.path());
        let mut r = rule(&engine, dir.path(), "cpu-high", "cpu_high", CPU_RULE);
        cpu(&store, "a", T0 - 1_000, 95.0);
        r.evaluate(&store, T0).expect("evaluate");
        cpu(&store, "a", T0 + 59_000, 95.0);
        let e = r.evaluate(&store, T0 + 60_000).expect("evaluate");
        assert_eq!(kinds(&e), vec![EventKind::Firing]);
        cpu(&store, "b", T0 + 59_000, 99.5);
        r.evaluate(&store, T0 + 60_000).expect("evaluate");
        assert_eq!(
            phase(&store, "cpu-high", "host=\"b\""),
            Some(AlertPhase::Pending)
        );
    }
    // A new process: store reopened, engine and rule loaded afresh.
    let store = Store::open(&db).expect("reopen");
    let engine = engine(dir.path());
    let mut r = rule(&engine, dir.path(), "cpu-high", "cpu_high", CPU_RULE);
    cpu(&store, "a", T0 + 119_000, 95.0);
    cpu(&store, "b", T0 + 119_000, 99.5);
    let e = r.evaluate(&store, T0 + 120_000).expect("evaluate");
    // a was firing: no new notification. b was pending since T0+60 s: fires now, on time.
    let fired: Vec<&str> = e
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Firing)
        .map(|e| e.alert.key.as_str())
        .collect();
    assert_eq!(fired, vec!["host=\"b\""]);
    let alerts = store.alerts_of("cpu-high").expect("alerts");
    let a = alerts.iter().find(|r| r.key == "host=\"a\"").expect("a");
    assert_eq!(
        (a.phase, a.fired_at_ms),
        (AlertPhase::Firing, Some(T0 + 60_000))
    );
    let b = alerts.iter().find(|r| r.key == "host=\"b\"").expect("b");
    assert_eq!(
        (b.severity.as_str(), b.active_since_ms),
        ("critical", T0 + 60_000)
    );
}

#[test]
fn no_data_and_a_trapping_rule_are_states_and_the_others_keep_evaluating() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("store");
    let engine = engine(dir.path());
    let mut cpu_rule = rule(
        &engine,
        dir.path(),
        "cpu-high",
        "cpu_high",
        "[input]\nselect = [\"cpu_usage_percent\"]\nlookback = \"10s\"",
    );
    let mut nothing = rule(
        &engine,
        dir.path(),
        "gpu-hot",
        "cpu_high",
        "[input]\nselect = [\"gpu_temperature_celsius\"]",
    );
    let mut broken = rule(
        &engine,
        dir.path(),
        "broken",
        "panic",
        "[input]\nselect = [\"cpu_usage_percent\"]\nlookback = \"10s\"",
    );
    cpu(&store, "a", T0 - 1_000, 97.0);

    let e = nothing.evaluate(&store, T0).expect("evaluate");
    assert_eq!(e.outcome, Outcome::NoData);
    assert_eq!(kinds(&e), vec![EventKind::NoData]);
    assert_eq!(phase(&store, "gpu-hot", RULE_KEY), Some(AlertPhase::NoData));

    for round in 0..3 {
        cpu(&store, "a", T0 + round * 15_000 - 1_000, 97.0);
        let e = broken
            .evaluate(&store, T0 + round * 15_000)
            .expect("evaluate");
        match &e.outcome {
            Outcome::Error(m) => assert!(m.contains("rule exploded on purpose"), "{m}"),
            other => panic!("expected an error, got {other:?}"),
        }
        assert_eq!(kinds(&e).len(), usize::from(round == 0), "announced once");
        let e = cpu_rule
            .evaluate(&store, T0 + round * 15_000)
            .expect("evaluate");
        assert!(matches!(e.outcome, Outcome::Conditions(ref c) if c.len() == 1));
    }
    assert_eq!(phase(&store, "broken", RULE_KEY), Some(AlertPhase::Error));
    assert_eq!(broken.stats().trap, 3, "every trap counted");
    assert_eq!(
        phase(&store, "cpu-high", "host=\"a\""),
        Some(AlertPhase::Firing)
    );

    // Data arrives: no-data clears.
    store
        .ingest(&[Sample {
            name: "gpu_temperature_celsius".into(),
            labels: vec![("gpu".into(), "0".into())],
            ts_ms: T0 + 50_000,
            value: 60.0,
        }])
        .expect("ingest");
    let e = nothing.evaluate(&store, T0 + 60_000).expect("evaluate");
    assert_eq!(e.outcome, Outcome::Conditions(vec![]));
    assert_eq!(phase(&store, "gpu-hot", RULE_KEY), None);
}

#[test]
fn series_that_ended_are_not_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("store");
    let engine = engine(dir.path());
    let mut r = rule(
        &engine,
        dir.path(),
        "cpu-high",
        "cpu_high",
        "[input]\nselect = [\"cpu_usage_percent\"]\nlookback = \"1m\"",
    );
    cpu(&store, "a", T0 - 30_000, 97.0);
    cpu(&store, "b", T0 - 30_000, 97.0);
    store
        .ingest(&[Sample::stale(
            "cpu_usage_percent",
            &[("host".into(), "b".into())],
            T0 - 10_000,
        )])
        .expect("stale");
    let e = r.evaluate(&store, T0).expect("evaluate");
    assert_eq!(e.input_series, 1);
    assert_eq!(
        e.input[0].labels,
        vec![("host".to_string(), "a".to_string())]
    );
}

#[test]
fn disk_forecast_fires_through_the_host_and_no_data_ok_stays_quiet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("store");
    let engine = engine(dir.path());
    let mut disk = rule(
        &engine,
        dir.path(),
        "disk-filling",
        "disk_filling",
        "[input]\nselect = [\"disk_used_percent\"]\nlookback = \"6h\"",
    );
    // Six hours of a disk growing 3 points an hour, at 82 % now: full in 6 h → warning.
    for minute in 0..=360 {
        store
            .ingest(&[Sample {
                name: "disk_used_percent".into(),
                labels: vec![("mount".into(), "/var".into())],
                ts_ms: T0 - (360 - minute) * 60_000,
                value: 64.0 + 3.0 * minute as f64 / 60.0,
            }])
            .expect("ingest");
    }
    let e = disk.evaluate(&store, T0).expect("evaluate");
    let Outcome::Conditions(c) = &e.outcome else {
        panic!("{:?}", e.outcome)
    };
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].severity, "warning");
    assert!((c[0].value - 6.0).abs() < 0.01, "forecast {} h", c[0].value);

    let mut gpu = rule(
        &engine,
        dir.path(),
        "gpu-health",
        "gpu_health",
        "[input]\nselect = [\"gpu_temperature_celsius\"]\n[rule]\nno_data = \"ok\"",
    );
    let e = gpu.evaluate(&store, T0).expect("evaluate");
    assert_eq!(e.outcome, Outcome::Conditions(vec![]));
    assert!(store.alerts_of("gpu-health").expect("alerts").is_empty());
}
