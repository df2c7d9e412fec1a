//! The deliverer over a real store, through the command channel (a real child process per
//! message): rate limits fold bursts into digests, failures back off and give up, refused
//! kinds are recorded as failed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tocsin_notify::{Deliverer, MailConfig, NotifyConfig, PassReport, Templates};
use tocsin_store::{Delivery, NewMessage, Store};

fn alert(recipient: &str, rule: &str, at: i64) -> NewMessage {
    NewMessage {
        channel: "pipe".into(),
        recipient: recipient.into(),
        kind: "server_alert".into(),
        payload: json!({
            "receiver": "cmd", "status": "firing", "group_labels": {},
            "firing": [{"id": format!("{rule}/x"), "rule": rule, "status": "firing",
                        "severity": "warning", "summary": format!("{rule} fired"),
                        "labels": {"alertname": rule}}],
            "resolved": [],
        }),
        not_before_ms: at,
    }
}

fn setup(max: u32) -> (tempfile::TempDir, Arc<Store>, NotifyConfig) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(&dir.path().join("db")).expect("store"));
    let mut config = NotifyConfig {
        server_name: "hq".into(),
        ..NotifyConfig::default()
    };
    config.rate_limit.max = max;
    (dir, store, config)
}

/// A deliverer whose receiver `cmd` runs the commands `to` (the `pipe` channel).
fn deliverer(store: &Arc<Store>, config: &NotifyConfig, to: &[&str]) -> Deliverer {
    Deliverer::new(
        store.clone(),
        Templates::default(),
        tocsin_notify::ChartRules::default(),
        config.clone(),
        MailConfig::default(),
        vec![receiver("cmd", "pipe", to)],
    )
}

fn receiver(name: &str, channel: &str, to: &[&str]) -> tocsin_alerting::Receiver {
    tocsin_alerting::Receiver {
        name: name.into(),
        channel: channel.into(),
        to: to.iter().map(|s| s.to_string()).collect(),
        format: "generic".into(),
        routing_key: Default::default(),
    }
}

/// A command appending each notification it gets, one JSON line each, to a file.
fn recorder(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let log = dir.join("received");
    let cmd = format!(
        "sh -c 'cat >> {}; echo >> {}'",
        log.display(),
        log.display()
    );
    (log, cmd)
}

#[test]
fn a_burst_to_one_recipient_becomes_one_digest() {
    let (dir, store, config) = setup(5);
    let (log, cmd) = recorder(dir.path());
    let mut d = deliverer(&store, &config, &[&cmd]);
    store
        .enqueue(
            &(0..3)
                .map(|i| alert(&cmd, &format!("r{i}"), 1_000))
                .collect::<Vec<_>>(),
        )
        .expect("enqueue");
    let r = d.pass("pipe", 1_000).expect("pass");
    assert_eq!((r.delivered, r.folded), (3, 0));
    // 100 more with room for 2: one digest carrying all of them.
    store
        .enqueue(
            &(0..100)
                .map(|i| alert(&cmd, &format!("b{i}"), 2_000))
                .collect::<Vec<_>>(),
        )
        .expect("enqueue");
    let r = d.pass("pipe", 2_000).expect("pass");
    assert_eq!((r.delivered, r.folded), (100, 100));
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 4, "three singles and one digest");
    assert_eq!(lines[3]["kind"], "alert_digest");
    assert_eq!(
        lines[3]["payload"]["firing"].as_array().map(Vec::len),
        Some(100)
    );
    assert!(
        lines[3]["subject"]
            .as_str()
            .unwrap_or("")
            .contains("100 alerts")
    );
    // The window is full now (4 of 5 sent, the digest counting once): one more fits ...
    store.enqueue(&[alert(&cmd, "c0", 3_000)]).expect("enqueue");
    assert_eq!(d.pass("pipe", 3_000).expect("pass").delivered, 1);
    // ... and the next ones wait for the window instead of being dropped — also for a
    // deliverer started afresh (a restart), which reads the window from the store and
    // counts the digest once.
    store
        .enqueue(&[alert(&cmd, "c1", 4_000), alert(&cmd, "c2", 4_000)])
        .expect("enqueue");
    let mut restarted = deliverer(&store, &config, &[&cmd]);
    let r = restarted.pass("pipe", 4_000).expect("pass");
    assert_eq!(r.postponed, 2, "{r:?}");
    // The window frees when the first delivery (at 1 s, plus the moments the command took)
    // is 10 minutes old.
    let first = store
        .recent_messages(200)
        .expect("recent")
        .iter()
        .filter_map(|m| m.delivered_ms)
        .min()
        .expect("delivered");
    let window_end = first + 600_000;
    assert!((1_000..2_000).contains(&first), "{first}");
    assert!(
        store
            .due_messages(window_end - 1, 10)
            .expect("due")
            .is_empty()
    );
    assert_eq!(store.due_messages(window_end, 10).expect("due").len(), 2);
    let r = restarted.pass("pipe", window_end).expect("pass");
    assert_eq!(r.delivered, 2, "{r:?}");
}

