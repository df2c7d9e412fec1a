//! Hostile guest: an alert rule that recurses without bound. The host must see a stack
//! overflow trap, not crash.

tocsin_guest::world!(alert_rule);

struct Deep;

/// Recursion that the optimiser cannot turn into a loop: every frame waits on an opaque
/// use of the inner result.
#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    std::hint::black_box(recurse(depth + 1)).wrapping_mul(depth | 1)
}

impl Guest for Deep {
    fn evaluate(_: Context, _: Vec<Series>, _: Vec<Labels>) -> Result<Vec<Signal>, String> {
        let n = recurse(0);
        Err(format!("unreachable: {n}"))
    }
}

export!(Deep);
