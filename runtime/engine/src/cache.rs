//! The compile cache: components compiled once, serialized as `.cwasm` files keyed by the
//! sha256 of their bytes and the engine's compatibility hash, and reused across restarts.
//!
//! The cache directory is trusted (it belongs to the runtime): deserializing a `.cwasm`
//! runs no verification, so nothing else may write there.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::error::LoadError;

/// Where a component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Deserialized from the cache.
    Hit,
    /// Compiled now (and stored, when the cache is on).
    Miss,
}

/// Compiled components on disk.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl CompileCache {
    /// A cache in `dir` (created on first store), or none.
    pub fn new(dir: Option<PathBuf>) -> CompileCache {
        CompileCache { dir }
    }

    fn path_for(&self, engine: &wasmtime::Engine, sha: &str) -> Option<PathBuf> {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = hasher.finish();
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{sha}-{engine_hash:016x}.cwasm")))
    }

    /// The component for `bytes`: from the cache when present and valid, else compiled.
    pub fn load(
        &self,
        engine: &wasmtime::Engine,
        bytes: &[u8],
    ) -> Result<(Component, CacheOutcome, String), LoadError> {
        let sha = sha256_hex(bytes);
        let path = self.path_for(engine, &sha);
        if let Some(path) = &path
            && path.exists()
        {
            // SAFETY: the cache directory is written only by `store` below, with bytes
            // produced by `Component::serialize` of this engine configuration.
            match unsafe { Component::deserialize_file(engine, path) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit, sha)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "stale compile cache entry, recompiling")
                }
            }
        }
        let component = Component::new(engine, bytes)
            .map_err(|e| LoadError::InvalidComponent(format!("{e:#}")))?;
        if let Some(path) = &path {
            store(path, &component)?;
        }
        Ok((component, CacheOutcome::Miss, sha))
    }
}

fn store(path: &Path, component: &Component) -> Result<(), LoadError> {
    let io = |source| LoadError::Cache {
        path: path.display().to_string(),
        source,
    };
    let bytes = component
        .serialize()
        .map_err(|e| io(std::io::Error::other(e.to_string())))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // Write beside, then rename: a crash never leaves a torn file under the final name.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
