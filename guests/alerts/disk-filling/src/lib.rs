//! Alert rule `disk-filling`: capacity planning. For each `disk_used_percent{mount}`
//! series, a least-squares line over the input window forecasts when the disk reaches
//! 100 %. Warning when that is within `hours` (default 24), critical within
//! `critical_hours` (default 4); also warning when usage is already above `full`
//! (default 95) whatever the trend.

tocsin_guest::world!(alert_rule);
use tocsin_guest::prelude::*;

struct Rule;

impl Guest for Rule {
    fn evaluate(
        ctx: Context,
        input: Vec<Series>,
        _active: Vec<Labels>,
    ) -> Result<Vec<Signal>, String> {
        let hours = param(&ctx.params, "hours", 24.0);
        let critical_hours = param(&ctx.params, "critical_hours", 4.0);
        let full = param(&ctx.params, "full", 95.0);
        let mut out = Vec::new();
        for s in input.iter().filter(|s| s.name == "disk_used_percent") {
            let Some(used) = last(&s.points) else {
                continue;
            };
            let slope = slope_per_hour(&s.points).unwrap_or(0.0);
            let eta = (slope > 0.0).then(|| ((100.0 - used) / slope).max(0.0));
            let mount = label(&s.labels, "mount").unwrap_or("a disk");
            let (severity, why) = match eta {
                Some(h) if h <= critical_hours => (Severity::Critical, format!("full in {h:.1} h")),
                Some(h) if h <= hours => (Severity::Warning, format!("full in {h:.1} h")),
                _ if used >= full => (Severity::Warning, format!("{used:.0}% used")),
                _ => continue,
            };
            out.push(Signal {
                key: s.labels.clone(),
                severity,
                value: eta.unwrap_or(f64::INFINITY),
                summary: format!("{mount} {why}"),
                description: format!(
                    "{mount} is {used:.1}% used and growing {slope:.2} points an hour; at this rate it is full in {}.",
                    eta.map(|h| format!("{h:.1} hours")).unwrap_or_else(|| "never".into())
                ),
                annotations: vec![("forecast_hours".into(), eta.map(|h| format!("{h:.2}")).unwrap_or_default())],
            });
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

    const HOUR: i64 = 3_600_000;

    #[test]
    fn forecasts_the_time_to_full() {
        // 2 points an hour from 60 %: 40 points left → 20 h: warning, not critical.
        let s = series(
            "disk_used_percent",
            &[("mount", "/")],
            &[54.0, 56.0, 58.0, 60.0],
            HOUR,
        );
        let out = run(&[], vec![s], vec![]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].severity, Severity::Warning);
        assert!((out[0].value - 20.0).abs() < 1e-9, "{}", out[0].value);
        // 10 points an hour from 70 %: 3 h → critical.
        let fast = series(
            "disk_used_percent",
            &[("mount", "/var")],
            &[50.0, 60.0, 70.0],
            HOUR,
        );
        assert_eq!(run(&[], vec![fast], vec![])[0].severity, Severity::Critical);
        // Slow growth: 0.5 an hour from 60 % → 80 h: quiet.
        let slow = series("disk_used_percent", &[], &[59.0, 59.5, 60.0], HOUR);
        assert!(run(&[], vec![slow], vec![]).is_empty());
        // Flat but nearly full.
        let flat = series("disk_used_percent", &[], &[96.0, 96.0], HOUR);
        assert_eq!(run(&[], vec![flat], vec![]).len(), 1);
    }
}
