//! Silences (matchers over alert labels, a time span, who and why) and the router's
//! notification groups, whose state is written in the same durable transaction as the
//! messages a flush puts in the outbox — so a restart neither loses nor repeats one.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::outbox::{NewMessage, insert_messages};
use crate::records::{from_json, next_seq, to_json};
use crate::store::Store;
use crate::tables::{META, ROUTE_GROUPS, SILENCES};

/// A silence: alerts whose labels match every matcher are not notified between
/// `starts_ms` and `ends_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Id (0 before it is created).
    pub id: u64,
    /// Label matchers in selector syntax, e.g. `{host="a",severity=~"warning|info"}`
    /// (`__name__` is the rule).
    pub matchers: String,
    /// Start (ms).
    pub starts_ms: i64,
    /// End (ms); expiring a silence sets it to now.
    pub ends_ms: i64,
    /// Who created it.
    pub author: String,
    /// Why.
    pub comment: String,
}

impl Store {
    /// Store a new silence; returns its id.
    pub fn create_silence(&self, silence: &Silence) -> Result<u64, StoreError> {
        let txn = self.durable_write()?;
        let id = {
            let id = next_seq(&mut txn.open_table(META)?, "next_silence")?;
            let s = Silence {
                id,
                ..silence.clone()
            };
            txn.open_table(SILENCES)?
                .insert(id, to_json(&s)?.as_slice())?;
            id
        };
        txn.commit()?;
        Ok(id)
    }

    /// End silence `id` at `now_ms` (if it would end later).
    pub fn expire_silence(&self, id: u64, now_ms: i64) -> Result<Silence, StoreError> {
        let txn = self.durable_write()?;
        let s = {
            let mut table = txn.open_table(SILENCES)?;
            let mut s: Silence = match table.get(id)? {
                Some(v) => from_json(v.value(), "silence")?,
                None => return Err(StoreError::Refused(format!("no silence {id}"))),
            };
            s.ends_ms = s.ends_ms.min(now_ms);
            table.insert(id, to_json(&s)?.as_slice())?;
            s
        };
        txn.commit()?;
        Ok(s)
    }

    /// Every silence, newest first.
    pub fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        let read = self.db().begin_read()?;
        let table = read.open_table(SILENCES)?;
        let mut out = Vec::new();
        for row in table.iter()?.rev() {
            out.push(from_json(row?.1.value(), "silence")?);
        }
        Ok(out)
    }

    /// The router's group states.
    pub fn route_groups(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let read = self.db().begin_read()?;
        let table = read.open_table(ROUTE_GROUPS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// In one durable transaction: set (`Some`) or drop (`None`) group states and enqueue
    /// the messages of the flush. Returns the message ids.
    pub fn commit_flush(
        &self,
        groups: &[(String, Option<Vec<u8>>)],
        messages: &[NewMessage],
    ) -> Result<Vec<u64>, StoreError> {
        let txn = self.durable_write()?;
        {
            let mut table = txn.open_table(ROUTE_GROUPS)?;
            for (key, state) in groups {
                match state {
                    Some(bytes) => {
                        table.insert(key.as_str(), bytes.as_slice())?;
                    }
                    None => {
                        table.remove(key.as_str())?;
                    }
                }
            }
        }
        let ids = insert_messages(&txn, messages)?;
        txn.commit()?;
        Ok(ids)
    }
}
