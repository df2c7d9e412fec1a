//! Policy versions: every deployed manifest + component hash, numbered per policy, and
//! which version runs now — what `rollback` returns to.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::records::{from_json, to_json};
use crate::store::Store;
use crate::tables::{COMPONENTS, POLICY_CURRENT, POLICY_VERSIONS};

/// One deployed version of a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyVersion {
    /// Policy name.
    pub policy: String,
    /// Version number, from 1.
    pub version: u64,
    /// sha256 of the component.
    pub sha256: String,
    /// The manifest text as deployed.
    pub manifest: String,
    /// The grants it holds (for permission diffs).
    pub grants: Vec<String>,
    /// When (ms).
    pub deployed_ms: i64,
    /// Who deployed it.
    pub actor: String,
}

impl Store {
    /// Record a deployment (with its component's bytes, kept once per hash) and make it
    /// current. Deploying what already runs (same hash and manifest) records nothing and
    /// returns the running version.
    #[allow(clippy::too_many_arguments)]
    pub fn record_policy_version(
        &self,
        policy: &str,
        sha256: &str,
        manifest: &str,
        component: &[u8],
        grants: &[String],
        deployed_ms: i64,
        actor: &str,
    ) -> Result<PolicyVersion, StoreError> {
        let txn = self.durable_write()?;
        let recorded = {
            let mut components = txn.open_table(COMPONENTS)?;
            if components.get(sha256)?.is_none() {
                components.insert(sha256, component)?;
            }
            let mut versions = txn.open_table(POLICY_VERSIONS)?;
            let mut current = txn.open_table(POLICY_CURRENT)?;
            let running = current.get(policy)?.map(|v| v.value());
            if let Some(n) = running
                && let Some(v) = versions.get((policy, n))?
            {
                let v: PolicyVersion = from_json(v.value(), "policy version")?;
                if v.sha256 == sha256 && v.manifest == manifest {
                    return Ok(v);
                }
            }
            let newest = versions
                .range((policy, 0)..=(policy, u64::MAX))?
                .next_back()
                .transpose()?
                .map(|(k, _)| k.value().1)
                .unwrap_or(0);
            let record = PolicyVersion {
                policy: policy.to_string(),
                version: newest + 1,
                sha256: sha256.to_string(),
                manifest: manifest.to_string(),
                grants: grants.to_vec(),
                deployed_ms,
                actor: actor.to_string(),
            };
            versions.insert((policy, record.version), to_json(&record)?.as_slice())?;
            current.insert(policy, record.version)?;
            record
        };
        txn.commit()?;
        Ok(recorded)
    }

    /// Every version of `policy`, oldest first.
    pub fn policy_versions(&self, policy: &str) -> Result<Vec<PolicyVersion>, StoreError> {
        let read = self.db().begin_read()?;
        let table = read.open_table(POLICY_VERSIONS)?;
        let mut out = Vec::new();
        for row in table.range((policy, 0)..=(policy, u64::MAX))? {
            out.push(from_json(row?.1.value(), "policy version")?);
        }
        Ok(out)
    }

    /// The version of `policy` that runs now.
    pub fn current_policy_version(
        &self,
        policy: &str,
    ) -> Result<Option<PolicyVersion>, StoreError> {
        let read = self.db().begin_read()?;
        let current = read.open_table(POLICY_CURRENT)?;
        let Some(n) = current.get(policy)?.map(|v| v.value()) else {
            return Ok(None);
        };
        let versions = read.open_table(POLICY_VERSIONS)?;
        match versions.get((policy, n))? {
            Some(v) => Ok(Some(from_json(v.value(), "policy version")?)),
            None => Err(StoreError::Corrupt {
                what: "policy version",
                message: format!("{policy} current version {n} missing"),
            }),
        }
    }

    /// The bytes of a recorded component.
    pub fn component(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let read = self.db().begin_read()?;
        let table = read.open_table(COMPONENTS)?;
        Ok(table.get(sha256)?.map(|v| v.value().to_vec()))
    }

    /// Make an earlier (or any recorded) version current again; returns it.
    pub fn set_current_policy_version(
        &self,
        policy: &str,
        version: u64,
    ) -> Result<PolicyVersion, StoreError> {
        let txn = self.durable_write()?;
        let record = {
            let versions = txn.open_table(POLICY_VERSIONS)?;
            let record: PolicyVersion = match versions.get((policy, version))? {
                Some(v) => from_json(v.value(), "policy version")?,
                None => {
                    return Err(StoreError::Refused(format!(
                        "policy `{policy}` has no version {version}"
                    )));
                }
            };
            txn.open_table(POLICY_CURRENT)?.insert(policy, version)?;
            record
        };
        txn.commit()?;
        Ok(record)
    }
}
