//! Capability gating: what a guest was granted, and the load-time check that refuses a
//! component importing anything else.

use std::collections::BTreeSet;

use tocsin_capabilities::{Capability, Providers};
use wasmtime::component::types::Component as ComponentType;

use crate::error::LoadError;

/// The capabilities a policy manifest grants a guest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    caps: BTreeSet<Capability>,
}

impl Grants {
    /// Nothing granted: the guest sees only its inputs and WASI with no resources.
    pub fn none() -> Grants {
        Grants::default()
    }

    /// Exactly these capabilities.
    pub fn of(caps: impl IntoIterator<Item = Capability>) -> Grants {
        Grants {
            caps: caps.into_iter().collect(),
        }
    }

    /// Whether `cap` is granted.
    pub fn contains(&self, cap: Capability) -> bool {
        self.caps.contains(&cap)
    }

    /// The granted capabilities, in order.
    pub fn iter(&self) -> impl Iterator<Item = Capability> + '_ {
        self.caps.iter().copied()
    }
}

impl std::fmt::Display for Grants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.caps.is_empty() {
            return f.write_str("nothing");
        }
        let names: Vec<_> = self.caps.iter().map(|c| c.name()).collect();
        f.write_str(&names.join(", "))
    }
}

/// WASI interfaces every guest may import. They are linked with nothing granted: no
/// preopened directories, no environment, no sockets; clocks and randomness only.
const WASI_ALLOWED: &[&str] = &[
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

const TOCSIN_PACKAGE: &str = "tocsin:monitor/";

/// Check every import of `component` against `grants` and `providers`. Returns the
/// Tocsin capabilities it imports.
pub fn check_imports(
    engine: &wasmtime::Engine,
    component: &ComponentType,
    grants: &Grants,
    providers: &Providers,
) -> Result<Vec<Capability>, LoadError> {
    let mut used = Vec::new();
    for (name, _) in component.imports(engine) {
        if let Some(rest) = name.strip_prefix(TOCSIN_PACKAGE) {
            let interface = rest.split('@').next().unwrap_or(rest);
            if interface == "types" {
                continue;
            }
            let Some(cap) = Capability::from_name(interface) else {
                return Err(LoadError::UnknownImport(name.to_string()));
            };
            if !grants.contains(cap) {
                return Err(LoadError::UngrantedImport {
                    interface: name.to_string(),
                    granted: grants.to_string(),
                });
            }
            if !providers.provides(cap) {
                return Err(LoadError::UnavailableCapability {
                    interface: name.to_string(),
                });
            }
            used.push(cap);
        } else if !WASI_ALLOWED.iter().any(|p| name.starts_with(p)) {
            return Err(LoadError::UnknownImport(name.to_string()));
        }
    }
    Ok(used)
}
