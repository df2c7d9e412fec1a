//! The manifest schema (`deny_unknown_fields`, every field documented) and its parsing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tocsin_engine::{Budgets, Capability, Grants, GuestKind};

/// A policy manifest, `policies/NAME.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Which world the component implements: `collector`, `scorer`, `alert-rule`,
    /// `template` or `ingest`.
    pub kind: GuestKind,
    /// Path of the wasm component, relative to the manifest's directory.
    pub component: PathBuf,
    /// Expected sha256 of the component (hex). When set, a component with other bytes is
    /// refused.
    #[serde(default)]
    pub sha256: Option<String>,
    /// How often it runs (collectors, scorers, alert rules; default `"15s"`).
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Capabilities granted: any of `sensors`, `metrics`, `logs`, `kv`, `mqtt`, `pipes`,
    /// `mail`. Nothing else is reachable.
    #[serde(default)]
    pub grants: Vec<String>,
    /// Resource budgets of every call.
    #[serde(default)]
    pub budgets: Budgets,
    /// Parameters handed to the guest on every call (`ctx.params`).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// The series an `alert-rule` or `scorer` is called with.
    #[serde(default)]
    pub input: InputSection,
    /// How an `alert-rule`'s alerts live.
    #[serde(default)]
    pub rule: RuleSection,
    /// What repeated faults do.
    #[serde(default)]
    pub failure: FailureSection,
    /// `active`, or `shadow`: an alert rule evaluated and recorded (alerts, history, API)
    /// that never notifies — to try a new rule beside the one it replaces.
    #[serde(default)]
    pub mode: Mode,
    /// Examples the rule must get right (`[[fixture]]`), run by `tocsin rule test` and
    /// before every deployment of this version.
    #[serde(default, rename = "fixture")]
    pub fixtures: Vec<crate::fixtures::Fixture>,
}

/// Whether a rule's alerts are notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Notified.
    #[default]
    Active,
    /// Recorded only.
    Shadow,
}

/// The `[failure]` table: the failure policy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailureSection {
    /// Quarantine the guest (stop calling it) after this many faults in a row — traps,
    /// deadlines, memory or output caps; its own error values do not count. 0: never
    /// (default 5).
    /// A new version of the policy lifts the quarantine.
    pub quarantine_after: u32,
}

impl Default for FailureSection {
    fn default() -> Self {
        FailureSection {
            quarantine_after: 5,
        }
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(15)
}

/// The `[input]` table: what an `alert-rule` or `scorer` is called with.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputSection {
    /// Selectors whose series (over `lookback`) are the input, e.g.
    /// `["cpu_usage_percent", "disk_free_bytes{mount=\"/\"}"]`. For a rule with selectors
    /// set and none matching, the rule is in `no_data`.
    pub select: Vec<String>,
    /// How far back each evaluation reads (default `"5m"`).
    #[serde(with = "humantime_serde")]
    pub lookback: Duration,
}

impl Default for InputSection {
    fn default() -> Self {
        InputSection {
            select: Vec::new(),
            lookback: Duration::from_secs(300),
        }
    }
}

/// The `[rule]` table of an `alert-rule` policy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleSection {
    /// How long a condition must hold before the alert fires (pending until then;
    /// default 0: at once).
    #[serde(rename = "for", with = "humantime_serde")]
    pub for_: Duration,
    /// How long an alert keeps firing after its condition stopped holding (default 0).
    #[serde(with = "humantime_serde")]
    pub keep_firing_for: Duration,
    /// Labels added to every alert of this rule (for routing: `team`, `service`, ...).
    pub labels: BTreeMap<String, String>,
    /// When no selected series exists: `alert` (the rule enters `no_data`, which is
    /// notified) or `ok` (nothing to check: GPUs on a machine without one, a fleet with no
    /// clients yet).
    pub no_data: NoData,
}

/// What a rule without input means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoData {
    /// Missing input is a state of its own, notified.
    #[default]
    Alert,
    /// Missing input means nothing fires.
    Ok,
}

impl Default for RuleSection {
    fn default() -> Self {
        RuleSection {
            for_: Duration::ZERO,
            keep_firing_for: Duration::ZERO,
            labels: BTreeMap::new(),
            no_data: NoData::Alert,
        }
    }
}

