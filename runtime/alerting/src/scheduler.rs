//! Runs every rule on its interval on one thread (a round of 1,000 rules takes ~80 ms; one
//! thread keeps evaluation order and store writes simple), routes their alerts every
//! second, and keeps the newest evaluation of each rule on a board the API reads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tocsin_engine::GuestStats;
use tocsin_store::Store;

use crate::router::{Router, deliver_log_channel};
use crate::rule::{Evaluation, Rule};

/// The newest evaluation and the guest counters of every rule.
#[derive(Debug, Default)]
pub struct Board {
    rules: RwLock<BTreeMap<String, (Option<Evaluation>, GuestStats)>>,
}

impl Board {
    /// A new, empty board.
    pub fn new() -> Arc<Board> {
        Arc::new(Board::default())
    }

    fn set(&self, name: &str, eval: Option<Evaluation>, stats: GuestStats) {
        let mut rules = self.rules.write().unwrap_or_else(|e| e.into_inner());
        let entry = rules.entry(name.to_string()).or_default();
        if eval.is_some() {
            entry.0 = eval;
        }
        entry.1 = stats;
    }

    /// Rule names with their newest evaluation (if any yet) and counters.
    pub fn snapshot(&self) -> Vec<(String, Option<Evaluation>, GuestStats)> {
        self.rules
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, (e, s))| (k.clone(), e.clone(), s.clone()))
            .collect()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Start evaluating `rules` until `stop` is set; `router` turns their alerts into
/// notifications (ticked every second) and the `log` channel is delivered here.
pub fn spawn(
    rules: Vec<Rule>,
    router: Router,
    store: Arc<Store>,
    board: Arc<Board>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("alert-rules".into())
        .spawn(move || run(rules, &router, &store, &board, &stop))
}

/// Route and deliver to the log, at most once a second.
fn route(router: &Router, store: &Store, last: &mut i64) {
    let now = now_ms();
    if now - *last < 1000 {
        return;
    }
    *last = now;
    if let Err(e) = router.tick(store, now) {
        tracing::error!(error = %e, "routing alerts failed");
    }
    if let Err(e) = deliver_log_channel(store, now) {
        tracing::error!(error = %e, "delivering to the log failed");
    }
}

fn run(mut rules: Vec<Rule>, router: &Router, store: &Store, board: &Board, stop: &AtomicBool) {
    let mut routed = 0;
    let start = now_ms();
    for r in &rules {
        board.set(r.name(), None, r.stats());
    }
    // Spread first evaluations over a second so a large set does not start in one burst.
    let n = rules.len().max(1) as i64;
    let mut due: Vec<i64> = (0..rules.len() as i64)
        .map(|i| start + i * 1000 / n)
        .collect();
    while !stop.load(Ordering::Relaxed) {
        route(router, store, &mut routed);
        let Some((i, &next)) = due.iter().enumerate().min_by_key(|(_, t)| **t) else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        let now = now_ms();
        if next > now {
            std::thread::sleep(Duration::from_millis((next - now).min(200) as u64));
            continue;
        }
        let rule = &mut rules[i];
        match rule.evaluate(store, now) {
            Ok(eval) => board.set(rule.name(), Some(eval), rule.stats()),
            Err(e) => tracing::error!(rule = %rule.name(), error = %e, "evaluation not stored"),
        }
        // The next slot after now: a slow round skips slots instead of bunching.
        let interval = rule.interval_ms();
        let mut at = next + interval;
        if at <= now {
            at += ((now - at) / interval + 1) * interval;
        }
        due[i] = at;
    }
}
