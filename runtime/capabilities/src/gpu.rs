//! NVIDIA GPUs: the [`GpuDriver`] seam, its NVML implementation (nvml-wrapper, which loads
//! `libnvidia-ml.so.1` at run time) and [`GpuMonitor`], which every reader shares. A
//! machine without a GPU or driver answers an empty list after one info line, never an
//! error loop; tests drive the monitor with a scripted driver.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tocsin_bindings::sensors::Gpu;

/// One read of every GPU. `xid_events` of each holds the XID codes seen since the
/// driver's previous read.
pub trait GpuDriver: Send {
    /// Read every GPU. An error loses this round only.
    fn read(&mut self) -> Result<Vec<Gpu>, String>;
}

/// What the monitor has seen of one GPU across reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuCounters {
    /// XID errors seen since the monitor started.
    pub xid_errors: u64,
    /// The newest XID code seen.
    pub last_xid: Option<u64>,
}

/// A reading of every GPU with the monitor's cumulative counters, by GPU index.
#[derive(Debug, Clone, Default)]
pub struct GpuSnapshot {
    /// This read.
    pub gpus: Vec<Gpu>,
    /// Counters per GPU index.
    pub counters: BTreeMap<u32, GpuCounters>,
}

enum State {
    /// Not tried yet: NVML is loaded on the first read.
    Unopened,
    /// No driver or no GPU: every read answers an empty list.
    Absent,
    Open(Box<dyn GpuDriver>),
}

/// The GPUs of this machine, shared by the built-in collector and guests' `sensors`.
pub struct GpuMonitor {
    state: Mutex<(State, BTreeMap<u32, GpuCounters>)>,
}

impl GpuMonitor {
    /// GPUs read through NVML, loaded on first use.
    pub fn nvml() -> GpuMonitor {
        GpuMonitor {
            state: Mutex::new((State::Unopened, BTreeMap::new())),
        }
    }

    /// GPUs read through `driver` (a test's scripted driver, or NVML opened elsewhere).
    pub fn with_driver(driver: Box<dyn GpuDriver>) -> GpuMonitor {
        GpuMonitor {
            state: Mutex::new((State::Open(driver), BTreeMap::new())),
        }
    }

    /// A machine without GPUs.
    pub fn none() -> GpuMonitor {
        GpuMonitor {
            state: Mutex::new((State::Absent, BTreeMap::new())),
        }
    }

    /// Read every GPU now. Errors of a working driver are returned (this round is lost);
    /// a missing driver is an empty list.
    pub fn read(&self) -> Result<GpuSnapshot, String> {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (state, counters) = &mut *guard;
        if matches!(state, State::Unopened) {
            *state = match NvmlDriver::open() {
                Ok(d) => State::Open(Box::new(d)),
                Err(why) => {
                    tracing::info!(reason = %why, "no NVIDIA GPU metrics on this machine");
                    State::Absent
                }
            };
        }
        let State::Open(driver) = state else {
            return Ok(GpuSnapshot::default());
        };
        let gpus = driver.read()?;
        for g in &gpus {
            let c = counters.entry(g.index).or_default();
            c.xid_errors += g.xid_events.len() as u64;
            if let Some(x) = g.xid_events.last() {
                c.last_xid = Some(*x);
            }
        }
        Ok(GpuSnapshot {
            counters: gpus
                .iter()
                .filter_map(|g| Some((g.index, counters.get(&g.index)?.clone())))
                .collect(),
            gpus,
        })
    }
}

/// The throttle reasons worth an operator's attention (idle and application clock
/// settings are normal), with the names they are reported under.
pub const THROTTLE_REASONS: [&str; 5] = [
    "sw_power_cap",
    "hw_slowdown",
    "hw_thermal_slowdown",
    "sw_thermal_slowdown",
    "hw_power_brake_slowdown",
];

/// The real driver: nvml-wrapper over `libnvidia-ml.so.1`.
struct NvmlDriver {
    nvml: &'static nvml_wrapper::Nvml,
    events: Option<nvml_wrapper::EventSet<'static>>,
    count: u32,
}

impl NvmlDriver {
    fn open() -> Result<NvmlDriver, String> {
        let nvml = nvml_wrapper::Nvml::init().map_err(|e| format!("NVML: {e}"))?;
        let count = nvml
            .device_count()
            .map_err(|e| format!("NVML device count: {e}"))?;
        if count == 0 {
            return Err("NVML reports no GPUs".into());
        }
        // One NVML handle for the life of the process: event sets borrow it.
        let nvml: &'static nvml_wrapper::Nvml = Box::leak(Box::new(nvml));
        let events = Self::xid_events(nvml, count);
        tracing::info!(
            gpus = count,
            xid_events = events.is_some(),
            "NVIDIA GPUs found"
        );
        Ok(NvmlDriver {
            nvml,
            events,
            count,
        })
    }

    /// An event set for critical XID errors of every GPU, where the driver supports it.
    fn xid_events(
        nvml: &'static nvml_wrapper::Nvml,
        count: u32,
    ) -> Option<nvml_wrapper::EventSet<'static>> {
        use nvml_wrapper::bitmasks::event::EventTypes;
        let mut set = nvml.create_event_set().ok()?;
        for i in 0..count {
            let device = nvml.device_by_index(i).ok()?;
            set = match device.register_events(EventTypes::CRITICAL_XID_ERROR, set) {
                Ok(s) => s,
                Err(e) => {
                    tracing::info!(gpu = i, error = %e, "XID events unavailable");
                    return None;
                }
            };
        }
        Some(set)
    }

    /// XID codes waiting in the event set, by GPU index.
    fn drain_xids(&self) -> BTreeMap<u32, Vec<u64>> {
        use nvml_wrapper::enums::event::XidError;
        let mut out: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        let Some(set) = &self.events else {
            return out;
        };
        // Bounded: a storm of events cannot hold the collector forever.
        for _ in 0..1000 {
            let Ok(ev) = set.wait(0) else { break };
            let index = ev.device.index().unwrap_or(u32::MAX);
            let code = match ev.event_data {
                Some(XidError::Value(v)) => v,
                _ => 0,
            };
            out.entry(index).or_default().push(code);
        }
        out
    }
}

