//! End-to-end: start the real `tocsin run` binary with the default policies, and check it
//! serves /healthz, loads every default guest, collects real host metrics, and reports a
//! broken policy without losing the others.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

#[test]
fn default_policies_load_and_collect() {
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _tocsin = start(&repo().join("policies"), data.path(), port);

    let (status, health) = wait_for("/healthz", || get(port, "/healthz"));
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["policy_errors"], 0, "{health}");

    let (_, guests) = get(port, "/api/guests").expect("guests");
    let names: Vec<&str> = guests["guests"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "baseline-deviation",
            "cpu-high",
            "cpu-jump",
            "disk-filling",
            "error-log-burst",
            "fleet-health",
            "gpu-health",
            "gpu-summary",
            "health-low",
            "host-basics",
            "host-down",
            "memory-high",
            "messages",
            "port-down",
            "process-down",
            "process-watch",
            "server-alert",
            "service-checks"
        ]
    );

    let latest = wait_for("a collection round", || {
        let (_, latest) = get(port, "/api/samples/latest")?;
        latest.get("host-basics").cloned()
    });
    let samples = latest["samples"].as_array().expect("samples");
    let cpu = samples
        .iter()
        .find(|s| s["name"] == "cpu_usage_percent")
        .and_then(|s| s["value"].as_f64())
        .expect("cpu sample");
    assert!((0.0..=100.0).contains(&cpu));

    // The samples are stored: every collected series is in the store.
    let (_, health) = get(port, "/healthz").expect("healthz");
    assert!(
        health["series"].as_u64().expect("series") as usize >= samples.len() / 2,
        "{health}"
    );
    assert!(data.path().join("tocsin.redb").is_file());

    // The GPU summary counts this machine's NVIDIA GPUs (none without a driver).
    let gpus = wait_for("gpus_total", || common::latest(port, "gpus_total"));
    let expected = std::process::Command::new("nvidia-smi")
        .arg("-L")
        .output()
        .map_or(0, |o| String::from_utf8_lossy(&o.stdout).lines().count());
    assert_eq!(gpus, expected as f64);

    // The CPU rule evaluates on its interval over the stored CPU series.
    let rule = wait_for("an evaluation of cpu-high", || {
        let (_, rule) = get(port, "/api/rules/cpu-high")?;
        let eval = rule["last_evaluation"].clone();
        (eval["input_series"].as_u64()? >= 1).then_some(eval)
    });
    assert_eq!(rule["outcome"]["kind"], "conditions", "{rule}");
    assert_eq!(rule["input"][0]["name"], "cpu_usage_percent");
    let (status, alerts) = get(port, "/api/alerts?phase=firing").expect("alerts");
    assert_eq!(status, 200);
    assert!(alerts["alerts"].is_array(), "{alerts}");
    // Rules whose inputs may legitimately be absent (no GPU, no clients) stay quiet.
    let (_, no_data) = get(port, "/api/alerts?phase=no_data").expect("alerts");
    let quiet: Vec<&str> = no_data["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter_map(|a| a["rule"].as_str())
        .collect();
    assert!(
        !quiet.contains(&"gpu-health") && !quiet.contains(&"host-down"),
        "{no_data}"
    );
    let (status, _) = get(port, "/api/alerts?phase=burning").expect("bad phase");
    assert_eq!(status, 400);

    // The fleet health score is computed with its breakdown and kept as history.
    let health = wait_for("a fleet health score", || {
        let (_, h) = get(port, "/api/health")?;
        let fleet = h["scorers"].as_array()?.first()?.clone();
        // The first round may precede the collector's first samples: wait for CPU.
        let factors = fleet["current"]["factors"].as_array()?;
        factors.iter().any(|f| f["name"] == "cpu").then_some(fleet)
    });
    assert_eq!(health["scorer"], "fleet-health");
    let factors: Vec<&str> = health["current"]["factors"]
        .as_array()
        .expect("factors")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(
        factors.contains(&"cpu") && factors.contains(&"memory"),
        "{health}"
    );
    assert!(health["history"]["current"].is_number(), "{health}");
    let (status, long) = get(port, "/api/health?window=30d").expect("30 days");
    assert_eq!(status, 200, "{long}");

    // Each guest's counters are series (written every 15 s; the first round may come
    // before every guest is registered).
    wait_for("guest_calls_total of host-basics", || {
        let (_, calls) = get(
            port,
            "/api/metrics/latest?selector=guest_calls_total%7Bpolicy%3D%22host-basics%22%7D",
        )?;
        calls["values"][0]["value"].as_f64()
    });

    // The status page lists the guests, server-rendered.
    let (status, page) = get_text(port, "/").expect("status page");
    assert_eq!(status, 200);
    assert!(
        page.contains("<title>Tocsin</title>") && page.contains("host-basics"),
        "{page}"
    );

    // The compiled guests were cached for the next start.
    let cached = std::fs::read_dir(data.path().join("cache"))
        .expect("cache dir")
        .count();
    assert_eq!(cached, names.len());
}

