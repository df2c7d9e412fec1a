//! Notification settings: the `[mail]` table (SMTP server, provider presets, sender) and the
//! `[notify]` table (names and links in messages, retries, per-recipient rate limit,
//! per-kind toggles).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
pub use tocsin_alerting::Secret;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (port 587); refused if the server cannot.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption (a local relay or a test sink only).
    None,
}

/// A provider whose settings are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Pick the provider from the domain of `from` (gmail.com, outlook.com, ...), else custom.
    Auto,
    /// smtp.gmail.com:587, STARTTLS.
    Gmail,
    /// smtp-mail.outlook.com:587, STARTTLS.
    Outlook,
    /// smtp.office365.com:587, STARTTLS.
    Office365,
    /// smtp.mail.yahoo.com:587, STARTTLS.
    Yahoo,
    /// `host`, `port` and `security` as configured.
    Custom,
}

/// The `[mail]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// Provider preset; `auto` detects it from `from`'s domain.
    pub preset: Preset,
    /// SMTP server (custom preset, or a detected domain with no preset).
    pub host: String,
    /// SMTP port (0: the preset's, else 587 for starttls, 465 for tls, 25 for none).
    pub port: u16,
    /// `starttls`, `tls` or `none` (custom preset).
    pub security: Security,
    /// Login user name (empty: no authentication).
    pub username: String,
    /// Login password (an app password for Gmail/Yahoo). Never logged.
    pub password: Secret,
    /// Sender, `Name <address>` or `address`.
    pub from: String,
    /// Give up on one connection attempt after this long.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Accept invalid TLS certificates (a test server with a self-signed certificate).
    pub accept_invalid_certs: bool,
    /// Administrators' addresses.
    pub admins: Vec<String>,
    /// Send alert notifications only to `admins` (other recipients are refused, logged).
    pub alerts_admins_only: bool,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            preset: Preset::Auto,
            host: String::new(),
            port: 0,
            security: Security::Starttls,
            username: String::new(),
            password: Secret::default(),
            from: String::new(),
            timeout: Duration::from_secs(30),
            accept_invalid_certs: false,
            admins: Vec::new(),
            alerts_admins_only: false,
        }
    }
}

/// A resolved SMTP endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Security.
    pub security: Security,
}

fn preset_endpoint(preset: Preset) -> Option<(&'static str, u16, Security)> {
    Some(match preset {
        Preset::Gmail => ("smtp.gmail.com", 587, Security::Starttls),
        Preset::Outlook => ("smtp-mail.outlook.com", 587, Security::Starttls),
        Preset::Office365 => ("smtp.office365.com", 587, Security::Starttls),
        Preset::Yahoo => ("smtp.mail.yahoo.com", 587, Security::Starttls),
        Preset::Auto | Preset::Custom => return None,
    })
}

/// The preset a sender address implies.
pub fn detect_preset(from: &str) -> Preset {
    let address = from
        .rsplit_once('<')
        .map_or(from, |(_, a)| a.trim_end_matches('>'));
    let domain = address
        .rsplit_once('@')
        .map(|(_, d)| d.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match domain.as_str() {
        "gmail.com" | "googlemail.com" => Preset::Gmail,
        "outlook.com" | "hotmail.com" | "live.com" | "msn.com" => Preset::Outlook,
        "yahoo.com" | "ymail.com" | "rocketmail.com" => Preset::Yahoo,
        _ => Preset::Custom,
    }
}

impl MailConfig {
    /// Whether mail is configured at all (a sender and a server, given or implied).
    pub fn configured(&self) -> bool {
        !self.from.is_empty() && self.endpoint().is_ok()
    }

    /// The server to talk to, from the preset (or the sender's domain) and the overrides.
    pub fn endpoint(&self) -> Result<Endpoint, String> {
        let preset = match self.preset {
            Preset::Auto => detect_preset(&self.from),
            p => p,
        };
        let (host, port, security) = match preset_endpoint(preset) {
            Some((h, p, s)) if self.host.is_empty() => (h.to_string(), p, s),
            _ => {
                if self.host.is_empty() {
                    return Err("mail.host is empty and no preset applies to mail.from".into());
                }
                (self.host.clone(), 0, self.security)
            }
        };
        let port = match (self.port, port, security) {
            (p, _, _) if p != 0 => p,
            (_, p, _) if p != 0 => p,
            (_, _, Security::Starttls) => 587,
            (_, _, Security::Tls) => 465,
            (_, _, Security::None) => 25,
        };
        Ok(Endpoint {
            host,
            port,
            security,
        })
    }

    /// Check what can be checked without a connection.
    pub fn validate(&self) -> Result<(), String> {
        if self.from.is_empty() && self.host.is_empty() {
            return Ok(()); // not configured
        }
        self.from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| format!("mail.from `{}`: {e}", self.from))?;
        self.endpoint().map(|_| ())
    }
}

