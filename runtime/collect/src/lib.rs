//! Built-in collectors: host metrics from /proc and /sys, NVIDIA GPUs, script metrics and
//! log sources, each writing into the store on its own thread and schedule. Configured by
//! `[collect]` ([`CollectConfig`]); [`start`] runs them.

pub mod gpu;
pub mod logs;
pub mod node;
pub mod script;
pub mod tail;
pub mod tools;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tocsin_capabilities::gpu::GpuMonitor;
use tocsin_store::{Sample, Store};

pub use logs::LogFileConfig;
pub use script::ScriptConfig;

/// Where collected data goes: the local store (`tocsin run`) or the agent's spool for the
/// server (`tocsin agent`).
pub trait Sink: Send + Sync {
    /// Store or forward samples.
    fn samples(&self, samples: &[Sample]) -> Result<(), String>;
    /// Store or forward log records.
    fn logs(&self, records: &[tocsin_store::LogRecord]) -> Result<(), String>;
    /// A saved read position (log sources).
    fn position(&self, key: &str) -> Option<String>;
    /// Save read positions, once what was read up to them is stored.
    fn save_positions(&self, positions: &[(&str, &str)]) -> Result<(), String>;
}

impl Sink for Store {
    fn samples(&self, samples: &[Sample]) -> Result<(), String> {
        let report = self.ingest(samples).map_err(|e| e.to_string())?;
        if let Some((i, e)) = report.rejected.first() {
            tracing::warn!(sample = i, error = %e, rejected = report.rejected.len(), "samples rejected");
        }
        Ok(())
    }
    fn logs(&self, records: &[tocsin_store::LogRecord]) -> Result<(), String> {
        self.append_logs(records)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    fn position(&self, key: &str) -> Option<String> {
        match self.kv_get(logs::POSITIONS_NAMESPACE, key) {
            Ok(v) => v.map(|b| String::from_utf8_lossy(&b).into_owned()),
            Err(e) => {
                tracing::warn!(source = key, error = %e, "reading a saved log position");
                None
            }
        }
    }
    fn save_positions(&self, positions: &[(&str, &str)]) -> Result<(), String> {
        let writes: Vec<(&str, Option<&[u8]>)> = positions
            .iter()
            .map(|(k, v)| (*k, Some(v.as_bytes())))
            .collect();
        self.kv_apply(logs::POSITIONS_NAMESPACE, &writes)
            .map_err(|e| e.to_string())
    }
}

/// What the built-in collectors read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectConfig {
    /// Host metrics under node_exporter's names (`node_cpu_seconds_total`, ...).
    pub host: bool,
    /// NVIDIA GPU metrics (`gpu_*`) through NVML, where a driver is present.
    pub gpu: bool,
    /// How often host and GPU metrics are read (1s to 1h).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Commands whose `name{labels} value` output lines become samples.
    pub scripts: Vec<ScriptConfig>,
    /// Log files followed into the log store.
    pub log_files: Vec<LogFileConfig>,
    /// Follow the systemd journal (`journalctl`), where present.
    pub journal: bool,
    /// Follow the kernel ring buffer (`/dev/kmsg`, needs root or CAP_SYSLOG).
    pub kmsg: bool,
    /// IPMI hardware sensors through `ipmitool sdr` (every minute at most), where it is
    /// installed and readable.
    pub ipmi: bool,
    /// Container state through `docker ps` (every 15 s at most), where docker runs.
    pub docker: bool,
}

impl Default for CollectConfig {
    fn default() -> Self {
        CollectConfig {
            host: true,
            gpu: true,
            interval: Duration::from_secs(10),
            scripts: Vec::new(),
            log_files: Vec::new(),
            journal: false,
            kmsg: false,
            ipmi: true,
            docker: true,
        }
    }
}

