//! Alert rule `gpu-health`: per GPU — temperature above `temp` (default 85 °C, critical
//! above `critical_temp`, 92), throttling (`gpu_throttled{gpu}` reads 1), new XID errors
//! (`gpu_xid_errors_total` increased) and new uncorrected ECC errors
//! (`gpu_ecc_errors_total{type="uncorrected"}` increased; both critical). One alert per
//! GPU and check (`check` label).

tocsin_guest::world!(alert_rule);
use tocsin_guest::prelude::*;

struct Rule;

fn signal(gpu: &str, check: &str, severity: Severity, value: f64, summary: String) -> Signal {
    Signal {
        key: vec![("check".into(), check.into()), ("gpu".into(), gpu.into())],
        severity,
        value,
        description: summary.clone(),
        summary,
        annotations: vec![],
    }
}

impl Guest for Rule {
    fn evaluate(
        ctx: Context,
        input: Vec<Series>,
        _active: Vec<Labels>,
    ) -> Result<Vec<Signal>, String> {
        let temp = param(&ctx.params, "temp", 85.0);
        let critical_temp = param(&ctx.params, "critical_temp", 92.0);
        let mut out = Vec::new();
        for s in &input {
            let gpu = label(&s.labels, "gpu").unwrap_or("?");
            match s.name.as_str() {
                "gpu_temperature_celsius" => {
                    if let Some(t) = last(&s.points).filter(|t| *t > temp) {
                        let sev = if t > critical_temp {
                            Severity::Critical
                        } else {
                            Severity::Warning
                        };
                        out.push(signal(
                            gpu,
                            "temperature",
                            sev,
                            t,
                            format!("GPU {gpu} at {t:.0} °C"),
                        ));
                    }
                }
                "gpu_throttled" if last(&s.points).unwrap_or(0.0) >= 1.0 => {
                    let reason = label(&s.labels, "reason").unwrap_or("unknown reason");
                    out.push(signal(
                        gpu,
                        "throttling",
                        Severity::Warning,
                        1.0,
                        format!("GPU {gpu} throttled ({reason})"),
                    ));
                }
                "gpu_xid_errors_total" if increase(&s.points) > 0.0 => {
                    let n = increase(&s.points);
                    out.push(signal(
                        gpu,
                        "xid",
                        Severity::Critical,
                        n,
                        format!("GPU {gpu}: {n:.0} new XID errors"),
                    ));
                }
                "gpu_ecc_errors_total"
                    if label(&s.labels, "type") == Some("uncorrected")
                        && increase(&s.points) > 0.0 =>
                {
                    let n = increase(&s.points);
                    out.push(signal(
                        gpu,
                        "ecc",
                        Severity::Critical,
                        n,
                        format!("GPU {gpu}: {n:.0} uncorrected ECC errors"),
                    ));
                }
                _ => {}
            }
        }
        Ok(out)
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
    fn each_check_fires_on_its_own() {
        let g = |name: &str, extra: &[(&str, &str)], v: &[f64]| {
            let mut labels = vec![("gpu", "0")];
            labels.extend_from_slice(extra);
            series(name, &labels, v, 1000)
        };
        let out = run(
            &[],
            vec![
                g("gpu_temperature_celsius", &[], &[80.0, 93.0]),
                g("gpu_throttled", &[("reason", "power")], &[1.0]),
                g("gpu_xid_errors_total", &[], &[2.0, 3.0]),
                g(
                    "gpu_ecc_errors_total",
                    &[("type", "corrected")],
                    &[0.0, 9.0],
                ),
                g(
                    "gpu_ecc_errors_total",
                    &[("type", "uncorrected")],
                    &[1.0, 1.0],
                ),
            ],
            vec![],
        );
        let checks: Vec<(&str, Severity)> = out
            .iter()
            .map(|s| (label(&s.key, "check").expect("check"), s.severity))
            .collect();
        assert_eq!(
            checks,
            vec![
                ("temperature", Severity::Critical),
                ("throttling", Severity::Warning),
                ("xid", Severity::Critical),
            ]
        );
    }
}
