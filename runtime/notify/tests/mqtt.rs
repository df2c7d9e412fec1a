//! The MQTT channel against a real broker (Debian's mosquitto, started here on a free
//! loopback port): a notification is published as JSON and acknowledged; a broker that is
//! down is a retry, not a loss.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use tocsin_notify::{ChartRules, Deliverer, MailConfig, NotifyConfig, Templates};
use tocsin_store::{Delivery, NewMessage, Store};

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn mosquitto(dir: &std::path::Path, port: u16) -> Broker {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n"
        ),
    )
    .expect("conf");
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto (Debian package; `cargo xtask test` installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Broker(child)
}

fn message(url: &str) -> NewMessage {
    NewMessage {
        channel: "mqtt".into(),
        recipient: url.into(),
        kind: "server_alert".into(),
        payload: json!({
            "receiver": "bus", "status": "firing", "group_labels": {},
            "firing": [{"id": "cpu-high/x", "rule": "cpu-high", "status": "firing",
                        "severity": "critical", "summary": "CPU at 99%", "labels": {}}],
            "resolved": [],
        }),
        not_before_ms: 0,
    }
}

fn deliverer(store: &Arc<Store>, url: &str) -> Deliverer {
    Deliverer::new(
        store.clone(),
        Templates::default(),
        ChartRules::default(),
        NotifyConfig {
            server_name: "hq".into(),
            timeout: Duration::from_secs(3),
            ..NotifyConfig::default()
        },
        MailConfig::default(),
        vec![tocsin_alerting::Receiver {
            name: "bus".into(),
            channel: "mqtt".into(),
            to: vec![url.into()],
            format: "generic".into(),
            routing_key: Default::default(),
        }],
    )
}

#[test]
fn a_notification_is_published_and_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _broker = mosquitto(dir.path(), port);
    // A subscriber, as an operator's consumer would be.
    let (client, mut connection) = Client::new(MqttOptions::new("sub", "127.0.0.1", port), 10);
    client
        .subscribe("alerts/#", QoS::AtLeastOnce)
        .expect("subscribe");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for event in connection.iter() {
            match event {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = tx.send(None);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send(Some((p.topic.clone(), p.payload.to_vec())));
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).expect("suback"),
        None
    );
    let store = Arc::new(Store::open(&dir.path().join("db")).expect("store"));
    let url = format!("mqtt://127.0.0.1:{port}/alerts/ops");
    let ids = store.enqueue(&[message(&url)]).expect("enqueue");
    let r = deliverer(&store, &url).pass("mqtt", 0).expect("pass");
    assert_eq!(r.delivered, 1, "{r:?}");
    let (topic, payload) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("published")
        .expect("a message");
    assert_eq!(topic, "alerts/ops");
    let body: serde_json::Value = serde_json::from_slice(&payload).expect("json");
    assert_eq!(body["subject"], "[FIRING:1] cpu-high on hq");
    assert_eq!(body["alerts"][0]["summary"], "CPU at 99%");
    let m = store.outbox_message(ids[0]).expect("msg");
    assert!(m.server_reply.is_some_and(|r| r.starts_with("PUBACK")));
}

#[test]
fn a_broker_that_is_down_is_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(&dir.path().join("db")).expect("store"));
    let url = format!("mqtt://127.0.0.1:{}/alerts/ops", free_port());
    let ids = store.enqueue(&[message(&url)]).expect("enqueue");
    let r = deliverer(&store, &url).pass("mqtt", 0).expect("pass");
    assert_eq!(r.retried, 1, "{r:?}");
    let m = store.outbox_message(ids[0]).expect("msg");
    assert_eq!(m.delivery, Delivery::Pending);
    assert!(m.last_error.is_some_and(|e| e.contains("127.0.0.1")));
}
