//! The web dashboard. For now one server-rendered Leptos page: the runtime's status and
//! its loaded guests. The full dashboard (hydration, live updates, charts) replaces it.
//!
//! This crate renders; it does not fetch. Callers pass a [`StatusView`] built from their
//! own state, so the page never reaches into the engine.

use leptos::prelude::*;

/// One loaded guest, as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestRow {
    /// Policy name.
    pub name: String,
    /// Guest kind (`collector`, `alert-rule`, ...).
    pub kind: String,
    /// Granted capabilities.
    pub grants: Vec<String>,
    /// Calls made.
    pub calls: u64,
    /// Faulted calls.
    pub faults: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
}

/// Everything the status page shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatusView {
    /// Runtime version.
    pub version: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Loaded guests.
    pub guests: Vec<GuestRow>,
    /// Policies that did not load, with reasons.
    pub errors: Vec<String>,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#1f2328;background:#f6f8fa}\
main{max-width:960px;margin:auto}table{border-collapse:collapse;width:100%;background:#fff}\
th,td{text-align:left;padding:.5rem .75rem;border-bottom:1px solid #d0d7de}\
.err{color:#b42318}.ok{color:#1a7f37}h1{margin-bottom:.25rem}.muted{color:#57606a}\
@media (prefers-color-scheme:dark){body{background:#0d1117;color:#e6edf3}table{background:#161b22}\
th,td{border-color:#30363d}.muted{color:#8b949e}}";

/// The status page as a complete HTML document.
pub fn status_page(view: &StatusView) -> String {
    let rows = view
        .guests
        .iter()
        .map(|g| {
            let state = match &g.last_error {
                Some(e) if g.faults > 0 => {
                    view! { <span class="err">{e.clone()}</span> }.into_any()
                }
                _ if g.calls == 0 => view! { <span class="muted">"idle"</span> }.into_any(),
                _ => view! { <span class="ok">"ok"</span> }.into_any(),
            };
            let grants = if g.grants.is_empty() {
                "none".to_string()
            } else {
                g.grants.join(", ")
            };
            view! {
                <tr>
                    <td>{g.name.clone()}</td>
                    <td>{g.kind.clone()}</td>
                    <td>{grants}</td>
                    <td>{g.calls}</td>
                    <td>{g.faults}</td>
                    <td>{state}</td>
                </tr>
            }
        })
        .collect_view();
    let errors = if view.errors.is_empty() {
        view! { <p class="muted">"none"</p> }.into_any()
    } else {
        let items = view
            .errors
            .iter()
            .map(|e| view! { <li class="err">{e.clone()}</li> })
            .collect_view();
        view! { <ul>{items}</ul> }.into_any()
    };
    let body = view! {
        <main>
            <h1>"Tocsin"</h1>
            <p class="muted">
                {format!("version {} · up {} s · ", view.version, view.uptime_seconds)}
                <a href="/api/guests">"guests API"</a>
            </p>
            <h2>"Guests"</h2>
            <table>
                <thead>
                    <tr>
                        <th>"Policy"</th>
                        <th>"Kind"</th>
                        <th>"Grants"</th>
                        <th>"Calls"</th>
                        <th>"Faults"</th>
                        <th>"State"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
            <h2>"Policy errors"</h2>
            {errors}
        </main>
    };
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Tocsin</title><style>{STYLE}</style></head><body>{}</body></html>",
        body.to_html()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_guests_errors_and_escapes() {
        let html = status_page(&StatusView {
            version: "0.1.0".into(),
            uptime_seconds: 42,
            guests: vec![GuestRow {
                name: "cpu-high".into(),
                kind: "alert-rule".into(),
                grants: vec![],
                calls: 7,
                faults: 1,
                last_error: Some("guest trapped: <boom>".into()),
            }],
            errors: vec!["junk.toml: not a valid wasm component".into()],
        });
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("cpu-high"));
        assert!(html.contains("alert-rule"));
        assert!(html.contains("guest trapped: &lt;boom&gt;"), "{html}");
        assert!(html.contains("junk.toml: not a valid wasm component"));
        assert!(html.contains("up 42 s"));
        assert!(
            !html.contains("<p class=\"muted\">none</p>"),
            "errors are listed"
        );
    }

    #[test]
    fn idle_guests_and_no_errors_say_so() {
        let html = status_page(&StatusView {
            guests: vec![GuestRow {
                name: "server-alert".into(),
                kind: "template".into(),
                grants: vec![],
                calls: 0,
                faults: 0,
                last_error: None,
            }],
            ..StatusView::default()
        });
        assert!(html.contains(">idle<"), "{html}");
        assert!(html.contains("<p class=\"muted\">none</p>"), "{html}");
    }
}
