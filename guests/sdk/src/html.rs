//! Mail-safe HTML for template guests: escaping and one card layout with inlined CSS
//! (tables, no stylesheets, no scripts), as common mail clients render it.

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

/// Header colours by state: critical, warning, info, resolved/ok, neutral.
pub fn colour(state: &str) -> &'static str {
    match state {
        "critical" => "#c62828",
        "warning" => "#ef6c00",
        "info" => "#1565c0",
        "resolved" | "ok" => "#2e7d32",
        _ => "#37474f",
    }
}

/// A card: coloured header line `title`, then `body` (already HTML), then an optional
/// button to `link`, then a footer naming `server`.
pub fn card(
    colour: &str,
    title: &str,
    body: &str,
    link: Option<(&str, &str)>,
    server: &str,
) -> String {
    let button = link
        .map(|(href, label)| {
            format!(
                r#"<p style="margin:24px 0 0 0"><a href="{}" style="background:{colour};color:#ffffff;padding:10px 16px;border-radius:4px;text-decoration:none;display:inline-block">{}</a></p>"#,
                escape(href),
                escape(label)
            )
        })
        .unwrap_or_default();
    format!(
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"></head><body style="margin:0;padding:24px;background:#f4f5f7;font-family:Arial,Helvetica,sans-serif;color:#1f2328">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="max-width:640px;margin:0 auto;background:#ffffff;border-radius:6px;border-collapse:collapse">
<tr><td style="background:{colour};color:#ffffff;padding:16px 24px;font-size:18px;font-weight:bold;border-radius:6px 6px 0 0">{}</td></tr>
<tr><td style="padding:24px;font-size:14px;line-height:1.5">{body}{button}</td></tr>
<tr><td style="padding:12px 24px;color:#8c959f;font-size:12px;border-top:1px solid #eaeef2">Tocsin on {}</td></tr>
</table></body></html>"#,
        escape(title),
        escape(server)
    )
}

/// A two-column table of `(label, value)` rows (values escaped).
pub fn facts(rows: &[(&str, &str)]) -> String {
    let mut out = String::from(
        r#"<table role="presentation" style="border-collapse:collapse;font-size:14px">"#,
    );
    for (k, v) in rows.iter().filter(|(_, v)| !v.is_empty()) {
        out.push_str(&format!(
            r#"<tr><td style="padding:4px 16px 4px 0;color:#57606a;vertical-align:top">{}</td><td style="padding:4px 0">{}</td></tr>"#,
            escape(k),
            escape(v)
        ));
    }
    out.push_str("</table>");
    out
}

/// A paragraph of escaped text (empty for empty text).
pub fn para(text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    format!(
        r#"<p style="margin:0 0 12px 0">{}</p>"#,
        escape(text).replace('\n', "<br>")
    )
}
