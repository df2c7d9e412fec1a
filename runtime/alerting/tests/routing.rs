//! The router on a real store: grouping with group_wait, group_interval and
//! repeat_interval, resolved notifications, silences, inhibition, maintenance windows, and
//! no repeat after a restart.

use std::collections::BTreeMap;

use tocsin_alerting::routing::{MaintenanceWindow, Receiver, Route};
use tocsin_alerting::{Router, RoutingConfig};
use tocsin_store::{AlertPhase, AlertRecord, OutboxMessage, Silence, Store};

const T0: i64 = 1_800_000_000_000;

fn record(rule: &str, host: &str, severity: &str, phase: AlertPhase) -> AlertRecord {
    AlertRecord {
        rule: rule.into(),
        key: format!("host={host:?}"),
        labels: vec![("host".into(), host.into())],
        phase,
        severity: severity.into(),
        active_since_ms: T0 - 60_000,
        fired_at_ms: Some(T0),
        resolved_at_ms: (phase == AlertPhase::Resolved).then_some(T0),
        last_eval_ms: T0,
        last_active_ms: T0,
        value: 95.0,
        annotations: vec![("summary".into(), format!("{rule} on {host}"))],
        last_notified_ms: None,
    }
}

fn router(config: RoutingConfig) -> Router {
    Router::new(config, BTreeMap::new()).expect("router")
}

fn messages(store: &Store) -> Vec<OutboxMessage> {
    let mut m = store.recent_messages(1000).expect("outbox");
    m.reverse();
    m
}

fn ids(m: &OutboxMessage, status: &str) -> Vec<String> {
    m.message.payload[status]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|a| a["id"].as_str().expect("id").to_string())
        .collect()
}

#[test]
fn groups_wait_repeat_and_resolve_without_repeating_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let store = Store::open(&path).expect("store");
    let r = router(RoutingConfig::default());
    let a = record("cpu-high", "a", "warning", AlertPhase::Firing);
    store
        .save_alerts(std::slice::from_ref(&a), &[], true)
        .expect("save");
    r.tick(&store, T0).expect("tick");
    store
        .save_alerts(
            &[record("cpu-high", "b", "warning", AlertPhase::Firing)],
            &[],
            true,
        )
        .expect("save");
    r.tick(&store, T0 + 29_999).expect("tick");
    assert!(
        messages(&store).is_empty(),
        "group_wait holds the first notification"
    );
    let t = r.tick(&store, T0 + 30_000).expect("tick");
    assert_eq!(t.messages, 1);
    let m = messages(&store);
    assert_eq!(
        ids(&m[0], "firing"),
        vec!["cpu-high/host=\"a\"", "cpu-high/host=\"b\""],
        "one message for the group"
    );
    assert_eq!(m[0].message.channel, "log");
    let a_now = store.alerts_of("cpu-high").expect("alerts");
    assert!(
        a_now
            .iter()
            .all(|r| r.last_notified_ms == Some(T0 + 30_000)),
        "{a_now:?}"
    );

    // Unchanged: nothing until repeat_interval (4 h).
    r.tick(&store, T0 + 3_600_000).expect("tick");
    assert_eq!(messages(&store).len(), 1);
    // b resolves: told at the next group_interval (5 min after the last flush).
    store
        .save_alerts(
            &[record("cpu-high", "b", "warning", AlertPhase::Resolved)],
            &[],
            true,
        )
        .expect("save");
    drop(r);
    drop(store);
    // A restart in between: the group state comes back from the store.
    let store = Store::open(&path).expect("reopen");
    let r = router(RoutingConfig::default());
    r.tick(&store, T0 + 3_600_000 + 1).expect("tick");
    let m = messages(&store);
    assert_eq!(
        m.len(),
        2,
        "the change is due (group_interval passed), nothing repeated"
    );
    assert_eq!(ids(&m[1], "firing"), vec!["cpu-high/host=\"a\""]);
    assert_eq!(ids(&m[1], "resolved"), vec!["cpu-high/host=\"b\""]);
    r.tick(&store, T0 + 3_600_000 + 600_000).expect("tick");
    assert_eq!(messages(&store).len(), 2, "resolved is sent once");
    r.tick(&store, T0 + 3_600_000 + 1 + 4 * 3_600_000)
        .expect("tick");
    let m = messages(&store);
    assert_eq!(m.len(), 3, "repeat_interval reminds of what still fires");
    assert_eq!(ids(&m[2], "firing"), vec!["cpu-high/host=\"a\""]);
}

