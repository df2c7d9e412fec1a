//! Hot reload against the real binary: 100 edits of a rule under a running instance swap it
//! with no skipped evaluation; broken versions are refused while the old one keeps running;
//! new grants need confirmation; rollback; quarantine and its lifting by a fixed version.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn write(dir: &Path, name: &str, text: &str) {
    // Write beside and rename, as editors and deploy tools do: the watcher never sees half
    // a file.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, dir.join(name)).expect("rename");
}

/// A fixture this rule (threshold -1: everything fires) fails.
const FIXTURE: &str = "[[fixture]]\nname = \"quiet at 50 %\"\n\
    series = ['cpu_usage_percent{host=\"a\"} 50']\nexpect = []";

fn rule(component: &str, critical: u32, extra: &str) -> String {
    format!(
        "kind = \"alert-rule\"\ncomponent = {component:?}\ninterval = \"1s\"\n{extra}\n\
         [params]\nthreshold = \"-1\"\nclear = \"-2\"\ncritical = \"{critical}\"\n\
         [input]\nselect = [\"cpu_usage_percent\"]\nlookback = \"30s\"\n"
    )
}

fn policy(port: u16, name: &str) -> Option<Value> {
    let (_, p) = get(port, "/api/policies")?;
    p["policies"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
}

fn version(port: u16, name: &str) -> Option<u64> {
    policy(port, name)?["current"]["version"].as_u64()
}

fn errors(port: u16) -> String {
    get(port, "/api/policies")
        .map(|(_, p)| p["errors"].to_string())
        .unwrap_or_default()
}

#[test]
fn edits_swap_live_broken_versions_are_refused_and_rollback_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "host-basics.toml",
        &format!(
            "kind = \"collector\"\ncomponent = {:?}\ninterval = \"1s\"\ngrants = [\"sensors\"]\n\
             [budgets]\ndeadline_ms = 2000\n",
            guest("host_basics")
        ),
    );
    write(
        dir.path(),
        "cpu-any.toml",
        &rule(&guest("cpu_high"), 1000, ""),
    );
    let port = free_port();
    let _tocsin = start_with(
        dir.path(),
        data.path(),
        port,
        &[("TOCSIN_POLICIES__RESCAN", "1s")],
    );
    wait_for("the first evaluation", || {
        let (_, r) = get(port, "/api/rules/cpu-any")?;
        r["last_evaluation"]["at_ms"].as_i64()
    });

    // 100 edits while it runs; watch the evaluations the whole time.
    let mut seen: Vec<i64> = Vec::new();
    let observe = |seen: &mut Vec<i64>| {
        if let Some((_, r)) = get(port, "/api/rules/cpu-any") {
            let e = &r["last_evaluation"];
            assert_eq!(
                e["outcome"]["kind"], "conditions",
                "an evaluation failed: {r}"
            );
            if let Some(at) = e["at_ms"].as_i64()
                && seen.last() != Some(&at)
            {
                seen.push(at);
            }
        }
    };
    let started = Instant::now();
    for i in 0..100u32 {
        write(
            dir.path(),
            "cpu-any.toml",
            &rule(&guest("cpu_high"), 1001 + i, ""),
        );
        let want = u64::from(i) + 2;
        let deadline = Instant::now() + Duration::from_secs(20);
        while version(port, "cpu-any") != Some(want) {
            assert!(
                Instant::now() < deadline,
                "version {want} not serving: {}",
                errors(port)
            );
            observe(&mut seen);
            std::thread::sleep(Duration::from_millis(20));
        }
        observe(&mut seen);
    }
    let swaps = started.elapsed();
    // Every interval (1 s) had its evaluation: no gap longer than one interval plus slack.
    let worst = seen.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(
        worst <= 1_500,
        "an evaluation was skipped during {swaps:?} of swaps: gap {worst} ms in {seen:?}"
    );
    assert!(
        seen.len() as u128 >= swaps.as_millis() / 1000 - 1,
        "{} evaluations in {swaps:?}",
        seen.len()
    );

    // Broken versions: a missing component, a component that imports an ungranted
    // capability, a manifest typo. Each is refused; version 101 keeps running.
    let hash = format!("sha256 = \"{}\"", "0".repeat(64));
    for (what, text, says) in [
        (
            "missing component",
            rule("/nonexistent/rule.wasm", 1, ""),
            "nonexistent",
        ),
        (
            "ungranted import",
            rule(&guest("ungranted_mqtt"), 1, ""),
            "mqtt",
        ),
        (
            "manifest typo",
            rule(&guest("cpu_high"), 1, "intervall = \"2s\""),
            "intervall",
        ),
        (
            "new grants",
            rule(&guest("cpu_high"), 1, "grants = [\"metrics\"]"),
            "allow_new_grants",
        ),
        (
            "wrong hash",
            rule(&guest("cpu_high"), 1, &hash),
            "expects 0000",
        ),
        (
            "failing fixture",
            rule(&guest("cpu_high"), 1, FIXTURE),
            "fixture `quiet at 50",
        ),
    ] {
        write(dir.path(), "cpu-any.toml", &text);
        wait_for(what, || errors(port).contains(says).then_some(()));
        let e = errors(port);
        assert!(
            e.contains("cpu-any") && e.contains("previous version keeps running"),
            "{what}: {e}"
        );
        assert_eq!(version(port, "cpu-any"), Some(101), "{what}");
        let before =
            get(port, "/api/rules/cpu-any").expect("rule").1["last_evaluation"]["at_ms"].as_i64();
        std::thread::sleep(Duration::from_millis(1_200));
        let after =
            get(port, "/api/rules/cpu-any").expect("rule").1["last_evaluation"]["at_ms"].as_i64();
        assert!(
            after > before,
            "{what}: the running version stopped evaluating"
        );
    }

    // Rollback to version 100, loaded from the store.
    let (status, back) =
        send(port, "POST", "/api/policies/cpu-any/rollback", "").expect("rollback");
    assert_eq!(status, 200, "{back}");
    assert_eq!(back["running"]["version"], 100);
    assert_eq!(version(port, "cpu-any"), Some(100));
    // It stays rolled back through rescans (every second here): the file did not change.
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(version(port, "cpu-any"), Some(100), "{}", errors(port));
    let versions = policy(port, "cpu-any").expect("policy")["versions"]
        .as_array()
        .map(Vec::len);
    assert_eq!(versions, Some(101), "a rollback records no new version");
    let (status, body) = send(port, "POST", "/api/policies/nope/rollback", "").expect("rollback");
    assert_eq!(status, 400, "{body}");
}

