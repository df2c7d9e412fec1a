//! `tocsin agent`: the built-in collectors on a remote host, shipped to a Tocsin server
//! over MQTT in the fleet's topic scheme. Everything collected goes first into a bounded
//! spool on disk (`data_dir/agent.redb`; oldest dropped and counted when full) and leaves
//! it only once the broker acknowledged it, oldest first — so a broker outage or a
//! `kill -9` loses nothing that fits the spool. Reconnects back off exponentially. An
//! optional watchdog runs one process and restarts it (at most `max_restarts`, then
//! reports it crashed) with its state on `PREFIX/ID/health`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rumqttc::{Client, Event, LastWill, MqttOptions, Packet, QoS};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tocsin_store::{Level, LogRecord, Sample, SpoolEntry, Store};

use crate::config::Config;
use crate::run::now_ms;

/// `[agent]`: where and how `tocsin agent` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The server's MQTT broker, `host:port`.
    pub server: String,
    /// This machine's client id; empty: the host name.
    pub client_id: String,
    /// The fleet's topic prefix on the server.
    pub prefix: String,
    /// MQTT login (empty: anonymous).
    pub username: String,
    /// MQTT password. Never logged.
    pub password: String,
    /// Disk spool bound while the server is unreachable; past it the oldest go.
    pub spool_bytes: u64,
    /// How often a heartbeat is sent.
    #[serde(with = "humantime_serde")]
    pub heartbeat: std::time::Duration,
    /// Log records at this level and above are forwarded (`warn`: the server keeps
    /// INFO only for its `debug_clients`).
    pub log_level: String,
    /// A process to keep running.
    pub watchdog: Option<WatchdogConfig>,
}

/// `[agent.watchdog]`: one managed process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogConfig {
    /// Its name in health reports.
    pub name: String,
    /// Program and arguments (no shell).
    pub command: Vec<String>,
    /// Restarts after which it is reported crashed and left down.
    #[serde(default = "default_restarts")]
    pub max_restarts: u32,
    /// Wait before a restart.
    #[serde(with = "humantime_serde", default = "default_restart_delay")]
    pub restart_delay: std::time::Duration,
}

fn default_restarts() -> u32 {
    3
}
fn default_restart_delay() -> Duration {
    Duration::from_secs(2)
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            server: "127.0.0.1:1883".into(),
            client_id: String::new(),
            prefix: "tocsin".into(),
            username: String::new(),
            password: String::new(),
            spool_bytes: 64 * 1024 * 1024,
            heartbeat: Duration::from_secs(15),
            log_level: "warn".into(),
            watchdog: None,
        }
    }
}

impl AgentConfig {
    /// Check what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        let (host, port) = self
            .server
            .rsplit_once(':')
            .ok_or_else(|| format!("agent.server `{}` is not host:port", self.server))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!("agent.server `{}` is not host:port", self.server));
        }
        let id = self.id();
        if id.is_empty()
            || id.len() > 128
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err(format!(
                "agent.client_id `{id}`: 1-128 letters, digits, `-`, `_`, `.`, `:`"
            ));
        }
        if self.prefix.is_empty() || self.prefix.contains(['/', '+', '#']) {
            return Err(format!(
                "agent.prefix `{}` must be one topic level",
                self.prefix
            ));
        }
        self.log_level
            .parse::<Level>()
            .map_err(|e| format!("agent.log_level: {e}"))?;
        if self.spool_bytes < 1024 * 1024 {
            return Err("agent.spool_bytes must be at least 1 MiB".into());
        }
        if self.heartbeat < Duration::from_secs(1) {
            return Err("agent.heartbeat must be at least 1s".into());
        }
        if let Some(w) = &self.watchdog
            && (w.name.is_empty() || w.command.first().is_none_or(|p| p.is_empty()))
        {
            return Err("agent.watchdog needs a name and a command".into());
        }
        Ok(())
    }

    /// The client id in use.
    pub fn id(&self) -> String {
        if !self.client_id.is_empty() {
            return self.client_id.clone();
        }
        std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "agent".into())
    }
}

/// Most samples in one metrics message.
const SAMPLES_PER_MESSAGE: usize = 200;
/// Longest log message forwarded; the rest is cut.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// A watched process that ran this long has its restart count reset.
const STABLE_RUN: Duration = Duration::from_secs(600);
/// Most bytes in flight before their acknowledgements are awaited.
const BATCH_BYTES: usize = 1 << 20;
/// Most messages in flight before their acknowledgements are awaited.
const BATCH: usize = 256;

/// The collectors' sink: each sample batch and log record becomes a spooled message.
struct Spool {
    store: Arc<Store>,
    topic: String,
    min_level: Level,
    max_bytes: u64,
}

