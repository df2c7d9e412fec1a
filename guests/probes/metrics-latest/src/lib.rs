//! Test guest: signals one alert per series that `metrics::latest(params.selector)`
//! returns above `params.threshold` — a rule that queries the store itself instead of
//! relying on the host's input batch.

tocsin_guest::world!(alert_rule);
use tocsin::monitor::metrics;
use tocsin_guest::prelude::*;

struct MetricsLatest;

impl Guest for MetricsLatest {
    fn evaluate(
        ctx: Context,
        _input: Vec<Series>,
        _active: Vec<Labels>,
    ) -> Result<Vec<Signal>, String> {
        let selector = label(&ctx.params, "selector").ok_or("missing param `selector`")?;
        let threshold = param(&ctx.params, "threshold", 0.0);
        let samples = metrics::latest(selector).map_err(|e| format!("metrics: {e:?}"))?;
        Ok(samples
            .into_iter()
            .filter(|s| s.value > threshold)
            .map(|s| Signal {
                summary: format!("{} = {}", s.name, s.value),
                key: s.labels,
                severity: Severity::Warning,
                value: s.value,
                description: String::new(),
                annotations: vec![],
            })
            .collect())
    }
}

export!(MetricsLatest);
