//! Notifications end to end: the real binary, a real SMTP server (Debian's aiosmtpd, saving
//! to a Maildir), real guests. A firing alert arrives as a multipart mail with its chart;
//! SMTP down for a while or the runtime killed with -9 loses and repeats nothing; a burst
//! of 100 alerts to one recipient arrives as one digest; a broken template falls back to
//! the built-in rendering.

mod common;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use mailparse::{MailHeaderMap, ParsedMail};

/// An aiosmtpd server saving every message into a Maildir.
struct Smtp {
    child: Child,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp(port: u16, maildir: &Path) -> Smtp {
    smtp_with(port, maildir, &[])
}

/// An aiosmtpd with extra options (`--tlscert ...` for STARTTLS), ready when it greets.
fn smtp_with(port: u16, maildir: &Path, options: &[&std::ffi::OsStr]) -> Smtp {
    // Python's Maildir creates its folders only for a directory that does not exist yet.
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
    }
    let child = Command::new("aiosmtpd")
        .args(["-n", "-l", &format!("127.0.0.1:{port}")])
        .args(options)
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("aiosmtpd (Debian package python3-aiosmtpd; `cargo xtask test` installs it)");
    // Ready when it greets; a polite QUIT keeps its log free of dropped sessions.
    wait_for("the SMTP server", || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        let mut greeting = [0u8; 3];
        stream.read_exact(&mut greeting).ok()?;
        stream.write_all(b"QUIT\r\n").ok()?;
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        (&greeting == b"220").then_some(())
    });
    Smtp { child }
}