#[test]
fn silences_inhibition_and_maintenance_mute_what_they_match() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("store");
    let mut config = RoutingConfig {
        group_by: vec!["alertname".into(), "host".into()],
        ..RoutingConfig::default()
    };
    config.receivers.push(Receiver {
        name: "oncall".into(),
        channel: "mail".into(),
        to: vec!["oncall@example.com".into(), "lead@example.com".into()],
        format: "generic".into(),
        routing_key: Default::default(),
    });
    config.routes.push(Route {
        matchers: r#"{severity="critical"}"#.into(),
        receiver: "oncall".into(),
        group_by: None,
        continue_: false,
    });
    config.maintenance.push(MaintenanceWindow {
        name: "nightly backup".into(),
        matchers: r#"{alertname="disk-io"}"#.into(),
        days: vec![],
        start: "00:00".into(),
        end: "23:59".into(),
    });
    let r = router(config);
    store
        .save_alerts(
            &[
                record("host-down", "a", "critical", AlertPhase::Firing),
                record("cpu-high", "a", "warning", AlertPhase::Firing),
                record("cpu-high", "b", "warning", AlertPhase::Firing),
                record("cpu-high", "c", "warning", AlertPhase::Firing),
                record("disk-io", "b", "warning", AlertPhase::Firing),
            ],
            &[],
            true,
        )
        .expect("save");
    store
        .create_silence(&Silence {
            id: 0,
            matchers: r#"{alertname="cpu-high",host="c"}"#.into(),
            starts_ms: T0 - 1,
            ends_ms: T0 + 3_600_000,
            author: "ops".into(),
            comment: "replacing the fan".into(),
        })
        .expect("silence");
    r.tick(&store, T0).expect("tick");
    let t = r.tick(&store, T0 + 30_000).expect("tick");
    assert_eq!((t.silenced, t.inhibited), (2, 1), "{t:?}");
    let m = messages(&store);
    let mut got: Vec<(String, String, Vec<String>)> = m
        .iter()
        .map(|m| {
            (
                m.message.channel.clone(),
                m.message.recipient.clone(),
                ids(m, "firing"),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("log".into(), "".into(), vec!["cpu-high/host=\"b\"".into()]),
            (
                "mail".into(),
                "lead@example.com".into(),
                vec!["host-down/host=\"a\"".into()]
            ),
            (
                "mail".into(),
                "oncall@example.com".into(),
                vec!["host-down/host=\"a\"".into()]
            ),
        ],
        "cpu-high on a inhibited by host-down on a; c silenced; disk-io in maintenance"
    );
}

#[test]
fn a_shadow_rule_is_recorded_but_never_notified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("store");
    let mut r = router(RoutingConfig::default());
    r.set_rule("cpu-high-v2", vec![], true);
    store
        .save_alerts(
            &[
                record("cpu-high-v2", "a", "warning", AlertPhase::Firing),
                record("cpu-high", "a", "warning", AlertPhase::Firing),
            ],
            &[],
            true,
        )
        .expect("save");
    r.tick(&store, T0).expect("tick");
    r.tick(&store, T0 + 30_000).expect("tick");
    let m = messages(&store);
    assert_eq!(m.len(), 1);
    assert_eq!(ids(&m[0], "firing"), vec!["cpu-high/host=\"a\""]);
    assert_eq!(
        store.alerts_of("cpu-high-v2").expect("alerts").len(),
        1,
        "still recorded"
    );
}

#[test]
fn escalation_vanishing_and_silencing_are_told_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("store");
    let r = router(RoutingConfig::default());
    let a = record("cpu-high", "a", "warning", AlertPhase::Firing);
    let b = record("cpu-high", "b", "warning", AlertPhase::Firing);
    store
        .save_alerts(&[a.clone(), b.clone()], &[], true)
        .expect("save");
    r.tick(&store, T0).expect("tick");
    r.tick(&store, T0 + 30_000).expect("tick");
    assert_eq!(messages(&store).len(), 1);

    // a escalates to critical: told at the next group_interval, not after 4 h.
    let mut critical = a.clone();
    critical.severity = "critical".into();
    store.save_alerts(&[critical], &[], true).expect("save");
    r.tick(&store, T0 + 330_000).expect("tick");
    let m = messages(&store);
    assert_eq!(m.len(), 2, "escalation notified");
    assert_eq!(m[1].message.payload["firing"][0]["severity"], "critical");

    // b is silenced: not told as resolved. Then a's record vanishes (its rule was
    // removed): told as resolved from what was sent.
    store
        .create_silence(&Silence {
            id: 0,
            matchers: r#"{host="b"}"#.into(),
            starts_ms: T0,
            ends_ms: T0 + 86_400_000,
            author: "ops".into(),
            comment: "maintenance".into(),
        })
        .expect("silence");
    store
        .save_alerts(&[], &[("cpu-high", "host=\"a\"")], true)
        .expect("delete");
    r.tick(&store, T0 + 630_000).expect("tick");
    let m = messages(&store);
    assert_eq!(m.len(), 3, "{m:?}");
    assert_eq!(ids(&m[2], "resolved"), vec!["cpu-high/host=\"a\""]);
    assert!(ids(&m[2], "firing").is_empty());
    assert_eq!(
        m[2].message.payload["resolved"][0]["summary"],
        "cpu-high on a"
    );
    // Nothing more while b stays silenced.
    r.tick(&store, T0 + 5 * 3_600_000).expect("tick");
    assert_eq!(messages(&store).len(), 3);
}
