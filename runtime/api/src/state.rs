//! Shared state of the API: start time, the loaded guests and the policies that failed,
//! the accepted tokens and the request limits.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use tocsin_alerting::{Board, Receiver};
use tocsin_engine::Guest;
use tocsin_engine::types::Sample;
use tocsin_notify::{ChartRules, Site, Templates};
use tocsin_store::Store;

use crate::auth::Tokens;

/// A metric family another part of the process adds to `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// Name (Prometheus rules).
    pub name: String,
    /// `counter` or `gauge`.
    pub kind: &'static str,
    /// Help text.
    pub help: String,
    /// Samples: labels and value.
    pub points: Vec<(Vec<(String, String)>, f64)>,
}

/// Something that adds families to `/metrics` on every scrape.
pub type MetricsSource = Arc<dyn Fn() -> Vec<Family> + Send + Sync>;

/// Limits every request is held to.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest request body (bytes); larger ones get 413.
    pub max_body_bytes: usize,
    /// Longest a handler may take; slower ones get 503.
    pub request_timeout: std::time::Duration,
    /// Serve `/metrics` without a token (for scrapers that cannot send one).
    pub metrics_public: bool,
    /// Add the newest stored value of every series to `/metrics`.
    pub metrics_export_series: bool,
    /// Whether the server speaks HTTPS (login cookies are then `Secure`).
    pub https: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            request_timeout: std::time::Duration::from_secs(30),
            metrics_public: false,
            metrics_export_series: false,
            https: false,
        }
    }
}

/// The latest round of one collector.
#[derive(Debug, Clone)]
pub struct Round {
    /// When it was collected (ms since the epoch).
    pub at_ms: i64,
    /// What it returned.
    pub samples: Vec<Sample>,
}

/// Why a deploy was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum DeployRefusal {
    /// The version asks for grants the running one does not have, and the deploy did not
    /// confirm them.
    NewGrants {
        /// The grants it adds.
        added: Vec<String>,
        /// The running version's grants.
        running: Vec<String>,
    },
    /// It does not load, check or pass its fixtures (the message says which and why).
    Invalid(String),
}

/// Changes to the running policy set that the API may ask for (implemented by the binary,
/// which owns the reloader).
pub trait PolicyAdmin: Send + Sync + std::fmt::Debug {
    /// Return `name` to its previous version; answers the version now running.
    fn rollback(&self, name: &str, actor: &str) -> Result<tocsin_store::PolicyVersion, String>;

    /// Deploy `manifest` with `component` as policy `name`; answers the version now running.
    fn deploy(
        &self,
        name: &str,
        manifest: &str,
        component: Vec<u8>,
        allow_new_grants: bool,
        actor: &str,
    ) -> Result<tocsin_store::PolicyVersion, DeployRefusal>;

    /// Replay stored history through rule `name` from `from` to `to` every `step` (ms):
    /// the alert changes it would have made, nothing written.
    fn backtest(
        &self,
        name: &str,
        from: i64,
        to: i64,
        step: i64,
    ) -> Result<Vec<(i64, tocsin_alerting::Event)>, String>;
}

/// What handlers read. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    started: Instant,
    guests: RwLock<Vec<Guest>>,
    load_errors: RwLock<Vec<String>>,
    latest: RwLock<BTreeMap<String, Round>>,
    store: Option<Arc<Store>>,
    board: Arc<Board>,
    admin: RwLock<Option<Arc<dyn PolicyAdmin>>>,
    templates: Templates,
    charts: ChartRules,
    site: RwLock<Site>,
    receivers: RwLock<Vec<Receiver>>,
    tokens: Tokens,
    limits: RwLock<Limits>,
    metrics_sources: Sources,
    fleet: RwLock<Option<Arc<tocsin_fleet::Stats>>>,
}

/// The added metrics sources.
#[derive(Default)]
struct Sources(RwLock<Vec<MetricsSource>>);

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.read().map(|v| v.len()).unwrap_or(0);
        write!(f, "{n} metrics source(s)")
    }
}

impl Default for AppState {
    fn default() -> Self {
        AppState::new()
    }
}

impl AppState {
    /// Empty state, started now, with no store.
    pub fn new() -> AppState {
        AppState::build(None)
    }

    /// Empty state, started now, serving `store`.
    pub fn with_store(store: Arc<Store>) -> AppState {
        AppState::build(Some(store))
    }

