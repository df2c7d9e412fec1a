//! MQTT fleet ingest benchmark (plain binary, release): the real `tocsin` with its
//! embedded broker, then subscribed to Debian's mosquitto; one publisher sends `MESSAGES`
//! QoS 1 messages of 10 samples each as fast as the broker takes them, and the figure is
//! messages per second until Tocsin has stored every sample (from its own counters).
//! For scale, mosquitto's own publish → subscribe rate in the same run. Prints
//! `bench: NAME VALUE UNIT` lines for `cargo xtask bench`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

const MESSAGES: u64 = 50_000;
const SAMPLES: u64 = 10;

fn report(name: &str, value: f64, unit: &str) {
    println!("bench: {name} {value:.1} {unit}");
}

/// A connected client whose event loop runs on a thread counting incoming publishes.
fn client(port: u16, id: &str, received: Arc<AtomicU64>) -> Client {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(1000);
    let (client, mut connection) = Client::new(options, 10_000);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for event in connection.iter() {
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = tx.send(());
                }
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    received.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => return,
                _ => {}
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10)).expect("connected");
    client
}

fn payload(i: u64) -> Vec<u8> {
    let samples: Vec<String> = (0..SAMPLES)
        .map(|k| {
            format!(
                r#"{{"name":"bench_metric_{k}","labels":{{"core":"{}"}},"value":{i}}}"#,
                i % 4
            )
        })
        .collect();
    format!(r#"{{"samples":[{}]}}"#, samples.join(",")).into_bytes()
}

/// Publish `MESSAGES` from 10 clients' worth of topics and wait until Tocsin stored every
/// sample; messages per second.
fn tocsin_rate(port: u16, broker: u16, name: &str) -> f64 {
    let before = stored(port);
    let publisher = client(broker, &format!("bench-pub-{name}"), Arc::default());
    let payloads: Vec<Vec<u8>> = (0..MESSAGES).map(payload).collect();
    let started = Instant::now();
    for (i, p) in payloads.into_iter().enumerate() {
        publisher
            .publish(
                format!("tocsin/bench-{}/metrics", i % 10),
                QoS::AtLeastOnce,
                false,
                p,
            )
            .expect("publish");
    }
    let want = before + MESSAGES * SAMPLES;
    while stored(port) < want {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{name}: not all stored: {}",
            get(port, "/api/clients").map_or(serde_json::Value::Null, |(_, v)| v["mqtt"].clone())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    MESSAGES as f64 / started.elapsed().as_secs_f64()
}

fn stored(port: u16) -> u64 {
    get(port, "/api/clients")
        .and_then(|(_, v)| v["mqtt"]["samples"].as_u64())
        .unwrap_or(0)
}

/// mosquitto's own publish → subscribe rate for the same messages (QoS 1).
fn mosquitto_rate(broker: u16) -> f64 {
    let received = Arc::new(AtomicU64::new(0));
    let sub = client(broker, "bench-sub", received.clone());
    sub.subscribe("plain/#", QoS::AtLeastOnce)
        .expect("subscribe");
    std::thread::sleep(Duration::from_millis(300));
    let publisher = client(broker, "bench-pub-plain", Arc::default());
    let payloads: Vec<Vec<u8>> = (0..MESSAGES).map(payload).collect();
    let started = Instant::now();
    for (i, p) in payloads.into_iter().enumerate() {
        publisher
            .publish(
                format!("plain/c{}/metrics", i % 10),
                QoS::AtLeastOnce,
                false,
                p,
            )
            .expect("publish");
    }
    while received.load(Ordering::Relaxed) < MESSAGES {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "mosquitto: not all delivered"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    MESSAGES as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let (policies, data) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (port, broker) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{broker}");
    let tocsin = start_with(
        policies.path(),
        data.path(),
        port,
        &[
            ("TOCSIN_MQTT__LISTEN", &listen),
            ("TOCSIN_LOG__LEVEL", "warn"),
        ],
    );
    wait_for("/healthz", || get(port, "/healthz"));
    let embedded = tocsin_rate(port, broker, "embedded");
    report("mqtt_ingest_embedded_msgs_per_s", embedded, "msg/s");
    drop(tocsin);

    let dir = tempfile::tempdir().expect("dir");
    let (port, broker) = (free_port(), free_port());
    let _mosquitto = mosquitto(dir.path(), broker);
    let plain = mosquitto_rate(broker);
    let data = tempfile::tempdir().expect("dir");
    let external = format!("127.0.0.1:{broker}");
    let _tocsin = start_with(
        policies.path(),
        data.path(),
        port,
        &[
            ("TOCSIN_MQTT__EMBEDDED", "false"),
            ("TOCSIN_MQTT__BROKER", &external),
            ("TOCSIN_LOG__LEVEL", "warn"),
        ],
    );
    wait_for("/healthz", || get(port, "/healthz"));
    wait_for("subscribed", || {
        get(port, "/api/clients").and_then(|(_, v)| (v["mqtt"]["connected"] == true).then_some(()))
    });
    std::thread::sleep(Duration::from_millis(300));
    let through = tocsin_rate(port, broker, "mosquitto");
    report("mosquitto_pub_sub_msgs_per_s", plain, "msg/s");
    report("mqtt_ingest_mosquitto_msgs_per_s", through, "msg/s");
    report(
        "mqtt_ingest_mosquitto_share_pct",
        through / plain * 100.0,
        "%",
    );
}
