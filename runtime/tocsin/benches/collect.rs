//! Collection cost benchmark (plain binary, release): side by side in one run, for
//! `COLLECT_BENCH_SECS` (default 60) after a warm-up, each process's CPU time and resident
//! memory read from /proc:
//! - Debian's `prometheus-node-exporter`, scraped every second by this bench;
//! - `tocsin agent`, host metrics every second, spooled to disk and shipped over MQTT to:
//! - `tocsin run` with the default policies and its embedded broker, host metrics every
//!   second, storing and evaluating (its own and the agent's).
//!
//! Prints `bench: NAME VALUE UNIT` lines for `cargo xtask bench`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

fn report(name: &str, value: f64, unit: &str) {
    println!("bench: {name} {value:.2} {unit}");
}

/// CPU seconds (user + system) and resident bytes of `pid`.
fn usage(pid: u32) -> (f64, u64) {
    let p = procfs::process::Process::new(pid as i32).expect("process");
    let stat = p.stat().expect("stat");
    let tps = procfs::ticks_per_second() as f64;
    let rss = p.status().expect("status").vmrss.unwrap_or(0) * 1024;
    ((stat.utime + stat.stime) as f64 / tps, rss)
}

fn config(dir: &Path, name: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("[collect]\ninterval = \"1s\"\n{extra}\n[log]\nlevel = \"warn\"\n"),
    )
    .expect("config");
    path
}

fn main() {
    let secs: u64 = std::env::var("COLLECT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = tempfile::tempdir().expect("tempdir");

    let ne_port = free_port();
    let node_exporter = Killed(
        Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{ne_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-node-exporter (Debian package; `cargo xtask bench` installs it)"),
    );

    let full_port = free_port();
    let broker = format!("127.0.0.1:{}", free_port());
    let full_cfg = config(dir.path(), "full.toml", "");
    let full_cfg = full_cfg.display().to_string();
    let full = spawn_run(
        &repo().join("policies"),
        &dir.path().join("full-data"),
        full_port,
        &["--config", &full_cfg],
        &[("TOCSIN_MQTT__LISTEN", &broker)],
    );
    wait_for("the full tocsin", || get(full_port, "/healthz"));

    let agent_cfg = config(
        dir.path(),
        "agent.toml",
        &format!("[agent]\nserver = \"{broker}\"\nclient_id = \"bench-agent\"\n"),
    );
    let agent = Killed(
        Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(["agent", "--config"])
            .arg(&agent_cfg)
            .arg("--data-dir")
            .arg(dir.path().join("agent-data"))
            .env_remove("TOCSIN_CONFIG")
            .stdout(Stdio::null())
            .spawn()
            .expect("tocsin agent"),
    );
    let scrape_url = format!("http://127.0.0.1:{ne_port}/metrics");
    let ne_series = wait_for("node_exporter", || {
        let body = ureq::get(&scrape_url)
            .call()
            .ok()?
            .into_body()
            .read_to_string()
            .ok()?;
        Some(
            body.lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .count(),
        )
    });

    // Scrape node_exporter every second, as Prometheus would.
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = {
        let (stop, url) = (stop.clone(), scrape_url.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let _ = ureq::get(&url)
                    .call()
                    .and_then(|r| r.into_body().read_to_string());
                std::thread::sleep(Duration::from_secs(1).saturating_sub(started.elapsed()));
            }
        })
    };

    // Warm-up: guests compiled, first rounds stored, caches filled.
    std::thread::sleep(Duration::from_secs(20));
    let pids = [
        ("node_exporter", node_exporter.0.id()),
        ("tocsin_agent", agent.0.id()),
        ("tocsin_run", full.0.id()),
    ];
    let before: Vec<(f64, u64)> = pids.iter().map(|(_, p)| usage(*p)).collect();
    let mut peak: Vec<u64> = before.iter().map(|b| b.1).collect();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(1));
        for (i, (_, pid)) in pids.iter().enumerate() {
            peak[i] = peak[i].max(usage(*pid).1);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    for (i, (name, pid)) in pids.iter().enumerate() {
        let (cpu, _) = usage(*pid);
        report(
            &format!("{name}_cpu"),
            100.0 * (cpu - before[i].0) / elapsed,
            "%core",
        );
        report(
            &format!("{name}_rss"),
            peak[i] as f64 / (1024.0 * 1024.0),
            "MiB",
        );
    }
    report("node_exporter_series", ne_series as f64, "series");
    // What the agent delivered: its series on the server.
    let (_, body) = get(
        full_port,
        "/api/metrics/latest?selector=%7Bclient%3D%22bench-agent%22%7D",
    )
    .expect("latest");
    let delivered = body["values"].as_array().map_or(0, Vec::len);
    report("tocsin_agent_series", delivered as f64, "series");
    stop.store(true, Ordering::Relaxed);
    let _ = scraper.join();
    drop((agent, full));
}
