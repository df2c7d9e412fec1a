//! The audit log: who changed what, when — deploys, rollbacks, silences, config — newest
//! first, append-only.

use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::records::{from_json, next_seq, to_json};
use crate::store::Store;
use crate::tables::{AUDIT, META};

/// One audited action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When (ms).
    pub ts_ms: i64,
    /// Who: a user, `api-token:NAME`, `file-watcher`, `system`.
    pub actor: String,
    /// What: `policy.deploy`, `policy.rollback`, `silence.create`, ...
    pub action: String,
    /// On what: a policy, a silence id, ...
    pub target: String,
    /// Details (free text or JSON).
    pub detail: String,
}

impl Store {
    /// Append an entry durably.
    pub fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let txn = self.durable_write()?;
        {
            let seq = next_seq(&mut txn.open_table(META)?, "next_audit")?;
            txn.open_table(AUDIT)?
                .insert((entry.ts_ms, seq), to_json(entry)?.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Entries at or after `since_ms`, newest first, at most `limit`.
    pub fn audit_log(&self, since_ms: i64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let read = self.db().begin_read()?;
        let table = read.open_table(AUDIT)?;
        let mut out = Vec::new();
        for row in table.range((since_ms, 0)..)?.rev().take(limit) {
            out.push(from_json(row?.1.value(), "audit entry")?);
        }
        Ok(out)
    }
}
