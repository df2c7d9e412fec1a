//! A guest granted `metrics` reads the real store; without the grant it does not load.

mod common;

use std::sync::Arc;

use common::{ctx, guest_bytes};
use tocsin_engine::{
    Budgets, CallError, Capability, Engine, EngineConfig, Grants, GuestKind, LoadError, Providers,
};
use tocsin_store::{Sample, Store};

fn engine_with_store() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("store");
    let sample = |host: &str, v: f64| Sample {
        name: "disk_used_percent".into(),
        labels: vec![("host".into(), host.into())],
        ts_ms: 1000,
        value: v,
    };
    store
        .ingest(&[sample("a", 97.0), sample("b", 40.0)])
        .expect("ingest");
    let providers = Providers::default().with_metrics(Arc::new(store));
    let engine = Engine::new(EngineConfig::default(), providers).expect("engine");
    (dir, engine)
}

#[test]
fn granted_guest_queries_the_store() {
    let (_dir, engine) = engine_with_store();
    let guest = engine
        .load(
            "probe",
            &guest_bytes("metrics_latest"),
            GuestKind::AlertRule,
            Grants::of([Capability::Metrics]),
            Budgets::default(),
        )
        .expect("load");
    let mut instance = guest.instance();
    let signals = instance
        .evaluate(
            &ctx(&[("selector", "disk_used_percent"), ("threshold", "90")]),
            &[],
            &[],
        )
        .expect("evaluate");
    assert_eq!(signals.len(), 1);
    assert_eq!(signals[0].key, vec![("host".to_string(), "a".to_string())]);
    assert_eq!(signals[0].value, 97.0);

    // A bad selector is the host's `invalid` error, which this guest turns into its own
    // error value: a failure, not a fault.
    let err = instance
        .evaluate(&ctx(&[("selector", "disk{")]), &[], &[])
        .expect_err("bad selector");
    match &err {
        CallError::Failed(message) => assert!(message.contains("invalid selector"), "{message}"),
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn metrics_needs_its_grant_and_a_provider() {
    let (_dir, engine) = engine_with_store();
    let bytes = guest_bytes("metrics_latest");
    let err = engine
        .load(
            "probe",
            &bytes,
            GuestKind::AlertRule,
            Grants::none(),
            Budgets::default(),
        )
        .expect_err("not granted");
    assert!(
        matches!(&err, LoadError::UngrantedImport { interface, .. } if interface == "tocsin:monitor/metrics@0.1.0"),
        "{err:?}"
    );
    let bare = Engine::new(EngineConfig::default(), Providers::default()).expect("engine");
    let err = bare
        .load(
            "probe",
            &bytes,
            GuestKind::AlertRule,
            Grants::of([Capability::Metrics]),
            Budgets::default(),
        )
        .expect_err("no provider");
    assert!(
        matches!(err, LoadError::UnavailableCapability { .. }),
        "{err:?}"
    );
}
