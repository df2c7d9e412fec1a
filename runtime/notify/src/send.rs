//! Sending one rendered message on its channel, and what a failure means: `Permanent`
//! (retrying cannot help: a refused recipient, a rejected payload) or `Retry` (the
//! destination is down or busy; it is paused until the retry). Destinations that carry
//! credentials in their address (webhook URLs) are shown without them.

use std::time::Duration;

use serde_json::{Value, json};
use tocsin_alerting::Receiver;

use crate::mail::{Email, FileAttachment, MailError, Mailer};
use crate::render::Rendered;
use crate::vars::Site;

/// Content-ID of the chart in a mail.
pub const CHART_CID: &str = "chart";

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Retrying cannot help.
    Permanent(String),
    /// The destination (the SMTP server, a URL, a broker, a command) failed: retry, and
    /// pause the destination until then.
    Retry(String),
    /// Only this recipient was deferred: retry it, others on the destination go on.
    RetryRecipient(String),
}

impl Failure {
    /// The message.
    pub fn text(&self) -> &str {
        match self {
            Failure::Permanent(s) | Failure::Retry(s) | Failure::RetryRecipient(s) => s,
        }
    }
}

/// A URL without its path, query and user info (`https://hooks.slack.com/…`); anything
/// else as is.
pub fn redact(recipient: &str) -> String {
    let Some((scheme, rest)) = recipient.split_once("://") else {
        return recipient.to_string();
    };
    // User info ends at the last `@` (a password may hold `/`), the host at the next `/`.
    let (had_login, after_login) = match rest.rsplit_once('@') {
        Some((_, after)) => (true, after),
        None => (false, rest),
    };
    let host = after_login.split(['/', '?', '#']).next().unwrap_or("");
    if had_login || after_login.len() > host.len() {
        format!("{scheme}://{host}/…")
    } else {
        format!("{scheme}://{host}")
    }
}

/// `text` with every occurrence of `url` redacted.
pub fn redact_text(text: &str, url: &str) -> String {
    if url.is_empty() {
        return text.to_string();
    }
    text.replace(url, &redact(url))
}

/// Everything needed to send on any channel.
pub(crate) struct Channels {
    pub mailer: Result<Mailer, String>,
    pub mail_host: String,
    pub site: Site,
    pub timeout: Duration,
}

/// One message to send.
pub(crate) struct Outgoing<'a> {
    pub kind: &'a str,
    pub receiver: Option<&'a Receiver>,
    pub recipient: &'a str,
    pub rendered: &'a Rendered,
    pub payload: &'a Value,
    pub ids: &'a [u64],
    pub chart: Option<Vec<u8>>,
}

impl Channels {
    /// Send `m` on `channel`; the server's acceptance.
    pub fn send(&self, channel: &str, m: Outgoing) -> Result<String, Failure> {
        match channel {
            "mail" => {
                let mailer = self
                    .mailer
                    .as_ref()
                    .map_err(|e| Failure::Retry(e.clone()))?;
                let email = Email {
                    to: vec![m.recipient.to_string()],
                    subject: m.rendered.subject.clone(),
                    text: m.rendered.text.clone(),
                    html: m.rendered.html.clone(),
                    attachments: Vec::new(),
                    inline: m
                        .chart
                        .map(|bytes| FileAttachment {
                            name: CHART_CID.into(),
                            content_type: "image/png".into(),
                            bytes,
                        })
                        .into_iter()
                        .collect(),
                    // Stable across retries of the same message(s).
                    message_id: Some(format!(
                        "<tocsin.{}.{}@{}>",
                        m.ids.first().copied().unwrap_or(0),
                        m.ids.len(),
                        if self.mail_host.is_empty() {
                            "tocsin"
                        } else {
                            &self.mail_host
                        }
                    )),
                };
                mailer.send(&email).map_err(|e| match e {
                    MailError::Invalid(_) | MailError::Rejected(_) => {
                        Failure::Permanent(e.to_string())
                    }
                    MailError::Deferred(_) => Failure::RetryRecipient(e.to_string()),
                    MailError::Smtp(_) | MailError::NotConfigured(_) => {
                        Failure::Retry(e.to_string())
                    }
                })
            }
            "webhook" | "mqtt" if m.recipient.is_empty() => Err(Failure::Permanent(format!(
                "receiver has no {channel} address"
            ))),
            "webhook" => {
                let format = m.receiver.map_or("generic", |r| r.format.as_str());
                let key = m.receiver.map_or("", |r| r.routing_key.0.as_str());
                let bodies =
                    crate::webhook::bodies(format, key, m.kind, m.rendered, m.payload, &self.site);
                crate::webhook::post(m.recipient, &bodies, self.timeout)
            }
            "mqtt" => {
                let bodies = crate::webhook::bodies(
                    "generic", "", m.kind, m.rendered, m.payload, &self.site,
                );
                let body = bodies.first().map(Value::to_string).unwrap_or_default();
                crate::mqtt::publish(m.recipient, body.as_bytes(), self.timeout)
            }
            "pipe" => {
                if shlex::split(m.recipient).is_none_or(|a| a.is_empty()) {
                    return Err(Failure::Permanent(format!(
                        "`{}` is not a command line",
                        m.recipient
                    )));
                }
                let input = json!({
                    "kind": m.kind,
                    "subject": m.rendered.subject,
                    "text": m.rendered.text,
                    "payload": m.payload,
                    "ids": m.ids,
                });
                crate::command::run(m.recipient, input.to_string().as_bytes(), self.timeout)
                    .map_err(Failure::Retry)
            }
            other => Err(Failure::Permanent(format!(
                "no deliverer for channel `{other}`"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_lose_their_secret_parts() {
        assert_eq!(
            redact("https://hooks.slack.com/services/T0/B0/XXXX"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact("https://user:pw@example.org"),
            "https://example.org/…"
        );
        assert_eq!(redact("http://127.0.0.1:9/"), "http://127.0.0.1:9/…");
        assert_eq!(redact("http://127.0.0.1:9"), "http://127.0.0.1:9");
        assert_eq!(redact("mqtt://u:pa/ss@h:1/t"), "mqtt://h:1/…");
        assert_eq!(redact("ops@example.org"), "ops@example.org");
        assert_eq!(
            redact_text("error sending to https://h/x/y: refused", "https://h/x/y"),
            "error sending to https://h/…: refused"
        );
    }
}
