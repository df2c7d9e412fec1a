//! Alert rule `cpu-high`: fires while the mean CPU usage over the input window is above
//! `threshold` (default 90), and — once active — keeps firing until it drops below
//! `clear` (default 80). Critical above `critical` (default 98).

tocsin_guest::world!(alert_rule);
use tocsin_guest::prelude::*;

struct CpuHigh;

impl Guest for CpuHigh {
    fn evaluate(ctx: Context, input: Vec<Series>, active: Vec<Labels>) -> Result<Vec<Signal>, String> {
        let threshold = param(&ctx.params, "threshold", 90.0);
        let clear = param(&ctx.params, "clear", 80.0);
        let critical = param(&ctx.params, "critical", 98.0);
        let mut signals = Vec::new();
        for series in input.iter().filter(|s| s.name == "cpu_usage_percent") {
            let Some(usage) = mean(&series.points) else { continue };
            let is_active = active.contains(&series.labels);
            if usage > threshold || (is_active && usage > clear) {
                let host = label(&series.labels, "host").unwrap_or("this host");
                signals.push(Signal {
                    key: series.labels.clone(),
                    severity: if usage > critical { Severity::Critical } else { Severity::Warning },
                    value: usage,
                    summary: format!("CPU at {usage:.0}% on {host}"),
                    description: format!("Mean CPU usage {usage:.1}% is above {threshold}% (clears below {clear}%)."),
                    annotations: vec![],
                });
            }
        }
        Ok(signals)
    }
}

export!(CpuHigh);
