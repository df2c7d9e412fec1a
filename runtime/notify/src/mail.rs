//! Mail through lettre's SMTP transport: STARTTLS, TLS or plain, optional login, a
//! multipart/alternative body (text first, then HTML), attachments, several recipients, and
//! the server's acceptance returned so the outbox can record it.

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use crate::config::{MailConfig, Security};

/// A mail failure, with whether retrying could help.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The message could not be built (bad address, header).
    #[error("invalid message: {0}")]
    Invalid(String),
    /// The server could not be reached, or refused the session or the message for now.
    #[error("SMTP: {0}")]
    Smtp(String),
    /// The server refused this message for good (550-554): retrying cannot help.
    #[error("SMTP: refused: {0}")]
    Rejected(String),
    /// The server refused this message for now (a 4xx answer to it, e.g. mailbox full):
    /// retry it, while other mail goes on.
    #[error("SMTP: deferred: {0}")]
    Deferred(String),
    /// Mail is not configured.
    #[error("mail is not configured: {0}")]
    NotConfigured(String),
}

/// A file sent along.
#[derive(Debug, Clone)]
pub struct FileAttachment {
    /// File name shown to the reader.
    pub name: String,
    /// MIME type, e.g. `image/png`.
    pub content_type: String,
    /// Contents.
    pub bytes: Vec<u8>,
}

/// A mail to send.
#[derive(Debug, Clone, Default)]
pub struct Email {
    /// Recipients.
    pub to: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Plain-text part.
    pub text: String,
    /// HTML part.
    pub html: String,
    /// Attachments.
    pub attachments: Vec<FileAttachment>,
    /// Images the HTML shows inline, as `cid:{name}`.
    pub inline: Vec<FileAttachment>,
    /// A stable Message-ID (`<...>`), so a receiver can recognise a repeat.
    pub message_id: Option<String>,
}

/// An attachment's body in base64: lettre would send ASCII bytes as 7bit with their bare
/// LF line ends, which SMTP servers refuse as one over-long line.
fn base64(a: &FileAttachment) -> Body {
    match Body::new_with_encoding(a.bytes.clone(), ContentTransferEncoding::Base64) {
        Ok(body) => body,
        // Base64 takes any bytes; `new` picks an encoding itself should that ever change.
        Err(bytes) => Body::new(bytes),
    }
}

/// An SMTP client over one configuration.
pub struct Mailer {
    transport: SmtpTransport,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from).finish()
    }
}