impl Spool {
    fn push(&self, messages: &[(String, Vec<u8>)]) -> Result<(), String> {
        let refs: Vec<(&str, &[u8])> = messages
            .iter()
            .map(|(t, p)| (t.as_str(), p.as_slice()))
            .collect();
        let dropped = self
            .store
            .spool_push(&refs, self.max_bytes)
            .map_err(|e| e.to_string())?;
        if dropped > 0 {
            tracing::warn!(dropped, "spool full: oldest messages dropped");
        }
        Ok(())
    }
}

impl tocsin_collect::Sink for Spool {
    fn samples(&self, samples: &[Sample]) -> Result<(), String> {
        let mut messages = Vec::new();
        // JSON has no NaN: stale markers and unsupported readings stay here.
        let finite: Vec<&Sample> = samples.iter().filter(|s| s.value.is_finite()).collect();
        for chunk in finite.chunks(SAMPLES_PER_MESSAGE) {
            let list: Vec<Value> = chunk
                .iter()
                .map(|s| {
                    let labels: serde_json::Map<String, Value> = s
                        .labels
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                        .collect();
                    json!({"name": s.name, "labels": labels, "value": s.value, "ts_ms": s.ts_ms})
                })
                .collect();
            let payload =
                serde_json::to_vec(&json!({ "samples": list })).map_err(|e| e.to_string())?;
            messages.push((format!("{}/metrics", self.topic), payload));
        }
        self.push(&messages)
    }

    fn logs(&self, records: &[LogRecord]) -> Result<(), String> {
        let mut messages = Vec::new();
        for r in records.iter().filter(|r| r.level >= self.min_level) {
            let mut fields: serde_json::Map<String, Value> = r
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect();
            fields.insert("source".into(), Value::from(r.source.as_str()));
            let message = &r.message[..r.message.floor_char_boundary(MAX_MESSAGE_BYTES)];
            let payload = serde_json::to_vec(
                &json!({"message": message, "ts_ms": r.ts_ms, "fields": fields}),
            )
            .map_err(|e| e.to_string())?;
            messages.push((format!("{}/logs/{}", self.topic, r.level.name()), payload));
        }
        if messages.is_empty() {
            return Ok(());
        }
        self.push(&messages)
    }

    fn position(&self, key: &str) -> Option<String> {
        tocsin_collect::Sink::position(self.store.as_ref(), key)
    }

    fn save_positions(&self, positions: &[(&str, &str)]) -> Result<(), String> {
        tocsin_collect::Sink::save_positions(self.store.as_ref(), positions)
    }
}

/// The current MQTT connection, as the publisher sees it.
#[derive(Default)]
struct Link {
    client: Mutex<Option<Client>>,
    /// Bumped on every ConnAck; acknowledgements count within one generation.
    generation: AtomicU64,
    acked: AtomicU64,
    connected: AtomicBool,
}

