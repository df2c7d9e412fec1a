//! Alert rule `memory-high`: fires while the mean of `memory_used_percent` over the input
//! window is above `threshold` (default 90) and, once active, until it drops below
//! `clear` (default 85). Critical above `critical` (default 97).

tocsin_guest::world!(alert_rule);
use tocsin_guest::prelude::*;

struct Rule;

impl Guest for Rule {
    fn evaluate(
        ctx: Context,
        input: Vec<Series>,
        active: Vec<Labels>,
    ) -> Result<Vec<Signal>, String> {
        let threshold = param(&ctx.params, "threshold", 90.0);
        let clear = param(&ctx.params, "clear", 85.0);
        let critical = param(&ctx.params, "critical", 97.0);
        Ok(input
            .iter()
            .filter(|s| s.name == "memory_used_percent")
            .filter_map(|s| {
                let used = mean(&s.points)?;
                let held = active.contains(&s.labels) && used > clear;
                (used > threshold || held).then(|| Signal {
                    key: s.labels.clone(),
                    severity: if used > critical {
                        Severity::Critical
                    } else {
                        Severity::Warning
                    },
                    value: used,
                    summary: format!(
                        "memory {used:.0}% used on {}",
                        label(&s.labels, "host").unwrap_or("this host")
                    ),
                    description: format!(
                        "Mean memory use {used:.1}% is above {threshold}% (clears below {clear}%)."
                    ),
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
    fn fires_holds_between_clear_and_threshold_and_clears() {
        let s = |v: f64| series("memory_used_percent", &[], &[v], 1000);
        assert_eq!(run(&[], vec![s(92.0)], vec![]).len(), 1);
        assert!(
            run(&[], vec![s(88.0)], vec![]).is_empty(),
            "not active: below threshold"
        );
        assert_eq!(
            run(&[], vec![s(88.0)], vec![vec![]]).len(),
            1,
            "active: above clear"
        );
        assert!(run(&[], vec![s(80.0)], vec![vec![]]).is_empty());
        assert_eq!(
            run(&[], vec![s(99.0)], vec![])[0].severity,
            Severity::Critical
        );
    }
}