#[test]
fn a_faulting_rule_is_quarantined_and_a_fixed_version_lifts_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    let panicking = format!(
        "kind = \"alert-rule\"\ncomponent = {:?}\ninterval = \"200ms\"\n[failure]\nquarantine_after = 3\n",
        guest("panic")
    );
    write(dir.path(), "shaky.toml", &panicking);
    let port = free_port();
    let _tocsin = start_with(dir.path(), data.path(), port, &[]);
    let p = wait_for("quarantine", || {
        policy(port, "shaky").filter(|p| p["quarantined"] == true)
    });
    assert_eq!(p["current"]["version"], 1);
    let (_, rule) = get(port, "/api/rules/shaky").expect("rule");
    assert_eq!(
        rule["stats"]["trap"], 3,
        "stopped after three faults: {rule}"
    );
    std::thread::sleep(Duration::from_millis(600));
    let (_, rule) = get(port, "/api/rules/shaky").expect("rule");
    assert_eq!(rule["stats"]["trap"], 3, "not called while quarantined");

    write(
        dir.path(),
        "shaky.toml",
        &panicking.replace(&guest("panic"), &guest("cpu_high")),
    );
    wait_for("the fixed version", || {
        policy(port, "shaky").filter(|p| p["quarantined"] == false && p["current"]["version"] == 2)
    });
}

