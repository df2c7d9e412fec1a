//! The one wasmtime `Engine` of a process, its `Linker`, the epoch ticker thread and the
//! compile cache. Loading a guest goes through here: compile (cached) → check imports
//! against grants → pre-instantiate → check the world's exports.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tocsin_capabilities::Providers;
use wasmtime::component::Linker;

use crate::cache::{CacheOutcome, CompileCache};
use crate::error::LoadError;
use crate::grants::{Grants, check_imports};
use crate::guest::{Guest, GuestKind};
use crate::limits::Budgets;
use crate::state::GuestState;

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Directory for compiled `.cwasm` files; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// How often the epoch advances: the granularity of every deadline.
    pub epoch_tick: Duration,
    /// Wasm stack a guest may use before a stack-overflow trap.
    pub max_wasm_stack: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            cache_dir: None,
            epoch_tick: Duration::from_millis(1),
            max_wasm_stack: 512 * 1024,
        }
    }
}

/// The sandboxed engine. Cheap to clone; the ticker stops when the last clone drops.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) engine: wasmtime::Engine,
    linker: Linker<GuestState>,
    cache: CompileCache,
    pub(crate) providers: Providers,
    pub(crate) tick: Duration,
    pub(crate) ticker: Ticker,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("cache", &self.inner.cache)
            .field("providers", &self.inner.providers)
            .field("tick", &self.inner.tick)
            .finish()
    }
}

/// The epoch ticker: advances the engine's epoch every tick while any guest code runs,
/// and sleeps while none does (an idle runtime costs no wake-ups per millisecond).
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

/// Guest code is running while this lives: the ticker ticks.
pub(crate) struct Running<'a>(&'a Ticker);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Ticker {
    fn start(engine: wasmtime::Engine, tick: Duration) -> Result<Ticker, LoadError> {
        let stop = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicUsize::new(0));
        let (flag, busy) = (stop.clone(), active.clone());
        let thread = std::thread::Builder::new()
            .name("tocsin-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    if busy.load(Ordering::Acquire) == 0 {
                        // Woken by the first `enter`; an unpark that came first makes
                        // this return at once, so no start is missed.
                        std::thread::park_timeout(Duration::from_secs(1));
                        continue;
                    }
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| LoadError::Link(format!("cannot start epoch ticker: {e}")))?;
        Ok(Ticker {
            stop,
            active,
            thread: Some(thread),
        })
    }

    /// Mark guest code as running until the guard drops.
    pub(crate) fn enter(&self) -> Running<'_> {
        if self.active.fetch_add(1, Ordering::AcqRel) == 0
            && let Some(t) = &self.thread
        {
            t.thread().unpark();
        }
        Running(self)
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Engine {
    /// Build the engine, link WASI (nothing granted) and the provided capabilities, and
    /// start the epoch ticker.
    pub fn new(config: EngineConfig, providers: Providers) -> Result<Engine, LoadError> {
        let link = |e: wasmtime::Error| LoadError::Link(format!("{e:#}"));
        let mut wasm = wasmtime::Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(config.max_wasm_stack)
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = wasmtime::Engine::new(&wasm).map_err(link)?;

        let mut linker: Linker<GuestState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(link)?;
        if providers.sensors.is_some() {
            tocsin_capabilities::sensors::add_to_linker(&mut linker).map_err(link)?;
        }
        if providers.metrics.is_some() {
            tocsin_capabilities::metrics::add_to_linker(&mut linker).map_err(link)?;
        }

        let ticker = Ticker::start(engine.clone(), config.epoch_tick)?;
        Ok(Engine {
            inner: Arc::new(Inner {
                engine,
                linker,
                cache: CompileCache::new(config.cache_dir),
                providers,
                tick: config.epoch_tick,
                ticker,
            }),
        })
    }

    /// Compile `bytes` (or take them from the cache) without loading them as a guest.
    pub fn compile(
        &self,
        bytes: &[u8],
    ) -> Result<(wasmtime::component::Component, CacheOutcome), LoadError> {
        let (component, outcome, _) = self.inner.cache.load(&self.inner.engine, bytes)?;
        Ok((component, outcome))
    }

    /// Load a guest of `kind` from component `bytes`, allowed only what `grants` names.
    pub fn load(
        &self,
        name: &str,
        bytes: &[u8],
        kind: GuestKind,
        grants: Grants,
        budgets: Budgets,
    ) -> Result<Guest, LoadError> {
        let (component, outcome, sha256) = self.inner.cache.load(&self.inner.engine, bytes)?;
        let imports = check_imports(
            &self.inner.engine,
            &component.component_type(),
            &grants,
            &self.inner.providers,
        )?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        tracing::debug!(guest = name, %sha256, ?outcome, ?imports, "guest loaded");
        Guest::new(
            self.inner.clone(),
            name.to_string(),
            kind,
            sha256,
            grants,
            budgets,
            pre,
        )
    }

    /// Whether the ticker is running (it is, for as long as the engine lives).
    pub fn is_ticking(&self) -> bool {
        self.inner
            .ticker
            .thread
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }
}
