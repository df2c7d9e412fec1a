//! `tocsin rule new NAME` and `tocsin rule build NAME`: scaffold an alert rule in a Tocsin
//! checkout — a guest crate in `guests/alerts/NAME` (from `examples/load-high`), its
//! place in the guests workspace, and `policies/NAME.toml` with a fixture — and build it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const EXAMPLE_CARGO: &str = include_str!("../../../examples/load-high/Cargo.toml");
const EXAMPLE_LIB: &str = include_str!("../../../examples/load-high/src/lib.rs");

/// Whether `name` can be a crate, a file and a policy name.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = (2..=48).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            "rule name `{name}`: 2 to 48 lower-case letters, digits and `-`, starting with a letter"
        );
    }
    Ok(())
}

fn camel(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The files of a new rule: (path under the root, contents).
pub fn scaffold(name: &str) -> anyhow::Result<Vec<(PathBuf, String)>> {
    check_name(name)?;
    let cargo: String = EXAMPLE_CARGO
        .lines()
        .filter(|l| !l.starts_with("workspace ="))
        .map(|l| {
            if l.starts_with("name =") {
                format!("name = {name:?}")
            } else if l.starts_with("description =") {
                format!("description = \"Alert rule {name}\"")
            } else {
                l.replace("../../guests/sdk", "../../sdk")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    let lib = EXAMPLE_LIB
        .replace(
            "Example alert rule `load-high`",
            &format!("Alert rule `{name}`"),
        )
        .replace(" Copy this crate to start your own rule.", "")
        .replace("LoadHigh", &camel(name));
    let manifest = format!(
        r#"# Alert rule {name}: `tocsin rule build {name}`, then `tocsin rule test policies/{name}.toml`.
kind = "alert-rule"
component = "../guests/target/wasm32-wasip2/release/{file}.wasm"
interval = "15s"
grants = []                 # this rule needs no capability
[params]
threshold = "4"
[input]
select = ["load1"]          # the series matching these selectors ...
lookback = "2m"             # ... over the last two minutes
[rule]
for = "1m"                  # pending for a minute before it fires

[[fixture]]                 # examples it must get right (promtool notation, 15 s apart)
name = "fires above 4"
series = ['load1 3 5 6']    # 3, 5, 6: mean 4.7 over the lookback
expect = [{{ labels = {{}}, severity = "warning" }}]

[[fixture]]
name = "quiet below 4"
series = ['load1 1 2 1']
expect = []
"#,
        file = name.replace('-', "_")
    );
    Ok(vec![
        (
            PathBuf::from(format!("guests/alerts/{name}/Cargo.toml")),
            cargo,
        ),
        (
            PathBuf::from(format!("guests/alerts/{name}/src/lib.rs")),
            lib,
        ),
        (PathBuf::from(format!("policies/{name}.toml")), manifest),
    ])
}

/// `tocsin rule new NAME`: write the scaffold under `root` and add the crate to the
/// guests workspace.
pub fn new_rule(root: &Path, name: &str) -> anyhow::Result<()> {
    let workspace = root.join("guests/Cargo.toml");
    let members = std::fs::read_to_string(&workspace).with_context(|| {
        format!(
            "reading {} (run this in a Tocsin checkout, or give --root)",
            workspace.display()
        )
    })?;
    let files = scaffold(name)?;
    for (path, _) in &files {
        if root.join(path).exists() {
            bail!("{} exists already", root.join(path).display());
        }
    }
    let member = format!("\"alerts/{name}\"");
    let Some(at) = members.find("members = [") else {
        bail!("{}: no `members = [` list", workspace.display());
    };
    let insert = at + "members = [".len();
    let updated = format!(
        "{}\n    {member},{}",
        &members[..insert],
        &members[insert..]
    );
    for (path, text) in &files {
        let full = root.join(path);
        if let Some(dir) = full.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&full, text).with_context(|| full.display().to_string())?;
        println!("created {}", path.display());
    }
    std::fs::write(&workspace, updated)?;
    println!("added {member} to guests/Cargo.toml");
    println!(
        "next: edit guests/alerts/{name}/src/lib.rs, then `tocsin rule build {name}` and \
         `tocsin rule test policies/{name}.toml`"
    );
    Ok(())
}

/// `tocsin rule build NAME`: build the guest crate for wasm32-wasip2 (release) and print
/// the component and its sha256.
pub fn build_rule(root: &Path, name: &str) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root.join("guests"))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            name,
        ])
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("building {name} failed ({status})");
    }
    let wasm = root
        .join("guests/target/wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    let bytes = std::fs::read(&wasm).with_context(|| wasm.display().to_string())?;
    println!(
        "built {} ({} KiB, sha256 {})",
        wasm.display(),
        bytes.len() / 1024,
        tocsin_engine::sha256_hex(&bytes)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_rule_is_the_example_renamed_with_a_manifest_that_parses() {
        let files = scaffold("disk-latency").expect("scaffold");
        let (_, cargo) = &files[0];
        assert!(cargo.contains("name = \"disk-latency\""), "{cargo}");
        assert!(cargo.contains("path = \"../../sdk\""), "{cargo}");
        assert!(!cargo.contains("workspace ="), "{cargo}");
        let (_, lib) = &files[1];
        assert!(
            lib.contains("struct DiskLatency;") && lib.contains("export!(DiskLatency);"),
            "{lib}"
        );
        assert!(!lib.contains("LoadHigh"));
        let (path, manifest) = &files[2];
        let parsed = tocsin_policy::Manifest::parse(manifest, path).expect("manifest parses");
        assert_eq!(parsed.fixtures.len(), 2);
        assert!(manifest.contains("release/disk_latency.wasm"));
        for bad in ["", "x", "Disk", "a_b", "-a", "a-", "1a", "a/b"] {
            assert!(scaffold(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn new_rule_writes_the_files_and_the_workspace_member_once() {
        let root = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(root.path().join("guests")).expect("dir");
        std::fs::write(
            root.path().join("guests/Cargo.toml"),
            "[workspace]\nmembers = [\n    \"sdk\",\n]\n",
        )
        .expect("workspace");
        new_rule(root.path(), "my-rule").expect("new");
        let ws = std::fs::read_to_string(root.path().join("guests/Cargo.toml")).expect("ws");
        assert!(ws.contains("\"alerts/my-rule\",\n    \"sdk\","), "{ws}");
        assert!(root.path().join("policies/my-rule.toml").is_file());
        assert!(
            new_rule(root.path(), "my-rule").is_err(),
            "never overwrites"
        );
    }
}
