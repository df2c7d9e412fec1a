//! Template `server-alert`: renders `server_alert` (one alert or a group of them, firing
//! and resolved, in one message) and `alert_digest` (a burst folded into one message) as a
//! subject, an HTML body with inlined CSS, and a plain-text body.
//!
//! Variables: `server_name`, `base_url`, `timestamp`, `status`, and `alerts` — a JSON list
//! of `{name, status, severity, value, summary, description, labels, started, resolved,
//! link}`. Without `alerts`, the flat `alert_name`, `severity`, `value`, `summary`,
//! `description`, `started` describe one alert. `message_count` (digests) and `chart_cid`
//! (an inline chart image) are optional.

tocsin_guest::world!(template);
use serde_json::Value;
use tocsin_guest::html::{card, colour, escape, para};
use tocsin_guest::prelude::*;

/// Alerts listed in full; the rest are counted (keeps a message far under 100 KB).
const LISTED: usize = 60;

struct ServerAlert;

/// One alert as the template sees it.
#[derive(Debug, Clone, PartialEq)]
struct Alert {
    name: String,
    status: String,
    severity: String,
    value: String,
    summary: String,
    description: String,
    labels: Vec<(String, String)>,
    started: String,
    link: String,
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn alerts(vars: &[(String, String)]) -> Result<Vec<Alert>, String> {
    let var = |k: &str| label(vars, k).unwrap_or("").to_string();
    match label(vars, "alerts") {
        Some(json) => {
            let list: Vec<Value> =
                serde_json::from_str(json).map_err(|e| format!("variable alerts: {e}"))?;
            Ok(list
                .iter()
                .map(|a| Alert {
                    name: s(&a["name"]),
                    status: s(&a["status"]),
                    severity: s(&a["severity"]),
                    value: s(&a["value"]),
                    summary: s(&a["summary"]),
                    description: s(&a["description"]),
                    labels: a["labels"]
                        .as_object()
                        .map(|m| m.iter().map(|(k, v)| (k.clone(), s(v))).collect())
                        .unwrap_or_default(),
                    started: s(&a["started"]),
                    link: s(&a["link"]),
                })
                .collect())
        }
        None => Ok(vec![Alert {
            name: label(vars, "alert_name")
                .ok_or("missing variable alert_name")?
                .to_string(),
            status: if var("status").is_empty() {
                "firing".into()
            } else {
                var("status")
            },
            severity: var("severity"),
            value: var("value"),
            summary: var("summary"),
            description: var("description"),
            labels: Vec::new(),
            started: var("started"),
            link: format!("{}/alerts", var("base_url").trim_end_matches('/')),
        }]),
    }
}

/// The state shown in the subject and the header colour.
fn state(alerts: &[Alert]) -> &'static str {
    let firing: Vec<&Alert> = alerts.iter().filter(|a| a.status != "resolved").collect();
    if firing.is_empty() {
        return "resolved";
    }
    for sev in ["critical", "warning", "info"] {
        if firing.iter().any(|a| a.severity == sev) {
            return sev;
        }
    }
    "warning"
}

fn subject(kind: &str, server: &str, alerts: &[Alert], messages: &str) -> String {
    let firing = alerts.iter().filter(|a| a.status != "resolved").count();
    if kind == "alert_digest" {
        let from = if messages.is_empty() {
            String::new()
        } else {
            format!(" from {messages} notifications")
        };
        return format!(
            "[DIGEST] {} alerts on {server}{from} ({firing} firing)",
            alerts.len()
        );
    }
    let st = state(alerts).to_uppercase();
    match alerts {
        [one] => format!("[{st}] {} on {server}", one.name),
        [first, rest @ ..] => format!(
            "[{st}:{firing}] {} and {} more on {server}",
            first.name,
            rest.len()
        ),
        [] => format!("[{st}] alerts on {server}"),
    }
}

fn text(alerts: &[Alert], header: &str, link: &str) -> String {
    let mut out = format!("{header}\n\n");
    for a in alerts.iter().take(LISTED) {
        out.push_str(&format!(
            "[{}] {} ({}){}\n",
            a.status.to_uppercase(),
            a.name,
            a.severity,
            if a.summary.is_empty() {
                String::new()
            } else {
                format!(": {}", a.summary)
            }
        ));
        if !a.description.is_empty() {
            out.push_str(&format!("  {}\n", a.description));
        }
        let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !labels.is_empty() {
            out.push_str(&format!("  {}\n", labels.join(", ")));
        }
        if !a.value.is_empty() {
            out.push_str(&format!("  value {}", a.value));
        }
        if !a.started.is_empty() {
            out.push_str(&format!("  since {}", a.started));
        }
        out.push('\n');
    }
    if alerts.len() > LISTED {
        out.push_str(&format!("... and {} more\n", alerts.len() - LISTED));
    }
    out.push_str(&format!("\nDetails: {link}\n"));
    out
}

