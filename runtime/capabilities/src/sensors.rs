//! The `sensors` capability: local machine readings through sysinfo, GPUs through
//! [`crate::gpu`], TCP port and HTTP checks and systemd unit state.
//!
//! [`SensorSource`] is the seam: [`SysinfoSensors`] reads the real machine with targeted
//! refreshes (one long-lived `System`, never `refresh_all`); tests may substitute a
//! scripted source. [`SensorsCtx`] adapts a source to the generated `Host` trait.

use std::net::{TcpStream, ToSocketAddrs};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sysinfo::{
    Components, CpuRefreshKind, Disks, MemoryRefreshKind, Networks, ProcessRefreshKind,
    ProcessesToUpdate, RefreshKind, System, UpdateKind,
};
use tocsin_bindings::sensors::{
    CpuStats, Disk, Gpu, Host, HttpStatus, MemoryStats, Network, PortStatus, Process, Temperature,
    UnitStatus,
};
use tocsin_bindings::types::Error;

use crate::gpu::GpuMonitor;
use wasmtime::component::{HasData, Linker};

/// A source of sensor readings. Implemented by the real machine and by test doubles.
pub trait SensorSource: Send + Sync {
    /// CPU usage and load averages.
    fn cpu(&self) -> Result<CpuStats, Error>;
    /// Memory and swap.
    fn memory(&self) -> Result<MemoryStats, Error>;
    /// Seconds since boot.
    fn uptime_seconds(&self) -> u64;
    /// Mounted file systems.
    fn disks(&self) -> Result<Vec<Disk>, Error>;
    /// Network interfaces.
    fn networks(&self) -> Result<Vec<Network>, Error>;
    /// Processes whose name contains `name`.
    fn processes(&self, name: Option<&str>) -> Result<Vec<Process>, Error>;
    /// Kernel temperature sensors.
    fn temperatures(&self) -> Result<Vec<Temperature>, Error>;
    /// NVIDIA GPUs.
    fn gpus(&self) -> Result<Vec<Gpu>, Error>;
    /// TCP connect check.
    fn check_port(&self, host: &str, port: u16, timeout: Duration) -> Result<PortStatus, Error>;
    /// HTTP GET check.
    fn check_http(&self, url: &str, timeout: Duration) -> Result<HttpStatus, Error>;
    /// systemd unit state.
    fn unit(&self, name: &str) -> Result<UnitStatus, Error>;
}

/// The longest a guest may ask a port or HTTP check to wait.
pub const MAX_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The real machine, read through sysinfo.
pub struct SysinfoSensors {
    system: Mutex<(System, Option<Instant>)>,
    disks: Mutex<Disks>,
    networks: Mutex<Networks>,
    gpus: Arc<GpuMonitor>,
}

impl SysinfoSensors {
    /// Open the machine's sensors. Takes a first CPU reading so the next one has a baseline.
    pub fn new() -> Result<SysinfoSensors, sysinfo::Error> {
        Self::with_gpus(Arc::new(GpuMonitor::nvml()))
    }

