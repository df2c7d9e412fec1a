//! Scorer `fleet-health`: a health score 0-100 with a per-factor breakdown.
//!
//! Factors (each present only when its input exists; weights from params `*_weight`):
//! - `cpu`, `memory`, `disk`: the worst series' newest usage; 100 up to `*_ok` percent,
//!   falling linearly to 0 at 100 %.
//! - `alerts`: firing alerts (`alerts_firing{severity}`, newest): 100 minus 25 per
//!   critical and 5 per warning, floored at 0.
//! - `clients`: share of fleet clients up (`client_up{client}`, newest value 1 or 0).
//! - `log-errors`: error log lines per minute over the input window
//!   (`log_lines_total{level="error"}` counters, resets handled): 100 at 0, 0 at `log_errors_bad` per minute (default 10).
//!
//! The total is the weighted mean. Status: 90-100 healthy, 70-89 warning, below 70
//! critical.

tocsin_guest::world!(scorer);
use tocsin_guest::prelude::*;

struct FleetHealth;

fn usage_score(usage: f64, ok: f64) -> f64 {
    if usage <= ok {
        100.0
    } else {
        (100.0 * (100.0 - usage) / (100.0 - ok).max(1.0)).clamp(0.0, 100.0)
    }
}

fn named<'a>(input: &'a [Series], name: &'a str) -> impl Iterator<Item = &'a Series> + 'a {
    input.iter().filter(move |s| s.name == name)
}

fn worst(input: &[Series], name: &str) -> Option<f64> {
    named(input, name)
        .filter_map(|s| last(&s.points))
        .reduce(f64::max)
}

/// Increase of a counter over its points, counting resets from zero.
fn increase(points: &[(i64, f64)]) -> f64 {
    points
        .windows(2)
        .map(|w| {
            if w[1].1 >= w[0].1 {
                w[1].1 - w[0].1
            } else {
                w[1].1
            }
        })
        .sum()
}

fn usage_factors(input: &[Series], p: &[(String, String)], out: &mut Vec<Factor>) {
    for (name, metric, ok_default) in [
        ("cpu", "cpu_usage_percent", 80.0),
        ("memory", "memory_used_percent", 80.0),
        ("disk", "disk_used_percent", 85.0),
    ] {
        let Some(usage) = worst(input, metric) else {
            continue;
        };
        let ok = param(p, &format!("{name}_ok"), ok_default);
        out.push(Factor {
            name: name.to_string(),
            score: usage_score(usage, ok),
            weight: param(p, &format!("{name}_weight"), 1.0),
            detail: format!("{usage:.1}% used (worst series), fine up to {ok:.0}%"),
        });
    }
}

fn fleet_factors(input: &[Series], p: &[(String, String)], out: &mut Vec<Factor>) {
    let firing = |severity: &str| -> f64 {
        named(input, "alerts_firing")
            .filter(|s| label(&s.labels, "severity") == Some(severity))
            .filter_map(|s| last(&s.points))
            .sum()
    };
    if named(input, "alerts_firing").next().is_some() {
        let (critical, warning) = (firing("critical"), firing("warning"));
        out.push(Factor {
            name: "alerts".into(),
            score: (100.0 - 25.0 * critical - 5.0 * warning).clamp(0.0, 100.0),
            weight: param(p, "alerts_weight", 1.0),
            detail: format!("{critical} critical and {warning} warning alerts firing"),
        });
    }
    let clients: Vec<f64> = named(input, "client_up")
        .filter_map(|s| last(&s.points))
        .collect();
    if !clients.is_empty() {
        let up = clients.iter().filter(|v| **v >= 1.0).count();
        out.push(Factor {
            name: "clients".into(),
            score: 100.0 * up as f64 / clients.len() as f64,
            weight: param(p, "clients_weight", 1.0),
            detail: format!("{} of {} clients down", clients.len() - up, clients.len()),
        });
    }
    let logs: Vec<&Series> = named(input, "log_lines_total")
        .filter(|s| label(&s.labels, "level") == Some("error"))
        .collect();
    let span_ms = logs
        .iter()
        .filter_map(|s| Some(s.points.last()?.0 - s.points.first()?.0))
        .max()
        .unwrap_or(0);
    if span_ms > 0 {
        let errors: f64 = logs.iter().map(|s| increase(&s.points)).sum();
        let per_minute = errors / (span_ms as f64 / 60_000.0);
        let bad = param(p, "log_errors_bad", 10.0_f64).max(0.001);
        out.push(Factor {
            name: "log-errors".into(),
            score: (100.0 * (1.0 - per_minute / bad)).clamp(0.0, 100.0),
            weight: param(p, "log_weight", 1.0),
            detail: format!("{per_minute:.1} error lines per minute"),
        });
    }
}