#[test]
fn rule_deploy_sends_a_version_over_the_api_with_the_permission_diff() {
    let (policies, data, work) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let port = free_port();
    let running = start(policies.path(), data.path(), port);
    wait_for("/healthz", || get(port, "/healthz"));
    let token = data.path().join("admin.token");
    let manifest = work.path().join("cpu-any.toml");
    let write = |extra: &str| {
        std::fs::write(
            &manifest,
            format!(
                "kind = \"alert-rule\"\ncomponent = \"{}\"\ninterval = \"1s\"\n{extra}\
                 [params]\nthreshold = \"90\"\nclear = \"80\"\ncritical = \"98\"\n\
                 [input]\nselect = [\"cpu_usage_percent\"]\nlookback = \"30s\"\n",
                guest("cpu_high")
            ),
        )
        .expect("manifest")
    };
    let deploy = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(["rule", "deploy"])
            .arg(&manifest)
            .args(extra)
            .args(["--url", &format!("http://127.0.0.1:{port}")])
            .arg("--token-file")
            .arg(&token)
            .output()
            .expect("tocsin rule deploy");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    write("");
    let (ok, said) = deploy(&[]);
    assert!(ok, "{said}");
    assert!(said.contains("deployed cpu-any version 1"), "{said}");
    assert!(policies.path().join("cpu-any.wasm").is_file());
    let saved = std::fs::read_to_string(policies.path().join("cpu-any.toml")).expect("saved");
    assert!(saved.contains("component = \"cpu-any.wasm\""), "{saved}");
    assert_eq!(version(port, "cpu-any"), Some(1));
    assert_eq!(
        policy(port, "cpu-any").expect("policy")["current"]["actor"],
        "token:admin"
    );

    // More grants than the running version: refused until confirmed.
    write("grants = [\"metrics\"]\n");
    let (ok, said) = deploy(&[]);
    assert!(!ok, "{said}");
    assert!(
        said.contains("new grants: metrics") && said.contains("--allow-new-grants"),
        "{said}"
    );
    assert_eq!(version(port, "cpu-any"), Some(1));
    let (ok, said) = deploy(&["--allow-new-grants"]);
    assert!(ok, "{said}");
    assert_eq!(version(port, "cpu-any"), Some(2));

    // A version failing its fixture is refused; the running one and the saved files stay.
    write(
        "grants = [\"metrics\"]\n[[fixture]]\nname = \"never true\"\n\
         series = ['cpu_usage_percent{host=\"a\"} 10 10 10']\n\
         expect = [{ labels = { host = \"a\" } }]\n",
    );
    let (ok, said) = deploy(&[]);
    assert!(!ok, "{said}");
    assert!(said.contains("never true"), "{said}");
    assert_eq!(version(port, "cpu-any"), Some(2));
    let kept = std::fs::read_to_string(policies.path().join("cpu-any.toml")).expect("kept");
    assert!(!kept.contains("never true"), "{kept}");

    // list, status and rollback over the API.
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(args)
            .args(["--url", &format!("http://127.0.0.1:{port}")])
            .arg("--token-file")
            .arg(&token)
            .output()
            .expect("tocsin rule");
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let list = cli(&["rule", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("cpu-any") && l.contains(" 2 ") && l.contains("metrics")),
        "{list}"
    );
    let status = cli(&["rule", "status", "cpu-any"]);
    assert!(
        status.contains("* version 2") && status.contains("  version 1"),
        "{status}"
    );
    assert!(status.contains("calls "), "{status}");
    let back = cli(&["rule", "rollback", "cpu-any"]);
    assert!(back.contains("cpu-any runs version 1 again"), "{back}");
    assert_eq!(version(port, "cpu-any"), Some(1));

    // After a restart the files on disk (version 2) ask for grants the recorded current
    // version (1, rolled back to) lacks: refused, and version 1 runs from the store
    // instead of nothing.
    drop(running);
    let _again = start(policies.path(), data.path(), port);
    let p = wait_for("cpu-any after a restart", || policy(port, "cpu-any"));
    assert_eq!(p["current"]["version"], 1, "{p}");
    let (_, guests) = get(port, "/api/guests/cpu-any").expect("guest");
    assert_eq!(guests["grants"], serde_json::json!([]), "{guests}");
    let (_, audit) = get(port, "/api/audit").expect("audit");
    assert!(audit.to_string().contains("policy.restore"), "{audit}");
}

