//! Test guest: a collector reporting `{params.name}{n="000"..}` = 1 (name default
//! `probe_burst`) for `params.count` series (default 100), so a rule over that name fires
//! that many alerts at once.

tocsin_guest::world!(collector);
use tocsin_guest::prelude::*;

struct Burst;

impl Guest for Burst {
    fn collect(ctx: Context) -> Result<Vec<Sample>, String> {
        let count: usize = param(&ctx.params, "count", 100);
        let name = label(&ctx.params, "name")
            .unwrap_or("probe_burst")
            .to_string();
        Ok((0..count)
            .map(|n| Sample {
                name: name.clone(),
                labels: sorted_labels([("n", format!("{n:03}"))]),
                ts_ms: ctx.now_ms,
                value: 1.0,
            })
            .collect())
    }
}

export!(Burst);
