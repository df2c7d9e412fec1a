//! A loaded guest ([`Guest`]: compiled, checked, pre-instantiated) and a live instance of
//! it ([`GuestInstance`]) whose typed calls run under the guest's budgets.
//!
//! An instance is kept between calls (its memory is its own business) and thrown away
//! after any fault: the next call instantiates afresh from the `InstancePre`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tocsin_bindings::types::{Context, Health, Ingested, Rendered, Sample, Series, Signal};
use tocsin_bindings::{alert_rule, collector, ingest, scorer, template};
use wasmtime::component::InstancePre;
use wasmtime::{Store, Trap};

use crate::engine::Inner;
use crate::error::{CallError, LoadError};
use crate::grants::Grants;
use crate::limits::Budgets;
use crate::output::OutputSize;
use crate::state::GuestState;

/// The kinds of guest, one per WIT world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuestKind {
    /// `collector` world.
    Collector,
    /// `scorer` world.
    Scorer,
    /// `alert-rule` world.
    AlertRule,
    /// `template` world.
    Template,
    /// `ingest` world.
    Ingest,
}

impl GuestKind {
    /// The WIT world name.
    pub fn world(self) -> &'static str {
        match self {
            GuestKind::Collector => "collector",
            GuestKind::Scorer => "scorer",
            GuestKind::AlertRule => "alert-rule",
            GuestKind::Template => "template",
            GuestKind::Ingest => "ingest",
        }
    }
}

impl std::fmt::Display for GuestKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.world())
    }
}

enum Pre {
    Collector(collector::CollectorPre<GuestState>),
    Scorer(scorer::ScorerPre<GuestState>),
    AlertRule(alert_rule::AlertRulePre<GuestState>),
    Template(template::TemplatePre<GuestState>),
    Ingest(ingest::IngestPre<GuestState>),
}

enum Bindings {
    Collector(collector::Collector),
    Scorer(scorer::Scorer),
    AlertRule(alert_rule::AlertRule),
    Template(template::Template),
    Ingest(ingest::Ingest),
}

/// Upper bounds (µs) of the call-duration histogram: 50 µs to 1 s.
pub const CALL_BUCKETS_US: [u64; 10] = [
    50, 100, 250, 500, 1_000, 5_000, 10_000, 50_000, 250_000, 1_000_000,
];

/// Counters of one guest, across all its instances.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GuestStats {
    /// Calls made.
    pub calls: u64,
    /// Calls that returned normally (including the guest's own error values).
    pub ok: u64,
    /// Deadline exceeded.
    pub deadline: u64,
    /// Memory (or table/instance) cap hit.
    pub memory: u64,
    /// Output cap exceeded.
    pub output: u64,
    /// Traps.
    pub trap: u64,
    /// The guest's own error values.
    pub failed: u64,
    /// Instantiations (the first, and one after each fault).
    pub instantiations: u64,
    /// Faults in a row, reset by a clean call.
    pub consecutive_faults: u64,
    /// Highest linear memory seen, in bytes.
    pub memory_high_water: usize,
    /// Total time in calls, in microseconds.
    pub busy_us: u64,
    /// Calls by duration: `call_buckets[i]` counts calls that took at most
    /// [`CALL_BUCKETS_US`]`[i]` µs (cumulative, as Prometheus histograms are); calls
    /// slower than the last bound count only in `calls`.
    pub call_buckets: [u64; CALL_BUCKETS_US.len()],
    /// The last error, as text.
    pub last_error: Option<String>,
}

struct Shared {
    engine: Arc<Inner>,
    name: String,
    kind: GuestKind,
    sha256: String,
    grants: Grants,
    budgets: Budgets,
    pre: Pre,
    stats: Mutex<GuestStats>,
}

/// A loaded, checked guest. Cheap to clone.
#[derive(Clone)]
pub struct Guest {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Guest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guest")
            .field("name", &self.shared.name)
            .field("kind", &self.shared.kind)
            .field("sha256", &self.shared.sha256)
            .finish()
    }
}

impl Guest {
    pub(crate) fn new(
        engine: Arc<Inner>,
        name: String,
        kind: GuestKind,
        sha256: String,
        grants: Grants,
        budgets: Budgets,
        pre: InstancePre<GuestState>,
    ) -> Result<Guest, LoadError> {
        let wrong = |e: wasmtime::Error| LoadError::WrongWorld {
            world: kind.world(),
            reason: format!("{e:#}"),
        };
        let pre = match kind {
            GuestKind::Collector => {
                Pre::Collector(collector::CollectorPre::new(pre).map_err(wrong)?)
            }
            GuestKind::Scorer => Pre::Scorer(scorer::ScorerPre::new(pre).map_err(wrong)?),
            GuestKind::AlertRule => {
                Pre::AlertRule(alert_rule::AlertRulePre::new(pre).map_err(wrong)?)
            }
            GuestKind::Template => Pre::Template(template::TemplatePre::new(pre).map_err(wrong)?),
            GuestKind::Ingest => Pre::Ingest(ingest::IngestPre::new(pre).map_err(wrong)?),
        };
        Ok(Guest {
            shared: Arc::new(Shared {
                engine,
                name,
                kind,
                sha256,
                grants,
                budgets,
                pre,
                stats: Mutex::new(GuestStats::default()),
            }),
        })
    }

