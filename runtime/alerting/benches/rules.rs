//! Alert rule benchmark (plain binary, release): 1,000 `cpu-high` rules over 10,000
//! series (1,000 hosts × 10 CPU cores, 5 minutes of 15 s data), each rule selecting one
//! host's ten series with a 5-minute lookback. A round evaluates every rule once: store
//! query, guest call, lifecycle step, one durable write of its alert records. Prints
//! `bench: NAME VALUE UNIT` lines for `cargo xtask bench`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tocsin_alerting::Rule;
use tocsin_engine::{Engine, EngineConfig, Grants, GuestKind, Providers};
use tocsin_policy::{LoadedPolicy, Manifest};
use tocsin_store::{Sample, Store};

const HOSTS: usize = 1000;
const CORES: usize = 10;
const T0: i64 = 1_800_000_000_000;

fn report(name: &str, value: f64, unit: &str) {
    println!("bench: {name} {value:.3} {unit}");
}

fn cpu_time() -> f64 {
    // utime + stime of this process, in seconds (Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("rules.redb")).expect("store");
    // 20 scrapes of 10,000 series; one host in ten runs hot so rules fire.
    for step in 0..20i64 {
        let mut batch = Vec::with_capacity(HOSTS * CORES);
        for h in 0..HOSTS {
            for c in 0..CORES {
                let hot = h % 10 == 0;
                batch.push(Sample {
                    name: "cpu_usage_percent".into(),
                    labels: vec![
                        ("host".into(), format!("host-{h}")),
                        ("core".into(), c.to_string()),
                    ],
                    ts_ms: T0 - 300_000 + step * 15_000,
                    value: if hot { 95.0 } else { 20.0 }
                        + ((h * 7 + c * 3 + step as usize) % 5) as f64,
                });
            }
        }
        store.ingest(&batch).expect("ingest");
    }

    let wasm = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../guests/target/wasm32-wasip2/release/cpu_high.wasm");
    let bytes = std::fs::read(&wasm).expect("cpu_high.wasm: run `cargo xtask guests`");
    let engine = Engine::new(EngineConfig::default(), Providers::local()).expect("engine");
    let guest = engine
        .load(
            "cpu-high",
            &bytes,
            GuestKind::AlertRule,
            Grants::none(),
            Default::default(),
        )
        .expect("load");
    let mut rules: Vec<Rule> = (0..HOSTS)
        .map(|h| {
            let text = format!(
                "kind = \"alert-rule\"\ncomponent = \"cpu_high.wasm\"\n[input]\n\
                 select = ['cpu_usage_percent{{host=\"host-{h}\"}}']\nlookback = \"5m\"\n\
                 [rule]\nfor = \"1m\"\n"
            );
            let manifest = Manifest::parse(&text, Path::new("bench.toml")).expect("manifest");
            Rule::from_policy(&LoadedPolicy {
                name: format!("cpu-high-{h}"),
                path: PathBuf::from("bench.toml"),
                manifest,
                guest: guest.clone(),
            })
        })
        .collect();

    let mut rounds = Vec::new();
    let mut cpu = Vec::new();
    let mut per_rule = Vec::new();
    let mut fired = 0;
    for round in 0..6i64 {
        let now = T0 + round * 15_000;
        let (wall, cpu0) = (Instant::now(), cpu_time());
        for r in &mut rules {
            let started = Instant::now();
            let e = r.evaluate(&store, now).expect("evaluate");
            per_rule.push(started.elapsed().as_secs_f64() * 1e3);
            fired += e.events.len();
        }
        // The first round instantiates every guest; measure the steady state.
        if round > 0 {
            rounds.push(wall.elapsed().as_secs_f64() * 1e3);
            cpu.push((cpu_time() - cpu0) * 1e3);
        } else {
            per_rule.clear();
        }
    }
    assert!(fired >= HOSTS / 10, "hot hosts fire: {fired}");
    rounds.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    per_rule.sort_by(f64::total_cmp);
    report("rules_round_ms", rounds[rounds.len() / 2], "ms");
    report("rules_round_cpu_ms", cpu[cpu.len() / 2], "ms");
    report(
        "rules_core_share_at_15s",
        cpu[cpu.len() / 2] / 15_000.0 * 100.0,
        "%",
    );
    report("rules_per_rule_p50_ms", per_rule[per_rule.len() / 2], "ms");
    report(
        "rules_per_rule_p99_ms",
        per_rule[per_rule.len() * 99 / 100],
        "ms",
    );
}