/// The raw messages in the Maildir.
fn mails(maildir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(maildir.join("new")) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn subject(raw: &[u8]) -> String {
    let parsed = mailparse::parse_mail(raw).expect("a parsable mail");
    parsed
        .headers
        .get_first_value("Subject")
        .unwrap_or_default()
}

fn config(dir: &Path, smtp_port: u16, extra: &str) -> PathBuf {
    let path = dir.join("tocsin.toml");
    std::fs::write(
        &path,
        format!(
            r#"[mail]
preset = "custom"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from = "Tocsin <tocsin@example.org>"
timeout = "2s"

[notify]
server_name = "e2e"

[notify.retry]
initial = "200ms"
max = "1s"

[routing]
receiver = "ops"
group_by = ["alertname", "n"]
group_wait = "1s"

[[routing.receivers]]
name = "ops"
channel = "mail"
to = ["ops@example.org"]
{extra}"#
        ),
    )
    .expect("write config");
    path
}

fn policy(dir: &Path, name: &str, text: String) {
    std::fs::write(dir.join(format!("{name}.toml")), text).expect("write policy");
}

fn host_basics(dir: &Path) {
    policy(
        dir,
        "host-basics",
        format!(
            "kind = \"collector\"\ncomponent = {:?}\ninterval = \"1s\"\ngrants = [\"sensors\"]\n\
             [budgets]\ndeadline_ms = 2000\n",
            guest("host_basics")
        ),
    );
}

/// A rule over `select` that fires on any value above `threshold`.
fn any_rule(dir: &Path, name: &str, select: &str, threshold: &str) {
    policy(
        dir,
        name,
        format!(
            "kind = \"alert-rule\"\ncomponent = {:?}\ninterval = \"1s\"\n\
             [params]\nthreshold = \"{threshold}\"\nclear = \"-2\"\ncritical = \"1000\"\n\
             [input]\nselect = [\"{select}\"]\nlookback = \"30s\"\n",
            guest("cpu_high")
        ),
    );
}

fn template(dir: &Path, name: &str, wasm: &str, kinds: &str) {
    policy(
        dir,
        name,
        format!(
            "kind = \"template\"\ncomponent = {:?}\n[params]\nkinds = \"{kinds}\"\n",
            guest(wasm)
        ),
    );
}

fn notifications(port: u16) -> Vec<serde_json::Value> {
    get(port, "/api/notifications")
        .and_then(|(_, n)| n["notifications"].as_array().cloned())
        .unwrap_or_default()
}

fn post_custom(port: u16, subject: &str) {
    let body = format!(
        r#"{{"receiver": "ops", "kind": "custom", "vars": {{"subject": "{subject}", "message": "body of {subject}"}}}}"#
    );
    let (status, reply) = send(port, "POST", "/api/notifications", &body).expect("post");
    assert_eq!(status, 202, "{reply}");
}

/// A running Tocsin whose CPU rule fires at once, an SMTP sink, and their directories.
struct AlertingHost {
    port: u16,
    maildir: tempfile::TempDir,
    _tocsin: Tocsin,
    _smtp: Smtp,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// Start an SMTP sink and Tocsin with the host collector, a rule firing on any CPU usage,
/// and the template policy `name` (component `wasm`) rendering `kinds`.
fn alerting_host(name: &str, wasm: &str, kinds: &str) -> AlertingHost {
    let (dir, data, maildir) = (tempdir(), tempdir(), tempdir());
    let smtp_port = free_port();
    let smtp = smtp(smtp_port, maildir.path());
    host_basics(dir.path());
    any_rule(dir.path(), "cpu-any", "cpu_usage_percent", "-1");
    template(dir.path(), name, wasm, kinds);
    let port = free_port();
    let cfg = config(data.path(), smtp_port, "");
    let tocsin = start_config(dir.path(), data.path(), port, &cfg);
    AlertingHost {
        port,
        maildir,
        _tocsin: tocsin,
        _smtp: smtp,
        _dirs: (dir, data),
    }
}

fn part_types(part: &ParsedMail) -> Vec<String> {
    let mut out = vec![part.ctype.mimetype.clone()];
    for p in &part.subparts {
        out.extend(part_types(p));
    }
    out
}

#[test]
fn a_firing_alert_arrives_as_a_multipart_mail_with_its_chart() {
    let run = alerting_host("server-alert", "server_alert", "server_alert,alert_digest");
    let (port, maildir) = (run.port, run.maildir.path());
    let raw = wait_for("the alert mail", || mails(maildir).into_iter().next());
    let mail = mailparse::parse_mail(&raw).expect("parse");
    assert_eq!(
        mail.headers.get_first_value("Subject").as_deref(),
        Some("[WARNING] cpu-any on e2e")
    );
    assert_eq!(
        mail.headers.get_first_value("To").as_deref(),
        Some("ops@example.org")
    );
    assert!(
        mail.headers
            .get_first_value("Message-ID")
            .is_some_and(|id| id.starts_with("<tocsin.")),
        "a stable Message-ID"
    );
    // multipart/alternative: text first, then the HTML with its inline chart.
    assert_eq!(mail.ctype.mimetype, "multipart/alternative");
    assert_eq!(mail.subparts[0].ctype.mimetype, "text/plain");
    assert_eq!(
        part_types(&mail.subparts[1]),
        ["multipart/related", "text/html", "image/png"]
    );
    let text = mail.subparts[0].get_body().expect("text");
    assert!(
        text.contains("[FIRING] cpu-any (warning): CPU at"),
        "{text}"
    );
    let related = &mail.subparts[1];
    let html = related.subparts[0].get_body().expect("html");
    assert!(
        html.contains("cid:chart") && html.contains("cpu-any"),
        "{html}"
    );
    let png = related.subparts[1].get_body_raw().expect("png");
    assert_eq!(&png[..4], b"\x89PNG");
    // The outbox recorded the server's acceptance.
    let sent = wait_for("the recorded acceptance", || {
        notifications(port)
            .into_iter()
            .find(|m| m["delivery"] == "delivered")
    });
    assert!(
        sent["server_reply"]
            .as_str()
            .is_some_and(|r| r.starts_with("250")),
        "{sent}"
    );
}

#[test]
fn smtp_down_for_a_while_then_every_message_arrives_once() {
    let (dir, data, maildir) = (tempdir(), tempdir(), tempdir());
    let smtp_port = free_port();
    template(dir.path(), "messages", "messages", "custom");
    let port = free_port();
    let _tocsin = start_config(
        dir.path(),
        data.path(),
        port,
        &config(data.path(), smtp_port, ""),
    );
    wait_for("the API", || get(port, "/healthz"));
    let subjects: Vec<String> = (0..5).map(|i| format!("note {i}")).collect();
    for s in &subjects {
        post_custom(port, s);
    }
    // The server is down: attempts fail (the destination is paused between them, the
    // messages wait) ...
    wait_for("failed attempts", || {
        let n = notifications(port);
        (n.len() == 5
            && n.iter().all(|m| m["delivery"] == "pending")
            && n.iter().any(|m| m["attempts"].as_u64() >= Some(2)))
        .then_some(())
    }); // ... and once it is up, each arrives, once.
    let _smtp = smtp(smtp_port, maildir.path());
    wait_for("five mails", || {
        (mails(maildir.path()).len() >= 5).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let mut got: Vec<String> = mails(maildir.path()).iter().map(|m| subject(m)).collect();
    got.sort();
    assert_eq!(got, subjects);
    assert!(
        notifications(port)
            .iter()
            .all(|m| m["delivery"] == "delivered"),
        "all recorded as delivered"
    );
}

#[test]
fn messages_queued_when_the_runtime_is_killed_are_delivered_after_restart() {
    let (dir, data, maildir) = (tempdir(), tempdir(), tempdir());
    let smtp_port = free_port();
    template(dir.path(), "messages", "messages", "custom");
    let cfg = config(data.path(), smtp_port, "");
    let port = free_port();
    let mut tocsin = start_config(dir.path(), data.path(), port, &cfg);
    wait_for("the API", || get(port, "/healthz"));
    for i in 0..3 {
        post_custom(port, &format!("queued {i}"));
    }
    wait_for("failed attempts", || {
        let n = notifications(port);
        (n.len() == 3 && n.iter().any(|m| m["attempts"].as_u64() >= Some(1))).then_some(())
    });
    tocsin.0.kill().expect("kill -9");
    let _ = tocsin.0.wait();
    let _smtp = smtp(smtp_port, maildir.path());
    let port = free_port();
    let _tocsin = start_config(dir.path(), data.path(), port, &cfg);
    wait_for("three mails", || {
        (mails(maildir.path()).len() >= 3).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let mut got: Vec<String> = mails(maildir.path()).iter().map(|m| subject(m)).collect();
    got.sort();
    assert_eq!(got, ["queued 0", "queued 1", "queued 2"]);
}

#[test]
fn a_burst_of_100_alerts_to_one_recipient_arrives_as_one_digest() {
    let (dir, data, maildir) = (tempdir(), tempdir(), tempdir());
    let smtp_port = free_port();
    let _smtp = smtp(smtp_port, maildir.path());
    policy(
        dir.path(),
        "burst",
        format!(
            "kind = \"collector\"\ncomponent = {:?}\ninterval = \"1s\"\n\
             [params]\ncount = \"100\"\nname = \"cpu_usage_percent\"\n",
            guest("burst")
        ),
    );
    // The rule (cpu-high's component) reads cpu_usage_percent: 100 series of it.
    any_rule(dir.path(), "burst-any", "cpu_usage_percent", "0");
    template(
        dir.path(),
        "server-alert",
        "server_alert",
        "server_alert,alert_digest",
    );
    let port = free_port();
    let _tocsin = start_config(
        dir.path(),
        data.path(),
        port,
        &config(data.path(), smtp_port, ""),
    );
    // 100 groups (group_by alertname, n) notified in the same tick: 100 messages to one
    // recipient, over its limit of 10 per 10 minutes.
    wait_for("100 delivered notifications", || {
        let n = notifications(port);
        (n.iter().filter(|m| m["delivery"] == "delivered").count() == 100).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let got = mails(maildir.path());
    assert_eq!(got.len(), 1, "one digest, not 100 mails");
    assert_eq!(
        subject(&got[0]),
        "[DIGEST] 100 alerts on e2e from 100 notifications (100 firing)"
    );
    let mail = mailparse::parse_mail(&got[0]).expect("parse");
    let text = mail.subparts[0].get_body().expect("text");
    assert!(
        text.contains("burst-any") && text.contains("n=042"),
        "{text}"
    );
    assert!(
        got[0].len() < 100 * 1024 + 64 * 1024,
        "{} bytes",
        got[0].len()
    );
    let replies: Vec<String> = notifications(port)
        .iter()
        .filter_map(|m| m["server_reply"].as_str().map(String::from))
        .collect();
    assert!(
        replies.iter().all(|r| r.starts_with("digest of 100")),
        "{replies:?}"
    );
}

#[test]
fn a_broken_template_falls_back_and_the_mail_still_goes_out() {
    // Panics on server_alert, loops forever on custom.
    let run = alerting_host("broken", "broken_template", "server_alert,custom");
    let (port, maildir) = (run.port, run.maildir.path());
    let raw = wait_for("the alert mail", || mails(maildir).into_iter().next());
    assert_eq!(subject(&raw), "[FIRING:1] cpu-any on e2e");
    let mail = mailparse::parse_mail(&raw).expect("parse");
    let text = mail.subparts[0].get_body().expect("text");
    assert!(
        text.contains("cpu-any") && text.contains("CPU at"),
        "{text}"
    );
    post_custom(port, "still delivered");
    wait_for("the custom mail", || {
        mails(maildir)
            .iter()
            .any(|m| subject(m) == "still delivered")
            .then_some(())
    });
    let (_, g) = get(port, "/api/guests/broken").expect("guest");
    let stats = &g["stats"];
    assert!(stats["trap"].as_u64() >= Some(1), "{g}");
    assert!(stats["deadline"].as_u64() >= Some(1), "{g}");
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn mail_test_sends_over_starttls_and_tls_to_several_recipients_and_names_a_refusal() {
    let (dir, maildir) = (tempdir(), tempdir());
    let (cert, key) = self_signed(dir.path());
    let port = free_port();
    let _smtp = smtp_with(
        port,
        maildir.path(),
        &[
            "--tlscert".as_ref(),
            cert.as_os_str(),
            "--tlskey".as_ref(),
            key.as_os_str(),
        ],
    );
    // A second server speaking TLS from the first byte (SMTPS).
    let smtps_port = free_port();
    let child = Command::new("aiosmtpd")
        .args(["-n", "-l", &format!("127.0.0.1:{smtps_port}")])
        .arg("--smtpscert")
        .arg(&cert)
        .arg("--smtpskey")
        .arg(&key)
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("aiosmtpd");
    let _smtps = Smtp { child };
    wait_for("the SMTPS server", || {
        std::net::TcpStream::connect(("127.0.0.1", smtps_port)).ok()
    });
    let mail_test = |security: &str, port: u16| {
        let cfg = dir.path().join(format!("{security}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[mail]\npreset = \"custom\"\nhost = \"localhost\"\nport = {port}\n\
                 security = \"{security}\"\naccept_invalid_certs = true\n\
                 from = \"Tocsin <tocsin@example.org>\"\n"
            ),
        )
        .expect("config");
        Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args([
                "mail",
                "test",
                "--to",
                "a@example.org",
                "--to",
                "b@example.org",
            ])
            .arg("--attach")
            .arg(&cert)
            .arg("--config")
            .arg(&cfg)
            .env_remove("TOCSIN_CONFIG")
            .output()
            .expect("tocsin mail test")
    };
    let ok = mail_test("starttls", port);
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        out.contains("sent to a@example.org, b@example.org: 250"),
        "{out}"
    );
    let got = mails(maildir.path());
    assert_eq!(got.len(), 1);
    let parsed = mailparse::parse_mail(&got[0]).expect("parse");
    assert_eq!(
        parsed.headers.get_first_value("To").as_deref(),
        Some("a@example.org, b@example.org")
    );
    assert_eq!(parsed.ctype.mimetype, "multipart/mixed");
    let attached = &parsed.subparts[1];
    assert_eq!(
        attached
            .get_content_disposition()
            .params
            .get("filename")
            .map(String::as_str),
        Some("cert.pem")
    );
    assert!(
        attached
            .get_body()
            .is_ok_and(|b| b.contains("BEGIN CERTIFICATE")),
        "the attachment arrives intact"
    );
    // The server insists on STARTTLS: a plain session is refused, and the reason shown.
    let refused = mail_test("none", port);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("STARTTLS"), "{err}");
    // Implicit TLS (port 465 style) works too.
    let tls = mail_test("tls", smtps_port);
    assert!(
        tls.status.success(),
        "{}",
        String::from_utf8_lossy(&tls.stderr)
    );
    assert_eq!(mails(maildir.path()).len(), 2);
}

#[test]
fn the_daily_digest_goes_out_once_a_day_across_restarts() {
    let (dir, data, maildir) = (tempdir(), tempdir(), tempdir());
    let smtp_port = free_port();
    let _smtp = smtp(smtp_port, maildir.path());
    template(dir.path(), "messages", "messages", "daily_digest");
    // 00:00 UTC has always passed today: due at start.
    let cfg = config(
        data.path(),
        smtp_port,
        "[notify.daily_digest]\nreceivers = [\"ops\"]\nat = \"00:00\"\n",
    );
    for _ in 0..2 {
        let port = free_port();
        let _tocsin = start_config(dir.path(), data.path(), port, &cfg);
        wait_for("the digest", || {
            (!mails(maildir.path()).is_empty()).then_some(())
        });
        wait_for("the delivery record", || {
            notifications(port)
                .iter()
                .all(|m| m["delivery"] == "delivered")
                .then_some(())
        });
        std::thread::sleep(Duration::from_secs(1));
    }
    let got = mails(maildir.path());
    assert_eq!(got.len(), 1, "one digest a day, restart or not");
    assert_eq!(
        subject(&got[0]),
        "[DIGEST] e2e: 0 firing, 0 fired in the last 24 hours"
    );
}
