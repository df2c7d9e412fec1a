//! `tocsin agent` against a Tocsin server through a real mosquitto: the agent's samples,
//! logs and watchdog reports arrive as client `edge-1`; while the broker is down the agent
//! spools to disk — and survives being killed with SIGKILL meanwhile — and after the broker
//! returns every second of the outage is delivered.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The seconds the agent's clock script printed that the server stored, per step of 1 s
/// in `[start, end]`.
fn stored_ticks(port: u16, start: i64, end: i64) -> Vec<i64> {
    let path = format!(
        "/api/metrics/query_range?selector=tick_seconds%7Bclient%3D%22edge-1%22%7D\
         &start={start}&end={end}&step=1000&lookback=1000"
    );
    let Some((_, body)) = get(port, &path) else {
        return Vec::new();
    };
    body["series"][0]["points"]
        .as_array()
        .map(|points| {
            points
                .iter()
                .filter_map(|p| p[1].as_f64().map(|v| v as i64))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_agent_spools_through_a_broker_outage_and_delivers_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker_dir = dir.path().join("broker");
    std::fs::create_dir(&broker_dir).expect("dir");
    let mport = free_port();
    let broker = mosquitto_persistent(&broker_dir, mport);

    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).expect("policies");
    let port = free_port();
    let broker_addr = format!("127.0.0.1:{mport}");
    let _server = start_with(
        &policies,
        &dir.path().join("server"),
        port,
        &[
            ("TOCSIN_MQTT__EMBEDDED", "false"),
            ("TOCSIN_MQTT__BROKER", &broker_addr),
        ],
    );
    wait_for("/healthz", || get(port, "/healthz"));

    let log = dir.path().join("app.log");
    std::fs::write(&log, "").expect("log");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"data_dir = "{data}"
[collect]
host = false
gpu = false
[[collect.scripts]]
name = "clock"
command = ["date", "+tick_seconds %s"]
interval = "1s"
[[collect.log_files]]
path = "{log}"
source = "app"
[agent]
server = "{broker_addr}"
client_id = "edge-1"
heartbeat = "1s"
[agent.watchdog]
name = "worker"
command = ["sh", "-c", "sleep 0.3; exit 3"]
max_restarts = 2
restart_delay = "100ms"
"#,
            data = dir.path().join("agent").display(),
            log = log.display(),
        ),
    )
    .expect("agent config");
    let spawn_agent = || {
        Killed(
            Command::new(env!("CARGO_BIN_EXE_tocsin"))
                .args(["agent", "--config"])
                .arg(&config)
                .env_remove("TOCSIN_CONFIG")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("tocsin agent"),
        )
    };
    let agent = spawn_agent();

    // Samples arrive labelled with the agent's client id, and the client is online.
    let first = wait_for("the agent's first sample", || {
        latest(port, r#"tick_seconds{client="edge-1"}"#)
    });
    let (_, clients) = get(port, "/api/clients/edge-1").expect("client");
    assert_eq!(clients["state"], "online", "{clients}");

    // The watchdog's process exits every time: two restarts, then crashed.
    let health = wait_for("the watchdog gives up", || {
        let (_, c) = get(port, "/api/clients/edge-1")?;
        (c["health"]["status"] == "crashed").then_some(c)
    });
    assert_eq!(health["health"]["restart_count"], 2, "{health}");
    assert_eq!(health["health"]["process"], "worker");

    // The broker goes away for 5 s; the agent keeps collecting (and a log line lands).
    broker.terminate();
    let outage_start = now_ms();
    std::thread::sleep(Duration::from_millis(1500));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("log");
    writeln!(f, "ERROR disk full while the broker was down").expect("write");
    std::thread::sleep(Duration::from_millis(1500));
    // Killed outright mid-outage: what it spooled is on disk; a new agent sends it.
    drop(agent); // SIGKILL
    let _agent = spawn_agent();
    std::thread::sleep(Duration::from_millis(2000));
    let outage_end = now_ms();
    let _broker = mosquitto_persistent(&broker_dir, mport);

    // Everything arrives: no second of the outage is missing.
    let after = outage_end / 1000 + 2;
    wait_for("samples from after the outage", || {
        latest(port, r#"tick_seconds{client="edge-1"}"#).filter(|v| *v as i64 >= after)
    });
    let ticks = wait_for("the outage's samples", || {
        let t = stored_ticks(port, outage_start - 2000, outage_end + 2000);
        (t.len() >= 6).then_some(t)
    });
    // One value per second: the clock script's seconds, each once and in order. (The
    // agent's restart, or a round the 2-core test machine delays past its second, shows
    // as a gap of 2; an outage not delivered would be a gap of 3 or more.)
    let gaps: Vec<i64> = ticks.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| (1..=2).contains(g)) && gaps.iter().filter(|g| **g == 2).count() <= 2,
        "seconds missing or repeated around the outage: {ticks:?}"
    );
    assert!(ticks[0] >= first as i64);

    let logs = wait_for("the outage's log line", || {
        let (_, body) = get(port, "/api/clients/edge-1/logs?level=error")?;
        let found = body["logs"]
            .as_array()?
            .iter()
            .any(|r| r["message"] == "ERROR disk full while the broker was down");
        found.then_some(body)
    });
    assert!(logs["logs"][0]["fields"]["source"] == "app", "{logs}");
}
