//! Rendering: a notification kind and its variables become a subject, HTML and text,
//! through the template guest deployed for that kind. A missing, failing, trapping or slow
//! template — or one whose output is too large for a mail — falls back to a built-in
//! plain-text rendering, so a notification is never lost to a broken template.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;
use tocsin_engine::Guest;

/// Largest rendered message (subject + HTML + text) sent as rendered.
pub const MAX_MESSAGE_BYTES: usize = 100 * 1024;

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Subject line.
    pub subject: String,
    /// HTML body.
    pub html: String,
    /// Plain-text body.
    pub text: String,
    /// Why the built-in rendering was used, if it was.
    pub fallback: Option<String>,
}

/// The template guests by the kinds they render, shared with the policy reloader.
#[derive(Clone, Default)]
pub struct Templates(Arc<RwLock<BTreeMap<String, Guest>>>);

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.kinds()).finish()
    }
}

impl Templates {
    /// Render `kinds` with `guest` from now on (replacing the guests that rendered them).
    pub fn set(&self, guest: &Guest, kinds: &[String]) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, g| g.name() != guest.name());
        for k in kinds {
            map.insert(k.clone(), guest.clone());
        }
    }

    /// Forget the policy `name`.
    pub fn remove(&self, name: &str) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, g| g.name() != name);
    }

    /// The guest rendering `kind`.
    pub fn get(&self, kind: &str) -> Option<Guest> {
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        map.get(kind).cloned()
    }

    /// Kinds with a template.
    pub fn kinds(&self) -> Vec<String> {
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        map.keys().cloned().collect()
    }

    /// Render `kind` from `vars`: by its template, else built in.
    pub fn render(&self, kind: &str, vars: &[(String, String)]) -> Rendered {
        let reason = match self.get(kind) {
            None => format!("no template renders `{kind}`"),
            Some(guest) => match guest.instance().render(kind, vars) {
                Ok(r) if r.subject.len() + r.html.len() + r.text.len() > MAX_MESSAGE_BYTES => {
                    format!(
                        "template `{}` rendered {} bytes (limit {MAX_MESSAGE_BYTES})",
                        guest.name(),
                        r.subject.len() + r.html.len() + r.text.len()
                    )
                }
                Ok(r) if r.subject.trim().is_empty() => {
                    format!("template `{}` rendered an empty subject", guest.name())
                }
                Ok(r) => {
                    return Rendered {
                        subject: one_line(&r.subject),
                        html: r.html,
                        text: r.text,
                        fallback: None,
                    };
                }
                Err(e) => format!("template `{}`: {e}", guest.name()),
            },
        };
        tracing::warn!(kind, reason = %reason, "built-in rendering used");
        let mut r = builtin(kind, vars);
        r.fallback = Some(reason);
        r
    }
}

/// Subjects are one line (a header injection guard, too).
fn one_line(s: &str) -> String {
    let line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    line.chars().take(250).collect()
}

fn var<'a>(vars: &'a [(String, String)], name: &str) -> &'a str {
    vars.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// HTML-escape text.
pub fn escape(s: &str) -> String {
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

/// The built-in plain rendering: every variable a template would have had, as text.
pub fn builtin(kind: &str, vars: &[(String, String)]) -> Rendered {
    let server = var(vars, "server_name");
    let subject = match kind {
        "server_alert" | "alert_digest" => {
            let status = var(vars, "status").to_uppercase();
            let firing = var(vars, "firing_count");
            let what = if var(vars, "alert_count") == "1" {
                var(vars, "alert_name").to_string()
            } else {
                format!("{} alerts", var(vars, "alert_count"))
            };
            format!("[{status}:{firing}] {what} on {server}")
        }
        _ if !var(vars, "subject").is_empty() => var(vars, "subject").to_string(),
        _ => format!("[{kind}] {server}"),
    };
    let mut text = String::new();
    if !var(vars, "message").is_empty() {
        text.push_str(var(vars, "message"));
        text.push_str("\n\n");
    }
    if let Ok(Value::Array(alerts)) = serde_json::from_str::<Value>(var(vars, "alerts")) {
        for a in &alerts {
            let s = |k: &str| a[k].as_str().unwrap_or("").to_string();
            text.push_str(&format!(
                "- [{}] {} ({}) {} value={} since {}\n",
                s("status").to_uppercase(),
                s("name"),
                s("severity"),
                s("summary"),
                a["value"],
                s("started"),
            ));
            if let Some(labels) = a["labels"].as_object() {
                let l: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect();
                text.push_str(&format!("  {}\n", l.join(", ")));
            }
        }
        text.push('\n');
    }
    for (k, v) in vars {
        if k != "alerts" && k != "message" {
            text.push_str(&format!("{k}: {v}\n"));
        }
    }
    let html = format!(
        "<!DOCTYPE html><html><body><pre style=\"font-family:monospace;white-space:pre-wrap\">{}</pre></body></html>",
        escape(&text)
    );
    Rendered {
        subject: one_line(&subject),
        html,
        text,
        fallback: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn without_a_template_the_builtin_rendering_keeps_every_fact() {
        let t = Templates::default();
        let r = t.render(
            "server_alert",
            &v(&[
                ("server_name", "web-1"),
                ("status", "firing"),
                ("firing_count", "1"),
                ("alert_count", "1"),
                ("alert_name", "cpu-high"),
                (
                    "alerts",
                    r#"[{"name":"cpu-high","status":"firing","severity":"warning","summary":"CPU at 97%","value":97.0,"started":"2026-01-01T00:00:00Z","labels":{"host":"web-1"}}]"#,
                ),
            ]),
        );
        assert_eq!(r.subject, "[FIRING:1] cpu-high on web-1");
        assert!(r.text.contains("CPU at 97%"), "{}", r.text);
        assert!(r.text.contains("host=web-1"));
        assert!(r.fallback.expect("fallback").contains("no template"));
        assert!(r.html.contains("CPU at 97%"));
    }

    #[test]
    fn builtin_html_is_escaped_and_subjects_are_one_line() {
        let r = builtin(
            "custom",
            &v(&[("server_name", "a\r\nBcc: x@y"), ("message", "<script>")]),
        );
        assert!(!r.subject.contains('\n'));
        assert!(r.html.contains("&lt;script&gt;"));
    }
}
