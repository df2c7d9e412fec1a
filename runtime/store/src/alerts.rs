//! Alert state as the host's lifecycle keeps it: one record per (rule, alert key), written
//! in one durable transaction per evaluation, so a restart or a hot swap resumes pending
//! timers and does not re-fire firing alerts.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::records::{from_json, next_seq, to_json};
use crate::store::Store;
use crate::tables::{ALERT_EVENTS, ALERTS, META};

/// Where an alert stands in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertPhase {
    /// The condition holds, for less than the rule's `for`.
    Pending,
    /// The condition held for `for`: notified.
    Firing,
    /// It fired and the condition cleared.
    Resolved,
    /// The rule's inputs are missing.
    NoData,
    /// The rule's guest failed.
    Error,
}

/// One alert's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// The rule (policy name).
    pub rule: String,
    /// Canonical key of the alert's labels (`name=value,..` sorted).
    pub key: String,
    /// The alert's labels.
    pub labels: Vec<(String, String)>,
    /// Phase.
    pub phase: AlertPhase,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// When the condition started to hold (the `for` timer's start).
    pub active_since_ms: i64,
    /// When it began firing.
    pub fired_at_ms: Option<i64>,
    /// When it resolved.
    pub resolved_at_ms: Option<i64>,
    /// Newest evaluation that touched it.
    pub last_eval_ms: i64,
    /// Newest time the condition held (for `keep_firing_for`).
    pub last_active_ms: i64,
    /// Value from the newest evaluation (NaN when there is none).
    #[serde(with = "crate::records::any_f64")]
    pub value: f64,
    /// Summary, description and other annotations.
    pub annotations: Vec<(String, String)>,
    /// Newest notification sent for it.
    pub last_notified_ms: Option<i64>,
}

/// A change in an alert's life, kept as history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// When (ms).
    pub ts_ms: i64,
    /// `firing`, `resolved`, `no_data` or `error`.
    pub kind: String,
    /// The alert after the change.
    pub alert: AlertRecord,
}

impl Store {
    /// Write alert records and delete `(rule, key)` pairs in one transaction. `durable`:
    /// on disk when this returns (a phase changed); otherwise a cheap commit that readers
    /// see at once and that reaches the disk with the next durable commit of any kind —
    /// for refreshing values and evaluation times, which a crash may roll back harmlessly.
    pub fn save_alerts(
        &self,
        put: &[AlertRecord],
        delete: &[(&str, &str)],
        durable: bool,
    ) -> Result<(), StoreError> {
        self.save_alerts_with_history(put, delete, &[], durable)
    }

    /// [`Store::save_alerts`], appending `events` to the history in the same transaction.
    pub fn save_alerts_with_history(
        &self,
        put: &[AlertRecord],
        delete: &[(&str, &str)],
        events: &[AlertEvent],
        durable: bool,
    ) -> Result<(), StoreError> {
        let txn = if durable {
            self.durable_write()?
        } else {
            let mut txn = self.db().begin_write()?;
            txn.set_durability(redb::Durability::None)
                .map_err(|e| StoreError::Db(e.to_string()))?;
            txn
        };
        {
            let mut table = txn.open_table(ALERTS)?;
            for r in put {
                table.insert((r.rule.as_str(), r.key.as_str()), to_json(r)?.as_slice())?;
            }
            for key in delete {
                table.remove(*key)?;
            }
            if !events.is_empty() {
                let mut meta = txn.open_table(META)?;
                let mut history = txn.open_table(ALERT_EVENTS)?;
                for e in events {
                    let seq = next_seq(&mut meta, "next_alert_event")?;
                    history.insert((e.ts_ms, seq), to_json(e)?.as_slice())?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The alerts of one rule, by key.
    pub fn alerts_of(&self, rule: &str) -> Result<Vec<AlertRecord>, StoreError> {
        let read = self.db().begin_read()?;
        let table = read.open_table(ALERTS)?;
        let mut out = Vec::new();
        // Keys of `rule` sort between (rule, "") and (rule + "\0", "").
        let end = format!("{rule}\0");
        for row in table.range((rule, "")..(end.as_str(), ""))? {
            out.push(from_json(row?.1.value(), "alert")?);
        }
        Ok(out)
    }

    /// History at or after `since_ms`, newest first, at most `limit`; only `rule`'s when
    /// given.
    pub fn alert_history(
        &self,
        rule: Option<&str>,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<AlertEvent>, StoreError> {
        let read = self.db().begin_read()?;
        let table = read.open_table(ALERT_EVENTS)?;
        let mut out = Vec::new();
        for row in table.range((since_ms, 0)..)?.rev() {
            if out.len() >= limit {
                break;
            }
            let e: AlertEvent = from_json(row?.1.value(), "alert event")?;
            if rule.is_none_or(|r| r == e.alert.rule) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Drop history older than `cutoff_ms`; returns the events dropped.
    pub fn enforce_alert_history_retention(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let txn = self.durable_write()?;
        let mut n = 0;
        txn.open_table(ALERT_EVENTS)?
            .retain_in((i64::MIN, 0)..(cutoff_ms, 0), |_, _| {
                n += 1;
                false
            })?;
        txn.commit()?;
        Ok(n)
    }

    /// Every alert record, by rule and key.
    pub fn all_alerts(&self) -> Result<Vec<AlertRecord>, StoreError> {
        let read = self.db().begin_read()?;
        let table = read.open_table(ALERTS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            out.push(from_json(row?.1.value(), "alert")?);
        }
        Ok(out)
    }
}
