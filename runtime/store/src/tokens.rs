//! API tokens: name → role, the client id a client token may ingest for, and the SHA-256
//! of the secret. The secret itself is never stored: it is shown once when created.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::records::{from_json, to_json};
use crate::store::Store;
use crate::tables::TOKENS;

/// One API token, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Unique name (what the audit log names as the actor).
    pub name: String,
    /// `admin`, `operator` or `client`.
    pub role: String,
    /// For a client token: the one client id it may ingest for.
    pub client: Option<String>,
    /// Lower-case hex SHA-256 of the secret.
    pub sha256: String,
    /// When it was created (ms).
    pub created_ms: i64,
    /// Who created it.
    pub created_by: String,
}

impl Store {
    /// Store a new token; refused when the name is taken.
    pub fn create_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let txn = self.durable_write()?;
        {
            let mut table = txn.open_table(TOKENS)?;
            if table.get(token.name.as_str())?.is_some() {
                return Err(StoreError::Refused(format!(
                    "a token named `{}` exists",
                    token.name
                )));
            }
            table.insert(token.name.as_str(), to_json(token)?.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Every token, by name.
    pub fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let read = self.db().begin_read()?;
        let table = read.open_table(TOKENS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            out.push(from_json(row?.1.value(), "token")?);
        }
        Ok(out)
    }

    /// Delete token `name`; answers what it was.
    pub fn revoke_token(&self, name: &str) -> Result<TokenRecord, StoreError> {
        let txn = self.durable_write()?;
        let old = {
            let mut table = txn.open_table(TOKENS)?;
            let old = table.remove(name)?;
            match old {
                Some(v) => from_json(v.value(), "token")?,
                None => return Err(StoreError::Refused(format!("no token named `{name}`"))),
            }
        };
        txn.commit()?;
        Ok(old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str) -> TokenRecord {
        TokenRecord {
            name: name.into(),
            role: "operator".into(),
            client: None,
            sha256: "ab".repeat(32),
            created_ms: 1,
            created_by: "test".into(),
        }
    }

    #[test]
    fn tokens_are_created_once_listed_revoked_and_survive_reopening() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("t.redb");
        {
            let store = Store::open(&path).expect("open");
            store.create_token(&token("grafana")).expect("create");
            store.create_token(&token("ci")).expect("create");
            assert!(matches!(
                store.create_token(&token("ci")),
                Err(StoreError::Refused(_))
            ));
        }
        let store = Store::open(&path).expect("reopen");
        let names: Vec<String> = store
            .tokens()
            .expect("list")
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["ci", "grafana"]);
        assert_eq!(store.revoke_token("ci").expect("revoke"), token("ci"));
        assert!(store.revoke_token("ci").is_err());
        assert_eq!(store.tokens().expect("list").len(), 1);
    }
}
