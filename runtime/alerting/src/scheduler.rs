//! Runs every rule and scorer on its interval on one thread (a round of 1,000 rules takes
//! ~80 ms; one thread keeps evaluation order and store writes simple), routes alerts every
//! second, records `alerts_firing{severity}` every 15 s, and keeps the newest evaluation
//! of each rule and scorer on a board the API reads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tocsin_engine::{GuestKind, GuestStats};
use tocsin_policy::LoadedPolicy;
use tocsin_store::{AlertPhase, Sample, Store};

use crate::router::{Router, deliver_log_channel};
use crate::rule::{Evaluation, Rule};
use crate::scoring::{ScoreRound, Scorer};

/// The newest evaluation and the guest counters of every rule and scorer.
#[derive(Debug, Default)]
pub struct Board {
    rules: RwLock<BTreeMap<String, (Option<Evaluation>, GuestStats)>>,
    scorers: RwLock<BTreeMap<String, (Option<ScoreRound>, GuestStats)>>,
    quarantined: RwLock<BTreeSet<String>>,
    alerts: RwLock<Vec<crate::router::AlertView>>,
}

fn set<T>(
    map: &RwLock<BTreeMap<String, (Option<T>, GuestStats)>>,
    name: &str,
    v: Option<T>,
    stats: GuestStats,
) {
    let mut map = map.write().unwrap_or_else(|e| e.into_inner());
    let entry = map
        .entry(name.to_string())
        .or_insert_with(|| (None, GuestStats::default()));
    if v.is_some() {
        entry.0 = v;
    }
    entry.1 = stats;
}

fn snapshot<T: Clone>(
    map: &RwLock<BTreeMap<String, (Option<T>, GuestStats)>>,
) -> Vec<(String, Option<T>, GuestStats)> {
    map.read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, (e, s))| (k.clone(), e.clone(), s.clone()))
        .collect()
}

impl Board {
    /// A new, empty board.
    pub fn new() -> Arc<Board> {
        Arc::new(Board::default())
    }

    /// Rule names with their newest evaluation (if any yet) and counters.
    pub fn snapshot(&self) -> Vec<(String, Option<Evaluation>, GuestStats)> {
        snapshot(&self.rules)
    }

    /// Every firing and resolved alert as other systems see it, from the newest routing
    /// pass (once a second).
    pub fn alert_views(&self) -> Vec<crate::router::AlertView> {
        self.alerts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Scorer names with their newest round (if any yet) and counters.
    pub fn scores(&self) -> Vec<(String, Option<ScoreRound>, GuestStats)> {
        snapshot(&self.scorers)
    }

    /// Whether `name` is quarantined.
    pub fn is_quarantined(&self, name: &str) -> bool {
        self.quarantined
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(name)
    }

    fn quarantine(&self, name: &str, on: bool) {
        let mut q = self.quarantined.write().unwrap_or_else(|e| e.into_inner());
        if on {
            q.insert(name.to_string());
        } else {
            q.remove(name);
        }
    }

    fn forget(&self, name: &str) {
        self.rules
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        self.scorers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        self.quarantine(name, false);
    }
}

/// A change to the running set, applied between two evaluations.
#[derive(Debug)]
pub enum Command {
    /// Start running this policy, replacing the running version of the same name.
    Upsert(Box<LoadedPolicy>),
    /// Stop running the policy of this name.
    Remove(String),
}

/// The handle that changes what the scheduler runs.
pub type Control = std::sync::mpsc::Sender<Command>;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Delay of the first runs after start.
const FIRST_RUN_MS: i64 = 2000;

/// Something run on an interval.
enum Job {
    Rule(Box<Rule>),
    Scorer(Box<Scorer>),
}

/// A job with its schedule and failure policy.
struct Slot {
    job: Job,
    due: i64,
    quarantine_after: u64,
    quarantined: bool,
}

impl Job {
    fn from_policy(p: &LoadedPolicy) -> Option<Job> {
        match p.manifest.kind {
            GuestKind::AlertRule => Some(Job::Rule(Box::new(Rule::from_policy(p)))),
            GuestKind::Scorer => Some(Job::Scorer(Box::new(Scorer::from_policy(p)))),
            _ => None,
        }
    }

