//! The embedded MQTT broker (rumqttd) `tocsin run` starts by default, so a fleet needs
//! nothing else installed.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::FleetError;

/// Start the broker on `listen` on its own thread (rumqttd blocks and has no shutdown:
/// it lives as long as the process). `users` empty: anonymous clients. Returns once it
/// accepts connections.
pub fn start(
    listen: SocketAddr,
    users: &std::collections::BTreeMap<String, String>,
    max_payload_bytes: usize,
) -> Result<(), FleetError> {
    // rumqttd reports a bind failure only in its log: find out first.
    drop(
        TcpListener::bind(listen)
            .map_err(|e| FleetError::Broker(format!("mqtt.listen {listen}: {e}")))?,
    );
    let server = ServerSettings {
        name: "v4-1".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 5000,
            max_payload_size: max_payload_bytes,
            max_inflight_count: 10_000,
            auth: (!users.is_empty()).then(|| users.clone().into_iter().collect()),
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 10_000,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("v4-1".to_string(), server)])),
        ..Default::default()
    };
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "the embedded MQTT broker stopped");
            }
        })
        .map_err(|e| FleetError::Broker(format!("starting the broker thread: {e}")))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            return Err(FleetError::Broker(format!(
                "the embedded broker did not start listening on {listen}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::info!(%listen, auth = !users.is_empty(), "embedded MQTT broker listening");
    Ok(())
}
