//! Webhooks: the rendered notification POSTed as JSON in the shape the receiver expects —
//! generic (Alertmanager-like), Slack, Discord, or PagerDuty Events API v2 (one event per
//! alert, deduplicated by the alert's id, so a retried message never pages twice).

use std::time::Duration;

use serde_json::{Value, json};

use crate::render::Rendered;
use crate::send::{Failure, redact, redact_text};
use crate::vars::Site;

/// Bodies to POST, in order, for one message.
pub fn bodies(
    format: &str,
    routing_key: &str,
    kind: &str,
    rendered: &Rendered,
    payload: &Value,
    site: &Site,
) -> Vec<Value> {
    let server_name = site.server_name.as_str();
    let chart = chart_url(payload, site);
    let status = payload["status"].as_str().unwrap_or("");
    let colour = match (status, worst_severity(payload)) {
        ("resolved", _) => (0x2e7d32, "#2e7d32"),
        (_, "critical") => (0xc62828, "#c62828"),
        (_, "info") => (0x1565c0, "#1565c0"),
        _ => (0xef6c00, "#ef6c00"),
    };
    match format {
        "slack" => {
            let mut attachment = json!({
                "color": colour.1,
                "title": rendered.subject,
                "text": cut(&rendered.text, 3000),
            });
            if let Some(url) = &chart {
                attachment["image_url"] = json!(url);
            }
            vec![json!({ "text": rendered.subject, "attachments": [attachment] })]
        }
        "discord" => {
            let mut embed = json!({
                "title": cut(&rendered.subject, 256),
                "description": cut(&rendered.text, 4096),
                "color": colour.0,
            });
            if let Some(url) = &chart {
                embed["image"] = json!({ "url": url });
            }
            vec![json!({ "content": cut(&rendered.subject, 2000), "embeds": [embed] })]
        }
        "pagerduty" => {
            let alerts = payload["firing"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(payload["resolved"].as_array().into_iter().flatten());
            alerts
                .map(|a| {
                    let firing = a["status"] == "firing";
                    json!({
                        "routing_key": routing_key,
                        "event_action": if firing { "trigger" } else { "resolve" },
                        "dedup_key": a["id"],
                        "payload": {
                            "summary": cut(
                                &format!("{}: {}", a["rule"].as_str().unwrap_or(""),
                                         a["summary"].as_str().unwrap_or("")),
                                1024),
                            "source": server_name,
                            "severity": match a["severity"].as_str() {
                                Some("critical") => "critical",
                                Some("info") => "info",
                                _ => "warning",
                            },
                            "custom_details": {
                                "labels": a["labels"],
                                "value": a["value"],
                                "description": a["description"],
                            },
                        },
                    })
                })
                .collect()
        }
        _ => vec![json!({
            "version": "1",
            "kind": kind,
            "status": status,
            "receiver": payload["receiver"],
            "group_labels": payload["group_labels"],
            "subject": rendered.subject,
            "text": rendered.text,
            "alerts": payload["firing"].as_array().into_iter().flatten()
                .chain(payload["resolved"].as_array().into_iter().flatten())
                .collect::<Vec<_>>(),
            "vars": payload["vars"],
            "chart_url": chart,
        })],
    }
}

/// The dashboard's chart of the first firing (else first) alert of an alert payload, signed
/// when the site has a chart key (chat services fetch it without a token).
pub fn chart_url(payload: &Value, site: &Site) -> Option<String> {
    let alert = payload["firing"]
        .as_array()
        .and_then(|a| a.first())
        .or_else(|| payload["resolved"].as_array().and_then(|a| a.first()))?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("rule", alert["rule"].as_str()?);
    for (k, v) in alert["labels"].as_object().into_iter().flatten() {
        if let Some(v) = v.as_str() {
            query.append_pair(k, v);
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Some(format!(
        "{}/api/charts/alert.png?{}",
        site.base_url,
        crate::chart_link::sign(&site.chart_key, &query.finish(), now)
    ))
}

fn worst_severity(payload: &Value) -> &str {
    let sev: Vec<&str> = payload["firing"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["severity"].as_str())
        .collect();
    ["critical", "warning", "info"]
        .into_iter()
        .find(|s| sev.contains(s))
        .unwrap_or("warning")
}

/// At most `max` characters.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// POST each body to `url`; returns the status lines of the answers. A 4xx answer (but
/// 408 and 429) is permanent; anything else failing is worth a retry. Errors name the URL
/// without its path (webhook paths are credentials).
pub fn post(url: &str, bodies: &[Value], timeout: Duration) -> Result<String, Failure> {
    let shown = redact(url);
    if bodies.is_empty() {
        return Err(Failure::Permanent(format!(
            "{shown}: nothing to send (a pagerduty receiver takes alert notifications only)"
        )));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let mut replies = Vec::new();
    for body in bodies {
        let response = agent
            .post(url)
            .header("content-type", "application/json")
            .send(body.to_string())
            .map_err(|e| {
                Failure::Retry(format!(
                    "POST {shown}: {}",
                    redact_text(&e.to_string(), url)
                ))
            })?;
        let status = response.status();
        if !status.is_success() {
            let text = response.into_body().read_to_string().unwrap_or_default();
            let text: String = text.chars().take(300).collect();
            let error = format!("POST {shown}: HTTP {status}: {text}");
            let code = status.as_u16();
            return Err(
                if (400..500).contains(&code) && code != 408 && code != 429 {
                    Failure::Permanent(error)
                } else {
                    Failure::Retry(error)
                },
            );
        }
        replies.push(format!("HTTP {}", status.as_u16()));
    }
    Ok(replies.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Rendered, Value) {
        (
            Rendered {
                subject: "[FIRING:1] cpu-high on hq".into(),
                html: String::new(),
                text: "CPU at 97%".into(),
                fallback: None,
            },
            json!({"receiver": "ops", "status": "firing", "group_labels": {},
                   "firing": [{"id": "cpu-high/host=a", "rule": "cpu-high",
                               "status": "firing", "severity": "critical",
                               "summary": "CPU at 97%", "labels": {"host": "a"}}],
                   "resolved": [{"id": "disk/x", "rule": "disk", "status": "resolved",
                                 "severity": "warning", "summary": "ok"}]}),
        )
    }

    fn site() -> Site {
        Site {
            server_name: "hq".into(),
            base_url: "http://tocsin:8080".into(),
            chart_key: Default::default(),
        }
    }

    #[test]
    fn shapes_follow_each_service() {
        let (r, p) = sample();
        let slack = &bodies("slack", "", "server_alert", &r, &p, &site())[0];
        assert_eq!(slack["text"], r.subject);
        assert_eq!(slack["attachments"][0]["color"], "#c62828");
        assert_eq!(
            slack["attachments"][0]["image_url"],
            "http://tocsin:8080/api/charts/alert.png?rule=cpu-high&host=a"
        );
        let discord = &bodies("discord", "", "server_alert", &r, &p, &site())[0];
        assert_eq!(discord["embeds"][0]["color"], 0xc62828);
        let pd = bodies("pagerduty", "KEY", "server_alert", &r, &p, &site());
        assert_eq!(pd.len(), 2);
        assert_eq!(pd[0]["event_action"], "trigger");
        assert_eq!(pd[0]["dedup_key"], "cpu-high/host=a");
        assert_eq!(pd[0]["routing_key"], "KEY");
        assert_eq!(pd[1]["event_action"], "resolve");
        let generic = &bodies("generic", "", "server_alert", &r, &p, &site())[0];
        assert_eq!(generic["alerts"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn long_text_is_cut_to_the_service_limit() {
        let (mut r, p) = sample();
        r.text = "x".repeat(10_000);
        let d = &bodies("discord", "", "server_alert", &r, &p, &site())[0];
        assert_eq!(
            d["embeds"][0]["description"]
                .as_str()
                .map(|s| s.chars().count()),
            Some(4096)
        );
    }
}
