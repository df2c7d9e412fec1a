//! `cargo xtask`: the project's build chores in Rust.
//!
//! - `run [ARGS]`   build guests and a release runtime, start `tocsin run ARGS`
//! - `test`         install missing test packages, build guests, run the whole suite
//! - `bench`        build guests, run every benchmark in release, write target/bench.json
//! - `guests`       add the wasm targets if missing and build the guests workspace
//! - `tools`        install componentize-py and jco (Python and JS rules) under target/tools

mod manifest_doc;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// Debian packages the test suite needs: (command that proves it is there, package).
/// Later features add their servers here (mosquitto, aiosmtpd, chromium, ...).
const TEST_PACKAGES: &[(&str, &str)] = &[
    ("aiosmtpd", "python3-aiosmtpd"),
    ("openssl", "openssl"),
    ("promtool", "prometheus"),
    ("mosquitto", "mosquitto"),
    ("snmpget", "snmp"),
    ("prometheus-alertmanager", "prometheus-alertmanager"),
    ("victoria-metrics", "victoria-metrics"),
    // The collection benchmark's comparison.
    ("prometheus-node-exporter", "prometheus-node-exporter"),
];

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let root = root()?;
    match task.as_str() {
        "guests" => guests(&root),
        "run" => run(&root, &rest),
        "test" => test(&root, &rest),
        "bench" => bench(&root),
        "fuzz" => fuzz(&root, &rest),
        "tools" => {
            let path = tools(&root)?;
            eprintln!(
                "xtask: rule toolchains installed; put them on PATH with\n  export PATH={}:$PATH",
                path.join(":")
            );
            Ok(())
        }
        "docs" => {
            let text = manifest_doc::render(&root)?;
            std::fs::write(root.join("docs/manifest.md"), text)?;
            eprintln!("xtask: wrote docs/manifest.md");
            Ok(())
        }
        other => bail!(
            "unknown task `{other}`\nusage: cargo xtask <run [ARGS] | test [FILTER] | bench | guests | tools | fuzz [SECONDS] [TARGET..] | docs>"
        ),
    }
}

fn root() -> anyhow::Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .context("xtask has no parent directory")
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn status(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: {cmd:?}");
    let st = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(())
}

fn ensure_targets() -> anyhow::Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running rustup (needed for the wasm targets)")?;
    let installed = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&str> = ["wasm32-wasip2", "wasm32-unknown-unknown"]
        .into_iter()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if !missing.is_empty() {
        eprintln!("xtask: adding rust targets {missing:?}");
        status(
            Command::new("rustup")
                .args(["target", "add"])
                .args(&missing),
        )?;
    }
    Ok(())
}

fn guests(root: &Path) -> anyhow::Result<()> {
    ensure_targets()?;
    status(cargo().current_dir(root.join("guests")).args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
    ]))
}

fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    guests(root)?;
    status(
        cargo()
            .current_dir(root)
            .args(["build", "--release", "-p", "tocsin"]),
    )?;
    let bin = root.join("target/release/tocsin");
    let mut cmd = Command::new(&bin);
    cmd.current_dir(root).arg("run").args(args);
    eprintln!(
        "xtask: starting {} (dashboard and API on http://127.0.0.1:8080 unless configured)",
        bin.display()
    );
    status(&mut cmd)
}