/// A throwaway checkout: `wit/`, the guest SDK and the guests' target directory shared
/// with the real one (so nothing is compiled twice), a guests workspace with only the SDK.
fn scratch_checkout(root: &Path) {
    let repo = repo();
    let link = |from: &Path, to: &Path| std::os::unix::fs::symlink(from, to).expect("symlink");
    std::fs::create_dir_all(root.join("guests")).expect("guests");
    link(&repo.join("wit"), &root.join("wit"));
    for dir in ["sdk", "sdk-macros", "target"] {
        link(
            &repo.join("guests").join(dir),
            &root.join("guests").join(dir),
        );
    }
    let workspace = std::fs::read_to_string(repo.join("guests/Cargo.toml")).expect("workspace");
    let start = workspace.find("members = [").expect("members");
    let end = start + workspace[start..].find("\n]").expect("end of members") + 2;
    let only_sdk = format!(
        "{}members = [\n    \"sdk\",\n    \"sdk-macros\",\n]{}",
        &workspace[..start],
        &workspace[end..]
    );
    std::fs::write(root.join("guests/Cargo.toml"), only_sdk).expect("write");
    std::fs::copy(
        repo.join("guests/Cargo.lock"),
        root.join("guests/Cargo.lock"),
    )
    .expect("lock");
}

/// `rule new NAME --lang LANG` → `rule build` → `rule test` → `rule deploy` to a running
/// instance, in a scratch checkout; `built` is the component file `rule build` names.
fn new_build_test_deploy(lang: &str, name: &str, built: &str) {
    let (checkout, data, empty) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    scratch_checkout(checkout.path());
    let root = checkout.path().display().to_string();
    let tocsin = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(args)
            .output()
            .expect("tocsin");
        let said = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{args:?}: {said}\n(Python and JS rules need `cargo xtask tools` on PATH; \
             `cargo xtask test` does that)"
        );
        said
    };
    tocsin(&["rule", "new", name, "--lang", lang, "--root", &root]);
    let said = tocsin(&["rule", "build", name, "--root", &root]);
    assert!(said.contains(built) && said.contains("sha256"), "{said}");
    let manifest = checkout.path().join(format!("policies/{name}.toml"));
    let said = tocsin(&["rule", "test", &manifest.display().to_string()]);
    assert!(
        said.contains(&format!("ok   {name}: fires above 4"))
            && said.contains(&format!("ok   {name}: quiet below 4")),
        "{said}"
    );
    let port = free_port();
    let _running = start(empty.path(), data.path(), port);
    wait_for("/healthz", || get(port, "/healthz"));
    let token = data.path().join("admin.token").display().to_string();
    let said = tocsin(&[
        "rule",
        "deploy",
        &manifest.display().to_string(),
        "--url",
        &format!("http://127.0.0.1:{port}"),
        "--token-file",
        &token,
    ]);
    assert!(
        said.contains(&format!("deployed {name} version 1")),
        "{said}"
    );
    assert_eq!(version(port, name), Some(1));
    // The deployed guest runs in the live evaluator: a high load makes it signal.
    let (status, _) = send(
        port,
        "POST",
        "/api/metrics",
        r#"{"samples": [{"name": "load1", "labels": {"host": "e2e"}, "value": 9}]}"#,
    )
    .expect("ingest");
    assert_eq!(status, 200);
    let conditions = wait_for("the deployed rule's signal", || {
        let (_, rule) = get(port, &format!("/api/rules/{name}"))?;
        let outcome = &rule["last_evaluation"]["outcome"];
        (outcome["kind"] == "conditions").then(|| outcome["conditions"].clone())
    });
    assert_eq!(conditions[0]["value"], 9.0, "{conditions}");
    assert_eq!(conditions[0]["labels"]["host"], "e2e", "{conditions}");
}

