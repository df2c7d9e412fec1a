//! Policy manifests: the TOML file that names a guest, what it may touch and how much it
//! may use, and the loader that turns a policy directory into loaded guests.
//!
//! This crate decides what a manifest means and refuses a malformed one with an error
//! naming the file and field; it leaves isolation to the engine and scheduling to callers.

pub mod fixtures;
mod manifest;
mod set;

pub use fixtures::{Fixture, FixtureResult, run_fixtures};
pub use manifest::{
    FailureSection, InputSection, Manifest, ManifestError, Mode, NoData, RuleSection,
};
pub use set::{LoadedPolicy, PolicyError, PolicyFiles, load_dir, load_files, load_one, read_files};
