//! Template variables: what a template guest is given for a queued notification — the
//! installation (server name, dashboard link, time), the recipient, and for alerts the
//! group's alerts one by one (first alert flat, all of them as JSON in `alerts`).

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

/// RFC 3339 (UTC, seconds) of a Unix time in milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The installation-wide variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// `server_name`.
    pub server_name: String,
    /// `base_url`, without a trailing slash.
    pub base_url: String,
    /// Signs the chart links messages carry (empty: unsigned).
    pub chart_key: crate::chart_link::ChartKey,
}

impl Default for Site {
    fn default() -> Self {
        Site {
            server_name: "tocsin".into(),
            base_url: "http://127.0.0.1:8080".into(),
            chart_key: Default::default(),
        }
    }
}

/// What a preview was given: a queued payload (`firing`/`resolved`/`vars`) as is, or a flat
/// object of variables.
pub fn as_payload(input: &Value) -> Value {
    let queued = ["firing", "resolved", "vars"]
        .iter()
        .any(|k| input.get(k).is_some());
    if queued {
        input.clone()
    } else {
        json!({ "vars": input })
    }
}

/// A value as people read it: up to 4 decimals, no trailing zeros.
fn number(v: &Value) -> Value {
    match v.as_f64() {
        Some(x) if x.is_finite() => {
            let s = format!("{x:.4}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            Value::String(if s == "-0" { "0".into() } else { s.to_string() })
        }
        _ => v.clone(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// An alert of a payload, with times as text and its dashboard link.
fn alert(a: &Value, site: &Site) -> Value {
    let time = |k: &str| a[k].as_i64().map(rfc3339).unwrap_or_default();
    let name = text(&a["rule"]);
    json!({
        "name": name,
        "status": text(&a["status"]),
        "severity": text(&a["severity"]),
        "value": number(&a["value"]),
        "summary": text(&a["summary"]),
        "description": text(&a["description"]),
        "labels": a["labels"],
        "started": time("started_ms"),
        "resolved": time("resolved_ms"),
        "link": format!("{}/alerts?rule={name}", site.base_url),
    })
}

/// The variables of a queued message: `payload` is what the router (or the API, for
/// account messages) queued. Alert payloads (`firing`/`resolved` lists) are flattened;
/// any other payload's `vars` object is passed as is.
pub fn vars(
    kind: &str,
    recipient: &str,
    payload: &Value,
    site: &Site,
    now_ms: i64,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![
        ("kind".into(), kind.into()),
        ("server_name".into(), site.server_name.clone()),
        ("base_url".into(), site.base_url.clone()),
        ("timestamp".into(), rfc3339(now_ms)),
        ("recipient".into(), recipient.into()),
        ("username".into(), recipient.into()),
        (
            "display_name".into(),
            recipient.split('@').next().unwrap_or(recipient).into(),
        ),
    ];
    let mut set = |k: &str, v: String| match out.iter_mut().find(|(name, _)| name == k) {
        Some(slot) => slot.1 = v,
        None => out.push((k.to_string(), v)),
    };
    if let Some(given) = payload["vars"].as_object() {
        for (k, v) in given {
            set(k, text(v));
        }
    }
    let firing = payload["firing"].as_array().map_or(&[][..], Vec::as_slice);
    let resolved = payload["resolved"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if !firing.is_empty() || !resolved.is_empty() {
        let alerts: Vec<Value> = firing
            .iter()
            .chain(resolved)
            .map(|a| alert(a, site))
            .collect();
        set("status", text(&payload["status"]));
        set("receiver", text(&payload["receiver"]));
        set("firing_count", firing.len().to_string());
        set("resolved_count", resolved.len().to_string());
        set("alert_count", alerts.len().to_string());
        let first = &alerts[0];
        set("alert_name", text(&first["name"]));
        set("severity", text(&first["severity"]));
        set("value", text(&first["value"]));
        set("summary", text(&first["summary"]));
        set("description", text(&first["description"]));
        set("started", text(&first["started"]));
        set("link", text(&first["link"]));
        if let Some(labels) = first["labels"].as_object() {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}={}", text(v)))
                .collect();
            set("labels", l.join(", "));
        }
        set("alerts", Value::Array(alerts).to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_group_flattens_its_first_alert_and_lists_all() {
        let site = Site {
            server_name: "hq".into(),
            base_url: "http://x:8080".into(),
            chart_key: Default::default(),
        };
        let payload = json!({
            "receiver": "ops", "status": "firing",
            "firing": [{"rule": "cpu-high", "status": "firing", "severity": "critical",
                        "value": 97.50000001, "summary": "CPU 97%", "labels": {"host": "a"},
                        "started_ms": 0}],
            "resolved": [{"rule": "disk", "status": "resolved", "severity": "warning",
                          "summary": "ok", "resolved_ms": 1000}],
        });
        let v = vars("server_alert", "ops@x.org", &payload, &site, 0);
        let get = |k: &str| v.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("alert_name"), Some("cpu-high"));
        assert_eq!(get("value"), Some("97.5"));
        assert_eq!(get("started"), Some("1970-01-01T00:00:00Z"));
        assert_eq!(get("firing_count"), Some("1"));
        assert_eq!(get("alert_count"), Some("2"));
        assert_eq!(get("labels"), Some("host=a"));
        assert_eq!(get("display_name"), Some("ops"));
        let all: Value = serde_json::from_str(get("alerts").unwrap_or("")).unwrap_or_default();
        assert_eq!(all[1]["resolved"], "1970-01-01T00:00:01Z");
        assert_eq!(all[0]["link"], "http://x:8080/alerts?rule=cpu-high");
    }

    #[test]
    fn account_messages_pass_their_vars() {
        let site = Site {
            server_name: "hq".into(),
            base_url: "http://x".into(),
            chart_key: Default::default(),
        };
        let payload = json!({"vars": {"username": "ada", "reset_link": "http://x/r/1"}});
        let v = vars("password_reset", "ada@x.org", &payload, &site, 0);
        assert!(v.contains(&("username".into(), "ada".into())));
        assert!(v.contains(&("reset_link".into(), "http://x/r/1".into())));
    }
}
