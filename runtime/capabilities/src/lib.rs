//! Host implementations of the `tocsin:monitor` capability interfaces.
//!
//! One module per WIT host interface. Each module owns a trait for the real source (so
//! tests can drive it with a scripted double), a real implementation, and an
//! `add_to_linker` that wires the interface into a wasmtime `Linker` for any store type
//! that can hand out the capability. This crate talks to the outside world on a guest's
//! behalf; it never decides what a guest may do (grants are checked by the engine at load).

pub mod gpu;
pub mod metrics;
pub mod sensors;

/// The capability interfaces a guest may import, by WIT interface name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// `sensors`: local machine readings and service checks.
    Sensors,
    /// `metrics`: read the time-series store.
    Metrics,
    /// `logs`: read and write log records.
    Logs,
    /// `kv`: the guest's own persisted key-value namespace.
    Kv,
    /// `mqtt`: publish to granted topics.
    Mqtt,
    /// `pipes`: named pipes, command queues, process stdin.
    Pipes,
    /// `mail`: send mail to granted recipients.
    Mail,
}

impl Capability {
    /// Every capability, in WIT order.
    pub const ALL: [Capability; 7] = [
        Capability::Sensors,
        Capability::Metrics,
        Capability::Logs,
        Capability::Kv,
        Capability::Mqtt,
        Capability::Pipes,
        Capability::Mail,
    ];

    /// The WIT interface name (`sensors`, `kv`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Capability::Sensors => "sensors",
            Capability::Metrics => "metrics",
            Capability::Logs => "logs",
            Capability::Kv => "kv",
            Capability::Mqtt => "mqtt",
            Capability::Pipes => "pipes",
            Capability::Mail => "mail",
        }
    }

    /// The capability for a WIT interface name.
    pub fn from_name(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The capability providers a runtime has. A capability without a provider cannot be
/// granted: a guest that imports it is refused at load.
#[derive(Clone, Default)]
pub struct Providers {
    /// Local sensors.
    pub sensors: Option<std::sync::Arc<dyn sensors::SensorSource>>,
    /// The metrics store.
    pub metrics: Option<std::sync::Arc<dyn metrics::MetricsSource>>,
}

impl Providers {
    /// Providers for the local machine: real sensors (left out, with a warning, where the
    /// platform has none).
    pub fn local() -> Providers {
        Self::local_with_gpus(std::sync::Arc::new(gpu::GpuMonitor::nvml()))
    }

    /// Providers for the local machine, reading GPUs through `gpus`.
    pub fn local_with_gpus(gpus: std::sync::Arc<gpu::GpuMonitor>) -> Providers {
        let sensors = match sensors::SysinfoSensors::with_gpus(gpus) {
            Ok(s) => Some(std::sync::Arc::new(s) as std::sync::Arc<dyn sensors::SensorSource>),
            Err(e) => {
                tracing::warn!(error = %e, "no local sensors on this platform");
                None
            }
        };
        Providers {
            sensors,
            metrics: None,
        }
    }

    /// These providers, with `metrics` served from `source`.
    pub fn with_metrics(self, source: std::sync::Arc<dyn metrics::MetricsSource>) -> Providers {
        Providers {
            metrics: Some(source),
            ..self
        }
    }

    /// Whether this runtime can serve `cap`.
    pub fn provides(&self, cap: Capability) -> bool {
        match cap {
            Capability::Sensors => self.sensors.is_some(),
            Capability::Metrics => self.metrics.is_some(),
            _ => false,
        }
    }
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let provided: Vec<_> = Capability::ALL
            .into_iter()
            .filter(|c| self.provides(*c))
            .map(Capability::name)
            .collect();
        f.debug_struct("Providers")
            .field("provided", &provided)
            .finish()
    }
}