impl GpuDriver for NvmlDriver {
    fn read(&mut self) -> Result<Vec<Gpu>, String> {
        use nvml_wrapper::bitmasks::device::ThrottleReasons as T;
        use nvml_wrapper::enum_wrappers::device::{
            Clock, EccCounter, MemoryError, TemperatureSensor,
        };
        let mut xids = self.drain_xids();
        let mut out = Vec::with_capacity(self.count as usize);
        for i in 0..self.count {
            let d = self
                .nvml
                .device_by_index(i)
                .map_err(|e| format!("GPU {i}: {e}"))?;
            let memory = d.memory_info().ok();
            let throttle = d.current_throttle_reasons().unwrap_or(T::empty());
            let reasons = [
                T::SW_POWER_CAP,
                T::HW_SLOWDOWN,
                T::HW_THERMAL_SLOWDOWN,
                T::SW_THERMAL_SLOWDOWN,
                T::HW_POWER_BRAKE_SLOWDOWN,
            ];
            out.push(Gpu {
                index: i,
                name: d.name().unwrap_or_default(),
                uuid: d.uuid().unwrap_or_default(),
                temperature_celsius: d
                    .temperature(TemperatureSensor::Gpu)
                    .map_or(f64::NAN, f64::from),
                utilization_percent: d.utilization_rates().map_or(f64::NAN, |u| f64::from(u.gpu)),
                memory_used_bytes: memory.as_ref().map_or(0, |m| m.used),
                memory_total_bytes: memory.as_ref().map_or(0, |m| m.total),
                power_watts: d
                    .power_usage()
                    .map_or(f64::NAN, |mw| f64::from(mw) / 1000.0),
                power_limit_watts: d
                    .enforced_power_limit()
                    .map_or(f64::NAN, |mw| f64::from(mw) / 1000.0),
                fan_percent: d.fan_speed(0).ok().map(f64::from),
                sm_clock_mhz: d.clock_info(Clock::SM).unwrap_or(0),
                throttle_reasons: reasons
                    .iter()
                    .zip(THROTTLE_REASONS)
                    .filter(|(flag, _)| throttle.contains(**flag))
                    .map(|(_, name)| name.to_string())
                    .collect(),
                ecc_corrected: d
                    .total_ecc_errors(MemoryError::Corrected, EccCounter::Aggregate)
                    .ok(),
                ecc_uncorrected: d
                    .total_ecc_errors(MemoryError::Uncorrected, EccCounter::Aggregate)
                    .ok(),
                pcie_replays: d.pcie_replay_counter().ok().map(u64::from),
                xid_events: xids.remove(&i).unwrap_or_default(),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scripted(Vec<Result<Vec<Gpu>, String>>);
    impl GpuDriver for Scripted {
        fn read(&mut self) -> Result<Vec<Gpu>, String> {
            if self.0.is_empty() {
                return Ok(Vec::new());
            }
            self.0.remove(0)
        }
    }

    fn gpu(xids: &[u64]) -> Gpu {
        Gpu {
            index: 0,
            name: "Test".into(),
            uuid: "GPU-0".into(),
            temperature_celsius: 50.0,
            utilization_percent: 10.0,
            memory_used_bytes: 1,
            memory_total_bytes: 2,
            power_watts: 100.0,
            power_limit_watts: 300.0,
            fan_percent: None,
            sm_clock_mhz: 1000,
            throttle_reasons: vec![],
            ecc_corrected: None,
            ecc_uncorrected: None,
            pcie_replays: None,
            xid_events: xids.to_vec(),
        }
    }

    #[test]
    fn xid_events_accumulate_across_reads_and_errors_lose_one_round() {
        let m = GpuMonitor::with_driver(Box::new(Scripted(vec![
            Ok(vec![gpu(&[])]),
            Ok(vec![gpu(&[79, 48])]),
            Err("GPU 0: lost".into()),
            Ok(vec![gpu(&[13])]),
        ])));
        assert_eq!(m.read().expect("test").counters[&0], GpuCounters::default());
        let c = m.read().expect("test").counters[&0].clone();
        assert_eq!((c.xid_errors, c.last_xid), (2, Some(48)));
        assert!(m.read().is_err());
        let c = m.read().expect("test").counters[&0].clone();
        assert_eq!((c.xid_errors, c.last_xid), (3, Some(13)));
    }

    #[test]
    fn no_driver_is_an_empty_list() {
        let none = GpuMonitor::none().read().expect("test");
        assert!(none.gpus.is_empty() && none.counters.is_empty());
        // On this machine (no NVIDIA driver) NVML fails to load: still an empty list,
        // and every later read too.
        let m = GpuMonitor::nvml();
        for _ in 0..3 {
            assert!(
                m.read()
                    .is_ok_and(|s| s.gpus.is_empty() || !s.gpus[0].uuid.is_empty())
            );
        }
    }
}
