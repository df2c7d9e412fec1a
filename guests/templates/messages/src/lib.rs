//! Template `messages`: every notification that is not an alert.
//!
//! Kinds and their variables (besides `server_name`, `base_url`, `timestamp`,
//! `username`, `display_name` that every message gets):
//! - `maintenance`: `title`, `message`, `starts`, `ends`, `affected`.
//! - `daily_digest`: `period`, `firing_count`, `fired`, `resolved`, `health_score`,
//!   `alerts` (JSON list of the firing alerts: `name`, `severity`, `summary`, `started`).
//! - `welcome`: `login_link` (default: the dashboard).
//! - `password_reset`: `reset_link` (required), `expires`.
//! - `account_locked`: `reason`, `unlock_at`.
//! - `custom`: `subject` (required), `message`, `link`.

tocsin_guest::world!(template);
use tocsin_guest::html::{card, colour, facts, para};
use tocsin_guest::prelude::*;

struct Messages;

/// A message's subject, tone (header colour), paragraphs, fact rows and button.
type Parts<'a> = (
    String,
    &'a str,
    Vec<String>,
    Vec<(&'a str, String)>,
    Option<(String, &'a str)>,
);

fn render(kind: &str, vars: &[(String, String)]) -> Result<Rendered, String> {
    let var = |k: &str| label(vars, k).unwrap_or("");
    let server = label(vars, "server_name").ok_or("missing variable server_name")?;
    let base = var("base_url").trim_end_matches('/');
    let name = if var("display_name").is_empty() {
        var("username")
    } else {
        var("display_name")
    };
    let hello = if name.is_empty() {
        "Hello,".to_string()
    } else {
        format!("Hello {name},")
    };
    // (subject, colour, paragraphs, fact rows, button)
    let (subject, tone, paragraphs, rows, button): Parts = match kind {
        "maintenance" => {
            let title = if var("title").is_empty() {
                "Planned maintenance"
            } else {
                var("title")
            };
            (
                format!("[MAINTENANCE] {title} on {server}"),
                "info",
                vec![var("message").to_string()],
                vec![
                    ("Starts", var("starts").to_string()),
                    ("Ends", var("ends").to_string()),
                    ("Affected", var("affected").to_string()),
                ],
                Some((format!("{base}/"), "Open the dashboard")),
            )
        }
        "daily_digest" => {
            let firing: usize = var("firing_count").parse().unwrap_or(0);
            let mut lines = Vec::new();
            if let Some(json) = label(vars, "alerts") {
                let list: Vec<serde_json::Value> =
                    serde_json::from_str(json).map_err(|e| format!("variable alerts: {e}"))?;
                for a in list.iter().take(50) {
                    let f = |k: &str| a[k].as_str().unwrap_or("").to_string();
                    lines.push(format!(
                        "{} ({}): {} since {}",
                        f("name"),
                        f("severity"),
                        f("summary"),
                        f("started")
                    ));
                }
                if list.len() > 50 {
                    lines.push(format!("... and {} more", list.len() - 50));
                }
            }
            let period = if var("period").is_empty() {
                "the last 24 hours"
            } else {
                var("period")
            };
            (
                format!(
                    "[DIGEST] {server}: {firing} firing, {} fired in {period}",
                    if var("fired").is_empty() {
                        "0"
                    } else {
                        var("fired")
                    }
                ),
                if firing > 0 { "warning" } else { "ok" },
                vec![format!("Summary of {period}."), lines.join("\n")],
                vec![
                    ("Firing now", var("firing_count").to_string()),
                    ("Fired", var("fired").to_string()),
                    ("Resolved", var("resolved").to_string()),
                    ("Health score", var("health_score").to_string()),
                ],
                Some((format!("{base}/alerts"), "See the alerts")),
            )
        }
        "welcome" => {
            let link = if var("login_link").is_empty() {
                format!("{base}/")
            } else {
                var("login_link").to_string()
            };
            (
                format!("Welcome to Tocsin on {server}"),
                "ok",
                vec![
                    hello.clone(),
                    format!(
                        "An account was created for you on {server}. You can sign in with the user name {}.",
                        var("username")
                    ),
                ],
                vec![],
                Some((link, "Sign in")),
            )
        }
        "password_reset" => {
            let link = label(vars, "reset_link").ok_or("missing variable reset_link")?;
            let expires = if var("expires").is_empty() {
                "soon".to_string()
            } else {
                format!("at {}", var("expires"))
            };
            (
                format!("Reset your Tocsin password on {server}"),
                "info",
                vec![
                    hello.clone(),
                    format!(
                        "Someone asked to reset the password of {}. The link below works once and expires {expires}. If it was not you, ignore this message.",
                        var("username")
                    ),
                ],
                vec![],
                Some((link.to_string(), "Choose a new password")),
            )
        }
        "account_locked" => (
            format!("Your Tocsin account on {server} is locked"),
            "critical",
            vec![
                hello.clone(),
                format!(
                    "The account {} was locked{}.",
                    var("username"),
                    if var("reason").is_empty() {
                        String::new()
                    } else {
                        format!(": {}", var("reason"))
                    }
                ),
            ],
            vec![("Unlocks", var("unlock_at").to_string())],
            None,
        ),
        "custom" => {
            let subject = label(vars, "subject").ok_or("missing variable subject")?;
            let link = (!var("link").is_empty()).then(|| (var("link").to_string(), "Open"));
            (
                subject.to_string(),
                "neutral",
                vec![var("message").to_string()],
                vec![],
                link,
            )
        }
        other => return Err(format!("unsupported kind `{other}`")),
    };
    let rows_ref: Vec<(&str, &str)> = rows.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut body: String = paragraphs.iter().map(|p| para(p)).collect();
    body.push_str(&facts(&rows_ref));
    let html = card(
        colour(tone),
        &subject,
        &body,
        button.as_ref().map(|(h, l)| (h.as_str(), *l)),
        server,
    );
    let mut text = String::new();
    for p in paragraphs.iter().filter(|p| !p.is_empty()) {
        text.push_str(p);
        text.push_str("\n\n");
    }
    for (k, v) in rows.iter().filter(|(_, v)| !v.is_empty()) {
        text.push_str(&format!("{k}: {v}\n"));
    }
    if let Some((href, l)) = &button {
        text.push_str(&format!("\n{l}: {href}\n"));
    }
    Ok(Rendered {
        subject: subject.replace(['\r', '\n'], " "),
        html,
        text,
    })
}

impl Guest for Messages {
    fn render(kind: String, vars: Labels) -> Result<Rendered, String> {
        render(&kind, &vars)
    }
}

export!(Messages);

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
    fn every_kind_renders_with_its_facts() {
        let base = [
            ("server_name", "hq"),
            ("base_url", "http://x/"),
            ("username", "ada"),
            ("display_name", "Ada"),
        ];
        let with = |extra: &[(&str, &str)]| {
            let mut all = v(&base);
            all.extend(v(extra));
            all
        };
        let r = render(
            "maintenance",
            &with(&[
                ("title", "DB upgrade"),
                ("starts", "02:00"),
                ("message", "Short outage"),
            ]),
        )
        .expect("maintenance");
        assert_eq!(r.subject, "[MAINTENANCE] DB upgrade on hq");
        assert!(r.text.contains("Starts: 02:00") && r.html.contains("Short outage"));
        let r = render(
            "daily_digest",
            &with(&[
                ("firing_count", "2"),
                ("fired", "5"),
                (
                    "alerts",
                    r#"[{"name":"cpu-high","severity":"warning","summary":"hot"}]"#,
                ),
            ]),
        )
        .expect("digest");
        assert_eq!(
            r.subject,
            "[DIGEST] hq: 2 firing, 5 fired in the last 24 hours"
        );
        assert!(r.text.contains("cpu-high (warning): hot"));
        let r = render("welcome", &with(&[])).expect("welcome");
        assert!(r.text.contains("Hello Ada,") && r.text.contains("http://x/"));
        let r =
            render("password_reset", &with(&[("reset_link", "http://x/r/abc")])).expect("reset");
        assert!(r.html.contains("http://x/r/abc"));
        assert!(
            render("password_reset", &with(&[])).is_err(),
            "no link, no message"
        );
        let r = render("account_locked", &with(&[("reason", "5 failed logins")])).expect("locked");
        assert!(r.text.contains("5 failed logins"));
        let r = render(
            "custom",
            &with(&[("subject", "Hi\r\nBcc: x"), ("message", "<b>")]),
        )
        .expect("custom");
        assert_eq!(r.subject, "Hi  Bcc: x");
        assert!(r.html.contains("&lt;b&gt;"));
        assert!(render("server_alert", &with(&[])).is_err());
    }
}
