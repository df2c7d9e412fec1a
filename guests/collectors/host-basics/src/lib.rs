//! Collector `host-basics`: one round of host metrics from the `sensors` capability —
//! CPU (total, per core), load, memory and swap, disk space and I/O, network counters, uptime.

tocsin_guest::world!(collector);
use tocsin::monitor::sensors;
use tocsin_guest::prelude::*;

struct HostBasics;

fn sample(name: &str, labels: Vec<(String, String)>, ts_ms: i64, value: f64) -> Sample {
    Sample {
        name: name.to_string(),
        labels,
        ts_ms,
        value,
    }
}

impl Guest for HostBasics {
    fn collect(ctx: Context) -> Result<Vec<Sample>, String> {
        let ts = ctx.now_ms;
        let mut out = Vec::new();
        let cpu = sensors::cpu().map_err(|e| format!("cpu: {e:?}"))?;
        out.push(sample("cpu_usage_percent", vec![], ts, cpu.usage_percent));
        for (i, u) in cpu.per_core.iter().enumerate() {
            out.push(sample(
                "cpu_core_usage_percent",
                sorted_labels([("core", i.to_string())]),
                ts,
                *u,
            ));
        }
        out.push(sample("load1", vec![], ts, cpu.load1));
        out.push(sample("load5", vec![], ts, cpu.load5));
        out.push(sample("load15", vec![], ts, cpu.load15));

        let mem = sensors::memory().map_err(|e| format!("memory: {e:?}"))?;
        out.push(sample(
            "memory_total_bytes",
            vec![],
            ts,
            mem.total_bytes as f64,
        ));
        out.push(sample(
            "memory_available_bytes",
            vec![],
            ts,
            mem.available_bytes as f64,
        ));
        if mem.total_bytes > 0 {
            let used = mem.total_bytes.saturating_sub(mem.available_bytes) as f64;
            out.push(sample(
                "memory_used_percent",
                vec![],
                ts,
                100.0 * used / mem.total_bytes as f64,
            ));
        }
        out.push(sample(
            "swap_used_bytes",
            vec![],
            ts,
            mem.swap_used_bytes as f64,
        ));

        // Disks and networks are optional extras: a failure there does not lose CPU and memory.
        if let Ok(disks) = sensors::disks() {
            for d in disks.iter().filter(|d| d.total_bytes > 0) {
                let l = sorted_labels([("mount", d.mount.as_str()), ("device", d.device.as_str())]);
                let used = d.total_bytes.saturating_sub(d.available_bytes) as f64;
                out.push(sample(
                    "disk_used_percent",
                    l.clone(),
                    ts,
                    100.0 * used / d.total_bytes as f64,
                ));
                out.push(sample(
                    "disk_available_bytes",
                    l.clone(),
                    ts,
                    d.available_bytes as f64,
                ));
                out.push(sample(
                    "disk_read_bytes_total",
                    l.clone(),
                    ts,
                    d.read_bytes as f64,
                ));
                out.push(sample(
                    "disk_written_bytes_total",
                    l,
                    ts,
                    d.written_bytes as f64,
                ));
            }
        }
        if let Ok(nets) = sensors::networks() {
            for n in nets {
                let l = sorted_labels([("interface", n.name.as_str())]);
                out.push(sample(
                    "net_rx_bytes_total",
                    l.clone(),
                    ts,
                    n.rx_bytes as f64,
                ));
                out.push(sample(
                    "net_tx_bytes_total",
                    l.clone(),
                    ts,
                    n.tx_bytes as f64,
                ));
                out.push(sample(
                    "net_rx_errors_total",
                    l.clone(),
                    ts,
                    n.rx_errors as f64,
                ));
                out.push(sample("net_tx_errors_total", l, ts, n.tx_errors as f64));
            }
        }
        out.push(sample(
            "uptime_seconds",
            vec![],
            ts,
            sensors::uptime_seconds() as f64,
        ));
        Ok(out)
    }
}

export!(HostBasics);
