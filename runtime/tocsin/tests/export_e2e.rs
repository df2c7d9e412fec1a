//! End-to-end with the real tools Tocsin exports to, from Debian: a firing alert forwarded
//! to prometheus-alertmanager shows up in its API with Tocsin's labels, and samples sent
//! with remote_write land in victoria-metrics, every one of them.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

fn spawn(program: &str, args: &[String]) -> Killed {
    Killed(
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} (Debian package): {e}")),
    )
}

/// A collector every second and a rule that fires on any CPU reading.
fn firing_policies(dir: &Path) {
    write_collector(dir);
    std::fs::write(
        dir.join("cpu-any.toml"),
        format!(
            "kind = \"alert-rule\"\ncomponent = \"{}\"\ninterval = \"1s\"\n\
             [params]\nthreshold = \"-1\"\nclear = \"-2\"\ncritical = \"1000\"\n\
             [input]\nselect = [\"cpu_usage_percent\"]\nlookback = \"30s\"\n\
             [rule]\nlabels = {{ team = \"ops\" }}\n",
            guest("cpu_high")
        ),
    )
    .expect("rule");
}

#[test]
fn firing_alerts_reach_a_real_alertmanager() {
    let work = tempfile::tempdir().expect("tempdir");
    let am_config = work.path().join("am.yml");
    std::fs::write(
        &am_config,
        "route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n",
    )
    .expect("am config");
    let am_port = free_port();
    let _am = spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", am_config.display()),
            format!("--storage.path={}", work.path().join("am").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".into(),
        ],
    );
    wait_for("alertmanager", || get(am_port, "/api/v2/status"));

    let (policies, data) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    firing_policies(policies.path());
    let config = work.path().join("tocsin.toml");
    std::fs::write(
        &config,
        format!("[alertmanager]\nurls = [\"http://127.0.0.1:{am_port}\"]\nresend = \"1s\"\n"),
    )
    .expect("config");
    let port = free_port();
    let _tocsin = start_config(policies.path(), data.path(), port, &config);
    let alert = wait_for("the alert in alertmanager", || {
        let (_, alerts) = get(am_port, "/api/v2/alerts")?;
        alerts
            .as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == "cpu-any")
            .cloned()
    });
    assert_eq!(
        alert["labels"]["team"], "ops",
        "rule labels travel: {alert}"
    );
    assert_eq!(alert["labels"]["severity"], "warning", "{alert}");
    assert_eq!(alert["status"]["state"], "active", "{alert}");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("CPU at")),
        "{alert}"
    );
    assert!(
        alert["generatorURL"]
            .as_str()
            .is_some_and(|u| u.ends_with("/api/rules/cpu-any")),
        "{alert}"
    );
}

/// Samples in `(start_ms, end_ms]` of every series in victoria-metrics.
fn vm_count(port: u16, start_ms: i64, end_ms: i64) -> Option<u64> {
    // victoria-metrics streams the export chunked: a real HTTP client reads it.
    let text = ureq::get(format!(
        "http://127.0.0.1:{port}/api/v1/export?match[]=%7B__name__%21%3D%22%22%7D&start={}&end={}",
        start_ms / 1000,
        end_ms / 1000 + 1
    ))
    .call()
    .ok()?
    .body_mut()
    .read_to_string()
    .ok()?;
    let mut n = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        n += v["timestamps"]
            .as_array()?
            .iter()
            .filter_map(|t| t.as_i64())
            .filter(|t| *t > start_ms && *t <= end_ms)
            .count() as u64;
    }
    Some(n)
}

#[test]
fn remote_write_lands_every_sample_in_victoria_metrics() {
    let work = tempfile::tempdir().expect("tempdir");
    let vm_port = free_port();
    let _vm = spawn(
        "victoria-metrics",
        &[
            format!("-httpListenAddr=127.0.0.1:{vm_port}"),
            format!("-storageDataPath={}", work.path().join("vm").display()),
            "-retentionPeriod=1".into(),
        ],
    );
    wait_for("victoria-metrics", || {
        get_text_as(vm_port, "/health", None).filter(|(s, _)| *s == 200)
    });
    let (policies, data) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    firing_policies(policies.path());
    let config = work.path().join("tocsin.toml");
    std::fs::write(
        &config,
        format!(
            "[remote_write]\nurls = [\"http://127.0.0.1:{vm_port}/api/v1/write\"]\n\
             flush_interval = \"200ms\"\nbatch_samples = 50\n"
        ),
    )
    .expect("config");
    let port = free_port();
    let _tocsin = start_config(policies.path(), data.path(), port, &config);
    wait_for("three collector rounds", || {
        let (_, g) = get(port, "/api/guests/host-basics")?;
        (g["stats"]["calls"].as_u64()? >= 3).then_some(())
    });
    // A closed window: everything Tocsin stored in it must be in victoria-metrics.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let (start, end) = (now - 60_000, now - 1_000);
    let (_, counted) = get(
        port,
        &format!(
            "/api/v1/query?time={}&query=sum(count_over_time(%7B__name__%3D~%22.%2B%22%7D%5B59s%5D))",
            end as f64 / 1000.0
        ),
    )
    .expect("count in tocsin");
    let stored: u64 = counted["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{counted}"));
    assert!(stored > 50, "a few rounds of host metrics: {stored}");
    let landed = wait_for("every sample in victoria-metrics", || {
        vm_count(vm_port, start, end).filter(|n| *n >= stored)
    });
    assert_eq!(landed, stored, "no sample twice either");
    let (_, page) = get_text(port, "/metrics").expect("metrics");
    let sent = page
        .lines()
        .find(|l| l.starts_with("tocsin_remote_write_sent_samples_total{"))
        .unwrap_or_else(|| panic!("{page}"));
    let sent: f64 = sent
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number");
    assert!(sent >= landed as f64, "counted as sent: {sent}");
    assert!(
        page.contains("tocsin_remote_write_dropped_samples_total{url=\"http://127.0.0.1:"),
        "{page}"
    );
}

#[test]
fn one_tocsin_forwards_to_another_with_a_client_token() {
    let (upstream_data, edge_data, edge_policies, empty, work) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let upstream = free_port();
    let _upstream = start(empty.path(), upstream_data.path(), upstream);
    wait_for("the upstream", || get(upstream, "/healthz"));
    let (status, made) = send(
        upstream,
        "POST",
        "/api/tokens",
        r#"{"name": "edge-1", "role": "client", "client": "edge-1"}"#,
    )
    .expect("token");
    assert_eq!(status, 201, "{made}");
    firing_policies(edge_policies.path());
    let config = work.path().join("edge.toml");
    std::fs::write(
        &config,
        format!(
            "[remote_write]\nurls = [\"http://127.0.0.1:{upstream}/api/v1/write\"]\n\
             bearer_token = \"{}\"\nflush_interval = \"200ms\"\n",
            made["token"].as_str().expect("secret")
        ),
    )
    .expect("config");
    let edge = free_port();
    let _edge = start_config(edge_policies.path(), edge_data.path(), edge, &config);
    let result = wait_for("the edge's CPU upstream", || {
        let (_, v) = get(upstream, "/api/v1/query?query=cpu_usage_percent")?;
        v["data"]["result"]
            .as_array()
            .filter(|r| !r.is_empty())
            .cloned()
    });
    assert_eq!(result[0]["metric"]["client"], "edge-1", "{result:?}");
}
