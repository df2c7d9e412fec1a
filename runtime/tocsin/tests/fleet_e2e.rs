//! The MQTT fleet against the real binary: clients publish metrics, logs, health,
//! heartbeats and a retained status with a Last Will, through the embedded broker and
//! through Debian's mosquitto; malformed messages are counted with their topic; an unclean
//! disconnect makes a client offline; messages queued at the broker while Tocsin is down
//! are stored when it returns.

mod common;

use std::time::Duration;

use common::*;
use rumqttc::{Client, Connection, Event, LastWill, MqttOptions, Packet, QoS};
use serde_json::Value;

/// A fleet client: its connection runs on a thread until dropped.
struct FleetClient {
    client: Client,
    pump: Option<std::thread::JoinHandle<Connection>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FleetClient {
    /// Connect as `id` to the broker on `port`, with the Last Will `offline` on
    /// `tocsin/ID/status` (retained).
    fn connect(port: u16, id: &str) -> FleetClient {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_last_will(LastWill::new(
            format!("tocsin/{id}/status"),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        let (client, mut connection) = Client::new(options, 100);
        let (connected_tx, connected_rx) = std::sync::mpsc::channel();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let pump_stop = stop.clone();
        let pump = std::thread::spawn(move || {
            while !pump_stop.load(std::sync::atomic::Ordering::Relaxed) {
                match connection.recv_timeout(Duration::from_millis(100)) {
                    Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                        let _ = connected_tx.send(());
                    }
                    Ok(Err(_)) => std::thread::sleep(Duration::from_millis(100)),
                    _ => {}
                }
            }
            connection
        });
        connected_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("client connected");
        FleetClient {
            client,
            pump: Some(pump),
            stop,
        }
    }

    fn publish(&self, topic: &str, payload: &str, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.as_bytes().to_vec())
            .expect("publish");
    }

    /// Drop the TCP connection without DISCONNECT (a crash or a pulled cable).
    fn vanish(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let connection = self.pump.take().expect("pump").join().expect("join");
        drop(connection);
    }
}

fn clients(port: u16) -> Value {
    get(port, "/api/clients").expect("/api/clients").1
}

fn client(port: u16, id: &str) -> Option<Value> {
    let all = clients(port);
    all["clients"]
        .as_array()?
        .iter()
        .find(|c| c["client"] == id)
        .cloned()
}

/// Publish a client's whole day through the broker on `broker_port`; check what Tocsin
/// (HTTP on `port`) made of it; then make the client vanish and see it go offline.
fn a_client_reports_and_vanishes(port: u16, broker_port: u16, id: &str) {
    let c = FleetClient::connect(broker_port, id);
    c.publish(&format!("tocsin/{id}/status"), "online", true);
    c.publish(&format!("tocsin/{id}/heartbeat"), "{}", false);
    c.publish(
        &format!("tocsin/{id}/metrics"),
        r#"{"samples": [{"name": "room_temp_celsius", "labels": {"room": "lobby"}, "value": 21.5}]}"#,
        false,
    );
    c.publish(
        &format!("tocsin/{id}/logs/error"),
        "player crashed: exit 139",
        false,
    );
    c.publish(
        &format!("tocsin/{id}/logs/warn"),
        r#"{"message": "slow frame", "fields": {"ms": 120}}"#,
        false,
    );
    c.publish(&format!("tocsin/{id}/logs/info"), "started", false); // dropped: no debug
    c.publish(
        &format!("tocsin/{id}/health"),
        r#"{"process": "player", "pid": 4242, "status": "running", "restart_count": 1, "screen": "FROZEN"}"#,
        false,
    );
    // Malformed: bad JSON, and a kind the scheme does not have.
    c.publish(&format!("tocsin/{id}/metrics"), "room_temp 21.5", false);
    c.publish(&format!("tocsin/{id}/bogus"), "x", false);

    let seen = wait_for("the client's report", || {
        let c = client(port, id)?;
        (c["health"]["pid"] == 4242 && c["logs_24h"]["warn"] == 1).then_some(c)
    });
    assert_eq!(seen["state"], "online", "{seen}");
    assert_eq!(seen["health"]["screen"], "FROZEN");
    assert_eq!(seen["health"]["ok"], false, "a frozen screen is not ok");
    assert_eq!(seen["logs_24h"]["error"], 1);
    assert_eq!(
        seen["logs_24h"]["info"], 0,
        "INFO is dropped unless debug is on"
    );
    let temp = wait_for("the client's sample", || {
        latest(port, &format!("room_temp_celsius{{client=\"{id}\"}}"))
    });
    assert_eq!(temp, 21.5);
    assert_eq!(
        latest(port, &format!("client_screen_ok{{client=\"{id}\"}}")),
        Some(0.0)
    );
    let (_, logs) = get(port, &format!("/api/clients/{id}/logs?level=warn")).expect("logs");
    let messages: Vec<&str> = logs["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .filter_map(|l| l["message"].as_str())
        .collect();
    assert_eq!(messages.len(), 2, "{logs}");
    assert!(messages.contains(&"player crashed: exit 139") && messages.contains(&"slow frame"));
    let (_, errors_only) =
        get(port, &format!("/api/clients/{id}/logs?level=error&limit=1")).expect("logs");
    assert_eq!(errors_only["logs"][0]["level"], "error", "{errors_only}");
    let (_, summary) = get(port, "/api/clients/summary").expect("summary");
    assert!(
        summary["clients"]
            .as_array()
            .expect("clients")
            .iter()
            .any(|c| c["client"] == id && c["counts"]["error"] == 1),
        "{summary}"
    );
    let mqtt = wait_for("both malformed messages counted", || {
        let all = clients(port);
        (all["mqtt"]["malformed"].as_u64()? >= 2).then(|| all["mqtt"].clone())
    });
    let recent = mqtt["recent_malformed"].to_string();
    assert!(
        recent.contains(&format!("tocsin/{id}/metrics")) && recent.contains("invalid JSON"),
        "{recent}"
    );
    assert!(
        recent.contains(&format!("tocsin/{id}/bogus")) && recent.contains("unknown kind"),
        "{recent}"
    );
    assert_eq!(mqtt["dropped_info"], 1, "{mqtt}");
    assert_eq!(mqtt["connected"], true);

    // A crash: no DISCONNECT, so the broker publishes the Last Will.
    c.vanish();
    let gone = wait_for("the Last Will", || {
        let c = client(port, id)?;
        (c["state"] == "offline").then_some(c)
    });
    assert!(
        gone["since_ms"].as_i64() >= gone["last_seen_ms"].as_i64(),
        "{gone}"
    );
    // The series follows the state's commit in the same writer batch.
    wait_for("client_up 0", || {
        (latest(port, &format!("client_up{{client=\"{id}\"}}")) == Some(0.0)).then_some(())
    });
    let (_, metrics) = get_text(port, "/metrics").expect("/metrics");
    assert!(
        metrics.contains("tocsin_mqtt_messages_total{outcome=\"malformed\"} 2"),
        "{metrics}"
    );
}

#[test]
fn clients_report_through_the_embedded_broker() {
    let (policies, data) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (port, broker) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{broker}");
    let _tocsin = start_with(
        policies.path(),
        data.path(),
        port,
        &[("TOCSIN_MQTT__LISTEN", &listen)],
    );
    wait_for("/healthz", || get(port, "/healthz"));
    a_client_reports_and_vanishes(port, broker, "kiosk-1");
}

#[test]
fn clients_report_through_mosquitto_and_queued_messages_survive_a_tocsin_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let (policies, data) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (port, broker) = (free_port(), free_port());
    let _mosquitto = mosquitto(dir.path(), broker);
    let external = format!("127.0.0.1:{broker}");
    let env = [
        ("TOCSIN_MQTT__EMBEDDED", "false"),
        ("TOCSIN_MQTT__BROKER", external.as_str()),
    ];
    let tocsin = start_with(policies.path(), data.path(), port, &env);
    wait_for("/healthz", || get(port, "/healthz"));
    wait_for("the subscriber connected", || {
        (clients(port)["mqtt"]["connected"] == true).then_some(())
    });
    a_client_reports_and_vanishes(port, broker, "kiosk-2");

    // Tocsin goes away; a client keeps publishing; the broker queues for Tocsin's
    // persistent session; all of it is stored when Tocsin returns.
    drop(tocsin);
    let c = FleetClient::connect(broker, "kiosk-3");
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        / 1000
        * 1000
        - 3_600_000;
    for i in 0..200 {
        c.publish(
            "tocsin/kiosk-3/metrics",
            &format!(
                r#"[{{"name": "queued_total", "value": {i}, "ts_ms": {}}}]"#,
                base + i * 1000
            ),
            false,
        );
    }
    c.publish("tocsin/kiosk-3/heartbeat", "", false);
    std::thread::sleep(Duration::from_millis(500));
    let _again = start_with(policies.path(), data.path(), port, &env);
    wait_for("/healthz", || get(port, "/healthz"));
    wait_for("kiosk-3 online", || {
        (client(port, "kiosk-3")?["state"] == "online").then_some(())
    });
    let stored = || {
        let (_, range) = get(
            port,
            &format!(
                "/api/metrics/query_range?selector=queued_total&start={}&end={}&step=1000&fn=count",
                base - 1000,
                base + 200_000
            ),
        )?;
        let count: f64 = range["series"][0]["points"]
            .as_array()?
            .iter()
            .filter_map(|p| p[1].as_f64())
            .sum();
        Some((count, range))
    };
    // The heartbeat (sent last) can be handled before the last metrics batch commits:
    // wait for the count to reach 200, then make sure it stays there (stored once).
    wait_for("all 200 queued messages", || {
        stored().filter(|(n, _)| *n >= 200.0)
    });
    std::thread::sleep(Duration::from_millis(500));
    let (count, range) = stored().expect("range");
    assert_eq!(count, 200.0, "every queued message stored once: {range}");
    c.vanish();
}
