//! Tocsin's MQTT subscriber: one connection (persistent session, QoS 1, manual acks) to
//! the broker, subscribed to every fleet prefix; a writer thread turns messages into
//! samples, logs, heartbeats and health in batches and acknowledges each message only
//! after its batch is committed, so an acknowledged message survives `kill -9`.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

use rumqttc::{Client, Event, MqttOptions, Packet, Publish, QoS};
use tocsin_store::{Level, LogRecord, Sample, Store};

use crate::liveness::up_samples;
use crate::message::{self, Kind};
use crate::{FleetError, MqttConfig, Stats, now_ms};

/// Messages taken into one store batch.
const BATCH: usize = 4096;

/// The kv namespace of client health reports (not a valid guest name, so no guest's).
pub const HEALTH_NAMESPACE: &str = "@fleet/health";

/// Connect to the broker and start the reader and writer threads.
pub fn spawn(
    config: &MqttConfig,
    store: Arc<Store>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> Result<(), FleetError> {
    let addr = config.broker_addr();
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| FleetError::Config(format!("mqtt broker `{addr}`: expected host:port")))?;
    let mut options = MqttOptions::new(&config.client_id, host, port);
    options
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(5))
        .set_inflight(1000)
        .set_max_packet_size(config.max_payload_bytes + 1024, 64 * 1024);
    if let (Some(user), Some(pass)) = (&config.username, &config.password) {
        options.set_credentials(user, pass);
    }
    let (client, mut connection) = Client::new(options, 10_000);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Publish>(20_000);
    let filters: Vec<String> = config.prefixes.iter().map(|p| format!("{p}/+/#")).collect();
    let reader_client = client.clone();
    let (reader_stats, reader_stop) = (stats.clone(), stop.clone());
    std::thread::Builder::new()
        .name("mqtt-reader".into())
        .spawn(move || {
            read(
                &mut connection,
                &reader_client,
                &filters,
                tx,
                &reader_stats,
                &reader_stop,
            )
        })
        .map_err(|e| FleetError::Broker(format!("starting the MQTT reader: {e}")))?;
    let writer = Writer {
        store,
        stats,
        prefixes: config.prefixes.clone(),
        debug_clients: config.debug_clients.iter().cloned().collect(),
        max_payload: config.max_payload_bytes,
    };
    std::thread::Builder::new()
        .name("mqtt-writer".into())
        .spawn(move || writer.run(&rx, &client, &stop))
        .map_err(|e| FleetError::Broker(format!("starting the MQTT writer: {e}")))?;
    Ok(())
}