    fn name(&self) -> &str {
        match self {
            Job::Rule(r) => r.name(),
            Job::Scorer(s) => s.name(),
        }
    }

    fn stats(&self) -> GuestStats {
        match self {
            Job::Rule(r) => r.stats(),
            Job::Scorer(s) => s.stats(),
        }
    }

    fn interval_ms(&self) -> i64 {
        match self {
            Job::Rule(r) => r.interval_ms(),
            Job::Scorer(s) => s.interval_ms(),
        }
    }

    fn run(&mut self, store: &Store, board: &Board, now: i64) {
        match self {
            Job::Rule(r) => match r.evaluate(store, now) {
                Ok(eval) => set(&board.rules, r.name(), Some(eval), r.stats()),
                Err(e) => tracing::error!(rule = %r.name(), error = %e, "evaluation not stored"),
            },
            Job::Scorer(s) => match s.evaluate(store, now) {
                Ok(round) => set(&board.scorers, s.name(), Some(round), s.stats()),
                Err(e) => tracing::error!(scorer = %s.name(), error = %e, "score not stored"),
            },
        }
    }
}

/// Start the scheduler thread; it runs what the returned [`Control`] tells it to until
/// `stop` is set. `router` turns alerts into notifications (ticked every second) and the
/// `log` channel is delivered here.
pub fn spawn(
    router: Router,
    store: Arc<Store>,
    board: Arc<Board>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(JoinHandle<()>, Control)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("alert-rules".into())
        .spawn(move || run(rx, router, &store, &board, &stop))?;
    Ok((handle, tx))
}

/// Once a second: route and deliver to the log; every 15 s also record firing counts.
struct Housekeeping {
    routed: i64,
    counted: i64,
}

impl Housekeeping {
    fn tick(&mut self, router: &Router, store: &Store, board: &Board) {
        let now = now_ms();
        if now - self.routed < 1000 {
            return;
        }
        self.routed = now;
        let report = router.tick(store, now);
        if let Ok(r) = &report {
            *board.alerts.write().unwrap_or_else(|e| e.into_inner()) = r.alerts.clone();
        }
        match report {
            Ok(report) if now - self.counted >= 15_000 => {
                self.counted = now;
                let batch: Vec<Sample> = report
                    .firing
                    .iter()
                    .map(|(severity, n)| Sample {
                        name: "alerts_firing".into(),
                        labels: vec![("severity".into(), severity.clone())],
                        ts_ms: now,
                        value: *n as f64,
                    })
                    .collect();
                if let Err(e) = store.ingest(&batch) {
                    tracing::error!(error = %e, "recording firing alerts failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "routing alerts failed"),
        }
        if let Err(e) = deliver_log_channel(store, now) {
            tracing::error!(error = %e, "delivering to the log failed");
        }
    }
}

/// A removed rule's alerts end: what was active is recorded as resolved in the history,
/// and every record goes (the router then tells its groups they resolved).
fn retire_alerts(store: &Store, rule: &str, now: i64) -> Result<(), tocsin_store::StoreError> {
    let records = store.alerts_of(rule)?;
    let events: Vec<tocsin_store::AlertEvent> = records
        .iter()
        .filter(|r| r.phase != AlertPhase::Resolved && r.phase != AlertPhase::Pending)
        .map(|r| {
            let mut alert = r.clone();
            alert.phase = AlertPhase::Resolved;
            alert.resolved_at_ms = Some(now);
            alert
                .annotations
                .push(("resolved_because".into(), "rule removed".into()));
            tocsin_store::AlertEvent {
                ts_ms: now,
                kind: "resolved".into(),
                alert,
            }
        })
        .collect();
    let keys: Vec<(&str, &str)> = records.iter().map(|r| (rule, r.key.as_str())).collect();
    if !keys.is_empty() {
        store.save_alerts_with_history(&[], &keys, &events, true)?;
    }
    Ok(())
}

/// Apply a command between evaluations.
fn apply(
    cmd: Command,
    slots: &mut Vec<Slot>,
    router: &mut Router,
    board: &Board,
    store: &Store,
    first_run: i64,
) {
    match cmd {
        Command::Upsert(policy) => {
            let Some(job) = Job::from_policy(&policy) else {
                return;
            };
            let name = policy.name.clone();
            router.set_rule(
                &name,
                policy
                    .manifest
                    .rule
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                policy.manifest.mode == tocsin_policy::Mode::Shadow,
            );
            let slot = Slot {
                // A new job runs after the collectors' next round.
                due: (now_ms() + FIRST_RUN_MS).max(first_run),
                quarantine_after: u64::from(policy.manifest.failure.quarantine_after),
                quarantined: false,
                job,
            };
            match &slot.job {
                Job::Rule(r) => set(&board.rules, &name, None, r.stats()),
                Job::Scorer(s) => set(&board.scorers, &name, None, s.stats()),
            }
            board.quarantine(&name, false);
            match slots.iter_mut().find(|s| s.job.name() == name) {
                // The new version keeps the old one's place in the schedule.
                Some(old) => {
                    *old = Slot {
                        due: old.due,
                        ..slot
                    }
                }
                None => slots.push(slot),
            }
            tracing::info!(policy = %name, "now running this version");
        }
        Command::Remove(name) => {
            slots.retain(|s| s.job.name() != name);
            board.forget(&name);
            router.forget_rule(&name);
            if let Err(e) = retire_alerts(store, &name, now_ms()) {
                tracing::error!(rule = %name, error = %e, "alerts of a removed rule not cleared");
            }
            tracing::info!(policy = %name, "stopped");
        }
    }
}

fn run(
    rx: std::sync::mpsc::Receiver<Command>,
    mut router: Router,
    store: &Store,
    board: &Board,
    stop: &AtomicBool,
) {
    // First runs after the collectors' first round.
    let first_run = now_ms() + FIRST_RUN_MS;
    let mut house = Housekeeping {
        routed: 0,
        counted: 0,
    };
    let mut slots: Vec<Slot> = Vec::new();
    let mut wait = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        // Sleep until the next job is due, or a command arrives: a new version starts
        // serving at once.
        match rx.recv_timeout(wait) {
            Ok(cmd) => {
                apply(cmd, &mut slots, &mut router, board, store, first_run);
                while let Ok(cmd) = rx.try_recv() {
                    apply(cmd, &mut slots, &mut router, board, store, first_run);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(wait);
            }
        }
        house.tick(&router, store, board);
        let now = now_ms();
        let next = (0..slots.len())
            .filter(|&i| !slots[i].quarantined)
            .min_by_key(|&i| slots[i].due);
        let Some(i) = next.filter(|&i| slots[i].due <= now) else {
            let until = next.map_or(now + 100, |i| slots[i].due);
            wait = Duration::from_millis((until - now).clamp(1, 100) as u64);
            continue;
        };
        wait = Duration::ZERO;
        let next = slots[i].due;
        let slot = &mut slots[i];
        slot.job.run(store, board, now);
        let stats = slot.job.stats();
        if slot.quarantine_after > 0 && stats.consecutive_faults >= slot.quarantine_after {
            slot.quarantined = true;
            board.quarantine(slot.job.name(), true);
            tracing::error!(
                policy = %slot.job.name(),
                faults = stats.consecutive_faults,
                last_error = ?stats.last_error,
                "quarantined: faulted {} times in a row; deploy a fixed version to lift it",
                stats.consecutive_faults
            );
        }
        // The next slot after now: a slow round skips slots instead of bunching.
        let interval = slot.job.interval_ms();
        let mut at = next + interval;
        if at <= now {
            at += ((now - at) / interval + 1) * interval;
        }
        slot.due = at;
    }
}
