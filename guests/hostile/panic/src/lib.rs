//! Hostile guest: an alert rule that panics. The host must report a trap carrying the
//! panic message.

tocsin_guest::world!(alert_rule);

struct Panics;

impl Guest for Panics {
    fn evaluate(_: Context, input: Vec<Series>, _: Vec<Labels>) -> Result<Vec<Signal>, String> {
        panic!("rule exploded on purpose with {} series", input.len());
    }
}

export!(Panics);
