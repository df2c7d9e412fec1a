//! The built-in collectors in a running Tocsin: host metrics under node_exporter's names,
//! a script metric, and a followed log file rotated mid-test (no line lost or repeated).

mod common;

use std::io::Write;

use common::*;

fn append(path: &std::path::Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    f.write_all(text.as_bytes()).expect("write log");
}

#[test]
fn host_metrics_scripts_and_log_files_are_collected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    append(&log, "written before Tocsin started\n");
    let config = dir.path().join("tocsin.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[collect]
interval = "1s"

[[collect.scripts]]
name = "queues"
command = ["sh", "-c", "echo 'queue_depth{{queue=\"mail\"}} 7'; echo 'not a sample'"]
interval = "1s"

[[collect.log_files]]
path = "{}"
source = "app"
"#,
            log.display()
        ),
    )
    .expect("config");
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).expect("policies");
    let port = free_port();
    let _tocsin = start_config(&policies, &dir.path().join("data"), port, &config);
    wait_for("/healthz", || get(port, "/healthz"));

    // Host metrics, node_exporter's names and units.
    let mem = wait_for("node_memory_MemTotal_bytes", || {
        latest(port, "node_memory_MemTotal_bytes")
    });
    assert!(mem > 64.0 * 1024.0 * 1024.0, "{mem}");
    let idle = latest(port, r#"node_cpu_seconds_total{cpu="0",mode="idle"}"#).expect("cpu");
    assert!(idle > 0.0);
    let root = latest(port, r#"node_filesystem_avail_bytes{mountpoint="/"}"#).expect("fs");
    assert!(root > 0.0);
    assert!(latest(port, r#"node_network_receive_bytes_total{device="lo"}"#).is_some());

    // The script's sample, labelled with the script, and its success.
    let depth = wait_for("queue_depth", || {
        latest(port, r#"queue_depth{queue="mail",script="queues"}"#)
    });
    assert_eq!(depth, 7.0);
    assert_eq!(
        latest(port, r#"script_success{script="queues"}"#),
        Some(1.0)
    );

    // The log file: lines written from now on, across a rotation by rename.
    std::thread::sleep(std::time::Duration::from_millis(600));
    let mut expected = Vec::new();
    for i in 0..200 {
        let line = format!("{} line {i}", if i % 50 == 0 { "ERROR" } else { "INFO" });
        append(&log, &format!("{line}\n"));
        expected.push(line);
        if i == 120 {
            std::fs::rename(&log, dir.path().join("app.log.1")).expect("rotate");
        }
        if i % 40 == 0 {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
    let got = wait_for("200 log lines", || {
        let (_, body) = get(port, "/api/logs?source=app&limit=500")?;
        let records = body["logs"].as_array()?.clone();
        (records.len() >= 200).then_some(records)
    });
    std::thread::sleep(std::time::Duration::from_millis(600));
    let (_, body) = get(port, "/api/logs?source=app&limit=500").expect("logs");
    let records = body["logs"].as_array().expect("records");
    assert_eq!(
        records.len(),
        got.len(),
        "more lines arrived later: repeated"
    );
    let mut messages: Vec<String> = records
        .iter()
        .filter_map(|r| r["message"].as_str().map(str::to_string))
        .collect();
    messages.sort();
    expected.sort();
    assert_eq!(
        messages, expected,
        "every line once, nothing from before the start"
    );
    let errors = records.iter().filter(|r| r["level"] == "error").count();
    assert_eq!(errors, 4);
    let counted = wait_for("log_lines_total", || {
        latest(port, r#"log_lines_total{source="app",level="error"}"#).filter(|v| *v >= 4.0)
    });
    assert_eq!(counted, 4.0);

    // Tocsin's own log went to data_dir/logs/tocsin.log as well as stderr.
    let own = std::fs::read_to_string(dir.path().join("data/logs/tocsin.log")).expect("own log");
    assert!(own.contains("admin"), "{own}");
}

/// The service-check and process-watch collector guests against a listener, a closed
/// port, Tocsin's own HTTP endpoint and a child process the test starts.
#[test]
fn service_checks_and_process_watch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).expect("policies");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let open = listener.local_addr().expect("addr").port();
    let closed = free_port();
    let port = free_port();
    std::fs::write(
        policies.join("service-checks.toml"),
        format!(
            "kind = \"collector\"\ncomponent = \"{}\"\ninterval = \"1s\"\ngrants = [\"sensors\"]\n\
             [params]\nports = \"127.0.0.1:{open}, 127.0.0.1:{closed}\"\n\
             urls = \"http://127.0.0.1:{port}/healthz, http://127.0.0.1:{port}/no-such-page\"\n\
             timeout_ms = \"1000\"\n[budgets]\ndeadline_ms = 10000\n",
            guest("service_checks")
        ),
    )
    .expect("policy");
    let _sleeper = Killed(
        std::process::Command::new("sleep")
            .arg("300")
            .spawn()
            .expect("sleep"),
    );
    std::fs::write(
        policies.join("process-watch.toml"),
        format!(
            "kind = \"collector\"\ncomponent = \"{}\"\ninterval = \"1s\"\ngrants = [\"sensors\"]\n\
             [params]\nprocesses = \"sleep, no-such-process-xyz\"\n[budgets]\ndeadline_ms = 5000\n",
            guest("process_watch")
        ),
    )
    .expect("policy");
    let _tocsin = start_with(
        &policies,
        &dir.path().join("data"),
        port,
        &[("TOCSIN_LOG__FORMAT", "json")],
    );
    wait_for("/healthz", || get(port, "/healthz"));
    // Its own log file in JSON: every line an object with a level and fields.
    let own = std::fs::read_to_string(dir.path().join("data/logs/tocsin.log")).expect("own log");
    let first: serde_json::Value =
        serde_json::from_str(own.lines().next().expect("a line")).expect("JSON line");
    assert!(
        first["level"].is_string() && first["fields"].is_object(),
        "{first}"
    );

    let up = |target: String| {
        wait_for(&format!("port_up {target}"), || {
            latest(port, &format!(r#"port_up{{target="{target}"}}"#))
        })
    };
    assert_eq!(up(format!("127.0.0.1:{open}")), 1.0);
    assert_eq!(up(format!("127.0.0.1:{closed}")), 0.0);
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    // The first round may run before the server listens: wait for an up.
    wait_for("http_up 1", || {
        latest(port, &format!(r#"http_up{{url="{healthz}"}}"#)).filter(|v| *v == 1.0)
    });
    assert_eq!(
        latest(port, &format!(r#"http_status{{url="{healthz}"}}"#)),
        Some(200.0)
    );
    let missing = format!("http://127.0.0.1:{port}/no-such-page");
    assert_eq!(
        latest(port, &format!(r#"http_up{{url="{missing}"}}"#)),
        Some(0.0)
    );

    let sleeping = wait_for("process_count sleep", || {
        latest(port, r#"process_count{name="sleep"}"#).filter(|n| *n >= 1.0)
    });
    assert!(sleeping >= 1.0);
    assert!(latest(port, r#"process_memory_bytes{name="sleep"}"#).is_some_and(|b| b > 0.0));
    assert_eq!(
        latest(port, r#"process_count{name="no-such-process-xyz"}"#),
        Some(0.0)
    );
    drop(listener);
}
