//! Hot reload benchmark (plain binary, release): the real `tocsin` serving one rule; a
//! manifest is saved and the time until the new version serves is measured (polling
//! `/api/policies` every millisecond). Cached: the component is unchanged (compile cache
//! hit). Uncached: the component gets a new custom section each time, so a new hash and a
//! full compile. Then the same for the Python and JavaScript example rules (built by
//! `tocsin rule build`, which needs `cargo xtask tools` on PATH): their first deploy
//! compiles an 18 MB / 12 MB component, later manifest changes hit the cache.
//! Prints `bench: NAME VALUE UNIT` lines for `cargo xtask bench`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

fn report(name: &str, value: f64, unit: &str) {
    println!("bench: {name} {value:.3} {unit}");
}

fn manifest(component: &Path, critical: u32) -> String {
    format!(
        "kind = \"alert-rule\"\ncomponent = {:?}\ninterval = \"15s\"\n\
         [params]\ncritical = \"{critical}\"\n[input]\nselect = [\"cpu_usage_percent\"]\n",
        component.display().to_string()
    )
}

/// Append a custom section (id 0) named `bench` holding `n`: same code, new hash.
fn with_custom_section(wasm: &[u8], n: u32) -> Vec<u8> {
    let payload = n.to_le_bytes();
    let name = b"bench";
    let mut content = vec![name.len() as u8];
    content.extend_from_slice(name);
    content.extend_from_slice(&payload);
    let mut out = wasm.to_vec();
    out.push(0);
    out.push(content.len() as u8);
    out.extend_from_slice(&content);
    out
}

fn version(port: u16) -> Option<u64> {
    let (_, p) = get(port, "/api/policies")?;
    p["policies"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == "rule")?["current"]["version"]
        .as_u64()
}

/// Save `text` (write beside, rename) and time until `want` serves.
fn deploy(dir: &Path, port: u16, text: &str, want: u64) -> f64 {
    let tmp = dir.join(".rule.tmp");
    std::fs::write(&tmp, text).expect("write");
    let started = Instant::now();
    std::fs::rename(&tmp, dir.join("rule.toml")).expect("rename");
    while version(port) != Some(want) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "version {want} never served"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    started.elapsed().as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    let original =
        std::fs::read(guest("cpu_high")).expect("cpu_high.wasm: run `cargo xtask guests`");
    let component = dir.path().join("rule-0.wasm");
    std::fs::write(&component, &original).expect("write");
    std::fs::write(dir.path().join("rule.toml"), manifest(&component, 1)).expect("write");
    let port = free_port();
    let _tocsin = start_with(
        dir.path(),
        data.path(),
        port,
        &[("TOCSIN_LOG__LEVEL", "warn")],
    );
    wait_for("the first version", || version(port).filter(|v| *v == 1));

    let mut want = 1;
    let mut cached = Vec::new();
    for i in 0..20 {
        want += 1;
        cached.push(deploy(
            dir.path(),
            port,
            &manifest(&component, 100 + i),
            want,
        ));
    }
    let mut uncached = Vec::new();
    for i in 1..=5 {
        let path = dir.path().join(format!("rule-{i}.wasm"));
        std::fs::write(&path, with_custom_section(&original, i)).expect("write");
        want += 1;
        uncached.push(deploy(dir.path(), port, &manifest(&path, 1), want));
    }
    report("reload_cached_ms", median(cached), "ms");
    report("reload_uncached_ms", median(uncached), "ms");

    for (lang, file, example) in [
        ("python", "app.py", "examples/python-load-high/app.py"),
        ("js", "rule.js", "examples/js-load-high/rule.js"),
    ] {
        let component = build_script_rule(dir.path(), lang, file, example);
        want += 1;
        let first = deploy(dir.path(), port, &manifest(&component, 1), want);
        let mut cached = Vec::new();
        for i in 0..10 {
            want += 1;
            cached.push(deploy(
                dir.path(),
                port,
                &manifest(&component, 200 + i),
                want,
            ));
        }
        report(&format!("reload_{lang}_uncached_ms"), first, "ms");
        report(&format!("reload_{lang}_cached_ms"), median(cached), "ms");
    }
}

/// Build the example rule `example` (a `lang` rule, file name `file`) with `tocsin rule
/// build` in a scratch checkout under `dir`; the component's path.
fn build_script_rule(dir: &Path, lang: &str, file: &str, example: &str) -> std::path::PathBuf {
    let root = dir.join(format!("checkout-{lang}"));
    let name = format!("bench-{lang}");
    let rules = root.join("rules").join(&name);
    std::fs::create_dir_all(&rules).expect("dir");
    std::os::unix::fs::symlink(repo().join("wit"), root.join("wit")).expect("symlink");
    std::fs::copy(repo().join(example), rules.join(file)).expect("copy");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["rule", "build", &name, "--root"])
        .arg(&root)
        .output()
        .expect("tocsin rule build");
    assert!(
        out.status.success(),
        "rule build {name} (needs `cargo xtask tools` on PATH): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    rules.join(format!("{name}.wasm"))
}
