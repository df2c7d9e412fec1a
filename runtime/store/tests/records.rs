//! The record tables on a real redb file, each through a reopen: liveness, alert state,
//! outbox, guest kv, audit log, policy versions.

use std::path::Path;

use tocsin_store::{
    AlertPhase, AlertRecord, AuditEntry, Delivery, LivenessState, MAX_KV_KEYS, MAX_KV_VALUE,
    NewMessage, Store, StoreError,
};

fn reopen(path: &Path) -> Store {
    Store::open(path).expect("reopen")
}

#[test]
fn liveness_moves_online_stale_offline_and_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    {
        let store = Store::open(&path).expect("open");
        let t = store
            .record_heartbeats(&[("kiosk-1", 1_000), ("kiosk-2", 1_000)])
            .expect("beats");
        assert_eq!(t.len(), 2, "new clients are transitions");
        assert_eq!(t[0].from, None);
        assert!(
            store
                .record_heartbeats(&[("kiosk-1", 31_000)])
                .expect("beat")
                .is_empty()
        );
        // At 70 s: kiosk-2 quiet for 69 s (stale after 60), kiosk-1 for 39 s.
        let t = store
            .sweep_liveness(70_000, 60_000, 180_000)
            .expect("sweep");
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].client.as_str(), t[0].to),
            ("kiosk-2", LivenessState::Stale)
        );
        let t = store
            .sweep_liveness(200_000, 60_000, 180_000)
            .expect("sweep");
        // At 200 s: kiosk-1 quiet 169 s (stale), kiosk-2 199 s (offline).
        let moved: Vec<(&str, LivenessState)> =
            t.iter().map(|t| (t.client.as_str(), t.to)).collect();
        assert_eq!(
            moved,
            vec![
                ("kiosk-1", LivenessState::Stale),
                ("kiosk-2", LivenessState::Offline)
            ]
        );
        let t = store
            .sweep_liveness(300_000, 60_000, 180_000)
            .expect("sweep");
        assert_eq!(t.len(), 1);
        let t = store
            .sweep_liveness(400_000, 60_000, 180_000)
            .expect("sweep");
        assert!(t.is_empty());
    }
    let store = reopen(&path);
    let k1 = store.liveness("kiosk-1").expect("get").expect("kiosk-1");
    assert_eq!(
        (k1.state, k1.since_ms, k1.last_seen_ms, k1.heartbeats),
        (LivenessState::Offline, 300_000, 31_000, 2)
    );
    let t = store
        .record_heartbeats(&[("kiosk-1", 310_000)])
        .expect("beat");
    assert_eq!(t[0].from, Some(LivenessState::Offline));
    let t = store.mark_offline(&[("kiosk-1", 311_000)]).expect("lwt");
    assert_eq!(t[0].to, LivenessState::Offline);
    assert_eq!(store.all_liveness().expect("all").len(), 2);
}

fn alert(rule: &str, host: &str, phase: AlertPhase) -> AlertRecord {
    AlertRecord {
        rule: rule.into(),
        key: format!("host={host}"),
        labels: vec![("host".into(), host.into())],
        phase,
        severity: "warning".into(),
        active_since_ms: 1_000,
        fired_at_ms: (phase == AlertPhase::Firing).then_some(61_000),
        resolved_at_ms: None,
        last_eval_ms: 61_000,
        last_active_ms: 61_000,
        value: 97.5,
        annotations: vec![("summary".into(), format!("CPU high on {host}"))],
        last_notified_ms: None,
    }
}

#[test]
fn alert_state_survives_reopen_per_rule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    {
        let store = Store::open(&path).expect("open");
        store
            .save_alerts(
                &[
                    alert("cpu-high", "a", AlertPhase::Firing),
                    alert("cpu-high", "b", AlertPhase::Pending),
                    alert("cpu-high-x", "a", AlertPhase::Pending),
                ],
                &[],
                true,
            )
            .expect("save");
        store
            .save_alerts(&[], &[("cpu-high", "host=b")], true)
            .expect("delete");
    }
    let store = reopen(&path);
    let cpu = store.alerts_of("cpu-high").expect("alerts");
    assert_eq!(
        cpu,
        vec![alert("cpu-high", "a", AlertPhase::Firing)],
        "no bleed from cpu-high-x"
    );
    assert_eq!(store.all_alerts().expect("all").len(), 2);
}

fn mail(to: &str) -> NewMessage {
    NewMessage {
        channel: "mail".into(),
        recipient: to.into(),
        kind: "server_alert".into(),
        payload: serde_json::json!({"subject": "CPU high"}),
        not_before_ms: 1_000,
    }
}

