//! The notification outbox: a message is enqueued durably with the alert change that
//! caused it, then delivered, retried with backoff, or given up — and its state says which.
//! A message the server accepted is marked with the server's reply, so a restart never
//! sends it twice.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::records::{from_json, next_seq, to_json};
use crate::store::Store;
use crate::tables::{META, OUTBOX, OUTBOX_DUE};

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// Waiting for its next attempt.
    Pending,
    /// Accepted by the receiving server.
    Delivered,
    /// Given up after its attempts.
    Failed,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewMessage {
    /// Channel name (`mail`, `webhook:ops`, `mqtt`, ...).
    pub channel: String,
    /// Recipient (address, URL, topic).
    pub recipient: String,
    /// Notification kind (`server_alert`, `daily_digest`, ...).
    pub kind: String,
    /// The rendered message or payload (channel-specific JSON).
    pub payload: serde_json::Value,
    /// Earliest delivery time (ms); now for most.
    pub not_before_ms: i64,
}

/// A message in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// Id, increasing.
    pub id: u64,
    /// What to send.
    pub message: NewMessage,
    /// State.
    pub delivery: Delivery,
    /// Attempts made.
    pub attempts: u32,
    /// Next attempt (pending messages).
    pub next_attempt_ms: i64,
    /// Error of the newest failed attempt.
    pub last_error: Option<String>,
    /// When it was accepted.
    pub delivered_ms: Option<i64>,
    /// The server's acceptance (SMTP reply, HTTP status).
    pub server_reply: Option<String>,
}

fn load(
    table: &impl ReadableTable<u64, &'static [u8]>,
    id: u64,
) -> Result<OutboxMessage, StoreError> {
    match table.get(id)? {
        Some(v) => from_json(v.value(), "outbox message"),
        None => Err(StoreError::Refused(format!("no outbox message {id}"))),
    }
}

/// Put `messages` in the outbox within `txn`; returns their ids.
pub(crate) fn insert_messages(
    txn: &redb::WriteTransaction,
    messages: &[NewMessage],
) -> Result<Vec<u64>, StoreError> {
    let mut ids = Vec::with_capacity(messages.len());
    let mut meta = txn.open_table(META)?;
    let mut outbox = txn.open_table(OUTBOX)?;
    let mut due = txn.open_table(OUTBOX_DUE)?;
    for m in messages {
        let id = next_seq(&mut meta, "next_outbox")?;
        let msg = OutboxMessage {
            id,
            message: m.clone(),
            delivery: Delivery::Pending,
            attempts: 0,
            next_attempt_ms: m.not_before_ms,
            last_error: None,
            delivered_ms: None,
            server_reply: None,
        };
        outbox.insert(id, to_json(&msg)?.as_slice())?;
        due.insert((m.not_before_ms, id), ())?;
        ids.push(id);
    }
    Ok(ids)
}

impl Store {
    /// Enqueue messages durably; returns their ids.
    pub fn enqueue(&self, messages: &[NewMessage]) -> Result<Vec<u64>, StoreError> {
        self.commit_flush(&[], messages)
    }

    /// The latest period the periodic job `job` enqueued for (see [`Store::enqueue_once`]).
    pub fn job_period(&self, job: &str) -> Result<Option<u64>, StoreError> {
        let read = self.db().begin_read()?;
        let meta = read.open_table(META)?;
        Ok(meta.get(format!("job:{job}").as_str())?.map(|v| v.value()))
    }

