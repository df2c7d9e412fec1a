//! Runs every rule and scorer on its interval on one thread (a round of 1,000 rules takes
//! ~80 ms; one thread keeps evaluation order and store writes simple), routes alerts every
//! second, records `alerts_firing{severity}` every 15 s, and keeps the newest evaluation
//! of each rule and scorer on a board the API reads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tocsin_engine::GuestStats;
use tocsin_store::{Sample, Store};

use crate::router::{Router, deliver_log_channel};
use crate::rule::{Evaluation, Rule};
use crate::scoring::{ScoreRound, Scorer};

/// The newest evaluation and the guest counters of every rule and scorer.
#[derive(Debug, Default)]
pub struct Board {
    rules: RwLock<BTreeMap<String, (Option<Evaluation>, GuestStats)>>,
    scorers: RwLock<BTreeMap<String, (Option<ScoreRound>, GuestStats)>>,
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

    /// Scorer names with their newest round (if any yet) and counters.
    pub fn scores(&self) -> Vec<(String, Option<ScoreRound>, GuestStats)> {
        snapshot(&self.scorers)
    }
}

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

impl Job {
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

/// Start evaluating `rules` and `scorers` until `stop` is set; `router` turns alerts into
/// notifications (ticked every second) and the `log` channel is delivered here.
pub fn spawn(
    rules: Vec<Rule>,
    scorers: Vec<Scorer>,
    router: Router,
    store: Arc<Store>,
    board: Arc<Board>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    for r in &rules {
        set(&board.rules, r.name(), None, r.stats());
    }
    for s in &scorers {
        set(&board.scorers, s.name(), None, s.stats());
    }
    let jobs: Vec<Job> = rules
        .into_iter()
        .map(|r| Job::Rule(Box::new(r)))
        .chain(scorers.into_iter().map(|s| Job::Scorer(Box::new(s))))
        .collect();
    std::thread::Builder::new()
        .name("alert-rules".into())
        .spawn(move || run(jobs, &router, &store, &board, &stop))
}

/// Once a second: route and deliver to the log; every 15 s also record firing counts.
struct Housekeeping {
    routed: i64,
    counted: i64,
}

impl Housekeeping {
    fn tick(&mut self, router: &Router, store: &Store) {
        let now = now_ms();
        if now - self.routed < 1000 {
            return;
        }
        self.routed = now;
        match router.tick(store, now) {
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

fn run(mut jobs: Vec<Job>, router: &Router, store: &Store, board: &Board, stop: &AtomicBool) {
    let start = now_ms();
    let mut house = Housekeeping {
        routed: 0,
        counted: 0,
    };
    // First runs after the collectors' first round, spread over a second so a large set
    // does not start in one burst.
    let n = jobs.len().max(1) as i64;
    let mut due: Vec<i64> = (0..jobs.len() as i64)
        .map(|i| start + FIRST_RUN_MS + i * 1000 / n)
        .collect();
    while !stop.load(Ordering::Relaxed) {
        house.tick(router, store);
        let Some((i, &next)) = due.iter().enumerate().min_by_key(|(_, t)| **t) else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        let now = now_ms();
        if next > now {
            std::thread::sleep(Duration::from_millis((next - now).min(200) as u64));
            continue;
        }
        jobs[i].run(store, board, now);
        // The next slot after now: a slow round skips slots instead of bunching.
        let interval = jobs[i].interval_ms();
        let mut at = next + interval;
        if at <= now {
            at += ((now - at) / interval + 1) * interval;
        }
        due[i] = at;
    }
}