#[test]
fn outbox_retries_delivers_and_never_resends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let ids = {
        let store = Store::open(&path).expect("open");
        let ids = store.enqueue(&[mail("a@x"), mail("b@x")]).expect("enqueue");
        assert!(store.due_messages(999, 10).expect("due").is_empty());
        assert_eq!(store.due_messages(1_000, 10).expect("due").len(), 2);
        store
            .mark_attempt_failed(ids[0], "connection refused", Some(5_000))
            .expect("fail");
        store
            .mark_delivered(ids[1], 1_100, "250 2.0.0 Ok: queued as ABC")
            .expect("ok");
        ids
    };
    // After a restart only the failed one is due, and only once its retry time comes.
    let store = reopen(&path);
    assert!(store.due_messages(4_999, 10).expect("due").is_empty());
    let due = store.due_messages(5_000, 10).expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].id, due[0].attempts), (ids[0], 1));
    assert_eq!(due[0].last_error.as_deref(), Some("connection refused"));
    let done = store.outbox_message(ids[1]).expect("msg");
    assert_eq!(done.delivery, Delivery::Delivered);
    assert_eq!(
        done.server_reply.as_deref(),
        Some("250 2.0.0 Ok: queued as ABC")
    );
    assert!(
        matches!(
            store.mark_delivered(ids[1], 2_000, "250"),
            Err(StoreError::Refused(_))
        ),
        "a delivered message cannot be sent again"
    );
    store
        .mark_attempt_failed(ids[0], "still down", None)
        .expect("give up");
    assert_eq!(
        store.outbox_message(ids[0]).expect("msg").delivery,
        Delivery::Failed
    );
    assert!(store.due_messages(i64::MAX, 10).expect("due").is_empty());
    assert_eq!(store.recent_messages(1).expect("recent")[0].id, ids[1]);
}

#[test]
fn a_digest_marks_its_messages_together_and_postponing_counts_no_attempt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("open");
    let ids = store
        .enqueue(&[mail("a@x"), mail("a@x"), mail("a@x")])
        .expect("enqueue");
    store.reschedule(&ids[..2], 9_000).expect("postpone");
    let due = store.due_messages(8_999, 10).expect("due");
    assert_eq!(due.iter().map(|m| m.id).collect::<Vec<_>>(), vec![ids[2]]);
    assert_eq!(store.outbox_message(ids[0]).expect("msg").attempts, 0);
    store
        .mark_all_delivered(&ids[..2], 9_100, "digest: 250 OK")
        .expect("digest");
    for id in &ids[..2] {
        let m = store.outbox_message(*id).expect("msg");
        assert_eq!(m.delivery, Delivery::Delivered);
        assert_eq!(m.server_reply.as_deref(), Some("digest: 250 OK"));
    }
    // All or nothing: one delivered id refuses the whole batch.
    assert!(
        store
            .mark_all_delivered(&[ids[2], ids[0]], 9_200, "250")
            .is_err()
    );
    assert_eq!(
        store.outbox_message(ids[2]).expect("msg").delivery,
        Delivery::Pending
    );
}

#[test]
fn a_periodic_job_enqueues_once_per_period_across_reopens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    {
        let store = Store::open(&path).expect("open");
        assert!(
            store
                .enqueue_once("daily_digest", 20_000, &[mail("a@x")])
                .expect("once")
        );
        assert!(
            !store
                .enqueue_once("daily_digest", 20_000, &[mail("a@x")])
                .expect("again")
        );
        assert!(
            !store
                .enqueue_once("daily_digest", 19_999, &[mail("a@x")])
                .expect("older")
        );
        assert!(store.enqueue_once("other", 20_000, &[]).expect("other job"));
    }
    let store = reopen(&path);
    assert_eq!(
        store.job_period("daily_digest").expect("period"),
        Some(20_000)
    );
    assert_eq!(store.job_period("never").expect("period"), None);
    assert!(
        !store
            .enqueue_once("daily_digest", 20_000, &[mail("a@x")])
            .expect("after reopen")
    );
    assert!(
        store
            .enqueue_once("daily_digest", 20_001, &[mail("a@x")])
            .expect("next day")
    );
    assert_eq!(store.due_messages(i64::MAX, 10).expect("due").len(), 2);
}

