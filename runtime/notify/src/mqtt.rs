//! The MQTT channel: a notification published (QoS 1, JSON) to the topic of a receiver's
//! `mqtt://[user[:password]@]host[:port]/topic/levels` address (user and password
//! percent-encoded); the broker's PUBACK is acceptance; a refused login is permanent. One short connection per message. (TLS brokers come with the fleet's MQTT
//! settings.)

use std::time::{Duration, Instant};

use rumqttc::{Client, ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet, QoS};

use crate::send::{Failure, redact};

/// A parsed `mqtt://` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Broker host.
    pub host: String,
    /// Broker port (1883 by default).
    pub port: u16,
    /// Topic to publish to.
    pub topic: String,
    /// Login, if any.
    pub credentials: Option<(String, String)>,
}

/// Parse an `mqtt://` address; the error says what is wrong (without the password).
pub fn parse(url: &str) -> Result<Target, String> {
    let shown = redact(url);
    let rest = url
        .strip_prefix("mqtt://")
        .ok_or_else(|| format!("`{shown}`: an MQTT receiver address starts with mqtt://"))?;
    // User info ends at the last `@` (percent-encoded, so a password may hold anything).
    let (login, after) = match rest.rsplit_once('@') {
        Some((login, after)) => (Some(login), after),
        None => (None, rest),
    };
    let (hostport, topic) = after
        .split_once('/')
        .ok_or_else(|| format!("`{shown}`: no topic (mqtt://host[:port]/topic)"))?;
    if topic.is_empty() || topic.contains(['+', '#']) {
        return Err(format!(
            "`{shown}`: the topic must be non-empty, without wildcards"
        ));
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| format!("`{shown}`: the login is not UTF-8 once decoded"))
    };
    let credentials = match login {
        Some(login) => {
            let (user, password) = login.split_once(':').unwrap_or((login, ""));
            Some((decode(user)?, decode(password)?))
        }
        None => None,
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse()
                .map_err(|_| format!("`{shown}`: the port is not a number"))?,
        ),
        None => (hostport, 1883),
    };
    if host.is_empty() {
        return Err(format!("`{shown}`: no host"));
    }
    Ok(Target {
        host: host.to_string(),
        port,
        topic: topic.to_string(),
        credentials,
    })
}

/// Publish `payload` to `url` and wait for the broker's acknowledgement.
pub fn publish(url: &str, payload: &[u8], timeout: Duration) -> Result<String, Failure> {
    let target = parse(url).map_err(Failure::Permanent)?;
    let shown = redact(url);
    let mut options = MqttOptions::new(
        format!("tocsin-notify-{}-{}", std::process::id(), fastrand::u32(..)),
        target.host.clone(),
        target.port,
    );
    options.set_keep_alive(Duration::from_secs(30));
    // (incoming, outgoing): nothing comes in but acknowledgements.
    options.set_max_packet_size(64 * 1024, payload.len() + target.topic.len() + 1024);
    if let Some((user, password)) = &target.credentials {
        options.set_credentials(user.clone(), password.clone());
    }
    let (client, mut connection) = Client::new(options, 10);
    client
        .publish(
            target.topic.clone(),
            QoS::AtLeastOnce,
            false,
            payload.to_vec(),
        )
        .map_err(|e| Failure::Retry(format!("{shown}: {e}")))?;
    let deadline = Instant::now() + timeout;
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Err(Failure::Retry(format!(
                "{shown}: no PUBACK within {timeout:?}"
            )));
        }
        match connection.recv_timeout(left) {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => {
                break Ok(format!("PUBACK from {}:{}", target.host, target.port));
            }
            Ok(Ok(_)) => {}
            Ok(Err(ConnectionError::ConnectionRefused(
                code @ (ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized),
            ))) => break Err(Failure::Permanent(format!("{shown}: refused: {code:?}"))),
            Ok(Err(e)) => break Err(Failure::Retry(format!("{shown}: {e}"))),
            Err(e) => break Err(Failure::Retry(format!("{shown}: {e:?}"))),
        }
    };
    let _ = client.disconnect();
    // Let the DISCONNECT go out; the connection is dropped either way.
    let _ = connection.recv_timeout(Duration::from_millis(100));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_or_say_why_not() {
        assert_eq!(
            parse("mqtt://u:p@broker:1884/alerts/ops"),
            Ok(Target {
                host: "broker".into(),
                port: 1884,
                topic: "alerts/ops".into(),
                credentials: Some(("u".into(), "p".into())),
            })
        );
        assert_eq!(parse("mqtt://broker/a").map(|t| t.port), Ok(1883));
        for bad in [
            "http://x/a",
            "mqtt://broker",
            "mqtt://broker/",
            "mqtt://b/a/#",
            "mqtt://b:x/a",
            "mqtt:///a",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let e = parse("mqtt://u:secret@b:x/a").expect_err("bad port");
        assert!(!e.contains("secret"), "{e}");
        let e = parse("mqtt://u:pa/ss@b:x/a").expect_err("bad port");
        assert!(!e.contains("pa"), "{e}");
        // A password with `/`, `@` and `:` in it, percent-encoded.
        assert_eq!(
            parse("mqtt://ops:p%2F%40%3Aw@b/a").map(|t| t.credentials),
            Ok(Some(("ops".into(), "p/@:w".into())))
        );
    }
}
