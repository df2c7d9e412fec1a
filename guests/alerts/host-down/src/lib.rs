//! Alert rule `host-down`: a fleet client whose liveness series `client_up{client}` reads 0
//! (heartbeat missed, or its Last-Will arrived) is down. Critical; the alert's `host`
//! label is the client id, so routing can inhibit that host's other warnings.

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
            .filter(|s| s.name == "client_up")
            .filter_map(|s| {
                let client = label(&s.labels, "client")?;
                (last(&s.points)? < 1.0).then(|| Signal {
                    key: vec![("host".into(), client.to_string())],
                    severity: Severity::Critical,
                    value: 0.0,
                    summary: format!("{client} is down"),
                    description: format!(
                        "No heartbeat from {client}: it is offline or unreachable."
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
    fn fires_for_down_clients_only() {
        let out = run(
            &[],
            vec![
                series("client_up", &[("client", "kiosk-1")], &[1.0, 0.0], 1000),
                series("client_up", &[("client", "kiosk-2")], &[0.0, 1.0], 1000),
            ],
            vec![],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].key,
            vec![("host".to_string(), "kiosk-1".to_string())]
        );
        assert_eq!(out[0].severity, Severity::Critical);
    }
}
