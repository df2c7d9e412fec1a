//! Hostile guest: an alert rule that never returns. The host must stop it at its deadline.

tocsin_guest::world!(alert_rule);

struct Spin;

impl Guest for Spin {
    fn evaluate(_: Context, _: Vec<Series>, _: Vec<Labels>) -> Result<Vec<Signal>, String> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

export!(Spin);