#[test]
fn a_broken_policy_is_reported_and_the_rest_still_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    let release = repo().join("guests/target/wasm32-wasip2/release");
    let rule = release.join("cpu_high.wasm");
    std::fs::write(
        dir.path().join("good.toml"),
        format!(
            "kind = \"alert-rule\"\ncomponent = {:?}\n",
            rule.display().to_string()
        ),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("typo.toml"),
        "kind = \"alert-rule\"\ncomponnt = \"x.wasm\"\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("leaky.toml"),
        format!(
            "kind = \"alert-rule\"\ncomponent = {:?}\n",
            release.join("ungranted_mqtt.wasm").display().to_string()
        ),
    )
    .expect("write");
    std::fs::write(dir.path().join("junk.wasm"), b"garbage").expect("write");
    std::fs::write(
        dir.path().join("junk.toml"),
        "kind = \"scorer\"\ncomponent = \"junk.wasm\"\n",
    )
    .expect("write");

    let port = free_port();
    let _tocsin = start(dir.path(), data.path(), port);
    let (_, health) = wait_for("/healthz", || get(port, "/healthz"));
    assert_eq!(health["guests"], 1, "{health}");
    assert_eq!(health["policy_errors"], 3, "{health}");
    let (_, guests) = get(port, "/api/guests").expect("guests");
    let errors: Vec<&str> = guests["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        errors[0].contains("junk.toml") && errors[0].contains("not a valid wasm component"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("leaky.toml") && errors[1].contains("tocsin:monitor/mqtt"),
        "{errors:?}"
    );
    assert!(
        errors[2].contains("typo.toml") && errors[2].contains("componnt"),
        "{errors:?}"
    );
    assert_eq!(guests["guests"][0]["name"], "good");
}

#[test]
fn a_foreign_database_file_is_a_clear_startup_error() {
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::write(data.path().join("tocsin.redb"), vec![7u8; 4096]).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["run", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data.path())
        .arg("--policies")
        .arg(repo().join("policies"))
        .env_remove("TOCSIN_CONFIG")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open database") && err.contains("tocsin.redb"),
        "{err}"
    );
}

#[test]
fn config_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["config", "default"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(text.contains("listen = \"127.0.0.1:8080\""));

    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.toml");
    std::fs::write(&good, &text).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["config", "check"])
        .arg(&good)
        .env_remove("TOCSIN_HTTP__LISTEN")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[http]\nlisten = 8080\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http.listen") && err.contains("bad.toml"),
        "{err}"
    );
}