    /// The name it was loaded under.
    pub fn name(&self) -> &str {
        &self.shared.name
    }
    /// Its kind.
    pub fn kind(&self) -> GuestKind {
        self.shared.kind
    }
    /// sha256 of the component bytes, hex.
    pub fn sha256(&self) -> &str {
        &self.shared.sha256
    }
    /// What it was granted.
    pub fn grants(&self) -> &Grants {
        &self.shared.grants
    }
    /// Its budgets.
    pub fn budgets(&self) -> &Budgets {
        &self.shared.budgets
    }
    /// A snapshot of its counters.
    pub fn stats(&self) -> GuestStats {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A handle that instantiates on first call and keeps the instance between calls.
    pub fn instance(&self) -> GuestInstance {
        GuestInstance {
            guest: self.clone(),
            live: None,
        }
    }
}

/// A live instance of a guest. Not shared between threads: each caller holds its own.
pub struct GuestInstance {
    guest: Guest,
    live: Option<(Store<GuestState>, Bindings)>,
}

impl std::fmt::Debug for GuestInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestInstance")
            .field("guest", &self.guest)
            .field("live", &self.live.is_some())
            .finish()
    }
}

type CallResult<R> = wasmtime::Result<Result<R, String>>;

impl GuestInstance {
    /// The guest this is an instance of.
    pub fn guest(&self) -> &Guest {
        &self.guest
    }

