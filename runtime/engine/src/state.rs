//! What a guest's `Store` carries: its WASI context (nothing granted), its limiter, its
//! captured stderr, and the capabilities it may reach.

use std::sync::Arc;
use std::time::Duration;

use tocsin_bindings::sensors::{
    CpuStats, Disk, Gpu, HttpStatus, MemoryStats, Network, PortStatus, Process, Temperature,
    UnitStatus,
};
use tocsin_bindings::types::Error;
use tocsin_capabilities::Providers;
use tocsin_capabilities::metrics::{MetricsCtx, MetricsSource, MetricsView};
use tocsin_capabilities::sensors::{SensorSource, SensorsCtx, SensorsView, SharedSensors};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::limits::{Budgets, Limiter};

/// How much of a guest's stderr is kept (panic messages are read from it).
pub(crate) const STDERR_CAPACITY: usize = 64 * 1024;

pub(crate) struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) stderr: MemoryOutputPipe,
    sensors: SharedSensors,
    metrics: Arc<dyn MetricsSource>,
}

impl GuestState {
    pub(crate) fn new(budgets: &Budgets, providers: &Providers) -> GuestState {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        // No preopened directories, no environment, no arguments, no stdin, no network.
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        GuestState {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter::new(budgets),
            stderr,
            sensors: providers
                .sensors
                .clone()
                .unwrap_or_else(|| Arc::new(Unprovided)),
            metrics: providers
                .metrics
                .clone()
                .unwrap_or_else(|| Arc::new(Unprovided)),
        }
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl SensorsView for GuestState {
    fn sensors(&mut self) -> SensorsCtx<'_> {
        SensorsCtx::new(&*self.sensors)
    }
}

impl MetricsView for GuestState {
    fn metrics(&mut self) -> MetricsCtx<'_> {
        MetricsCtx::new(&*self.metrics)
    }
}

/// Stands in where a runtime has no sensors or metrics. Never reached through the linker (a
/// guest that imports a capability without a provider is refused at load); it keeps the
/// state total.
struct Unprovided;

fn unavailable<T>() -> Result<T, Error> {
    Err(Error::Unavailable("not provided by this runtime".into()))
}

impl MetricsSource for Unprovided {
    fn query_range(
        &self,
        _: &str,
        _: i64,
        _: i64,
        _: i64,
    ) -> Result<Vec<tocsin_bindings::types::Series>, Error> {
        unavailable()
    }
    fn latest(&self, _: &str) -> Result<Vec<tocsin_bindings::types::Sample>, Error> {
        unavailable()
    }
    fn rate(&self, _: &str, _: i64, _: i64) -> Result<Vec<tocsin_bindings::types::Sample>, Error> {
        unavailable()
    }
}

impl SensorSource for Unprovided {
    fn cpu(&self) -> Result<CpuStats, Error> {
        unavailable()
    }
    fn memory(&self) -> Result<MemoryStats, Error> {
        unavailable()
    }
    fn uptime_seconds(&self) -> u64 {
        0
    }
    fn disks(&self) -> Result<Vec<Disk>, Error> {
        unavailable()
    }
    fn networks(&self) -> Result<Vec<Network>, Error> {
        unavailable()
    }
    fn processes(&self, _: Option<&str>) -> Result<Vec<Process>, Error> {
        unavailable()
    }
    fn temperatures(&self) -> Result<Vec<Temperature>, Error> {
        unavailable()
    }
    fn gpus(&self) -> Result<Vec<Gpu>, Error> {
        unavailable()
    }
    fn check_port(&self, _: &str, _: u16, _: Duration) -> Result<PortStatus, Error> {
        unavailable()
    }
    fn check_http(&self, _: &str, _: Duration) -> Result<HttpStatus, Error> {
        unavailable()
    }
    fn unit(&self, _: &str) -> Result<UnitStatus, Error> {
        unavailable()
    }
}
