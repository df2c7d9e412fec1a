//! `tocsin rule new NAME` and `tocsin rule build NAME`: scaffold an alert rule in a Tocsin
//! checkout and build it. A Rust rule is a guest crate in `guests/alerts/NAME` (from
//! `examples/load-high`) added to the guests workspace; a Python or JavaScript rule is
//! `rules/NAME/app.py` or `rules/NAME/rule.js` (from `examples/python-load-high` and
//! `examples/js-load-high`), built by componentize-py or jco against the
//! `alert-rule-pure` world. Each gets `policies/NAME.toml` with fixtures.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const EXAMPLE_CARGO: &str = include_str!("../../../examples/load-high/Cargo.toml");
const EXAMPLE_LIB: &str = include_str!("../../../examples/load-high/src/lib.rs");
const EXAMPLE_PY: &str = include_str!("../../../examples/python-load-high/app.py");
const EXAMPLE_JS: &str = include_str!("../../../examples/js-load-high/rule.js");

/// The versions `rule build` was tested with (the suite installs these).
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
pub const JCO: &str = "@bytecodealliance/jco@1.34.0";

/// The language a rule is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

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

/// The policy manifest of a new rule whose component is at `component` (relative to
/// `policies/`).
fn manifest(name: &str, component: &str, budgets: &str) -> String {
    format!(
        r#"# Alert rule {name}: `tocsin rule build {name}`, then `tocsin rule test policies/{name}.toml`.
kind = "alert-rule"
component = "{component}"
interval = "15s"
grants = []                 # this rule needs no capability
[params]
threshold = "4"
[input]
select = ["load1"]          # the series matching these selectors ...
lookback = "2m"             # ... over the last two minutes
[rule]
for = "1m"                  # pending for a minute before it fires
{budgets}
[[fixture]]                 # examples it must get right (promtool notation, 15 s apart)
name = "fires above 4"
series = ['load1 3 5 6']    # 3, 5, 6: mean 4.7 over the lookback
expect = [{{ labels = {{}}, severity = "warning" }}]

[[fixture]]
name = "quiet below 4"
series = ['load1 1 2 1']
expect = []
"#
    )
}

/// Python and JavaScript guests carry their interpreter: more memory and time per call.
const SCRIPT_BUDGETS: &str = "[budgets]                   # room for the interpreter
memory_mib = 64
deadline_ms = 250
";

/// The files of a new rule: (path under the root, contents).
pub fn scaffold(name: &str, lang: Lang) -> anyhow::Result<Vec<(PathBuf, String)>> {
    check_name(name)?;
    let policy = PathBuf::from(format!("policies/{name}.toml"));
    let script = |file: &str, code: String| {
        vec![
            (PathBuf::from(format!("rules/{name}/{file}")), code),
            (
                policy.clone(),
                manifest(
                    name,
                    &format!("../rules/{name}/{name}.wasm"),
                    SCRIPT_BUDGETS,
                ),
            ),
        ]
    };
    Ok(match lang {
        Lang::Python => script(
            "app.py",
            EXAMPLE_PY.replacen(
                "Example alert rule `load-high`",
                &format!("Alert rule `{name}`"),
                1,
            ),
        ),
        Lang::Js => script(
            "rule.js",
            EXAMPLE_JS.replacen(
                "Example alert rule `load-high`",
                &format!("Alert rule `{name}`"),
                1,
            ),
        ),
        Lang::Rust => rust_scaffold(name, policy),
    })
}

fn rust_scaffold(name: &str, policy: PathBuf) -> Vec<(PathBuf, String)> {
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
    let component = format!(
        "../guests/target/wasm32-wasip2/release/{}.wasm",
        name.replace('-', "_")
    );
    vec![
        (
            PathBuf::from(format!("guests/alerts/{name}/Cargo.toml")),
            cargo,
        ),
        (
            PathBuf::from(format!("guests/alerts/{name}/src/lib.rs")),
            lib,
        ),
        (policy, manifest(name, &component, "")),
    ]
}

