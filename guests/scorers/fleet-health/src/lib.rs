//! Scorer `fleet-health`: a health score 0-100 from CPU, memory and disk usage.
//!
//! Each factor scores 100 up to its `*_ok` usage and falls linearly to 0 at 100 % usage;
//! the total is the weighted mean (`cpu_weight`, `memory_weight`, `disk_weight` params).
//! Status: 90-100 healthy, 70-89 warning, below 70 critical.

tocsin_guest::world!(scorer);
use tocsin_guest::prelude::*;

struct FleetHealth;

fn factor_score(usage: f64, ok: f64) -> f64 {
    if usage <= ok {
        100.0
    } else {
        (100.0 * (100.0 - usage) / (100.0 - ok).max(1.0)).clamp(0.0, 100.0)
    }
}

fn worst(input: &[Series], name: &str) -> Option<f64> {
    input
        .iter()
        .filter(|s| s.name == name)
        .filter_map(|s| last(&s.points))
        .reduce(f64::max)
}

impl Guest for FleetHealth {
    fn score(ctx: Context, input: Vec<Series>) -> Result<Health, String> {
        let p = &ctx.params;
        let specs = [
            (
                "cpu",
                "cpu_usage_percent",
                param(p, "cpu_weight", 1.0),
                param(p, "cpu_ok", 80.0),
            ),
            (
                "memory",
                "memory_used_percent",
                param(p, "memory_weight", 1.0),
                param(p, "memory_ok", 80.0),
            ),
            (
                "disk",
                "disk_used_percent",
                param(p, "disk_weight", 1.0),
                param(p, "disk_ok", 85.0),
            ),
        ];
        let mut factors = Vec::new();
        for (name, metric, weight, ok) in specs {
            let Some(usage) = worst(&input, metric) else {
                continue;
            };
            factors.push(Factor {
                name: name.to_string(),
                score: factor_score(usage, ok),
                weight,
                detail: format!("{usage:.1}% used (worst series), fine up to {ok:.0}%"),
            });
        }
        let total_weight: f64 = factors.iter().map(|f| f.weight).sum();
        if factors.is_empty() || total_weight <= 0.0 {
            return Err("no cpu, memory or disk series in the input".to_string());
        }
        let score = factors.iter().map(|f| f.score * f.weight).sum::<f64>() / total_weight;
        let status = match score {
            s if s >= 90.0 => "healthy",
            s if s >= 70.0 => "warning",
            _ => "critical",
        };
        Ok(Health {
            score,
            summary: format!("{status}: {score:.0}/100"),
            factors,
        })
    }
}

export!(FleetHealth);
