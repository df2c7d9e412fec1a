//! Hostile guest: an alert rule whose answer (8 MiB of text) is far over the output cap.

tocsin_guest::world!(alert_rule);

struct Flood;

impl Guest for Flood {
    fn evaluate(_: Context, _: Vec<Series>, _: Vec<Labels>) -> Result<Vec<Signal>, String> {
        let summary = "x".repeat(8 << 20);
        Ok(vec![Signal {
            key: vec![],
            severity: Severity::Info,
            value: 0.0,
            summary,
            description: String::new(),
            annotations: vec![],
        }])
    }
}

export!(Flood);
