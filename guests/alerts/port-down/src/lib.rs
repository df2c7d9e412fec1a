//! Alert rule `port-down`: service checks — `port_up{target}` and `http_up{url}` read 0
//! when the check failed — fire critical.

tocsin_guest::world!(alert_rule);
use tocsin_guest::prelude::*;

struct Rule;

impl Guest for Rule {
    fn evaluate(
        _ctx: Context,
        input: Vec<Series>,
        _active: Vec<Labels>,
    ) -> Result<Vec<Signal>, String> {
        Ok(input
            .iter()
            .filter(|s| s.name == "port_up" || s.name == "http_up")
            .filter_map(|s| {
                let target = label(&s.labels, "target")
                    .or_else(|| label(&s.labels, "url"))
                    .unwrap_or("?");
                (last(&s.points)? < 1.0).then(|| Signal {
                    key: s.labels.clone(),
                    severity: Severity::Critical,
                    value: 0.0,
                    summary: format!("{target} is down"),
                    description: format!(
                        "The {} check of {target} failed.",
                        if s.name == "port_up" { "TCP" } else { "HTTP" }
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
    fn fires_for_failed_checks() {
        let out = run(
            &[],
            vec![
                series(
                    "port_up",
                    &[("target", "127.0.0.1:1883")],
                    &[1.0, 0.0],
                    1000,
                ),
                series("http_up", &[("url", "http://x/")], &[1.0], 1000),
            ],
            vec![],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].summary, "127.0.0.1:1883 is down");
    }
}
