//! The agent's spool: messages for the server (topic + payload) kept on disk in order
//! until the server has them, bounded in bytes — past the bound the oldest are dropped and
//! counted. A push is durable when it returns, so queued data survives `kill -9`.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::error::StoreError;
use crate::store::Store;
use crate::tables::{META, SPOOL};

const BYTES: &str = "spool.bytes";
/// The next sequence number: never reused, even when the spool empties.
const NEXT: &str = "spool.next";
const DROPPED: &str = "spool.dropped";

/// A queued message.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolEntry {
    /// Position in the queue (ascending = oldest first).
    pub seq: u64,
    /// MQTT topic (or HTTP path).
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
}

/// How full the spool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpoolStats {
    /// Messages waiting.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Messages dropped (oldest first) because the spool was full, ever.
    pub dropped: u64,
}

fn encode(topic: &str, payload: &[u8]) -> Vec<u8> {
    let t = topic.as_bytes();
    let len = u16::try_from(t.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(2 + t.len() + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&t[..usize::from(len)]);
    out.extend_from_slice(payload);
    out
}

fn decode(seq: u64, raw: &[u8]) -> Result<SpoolEntry, StoreError> {
    let corrupt = || StoreError::Corrupt {
        what: "spool entry",
        message: format!("entry {seq} is shorter than its topic"),
    };
    let len = usize::from(u16::from_le_bytes(
        raw.get(..2)
            .ok_or_else(corrupt)?
            .try_into()
            .map_err(|_| corrupt())?,
    ));
    let topic = raw.get(2..2 + len).ok_or_else(corrupt)?;
    Ok(SpoolEntry {
        seq,
        topic: String::from_utf8_lossy(topic).into_owned(),
        payload: raw[2 + len..].to_vec(),
    })
}

impl Store {
    /// Append messages in one durable transaction, then drop the oldest until the spool
    /// holds at most `max_bytes`. Returns how many were dropped.
    pub fn spool_push(
        &self,
        messages: &[(&str, &[u8])],
        max_bytes: u64,
    ) -> Result<u64, StoreError> {
        let txn = self.durable_write()?;
        let dropped_now;
        {
            let mut table = txn.open_table(SPOOL)?;
            let mut meta = txn.open_table(META)?;
            let mut bytes = meta.get(BYTES)?.map_or(0, |v| v.value());
            let first = meta
                .get(NEXT)?
                .map_or(1, |v| v.value())
                .max(table.last()?.map_or(1, |(k, _)| k.value() + 1));
            for (seq, (topic, payload)) in (first..).zip(messages) {
                let value = encode(topic, payload);
                bytes += value.len() as u64;
                table.insert(seq, value.as_slice())?;
            }
            meta.insert(NEXT, first + messages.len() as u64)?;
            let mut dropped = 0;
            while bytes > max_bytes {
                let Some((_, v)) = table.pop_first()? else {
                    break;
                };
                bytes = bytes.saturating_sub(v.value().len() as u64);
                dropped += 1;
            }
            if table.is_empty()? {
                bytes = 0;
            }
            meta.insert(BYTES, bytes)?;
            if dropped > 0 {
                let total = meta.get(DROPPED)?.map_or(0, |v| v.value()) + dropped;
                meta.insert(DROPPED, total)?;
            }
            dropped_now = dropped;
        }
        txn.commit()?;
        Ok(dropped_now)
    }

    /// The oldest `limit` messages, oldest first.
    pub fn spool_peek(&self, limit: usize) -> Result<Vec<SpoolEntry>, StoreError> {
        let read = self.db().begin_read()?;
        let table = read.open_table(SPOOL)?;
        let mut out = Vec::new();
        for row in table.iter()?.take(limit) {
            let (k, v) = row?;
            out.push(decode(k.value(), v.value())?);
        }
        Ok(out)
    }

    /// Remove every message up to and including `seq` (the server has them).
    pub fn spool_remove_through(&self, seq: u64) -> Result<(), StoreError> {
        let txn = self.durable_write()?;
        {
            let mut table = txn.open_table(SPOOL)?;
            let mut meta = txn.open_table(META)?;
            let mut bytes = meta.get(BYTES)?.map_or(0, |v| v.value());
            let removed: Vec<(u64, usize)> = table
                .range(..=seq)?
                .map(|r| r.map(|(k, v)| (k.value(), v.value().len())))
                .collect::<Result<_, _>>()?;
            for (k, len) in removed {
                table.remove(k)?;
                bytes = bytes.saturating_sub(len as u64);
            }
            if table.is_empty()? {
                bytes = 0;
            }
            meta.insert(BYTES, bytes)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Messages and bytes waiting, and drops so far.
    pub fn spool_stats(&self) -> Result<SpoolStats, StoreError> {
        let read = self.db().begin_read()?;
        let table = read.open_table(SPOOL)?;
        let meta = read.open_table(META)?;
        Ok(SpoolStats {
            messages: table.len()?,
            bytes: meta.get(BYTES)?.map_or(0, |v| v.value()),
            dropped: meta.get(DROPPED)?.map_or(0, |v| v.value()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_bounded_and_durable_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.redb");
        let store = Store::open(&path).expect("open");
        let payload = [7u8; 100];
        for i in 0..10 {
            let topic = format!("t/{i}");
            assert_eq!(
                store
                    .spool_push(&[(&topic, &payload)], 10_000)
                    .expect("push"),
                0
            );
        }
        let peek = store.spool_peek(3).expect("peek");
        let topics: Vec<&str> = peek.iter().map(|e| e.topic.as_str()).collect();
        assert_eq!(topics, ["t/0", "t/1", "t/2"]);
        assert_eq!(peek[0].payload, payload);
        store.spool_remove_through(peek[2].seq).expect("remove");
        let stats = store.spool_stats().expect("stats");
        assert_eq!((stats.messages, stats.bytes), (7, 7 * 105));

        // Full: the oldest go, counted.
        assert_eq!(
            store
                .spool_push(&[("t/10", &payload)], 2 * 105 + 106)
                .expect("push"),
            5
        );
        drop(store);
        let store = Store::open(&path).expect("reopen");
        let left: Vec<String> = store
            .spool_peek(10)
            .expect("peek")
            .into_iter()
            .map(|e| e.topic)
            .collect();
        assert_eq!(left, ["t/8", "t/9", "t/10"]);
        assert_eq!(store.spool_stats().expect("stats").dropped, 5);
        store.spool_remove_through(u64::MAX).expect("remove all");
        assert_eq!(store.spool_stats().expect("stats").bytes, 0);
        // Emptied, numbering goes on: a stale "remove through" cannot hit new entries.
        store
            .spool_push(&[("t/11", &payload)], 10_000)
            .expect("push");
        assert!(store.spool_peek(1).expect("peek")[0].seq > 11);
    }
}