    /// Enqueue `messages` unless the periodic job `job` already did for `period` (or a
    /// later one): the check, the messages and the mark are one durable transaction, so a
    /// daily message is sent once a day across restarts. Returns whether it enqueued.
    pub fn enqueue_once(
        &self,
        job: &str,
        period: u64,
        messages: &[NewMessage],
    ) -> Result<bool, StoreError> {
        let key = format!("job:{job}");
        let txn = self.durable_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let done = meta.get(key.as_str())?.map(|v| v.value());
            if done.is_some_and(|d| d >= period) {
                return Ok(false);
            }
            meta.insert(key.as_str(), period)?;
        }
        insert_messages(&txn, messages)?;
        txn.commit()?;
        Ok(true)
    }

    /// Pending messages whose next attempt is at or before `now_ms`, oldest due first.
    pub fn due_messages(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        self.due(None, now_ms, limit)
    }

    /// [`Store::due_messages`] of one channel (each channel's deliverer takes its own, so
    /// a backlog on one never hides another's).
    pub fn due_messages_on(
        &self,
        channel: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        self.due(Some(channel), now_ms, limit)
    }

    fn due(
        &self,
        channel: Option<&str>,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let read = self.db().begin_read()?;
        let due = read.open_table(OUTBOX_DUE)?;
        let table = read.open_table(OUTBOX)?;
        let mut out = Vec::new();
        for row in due.range((i64::MIN, 0)..=(now_ms, u64::MAX))? {
            if out.len() >= limit {
                break;
            }
            let (_, id) = row?.0.value();
            let m = load(&table, id)?;
            if channel.is_none_or(|c| m.message.channel == c) {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Record that the server accepted message `id`.
    pub fn mark_delivered(&self, id: u64, at_ms: i64, reply: &str) -> Result<(), StoreError> {
        self.mark_all_delivered(&[id], at_ms, reply)
    }

    /// Record that the server accepted messages `ids` (sent together, as a digest), in
    /// one transaction.
    pub fn mark_all_delivered(
        &self,
        ids: &[u64],
        at_ms: i64,
        reply: &str,
    ) -> Result<(), StoreError> {
        self.update_messages(ids, |m| {
            m.attempts += 1;
            m.delivery = Delivery::Delivered;
            m.delivered_ms = Some(at_ms);
            m.server_reply = Some(reply.to_string());
            m.last_error = None;
        })
    }

    /// Move pending messages' next attempt to `at_ms` without counting an attempt (a
    /// recipient over its rate limit).
    pub fn reschedule(&self, ids: &[u64], at_ms: i64) -> Result<(), StoreError> {
        self.update_messages(ids, |m| m.next_attempt_ms = at_ms)
    }

    /// Record a failed attempt: retry at `retry_at_ms`, or give up when `None`.
    pub fn mark_attempt_failed(
        &self,
        id: u64,
        error: &str,
        retry_at_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        self.update_messages(&[id], |m| {
            m.attempts += 1;
            m.last_error = Some(error.to_string());
            match retry_at_ms {
                Some(at) => m.next_attempt_ms = at,
                None => m.delivery = Delivery::Failed,
            }
        })
    }

    /// Apply `f` to pending messages `ids` in one durable transaction (all or none).
    fn update_messages(
        &self,
        ids: &[u64],
        mut f: impl FnMut(&mut OutboxMessage),
    ) -> Result<(), StoreError> {
        let txn = self.durable_write()?;
        {
            let mut table = txn.open_table(OUTBOX)?;
            let mut due = txn.open_table(OUTBOX_DUE)?;
            for &id in ids {
                let mut m = load(&table, id)?;
                if m.delivery != Delivery::Pending {
                    return Err(StoreError::Refused(format!(
                        "outbox message {id} is already {:?}",
                        m.delivery
                    )));
                }
                due.remove((m.next_attempt_ms, id))?;
                f(&mut m);
                if m.delivery == Delivery::Pending {
                    due.insert((m.next_attempt_ms, id), ())?;
                }
                table.insert(id, to_json(&m)?.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// One message.
    pub fn outbox_message(&self, id: u64) -> Result<OutboxMessage, StoreError> {
        let read = self.db().begin_read()?;
        load(&read.open_table(OUTBOX)?, id)
    }

    /// Newest messages first, at most `limit`.
    pub fn recent_messages(&self, limit: usize) -> Result<Vec<OutboxMessage>, StoreError> {
        let read = self.db().begin_read()?;
        let table = read.open_table(OUTBOX)?;
        let mut out = Vec::new();
        for row in table.iter()?.rev().take(limit) {
            out.push(from_json(row?.1.value(), "outbox message")?);
        }
        Ok(out)
    }
}
