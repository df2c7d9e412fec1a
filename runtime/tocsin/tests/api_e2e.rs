//! End-to-end: the real binary's API behind tokens — the first admin token written at the
//! first start, 401/403/redirects for missing and weak tokens, tokens made over the API
//! and with the CLI on a stopped store — and a real Prometheus scraping `/metrics` with a
//! token, its exposition accepted by `promtool check metrics`.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

fn tocsin(args: &[&str], data: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("run tocsin")
}

#[test]
fn the_real_binary_guards_its_api_with_tokens() {
    let policies = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let running = start(policies.path(), data.path(), port);
    wait_for("/healthz", || get(port, "/healthz"));

    let admin = admin_token(port).expect("admin.token written at the first start");
    assert!(admin.starts_with("tsn_"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(data.path().join("admin.token")).expect("meta");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    let (status, _) = get_text_as(port, "/api/guests", None).expect("answer");
    assert_eq!(status, 401);
    let (status, _) = get_text_as(port, "/api/guests", Some("tsn_guess")).expect("answer");
    assert_eq!(status, 401);
    let (status, _) = get_text_as(port, "/", None).expect("answer");
    assert_eq!(
        status, 303,
        "a browser without a session goes to the login form"
    );
    let (status, _) = get_text_as(port, "/healthz", None).expect("answer");
    assert_eq!(status, 200);

    let (status, made) = send(
        port,
        "POST",
        "/api/tokens",
        r#"{"name": "ops", "role": "operator"}"#,
    )
    .expect("answer");
    assert_eq!(status, 201, "{made}");
    let ops = made["token"].as_str().expect("secret").to_string();
    let (status, _) = get_text_as(port, "/api/guests", Some(&ops)).expect("answer");
    assert_eq!(status, 200);
    let (status, reply) = send_as(
        port,
        "POST",
        "/api/policies/host-basics/rollback",
        "",
        Some(&ops),
    )
    .expect("answer");
    assert_eq!(status, 403, "{reply}");

    // The store belongs to the running process: the CLI says to use the API.
    let out = tocsin(&["token", "list"], data.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("POST /api/tokens"), "{err}");
    drop(running);

    // Stopped: the CLI manages the same tokens, and a restart honours its changes.
    let out = tocsin(&["token", "revoke", "ops"], data.path());
    assert!(out.status.success(), "{out:?}");
    let out = tocsin(
        &["token", "create", "ci", "--role", "operator"],
        data.path(),
    );
    assert!(out.status.success(), "{out:?}");
    let ci = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = tocsin(&["token", "list"], data.path());
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        list.contains("admin\tadmin") && list.contains("ci\toperator"),
        "{list}"
    );
    assert!(!list.contains("ops"), "{list}");
    assert!(!list.contains(&ci), "secrets are never listed");

    let _running = start(policies.path(), data.path(), port);
    wait_for("/healthz", || get(port, "/healthz"));
    assert_eq!(admin_token(port).as_deref(), Some(admin.as_str()), "kept");
    let (status, _) = get_text_as(port, "/api/guests", Some(&ci)).expect("answer");
    assert_eq!(status, 200);
    let (status, _) = get_text_as(port, "/api/guests", Some(&ops)).expect("answer");
    assert_eq!(status, 401, "revoked while stopped");
    let (_, audit) = get(port, "/api/audit").expect("audit");
    let actions: Vec<String> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| format!("{} {} {}", e["action"], e["target"], e["actor"]).replace('"', ""))
        .collect();
    assert_eq!(
        actions,
        [
            "token.create ci cli",
            "token.revoke ops cli",
            "token.create ops token:admin",
            "token.create admin system",
        ]
    );
}

