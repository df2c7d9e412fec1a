//! GPU readings as series: `gpu_info{gpu,uuid,name}`, temperature, utilisation, memory,
//! power, fan, SM clock, throttling per reason, ECC, PCIe replay and XID error counters,
//! all labelled `gpu` (the index) — what the `gpu-health` rule reads.

use tocsin_capabilities::gpu::{GpuSnapshot, THROTTLE_REASONS};
use tocsin_store::Sample;

/// Append the samples of `snapshot` at `ts_ms`.
pub fn samples(snapshot: &GpuSnapshot, ts_ms: i64, out: &mut Vec<Sample>) {
    for g in &snapshot.gpus {
        let gpu = g.index.to_string();
        let mut push = |name: &str, extra: &[(&str, &str)], value: f64| {
            if value.is_nan() {
                return; // not supported by this GPU
            }
            let mut labels = vec![("gpu".to_string(), gpu.clone())];
            labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            out.push(Sample {
                name: name.to_string(),
                labels,
                ts_ms,
                value,
            });
        };
        push("gpu_info", &[("uuid", &g.uuid), ("name", &g.name)], 1.0);
        push("gpu_temperature_celsius", &[], g.temperature_celsius);
        push("gpu_utilization_percent", &[], g.utilization_percent);
        push("gpu_memory_used_bytes", &[], g.memory_used_bytes as f64);
        push("gpu_memory_total_bytes", &[], g.memory_total_bytes as f64);
        push("gpu_power_watts", &[], g.power_watts);
        push("gpu_power_limit_watts", &[], g.power_limit_watts);
        if let Some(f) = g.fan_percent {
            push("gpu_fan_percent", &[], f);
        }
        push("gpu_sm_clock_hertz", &[], f64::from(g.sm_clock_mhz) * 1e6);
        for reason in THROTTLE_REASONS {
            let on = g.throttle_reasons.iter().any(|r| r == reason);
            push(
                "gpu_throttled",
                &[("reason", reason)],
                if on { 1.0 } else { 0.0 },
            );
        }
        if let Some(n) = g.ecc_corrected {
            push("gpu_ecc_errors_total", &[("type", "corrected")], n as f64);
        }
        if let Some(n) = g.ecc_uncorrected {
            push("gpu_ecc_errors_total", &[("type", "uncorrected")], n as f64);
        }
        if let Some(n) = g.pcie_replays {
            push("gpu_pcie_replays_total", &[], n as f64);
        }
        // Written from the first round on (as 0), so the first XID is an increase.
        let counters = snapshot.counters.get(&g.index).cloned().unwrap_or_default();
        push("gpu_xid_errors_total", &[], counters.xid_errors as f64);
        if let Some(x) = counters.last_xid {
            push("gpu_last_xid", &[], x as f64);
        }
    }
}
