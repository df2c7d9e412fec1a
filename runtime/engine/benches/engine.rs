//! Engine benchmarks (plain binary, release): guest call with a 60-point batch,
//! instantiation from `InstancePre`, compile vs cached load, deadline overshoot.
//! Prints `bench: NAME VALUE UNIT` lines, collected by `cargo xtask bench`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tocsin_engine::types::{Context, Series};
use tocsin_engine::{Budgets, CacheOutcome, Engine, EngineConfig, Grants, GuestKind, Providers};

fn guest_bytes(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../guests/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run cargo xtask guests)", path.display()))
}

fn report(name: &str, value: f64, unit: &str) {
    println!("bench: {name} {value:.3} {unit}");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let engine = Engine::new(EngineConfig::default(), Providers::default()).expect("engine");
    let rule = engine
        .load(
            "cpu-high",
            &guest_bytes("cpu_high"),
            GuestKind::AlertRule,
            Grants::none(),
            Budgets::default(),
        )
        .expect("load");
    let ctx = Context {
        now_ms: 1_700_000_000_000,
        params: vec![],
    };
    let input = vec![Series {
        name: "cpu_usage_percent".into(),
        labels: vec![("host".into(), "bench".into())],
        points: (0..60)
            .map(|i| (1_700_000_000_000 + i * 1000, 50.0 + (i % 7) as f64))
            .collect(),
    }];

    // 1. Call into an instantiated guest with a 60-point batch.
    let mut instance = rule.instance();
    instance.instantiate().expect("instantiate");
    for _ in 0..1000 {
        instance.evaluate(&ctx, &input, &[]).expect("warm-up");
    }
    let mut rounds = Vec::new();
    for _ in 0..10 {
        let n = 5000;
        let started = Instant::now();
        for _ in 0..n {
            std::hint::black_box(instance.evaluate(&ctx, &input, &[]).expect("call"));
        }
        rounds.push(started.elapsed().as_secs_f64() * 1e6 / f64::from(n));
    }
    report("guest_call_60pt", median(rounds), "us");

    // 2. Instantiate from InstancePre (fresh store + instance).
    let mut rounds = Vec::new();
    for _ in 0..10 {
        let n = 500;
        let started = Instant::now();
        for _ in 0..n {
            let mut fresh = rule.instance();
            fresh.instantiate().expect("instantiate");
            std::hint::black_box(&fresh);
        }
        rounds.push(started.elapsed().as_secs_f64() * 1e6 / f64::from(n));
    }
    report("instantiate_pre", median(rounds), "us");

    // 3. Compile from scratch vs load the cached .cwasm.
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = guest_bytes("cpu_high");
    let mut compile = Vec::new();
    let mut cached = Vec::new();
    for i in 0..5 {
        let cache_dir = dir.path().join(i.to_string());
        let cfg = EngineConfig {
            cache_dir: Some(cache_dir),
            ..EngineConfig::default()
        };
        let e = Engine::new(cfg, Providers::default()).expect("engine");
        let started = Instant::now();
        let (_, outcome) = e.compile(&bytes).expect("compile");
        compile.push(started.elapsed().as_secs_f64() * 1e3);
        assert_eq!(outcome, CacheOutcome::Miss);
        let started = Instant::now();
        let (_, outcome) = e.compile(&bytes).expect("cached");
        cached.push(started.elapsed().as_secs_f64() * 1e3);
        assert_eq!(outcome, CacheOutcome::Hit);
    }
    report("component_compile", median(compile), "ms");
    report("component_cached_load", median(cached), "ms");

    // 4. Time from the deadline to the looping guest being stopped.
    let deadline = Duration::from_millis(10);
    let looping = engine
        .load(
            "loop",
            &guest_bytes("infinite_loop"),
            GuestKind::AlertRule,
            Grants::none(),
            Budgets {
                deadline_ms: 10,
                ..Budgets::default()
            },
        )
        .expect("load loop");
    let mut overshoot = Vec::new();
    for _ in 0..50 {
        let mut inst = looping.instance();
        inst.instantiate().expect("instantiate");
        let started = Instant::now();
        let err = inst.evaluate(&ctx, &[], &[]).expect_err("loops");
        let elapsed = started.elapsed();
        assert_eq!(err.kind(), "deadline");
        overshoot.push((elapsed.as_secs_f64() - deadline.as_secs_f64()) * 1e3);
    }
    let worst = overshoot.iter().copied().fold(f64::MIN, f64::max);
    report("deadline_overshoot_median", median(overshoot), "ms");
    report("deadline_overshoot_max", worst, "ms");
}