impl Mailer {
    /// A client for `config` (no connection is made yet).
    pub fn new(config: &MailConfig) -> Result<Mailer, MailError> {
        if config.from.is_empty() {
            return Err(MailError::NotConfigured("mail.from is empty".into()));
        }
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| MailError::Invalid(format!("mail.from `{}`: {e}", config.from)))?;
        let endpoint = config.endpoint().map_err(MailError::NotConfigured)?;
        let tls = || {
            TlsParameters::builder(endpoint.host.clone())
                .dangerous_accept_invalid_certs(config.accept_invalid_certs)
                .build()
                .map_err(|e| MailError::Smtp(format!("TLS setup: {e}")))
        };
        let mut builder = SmtpTransport::builder_dangerous(&endpoint.host)
            .port(endpoint.port)
            .timeout(Some(config.timeout));
        builder = match endpoint.security {
            Security::None => builder.tls(Tls::None),
            Security::Starttls => builder.tls(Tls::Required(tls()?)),
            Security::Tls => builder.tls(Tls::Wrapper(tls()?)),
        };
        if !config.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                config.username.clone(),
                config.password.0.clone(),
            ));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
        })
    }

    /// Connect and say hello, without sending anything.
    pub fn check(&self) -> Result<(), MailError> {
        match self.transport.test_connection() {
            Ok(true) => Ok(()),
            Ok(false) => Err(MailError::Smtp("the server did not answer NOOP".into())),
            Err(e) => Err(MailError::Smtp(e.to_string())),
        }
    }

    /// Build the MIME message.
    pub fn build(&self, email: &Email) -> Result<Message, MailError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(email.subject.clone());
        if email.to.is_empty() {
            return Err(MailError::Invalid("no recipient".into()));
        }
        for to in &email.to {
            let mailbox: Mailbox = to
                .parse()
                .map_err(|e| MailError::Invalid(format!("recipient `{to}`: {e}")))?;
            builder = builder.to(mailbox);
        }
        if let Some(id) = &email.message_id {
            builder = builder.message_id(Some(id.clone()));
        }
        let html = SinglePart::html(email.html.clone());
        let body = if email.inline.is_empty() {
            MultiPart::alternative()
                .singlepart(SinglePart::plain(email.text.clone()))
                .singlepart(html)
        } else {
            let mut related = MultiPart::related().singlepart(html);
            for a in &email.inline {
                let content_type = ContentType::parse(&a.content_type)
                    .map_err(|e| MailError::Invalid(format!("{}: {e}", a.content_type)))?;
                related = related.singlepart(
                    Attachment::new_inline(a.name.clone()).body(base64(a), content_type),
                );
            }
            MultiPart::alternative()
                .singlepart(SinglePart::plain(email.text.clone()))
                .multipart(related)
        };
        let message = if email.attachments.is_empty() {
            builder.multipart(body)
        } else {
            let mut mixed = MultiPart::mixed().multipart(body);
            for a in &email.attachments {
                let content_type = ContentType::parse(&a.content_type)
                    .map_err(|e| MailError::Invalid(format!("{}: {e}", a.content_type)))?;
                mixed =
                    mixed.singlepart(Attachment::new(a.name.clone()).body(base64(a), content_type));
            }
            builder.multipart(mixed)
        };
        message.map_err(|e| MailError::Invalid(e.to_string()))
    }

    /// Send; returns the server's reply to the message (`250 ...`).
    pub fn send(&self, email: &Email) -> Result<String, MailError> {
        let message = self.build(email)?;
        let response = self.transport.send(&message).map_err(|e| {
            let code = e.status().map(|c| c.to_string());
            match code.as_deref() {
                Some("550" | "551" | "552" | "553" | "554") => MailError::Rejected(e.to_string()),
                // 421 (closing) and 454 (TLS unavailable) are about the session.
                Some(c) if c.starts_with('4') && c != "421" && c != "454" => {
                    MailError::Deferred(e.to_string())
                }
                // No answer (connection, TLS, timeout) or a session-level refusal (5xx
                // syntax, 530 STARTTLS required, 535 login): the server, for everyone.
                _ => MailError::Smtp(e.to_string()),
            }
        })?;
        let text: Vec<&str> = response.message().collect();
        Ok(format!("{} {}", response.code(), text.join(" ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailer() -> Mailer {
        let config = MailConfig {
            from: "Tocsin <tocsin@example.org>".into(),
            host: "127.0.0.1".into(),
            port: 2525,
            security: Security::None,
            ..MailConfig::default()
        };
        Mailer::new(&config).expect("mailer")
    }

    #[test]
    fn text_comes_before_html_and_attachments_follow() {
        let m = mailer()
            .build(&Email {
                to: vec!["a@example.org".into(), "b@example.org".into()],
                subject: "s".into(),
                text: "plain body".into(),
                html: "<p>html body</p>".into(),
                attachments: vec![FileAttachment {
                    name: "chart.png".into(),
                    content_type: "image/png".into(),
                    bytes: vec![0x89, b'P', b'N', b'G'],
                }],
                inline: vec![FileAttachment {
                    name: "chart".into(),
                    content_type: "image/png".into(),
                    bytes: vec![0x89, b'P', b'N', b'G'],
                }],
                message_id: Some("<outbox-1@tocsin>".into()),
            })
            .expect("built");
        let raw = String::from_utf8(m.formatted()).expect("utf8");
        let (plain, html) = (
            raw.find("text/plain").expect("plain"),
            raw.find("text/html").expect("html"),
        );
        assert!(plain < html, "{raw}");
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("multipart/mixed"));
        assert!(raw.contains("multipart/related"));
        assert!(raw.contains("Content-ID: <chart>"), "{raw}");
        assert!(raw.contains("chart.png"));
        assert!(raw.contains("Message-ID: <outbox-1@tocsin>"));
        assert!(raw.contains("b@example.org"));
    }

    #[test]
    fn every_line_fits_smtp_whatever_the_attachment() {
        // A PEM file: ASCII with bare LF line ends, which lettre would send as 7bit.
        let pem = "-----BEGIN CERTIFICATE-----\n".to_string() + &"QUJD".repeat(16) + "\n";
        for bytes in [
            pem.repeat(40).into_bytes(),
            (0..=255u8).cycle().take(5000).collect(),
        ] {
            let m = mailer()
                .build(&Email {
                    to: vec!["a@example.org".into()],
                    subject: "s".into(),
                    text: "t".into(),
                    html: "h".into(),
                    attachments: vec![FileAttachment {
                        name: "cert.pem".into(),
                        content_type: "application/octet-stream".into(),
                        bytes,
                    }],
                    ..Email::default()
                })
                .expect("built");
            let raw = m.formatted();
            let bare_lf = raw.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r');
            assert!(!bare_lf, "every line ends in CRLF");
            let longest = raw.split(|b| *b == b'\n').map(<[u8]>::len).max();
            assert!(longest <= Some(999), "a line of {longest:?} bytes");
        }
    }

    #[test]
    fn bad_recipients_are_named() {
        let err = mailer()
            .build(&Email {
                to: vec!["nobody".into()],
                subject: "s".into(),
                ..Email::default()
            })
            .expect_err("an error");
        assert!(err.to_string().contains("nobody"), "{err}");
    }
}
