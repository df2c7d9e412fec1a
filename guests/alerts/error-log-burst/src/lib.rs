//! Alert rule `error-log-burst`: per log source, the error and warning lines counted in
//! the input window (`log_lines_total{source,level}` counters, resets handled). Fires when
//! errors exceed `max_errors` (default 0) or warnings exceed `max_warnings` (default 5);
//! critical when errors exceed `critical_errors` (default 50).

tocsin_guest::world!(alert_rule);
use tocsin_guest::prelude::*;

use std::collections::BTreeMap;

struct Rule;

impl Guest for Rule {
    fn evaluate(
        ctx: Context,
        input: Vec<Series>,
        _active: Vec<Labels>,
    ) -> Result<Vec<Signal>, String> {
        let max_errors = param(&ctx.params, "max_errors", 0.0);
        let max_warnings = param(&ctx.params, "max_warnings", 5.0);
        let critical_errors = param(&ctx.params, "critical_errors", 50.0);
        let mut per_source: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        for s in input.iter().filter(|s| s.name == "log_lines_total") {
            let (Some(source), Some(level)) =
                (label(&s.labels, "source"), label(&s.labels, "level"))
            else {
                continue;
            };
            let n = increase(&s.points);
            let entry = per_source.entry(source).or_default();
            match level {
                "error" => entry.0 += n,
                "warn" => entry.1 += n,
                _ => {}
            }
        }
        Ok(per_source
            .into_iter()
            .filter(|(_, (e, w))| *e > max_errors || *w > max_warnings)
            .map(|(source, (errors, warnings))| Signal {
                key: vec![("source".into(), source.to_string())],
                severity: if errors > critical_errors { Severity::Critical } else { Severity::Warning },
                value: errors,
                summary: format!("{source}: {errors:.0} errors, {warnings:.0} warnings"),
                description: format!(
                    "{source} logged {errors:.0} error and {warnings:.0} warning lines in the window (limits {max_errors} and {max_warnings})."
                ),
                annotations: vec![],
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
    fn counts_errors_and_warnings_per_source() {
        let c = |source: &str, level: &str, v: &[f64]| {
            series(
                "log_lines_total",
                &[("source", source), ("level", level)],
                v,
                1000,
            )
        };
        let out = run(
            &[],
            vec![
                c("app", "error", &[3.0, 3.0]),     // no new errors
                c("app", "warn", &[0.0, 4.0]),      // 4 warnings: within 5
                c("db", "error", &[10.0, 11.0]),    // 1 error
                c("web", "warn", &[0.0, 2.0, 1.0]), // 2 + reset to 1 = 3 warnings
                c("web", "info", &[0.0, 900.0]),
            ],
            vec![],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key, vec![("source".to_string(), "db".to_string())]);
        let loud = run(&[], vec![c("app", "warn", &[0.0, 6.0])], vec![]);
        assert_eq!(loud.len(), 1, "6 warnings > 5");
    }
}
