//! Shared plumbing of the small record tables (heartbeats, alerts, outbox, audit, policy
//! versions): records are JSON, readable with any redb tool and tolerant of added fields.

use redb::ReadableTable;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;

/// Encode a record.
pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Db(format!("encoding a record: {e}")))
}

/// Decode a record of kind `what`.
pub(crate) fn from_json<T: DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        what,
        message: e.to_string(),
    })
}

/// Take and bump the counter `name` in `meta` (starts at 1).
pub(crate) fn next_seq(meta: &mut redb::Table<&str, u64>, name: &str) -> Result<u64, StoreError> {
    let seq = meta.get(name)?.map(|v| v.value()).unwrap_or(1);
    meta.insert(name, seq + 1)?;
    Ok(seq)
}
