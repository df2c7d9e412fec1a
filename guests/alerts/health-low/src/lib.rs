//! Alert rule `health-low`: the mean of `health_score{scorer}` over the input window below
//! `threshold` (default 70: the critical band of the score) fires warning, below
//! `critical` (default 50) critical; once active it clears above `clear` (default 75).

tocsin_guest::world!(alert_rule);
use tocsin_guest::prelude::*;

struct Rule;

impl Guest for Rule {
    fn evaluate(
        ctx: Context,
        input: Vec<Series>,
        active: Vec<Labels>,
    ) -> Result<Vec<Signal>, String> {
        let threshold = param(&ctx.params, "threshold", 70.0);
        let critical = param(&ctx.params, "critical", 50.0);
        let clear = param(&ctx.params, "clear", 75.0);
        Ok(input
            .iter()
            .filter(|s| s.name == "health_score")
            .filter_map(|s| {
                let score = mean(&s.points)?;
                let held = active.contains(&s.labels) && score < clear;
                (score < threshold || held).then(|| Signal {
                    key: s.labels.clone(),
                    severity: if score < critical { Severity::Critical } else { Severity::Warning },
                    value: score,
                    summary: format!("health {score:.0}/100 ({})", label(&s.labels, "scorer").unwrap_or("?")),
                    description: format!("The health score averaged {score:.1} (alert below {threshold}, clears above {clear})."),
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
    fn low_scores_fire_with_hysteresis() {
        let s = |v: f64| series("health_score", &[("scorer", "fleet-health")], &[v], 1000);
        assert_eq!(
            run(&[], vec![s(60.0)], vec![])[0].severity,
            Severity::Warning
        );
        assert_eq!(
            run(&[], vec![s(40.0)], vec![])[0].severity,
            Severity::Critical
        );
        let key = vec![("scorer".to_string(), "fleet-health".to_string())];
        assert_eq!(
            run(&[], vec![s(72.0)], vec![key.clone()]).len(),
            1,
            "held below clear"
        );
        assert!(run(&[], vec![s(72.0)], vec![]).is_empty());
        assert!(run(&[], vec![s(80.0)], vec![key]).is_empty());
    }
}
