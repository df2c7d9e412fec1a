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
    let counted = wait_for("log_messages_total", || {
        latest(port, r#"log_messages_total{source="app",level="error"}"#).filter(|v| *v >= 4.0)
    });
    assert_eq!(counted, 4.0);
}