/// `tocsin rule new NAME`: write the scaffold under `root` (and, for Rust, add the crate
/// to the guests workspace).
pub fn new_rule(root: &Path, name: &str, lang: Lang) -> anyhow::Result<()> {
    if !root.join("wit/worlds.wit").is_file() {
        bail!(
            "{} is not a Tocsin checkout (no wit/worlds.wit): run this in one, or give --root",
            root.display()
        );
    }
    let files = scaffold(name, lang)?;
    for (path, _) in &files {
        if root.join(path).exists() {
            bail!("{} exists already", root.join(path).display());
        }
    }
    let workspace = root.join("guests/Cargo.toml");
    let updated = match lang {
        Lang::Rust => Some(with_member(&workspace, name)?),
        Lang::Python | Lang::Js => None,
    };
    for (path, text) in &files {
        let full = root.join(path);
        if let Some(dir) = full.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&full, text).with_context(|| full.display().to_string())?;
        println!("created {}", path.display());
    }
    if let Some(updated) = updated {
        std::fs::write(&workspace, updated)?;
        println!("added \"alerts/{name}\" to guests/Cargo.toml");
    }
    let code = &files[0].0;
    println!(
        "next: edit {}, then `tocsin rule build {name}` and `tocsin rule test policies/{name}.toml`",
        code.display()
    );
    Ok(())
}

/// The guests workspace manifest with `alerts/NAME` added to its members.
fn with_member(workspace: &Path, name: &str) -> anyhow::Result<String> {
    let members = std::fs::read_to_string(workspace)
        .with_context(|| format!("reading {}", workspace.display()))?;
    let Some(at) = members.find("members = [") else {
        bail!("{}: no `members = [` list", workspace.display());
    };
    let insert = at + "members = [".len();
    Ok(format!(
        "{}\n    \"alerts/{name}\",{}",
        &members[..insert],
        &members[insert..]
    ))
}

/// `tocsin rule build NAME`: build the rule — `rules/NAME/app.py` with componentize-py,
/// `rules/NAME/rule.js` with jco, otherwise the Rust crate `NAME` for wasm32-wasip2
/// (release) — and print the component and its sha256.
pub fn build_rule(root: &Path, name: &str) -> anyhow::Result<()> {
    check_name(name)?;
    let dir = root.join("rules").join(name);
    let out = dir.join(format!("{name}.wasm"));
    let wit = root.join("wit");
    let wasm = if dir.join("app.py").is_file() {
        let mut cmd = tool("TOCSIN_COMPONENTIZE_PY", "componentize-py");
        cmd.arg("-d")
            .arg(&wit)
            .args(["-w", "alert-rule-pure", "componentize", "-p"])
            .arg(&dir)
            .arg("app")
            .arg("-o")
            .arg(&out)
            .env("PYTHONDONTWRITEBYTECODE", "1");
        run_tool(
            cmd,
            "componentize-py",
            &format!("pip install {COMPONENTIZE_PY}"),
        )?;
        out
    } else if dir.join("rule.js").is_file() {
        let mut cmd = tool("TOCSIN_JCO", "jco");
        cmd.arg("componentize")
            .arg(dir.join("rule.js"))
            .arg("--wit")
            .arg(&wit)
            .args(["--world-name", "alert-rule-pure", "-d", "all", "-o"])
            .arg(&out);
        run_tool(cmd, "jco", &format!("npm install -g {JCO}"))?;
        out
    } else {
        let mut cmd = tool("CARGO", "cargo");
        cmd.current_dir(root.join("guests")).args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            name,
        ]);
        run_tool(cmd, "cargo", "rustup target add wasm32-wasip2")?;
        root.join("guests/target/wasm32-wasip2/release")
            .join(format!("{}.wasm", name.replace('-', "_")))
    };
    let bytes = std::fs::read(&wasm).with_context(|| wasm.display().to_string())?;
    println!(
        "built {} ({} KiB, sha256 {})",
        wasm.display(),
        bytes.len() / 1024,
        tocsin_engine::sha256_hex(&bytes)
    );
    Ok(())
}