impl Link {
    fn client(&self) -> Option<Client> {
        self.client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Run the agent until SIGINT/SIGTERM.
pub fn agent(config: Config) -> anyhow::Result<()> {
    let mut log = config.log.clone();
    if log.file == crate::config::LogConfig::default().file {
        // Beside a `tocsin run` on the same data_dir, each rotates its own file.
        log.file = std::path::PathBuf::from("logs/agent.log");
    }
    crate::logging::init(&log, &config.data_dir)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;
    let store = Arc::new(Store::open(&config.data_dir.join("agent.redb"))?);
    let agent = config.agent.clone();
    let id = agent.id();
    let topic = format!("{}/{id}", agent.prefix);
    let spool = Arc::new(Spool {
        store: store.clone(),
        topic: topic.clone(),
        min_level: agent.log_level.parse().unwrap_or(Level::Warn),
        max_bytes: agent.spool_bytes,
    });
    let stop = Arc::new(AtomicBool::new(false));
    let gpus = Arc::new(if config.collect.gpu {
        tocsin_capabilities::gpu::GpuMonitor::nvml()
    } else {
        tocsin_capabilities::gpu::GpuMonitor::none()
    });
    tocsin_collect::start(&config.collect, gpus, spool.clone(), stop.clone())
        .context("starting the collectors")?;

    let link = Arc::new(Link::default());
    let (host, port) = agent
        .server
        .rsplit_once(':')
        .context("agent.server is not host:port")?;
    let mut options =
        MqttOptions::new(id.clone(), host, port.parse().context("agent.server port")?);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(2 << 20, 2 << 20)
        .set_last_will(LastWill::new(
            format!("{topic}/status"),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
    if !agent.username.is_empty() {
        options.set_credentials(agent.username.clone(), agent.password.clone());
    }
    {
        let (link, stop, status) = (link.clone(), stop.clone(), format!("{topic}/status"));
        std::thread::Builder::new()
            .name("agent-link".into())
            .spawn(move || connection_loop(options, &link, &stop, &status))?;
    }
    {
        let (link, stop, store) = (link.clone(), stop.clone(), store.clone());
        let (heartbeat, topic) = (agent.heartbeat, topic.clone());
        std::thread::Builder::new()
            .name("agent-publish".into())
            .spawn(move || publish_loop(&store, &link, &stop, heartbeat, &topic))?;
    }
    let child = Arc::new(Mutex::new(None));
    if let Some(w) = agent.watchdog.clone() {
        let (spool, stop, child) = (spool.clone(), stop.clone(), child.clone());
        std::thread::Builder::new()
            .name("agent-watchdog".into())
            .spawn(move || watchdog(&w, &spool, &stop, &child))?;
    }
    tracing::info!(server = %agent.server, client = %id, "agent started");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(crate::run::shutdown_signal());
    {
        let mut slot = child.lock().unwrap_or_else(|e| e.into_inner());
        stop.store(true, Ordering::Relaxed);
        if let Some(mut c) = slot.take() {
            let _ = std::process::Child::kill(&mut c);
            let _ = c.wait();
        }
    }
    if let Some(c) = link.client() {
        // A clean disconnect suppresses the Last Will: say it ourselves.
        let _ = c.try_publish(format!("{topic}/status"), QoS::AtLeastOnce, true, "offline");
        std::thread::sleep(Duration::from_millis(300));
        let _ = c.disconnect();
    }
    Ok(())
}

/// Keep a connection: a fresh client per attempt (nothing of a dead connection is
/// replayed behind the spool's back), exponential backoff between attempts.
fn connection_loop(options: MqttOptions, link: &Link, stop: &AtomicBool, status: &str) {
    let mut backoff = Duration::from_millis(500);
    let mut down_since: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let (client, mut connection) = Client::new(options.clone(), 1024);
        *link.client.lock().unwrap_or_else(|e| e.into_inner()) = Some(client.clone());
        for event in connection.iter() {
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    link.acked.store(0, Ordering::SeqCst);
                    link.generation.fetch_add(1, Ordering::SeqCst);
                    link.connected.store(true, Ordering::SeqCst);
                    backoff = Duration::from_millis(500);
                    if let Some(t) = down_since.take() {
                        tracing::info!(after = ?t.elapsed(), "connected to the server's broker again");
                    }
                    let _ = client.try_publish(status, QoS::AtMostOnce, true, "online");
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    link.acked.fetch_add(1, Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(e) => {
                    if down_since.is_none() {
                        tracing::warn!(error = %e, "server's broker unreachable; spooling to disk");
                        down_since = Some(Instant::now());
                    }
                    break;
                }
            }
            if stop.load(Ordering::Relaxed) {
                return;
            }
        }
        link.connected.store(false, Ordering::SeqCst);
        *link.client.lock().unwrap_or_else(|e| e.into_inner()) = None;
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Send the spool oldest first, a batch at a time (at most `BATCH` messages and
/// `BATCH_BYTES`); what the broker acknowledged leaves the spool, the rest is sent again
/// on the next connection.
fn publish_loop(store: &Store, link: &Link, stop: &AtomicBool, heartbeat: Duration, topic: &str) {
    let mut last_heartbeat: Option<Instant> = None;
    let mut last_stats = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // Written while disconnected too: an outage is when they matter.
        if last_stats.elapsed() >= Duration::from_secs(10) {
            last_stats = Instant::now();
            spool_stats(store, &format!("{topic}/metrics"));
        }
        let client = match link.client() {
            Some(c) if link.connected.load(Ordering::SeqCst) => c,
            _ => {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if last_heartbeat.is_none_or(|t| t.elapsed() >= heartbeat) {
            let _ = client.try_publish(format!("{topic}/heartbeat"), QoS::AtMostOnce, false, "{}");
            last_heartbeat = Some(Instant::now());
        }
        let mut batch = match store.spool_peek(BATCH) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "reading the spool");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let mut bytes = 0;
        let keep = batch
            .iter()
            .take_while(|e| {
                bytes += e.payload.len();
                bytes <= BATCH_BYTES
            })
            .count()
            .max(1);
        batch.truncate(keep);
        if batch.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let done = send_batch(&client, link, &batch, stop);
        if done > 0
            && let Err(e) = store.spool_remove_through(batch[done - 1].seq)
        {
            tracing::error!(error = %e, "removing sent messages from the spool");
        }
    }
}

/// Publish `batch` at QoS 1 and wait for its acknowledgements (in order, on this
/// connection); the number acknowledged. Fifteen seconds without progress: the
/// connection is dropped and a fresh one takes over.
fn send_batch(client: &Client, link: &Link, batch: &[SpoolEntry], stop: &AtomicBool) -> usize {
    let generation = link.generation.load(Ordering::SeqCst);
    let base = link.acked.load(Ordering::SeqCst);
    let same = || link.generation.load(Ordering::SeqCst) == generation;
    let acked =
        || usize::try_from(link.acked.load(Ordering::SeqCst).saturating_sub(base)).unwrap_or(0);
    let mut sent = 0;
    for e in batch {
        if client
            .publish(e.topic.clone(), QoS::AtLeastOnce, false, e.payload.clone())
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    let mut progress = (acked(), Instant::now());
    let mut done = 0;
    while same() && link.connected.load(Ordering::SeqCst) && !stop.load(Ordering::Relaxed) {
        done = acked().min(sent);
        if done >= sent {
            break;
        }
        if done > progress.0 {
            progress = (done, Instant::now());
        } else if progress.1.elapsed() >= Duration::from_secs(15) {
            tracing::warn!("the broker acknowledged nothing for 15 s; reconnecting");
            let _ = client.disconnect();
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    done
}

/// The spool's own figures, spooled like everything else.
fn spool_stats(store: &Store, topic: &str) {
    let Ok(stats) = store.spool_stats() else {
        return;
    };
    let ts_ms = now_ms();
    let sample =
        |name: &str, value: u64| json!({"name": name, "value": value as f64, "ts_ms": ts_ms});
    let payload = json!({"samples": [
        sample("agent_spool_messages", stats.messages),
        sample("agent_spool_bytes", stats.bytes),
        sample("agent_spool_dropped_total", stats.dropped),
    ]});
    if let Ok(bytes) = serde_json::to_vec(&payload) {
        let _ = store.spool_push(&[(topic, bytes.as_slice())], u64::MAX);
    }
}

/// Run the watched process; restart it when it exits, up to `max_restarts`, then report
/// it crashed and leave it down. Each change is a health report.
fn watchdog(
    w: &WatchdogConfig,
    spool: &Spool,
    stop: &AtomicBool,
    child: &Mutex<Option<std::process::Child>>,
) {
    let report = |status: &str, pid: Option<u32>, restarts: u32| {
        let payload =
            json!({"process": w.name, "pid": pid, "status": status, "restart_count": restarts});
        if let Ok(bytes) = serde_json::to_vec(&payload)
            && let Err(e) = spool.push(&[(format!("{}/health", spool.topic), bytes)])
        {
            tracing::error!(error = %e, "spooling a health report");
        }
    };
    let mut restarts = 0;
    loop {
        report("starting", None, restarts);
        let spawned = std::process::Command::new(&w.command[0])
            .args(&w.command[1..])
            .stdin(std::process::Stdio::null())
            .spawn();
        let started = Instant::now();
        match spawned {
            Ok(mut c) => {
                let pid = c.id();
                {
                    // Checked under the lock: a stop that already took the slot
                    // must not miss this child.
                    let mut slot = child.lock().unwrap_or_else(|e| e.into_inner());
                    if stop.load(Ordering::Relaxed) {
                        let _ = c.kill();
                        let _ = c.wait();
                        return;
                    }
                    *slot = Some(c);
                }
                report("running", Some(pid), restarts);
                tracing::info!(process = %w.name, pid, "watched process running");
                // Poll so a stop can take the child away and kill it.
                let status = loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let mut guard = child.lock().unwrap_or_else(|e| e.into_inner());
                    match guard.as_mut().map(std::process::Child::try_wait) {
                        Some(Ok(Some(status))) => {
                            guard.take();
                            break status.to_string();
                        }
                        Some(Ok(None)) => {}
                        Some(Err(e)) => break e.to_string(),
                        None => return,
                    }
                    drop(guard);
                    std::thread::sleep(Duration::from_millis(100));
                };
                tracing::warn!(process = %w.name, status = %status, restarts, "watched process exited");
            }
            Err(e) => {
                tracing::error!(process = %w.name, error = %e, "cannot start the watched process")
            }
        }
        // A process that ran well for a while starts its count afresh: the limit is
        // for crash loops, not for three crashes over months.
        if started.elapsed() >= STABLE_RUN {
            restarts = 0;
        }
        if restarts >= w.max_restarts {
            report("crashed", None, restarts);
            tracing::error!(process = %w.name, restarts, "watched process crashed: no more restarts");
            return;
        }
        restarts += 1;
        std::thread::sleep(w.restart_delay);
        if stop.load(Ordering::Relaxed) {
            return;
        }
    }
}
