//! Tocsin's MQTT subscriber: one connection (persistent session, QoS 1, manual acks) to
//! the broker, subscribed to every fleet prefix; a writer thread turns messages into
//! samples, logs, heartbeats and health in batches and acknowledges each message only
//! after its batch is committed, so an acknowledged message survives `kill -9`.

use std::collections::{HashSet, VecDeque};
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

/// Samples taken into one store batch (bounds its memory).
const BATCH_SAMPLES: usize = 200_000;

/// The largest packet MQTT can carry (268,435,455 bytes of remaining length).
const MQTT_MAX_PACKET: usize = 268_435_455 + 5;

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
        // Read any packet the protocol allows: a larger one would drop the connection
        // before `Decoder` could refuse it, and the broker would redeliver it forever.
        .set_max_packet_size(MQTT_MAX_PACKET, 64 * 1024);
    if let (Some(user), Some(pass)) = (&config.username, &config.password) {
        options.set_credentials(user, pass);
    }
    let (client, mut connection) = Client::new(options, 10_000);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Received>(20_000);
    let filters: Vec<String> = config.prefixes.iter().map(|p| format!("{p}/+/#")).collect();
    let reader_client = client.clone();
    let decoder = Decoder {
        stats: stats.clone(),
        prefixes: config.prefixes.clone(),
        debug_clients: config.debug_clients.iter().cloned().collect(),
        max_payload: config.max_payload_bytes,
    };
    let reader_stop = stop.clone();
    std::thread::Builder::new()
        .name("mqtt-reader".into())
        .spawn(move || {
            read(
                &mut connection,
                &reader_client,
                &filters,
                tx,
                &decoder,
                &reader_stop,
            )
        })
        .map_err(|e| FleetError::Broker(format!("starting the MQTT reader: {e}")))?;
    let writer = Writer { store, stats };
    std::thread::Builder::new()
        .name("mqtt-writer".into())
        .spawn(move || writer.run(&rx, &client, &stop))
        .map_err(|e| FleetError::Broker(format!("starting the MQTT writer: {e}")))?;
    Ok(())
}

