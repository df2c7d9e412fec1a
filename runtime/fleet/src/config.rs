//! The `[mqtt]` section: the embedded broker, or an external one, the fleets' topic
//! prefixes, liveness timeouts and which clients keep their INFO logs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// MQTT fleet settings.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Receive the fleet over MQTT at all.
    pub enabled: bool,
    /// Start the embedded broker (rumqttd) on `listen`. Off: connect to `broker`.
    pub embedded: bool,
    /// Where the embedded broker listens (loopback by default; give clients `users` before
    /// opening it to the network).
    pub listen: SocketAddr,
    /// Username → password the embedded broker accepts; empty: anonymous.
    pub users: BTreeMap<String, String>,
    /// The broker Tocsin subscribes to, `host:port` (default: the embedded one).
    pub broker: Option<String>,
    /// Username for `broker`.
    pub username: Option<String>,
    /// Password for `broker`.
    pub password: Option<String>,
    /// Tocsin's MQTT client id (a persistent session: messages queued while it is down are
    /// delivered when it returns).
    pub client_id: String,
    /// Topic prefixes of fleets: clients publish under `PREFIX/CLIENT_ID/...`.
    pub prefixes: Vec<String>,
    /// A client with no heartbeat for this long is `stale`.
    #[serde(with = "humantime_serde")]
    pub stale_after: Duration,
    /// ... and for this long `offline`.
    #[serde(with = "humantime_serde")]
    pub offline_after: Duration,
    /// How often liveness is swept and `client_up` written.
    #[serde(with = "humantime_serde")]
    pub liveness_interval: Duration,
    /// Clients whose INFO and DEBUG logs are kept (others: WARN and ERROR only).
    pub debug_clients: Vec<String>,
    /// Largest payload accepted (bytes); larger messages are counted as malformed.
    pub max_payload_bytes: usize,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            enabled: true,
            embedded: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            users: BTreeMap::new(),
            broker: None,
            username: None,
            password: None,
            client_id: "tocsin-server".into(),
            prefixes: vec!["tocsin".into()],
            stale_after: Duration::from_secs(60),
            offline_after: Duration::from_secs(180),
            liveness_interval: Duration::from_secs(15),
            debug_clients: Vec::new(),
            max_payload_bytes: 1 << 20,
        }
    }
}

impl MqttConfig {
    /// The broker to subscribe to: `broker`, or the embedded one (over loopback when it
    /// listens on every address).
    pub fn broker_addr(&self) -> String {
        self.broker.clone().unwrap_or_else(|| {
            let mut at = self.listen;
            if at.ip().is_unspecified() {
                at.set_ip(if at.is_ipv4() {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                });
            }
            at.to_string()
        })
    }

    /// Check what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.prefixes.is_empty() {
            return Err("mqtt.prefixes: at least one prefix".into());
        }
        for p in &self.prefixes {
            if p.is_empty() || p.contains(['+', '#']) || p.starts_with('/') || p.ends_with('/') {
                return Err(format!(
                    "mqtt.prefixes: `{p}` must be a non-empty topic without wildcards or outer `/`"
                ));
            }
        }
        for (i, p) in self.prefixes.iter().enumerate() {
            if let Some(q) = self.prefixes[..i].iter().find(|q| {
                *q == p || p.starts_with(&format!("{q}/")) || q.starts_with(&format!("{p}/"))
            }) {
                return Err(format!("mqtt.prefixes: `{p}` overlaps `{q}`"));
            }
        }
        let id_ok = (1..=64).contains(&self.client_id.len())
            && !self.client_id.contains(['/', '+', '#', '$'])
            && self.client_id.chars().all(|c| c.is_ascii_graphic());
        if !id_ok {
            return Err(format!(
                "mqtt.client_id `{}`: 1-64 printable characters without `/ + # $`",
                self.client_id.escape_default()
            ));
        }
        if self.username.is_some() != self.password.is_some() {
            return Err("mqtt.username and mqtt.password go together".into());
        }
        if self.embedded && !self.listen.ip().is_loopback() && self.users.is_empty() {
            return Err(format!(
                "mqtt.listen {} reaches beyond this machine: give mqtt.users (anonymous clients only on loopback)",
                self.listen
            ));
        }
        for c in &self.debug_clients {
            crate::message::check_client(c).map_err(|e| format!("mqtt.debug_clients: {e}"))?;
        }
        if self.stale_after.is_zero() || self.offline_after <= self.stale_after {
            return Err("mqtt: need 0 < stale_after < offline_after".into());
        }
        if self.liveness_interval.is_zero() {
            return Err("mqtt.liveness_interval must be above 0".into());
        }
        if !self.embedded && self.broker.is_none() {
            return Err(
                "mqtt.broker: give the external broker (host:port) when embedded = false".into(),
            );
        }
        if let Some(b) = &self.broker
            && b.rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
        {
            return Err(format!(
                "mqtt.broker `{b}`: expected host:port (TLS brokers are not supported yet)"
            ));
        }
        if self.embedded && !self.users.is_empty() && self.broker.is_none() {
            match (&self.username, &self.password) {
                (Some(u), Some(p)) if self.users.get(u) == Some(p) => {}
                _ => {
                    return Err("mqtt.username/password: Tocsin's own login to the embedded broker, one of mqtt.users".into());
                }
            }
        }
        if self.max_payload_bytes == 0 {
            return Err("mqtt.max_payload_bytes must be above 0".into());
        }
        Ok(())
    }
}

impl std::fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttConfig")
            .field("enabled", &self.enabled)
            .field("embedded", &self.embedded)
            .field("listen", &self.listen)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("broker", &self.broker)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("client_id", &self.client_id)
            .field("prefixes", &self.prefixes)
            .field("stale_after", &self.stale_after)
            .field("offline_after", &self.offline_after)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(edit: impl FnOnce(&mut MqttConfig)) -> Result<(), String> {
        let mut c = MqttConfig::default();
        edit(&mut c);
        c.validate()
    }

    #[test]
    fn the_default_is_valid_and_mistakes_are_named() {
        assert_eq!(with(|_| {}), Ok(()));
        type Edit = Box<dyn FnOnce(&mut MqttConfig)>;
        let cases: [(&str, Edit); 9] = [
            ("prefixes", Box::new(|c| c.prefixes = vec!["a/#".into()])),
            (
                "overlaps",
                Box::new(|c| c.prefixes = vec!["a".into(), "a/b".into()]),
            ),
            ("client_id", Box::new(|c| c.client_id = String::new())),
            ("client_id", Box::new(|c| c.client_id = "a/b".into())),
            ("go together", Box::new(|c| c.username = Some("u".into()))),
            (
                "beyond this machine",
                Box::new(|c| c.listen = "0.0.0.0:1883".parse().expect("addr")),
            ),
            (
                "debug_clients",
                Box::new(|c| c.debug_clients = vec!["a b".into()]),
            ),
            ("stale_after", Box::new(|c| c.offline_after = c.stale_after)),
            (
                "own login",
                Box::new(|c| {
                    c.users.insert("dev".into(), "pw".into());
                }),
            ),
        ];
        for (want, edit) in cases {
            let err = with(edit).expect_err(want);
            assert!(err.contains(want), "{err} (wanted {want})");
        }
    }

    #[test]
    fn an_embedded_broker_on_every_address_is_reached_over_loopback() {
        let c = MqttConfig {
            listen: "0.0.0.0:1999".parse().expect("addr"),
            ..MqttConfig::default()
        };
        assert_eq!(c.broker_addr(), "127.0.0.1:1999");
    }
}
