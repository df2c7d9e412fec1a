//! Collector `gpu-summary`: derived GPU health from the `sensors` capability (the raw
//! `gpu_*` series come from the built-in collector). Per GPU: `gpu_memory_used_percent`,
//! `gpu_power_used_percent`, and `gpu_healthy` — 0 while it is above `max_temp` (param,
//! default 90 °C), throttled for power or heat, or has uncorrected ECC errors; plus
//! `gpus_total` and `gpus_unhealthy`. No GPU: `gpus_total` 0. XID events are the
//! `gpu-health` rule's (from `gpu_xid_errors_total`): every reader of the sensors drains
//! them, so a guest reading every 30 s would miss most.

tocsin_guest::world!(collector);
use tocsin::monitor::sensors;
use tocsin_guest::prelude::*;

struct GpuSummary;

fn percent(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0 && part.is_finite()).then(|| 100.0 * part / whole)
}

impl Guest for GpuSummary {
    fn collect(ctx: Context) -> Result<Vec<Sample>, String> {
        let ts = ctx.now_ms;
        let max_temp: f64 = param(&ctx.params, "max_temp", 90.0);
        let gpus = sensors::gpus().map_err(|e| format!("gpus: {e:?}"))?;
        let mut out = Vec::new();
        let mut push = |name: &str, labels: Vec<(String, String)>, value: f64| {
            out.push(Sample {
                name: name.to_string(),
                labels,
                ts_ms: ts,
                value,
            })
        };
        let mut unhealthy = 0;
        for g in &gpus {
            let l = sorted_labels([("gpu", g.index.to_string())]);
            if let Some(p) = percent(g.memory_used_bytes as f64, g.memory_total_bytes as f64) {
                push("gpu_memory_used_percent", l.clone(), p);
            }
            if let Some(p) = percent(g.power_watts, g.power_limit_watts) {
                push("gpu_power_used_percent", l.clone(), p);
            }
            let hot = g.temperature_celsius > max_temp;
            let throttled = !g.throttle_reasons.is_empty();
            let ecc = g.ecc_uncorrected.unwrap_or(0) > 0;
            let healthy = !(hot || throttled || ecc);
            if !healthy {
                unhealthy += 1;
            }
            push("gpu_healthy", l, if healthy { 1.0 } else { 0.0 });
        }
        push("gpus_total", Vec::new(), gpus.len() as f64);
        push("gpus_unhealthy", Vec::new(), f64::from(unhealthy));
        Ok(out)
    }
}

export!(GpuSummary);