/// The command named by `env`, or `default` from PATH.
fn tool(env: &str, default: &str) -> Command {
    Command::new(std::env::var_os(env).unwrap_or_else(|| default.into()))
}

fn run_tool(mut cmd: Command, what: &str, install: &str) -> anyhow::Result<()> {
    let status = match cmd.status() {
        Ok(status) => status,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{what} is not installed (or not on PATH): `{install}`")
        }
        Err(e) => return Err(e).with_context(|| format!("running {what}")),
    };
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_rule_is_the_example_renamed_with_a_manifest_that_parses() {
        let files = scaffold("disk-latency", Lang::Rust).expect("scaffold");
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
            assert!(scaffold(bad, Lang::Python).is_err(), "{bad}");
        }
    }

    #[test]
    fn new_rule_writes_the_files_and_the_workspace_member_once() {
        let root = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(root.path().join("guests")).expect("dir");
        std::fs::create_dir_all(root.path().join("wit")).expect("dir");
        std::fs::write(root.path().join("wit/worlds.wit"), "").expect("wit");
        std::fs::write(
            root.path().join("guests/Cargo.toml"),
            "[workspace]\nmembers = [\n    \"sdk\",\n]\n",
        )
        .expect("workspace");
        new_rule(root.path(), "my-rule", Lang::Rust).expect("new");
        let ws = std::fs::read_to_string(root.path().join("guests/Cargo.toml")).expect("ws");
        assert!(ws.contains("\"alerts/my-rule\",\n    \"sdk\","), "{ws}");
        assert!(root.path().join("policies/my-rule.toml").is_file());
        assert!(
            new_rule(root.path(), "my-rule", Lang::Rust).is_err(),
            "never overwrites"
        );
    }

    #[test]
    fn python_and_js_rules_are_the_examples_renamed_beside_a_manifest() {
        for (lang, file, example) in [
            (Lang::Python, "app.py", EXAMPLE_PY),
            (Lang::Js, "rule.js", EXAMPLE_JS),
        ] {
            let files = scaffold("slow-disk", lang).expect("scaffold");
            assert_eq!(files.len(), 2);
            let (path, code) = &files[0];
            assert_eq!(path, &PathBuf::from(format!("rules/slow-disk/{file}")));
            assert!(code.contains("Alert rule `slow-disk`"), "{code}");
            assert_eq!(
                code.lines().skip(1).collect::<Vec<_>>(),
                example.lines().skip(1).collect::<Vec<_>>(),
                "only the first line differs from the example"
            );
            let (path, text) = &files[1];
            let parsed = tocsin_policy::Manifest::parse(text, path).expect("manifest parses");
            assert_eq!(parsed.budgets.memory_mib, 64);
            assert!(text.contains("component = \"../rules/slow-disk/slow-disk.wasm\""));
        }
    }

    #[test]
    fn a_script_rule_leaves_the_guests_workspace_alone() {
        let root = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(root.path().join("wit")).expect("dir");
        std::fs::write(root.path().join("wit/worlds.wit"), "").expect("wit");
        new_rule(root.path(), "py-rule", Lang::Python).expect("new");
        assert!(root.path().join("rules/py-rule/app.py").is_file());
        assert!(root.path().join("policies/py-rule.toml").is_file());
        assert!(!root.path().join("guests/Cargo.toml").exists());
        let err = new_rule(tempfile::tempdir().expect("dir").path(), "x-rule", Lang::Js)
            .expect_err("not a checkout");
        assert!(err.to_string().contains("not a Tocsin checkout"), "{err}");
    }
}
