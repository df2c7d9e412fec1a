//! Alert rule `cpu-jump`: rate of change — fires when `cpu_usage_percent` rose by more
//! than `delta` percentage points (default 50) between its two newest points.

tocsin_guest::world!(alert_rule);
use tocsin_guest::prelude::*;

struct Rule;

impl Guest for Rule {
    fn evaluate(
        ctx: Context,
        input: Vec<Series>,
        _active: Vec<Labels>,
    ) -> Result<Vec<Signal>, String> {
        let delta = param(&ctx.params, "delta", 50.0);
        Ok(input
            .iter()
            .filter(|s| s.name == "cpu_usage_percent")
            .filter_map(|s| {
                let [.., (_, before), (_, now)] = s.points.as_slice() else {
                    return None;
                };
                let rise = now - before;
                (rise > delta).then(|| Signal {
                    key: s.labels.clone(),
                    severity: Severity::Warning,
                    value: rise,
                    summary: format!("CPU jumped {rise:.0} points to {now:.0}%"),
                    description: format!("CPU usage went from {before:.1}% to {now:.1}% between two checks (limit {delta})."),
                    annotations: vec![],
                })
            })
            .collect())
    }
}

export!(Rule);

#[cfg(test)]
mod tests {
    //! Offline tests: the rule is plain Rust, called directly on the host.
    use super::*;

    fn series(name: &str, labels: &[(&str, &str)], values: &[f64], step_ms: i64) -> Series {
        Series {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            points: values
                .iter()
                .enumerate()
                .map(|(i, v)| (i as i64 * step_ms, *v))
                .collect(),
        }
    }

    fn ctx(params: &[(&str, &str)]) -> Context {
        Context {
            now_ms: 0,
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn run(params: &[(&str, &str)], input: Vec<Series>, active: Vec<Labels>) -> Vec<Signal> {
        Rule::evaluate(ctx(params), input, active).expect("evaluate")
    }

    #[test]
    fn fires_on_a_jump_not_on_a_high_plateau() {
        let s = |v: &[f64]| series("cpu_usage_percent", &[], v, 15_000);
        assert_eq!(run(&[], vec![s(&[10.0, 20.0, 75.0])], vec![]).len(), 1);
        assert!(run(&[], vec![s(&[95.0, 96.0])], vec![]).is_empty());
        assert!(
            run(&[], vec![s(&[90.0])], vec![]).is_empty(),
            "one point: no delta"
        );
    }
}
