//! Settings of the exporters, as the `[snmp]`, `[remote_write]` and `[alertmanager]`
//! sections of Tocsin's configuration.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The SNMPv2c agent.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnmpConfig {
    /// Serve SNMP.
    pub enabled: bool,
    /// UDP address to listen on (161 needs root; 1161 does not).
    pub listen: SocketAddr,
    /// The read-only community; required when enabled (requests with another one are
    /// dropped). Never logged.
    pub community: String,
    /// Root of Tocsin's tree. The default is IANA's example enterprise (32473, RFC 5612);
    /// use your organisation's private enterprise number in production.
    pub base_oid: String,
}

impl Default for SnmpConfig {
    fn default() -> Self {
        SnmpConfig {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 1161)),
            community: String::new(),
            base_oid: "1.3.6.1.4.1.32473.1".into(),
        }
    }
}

/// Prometheus remote_write of every stored sample.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteConfig {
    /// Receivers (`http://victoria:8428/api/v1/write`, Mimir's `/api/v1/push`, ...); each
    /// gets every sample through its own queue. Empty: off.
    pub urls: Vec<String>,
    /// A bearer token sent to every receiver (never logged).
    pub bearer_token: String,
    /// Samples queued per receiver while it is slow or down; past this the oldest are
    /// dropped and counted (`tocsin_remote_write_dropped_samples_total`).
    pub queue_samples: usize,
    /// Most samples in one request.
    pub batch_samples: usize,
    /// Send at least this often while samples wait.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Longest wait between retries of a failing batch (backoff doubles from 100 ms).
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Timeout of one request.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        RemoteWriteConfig {
            urls: Vec::new(),
            bearer_token: String::new(),
            queue_samples: 1_000_000,
            batch_samples: 5_000,
            flush_interval: Duration::from_secs(5),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Forwarding of alerts to an external Alertmanager (cluster).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    /// Alertmanager base URLs (`http://am:9093`); every one gets every alert, as
    /// Prometheus does for a cluster. Empty: off.
    pub urls: Vec<String>,
    /// How often firing alerts are sent again (Alertmanager expires alerts not resent).
    #[serde(with = "humantime_serde")]
    pub resend: Duration,
    /// Timeout of one request.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig {
            urls: Vec::new(),
            resend: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        }
    }
}

fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() { "" } else { "<redacted>" }
}

/// Shown without the community (a password).
impl std::fmt::Debug for SnmpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnmpConfig")
            .field("enabled", &self.enabled)
            .field("listen", &self.listen)
            .field("community", &redacted(&self.community))
            .field("base_oid", &self.base_oid)
            .finish()
    }
}

/// Shown without the bearer token, and URLs without their user information.
impl std::fmt::Debug for RemoteWriteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|u| shown_url(u)).collect();
        f.debug_struct("RemoteWriteConfig")
            .field("urls", &urls)
            .field("bearer_token", &redacted(&self.bearer_token))
            .field("queue_samples", &self.queue_samples)
            .field("batch_samples", &self.batch_samples)
            .field("flush_interval", &self.flush_interval)
            .field("max_backoff", &self.max_backoff)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Shown with URLs without their user information.
impl std::fmt::Debug for AlertmanagerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|u| shown_url(u)).collect();
        f.debug_struct("AlertmanagerConfig")
            .field("urls", &urls)
            .field("resend", &self.resend)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A URL without its user information (a credential), for labels, logs and `Debug`.
pub fn shown_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            // The authority ends at the first `/`, `?` or `#`; its user information at
            // the last `@` in it (a password may hold an unencoded `@`).
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let host_start = rest[..authority_end].rfind('@').map_or(0, |at| at + 1);
            format!("{scheme}://{}", &rest[host_start..])
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let rw = RemoteWriteConfig {
            urls: vec!["https://u:pw@vm:8428/api/v1/write".into()],
            bearer_token: "tok3n".into(),
            ..Default::default()
        };
        let snmp = SnmpConfig {
            community: "c0mmunity".into(),
            ..Default::default()
        };
        let shown = format!("{rw:?} {snmp:?}");
        for secret in ["tok3n", "pw", "c0mmunity"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("https://vm:8428/api/v1/write"), "{shown}");
        assert_eq!(shown_url("http://vm:8428/a@b"), "http://vm:8428/a@b");
        assert_eq!(shown_url("http://u:p@ss@vm:8428/w"), "http://vm:8428/w");
        let am = AlertmanagerConfig {
            urls: vec!["http://u:s3cr3t@am:9093".into()],
            ..Default::default()
        };
        assert!(!format!("{am:?}").contains("s3cr3t"));
        assert_eq!(shown_url("vm"), "vm");
    }
}
