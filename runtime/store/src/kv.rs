//! Per-guest key-value namespaces: a guest sees only its own keys. Keys, values and the
//! number of keys are bounded, and a guest's writes of one call land in one transaction.

use redb::{ReadableDatabase, ReadableTable};

use crate::error::StoreError;
use crate::store::Store;
use crate::tables::GUEST_KV;

/// Longest key.
pub const MAX_KV_KEY: usize = 256;
/// Largest value.
pub const MAX_KV_VALUE: usize = 64 * 1024;
/// Most keys in one guest's namespace.
pub const MAX_KV_KEYS: usize = 10_000;

impl Store {
    /// A value of `guest`'s namespace.
    pub fn kv_get(&self, guest: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let read = self.db().begin_read()?;
        let table = read.open_table(GUEST_KV)?;
        Ok(table.get((guest, key))?.map(|v| v.value().to_vec()))
    }

    /// Apply writes (`Some` sets, `None` deletes) to `guest`'s namespace in one durable
    /// transaction; all or nothing when a limit is hit.
    pub fn kv_apply(
        &self,
        guest: &str,
        writes: &[(&str, Option<&[u8]>)],
    ) -> Result<(), StoreError> {
        for (key, value) in writes {
            if key.is_empty() || key.len() > MAX_KV_KEY {
                return Err(StoreError::Refused(format!(
                    "kv key of {} bytes (1..={MAX_KV_KEY})",
                    key.len()
                )));
            }
            if let Some(v) = value
                && v.len() > MAX_KV_VALUE
            {
                return Err(StoreError::Refused(format!(
                    "kv value of {} bytes for `{key}` (at most {MAX_KV_VALUE})",
                    v.len()
                )));
            }
        }
        let txn = self.durable_write()?;
        {
            let mut table = txn.open_table(GUEST_KV)?;
            let mut count = namespace_len(&table, guest)?;
            for (key, value) in writes {
                match value {
                    Some(v) => {
                        if table.insert((guest, *key), *v)?.is_none() {
                            count += 1;
                        }
                    }
                    None => {
                        if table.remove((guest, *key))?.is_some() {
                            count -= 1;
                        }
                    }
                }
            }
            if count > MAX_KV_KEYS {
                // Dropping the transaction uncommitted undoes every write of the batch.
                return Err(StoreError::Refused(format!(
                    "guest `{guest}` would hold {count} kv keys (at most {MAX_KV_KEYS})"
                )));
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Keys of `guest`'s namespace starting with `prefix`, sorted, at most `limit`.
    pub fn kv_list(
        &self,
        guest: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let read = self.db().begin_read()?;
        let table = read.open_table(GUEST_KV)?;
        let mut out = Vec::new();
        for row in table.range((guest, prefix)..)? {
            let (key, _) = row?;
            let (g, k) = key.value();
            if g != guest || !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push(k.to_string());
        }
        Ok(out)
    }
}

fn namespace_len(
    table: &redb::Table<(&str, &str), &[u8]>,
    guest: &str,
) -> Result<usize, StoreError> {
    let end = format!("{guest}\0");
    let mut n = 0;
    for row in table.range((guest, "")..(end.as_str(), ""))? {
        row?;
        n += 1;
    }
    Ok(n)
}