impl Guest for FleetHealth {
    fn score(ctx: Context, input: Vec<Series>) -> Result<Health, String> {
        let mut factors = Vec::new();
        usage_factors(&input, &ctx.params, &mut factors);
        fleet_factors(&input, &ctx.params, &mut factors);
        factors.retain(|f| f.weight > 0.0);
        let total_weight: f64 = factors.iter().map(|f| f.weight).sum();
        if factors.is_empty() || total_weight <= 0.0 {
            return Err(
                "no input for any factor (cpu, memory, disk, alerts, clients, logs)".into(),
            );
        }
        let score = factors.iter().map(|f| f.score * f.weight).sum::<f64>() / total_weight;
        let status = match score {
            s if s >= 90.0 => "healthy",
            s if s >= 70.0 => "warning",
            _ => "critical",
        };
        let weakest = factors
            .iter()
            .min_by(|a, b| a.score.total_cmp(&b.score))
            .map(|f| format!(", weakest: {} ({:.0})", f.name, f.score))
            .unwrap_or_default();
        Ok(Health {
            score,
            summary: format!("{status}: {score:.0}/100{weakest}"),
            factors,
        })
    }
}

export!(FleetHealth);

#[cfg(test)]
mod tests {
    //! Offline tests: the scorer is plain Rust, called directly on the host.
    use super::*;

    fn series(name: &str, labels: &[(&str, &str)], values: &[f64]) -> Series {
        Series {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            points: values
                .iter()
                .enumerate()
                .map(|(i, v)| (i as i64 * 60_000, *v))
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

    fn factor(h: &Health, name: &str) -> f64 {
        h.factors
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.score)
            .expect(name)
    }

    #[test]
    fn a_quiet_fleet_is_healthy() {
        let h = FleetHealth::score(
            ctx(&[]),
            vec![
                series("cpu_usage_percent", &[], &[20.0]),
                series("memory_used_percent", &[], &[40.0]),
                series("alerts_firing", &[("severity", "critical")], &[0.0]),
                series("client_up", &[("client", "a")], &[1.0]),
            ],
        )
        .expect("score");
        assert_eq!(h.score, 100.0);
        assert!(h.summary.starts_with("healthy"), "{}", h.summary);
    }

    #[test]
    fn factors_fall_with_trouble_and_weights_count() {
        let input = vec![
            series("cpu_usage_percent", &[], &[90.0]), // (100-90)/(100-80) → 50
            series("alerts_firing", &[("severity", "critical")], &[1.0]),
            series("alerts_firing", &[("severity", "warning")], &[3.0]), // 100-25-15 → 60
            series("client_up", &[("client", "a")], &[1.0]),
            series("client_up", &[("client", "b")], &[0.0]), // 50
            // 0, 10, 20 then a reset to 5: 25 errors over 3 minutes → 8.33/min → 16.7
            series(
                "log_lines_total",
                &[("source", "app"), ("level", "error")],
                &[0.0, 10.0, 20.0, 5.0],
            ),
        ];
        let h = FleetHealth::score(ctx(&[]), input.clone()).expect("score");
        assert_eq!(factor(&h, "cpu"), 50.0);
        assert_eq!(factor(&h, "alerts"), 60.0);
        assert_eq!(factor(&h, "clients"), 50.0);
        assert!((factor(&h, "log-errors") - 100.0 / 6.0).abs() < 1e-9);
        let mean = (50.0 + 60.0 + 50.0 + 100.0 / 6.0) / 4.0;
        assert!((h.score - mean).abs() < 1e-9);
        assert!(h.summary.starts_with("critical") && h.summary.contains("weakest: log-errors"));
        // Weight 0 leaves a factor out; weight 3 makes it count thrice.
        let h = FleetHealth::score(ctx(&[("log_weight", "0"), ("cpu_weight", "3")]), input)
            .expect("score");
        assert!(h.factors.iter().all(|f| f.name != "log-errors"));
        assert!((h.score - (3.0 * 50.0 + 60.0 + 50.0) / 5.0).abs() < 1e-9);
    }

    #[test]
    fn no_input_is_an_error() {
        assert!(FleetHealth::score(ctx(&[]), vec![]).is_err());
    }
}
