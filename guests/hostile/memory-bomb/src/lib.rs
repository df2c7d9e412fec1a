//! Hostile guest: an alert rule that allocates until it is refused. The host must report
//! a memory-limit error and stay within its own memory.

tocsin_guest::world!(alert_rule);

struct Bomb;

impl Guest for Bomb {
    fn evaluate(_: Context, _: Vec<Series>, _: Vec<Labels>) -> Result<Vec<Signal>, String> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![0xAB; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

export!(Bomb);