impl CollectConfig {
    /// Check what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval < Duration::from_secs(1) || self.interval > Duration::from_secs(3600) {
            return Err(format!(
                "collect.interval {} is outside 1s..1h",
                humantime::format_duration(self.interval)
            ));
        }
        let mut names = std::collections::HashSet::new();
        for s in &self.scripts {
            s.validate()?;
            if !names.insert(&s.name) {
                return Err(format!("two scripts are named `{}`", s.name));
            }
        }
        let mut paths = std::collections::HashSet::new();
        for f in &self.log_files {
            if f.path.components().count() == 0 {
                return Err("a log file needs a path".into());
            }
            // Its read position is saved under its path (store keys are bounded).
            if f.path.as_os_str().len() > 200 {
                return Err(format!(
                    "log file path over 200 bytes: {}",
                    f.path.display()
                ));
            }
            if !paths.insert(&f.path) {
                return Err(format!("log file {} is listed twice", f.path.display()));
            }
        }
        Ok(())
    }
}

/// Start every configured collector. `gpus` is shared with guests' `sensors`.
pub fn start(
    config: &CollectConfig,
    gpus: Arc<GpuMonitor>,
    store: Arc<dyn Sink>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    if config.host || config.gpu {
        let (config, store, stop) = (config.clone(), store.clone(), stop.clone());
        std::thread::Builder::new()
            .name("collect-host".into())
            .spawn(move || host_loop(&config, &gpus, store.as_ref(), &stop))?;
    }
    for script in &config.scripts {
        let (script, store, stop) = (script.clone(), store.clone(), stop.clone());
        std::thread::Builder::new()
            .name(format!("script-{}", script.name))
            .spawn(move || script_loop(&script, store.as_ref(), &stop))?;
    }
    if config.ipmi {
        let every = config.interval.max(Duration::from_secs(60));
        tools::spawn(tools::Tool::Ipmi, every, store.clone(), stop.clone())?;
    }
    if config.docker {
        let every = config.interval.max(Duration::from_secs(15));
        tools::spawn(tools::Tool::Docker, every, store.clone(), stop.clone())?;
    }
    if !config.log_files.is_empty() || config.journal || config.kmsg {
        logs::spawn(
            config.log_files.clone(),
            config.journal,
            config.kmsg,
            store,
            stop,
        )?;
    }
    Ok(())
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Sleep until the next multiple of `interval` (rounds land on even timestamps), waking
/// at least every 250 ms to notice `stop`. False when stopping.
pub(crate) fn wait_next(interval: Duration, stop: &AtomicBool) -> bool {
    let every = i64::try_from(interval.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let next = (now_ms() / every + 1) * every;
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let left = next - now_ms();
        if left <= 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(left.min(250) as u64));
    }
}

fn store_samples(sink: &dyn Sink, samples: &[Sample], what: &str) {
    if let Err(e) = sink.samples(samples) {
        tracing::error!(collector = what, error = %e, "storing samples failed");
    }
}

fn host_loop(config: &CollectConfig, gpus: &GpuMonitor, store: &dyn Sink, stop: &AtomicBool) {
    let mut node = node::NodeCollector::new();
    let mut samples = Vec::new();
    let mut failing: Vec<String> = Vec::new();
    let mut gpu_failing = false;
    while wait_next(config.interval, stop) {
        let ts = now_ms();
        samples.clear();
        if config.host {
            let failed = node.collect(ts, &mut samples);
            // Said once when the set of failing groups changes, not every round.
            if failed != failing {
                if failed.is_empty() {
                    tracing::info!("host metrics complete again");
                } else {
                    tracing::warn!(failed = ?failed, "host metric groups unreadable");
                }
                failing = failed;
            }
        }
        if config.gpu {
            match gpus.read() {
                Ok(snapshot) => {
                    gpu_failing = false;
                    gpu::samples(&snapshot, ts, &mut samples);
                }
                Err(e) => {
                    if !gpu_failing {
                        tracing::warn!(error = %e, "reading GPUs failed");
                    }
                    gpu_failing = true;
                }
            }
        }
        store_samples(store, &samples, "host");
    }
}

