//! Collector `process-watch`: for each process name its manifest lists (param `processes`,
//! comma-separated; matched against the executable name), `process_count{name}` (0 when
//! none runs: what `process-down` reads), total `process_memory_bytes{name}`, total
//! `process_cpu_percent{name}` and `process_oldest_seconds{name}` (age of the oldest).

tocsin_guest::world!(collector);
use tocsin::monitor::sensors;
use tocsin_guest::prelude::*;

struct ProcessWatch;

impl Guest for ProcessWatch {
    fn collect(ctx: Context) -> Result<Vec<Sample>, String> {
        let ts = ctx.now_ms;
        let names: Vec<&str> = label(&ctx.params, "processes")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let mut out = Vec::new();
        for name in names {
            let all = sensors::processes(Some(name)).map_err(|e| format!("processes: {e:?}"))?;
            // The host matches by substring; a watch means this executable exactly: the
            // kernel's name (cut at 15 bytes) or the basename of the command's first word.
            let short = &name[..name.floor_char_boundary(15)];
            let procs: Vec<_> = all
                .iter()
                .filter(|p| {
                    let exe = p.cmd.split(' ').next().unwrap_or("");
                    let base = exe.rsplit('/').next().unwrap_or(exe);
                    p.name == name || base == name || (name.len() > 15 && p.name == short)
                })
                .collect();
            let l = sorted_labels([("name", name)]);
            let mut push = |metric: &str, value: f64| {
                out.push(Sample {
                    name: metric.to_string(),
                    labels: l.clone(),
                    ts_ms: ts,
                    value,
                })
            };
            push("process_count", procs.len() as f64);
            if !procs.is_empty() {
                push(
                    "process_memory_bytes",
                    procs.iter().map(|p| p.memory_bytes as f64).sum(),
                );
                push(
                    "process_cpu_percent",
                    procs.iter().map(|p| p.cpu_percent).sum(),
                );
                push(
                    "process_oldest_seconds",
                    procs.iter().map(|p| p.run_seconds).max().unwrap_or(0) as f64,
                );
            }
        }
        Ok(out)
    }
}

export!(ProcessWatch);