#[test]
fn a_rule_fires_and_its_group_is_notified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    let release = repo().join("guests/target/wasm32-wasip2/release");
    std::fs::write(
        dir.path().join("host-basics.toml"),
        format!(
            "kind = \"collector\"\ncomponent = {:?}\ninterval = \"1s\"\ngrants = [\"sensors\"]\n\
             [budgets]\ndeadline_ms = 2000\n",
            release.join("host_basics.wasm").display().to_string()
        ),
    )
    .expect("write");
    // Any CPU usage is "high": the rule fires on the first evaluation with data.
    std::fs::write(
        dir.path().join("cpu-any.toml"),
        format!(
            "kind = \"alert-rule\"\ncomponent = {:?}\ninterval = \"1s\"\n\
             [params]\nthreshold = \"-1\"\nclear = \"-2\"\ncritical = \"1000\"\n\
             [input]\nselect = [\"cpu_usage_percent\"]\nlookback = \"30s\"\n\
             [rule]\nlabels = {{ team = \"ops\" }}\n",
            release.join("cpu_high.wasm").display().to_string()
        ),
    )
    .expect("write");
    let port = free_port();
    let _tocsin = start_with(
        dir.path(),
        data.path(),
        port,
        &[("TOCSIN_ROUTING__GROUP_WAIT", "1s")],
    );
    let firing = wait_for("a firing alert", || {
        let (_, alerts) = get(port, "/api/alerts?phase=firing")?;
        alerts["alerts"]
            .as_array()
            .filter(|a| !a.is_empty())
            .cloned()
    });
    assert_eq!(firing[0]["rule"], "cpu-any");
    let sent = wait_for("a delivered notification", || {
        let (_, n) = get(port, "/api/notifications")?;
        n["notifications"]
            .as_array()?
            .iter()
            .find(|m| m["delivery"] == "delivered")
            .cloned()
    });
    assert_eq!(sent["channel"], "log");
    assert_eq!(sent["payload"]["status"], "firing");
    let alert = &sent["payload"]["firing"][0];
    assert_eq!(alert["rule"], "cpu-any");
    assert_eq!(
        alert["labels"]["team"], "ops",
        "rule labels reach the notification"
    );
    assert!(
        alert["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("CPU at")),
        "{alert}"
    );
}

/// `tocsin rule test MANIFEST`: whether it passed, and what it printed (stdout, then
/// stderr).
fn rule_test(manifest: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["rule", "test"])
        .arg(manifest)
        .output()
        .expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn rule_test_runs_the_fixtures_of_a_manifest() {
    let (passed, stdout) = rule_test(&repo().join("policies/cpu-high.toml"));
    assert!(passed, "{stdout}");
    assert_eq!(stdout.matches("ok   cpu-high").count(), 4, "{stdout}");

    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(repo().join("policies/cpu-high.toml"))
        .expect("read")
        .replace(
            "component = \"../guests",
            &format!("component = \"{}/guests", repo().display()),
        )
        .replace(
            "expect = []",
            "expect = [{ labels = { host = \"web-1\" } }]",
        );
    let path = dir.path().join("cpu-high.toml");
    std::fs::write(&path, text).expect("write");
    let (passed, stdout) = rule_test(&path);
    assert!(!passed, "{stdout}");
    assert!(
        stdout.contains("FAIL cpu-high: quiet below 90 % when not active: expected but not fired"),
        "{stdout}"
    );

    // The README's first rule, its manifest as printed there.
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("readme");
    let start = readme
        .find("   kind = \"alert-rule\"")
        .expect("manifest in README");
    let end = start + readme[start..].find("   ```").expect("end of manifest");
    let manifest: String = readme[start..end]
        .lines()
        .map(|l| l.strip_prefix("   ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
        .replace(
            "../guests/target/wasm32-wasip2/release/my_rule.wasm",
            &guest("load_high"),
        );
    let path = dir.path().join("my-rule.toml");
    std::fs::write(&path, manifest).expect("write");
    let (passed, stdout) = rule_test(&path);
    assert!(passed, "{stdout}");
    assert!(stdout.contains("ok   my-rule: fires above 4"), "{stdout}");
}