#[test]
fn failures_back_off_with_jitter_then_give_up() {
    let (_dir, store, mut config) = setup(10);
    config.retry.initial = Duration::from_secs(10);
    config.retry.max = Duration::from_secs(40);
    config.retry.give_up_after = Duration::from_secs(3600);
    let mut d = deliverer(&store, &config, &["false"]);
    let ids = store.enqueue(&[alert("false", "r", 0)]).expect("enqueue");
    let mut now = 0;
    let mut waits = Vec::new();
    for _ in 0..5 {
        let r = d.pass("pipe", now).expect("pass");
        assert_eq!(r.retried, 1, "{r:?}");
        let m = store.outbox_message(ids[0]).expect("msg");
        waits.push(m.next_attempt_ms - now);
        now = m.next_attempt_ms;
    }
    // 10 s, 20 s, 40 s, 40 s, 40 s — each between half and all of it.
    for (w, cap) in waits.iter().zip([10_000, 20_000, 40_000, 40_000, 40_000]) {
        // (plus the moments the attempt itself took)
        assert!(*w >= cap / 2 && *w <= cap + 1_000, "{waits:?}");
    }
    let r = d.pass("pipe", 3_600_000).expect("pass");
    assert_eq!(r.failed, 1);
    let m = store.outbox_message(ids[0]).expect("msg");
    assert_eq!(m.delivery, Delivery::Failed);
    assert_eq!(m.attempts, 6);
    assert!(m.last_error.unwrap_or_default().contains("exit status: 1"));
}

#[test]
fn turned_off_kinds_are_recorded_not_sent() {
    let (_dir, store, mut config) = setup(10);
    config.kinds.insert("server_alert".into(), false);
    let mut d = deliverer(&store, &config, &["true"]);
    let ids = store.enqueue(&[alert("true", "r", 0)]).expect("enqueue");
    assert_eq!(
        d.pass("pipe", 0).expect("pass"),
        PassReport {
            failed: 1,
            ..PassReport::default()
        }
    );
    let m = store.outbox_message(ids[0]).expect("msg");
    assert!(m.last_error.unwrap_or_default().contains("turned off"));
}

/// A one-thread HTTP server on 127.0.0.1: answers each request with the next status of
/// `statuses` (then 200) and hands every request body over the channel.
fn http_server(statuses: Vec<u16>) -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut statuses = statuses.into_iter();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let status = statuses.next().unwrap_or(200);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            );
            let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
        }
    });
    (url, rx)
}

#[test]
fn webhooks_post_the_receivers_shape_and_retry_on_server_errors() {
    let (_dir, store, mut config) = setup(10);
    config.retry.initial = Duration::from_millis(1);
    config.retry.max = Duration::from_millis(1);
    let (url, bodies) = http_server(vec![503]);
    let receiver = tocsin_alerting::Receiver {
        name: "chat".into(),
        channel: "webhook".into(),
        to: vec![url.clone()],
        format: "slack".into(),
        routing_key: Default::default(),
    };
    let mut d = Deliverer::new(
        store.clone(),
        Templates::default(),
        tocsin_notify::ChartRules::default(),
        config,
        MailConfig::default(),
        vec![receiver],
    );
    let mut m = alert(&url, "cpu-high", 0);
    m.channel = "webhook".into();
    m.payload["receiver"] = json!("chat");
    let ids = store.enqueue(&[m]).expect("enqueue");
    let r = d.pass("webhook", 0).expect("pass");
    assert_eq!(r.retried, 1, "503 is retried: {r:?}");
    let first = bodies
        .recv_timeout(Duration::from_secs(5))
        .expect("first body");
    let r = d.pass("webhook", 10_000).expect("pass");
    assert_eq!(r.delivered, 1, "{r:?}");
    let second = bodies
        .recv_timeout(Duration::from_secs(5))
        .expect("second body");
    let first: serde_json::Value = serde_json::from_str(&first).expect("json");
    let body: serde_json::Value = serde_json::from_str(&second).expect("json");
    assert_eq!(
        first["text"], body["text"],
        "the retry sends the same message"
    );
    assert_eq!(body["text"], "[FIRING:1] cpu-high on hq");
    assert!(
        body["attachments"][0]["image_url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/api/charts/alert.png?rule=cpu-high&alertname=cpu-high")),
        "{body}"
    );
    let m = store.outbox_message(ids[0]).expect("msg");
    assert_eq!(m.server_reply.as_deref(), Some("HTTP 200"));
    assert!(m.last_error.is_none());
}

