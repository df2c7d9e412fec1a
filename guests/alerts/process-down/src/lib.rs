//! Alert rule `process-down`: for each watched process (`process_count{name}`, from the
//! process check), fires critical when fewer than `min` (default 1) instances run.

tocsin_guest::world!(alert_rule);
use tocsin_guest::prelude::*;

struct Rule;

impl Guest for Rule {
    fn evaluate(
        ctx: Context,
        input: Vec<Series>,
        _active: Vec<Labels>,
    ) -> Result<Vec<Signal>, String> {
        let min = param(&ctx.params, "min", 1.0);
        Ok(input
            .iter()
            .filter(|s| s.name == "process_count")
            .filter_map(|s| {
                let n = last(&s.points)?;
                let name = label(&s.labels, "name").unwrap_or("a process");
                (n < min).then(|| Signal {
                    key: s.labels.clone(),
                    severity: Severity::Critical,
                    value: n,
                    summary: format!("{name} is not running"),
                    description: format!(
                        "{n:.0} instances of {name} running, at least {min} expected."
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
    fn fires_below_the_minimum() {
        let p = |name: &str, n: f64| series("process_count", &[("name", name)], &[n], 1000);
        let out = run(&[], vec![p("mosquitto", 0.0), p("nginx", 4.0)], vec![]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].summary, "mosquitto is not running");
        assert_eq!(run(&[("min", "5")], vec![p("nginx", 4.0)], vec![]).len(), 1);
    }
}
