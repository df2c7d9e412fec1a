//! Liveness of fleet clients: heartbeats move a client to `online`; a sweep moves clients
//! whose heartbeats stopped to `stale` and then `offline`; a Last-Will (or an explicit
//! goodbye) makes one `offline` at once. Every change of state keeps its timestamp.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::records::{from_json, to_json};
use crate::store::Store;
use crate::tables::HEARTBEATS;

/// Where a client stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LivenessState {
    /// Heartbeats arrive.
    Online,
    /// A heartbeat is overdue.
    Stale,
    /// Gone: its Last-Will arrived, or no heartbeat for the offline timeout.
    Offline,
}

/// A client's liveness record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Liveness {
    /// Client id.
    pub client: String,
    /// Current state.
    pub state: LivenessState,
    /// Since when it is in this state (ms).
    pub since_ms: i64,
    /// Newest heartbeat (ms).
    pub last_seen_ms: i64,
    /// Heartbeats received, all time.
    pub heartbeats: u64,
}

/// A change of state, for the caller to log, record as a series, or alert on.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Client id.
    pub client: String,
    /// State before (`None`: a new client).
    pub from: Option<LivenessState>,
    /// State after.
    pub to: LivenessState,
    /// When.
    pub at_ms: i64,
}

impl Store {
    /// Record heartbeats `(client, at)` in one durable transaction; returns the clients
    /// that changed state (new, or back from stale/offline).
    pub fn record_heartbeats(&self, beats: &[(&str, i64)]) -> Result<Vec<Transition>, StoreError> {
        self.update_liveness(beats.iter().map(|&(c, at)| (c, at, LivenessState::Online)))
    }

    /// Mark clients offline at once (Last-Will, goodbye).
    pub fn mark_offline(&self, clients: &[(&str, i64)]) -> Result<Vec<Transition>, StoreError> {
        self.update_liveness(
            clients
                .iter()
                .map(|&(c, at)| (c, at, LivenessState::Offline)),
        )
    }

    fn update_liveness<'a>(
        &self,
        updates: impl Iterator<Item = (&'a str, i64, LivenessState)>,
    ) -> Result<Vec<Transition>, StoreError> {
        let mut changed = Vec::new();
        let txn = self.durable_write()?;
        {
            let mut table = txn.open_table(HEARTBEATS)?;
            for (client, at_ms, to) in updates {
                let old: Option<Liveness> = match table.get(client)? {
                    Some(v) => Some(from_json(v.value(), "liveness")?),
                    None => None,
                };
                let mut rec = old.clone().unwrap_or(Liveness {
                    client: client.to_string(),
                    state: to,
                    since_ms: at_ms,
                    last_seen_ms: at_ms,
                    heartbeats: 0,
                });
                if to == LivenessState::Online {
                    // A late, reordered heartbeat does not move time backwards.
                    rec.last_seen_ms = rec.last_seen_ms.max(at_ms);
                    rec.heartbeats += 1;
                }
                let from = old.as_ref().map(|o| o.state);
                if from != Some(to) {
                    rec.state = to;
                    rec.since_ms = at_ms;
                    changed.push(Transition {
                        client: client.to_string(),
                        from,
                        to,
                        at_ms,
                    });
                }
                table.insert(client, to_json(&rec)?.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(changed)
    }

    /// Move clients whose newest heartbeat is older than `stale_after_ms` to `stale`, and
    /// older than `offline_after_ms` to `offline`, deciding and writing in one transaction
    /// (a heartbeat cannot slip in between). Returns the transitions.
    pub fn sweep_liveness(
        &self,
        now_ms: i64,
        stale_after_ms: i64,
        offline_after_ms: i64,
    ) -> Result<Vec<Transition>, StoreError> {
        let mut changed = Vec::new();
        let txn = self.durable_write()?;
        {
            let mut table = txn.open_table(HEARTBEATS)?;
            let mut due: Vec<Liveness> = Vec::new();
            for row in table.iter()? {
                let mut l: Liveness = from_json(row?.1.value(), "liveness")?;
                let quiet = now_ms.saturating_sub(l.last_seen_ms);
                let to = if quiet >= offline_after_ms {
                    LivenessState::Offline
                } else if quiet >= stale_after_ms {
                    LivenessState::Stale
                } else {
                    continue;
                };
                // Never from offline back to stale; only a heartbeat revives a client.
                let moves = matches!(
                    (l.state, to),
                    (LivenessState::Online, _) | (LivenessState::Stale, LivenessState::Offline)
                );
                if moves {
                    changed.push(Transition {
                        client: l.client.clone(),
                        from: Some(l.state),
                        to,
                        at_ms: now_ms,
                    });
                    l.state = to;
                    l.since_ms = now_ms;
                    due.push(l);
                }
            }
            for l in &due {
                table.insert(l.client.as_str(), to_json(l)?.as_slice())?;
            }
        }
        if changed.is_empty() {
            txn.abort()?;
        } else {
            txn.commit()?;
        }
        Ok(changed)
    }

    /// One client's record.
    pub fn liveness(&self, client: &str) -> Result<Option<Liveness>, StoreError> {
        let read = self.db().begin_read()?;
        let table = read.open_table(HEARTBEATS)?;
        match table.get(client)? {
            Some(v) => Ok(Some(from_json(v.value(), "liveness")?)),
            None => Ok(None),
        }
    }

    /// Every client's record, by id.
    pub fn all_liveness(&self) -> Result<Vec<Liveness>, StoreError> {
        let read = self.db().begin_read()?;
        let table = read.open_table(HEARTBEATS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            out.push(from_json(row?.1.value(), "liveness")?);
        }
        Ok(out)
    }
}