#[test]
fn rule_new_build_test_and_deploy_a_rust_rule() {
    new_build_test_deploy("rust", "e2e-load", "e2e_load.wasm");
}

#[test]
fn rule_new_build_test_and_deploy_a_python_rule() {
    new_build_test_deploy("python", "py-load", "rules/py-load/py-load.wasm");
}

#[test]
fn rule_new_build_test_and_deploy_a_js_rule() {
    new_build_test_deploy("js", "js-load", "rules/js-load/js-load.wasm");
}

#[test]
fn rule_backtest_replays_stored_history() {
    let (policies, data) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    std::fs::write(
        policies.path().join("load-high.toml"),
        format!(
            "kind = \"alert-rule\"\ncomponent = \"{}\"\ninterval = \"1h\"\n\
             [params]\nthreshold = \"4\"\n[input]\nselect = [\"load1\"]\nlookback = \"2m\"\n\
             [rule]\nfor = \"1m\"\nno_data = \"ok\"\n",
            guest("load_high")
        ),
    )
    .expect("manifest");
    let port = free_port();
    let _tocsin = start(policies.path(), data.path(), port);
    wait_for("load-high", || version(port, "load-high"));
    // load1 every 15 s: 1 from 40 to 30 minutes ago, 6 until 20 minutes ago, then 1 again.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let minute = 60_000;
    let samples: Vec<String> = (0..=120)
        .map(|i| {
            let ts = now - 40 * minute + i * 15_000;
            let v = if ts >= now - 30 * minute && ts < now - 20 * minute {
                6
            } else {
                1
            };
            format!(r#"{{"name": "load1", "ts_ms": {ts}, "value": {v}}}"#)
        })
        .collect();
    let (status, stored) = send(
        port,
        "POST",
        "/api/metrics",
        &format!(r#"{{"samples": [{}]}}"#, samples.join(",")),
    )
    .expect("ingest");
    assert_eq!(status, 200, "{stored}");
    let (status, answer) = send(
        port,
        "POST",
        "/api/rules/load-high/backtest",
        &format!(
            r#"{{"from_ms": {}, "to_ms": {now}, "step_ms": 15000}}"#,
            now - 45 * minute
        ),
    )
    .expect("backtest");
    assert_eq!(status, 200, "{answer}");
    let events: Vec<(String, i64)> = answer["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or("").to_string(),
                (now - e["at_ms"].as_i64().unwrap_or(0)) / 1000,
            )
        })
        .collect();
    assert_eq!(events.len(), 2, "{answer}");
    assert_eq!(events[0].0, "firing");
    // High from 30 minutes ago; the 2-minute mean passes 4 within a minute, plus `for`.
    assert!((27 * 60..30 * 60).contains(&events[0].1), "{events:?}");
    assert_eq!(events[1].0, "resolved");
    assert!((17 * 60..20 * 60).contains(&events[1].1), "{events:?}");
    // Nothing was written: the live rule has no alerts from the replay.
    let (_, alerts) = get(port, "/api/alerts?rule=load-high").expect("alerts");
    assert_eq!(alerts["alerts"], serde_json::json!([]), "{alerts}");

    // The command line shows the same.
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["rule", "backtest", "load-high", "--since", "45m"])
        .args(["--url", &format!("http://127.0.0.1:{port}")])
        .arg("--token-file")
        .arg(data.path().join("admin.token"))
        .output()
        .expect("tocsin rule backtest");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        said.contains("firing") && said.contains("resolved"),
        "{said}"
    );
    assert!(said.contains("2 change(s) over the last 45m"), "{said}");
}
