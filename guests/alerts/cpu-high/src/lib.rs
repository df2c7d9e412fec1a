//! Alert rule `cpu-high`: fires while the mean CPU usage over the input window is above
//! `threshold` (default 90), and — once active — keeps firing until it drops below
//! `clear` (default 80). Critical above `critical` (default 98).

tocsin_guest::world!(alert_rule);
use tocsin_guest::prelude::*;

struct CpuHigh;

impl Guest for CpuHigh {
    fn evaluate(
        ctx: Context,
        input: Vec<Series>,
        active: Vec<Labels>,
    ) -> Result<Vec<Signal>, String> {
        let threshold = param(&ctx.params, "threshold", 90.0);
        let clear = param(&ctx.params, "clear", 80.0);
        let critical = param(&ctx.params, "critical", 98.0);
        let mut signals = Vec::new();
        for series in input.iter().filter(|s| s.name == "cpu_usage_percent") {
            let Some(usage) = mean(&series.points) else {
                continue;
            };
            let is_active = active.contains(&series.labels);
            if usage > threshold || (is_active && usage > clear) {
                let host = label(&series.labels, "host").unwrap_or("this host");
                signals.push(Signal {
                    key: series.labels.clone(),
                    severity: if usage > critical {
                        Severity::Critical
                    } else {
                        Severity::Warning
                    },
                    value: usage,
                    summary: format!("CPU at {usage:.0}% on {host}"),
                    description: format!(
                        "Mean CPU usage {usage:.1}% is above {threshold}% (clears below {clear}%)."
                    ),
                    annotations: vec![],
                });
            }
        }
        Ok(signals)
    }
}

export!(CpuHigh);

#[cfg(test)]
mod tests {
    //! Offline tests: the rule is plain Rust, called directly on the host.
    use super::*;

    fn cpu(host: &str, values: &[f64]) -> Series {
        Series {
            name: "cpu_usage_percent".into(),
            labels: vec![("host".into(), host.into())],
            points: values
                .iter()
                .enumerate()
                .map(|(i, v)| (i as i64 * 1000, *v))
                .collect(),
        }
    }

    fn ctx() -> Context {
        Context {
            now_ms: 0,
            params: vec![
                ("threshold".into(), "90".into()),
                ("clear".into(), "80".into()),
            ],
        }
    }

    #[test]
    fn fires_above_threshold_only() {
        let out = CpuHigh::evaluate(
            ctx(),
            vec![cpu("a", &[95.0, 96.0]), cpu("b", &[50.0])],
            vec![],
        )
        .expect("evaluates");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key, vec![("host".to_string(), "a".to_string())]);
        assert_eq!(out[0].severity, Severity::Warning);
    }

    #[test]
    fn keeps_firing_until_below_clear() {
        let active = vec![vec![("host".to_string(), "a".to_string())]];
        let holding =
            CpuHigh::evaluate(ctx(), vec![cpu("a", &[85.0])], active.clone()).expect("ok");
        assert_eq!(holding.len(), 1, "85 % is above the clear level");
        let cleared = CpuHigh::evaluate(ctx(), vec![cpu("a", &[75.0])], active).expect("ok");
        assert!(cleared.is_empty(), "75 % is below the clear level");
    }
}