fn rows(alerts: &[Alert]) -> String {
    let mut out = String::from(
        r#"<table role="presentation" width="100%" style="border-collapse:collapse;font-size:14px">"#,
    );
    for a in alerts.iter().take(LISTED) {
        let st = if a.status == "resolved" {
            "resolved"
        } else {
            a.severity.as_str()
        };
        let labels: Vec<String> = a
            .labels
            .iter()
            .filter(|(k, _)| k != "alertname" && k != "severity")
            .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
            .collect();
        out.push_str(&format!(
            r#"<tr><td style="padding:8px 8px 8px 0;border-bottom:1px solid #eaeef2;vertical-align:top;white-space:nowrap"><span style="background:{};color:#ffffff;padding:2px 6px;border-radius:3px;font-size:12px">{}</span></td><td style="padding:8px 0;border-bottom:1px solid #eaeef2"><a href="{}" style="color:#1f2328;font-weight:bold;text-decoration:none">{}</a> {}<br><span style="color:#57606a;font-size:12px">{}{}{}</span></td></tr>"#,
            colour(st),
            escape(&a.status.to_uppercase()),
            escape(&a.link),
            escape(&a.name),
            escape(&a.summary),
            labels.join(", "),
            if a.value.is_empty() { String::new() } else { format!(" &middot; value {}", escape(&a.value)) },
            if a.started.is_empty() { String::new() } else { format!(" &middot; since {}", escape(&a.started)) },
        ));
    }
    out.push_str("</table>");
    if alerts.len() > LISTED {
        out.push_str(&para(&format!("... and {} more", alerts.len() - LISTED)));
    }
    out
}

fn render(kind: &str, vars: &[(String, String)]) -> Result<Rendered, String> {
    if kind != "server_alert" && kind != "alert_digest" {
        return Err(format!(
            "unsupported kind `{kind}` (this template renders server_alert and alert_digest)"
        ));
    }
    let var = |k: &str| label(vars, k).unwrap_or("");
    let server = label(vars, "server_name").ok_or("missing variable server_name")?;
    let list = alerts(vars)?;
    let link = format!("{}/alerts", var("base_url").trim_end_matches('/'));
    let subject = subject(kind, server, &list, var("message_count"));
    let st = state(&list);
    let mut body = String::new();
    if let [one] = list.as_slice() {
        body.push_str(&para(&one.summary));
        if !one.description.is_empty() {
            body.push_str(&format!(
                r#"<p style="margin:0 0 16px 0;color:#57606a">{}</p>"#,
                escape(&one.description)
            ));
        }
        let labels: Vec<String> = one
            .labels
            .iter()
            .filter(|(k, _)| k != "alertname" && k != "severity")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();

        let labels = labels.join(", ");
        body.push_str(&tocsin_guest::html::facts(&[
            ("Status", &one.status),
            ("Severity", &one.severity),
            ("Value", &one.value),
            ("Started", &one.started),
            ("Labels", &labels),
            ("At", var("timestamp")),
        ]));
    } else {
        body.push_str(&rows(&list));
    }
    if !var("chart_cid").is_empty() {
        body.push_str(&format!(
            r#"<p style="margin:16px 0 0 0"><img src="cid:{}" width="600" alt="Chart of the alerting series" style="max-width:100%;border:1px solid #eaeef2"></p>"#,
            escape(var("chart_cid"))
        ));
    }
    let html = card(
        colour(st),
        &subject,
        &body,
        Some((&link, "Open in Tocsin")),
        server,
    );
    let text = text(&list, &subject, &link);
    Ok(Rendered {
        subject,
        html,
        text,
    })
}

impl Guest for ServerAlert {
    fn render(kind: String, vars: Labels) -> Result<Rendered, String> {
        render(&kind, &vars)
    }
}

export!(ServerAlert);

#[cfg(test)]
mod tests {
    use super::*;

    fn v(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const TWO: &str = r#"[
        {"name":"cpu-high","status":"firing","severity":"critical","value":97.5,
         "summary":"CPU at 97%","labels":{"host":"web-1"},"started":"2026-01-01T00:00:00Z",
         "link":"http://x/alerts?rule=cpu-high"},
        {"name":"disk-filling","status":"resolved","severity":"warning","summary":"disk ok",
         "labels":{"host":"web-2"}}]"#;

    #[test]
    fn a_group_lists_every_alert_in_both_parts() {
        let r = render(
            "server_alert",
            &v(&[("server_name", "hq"), ("alerts", TWO)]),
        )
        .expect("render");
        assert_eq!(r.subject, "[CRITICAL:1] cpu-high and 1 more on hq");
        for part in [&r.text, &r.html] {
            assert!(
                part.contains("CPU at 97%") && part.contains("disk ok"),
                "{part}"
            );
        }
        assert!(r.text.contains("host=web-1"));
        assert!(r.html.contains("http://x/alerts?rule=cpu-high"));
    }

    #[test]
    fn all_resolved_is_green_and_says_so() {
        let one = r#"[{"name":"cpu-high","status":"resolved","severity":"critical"}]"#;
        let r = render(
            "server_alert",
            &v(&[("server_name", "hq"), ("alerts", one)]),
        )
        .expect("render");
        assert_eq!(r.subject, "[RESOLVED] cpu-high on hq");
        assert!(r.html.contains("#2e7d32"));
    }

    #[test]
    fn digests_count_and_stay_small() {
        let many: Vec<String> = (0..500)
            .map(|i| {
                format!(
                    r#"{{"name":"r{i}","status":"firing","severity":"warning","summary":"{}"}}"#,
                    "x".repeat(100)
                )
            })
            .collect();
        let json = format!("[{}]", many.join(","));
        let r = render(
            "alert_digest",
            &v(&[
                ("server_name", "hq"),
                ("alerts", &json),
                ("message_count", "500"),
            ]),
        )
        .expect("render");
        assert_eq!(
            r.subject,
            "[DIGEST] 500 alerts on hq from 500 notifications (500 firing)"
        );
        assert!(r.text.contains("... and 440 more"));
        assert!(r.html.len() + r.text.len() < 100 * 1024, "{}", r.html.len());
    }

    #[test]
    fn bad_alert_json_is_an_error_not_a_panic() {
        let e = render(
            "server_alert",
            &v(&[("server_name", "hq"), ("alerts", "{")]),
        )
        .expect_err("an error");
        assert!(e.contains("alerts"));
    }
}
