//! The MQTT fleet: the embedded broker, Tocsin's subscriber to the client topic scheme
//! (`PREFIX/ID/metrics|logs/LEVEL|health|heartbeat|status`), client liveness, and the
//! counters of what arrived and what was malformed.

pub mod broker;
pub mod config;
pub mod ingest;
pub mod liveness;
pub mod message;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use config::MqttConfig;
pub use ingest::HEALTH_NAMESPACE;
pub use message::{Health, MessageError};
use tocsin_store::Store;

/// How many malformed messages are kept for `GET /api/clients` (newest).
pub const KEPT_ERRORS: usize = 50;

/// What went wrong starting the fleet.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A setting is wrong.
    #[error("{0}")]
    Config(String),
    /// The broker or a thread could not start.
    #[error("{0}")]
    Broker(String),
}

/// A malformed message: when, on which topic, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Malformed {
    /// When it arrived (ms).
    pub at_ms: i64,
    /// Its topic.
    pub topic: String,
    /// What is wrong with it.
    pub error: String,
}

/// Counters of the fleet ingest.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connected to the broker now.
    pub connected: AtomicBool,
    /// When the current connection was made (ms).
    pub connected_at_ms: AtomicI64,
    /// Connections made so far (tags messages with the connection they came on).
    pub generation: AtomicU64,
    /// Messages received.
    pub received: AtomicU64,
    /// Samples stored.
    pub samples: AtomicU64,
    /// Log records stored.
    pub logs: AtomicU64,
    /// Heartbeats (and `online` statuses) recorded.
    pub heartbeats: AtomicU64,
    /// INFO/DEBUG client logs dropped (debug not enabled for the client).
    pub dropped_info: AtomicU64,
    /// Messages (or samples in them) refused.
    pub malformed: AtomicU64,
    /// Batches the store could not write (left unacknowledged for redelivery).
    pub store_errors: AtomicU64,
    /// The newest malformed messages.
    pub recent: Mutex<VecDeque<Malformed>>,
}

impl Stats {
    /// Count a malformed message and keep it for the API.
    pub fn malformed(&self, topic: &str, error: &str, at_ms: i64) {
        let n = self.malformed.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= 10 || n.is_power_of_two() {
            tracing::warn!(%topic, %error, total = n, "malformed fleet message");
        }
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == KEPT_ERRORS {
            recent.pop_front();
        }
        recent.push_back(Malformed {
            at_ms,
            topic: topic.chars().take(256).collect(),
            error: error.chars().take(512).collect(),
        });
    }

    /// The kept malformed messages, newest first.
    pub fn recent(&self) -> Vec<Malformed> {
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .rev()
            .cloned()
            .collect()
    }
}

/// Start the fleet: the embedded broker (when configured), the subscriber and the
/// liveness sweep. Returns the counters.
pub fn start(
    config: &MqttConfig,
    store: Arc<Store>,
    stop: Arc<AtomicBool>,
) -> Result<Arc<Stats>, FleetError> {
    config.validate().map_err(FleetError::Config)?;
    if config.embedded {
        broker::start(config.listen, &config.users, config.max_payload_bytes)?;
    }
    let stats = Arc::new(Stats::default());
    ingest::spawn(config, store.clone(), stats.clone(), stop.clone())?;
    liveness::spawn(config, store, stats.clone(), stop)?;
    Ok(stats)
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