/// Drive the connection: subscribe on every (re)connect, hand publishes to the writer,
/// back off while the broker is unreachable.
fn read(
    connection: &mut rumqttc::Connection,
    client: &Client,
    filters: &[String],
    tx: SyncSender<Publish>,
    stats: &Stats,
    stop: &AtomicBool,
) {
    let mut backoff = Duration::from_millis(250);
    while !stop.load(Ordering::Relaxed) {
        match connection.recv_timeout(Duration::from_millis(500)) {
            Err(_) => continue, // timeout: look at `stop`
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                backoff = Duration::from_millis(250);
                stats.connected.store(true, Ordering::Relaxed);
                tracing::info!(filters = ?filters, "connected to the MQTT broker");
                for f in filters {
                    if let Err(e) = client.try_subscribe(f.as_str(), QoS::AtLeastOnce) {
                        tracing::error!(filter = %f, error = %e, "MQTT subscribe failed");
                    }
                }
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                let mut p = p;
                loop {
                    match tx.try_send(p) {
                        Ok(()) => break,
                        // The writer is behind: wait for it (the broker holds the rest).
                        Err(TrySendError::Full(back)) => {
                            p = back;
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        Err(TrySendError::Disconnected(_)) => return,
                    }
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                if stats.connected.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "lost the MQTT broker; reconnecting");
                } else {
                    tracing::debug!(error = %e, "MQTT broker unreachable");
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    // Leave cleanly: the broker keeps the session and queues what arrives meanwhile.
    let _ = client.disconnect();
}

/// Liveness events in arrival order.
enum Life {
    Beat(String, i64),
    Gone(String, i64),
}

struct Writer {
    store: Arc<Store>,
    stats: Arc<Stats>,
    prefixes: Vec<String>,
    debug_clients: HashSet<String>,
    max_payload: usize,
}

#[derive(Default)]
struct Batch {
    samples: Vec<Sample>,
    logs: Vec<LogRecord>,
    life: Vec<Life>,
    health: Vec<(String, Vec<u8>)>,
}

impl Writer {
    fn run(&self, rx: &Receiver<Publish>, client: &Client, stop: &AtomicBool) {
        let mut taken: Vec<Publish> = Vec::with_capacity(BATCH);
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(p) => taken.push(p),
                Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => continue,
                Err(_) => return,
            }
            while taken.len() < BATCH {
                match rx.try_recv() {
                    Ok(p) => taken.push(p),
                    Err(_) => break,
                }
            }
            let now = now_ms();
            let mut batch = Batch::default();
            for p in &taken {
                self.take(p, now, &mut batch);
            }
            match self.commit(batch, now) {
                Ok(()) => {
                    for p in &taken {
                        if let Err(e) = client.ack(p) {
                            tracing::debug!(error = %e, "MQTT ack not sent");
                        }
                    }
                }
                // Unacknowledged: the broker redelivers them after a reconnect.
                Err(e) => {
                    self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, messages = taken.len(), "fleet batch not stored; not acknowledged");
                }
            }
            taken.clear();
        }
    }

    /// Parse one message into `batch`, or count it as malformed.
    fn take(&self, p: &Publish, now: i64, batch: &mut Batch) {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.parse(p, now, batch) {
            self.stats.malformed(&p.topic, &e.to_string(), now);
        }
    }

    fn parse(&self, p: &Publish, now: i64, batch: &mut Batch) -> Result<(), message::MessageError> {
        let topic = message::parse_topic(&p.topic, &self.prefixes)?;
        if p.payload.len() > self.max_payload {
            return Err(message::MessageError::Payload(format!(
                "{} bytes (at most {})",
                p.payload.len(),
                self.max_payload
            )));
        }
        let client = topic.client.to_string();
        match topic.kind {
            Kind::Metrics => batch
                .samples
                .extend(message::metrics(&client, &p.payload, now)?),
            Kind::Logs(level) => {
                let record = message::log(&client, level, &p.payload, now)?;
                if matches!(level, Level::Info | Level::Debug)
                    && !self.debug_clients.contains(&client)
                {
                    self.stats.dropped_info.fetch_add(1, Ordering::Relaxed);
                } else {
                    batch.logs.push(record);
                }
            }
            Kind::Heartbeat => batch.life.push(Life::Beat(client, now)),
            Kind::Status => {
                if message::status_offline(&p.payload)? {
                    batch.life.push(Life::Gone(client, now));
                } else {
                    batch.life.push(Life::Beat(client, now));
                }
            }
            Kind::Health => {
                let h = message::health(&p.payload, now)?;
                batch.samples.extend(h.samples(&client, now));
                let json = serde_json::to_vec(&h)
                    .map_err(|e| message::MessageError::Payload(e.to_string()))?;
                batch.health.push((client, json));
            }
        }
        Ok(())
    }

    /// Store a batch: liveness first (its transitions become `client_up` samples), then
    /// samples, logs and health reports.
    fn commit(&self, mut batch: Batch, now: i64) -> Result<(), tocsin_store::StoreError> {
        let mut i = 0;
        while i < batch.life.len() {
            let beat = matches!(batch.life[i], Life::Beat(..));
            let mut run: Vec<(&str, i64)> = Vec::new();
            while let Some(l) = batch.life.get(i) {
                match (l, beat) {
                    (Life::Beat(c, t), true) | (Life::Gone(c, t), false) => run.push((c, *t)),
                    _ => break,
                }
                i += 1;
            }
            let transitions = if beat {
                self.stats
                    .heartbeats
                    .fetch_add(run.len() as u64, Ordering::Relaxed);
                self.store.record_heartbeats(&run)?
            } else {
                self.store.mark_offline(&run)?
            };
            for t in &transitions {
                tracing::info!(client = %t.client, from = ?t.from, to = ?t.to, "client liveness");
            }
            batch.samples.extend(
                transitions
                    .iter()
                    .flat_map(|t| up_samples(&t.client, t.to, t.at_ms, t.at_ms)),
            );
        }
        if !batch.samples.is_empty() {
            let report = self.store.ingest(&batch.samples)?;
            self.stats
                .samples
                .fetch_add(report.accepted as u64, Ordering::Relaxed);
            for (index, why) in report.rejected.iter().take(5) {
                let name = batch
                    .samples
                    .get(*index)
                    .map(|s| s.name.as_str())
                    .unwrap_or("?");
                self.stats
                    .malformed(name, &format!("sample `{name}`: {why}"), now);
            }
        }
        if !batch.logs.is_empty() {
            self.stats.logs.fetch_add(
                self.store.append_logs(&batch.logs)? as u64,
                Ordering::Relaxed,
            );
        }
        if !batch.health.is_empty() {
            let writes: Vec<(&str, Option<&[u8]>)> = batch
                .health
                .iter()
                .map(|(c, j)| (c.as_str(), Some(j.as_slice())))
                .collect();
            // A refusal (too many clients for the kv namespace) must not hold the batch
            // back: the health series are stored already.
            match self.store.kv_apply(HEALTH_NAMESPACE, &writes) {
                Err(tocsin_store::StoreError::Refused(why)) => {
                    self.stats.malformed("health", &why, now);
                }
                other => other?,
            }
        }
        Ok(())
    }
}
