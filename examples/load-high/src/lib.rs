//! Example alert rule `load-high`: warns while the mean 1-minute load average over the
//! input window is above `threshold` (default 4). Copy this crate to start your own rule.

tocsin_guest::world!(alert_rule);
use tocsin_guest::prelude::*;

struct LoadHigh;

impl Guest for LoadHigh {
    fn evaluate(
        ctx: Context,
        input: Vec<Series>,
        _active: Vec<Labels>,
    ) -> Result<Vec<Signal>, String> {
        let limit = param(&ctx.params, "threshold", 4.0);
        Ok(input
            .iter()
            .filter(|s| s.name == "load1")
            .filter_map(|s| {
                let v = mean(&s.points)?;
                (v > limit).then(|| Signal {
                    key: s.labels.clone(),
                    severity: Severity::Warning,
                    value: v,
                    summary: format!("load {v:.1} above {limit}"),
                    description: String::new(),
                    annotations: vec![],
                })
            })
            .collect())
    }
}

export!(LoadHigh);

#[cfg(test)]
mod tests {
    use super::*;

    fn load(values: &[f64]) -> Series {
        Series {
            name: "load1".into(),
            labels: vec![("host".into(), "web-1".into())],
            points: values
                .iter()
                .enumerate()
                .map(|(i, v)| (i as i64 * 15_000, *v))
                .collect(),
        }
    }

    fn threshold(t: &str) -> Context {
        Context {
            now_ms: 0,
            params: vec![("threshold".into(), t.into())],
        }
    }

    #[test]
    fn warns_above_the_threshold() {
        let out = LoadHigh::evaluate(threshold("4"), vec![load(&[5.0, 6.0])], vec![]).expect("ok");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].value, 5.5);
        assert_eq!(out[0].summary, "load 5.5 above 4");
    }

    #[test]
    fn quiet_below_it_and_on_other_series() {
        let mut other = load(&[50.0]);
        other.name = "load5".into();
        let out =
            LoadHigh::evaluate(threshold("4"), vec![load(&[1.0, 2.0]), other], vec![]).expect("ok");
        assert!(out.is_empty());
    }
}
