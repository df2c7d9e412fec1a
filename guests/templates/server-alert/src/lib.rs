//! Template `server-alert`: renders `server_alert` notifications (firing or resolved) as a
//! subject, an HTML body with inlined CSS, and a plain-text body.
//!
//! Variables: `server_name`, `alert_name`, `status` (`firing`|`resolved`), `severity`,
//! `value`, `summary`, `description`, `started`, `timestamp`, `base_url`, `display_name`.

tocsin_guest::world!(template);
use tocsin_guest::prelude::*;

struct ServerAlert;

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl Guest for ServerAlert {
    fn render(kind: String, vars: Labels) -> Result<Rendered, String> {
        if kind != "server_alert" {
            return Err(format!(
                "unsupported kind `{kind}` (this template renders server_alert)"
            ));
        }
        let var = |k: &str| label(&vars, k).unwrap_or("");
        let server = label(&vars, "server_name").ok_or("missing variable server_name")?;
        let alert = label(&vars, "alert_name").ok_or("missing variable alert_name")?;
        let resolved = var("status") == "resolved";
        let (state, colour) = if resolved {
            ("RESOLVED", "#2e7d32")
        } else {
            match var("severity") {
                "critical" => ("CRITICAL", "#c62828"),
                "info" => ("INFO", "#1565c0"),
                _ => ("WARNING", "#ef6c00"),
            }
        };
        let subject = format!("[{state}] {alert} on {server}");
        let link = format!("{}/alerts", var("base_url").trim_end_matches('/'));
        let text = format!(
            "{state}: {alert} on {server}\n\n{}\n{}\n\nValue: {}\nStarted: {}\nAt: {}\n\nDetails: {link}\n",
            var("summary"),
            var("description"),
            var("value"),
            var("started"),
            var("timestamp"),
        );
        let html = format!(
            r#"<!DOCTYPE html><html><body style="margin:0;padding:24px;background:#f4f5f7;font-family:Arial,Helvetica,sans-serif;color:#1f2328">
<table role="presentation" width="100%" style="max-width:600px;margin:0 auto;background:#ffffff;border-radius:6px;border-collapse:collapse">
<tr><td style="background:{colour};color:#ffffff;padding:16px 24px;font-size:18px;font-weight:bold;border-radius:6px 6px 0 0">{state}: {alert}</td></tr>
<tr><td style="padding:24px">
<p style="margin:0 0 12px 0;font-size:16px"><strong>{server}</strong></p>
<p style="margin:0 0 12px 0">{summary}</p>
<p style="margin:0 0 16px 0;color:#57606a">{description}</p>
<table role="presentation" style="border-collapse:collapse;font-size:14px">
<tr><td style="padding:4px 12px 4px 0;color:#57606a">Value</td><td style="padding:4px 0">{value}</td></tr>
<tr><td style="padding:4px 12px 4px 0;color:#57606a">Started</td><td style="padding:4px 0">{started}</td></tr>
<tr><td style="padding:4px 12px 4px 0;color:#57606a">At</td><td style="padding:4px 0">{timestamp}</td></tr>
</table>
<p style="margin:24px 0 0 0"><a href="{link}" style="background:{colour};color:#ffffff;padding:10px 16px;border-radius:4px;text-decoration:none">Open in Tocsin</a></p>
</td></tr></table></body></html>"#,
            alert = escape(alert),
            server = escape(server),
            summary = escape(var("summary")),
            description = escape(var("description")),
            value = escape(var("value")),
            started = escape(var("started")),
            timestamp = escape(var("timestamp")),
            link = escape(&link),
        );
        Ok(Rendered {
            subject,
            html,
            text,
        })
    }
}

export!(ServerAlert);