fn script_loop(script: &ScriptConfig, store: &dyn Sink, stop: &AtomicBool) {
    let mut last_problem: Option<String> = None;
    while wait_next(script.interval, stop) {
        let started = Instant::now();
        let run = script::run(script, now_ms());
        let problem = run.problems.first().cloned();
        if problem != last_problem {
            match &problem {
                Some(p) => {
                    tracing::warn!(script = %script.name, problem = %p, problems = run.problems.len(), "script metrics")
                }
                None => tracing::info!(script = %script.name, "script metrics read cleanly again"),
            }
            last_problem = problem;
        }
        store_samples(store, &run.samples, &script.name);
        tracing::debug!(script = %script.name, took = ?started.elapsed(), "script run");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tocsin_bindings::sensors::Gpu;
    use tocsin_capabilities::gpu::GpuDriver;

    /// A scripted NVML: one GPU whose readings follow a script, then repeat the last.
    struct FakeNvml(Arc<Mutex<Vec<Gpu>>>);
    impl GpuDriver for FakeNvml {
        fn read(&mut self) -> Result<Vec<Gpu>, String> {
            let mut script = self.0.lock().map_err(|_| "poisoned")?;
            if script.len() > 1 {
                return Ok(vec![script.remove(0)]);
            }
            // The last reading repeats; its events were delivered once.
            let last = script[0].clone();
            script[0].xid_events.clear();
            Ok(vec![last])
        }
    }

    fn reading(temp: f64, throttle: &[&str], uncorrected: u64, xids: &[u64]) -> Gpu {
        Gpu {
            index: 0,
            name: "NVIDIA H100".into(),
            uuid: "GPU-1234".into(),
            temperature_celsius: temp,
            utilization_percent: 97.0,
            memory_used_bytes: 40 << 30,
            memory_total_bytes: 80 << 30,
            power_watts: 650.0,
            power_limit_watts: 700.0,
            fan_percent: None,
            sm_clock_mhz: 1980,
            throttle_reasons: throttle.iter().map(|s| s.to_string()).collect(),
            ecc_corrected: Some(3),
            ecc_uncorrected: Some(uncorrected),
            pcie_replays: Some(0),
            xid_events: xids.to_vec(),
        }
    }

    #[test]
    fn a_fake_nvml_drives_gpu_series_into_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(&dir.path().join("t.redb")).expect("store"));
        let script = Arc::new(Mutex::new(vec![
            reading(60.0, &[], 0, &[]),
            reading(91.0, &["hw_thermal_slowdown"], 2, &[79, 48]),
        ]));
        let gpus = Arc::new(GpuMonitor::with_driver(Box::new(FakeNvml(script))));
        let config = CollectConfig {
            host: false,
            interval: Duration::from_secs(1),
            ..CollectConfig::default()
        };
        let stop = Arc::new(AtomicBool::new(false));
        start(&config, gpus, store.clone(), stop.clone()).expect("start");
        let value = |selector: &str| {
            store
                .latest(selector, now_ms() + 1000, 60_000)
                .expect("latest")
                .first()
                .map(|v| v.value)
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while value(r#"gpu_xid_errors_total{gpu="0"}"#) != Some(2.0) {
            assert!(Instant::now() < deadline, "no XID count");
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, Ordering::Relaxed);
        assert_eq!(value(r#"gpu_temperature_celsius{gpu="0"}"#), Some(91.0));
        assert_eq!(value(r#"gpu_last_xid{gpu="0"}"#), Some(48.0));
        assert_eq!(
            value(r#"gpu_throttled{gpu="0",reason="hw_thermal_slowdown"}"#),
            Some(1.0)
        );
        assert_eq!(
            value(r#"gpu_throttled{gpu="0",reason="sw_power_cap"}"#),
            Some(0.0)
        );
        assert_eq!(
            value(r#"gpu_ecc_errors_total{gpu="0",type="uncorrected"}"#),
            Some(2.0)
        );
        assert_eq!(
            value(r#"gpu_memory_total_bytes{gpu="0"}"#),
            Some((80u64 << 30) as f64)
        );
        assert_eq!(value(r#"gpu_sm_clock_hertz{gpu="0"}"#), Some(1.98e9));
        assert_eq!(value(r#"gpu_info{uuid="GPU-1234"}"#), Some(1.0));
        assert_eq!(
            value(r#"gpu_fan_percent"#),
            None,
            "no fan reading, no series"
        );
        // The first round wrote 0 XIDs: the rule sees an increase, not a new series.
        let points = store
            .query_range_raw(
                r#"gpu_xid_errors_total{gpu="0"}"#,
                now_ms() - 9000,
                now_ms(),
                1000,
                1000,
            )
            .expect("range");
        assert!(
            points[0].points.first().is_some_and(|p| p.1 == 0.0),
            "{points:?}"
        );
    }
}