/// Drive the connection: subscribe on every (re)connect, decode publishes and hand them
/// to the writer (decoding here overlaps with the writer's store commits), back off while
/// the broker is unreachable.
fn read(
    connection: &mut rumqttc::Connection,
    client: &Client,
    filters: &[String],
    tx: SyncSender<Received>,
    decoder: &Decoder,
    stop: &AtomicBool,
) {
    let stats = &decoder.stats;
    let mut backoff = Duration::from_millis(250);
    while !stop.load(Ordering::Relaxed) {
        match connection.recv_timeout(Duration::from_millis(500)) {
            Err(_) => continue, // timeout: look at `stop`
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                backoff = Duration::from_millis(250);
                // Acks of the previous connection's messages must not reach this one: the
                // broker numbers packets per connection and redelivers the unacked.
                stats.generation.fetch_add(1, Ordering::Relaxed);
                stats.connected_at_ms.store(now_ms(), Ordering::Relaxed);
                stats.connected.store(true, Ordering::Relaxed);
                tracing::info!(filters = ?filters, "connected to the MQTT broker");
                for f in filters {
                    if let Err(e) = client.try_subscribe(f.as_str(), QoS::AtLeastOnce) {
                        tracing::error!(filter = %f, error = %e, "MQTT subscribe failed");
                    }
                }
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                let decoded = decoder.decode(&p, now_ms());
                let mut p = Received {
                    generation: stats.generation.load(Ordering::Relaxed),
                    publish: p,
                    decoded,
                };
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

/// A message as the reader hands it to the writer.
struct Received {
    /// The connection it came on (see `Stats::generation`).
    generation: u64,
    publish: Publish,
    decoded: Decoded,
}

/// What one message becomes.
enum Decoded {
    Samples(Vec<Sample>),
    Log(LogRecord),
    Life(Life),
    /// The client, its health series, and the report (JSON) to keep.
    Health(String, Vec<Sample>, Vec<u8>),
    /// Nothing to store: an INFO/DEBUG log of a client without debug, or a malformed
    /// message (counted already).
    Nothing,
}

/// Turns messages into what they store, counting the malformed.
struct Decoder {
    stats: Arc<Stats>,
    prefixes: Vec<String>,
    debug_clients: HashSet<String>,
    max_payload: usize,
}

struct Writer {
    store: Arc<Store>,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Batch {
    samples: Vec<Sample>,
    logs: Vec<LogRecord>,
    life: Vec<Life>,
    health: Vec<(String, Vec<u8>)>,
}

impl Batch {
    fn add(&mut self, d: Decoded) {
        match d {
            Decoded::Samples(s) => self.samples.extend(s),
            Decoded::Log(r) => self.logs.push(r),
            Decoded::Life(l) => self.life.push(l),
            Decoded::Health(client, samples, json) => {
                self.samples.extend(samples);
                self.health.push((client, json));
            }
            Decoded::Nothing => {}
        }
    }
}

impl Decoder {
    /// Decode one message, or count it as malformed.
    fn decode(&self, p: &Publish, now: i64) -> Decoded {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        self.parse(p, now).unwrap_or_else(|e| {
            self.stats.malformed(&p.topic, &e.to_string(), now);
            Decoded::Nothing
        })
    }

    fn parse(&self, p: &Publish, now: i64) -> Result<Decoded, message::MessageError> {
        let topic = message::parse_topic(&p.topic, &self.prefixes)?;
        if p.payload.len() > self.max_payload {
            return Err(message::MessageError::Payload(format!(
                "{} bytes (at most {})",
                p.payload.len(),
                self.max_payload
            )));
        }
        let client = topic.client.to_string();
        Ok(match topic.kind {
            Kind::Metrics => Decoded::Samples(message::metrics(&client, &p.payload, now)?),
            Kind::Logs(level) => {
                let record = message::log(&client, level, &p.payload, now)?;
                if matches!(level, Level::Info | Level::Debug)
                    && !self.debug_clients.contains(&client)
                {
                    self.stats.dropped_info.fetch_add(1, Ordering::Relaxed);
                    Decoded::Nothing
                } else {
                    Decoded::Log(record)
                }
            }
            Kind::Heartbeat => Decoded::Life(Life::Beat(client, now)),
            Kind::Status => {
                if message::status_offline(&p.payload)? {
                    Decoded::Life(Life::Gone(client, now))
                } else if p.retain {
                    // A retained `online` is old news (resent on every subscribe), not a
                    // sign of life.
                    Decoded::Nothing
                } else {
                    Decoded::Life(Life::Beat(client, now))
                }
            }
            Kind::Health => {
                let h = message::health(&p.payload, now)?;
                let json = serde_json::to_vec(&h)
                    .map_err(|e| message::MessageError::Payload(e.to_string()))?;
                let samples = h.samples(&client, now);
                Decoded::Health(client, samples, json)
            }
        })
    }
}

impl Writer {
    fn run(&self, rx: &Receiver<Received>, client: &Client, stop: &AtomicBool) {
        let mut taken: Vec<(u64, Publish)> = Vec::with_capacity(BATCH);
        let mut acks: VecDeque<(u64, Publish)> = VecDeque::new();
        loop {
            self.send_acks(&mut acks, client);
            let mut batch = Batch::default();
            let wait = if acks.is_empty() { 200 } else { 1 };
            match rx.recv_timeout(Duration::from_millis(wait)) {
                Ok(r) => {
                    taken.push((r.generation, r.publish));
                    batch.add(r.decoded);
                }
                Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => continue,
                Err(_) => return,
            }
            while taken.len() < BATCH && batch.samples.len() < BATCH_SAMPLES {
                match rx.try_recv() {
                    Ok(r) => {
                        taken.push((r.generation, r.publish));
                        batch.add(r.decoded);
                    }
                    Err(_) => break,
                }
            }
            // A failed commit (disk full, an I/O error) is retried with the same batch until
            // it succeeds: nothing is acknowledged or dropped meanwhile, and the broker holds
            // what arrives (backpressure).
            let mut backoff = Duration::from_millis(100);
            while let Err(e) = self.commit(&batch) {
                self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, messages = taken.len(), "fleet batch not stored; retrying");
                if stop.load(Ordering::Relaxed) {
                    return; // unacknowledged: the broker redelivers them to the next session
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            acks.extend(taken.drain(..));
            self.send_acks(&mut acks, client);
        }
    }

    /// Queue acks without blocking: the request channel is drained only while the reader
    /// polls the connection, and the reader may itself be waiting for this thread (a full
    /// hand-over channel) — a blocking ack could deadlock the two. What does not fit now
    /// stays in `acks` for the next round.
    fn send_acks(&self, acks: &mut VecDeque<(u64, Publish)>, client: &Client) {
        let current = self.stats.generation.load(Ordering::Relaxed);
        while let Some((generation, p)) = acks.front() {
            // A message of an earlier connection is redelivered on this one: its ack would
            // confuse the broker. The redelivered copy is acked instead.
            if *generation != current {
                acks.pop_front();
                continue;
            }
            match client.try_ack(p) {
                Ok(()) => {
                    acks.pop_front();
                }
                Err(rumqttc::ClientError::TryRequest(_)) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "MQTT ack not sent");
                    acks.pop_front();
                }
            }
        }
    }

    /// Store a batch: liveness first (its transitions become `client_up` samples), then
    /// samples, logs and health reports.
    fn commit(&self, batch: &Batch) -> Result<(), tocsin_store::StoreError> {
        let now = now_ms();
        let mut liveness = Vec::new();
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
            liveness.extend(
                transitions
                    .iter()
                    .flat_map(|t| up_samples(&t.client, t.to, t.at_ms, t.at_ms)),
            );
        }
        for samples in [&batch.samples, &liveness] {
            if samples.is_empty() {
                continue;
            }
            let report = self.store.ingest(samples)?;
            self.stats
                .samples
                .fetch_add(report.accepted as u64, Ordering::Relaxed);
            for (index, why) in report.rejected.iter().take(5) {
                let name = samples.get(*index).map_or("?", |s| s.name.as_str());
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