    /// Create a fresh store and instance now (normally done lazily by the first call).
    pub fn instantiate(&mut self) -> Result<(), CallError> {
        self.live = None;
        let engine = self.guest.shared.engine.clone();
        // A component's start code runs here, under the deadline: the ticker must tick.
        let _running = engine.ticker.enter();
        let shared = &self.guest.shared;
        let mut store = Store::new(
            &shared.engine.engine,
            GuestState::new(&shared.budgets, &shared.engine.providers),
        );
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.deadline_ticks());
        let bindings = match &shared.pre {
            Pre::Collector(p) => p.instantiate(&mut store).map(Bindings::Collector),
            Pre::Scorer(p) => p.instantiate(&mut store).map(Bindings::Scorer),
            Pre::AlertRule(p) => p.instantiate(&mut store).map(Bindings::AlertRule),
            Pre::Template(p) => p.instantiate(&mut store).map(Bindings::Template),
            Pre::Ingest(p) => p.instantiate(&mut store).map(Bindings::Ingest),
        };
        self.record(|s| s.instantiations += 1);
        match bindings {
            Ok(b) => {
                self.live = Some((store, b));
                Ok(())
            }
            Err(e) => {
                let err = classify(e, &store, &shared.budgets, 0);
                let err = match err {
                    CallError::Trap { message } => CallError::Instantiate(message),
                    other => other,
                };
                self.record(|s| {
                    s.calls += 1;
                    count_error(s, &err);
                });
                Err(err)
            }
        }
    }

    fn deadline_ticks(&self) -> u64 {
        let tick = self.guest.shared.engine.tick.as_nanos().max(1);
        let deadline = self.guest.shared.budgets.deadline().as_nanos();
        u64::try_from(deadline.div_ceil(tick))
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn record(&self, f: impl FnOnce(&mut GuestStats)) {
        f(&mut self
            .guest
            .shared
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner()));
    }

    fn call<R: OutputSize>(
        &mut self,
        call: &'static str,
        f: impl FnOnce(&Bindings, &mut Store<GuestState>) -> Option<CallResult<R>>,
    ) -> Result<R, CallError> {
        if self.live.is_none() {
            self.instantiate()?;
        }
        let ticks = self.deadline_ticks();
        let shared = self.guest.shared.clone();
        let Some((store, bindings)) = self.live.as_mut() else {
            return Err(CallError::Instantiate("instance missing".into()));
        };
        store.set_epoch_deadline(ticks);
        store.data_mut().limiter.hit = false;
        let stderr_mark = store.data().stderr.contents().len();
        let started = Instant::now();
        let running = shared.engine.ticker.enter();
        let outcome = f(bindings, store);
        drop(running);
        let Some(outcome) = outcome else {
            return Err(CallError::WrongKind {
                call,
                kind: shared.kind.world(),
            });
        };
        let elapsed = started.elapsed();
        let high_water = store.data().limiter.high_water;
        let result = match outcome {
            Ok(Ok(value)) => {
                let size = value.output_size();
                let limit = shared.budgets.output_bytes();
                if size > limit {
                    Err(CallError::OutputTooLarge { size, limit })
                } else {
                    Ok(value)
                }
            }
            Ok(Err(message)) => Err(CallError::Failed(message)),
            Err(e) => Err(classify(e, store, &shared.budgets, stderr_mark)),
        };
        if matches!(&result, Err(e) if e.is_fault()) {
            // A faulted instance may be in any state: never enter it again.
            self.live = None;
        }
        self.record(|s| {
            s.calls += 1;
            let took = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            s.busy_us = s.busy_us.saturating_add(took);
            for (bucket, bound) in s.call_buckets.iter_mut().zip(CALL_BUCKETS_US) {
                if took <= bound {
                    *bucket += 1;
                }
            }
            s.memory_high_water = s.memory_high_water.max(high_water);
            match &result {
                Ok(_) => {
                    s.ok += 1;
                    s.consecutive_faults = 0;
                }
                Err(e) => count_error(s, e),
            }
        });
        if let Err(e) = &result {
            tracing::debug!(guest = %shared.name, error = %e, "guest call failed");
        }
        result
    }

    /// `collector`: take one round of measurements.
    pub fn collect(&mut self, ctx: &Context) -> Result<Vec<Sample>, CallError> {
        self.call("collect", |b, store| match b {
            Bindings::Collector(c) => Some(c.call_collect(store, ctx)),
            _ => None,
        })
    }

    /// `scorer`: score from `input`.
    pub fn score(&mut self, ctx: &Context, input: &[Series]) -> Result<Health, CallError> {
        self.call("score", |b, store| match b {
            Bindings::Scorer(c) => Some(c.call_score(store, ctx, input)),
            _ => None,
        })
    }

    /// `alert-rule`: evaluate over `input`, knowing which instances are `active`.
    pub fn evaluate(
        &mut self,
        ctx: &Context,
        input: &[Series],
        active: &[Vec<(String, String)>],
    ) -> Result<Vec<Signal>, CallError> {
        self.call("evaluate", |b, store| match b {
            Bindings::AlertRule(c) => Some(c.call_evaluate(store, ctx, input, active)),
            _ => None,
        })
    }

    /// `template`: render `kind` from `vars`.
    pub fn render(&mut self, kind: &str, vars: &[(String, String)]) -> Result<Rendered, CallError> {
        self.call("render", |b, store| match b {
            Bindings::Template(c) => Some(c.call_render(store, kind, &vars.to_vec())),
            _ => None,
        })
    }

    /// `ingest`: parse one message.
    pub fn on_message(&mut self, topic: &str, payload: &[u8]) -> Result<Vec<Ingested>, CallError> {
        self.call("on-message", |b, store| match b {
            Bindings::Ingest(c) => Some(c.call_on_message(store, topic, payload)),
            _ => None,
        })
    }
}

fn count_error(s: &mut GuestStats, e: &CallError) {
    match e {
        CallError::DeadlineExceeded { .. } => s.deadline += 1,
        CallError::MemoryLimit { .. } => s.memory += 1,
        CallError::OutputTooLarge { .. } => s.output += 1,
        CallError::Failed(_) => s.failed += 1,
        CallError::Trap { .. } | CallError::Instantiate(_) | CallError::WrongKind { .. } => {
            s.trap += 1
        }
    }
    if e.is_fault() {
        s.consecutive_faults += 1;
    } else {
        s.consecutive_faults = 0;
    }
    s.last_error = Some(e.to_string());
}

/// Turn a wasmtime error from a call into the typed error it stands for.
fn classify(
    e: wasmtime::Error,
    store: &Store<GuestState>,
    budgets: &Budgets,
    stderr_mark: usize,
) -> CallError {
    let trap = e.downcast_ref::<Trap>().copied();
    if trap == Some(Trap::Interrupt) {
        return CallError::DeadlineExceeded {
            deadline: Duration::from_millis(budgets.deadline_ms),
        };
    }
    if store.data().limiter.hit {
        return CallError::MemoryLimit {
            limit_bytes: budgets.memory_bytes(),
        };
    }
    let stderr = store.data().stderr.contents();
    let printed = String::from_utf8_lossy(stderr.get(stderr_mark..).unwrap_or_default());
    let printed = printed.trim();
    let head = match trap {
        Some(t) => t.to_string(),
        None => format!("{e:#}"),
    };
    let message = if printed.is_empty() {
        head
    } else {
        // Keep the end of what it printed: that is where a panic message is.
        let tail: String = printed
            .chars()
            .rev()
            .take(1024)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("{head}; guest stderr: {tail}")
    };
    CallError::Trap { message }
}