#[test]
fn guest_kv_is_namespaced_bounded_and_atomic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    {
        let store = Store::open(&path).expect("open");
        store
            .kv_apply(
                "rule-a",
                &[
                    ("baseline/cpu", Some(b"42".as_slice())),
                    ("n", Some(b"1".as_slice())),
                ],
            )
            .expect("set");
        store
            .kv_apply("rule-b", &[("baseline/cpu", Some(b"7".as_slice()))])
            .expect("set");
        store.kv_apply("rule-a", &[("n", None)]).expect("delete");
    }
    let store = reopen(&path);
    assert_eq!(
        store.kv_get("rule-a", "baseline/cpu").expect("get"),
        Some(b"42".to_vec())
    );
    assert_eq!(store.kv_get("rule-a", "n").expect("get"), None);
    assert_eq!(
        store.kv_get("rule-b", "baseline/cpu").expect("get"),
        Some(b"7".to_vec())
    );
    assert_eq!(
        store.kv_list("rule-a", "", 10).expect("list"),
        vec!["baseline/cpu".to_string()]
    );
    assert!(store.kv_list("rule-a", "zzz", 10).expect("list").is_empty());
    let big = vec![0u8; MAX_KV_VALUE + 1];
    assert!(matches!(
        store.kv_apply("rule-a", &[("big", Some(big.as_slice()))]),
        Err(StoreError::Refused(_))
    ));
    assert!(matches!(
        store.kv_apply("rule-a", &[("", Some(b"x".as_slice()))]),
        Err(StoreError::Refused(_))
    ));
    // A batch that would pass the key quota lands not at all.
    let keys: Vec<String> = (0..MAX_KV_KEYS).map(|i| format!("k{i}")).collect();
    let writes: Vec<(&str, Option<&[u8]>)> = keys
        .iter()
        .map(|k| (k.as_str(), Some(b"v".as_slice())))
        .collect();
    assert!(matches!(
        store.kv_apply("rule-a", &writes),
        Err(StoreError::Refused(_))
    ));
    assert_eq!(
        store.kv_list("rule-a", "", 100).expect("list").len(),
        1,
        "all or nothing"
    );
}

#[test]
fn audit_log_is_newest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db")).expect("open");
    for (ts, action) in [
        (10, "policy.deploy"),
        (20, "silence.create"),
        (30, "policy.rollback"),
    ] {
        store
            .audit(&AuditEntry {
                ts_ms: ts,
                actor: "admin".into(),
                action: action.into(),
                target: "cpu-high".into(),
                detail: String::new(),
            })
            .expect("audit");
    }
    let log = store.audit_log(15, 10).expect("log");
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["policy.rollback", "silence.create"]);
    assert_eq!(store.audit_log(0, 1).expect("log").len(), 1);
}

#[test]
fn policy_versions_number_deploys_and_roll_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    {
        let store = Store::open(&path).expect("open");
        let grants = vec!["metrics".to_string()];
        let v1 = store
            .record_policy_version("cpu-high", "aa", "kind = 1", b"wasm", &grants, 1, "admin")
            .expect("v1");
        let same = store
            .record_policy_version("cpu-high", "aa", "kind = 1", b"wasm", &grants, 2, "admin")
            .expect("same");
        assert_eq!(
            (v1.version, same.version),
            (1, 1),
            "an unchanged deploy is no new version"
        );
        let v2 = store
            .record_policy_version("cpu-high", "bb", "kind = 2", b"wasm", &grants, 3, "admin")
            .expect("v2");
        assert_eq!(v2.version, 2);
        store
            .record_policy_version("cpu-high-2", "cc", "x", b"wasm", &[], 4, "admin")
            .expect("other");
    }
    let store = reopen(&path);
    assert_eq!(
        store
            .current_policy_version("cpu-high")
            .expect("current")
            .expect("some")
            .sha256,
        "bb"
    );
    let back = store
        .set_current_policy_version("cpu-high", 1)
        .expect("rollback");
    assert_eq!(back.sha256, "aa");
    assert_eq!(
        store
            .current_policy_version("cpu-high")
            .expect("current")
            .expect("some")
            .version,
        1
    );
    assert_eq!(
        store.policy_versions("cpu-high").expect("versions").len(),
        2
    );
    assert!(matches!(
        store.set_current_policy_version("cpu-high", 9),
        Err(StoreError::Refused(_))
    ));
    // Deploying again after a rollback makes version 3, not a second version 2.
    let v3 = store
        .record_policy_version("cpu-high", "dd", "kind = 3", b"wasm", &[], 5, "admin")
        .expect("v3");
    assert_eq!(v3.version, 3);
    assert_eq!(
        store.component("aa").expect("bytes"),
        Some(b"wasm".to_vec())
    );
    assert_eq!(store.component("zz").expect("bytes"), None);
}
