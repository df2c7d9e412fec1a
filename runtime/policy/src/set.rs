//! Loading a policy directory: every `*.toml` manifest, its component read, its hash
//! checked and its guest loaded. A bad policy is reported and skipped; the others load.

use std::path::{Path, PathBuf};

use tocsin_engine::{Engine, Guest, LoadError};

use crate::manifest::{Manifest, ManifestError};

/// A policy whose guest is loaded and ready to run.
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    /// Name: the manifest's file stem.
    pub name: String,
    /// The manifest file.
    pub path: PathBuf,
    /// The parsed manifest.
    pub manifest: Manifest,
    /// The loaded guest.
    pub guest: Guest,
}

impl LoadedPolicy {
    /// The notification kinds a template policy renders: `params.kinds` (comma-separated),
    /// else its name with `-` as `_` (`server-alert` renders `server_alert`).
    pub fn template_kinds(&self) -> Vec<String> {
        match self.manifest.params.get("kinds") {
            Some(list) => list
                .split(',')
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect(),
            None => vec![self.name.replace('-', "_")],
        }
    }
}

/// Why one policy did not load.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The manifest is invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The component file could not be read.
    #[error("{manifest}: component {component}: {source}")]
    Component {
        /// The manifest.
        manifest: String,
        /// The component path.
        component: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The component's sha256 is not the one the manifest pins.
    #[error("{manifest}: component sha256 is {actual}, manifest expects {expected}")]
    HashMismatch {
        /// The manifest.
        manifest: String,
        /// What the manifest says.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// The engine refused the component.
    #[error("{manifest}: {source}")]
    Load {
        /// The manifest.
        manifest: String,
        /// The engine's reason.
        source: LoadError,
    },
    /// The directory could not be listed.
    #[error("policy directory {dir}: {source}")]
    Dir {
        /// The directory.
        dir: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A policy's files as read: the manifest text and the component bytes.
#[derive(Debug, Clone)]
pub struct PolicyFiles {
    /// Name: the manifest's file stem.
    pub name: String,
    /// The manifest file.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
    /// The component's bytes.
    pub component: Vec<u8>,
}

/// Read a manifest and the component it names.
pub fn read_files(path: &Path) -> Result<PolicyFiles, PolicyError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: shown.clone(),
        source,
    })?;
    let manifest = Manifest::parse(&text, path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let component = base.join(&manifest.component);
    let bytes = std::fs::read(&component).map_err(|source| PolicyError::Component {
        manifest: shown,
        component: component.display().to_string(),
        source,
    })?;
    Ok(PolicyFiles {
        name: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        path: path.to_path_buf(),
        text,
        component: bytes,
    })
}

/// Load a policy from its files: parse, check the pinned hash, compile (cached), check
/// the imports against the grants.
pub fn load_files(engine: &Engine, files: &PolicyFiles) -> Result<LoadedPolicy, PolicyError> {
    let shown = files.path.display().to_string();
    let manifest = Manifest::parse(&files.text, &files.path)?;
    if let Some(expected) = &manifest.sha256 {
        let actual = tocsin_engine::sha256_hex(&files.component);
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(PolicyError::HashMismatch {
                manifest: shown,
                expected: expected.clone(),
                actual,
            });
        }
    }
    let grants = manifest
        .grants()
        .map_err(|message| ManifestError::Invalid {
            path: shown.clone(),
            field: "grants",
            message,
        })?;
    let guest = engine
        .load(
            &files.name,
            &files.component,
            manifest.kind,
            grants,
            manifest.budgets,
        )
        .map_err(|source| PolicyError::Load {
            manifest: shown,
            source,
        })?;
    Ok(LoadedPolicy {
        name: files.name.clone(),
        path: files.path.clone(),
        manifest,
        guest,
    })
}

/// Load one manifest and its guest.
pub fn load_one(engine: &Engine, path: &Path) -> Result<LoadedPolicy, PolicyError> {
    load_files(engine, &read_files(path)?)
}

/// Load every `*.toml` in `dir`, in name order. Returns the loaded policies and the
/// errors of those that did not load.
pub fn load_dir(
    engine: &Engine,
    dir: &Path,
) -> Result<(Vec<LoadedPolicy>, Vec<PolicyError>), PolicyError> {
    let listing = std::fs::read_dir(dir).map_err(|source| PolicyError::Dir {
        dir: dir.display().to_string(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = listing
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let (mut loaded, mut errors) = (Vec::new(), Vec::new());
    for path in paths {
        match load_one(engine, &path) {
            Ok(p) => loaded.push(p),
            Err(e) => errors.push(e),
        }
    }
    Ok((loaded, errors))
}
