//! `tocsin mail test` (check the SMTP settings and send a test message) and
//! `tocsin template render` (render a kind with the policy set's templates, send nothing).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tocsin_notify::{Email, Mailer, Templates};

use crate::config::Config;

/// A MIME type from a file name's extension.
fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("pdf") => "application/pdf",
        Some("txt" | "log") => "text/plain",
        Some("json") => "application/json",
        Some("csv") => "text/csv",
        _ => "application/octet-stream",
    }
}

/// Connect to the configured server, then send a test message (with `attach`) to `to`.
pub fn mail_test(config: &Config, to: &[String], attach: &[PathBuf]) -> anyhow::Result<()> {
    let endpoint = config
        .mail
        .endpoint()
        .map_err(|e| anyhow::anyhow!("[mail]: {e}"))?;
    println!(
        "server {}:{} ({:?}), sender {}",
        endpoint.host, endpoint.port, endpoint.security, config.mail.from
    );
    let mailer = Mailer::new(&config.mail)?;
    mailer.check().context("connecting")?;
    println!("connection ok");
    if to.is_empty() {
        return Ok(());
    }
    let site = config.notify.site();
    let now = tocsin_notify::deliver::now_ms();
    let text = format!(
        "This is a test message from Tocsin on {}, sent at {}.\n\nIf you can read it, mail \
         notifications work.\n\nDashboard: {}\n",
        site.server_name,
        tocsin_notify::vars::rfc3339(now),
        site.base_url
    );
    let html = format!(
        "<!DOCTYPE html><html><body style=\"font-family:Arial,Helvetica,sans-serif\"><p>This \
         is a test message from Tocsin on <strong>{}</strong>.</p><p>If you can read it, mail \
         notifications work.</p><p><a href=\"{}\">Open the dashboard</a></p></body></html>",
        tocsin_notify::render::escape(&site.server_name),
        tocsin_notify::render::escape(&site.base_url)
    );
    let mut attachments = Vec::new();
    for path in attach {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "attachment".into());
        attachments.push(tocsin_notify::FileAttachment {
            content_type: content_type(&name).into(),
            name,
            bytes,
        });
    }
    let reply = mailer.send(&Email {
        to: to.to_vec(),
        subject: format!("Tocsin test message from {}", site.server_name),
        text,
        html,
        attachments,
        inline: Vec::new(),
        message_id: None,
    })?;
    println!("sent to {}: {reply}", to.join(", "));
    Ok(())
}

/// Render `kind` with the template policies of `policies`; `vars_file` holds a JSON object
/// of variables or a queued payload.
pub fn template_render(
    config: &Config,
    policies: &Path,
    kind: &str,
    vars_file: Option<&Path>,
    format: &str,
) -> anyhow::Result<()> {
    let input: serde_json::Value = match vars_file {
        Some(f) => {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", f.display()))?
        }
        None => serde_json::json!({}),
    };
    anyhow::ensure!(input.is_object(), "the variables must be a JSON object");
    let engine = tocsin_engine::Engine::new(
        tocsin_engine::EngineConfig::default(),
        tocsin_engine::Providers::local(),
    )?;
    let templates = Templates::default();
    let mut paths: Vec<_> = std::fs::read_dir(policies)
        .with_context(|| format!("reading {}", policies.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    // Only template policies are compiled.
    for path in paths {
        let is_template = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| tocsin_policy::Manifest::parse(&text, &path).ok())
            .is_some_and(|m| m.kind == tocsin_engine::GuestKind::Template);
        if !is_template {
            continue;
        }
        match tocsin_policy::load_one(&engine, &path) {
            Ok(p) => templates.set(&p.guest, &p.template_kinds()),
            Err(e) => eprintln!("skipped: {e}"),
        }
    }
    let recipient = input["recipient"].as_str().unwrap_or("").to_string();
    let payload = tocsin_notify::as_payload(&input);
    let vars = tocsin_notify::vars(
        kind,
        &recipient,
        &payload,
        &config.notify.site(),
        tocsin_notify::deliver::now_ms(),
    );
    let r = templates.render(kind, &vars);
    match format {
        "json" => println!(
            "{}",
            serde_json::json!({"subject": r.subject, "text": r.text, "html": r.html,
                               "fallback": r.fallback})
        ),
        "html" => println!("{}", r.html),
        _ => {
            if let Some(why) = &r.fallback {
                eprintln!("built-in rendering: {why}");
            }
            println!("Subject: {}\n\n{}", r.subject, r.text);
        }
    }
    Ok(())
}