    /// Open the machine's sensors, reading GPUs through `gpus` (shared with the built-in
    /// collector).
    pub fn with_gpus(gpus: Arc<GpuMonitor>) -> Result<SysinfoSensors, sysinfo::Error> {
        let mut system = System::new_with_specifics(
            RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing().with_usage()),
        )?;
        system.refresh_cpu_usage();
        Ok(SysinfoSensors {
            system: Mutex::new((system, Some(Instant::now()))),
            disks: Mutex::new(Disks::new()?),
            networks: Mutex::new(Networks::new()?),
            gpus,
        })
    }

    fn system(&self) -> MutexGuard<'_, (System, Option<Instant>)> {
        self.system.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SensorSource for SysinfoSensors {
    fn cpu(&self) -> Result<CpuStats, Error> {
        let mut guard = self.system();
        let (system, last) = &mut *guard;
        // CPU usage is a difference between two readings: refresh only when the previous
        // one is old enough to be meaningful, otherwise report the previous figures.
        if last.is_none_or(|t| t.elapsed() >= sysinfo::MINIMUM_CPU_UPDATE_INTERVAL) {
            system.refresh_cpu_usage();
            *last = Some(Instant::now());
        }
        let load =
            System::load_average().map_err(|e| Error::Unavailable(format!("load average: {e}")))?;
        Ok(CpuStats {
            usage_percent: f64::from(system.global_cpu_usage()),
            per_core: system.cpus().iter().map(|c| f64::from(c.usage())).collect(),
            load1: load.one,
            load5: load.five,
            load15: load.fifteen,
        })
    }

    fn memory(&self) -> Result<MemoryStats, Error> {
        let mut guard = self.system();
        let system = &mut guard.0;
        system.refresh_memory_specifics(MemoryRefreshKind::everything());
        Ok(MemoryStats {
            total_bytes: system.total_memory(),
            used_bytes: system.used_memory(),
            available_bytes: system.available_memory(),
            swap_total_bytes: system.total_swap(),
            swap_used_bytes: system.used_swap(),
        })
    }

    fn uptime_seconds(&self) -> u64 {
        System::uptime().unwrap_or(0)
    }

    fn disks(&self) -> Result<Vec<Disk>, Error> {
        let mut disks = self.disks.lock().unwrap_or_else(|e| e.into_inner());
        disks.refresh(true);
        Ok(disks
            .iter()
            .map(|d| {
                let usage = d.usage();
                Disk {
                    mount: d.mount_point().to_string_lossy().into_owned(),
                    device: d.name().to_string_lossy().into_owned(),
                    fs: d.file_system().to_string_lossy().into_owned(),
                    total_bytes: d.total_space(),
                    available_bytes: d.available_space(),
                    read_bytes: usage.total_read_bytes,
                    written_bytes: usage.total_written_bytes,
                }
            })
            .collect())
    }

    fn networks(&self) -> Result<Vec<Network>, Error> {
        let mut networks = self.networks.lock().unwrap_or_else(|e| e.into_inner());
        networks.refresh(true);
        let mut list: Vec<Network> = networks
            .iter()
            .map(|(name, n)| Network {
                name: name.to_string_lossy().into_owned(),
                rx_bytes: n.total_received(),
                tx_bytes: n.total_transmitted(),
                rx_packets: n.total_packets_received(),
                tx_packets: n.total_packets_transmitted(),
                rx_errors: n.total_errors_on_received(),
                tx_errors: n.total_errors_on_transmitted(),
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(list)
    }

    fn processes(&self, name: Option<&str>) -> Result<Vec<Process>, Error> {
        let mut guard = self.system();
        let system = &mut guard.0;
        system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            // Processes, not their threads (which share the name and memory).
            ProcessRefreshKind::nothing()
                .without_tasks()
                .with_cpu()
                .with_memory()
                .with_cmd(UpdateKind::OnlyIfNotSet),
        );
        let mut list: Vec<Process> = system
            .processes()
            .values()
            .filter(|p| name.is_none_or(|n| p.name().to_string_lossy().contains(n)))
            .map(|p| Process {
                pid: p.pid().as_u32(),
                name: p.name().to_string_lossy().into_owned(),
                cmd: p
                    .cmd()
                    .iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" "),
                state: p.status().to_string().to_lowercase(),
                cpu_percent: f64::from(p.cpu_usage()),
                memory_bytes: p.memory(),
                run_seconds: p.run_time(),
            })
            .collect();
        list.sort_by_key(|p| p.pid);
        Ok(list)
    }

    fn temperatures(&self) -> Result<Vec<Temperature>, Error> {
        let components = Components::new_with_refreshed_list()
            .map_err(|e| Error::Unavailable(format!("temperature sensors: {e}")))?;
        Ok(components
            .iter()
            .filter_map(|c| {
                Some(Temperature {
                    label: c.label().to_string(),
                    celsius: f64::from(c.temperature()?),
                    critical_celsius: c.critical().map(f64::from),
                })
            })
            .collect())
    }

    fn gpus(&self) -> Result<Vec<Gpu>, Error> {
        self.gpus
            .read()
            .map(|snapshot| snapshot.gpus)
            .map_err(Error::Unavailable)
    }

    fn check_port(&self, host: &str, port: u16, timeout: Duration) -> Result<PortStatus, Error> {
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|e| Error::Invalid(format!("cannot resolve {host}:{port}: {e}")))?
            .next()
            .ok_or_else(|| Error::NotFound(format!("{host} has no address")))?;
        let started = Instant::now();
        let open = TcpStream::connect_timeout(&addr, timeout).is_ok();
        Ok(PortStatus {
            open,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    fn check_http(&self, url: &str, timeout: Duration) -> Result<HttpStatus, Error> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::Invalid(format!("not an http(s) URL: {url:?}")));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            // A check reaches its target directly, never through an environment proxy.
            .proxy(None)
            .user_agent("tocsin-check")
            .build()
            .into();
        let started = Instant::now();
        let response = agent
            .get(url)
            .call()
            .map_err(|e| Error::Unavailable(format!("GET {url}: {e}")))?;
        Ok(HttpStatus {
            status: response.status().as_u16(),
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    fn unit(&self, name: &str) -> Result<UnitStatus, Error> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "@._-:\\".contains(c))
        {
            return Err(Error::Invalid(format!("not a unit name: {name:?}")));
        }
        let output = Command::new("systemctl")
            .args(["show", name, "--property=ActiveState,SubState,LoadState"])
            .output()
            .map_err(|e| Error::Unavailable(format!("systemctl: {e}")))?;
        if !output.status.success() {
            return Err(Error::Unavailable(format!(
                "systemctl show {name}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or("")
                .to_string()
        };
        if field("LoadState") == "not-found" {
            return Err(Error::NotFound(format!("unit {name}")));
        }
        Ok(UnitStatus {
            active_state: field("ActiveState"),
            sub_state: field("SubState"),
        })
    }
}

/// A guest's view of the `sensors` capability.
pub struct SensorsCtx<'a> {
    source: &'a dyn SensorSource,
}

impl<'a> SensorsCtx<'a> {
    /// Serve `source` to a guest.
    pub fn new(source: &'a dyn SensorSource) -> Self {
        SensorsCtx { source }
    }
}

/// A store type that can lend its guest the `sensors` capability.
pub trait SensorsView {
    /// The sensors for the current call.
    fn sensors(&mut self) -> SensorsCtx<'_>;
}

struct SensorsData;
impl HasData for SensorsData {
    type Data<'a> = SensorsCtx<'a>;
}

/// Wire `sensors` into `linker`.
pub fn add_to_linker<T: SensorsView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    tocsin_bindings::sensors::add_to_linker::<T, SensorsData>(linker, |t| t.sensors())
}

/// A shared source, as stored in a guest's state.
pub type SharedSensors = Arc<dyn SensorSource>;

fn clamp_timeout(timeout_ms: u32) -> Duration {
    Duration::from_millis(u64::from(timeout_ms)).min(MAX_CHECK_TIMEOUT)
}

impl Host for SensorsCtx<'_> {
    fn cpu(&mut self) -> Result<CpuStats, Error> {
        self.source.cpu()
    }
    fn memory(&mut self) -> Result<MemoryStats, Error> {
        self.source.memory()
    }
    fn uptime_seconds(&mut self) -> u64 {
        self.source.uptime_seconds()
    }
    fn disks(&mut self) -> Result<Vec<Disk>, Error> {
        self.source.disks()
    }
    fn networks(&mut self) -> Result<Vec<Network>, Error> {
        self.source.networks()
    }
    fn processes(&mut self, name: Option<String>) -> Result<Vec<Process>, Error> {
        self.source.processes(name.as_deref())
    }
    fn temperatures(&mut self) -> Result<Vec<Temperature>, Error> {
        self.source.temperatures()
    }
    fn gpus(&mut self) -> Result<Vec<Gpu>, Error> {
        self.source.gpus()
    }
    fn check_port(
        &mut self,
        host: String,
        port: u16,
        timeout_ms: u32,
    ) -> Result<PortStatus, Error> {
        self.source
            .check_port(&host, port, clamp_timeout(timeout_ms))
    }
    fn check_http(&mut self, url: String, timeout_ms: u32) -> Result<HttpStatus, Error> {
        self.source.check_http(&url, clamp_timeout(timeout_ms))
    }
    fn unit(&mut self, name: String) -> Result<UnitStatus, Error> {
        self.source.unit(&name)
    }
}
