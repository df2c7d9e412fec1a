//! Alert rule `baseline-deviation`: for operators who do not know a good threshold. For
//! each input series, the baseline is the mean and standard deviation of its points in
//! the window except the newest; the newest value fires when it lies more than `k`
//! (default 3) standard deviations away. Needs `min_points` (default 20) points and a
//! spread of at least `min_sigma` (default 0.5) so a flat line does not alert on noise.

tocsin_guest::world!(alert_rule);
use tocsin_guest::prelude::*;

struct Rule;

impl Guest for Rule {
    fn evaluate(
        ctx: Context,
        input: Vec<Series>,
        _active: Vec<Labels>,
    ) -> Result<Vec<Signal>, String> {
        let k = param(&ctx.params, "k", 3.0);
        let min_points = param(&ctx.params, "min_points", 20usize);
        let min_sigma = param(&ctx.params, "min_sigma", 0.5);
        let mut out = Vec::new();
        for s in &input {
            let Some((&(_, value), history)) = s.points.split_last() else {
                continue;
            };
            if history.len() < min_points || !value.is_finite() {
                continue;
            }
            let (Some(mu), Some(sigma)) = (mean(history), stddev(history)) else {
                continue;
            };
            let sigma = sigma.max(min_sigma);
            let z = (value - mu) / sigma;
            if z.abs() > k {
                let mut key = vec![("metric".to_string(), s.name.clone())];
                key.extend(s.labels.iter().cloned());
                out.push(Signal {
                    key,
                    severity: Severity::Warning,
                    value,
                    summary: format!("{} at {value:.2}, {z:+.1}σ from its baseline {mu:.2}", s.name),
                    description: format!(
                        "{} usually sits at {mu:.2} ± {sigma:.2}; {value:.2} is {:.1} standard deviations away (limit {k}).",
                        s.name,
                        z.abs()
                    ),
                    annotations: vec![("z".into(), format!("{z:.2}"))],
                });
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
    fn learns_the_baseline_and_fires_on_outliers() {
        // 30 points alternating 49/51: mean 50, σ 1.
        let mut v: Vec<f64> = (0..30)
            .map(|i| if i % 2 == 0 { 49.0 } else { 51.0 })
            .collect();
        v.push(54.0); // +4σ
        let out = run(
            &[],
            vec![series("queue_depth", &[("q", "a")], &v, 1000)],
            vec![],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(label(&out[0].key, "metric"), Some("queue_depth"));
        *v.last_mut().expect("last") = 52.5; // +2.5σ
        assert!(run(&[], vec![series("queue_depth", &[], &v, 1000)], vec![]).is_empty());
        // Too little history: quiet.
        assert!(run(&[], vec![series("x", &[], &[1.0, 1.0, 99.0], 1000)], vec![]).is_empty());
        // A flat line uses min_sigma: 50 → 50.4 is not an outlier.
        let mut flat = vec![50.0; 30];
        flat.push(50.4);
        assert!(run(&[], vec![series("x", &[], &flat, 1000)], vec![]).is_empty());
    }
}