    fn build(store: Option<Arc<Store>>) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                started: Instant::now(),
                guests: RwLock::new(Vec::new()),
                load_errors: RwLock::new(Vec::new()),
                latest: RwLock::new(BTreeMap::new()),
                store,
                board: Board::new(),
                admin: RwLock::new(None),
                templates: Templates::default(),
                charts: ChartRules::default(),
                receivers: RwLock::new(Vec::new()),
                site: RwLock::new(Site::default()),
                tokens: Tokens::default(),
                limits: RwLock::new(Limits::default()),
                metrics_sources: Sources::default(),
                fleet: RwLock::new(None),
            }),
        }
    }

    /// The series store, when there is one.
    pub fn store(&self) -> Option<&Store> {
        self.inner.store.as_deref()
    }

    /// Give the API a way to change the running policy set.
    pub fn set_admin(&self, admin: Arc<dyn PolicyAdmin>) {
        *self.inner.admin.write().unwrap_or_else(|e| e.into_inner()) = Some(admin);
    }

    /// The policy admin, when the process has one.
    pub fn admin(&self) -> Option<Arc<dyn PolicyAdmin>> {
        self.inner
            .admin
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The alert rules' newest evaluations.
    pub fn board(&self) -> &Arc<Board> {
        &self.inner.board
    }

    /// A handle on the store, for blocking work off the async threads.
    pub fn store_handle(&self) -> Option<Arc<Store>> {
        self.inner.store.clone()
    }

    /// Replace the loaded guests and the load errors.
    pub fn set_guests(&self, guests: Vec<Guest>, errors: Vec<String>) {
        *self.inner.guests.write().unwrap_or_else(|e| e.into_inner()) = guests;
        *self
            .inner
            .load_errors
            .write()
            .unwrap_or_else(|e| e.into_inner()) = errors;
    }

    /// The loaded guests.
    pub fn guests(&self) -> Vec<Guest> {
        self.inner
            .guests
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Policies that did not load, with their reasons.
    pub fn load_errors(&self) -> Vec<String> {
        self.inner
            .load_errors
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Record the latest round of collector `name`.
    pub fn set_latest(&self, name: &str, round: Round) {
        self.inner
            .latest
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), round);
    }

    /// The latest round of every collector, by name.
    pub fn latest(&self) -> BTreeMap<String, Round> {
        self.inner
            .latest
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The template guests by kind (the reloader keeps them current).
    pub fn templates(&self) -> &Templates {
        &self.inner.templates
    }

    /// What charts know of each alert rule (the reloader keeps it current).
    pub fn charts(&self) -> &ChartRules {
        &self.inner.charts
    }

    /// Set the configured receivers (the only places `POST /api/notifications` sends to).
    pub fn set_receivers(&self, receivers: Vec<Receiver>) {
        *self
            .inner
            .receivers
            .write()
            .unwrap_or_else(|e| e.into_inner()) = receivers;
    }

    /// The configured receivers.
    pub fn receivers(&self) -> Vec<Receiver> {
        self.inner
            .receivers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Set the name and dashboard address messages use.
    pub fn set_site(&self, site: Site) {
        *self.inner.site.write().unwrap_or_else(|e| e.into_inner()) = site;
    }

    /// The name and dashboard address messages use.
    pub fn site(&self) -> Site {
        self.inner
            .site
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The tokens this server accepts.
    pub fn tokens(&self) -> &Tokens {
        &self.inner.tokens
    }

    /// Accept exactly the tokens in the store (call after changing them there).
    pub fn load_tokens(&self) -> Result<(), tocsin_store::StoreError> {
        if let Some(store) = self.store() {
            self.inner.tokens.replace(&store.tokens()?);
        }
        Ok(())
    }

    /// The MQTT fleet's counters (when the fleet runs).
    pub fn set_fleet(&self, stats: Arc<tocsin_fleet::Stats>) {
        *self.inner.fleet.write().unwrap_or_else(|e| e.into_inner()) = Some(stats);
    }

    /// The MQTT fleet's counters.
    pub fn fleet(&self) -> Option<Arc<tocsin_fleet::Stats>> {
        self.inner
            .fleet
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Set the request limits (read when the router is built).
    pub fn set_limits(&self, limits: Limits) {
        *self.inner.limits.write().unwrap_or_else(|e| e.into_inner()) = limits;
    }

    /// The request limits.
    pub fn limits(&self) -> Limits {
        self.inner
            .limits
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Add families to every `/metrics` page from now on.
    pub fn add_metrics(&self, source: MetricsSource) {
        self.inner
            .metrics_sources
            .0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(source);
    }

    /// The families the added sources answer now.
    pub fn extra_metrics(&self) -> Vec<Family> {
        let sources = self
            .inner
            .metrics_sources
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        sources.iter().flat_map(|s| s()).collect()
    }

    /// Seconds since start.
    pub fn uptime_seconds(&self) -> u64 {
        self.inner.started.elapsed().as_secs()
    }
}
