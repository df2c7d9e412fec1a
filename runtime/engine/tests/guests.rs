//! The default guests do their jobs: a collector reads real sensors, the scorer scores,
//! the alert rule applies its thresholds with hysteresis, the template renders and escapes.

mod common;

use common::{ctx, engine, guest_bytes, load, series};
use tocsin_engine::types::Severity;
use tocsin_engine::{Budgets, CallError, Capability, Grants, GuestKind};

#[test]
fn host_basics_collects_real_host_metrics() {
    let engine = engine();
    let guest = engine
        .load(
            "host-basics",
            &guest_bytes("host_basics"),
            GuestKind::Collector,
            Grants::of([Capability::Sensors]),
            Budgets {
                deadline_ms: 2000,
                ..Budgets::default()
            },
        )
        .expect("load collector");
    let samples = guest.instance().collect(&ctx(&[])).expect("collect");
    let get = |name: &str| samples.iter().find(|s| s.name == name).map(|s| s.value);
    let cpu = get("cpu_usage_percent").expect("cpu");
    assert!((0.0..=100.0).contains(&cpu), "cpu {cpu}");
    let total = get("memory_total_bytes").expect("memory total");
    assert!(total > 1e8, "memory total {total}");
    let used = get("memory_used_percent").expect("memory used");
    assert!((0.0..=100.0).contains(&used));
    assert!(get("uptime_seconds").expect("uptime") > 0.0);
    assert!(samples.iter().any(|s| s.name == "cpu_core_usage_percent"));
    assert!(samples.iter().all(|s| s.ts_ms == 1_700_000_000_000));
}

#[test]
fn cpu_high_fires_with_hysteresis_and_severity() {
    let engine = engine();
    let rule = load(
        &engine,
        "cpu_high",
        GuestKind::AlertRule,
        Budgets::default(),
    );
    let mut rule = rule.instance();
    let params = ctx(&[("threshold", "90"), ("clear", "80"), ("critical", "98")]);
    let input = vec![
        series("cpu_usage_percent", "hot", &[99.0, 99.5]),
        series("cpu_usage_percent", "warm", &[85.0, 85.0]),
        series("cpu_usage_percent", "cool", &[10.0]),
        series("memory_used_percent", "hot", &[99.0]),
    ];
    let signals = rule.evaluate(&params, &input, &[]).expect("evaluate");
    assert_eq!(signals.len(), 1);
    assert_eq!(signals[0].key, input[0].labels);
    assert_eq!(signals[0].severity, Severity::Critical);
    assert!(signals[0].summary.contains("hot"), "{}", signals[0].summary);

    // "warm" at 85 % is below the threshold but above the clear level: it keeps firing
    // only while it is already active.
    let active = vec![input[1].labels.clone()];
    let signals = rule.evaluate(&params, &input, &active).expect("evaluate");
    assert_eq!(signals.len(), 2);
    assert!(
        signals
            .iter()
            .any(|s| s.key == input[1].labels && s.severity == Severity::Warning)
    );
    // One instance, reused across calls.
    assert_eq!(rule.guest().stats().instantiations, 1);
    assert_eq!(rule.guest().stats().ok, 2);
}

#[test]
fn fleet_health_scores_with_weights() {
    let engine = engine();
    let scorer = load(
        &engine,
        "fleet_health",
        GuestKind::Scorer,
        Budgets::default(),
    );
    let input = vec![
        series("cpu_usage_percent", "a", &[90.0]), // 50 with cpu_ok=80
        series("memory_used_percent", "a", &[50.0]), // 100
        series("disk_used_percent", "a", &[40.0]), // 100
    ];
    let health = scorer
        .instance()
        .score(&ctx(&[("cpu_weight", "2")]), &input)
        .expect("score");
    assert!((health.score - 75.0).abs() < 1e-9, "score {}", health.score);
    assert!(health.summary.starts_with("warning"), "{}", health.summary);
    assert_eq!(health.factors.len(), 3);

    let err = scorer
        .instance()
        .score(&ctx(&[]), &[])
        .expect_err("no input");
    assert!(matches!(err, CallError::Failed(_)), "{err:?}");
    assert!(!err.is_fault());
}

#[test]
fn server_alert_template_renders_and_escapes() {
    let engine = engine();
    let template = load(
        &engine,
        "server_alert",
        GuestKind::Template,
        Budgets::default(),
    );
    let vars: Vec<(String, String)> = [
        ("server_name", "db-1"),
        ("alert_name", "CpuHigh"),
        ("status", "firing"),
        ("severity", "critical"),
        ("summary", "CPU at 99% <script>alert(1)</script>"),
        ("base_url", "http://127.0.0.1:8080/"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut instance = template.instance();
    let out = instance.render("server_alert", &vars).expect("render");
    assert_eq!(out.subject, "[CRITICAL] CpuHigh on db-1");
    assert!(out.html.contains("&lt;script&gt;"), "escaped");
    assert!(!out.html.contains("<script>"));
    assert!(out.text.contains("http://127.0.0.1:8080/alerts"));
    let err = instance.render("digest", &vars).expect_err("unknown kind");
    assert!(matches!(err, CallError::Failed(_)), "{err:?}");
}

#[test]
fn calling_the_wrong_export_is_a_typed_error() {
    let engine = engine();
    let rule = load(
        &engine,
        "cpu_high",
        GuestKind::AlertRule,
        Budgets::default(),
    );
    let err = rule
        .instance()
        .collect(&ctx(&[]))
        .expect_err("not a collector");
    assert!(
        matches!(
            err,
            CallError::WrongKind {
                call: "collect",
                kind: "alert-rule"
            }
        ),
        "{err:?}"
    );
}