#[test]
fn prometheus_scrapes_metrics_with_a_token() {
    let policies = tempfile::tempdir().expect("tempdir");
    write_collector(policies.path());
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _tocsin = start(policies.path(), data.path(), port);
    wait_for("the collector", || {
        let (_, g) = get(port, "/api/guests/host-basics")?;
        (g["stats"]["calls"].as_u64()? > 0).then_some(())
    });

    // promtool accepts the exposition (it also lints names, units and help texts).
    let (status, page) = get_text(port, "/metrics").expect("metrics");
    assert_eq!(status, 200);
    assert!(
        page.contains("tocsin_guests_loaded{kind=\"collector\"} 1"),
        "{page}"
    );
    assert!(
        page.contains(
            "tocsin_guest_call_duration_seconds_bucket{policy=\"host-basics\",kind=\"collector\",le=\"+Inf\"} "
        ),
        "{page}"
    );
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(page.as_bytes())
        .expect("write");
    let out = check.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Prometheus scrapes with an operator token of its own.
    let (status, made) = send(
        port,
        "POST",
        "/api/tokens",
        r#"{"name": "prometheus", "role": "operator"}"#,
    )
    .expect("token");
    assert_eq!(status, 201);
    let work = tempfile::tempdir().expect("tempdir");
    let credentials = work.path().join("token");
    std::fs::write(&credentials, made["token"].as_str().expect("secret")).expect("write");
    let config = work.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: tocsin\n    \
             authorization:\n      credentials_file: {}\n    static_configs:\n      \
             - targets: ['127.0.0.1:{port}']\n",
            credentials.display()
        ),
    )
    .expect("config");
    let prom_port = free_port();
    let _prometheus = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                work.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian package prometheus)"),
    );
    let query = |q: &str| -> Option<String> {
        let (_, answer) = get(prom_port, &format!("/api/v1/query?query={q}"))?;
        answer["data"]["result"][0]["value"][1]
            .as_str()
            .map(str::to_string)
    };
    let up = wait_for("prometheus to scrape tocsin", || {
        query("up%7Bjob%3D%22tocsin%22%7D")
    });
    assert_eq!(up, "1");
    let loaded = wait_for("tocsin_guests_loaded in prometheus", || {
        query("tocsin_guests_loaded%7Bkind%3D%22collector%22%7D")
    });
    assert_eq!(loaded, "1");
    let calls = wait_for("guest calls in prometheus", || {
        query("tocsin_guest_calls_total%7Bpolicy%3D%22host-basics%22%7D")
    });
    assert!(calls.parse::<f64>().is_ok_and(|c| c >= 1.0), "{calls}");
}

#[test]
fn https_serves_the_api_and_refuses_plain_http() {
    let (policies, data, certs) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let (cert, key) = self_signed(certs.path());
    let config = certs.path().join("tocsin.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    )
    .expect("config");
    let port = free_port();
    let _tocsin = start_config(policies.path(), data.path(), port, &config);
    let pem = std::fs::read(&cert).expect("cert");
    let root = ureq::tls::Certificate::from_pem(&pem).expect("pem");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
                    root,
                ])))
                .build(),
        )
        .build()
        .into();
    let get = |path: &str, token: Option<&str>| -> Option<(u16, String)> {
        let mut request = agent.get(format!("https://127.0.0.1:{port}{path}"));
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        let mut response = match request.call() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("https: {e}");
                return None;
            }
        };
        let status = response.status().as_u16();
        Some((status, response.body_mut().read_to_string().ok()?))
    };
    let (status, body) = wait_for("https /healthz", || get("/healthz", None));
    assert_eq!(status, 200, "{body}");
    let admin = admin_token(port).expect("admin token");
    let (status, _) = get("/api/guests", Some(&admin)).expect("guests");
    assert_eq!(status, 200);
    let (status, _) = get("/api/guests", None).expect("guests");
    assert_eq!(status, 401);
    // Plain HTTP on the TLS port gets no HTTP answer.
    assert!(get_text(port, "/healthz").is_none_or(|(s, _)| s != 200));
}