/// Why a manifest is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The manifest.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML does not match the schema.
    #[error("{path}: {message}")]
    Parse {
        /// The manifest.
        path: String,
        /// The parser's message, naming the field.
        message: String,
    },
    /// A field has a value outside what it accepts.
    #[error("{path}: field `{field}`: {message}")]
    Invalid {
        /// The manifest.
        path: String,
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl Manifest {
    /// Parse and validate manifest text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let shown = path.display().to_string();
        let manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let invalid = |field, message: String| ManifestError::Invalid {
            path: shown.clone(),
            field,
            message,
        };
        manifest.grants().map_err(|m| invalid("grants", m))?;
        if manifest.interval < Duration::from_millis(100) {
            return Err(invalid("interval", "must be at least 100ms".into()));
        }
        if let Some(sha) = &manifest.sha256
            && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(invalid("sha256", "must be 64 hex digits".into()));
        }
        let b = &manifest.budgets;
        if !(1..=60_000).contains(&b.deadline_ms) {
            return Err(invalid("budgets.deadline_ms", "must be 1..=60000".into()));
        }
        if !(1..=4096).contains(&b.memory_mib) {
            return Err(invalid("budgets.memory_mib", "must be 1..=4096".into()));
        }
        if b.output_kib == 0 {
            return Err(invalid("budgets.output_kib", "must be at least 1".into()));
        }
        for sel in &manifest.input.select {
            if let Err(e) = tocsin_store::Selector::parse(sel) {
                return Err(invalid("input.select", e.to_string()));
            }
        }
        for f in &manifest.fixtures {
            crate::fixtures::check(f).map_err(|e| invalid("fixture", e))?;
        }
        if manifest.input.lookback < Duration::from_secs(1) {
            return Err(invalid("input.lookback", "must be at least 1s".into()));
        }
        Ok(manifest)
    }

    /// Read and parse a manifest file.
    pub fn read(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Manifest::parse(&text, path)
    }

    /// The grants as capabilities.
    pub fn grants(&self) -> Result<Grants, String> {
        let mut caps = Vec::new();
        for g in &self.grants {
            let cap = Capability::from_name(g).ok_or_else(|| {
                let known: Vec<_> = Capability::ALL.iter().map(|c| c.name()).collect();
                format!("unknown capability `{g}` (known: {})", known.join(", "))
            })?;
            caps.push(cap);
        }
        Ok(Grants::of(caps))
    }

    /// The params as the label list guests receive.
    pub fn params_list(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("p.toml"))
    }

    #[test]
    fn rule_section_parses_and_checks_selectors() {
        let m = parse(
            r#"kind = "alert-rule"
component = "r.wasm"
[input]
select = ['cpu_usage_percent{host=~"web.*"}']
lookback = "10m"
[rule]
for = "2m"
keep_firing_for = "1m"
labels = { team = "ops" }
"#,
        )
        .expect("valid");
        assert_eq!(m.rule.for_, Duration::from_secs(120));
        assert_eq!(m.rule.keep_firing_for, Duration::from_secs(60));
        assert_eq!(m.input.lookback, Duration::from_secs(600));
        assert_eq!(m.rule.labels["team"], "ops");
        let bad =
            parse("kind = \"alert-rule\"\ncomponent = \"r.wasm\"\n[input]\nselect = [\"cpu{\"]\n")
                .expect_err("bad selector");
        assert!(bad.to_string().contains("input.select"), "{bad}");
        let unknown =
            parse("kind = \"alert-rule\"\ncomponent = \"r.wasm\"\n[rule]\nfour = \"1m\"\n")
                .expect_err("unknown field");
        assert!(unknown.to_string().contains("four"), "{unknown}");
    }

    #[test]
    fn minimal_manifest_gets_defaults() {
        let m = parse("kind = \"alert-rule\"\ncomponent = \"r.wasm\"\n").expect("valid");
        assert_eq!(m.kind, GuestKind::AlertRule);
        assert_eq!(m.interval, Duration::from_secs(15));
        assert_eq!(m.budgets, Budgets::default());
        assert_eq!(m.grants().expect("grants"), Grants::none());
    }

    #[test]
    fn full_manifest_parses() {
        let m = parse(
            r#"kind = "collector"
component = "c.wasm"
interval = "5s"
grants = ["sensors"]
[budgets]
deadline_ms = 500
memory_mib = 32
[params]
threshold = "90"
"#,
        )
        .expect("valid");
        assert_eq!(m.interval, Duration::from_secs(5));
        assert!(m.grants().expect("grants").contains(Capability::Sensors));
        assert_eq!(m.budgets.deadline_ms, 500);
        assert_eq!(m.budgets.output_kib, Budgets::default().output_kib);
        assert_eq!(m.params_list(), vec![("threshold".into(), "90".into())]);
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let err = parse("kind = \"alert-rule\"\ncomponent = \"r.wasm\"\ncolour = 1\n")
            .expect_err("unknown");
        let msg = err.to_string();
        assert!(
            msg.starts_with("p.toml:") && msg.contains("colour"),
            "{msg}"
        );

        let err = parse("kind = \"nope\"\ncomponent = \"r.wasm\"\n").expect_err("bad kind");
        assert!(err.to_string().contains("nope"), "{err}");

        let err = parse("kind = \"scorer\"\ncomponent = \"s.wasm\"\ngrants = [\"root\"]\n")
            .expect_err("grant");
        assert!(
            err.to_string()
                .contains("field `grants`: unknown capability `root`"),
            "{err}"
        );

        let err = parse("kind = \"scorer\"\ncomponent = \"s.wasm\"\n[budgets]\nmemory_mib = 0\n")
            .expect_err("budget");
        assert!(err.to_string().contains("budgets.memory_mib"), "{err}");

        let err = parse("kind = \"scorer\"\ncomponent = \"s.wasm\"\nsha256 = \"abc\"\n")
            .expect_err("sha");
        assert!(err.to_string().contains("sha256"), "{err}");
    }
}