#[test]
fn alert_mail_to_a_non_administrator_is_refused_when_alerts_are_admin_only() {
    let (_dir, store, config) = setup(10);
    let mail = MailConfig {
        alerts_admins_only: true,
        admins: vec!["boss@example.org".into()],
        ..MailConfig::default()
    };
    let mut d = Deliverer::new(
        store.clone(),
        Templates::default(),
        tocsin_notify::ChartRules::default(),
        config,
        mail,
        vec![receiver("ops", "mail", &["intern@example.org"])],
    );
    let mut m = alert("intern@example.org", "cpu-high", 0);
    m.channel = "mail".into();
    m.payload["receiver"] = json!("ops");
    let ids = store.enqueue(&[m]).expect("enqueue");
    assert_eq!(d.pass("mail", 0).expect("pass").failed, 1);
    let m = store.outbox_message(ids[0]).expect("msg");
    assert_eq!(m.delivery, Delivery::Failed);
    assert!(
        m.last_error
            .unwrap_or_default()
            .contains("administrators only")
    );
}

#[test]
fn a_failing_destination_is_paused_not_hammered() {
    let (_dir, store, mut config) = setup(10);
    config.retry.initial = Duration::from_secs(10);
    let mut d = deliverer(&store, &config, &["false"]);
    let ids = store
        .enqueue(&[
            alert("false", "a", 0),
            alert("false", "b", 0),
            alert("false", "c", 0),
        ])
        .expect("enqueue");
    let r = d.pass("pipe", 0).expect("pass");
    assert_eq!(
        (r.retried, r.postponed),
        (1, 2),
        "one attempt, the rest wait: {r:?}"
    );
    let msgs: Vec<_> = ids
        .iter()
        .map(|id| store.outbox_message(*id).expect("msg"))
        .collect();
    assert_eq!(
        msgs.iter().map(|m| m.attempts).collect::<Vec<_>>(),
        [1, 0, 0]
    );
    // They all come due together when the pause ends.
    assert!(
        msgs.iter()
            .all(|m| m.next_attempt_ms == msgs[0].next_attempt_ms)
    );
}

#[test]
fn a_digest_tells_each_alert_in_its_newest_state() {
    let (dir, store, config) = setup(1);
    let log = dir.path().join("received");
    let cmd = format!("sh -c 'cat > {}'", log.display());
    let mut d = deliverer(&store, &config, &[&cmd]);
    let firing = alert(&cmd, "cpu-high", 5_000);
    let mut resolved = alert(&cmd, "cpu-high", 1_000);
    resolved.payload["status"] = json!("resolved");
    resolved.payload["resolved"] = resolved.payload["firing"].clone();
    resolved.payload["resolved"][0]["status"] = json!("resolved");
    resolved.payload["firing"] = json!([]);
    // Queued firing first, resolved second; the resolved one is due earlier (as after a
    // retry): the digest still says resolved.
    store.enqueue(&[firing, resolved]).expect("enqueue");
    let r = d.pass("pipe", 10_000).expect("pass");
    assert_eq!(r.folded, 2, "{r:?}");
    let sent: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&log).expect("log")).expect("json");
    assert_eq!(sent["payload"]["status"], "resolved", "{sent}");
    assert_eq!(
        sent["payload"]["resolved"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn messages_for_a_receiver_no_longer_configured_are_failed_with_the_reason() {
    let (_dir, store, config) = setup(10);
    let mut d = deliverer(&store, &config, &["true"]);
    let mut gone = alert("true", "r", 0);
    gone.payload["receiver"] = json!("old");
    let moved = alert("echo", "r", 0);
    let ids = store.enqueue(&[gone, moved]).expect("enqueue");
    assert_eq!(d.pass("pipe", 0).expect("pass").failed, 2);
    let errors: Vec<String> = ids
        .iter()
        .map(|id| {
            store
                .outbox_message(*id)
                .expect("msg")
                .last_error
                .unwrap_or_default()
        })
        .collect();
    assert!(
        errors[0].contains("`old` is no longer configured"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("no longer sends to this recipient"),
        "{errors:?}"
    );
}

#[test]
fn past_the_limit_the_oldest_waiting_message_goes_first_whatever_its_kind() {
    let (dir, store, config) = setup(1);
    let (log, cmd) = recorder(dir.path());
    let mut d = deliverer(&store, &config, &[&cmd]);
    let mut custom = alert(&cmd, "x", 0);
    custom.kind = "custom".into();
    custom.payload = json!({"receiver": "cmd", "vars": {"subject": "old note"}});
    store
        .enqueue(&[custom, alert(&cmd, "a", 0), alert(&cmd, "b", 0)])
        .expect("enqueue");
    // One slot: the older custom message takes it; the alerts wait (folded later).
    let r = d.pass("pipe", 0).expect("pass");
    assert_eq!((r.delivered, r.postponed), (1, 2), "{r:?}");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("\"kind\":\"custom\""), "{text}");
    let r = d.pass("pipe", 601_000).expect("pass");
    assert_eq!((r.delivered, r.folded), (2, 2), "{r:?}");
}
