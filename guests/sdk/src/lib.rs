//! `tocsin-guest`: the SDK for Tocsin guests written in Rust.
//!
//! ```ignore
//! tocsin_guest::world!(alert_rule);
//! use tocsin_guest::prelude::*;
//!
//! struct DiskFull;
//! impl Guest for DiskFull {
//!     fn evaluate(ctx: Context, input: Vec<Series>, _active: Vec<Labels>) -> Result<Vec<Signal>, String> {
//!         let limit = param(&ctx.params, "threshold", 90.0);
//!         Ok(input.iter().filter_map(|s| {
//!             let v = last(&s.points)?;
//!             (v > limit).then(|| Signal { key: s.labels.clone(), severity: Severity::Critical,
//!                 value: v, summary: format!("disk {v:.0}% full"), description: String::new(),
//!                 annotations: vec![] })
//!         }).collect())
//!     }
//! }
//! export!(DiskFull);
//! ```
//!
//! [`world!`] generates the bindings of one world in your crate (the `Guest` trait, the
//! types, the host interfaces under `tocsin::monitor::*`, and `export!`). The helpers here
//! work on plain slices, so they serve every world.

pub use tocsin_guest_macros::world;

pub mod html;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

pub mod prelude {
    //! Helpers every guest wants.
    pub use crate::{
        increase, label, last, max, mean, min, param, slope_per_hour, sorted_labels, stddev,
    };
}

/// The value of label `key`.
pub fn label<'a>(labels: &'a [(String, String)], key: &str) -> Option<&'a str> {
    labels
        .iter()
        .find_map(|(k, v)| (k == key).then_some(v.as_str()))
}

/// Labels sorted by key, as the host expects them.
pub fn sorted_labels<K: Into<String>, V: Into<String>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    labels.sort();
    labels
}

/// Manifest parameter `key` parsed as `T`, or `default` when absent or unparsable.
pub fn param<T: std::str::FromStr>(params: &[(String, String)], key: &str, default: T) -> T {
    label(params, key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn finite(points: &[(i64, f64)]) -> impl Iterator<Item = f64> + '_ {
    points.iter().map(|p| p.1).filter(|v| v.is_finite())
}

/// The newest finite value.
pub fn last(points: &[(i64, f64)]) -> Option<f64> {
    points.iter().rev().map(|p| p.1).find(|v| v.is_finite())
}

/// Mean of the finite values.
pub fn mean(points: &[(i64, f64)]) -> Option<f64> {
    let (sum, n) = finite(points).fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

/// Largest finite value.
pub fn max(points: &[(i64, f64)]) -> Option<f64> {
    finite(points).reduce(f64::max)
}

/// Smallest finite value.
pub fn min(points: &[(i64, f64)]) -> Option<f64> {
    finite(points).reduce(f64::min)
}

/// Population standard deviation of the finite values.
pub fn stddev(points: &[(i64, f64)]) -> Option<f64> {
    let m = mean(points)?;
    let (sum, n) = finite(points).fold((0.0, 0u32), |(s, n), v| (s + (v - m).powi(2), n + 1));
    Some((sum / f64::from(n)).sqrt())
}

/// Least-squares slope of the finite points, in value units per hour.
pub fn slope_per_hour(points: &[(i64, f64)]) -> Option<f64> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.1.is_finite())
        .map(|p| (p.0 as f64 / 3_600_000.0, p.1))
        .collect();
    if pts.len() < 2 {
        return None;
    }
    let n = pts.len() as f64;
    let (mx, my) = (
        pts.iter().map(|p| p.0).sum::<f64>() / n,
        pts.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// Increase of a counter over its points; a drop is a reset from zero.
pub fn increase(points: &[(i64, f64)]) -> f64 {
    let vals: Vec<f64> = finite(points).collect();
    vals.windows(2)
        .map(|w| if w[1] >= w[0] { w[1] - w[0] } else { w[1] })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trend_spread_and_counters() {
        let hour = 3_600_000;
        let pts = [(0, 10.0), (hour, 12.0), (2 * hour, 14.0)];
        assert_eq!(slope_per_hour(&pts), Some(2.0));
        assert_eq!(slope_per_hour(&pts[..1]), None);
        assert_eq!(stddev(&[(0, 2.0), (1, 4.0)]), Some(1.0));
        assert_eq!(
            increase(&[(0, 5.0), (1, 9.0), (2, 2.0), (3, 4.0)]),
            4.0 + 2.0 + 2.0
        );
    }

    #[test]
    fn helpers_skip_non_finite_points() {
        let pts = [(1, 1.0), (2, f64::NAN), (3, 3.0), (4, f64::INFINITY)];
        assert_eq!(last(&pts), Some(3.0));
        assert_eq!(mean(&pts), Some(2.0));
        assert_eq!(max(&pts), Some(3.0));
        assert_eq!(min(&pts), Some(1.0));
        assert_eq!(last(&[]), None);
    }

    #[test]
    fn params_parse_or_default() {
        let p = vec![
            ("threshold".to_string(), " 85.5 ".to_string()),
            ("bad".into(), "x".into()),
        ];
        assert_eq!(param(&p, "threshold", 90.0), 85.5);
        assert_eq!(param(&p, "bad", 7u32), 7);
        assert_eq!(param(&p, "missing", 1i64), 1);
        assert_eq!(label(&p, "bad"), Some("x"));
        assert_eq!(sorted_labels([("b", "1"), ("a", "2")])[0].0, "a");
    }
}