fn install_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = TEST_PACKAGES
        .iter()
        .filter(|(probe, _)| which(probe).is_none())
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root {
        bail!("missing test packages {missing:?}: install them with apt-get (or run as root)");
    }
    eprintln!("xtask: installing Debian packages {missing:?}");
    status(Command::new("apt-get").args(["update", "-qq"]))?;
    status(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// The Python and JavaScript rule toolchains `tocsin rule build` runs, at the versions it
/// was tested with, installed under `target/tools` (a venv and an npm prefix). Returns the
/// directories to put on PATH.
fn tools(root: &Path) -> anyhow::Result<Vec<String>> {
    let dir = root.join("target/tools");
    let venv = dir.join("py");
    let py_bin = venv.join("bin");
    if !py_bin.join("componentize-py").is_file() {
        let venv_ok = |venv: &Path| {
            Command::new("python3")
                .args(["-m", "venv"])
                .arg(venv)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !venv_ok(&venv) {
            eprintln!("xtask: python3 -m venv failed; installing python3-venv");
            status(
                Command::new("apt-get")
                    .args([
                        "install",
                        "-y",
                        "-qq",
                        "--no-install-recommends",
                        "python3-venv",
                    ])
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            )?;
            if !venv_ok(&venv) {
                bail!("python3 -m venv {} failed", venv.display());
            }
        }
        status(Command::new(py_bin.join("pip")).args([
            "install",
            "-q",
            "componentize-py==0.25.1",
        ]))?;
    }
    let js = dir.join("js");
    let js_bin = js.join("node_modules/.bin");
    if !js_bin.join("jco").is_file() {
        std::fs::create_dir_all(&js)?;
        status(
            Command::new("npm")
                .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
                .arg(&js)
                .arg("@bytecodealliance/jco@1.34.0"),
        )?;
    }
    Ok([py_bin, js_bin]
        .iter()
        .map(|p| p.display().to_string())
        .collect())
}

/// PATH with `dirs` in front.
fn path_with(dirs: &[String]) -> String {
    let mut all = dirs.to_vec();
    all.push(std::env::var("PATH").unwrap_or_default());
    all.join(":")
}

fn which(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

fn test(root: &Path, filter: &[String]) -> anyhow::Result<()> {
    install_packages()?;
    // The Python and JS rule end-to-end tests run `tocsin rule build` with these on PATH.
    let path = path_with(&tools(root)?);
    guests(root)?;
    // The SDK's and the guests' own unit tests run on the host: rules are plain Rust.
    status(
        cargo()
            .current_dir(root.join("guests"))
            .args(["test", "--workspace"]),
    )?;
    let nextest = cargo()
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if nextest {
        status(
            cargo()
                .current_dir(root)
                .args(["nextest", "run", "--workspace", "--no-fail-fast"])
                .args(filter)
                .env("PATH", &path),
        )?;
        // nextest does not run doctests.
        status(
            cargo()
                .current_dir(root)
                .args(["test", "--workspace", "--doc"]),
        )
    } else {
        status(
            cargo()
                .current_dir(root)
                .args(["test", "--workspace"])
                .args(filter)
                .env("PATH", &path),
        )
    }
}

fn bench(root: &Path) -> anyhow::Result<()> {
    guests(root)?;
    // The reload bench builds the Python and JS example rules.
    let path = path_with(&tools(root)?);
    let mut figures = Vec::new();
    for (package, bench) in [
        ("tocsin-engine", "engine"),
        ("tocsin-store", "store"),
        ("tocsin-alerting", "rules"),
        ("tocsin", "reload"),
        ("tocsin", "fleet"),
        ("tocsin", "collect"),
    ] {
        let mut cmd = cargo();
        cmd.current_dir(root)
            .args(["bench", "-p", package, "--bench", bench])
            .env("PATH", &path)
            .stdout(Stdio::piped());
        eprintln!("xtask: {cmd:?}");
        let out = cmd.spawn()?.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        if !out.status.success() {
            bail!("benchmark {package}/{bench} failed: {}", out.status);
        }
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("bench: ") else {
                continue;
            };
            let parts: Vec<&str> = rest.split_whitespace().collect();
            if let [name, value, unit] = parts[..] {
                let value: f64 = value
                    .parse()
                    .with_context(|| format!("bad figure: {line}"))?;
                figures.push(serde_json::json!({ "name": name, "value": value, "unit": unit, "bench": format!("{package}/{bench}") }));
            }
        }
    }
    let path = root.join("target/bench.json");
    std::fs::create_dir_all(root.join("target"))?;
    std::fs::write(&path, serde_json::to_string_pretty(&figures)?)?;
    eprintln!(
        "xtask: {} figures written to {}",
        figures.len(),
        path.display()
    );
    Ok(())
}

/// The cargo-fuzz this project's fuzz targets are run with.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// `cargo xtask fuzz [SECONDS] [TARGET..]`: run every fuzz target in `fuzz/` (or the ones
/// named) for SECONDS each (default 20), on the stable toolchain without a sanitizer;
/// the inputs in `fuzz/seeds/TARGET` start each run. A crash fails the task and leaves
/// its input in `fuzz/artifacts/TARGET`.
fn fuzz(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let seconds: u64 = match args.first() {
        Some(s) => s.parse().with_context(|| format!("seconds: `{s}`"))?,
        None => 20,
    };
    let has_fuzz = cargo()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_fuzz {
        status(cargo().args([
            "install",
            "cargo-fuzz",
            "--locked",
            "--version",
            CARGO_FUZZ_VERSION,
        ]))?;
    }
    let dir = root.join("fuzz");
    let targets: Vec<String> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        let out = cargo()
            .args(["fuzz", "list"])
            .current_dir(&dir)
            .output()
            .context("cargo fuzz list")?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    if targets.is_empty() {
        bail!("no fuzz targets found in fuzz/");
    }
    for t in &targets {
        let corpus = dir.join("corpus").join(t);
        std::fs::create_dir_all(&corpus)?;
        let mut cmd = cargo();
        cmd.current_dir(&dir)
            .args(["fuzz", "run", t, "--sanitizer", "none"])
            .arg(&corpus);
        let seeds = dir.join("seeds").join(t);
        if seeds.is_dir() {
            cmd.arg(&seeds);
        }
        cmd.args([
            "--",
            &format!("-max_total_time={seconds}"),
            "-rss_limit_mb=4096",
            "-print_final_stats=1",
        ]);
        status(&mut cmd)?;
    }
    eprintln!(
        "xtask: fuzzed {} target(s) for {seconds} s each",
        targets.len()
    );
    Ok(())
}