/// Parse a Nagios plugin line by the plugin guidelines: the status word, the text, and
/// each performance datum `'label'=value[UOM];warn;crit;min;max`.
fn nagios(line: &str) -> (String, Vec<(String, f64, String)>) {
    let (text, perf) = line.split_once(" | ").unwrap_or((line, ""));
    let status = text
        .strip_prefix("TOCSIN ")
        .and_then(|t| t.split(" - ").next())
        .filter(|s| ["OK", "WARNING", "CRITICAL", "UNKNOWN"].contains(s))
        .unwrap_or_else(|| panic!("status word in `{line}`"))
        .to_string();
    let mut data = Vec::new();
    let mut rest = perf.trim();
    while !rest.is_empty() {
        let quoted = rest.strip_prefix('\'').expect("quoted label");
        let mut label = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '\'')) if quoted[i + 1..].starts_with('\'') => {
                    label.push('\'');
                    chars.next();
                }
                Some((i, '\'')) => break i,
                Some((_, c)) => label.push(c),
                None => panic!("unterminated label in `{line}`"),
            }
        };
        let after = quoted[end + 1..].strip_prefix('=').expect("=");
        let item_end = after.find(' ').unwrap_or(after.len());
        let fields: Vec<&str> = after[..item_end].split(';').collect();
        assert_eq!(fields.len(), 5, "value;warn;crit;min;max in `{line}`");
        let number_end = fields[0]
            .find(|c: char| !(c.is_ascii_digit() || ".-eE+".contains(c)))
            .unwrap_or(fields[0].len());
        let value: f64 = fields[0][..number_end].parse().expect("value");
        data.push((label, value, fields[0][number_end..].to_string()));
        rest = after[item_end..].trim_start();
    }
    (status, data)
}

#[test]
fn nagios_checks_read_a_running_instance() {
    let policies = tempfile::tempdir().expect("tempdir");
    write_collector(policies.path());
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _tocsin = start(policies.path(), data.path(), port);
    wait_for("a stored cpu sample", || {
        let (_, v) = get(port, "/api/v1/query?query=cpu_usage_percent")?;
        v["data"]["result"]
            .as_array()
            .filter(|r| !r.is_empty())
            .map(|_| ())
    });
    let url = format!("http://127.0.0.1:{port}");
    let token = data.path().join("admin.token").display().to_string();
    let check = |args: &[&str], with_token: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tocsin"));
        cmd.arg("check").args(args).args(["--url", &url]);
        if with_token {
            cmd.args(["--token-file", &token]);
        }
        let out = cmd
            .env_remove("TOCSIN_TOKEN")
            .output()
            .expect("tocsin check");
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.code(), line)
    };
    let (code, line) = check(
        &[
            "query",
            "cpu_usage_percent",
            "-w",
            "101",
            "-c",
            "102",
            "--uom",
            "%",
            "--min",
            "0",
            "--max",
            "100",
        ],
        true,
    );
    assert_eq!(code, Some(0), "{line}");
    let (status, perf) = nagios(&line);
    assert_eq!(status, "OK");
    assert_eq!(perf.len(), 1, "{line}");
    assert_eq!(
        (perf[0].0.as_str(), perf[0].2.as_str()),
        ("cpu_usage_percent", "%")
    );
    assert!((0.0..=100.0).contains(&perf[0].1), "{line}");

    let (code, line) = check(&["query", "cpu_usage_percent", "-c", "@0:100"], true);
    assert_eq!(
        (code, nagios(&line).0.as_str()),
        (Some(2), "CRITICAL"),
        "{line}"
    );
    let (code, line) = check(
        &["query", "max(cpu_core_usage_percent)", "-w", "~:-1"],
        true,
    );
    assert_eq!(
        (code, nagios(&line).0.as_str()),
        (Some(1), "WARNING"),
        "{line}"
    );

    let (code, line) = wait_for("alerts_firing", || {
        let (code, line) = check(&["alerts"], true);
        (code == Some(0)).then_some((code, line))
    });
    let (_, perf) = nagios(&line);
    assert!(
        perf.iter().any(|p| p.0 == "critical" && p.1 == 0.0),
        "{line}"
    );
    assert_eq!(code, Some(0));

    for (args, with_token, says) in [
        (&["health"][..], true, "no data"),
        (&["query", "cpu_usage_percent"][..], false, "401"),
        (&["query", "up +"][..], true, "400"),
        (
            &["query", "up", "-w", "20:10"][..],
            true,
            "start is above end",
        ),
    ] {
        let (code, line) = check(args, with_token);
        assert_eq!(code, Some(3), "{args:?}: {line}");
        assert_eq!(nagios(&line).0, "UNKNOWN");
        assert!(line.contains(says), "{args:?}: {line}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args([
            "check",
            "alerts",
            "--url",
            &format!("http://127.0.0.1:{}", free_port()),
        ])
        .output()
        .expect("tocsin check");
    assert_eq!(out.status.code(), Some(3), "nobody listening is UNKNOWN");
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free udp port")
}