/// Retries of a failed delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// First wait after a failed attempt; doubled per attempt, with jitter.
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    /// Longest wait between attempts.
    #[serde(with = "humantime_serde")]
    pub max: Duration,
    /// A message still undelivered this long after it was queued is given up (failed).
    #[serde(with = "humantime_serde")]
    pub give_up_after: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(600),
            give_up_after: Duration::from_secs(3 * 24 * 3600),
        }
    }
}

/// Per-recipient rate limit: past it, a recipient's waiting messages are folded into one
/// digest rather than dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    /// At most this many messages per recipient and channel within `per`.
    pub max: u32,
    /// The window.
    #[serde(with = "humantime_serde")]
    pub per: Duration,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            max: 10,
            per: Duration::from_secs(600),
        }
    }
}

/// The `[notify]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Name of this installation in messages (empty: the host name).
    pub server_name: String,
    /// Address of the dashboard, for links in messages.
    pub base_url: String,
    /// Retries.
    pub retry: RetryConfig,
    /// Per-recipient rate limit.
    pub rate_limit: RateLimit,
    /// Per-kind toggles, e.g. `{ daily_digest = false }`; a kind not listed is sent.
    pub kinds: BTreeMap<String, bool>,
    /// How long a webhook or command may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The daily summary.
    pub daily_digest: crate::daily::DailyDigestConfig,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            server_name: String::new(),
            base_url: "http://127.0.0.1:8080".into(),
            retry: RetryConfig::default(),
            rate_limit: RateLimit::default(),
            kinds: BTreeMap::new(),
            timeout: Duration::from_secs(10),
            daily_digest: crate::daily::DailyDigestConfig::default(),
        }
    }
}

impl NotifyConfig {
    /// Whether messages of `kind` are sent.
    pub fn enabled(&self, kind: &str) -> bool {
        self.kinds.get(kind).copied().unwrap_or(true)
    }

    /// `server_name`, or the host name.
    pub fn server_name(&self) -> String {
        if !self.server_name.is_empty() {
            return self.server_name.clone();
        }
        std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "tocsin".into())
    }

    /// The installation as messages name and link it.
    pub fn site(&self) -> crate::vars::Site {
        crate::vars::Site {
            server_name: self.server_name(),
            base_url: self.base_url.trim_end_matches('/').to_string(),
            chart_key: Default::default(),
        }
    }

    /// Check values.
    pub fn validate(&self) -> Result<(), String> {
        if self.rate_limit.max == 0 || self.rate_limit.per.is_zero() {
            return Err("notify.rate_limit.max and per must be > 0".into());
        }
        if self.retry.initial.is_zero() || self.retry.max < self.retry.initial {
            return Err("notify.retry: initial must be > 0 and <= max".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_come_from_the_sender_domain() {
        let mut m = MailConfig {
            from: "Ops <ops@gmail.com>".into(),
            ..MailConfig::default()
        };
        assert_eq!(
            m.endpoint(),
            Ok(Endpoint {
                host: "smtp.gmail.com".into(),
                port: 587,
                security: Security::Starttls
            })
        );
        m.from = "a@yahoo.com".into();
        assert_eq!(
            m.endpoint().map(|e| e.host),
            Ok("smtp.mail.yahoo.com".into())
        );
        m.from = "a@example.org".into();
        assert!(m.endpoint().is_err(), "unknown domain needs a host");
        m.host = "mail.example.org".into();
        m.security = Security::Tls;
        assert_eq!(m.endpoint().map(|e| e.port), Ok(465));
        m.preset = Preset::Office365;
        m.host.clear();
        assert_eq!(
            m.endpoint().map(|e| e.host),
            Ok("smtp.office365.com".into())
        );
    }

    #[test]
    fn secrets_are_not_printed() {
        let m = MailConfig {
            password: Secret("hunter2".into()),
            ..MailConfig::default()
        };
        assert!(!format!("{m:?}").contains("hunter2"));
    }

    #[test]
    fn a_bad_sender_is_named() {
        let m = MailConfig {
            from: "not an address".into(),
            host: "x".into(),
            ..MailConfig::default()
        };
        assert!(m.validate().expect_err("an error").contains("mail.from"));
    }
}