#[test]
fn snmp_tools_read_the_health_score_and_walk_the_tree() {
    let policies = tempfile::tempdir().expect("tempdir");
    write_collector(policies.path());
    let scorer = std::fs::read_to_string(repo().join("policies/fleet-health.toml"))
        .expect("fleet-health.toml")
        .replace(
            "../guests/target/wasm32-wasip2/release/fleet_health.wasm",
            &guest("fleet_health"),
        )
        .replace("interval = \"30s\"", "interval = \"1s\"");
    std::fs::write(policies.path().join("fleet-health.toml"), scorer).expect("scorer");
    let (data, work) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let snmp_port = free_udp_port();
    let config = work.path().join("tocsin.toml");
    std::fs::write(
        &config,
        format!(
            "[snmp]\nenabled = true\nlisten = \"127.0.0.1:{snmp_port}\"\ncommunity = \"s3cret\"\n"
        ),
    )
    .expect("config");
    let port = free_port();
    let _tocsin = start_config(policies.path(), data.path(), port, &config);
    let target = format!("127.0.0.1:{snmp_port}");
    let snmp = |tool: &str, community: &str, oid: &str| {
        let out = Command::new(tool)
            .args([
                "-v2c", "-c", community, "-On", "-t", "1", "-r", "0", &target, oid,
            ])
            .output()
            .unwrap_or_else(|e| panic!("{tool} (Debian package snmp): {e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let health_oid = "1.3.6.1.4.1.32473.1.3.0";
    let line = wait_for("a health score over SNMP", || {
        let (ok, out) = snmp("snmpget", "s3cret", health_oid);
        (ok && out.contains("INTEGER: ") && !out.contains("INTEGER: -1")).then_some(out)
    });
    let score: i64 = line
        .trim()
        .rsplit("INTEGER: ")
        .next()
        .and_then(|v| v.parse().ok())
        .expect("an integer");
    let (_, api) = get(port, "/api/v1/query?query=health_score").expect("health over the API");
    let api_score: f64 = api["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("score");
    assert!((0..=100).contains(&score), "{line}");
    assert!(
        (score as f64 - api_score).abs() <= 1.0,
        "snmp {score}, api {api_score}"
    );

    for tool in ["snmpwalk", "snmpbulkwalk"] {
        let (ok, out) = snmp(tool, "s3cret", "1.3.6.1.4.1.32473.1");
        assert!(ok, "{tool}: {out}");
        // The walk ends at the end of the agent's view (net-snmp says so in a last line).
        let oids: Vec<&str> = out
            .lines()
            .filter(|l| !l.contains("No more variables"))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert_eq!(oids.len(), 12, "{tool}: {out}");
        assert_eq!(oids[0], ".1.3.6.1.4.1.32473.1.1.0");
        assert!(out.contains("STRING: \"0.1.0\""), "{out}");
        assert!(
            out.contains(".1.3.6.1.4.1.32473.1.2.0 = Timeticks:"),
            "{out}"
        );
        assert!(
            out.contains(".1.3.6.1.4.1.32473.1.10.0 = Gauge32: 2"),
            "{out}"
        );
    }
    let (ok, out) = snmp("snmpget", "public", health_oid);
    assert!(
        !ok && out.is_empty(),
        "another community gets no answer: {out}"
    );
}
