//! Query arithmetic on points, independent of storage: step alignment with lookback,
//! `rate`/`increase` with Prometheus' counter-reset handling and extrapolation, and
//! aggregation by labels.

use std::collections::BTreeMap;

use crate::series::is_stale;

/// `query_range` alignment: at each `t = start, start+step, .. <= end`, the newest point
/// with `t - lookback < ts <= t`, unless that point is a stale marker. `points` ascending.
pub fn step_align(
    points: &[(i64, f64)],
    start: i64,
    end: i64,
    step: i64,
    lookback: i64,
) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    let mut i = 0;
    for t in step_times(start, end, step) {
        while i < points.len() && points[i].0 <= t {
            i += 1;
        }
        if i > 0 && points[i - 1].0 > t.saturating_sub(lookback) && !is_stale(points[i - 1].1) {
            out.push((t, points[i - 1].1));
        }
    }
    out
}

/// The times `start, start + step, .. <= end` (none when `step <= 0`; stops rather than
/// overflow).
pub fn step_times(start: i64, end: i64, step: i64) -> impl Iterator<Item = i64> {
    std::iter::successors((step > 0).then_some(start), move |t| t.checked_add(step))
        .take_while(move |t| *t <= end)
}

/// Prometheus' `increase` (`rate` = this / window seconds) over the points in
/// `(at - window, at]`, ascending; stale markers are skipped. `None` with fewer than two
/// points.
pub fn increase(points: &[(i64, f64)], window_ms: i64, at_ms: i64) -> Option<f64> {
    let range_start = at_ms.saturating_sub(window_ms);
    let pts: Vec<(i64, f64)> = points
        .iter()
        .copied()
        .filter(|p| p.0 > range_start && p.0 <= at_ms && !is_stale(p.1))
        .collect();
    if pts.len() < 2 {
        return None;
    }
    let (first, last) = (pts[0], pts[pts.len() - 1]);
    // Counter resets: a drop means the counter restarted from zero.
    let mut result = last.1 - first.1;
    for w in pts.windows(2) {
        if w[1].1 < w[0].1 {
            result += w[0].1;
        }
    }
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    if sampled <= 0.0 {
        return None;
    }
    let mut to_start = (first.0 - range_start) as f64 / 1000.0;
    let to_end = (at_ms - last.0) as f64 / 1000.0;
    let average = sampled / (pts.len() - 1) as f64;
    // A counter cannot go below zero: do not extrapolate past where it would be zero.
    if result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        average / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        average / 2.0
    };
    Some(result * (interval / sampled))
}

/// Prometheus' `rate`: per-second [`increase`].
pub fn rate(points: &[(i64, f64)], window_ms: i64, at_ms: i64) -> Option<f64> {
    increase(points, window_ms, at_ms).map(|v| v / (window_ms as f64 / 1000.0))
}

/// An aggregation operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// Sum.
    Sum,
    /// Mean.
    Avg,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Number of series.
    Count,
}

impl std::str::FromStr for Aggregation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "sum" => Aggregation::Sum,
            "avg" => Aggregation::Avg,
            "min" => Aggregation::Min,
            "max" => Aggregation::Max,
            "count" => Aggregation::Count,
            other => {
                return Err(format!(
                    "unknown aggregation `{other}` (sum, avg, min, max, count)"
                ));
            }
        })
    }
}

/// Aggregate `(labels, value)` pairs grouped by the `by` labels (all into one group when
/// `by` is empty). Returns each group's labels (only the `by` labels) and value.
pub fn aggregate(
    values: &[(Vec<(String, String)>, f64)],
    op: Aggregation,
    by: &[String],
) -> Vec<(Vec<(String, String)>, f64)> {
    let mut groups: BTreeMap<Vec<(String, String)>, Vec<f64>> = BTreeMap::new();
    for (labels, v) in values {
        let key: Vec<(String, String)> = labels
            .iter()
            .filter(|(k, _)| by.contains(k))
            .cloned()
            .collect();
        groups.entry(key).or_default().push(*v);
    }
    groups
        .into_iter()
        .map(|(labels, vs)| {
            let n = vs.len() as f64;
            let v = match op {
                Aggregation::Sum => vs.iter().sum(),
                Aggregation::Avg => vs.iter().sum::<f64>() / n,
                Aggregation::Min => vs.iter().copied().fold(f64::INFINITY, f64::min),
                Aggregation::Max => vs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                Aggregation::Count => n,
            };
            (labels, v)
        })
        .collect()
}

/// Labels, sorted by name.
type Labels = Vec<(String, String)>;

/// Aggregate series step by step: at each timestamp, `op` over the series that have a
/// point there, grouped by the `by` labels. The result's series are named `name` and carry
/// only the `by` labels.
pub fn aggregate_series(
    series: &[crate::SeriesData],
    op: Aggregation,
    by: &[String],
    name: &str,
) -> Vec<crate::SeriesData> {
    let mut at: BTreeMap<i64, Vec<(Labels, f64)>> = BTreeMap::new();
    for s in series {
        for &(ts, v) in &s.points {
            at.entry(ts).or_default().push((s.key.labels.clone(), v));
        }
    }
    let mut groups: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    for (ts, values) in at {
        for (labels, v) in aggregate(&values, op, by) {
            groups.entry(labels).or_default().push((ts, v));
        }
    }
    groups
        .into_iter()
        .map(|(labels, points)| crate::SeriesData {
            key: crate::SeriesKey {
                name: name.to_string(),
                labels,
            },
            points,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_alignment_uses_lookback() {
        let pts = [(1000, 1.0), (2000, 2.0), (9000, 9.0)];
        let out = step_align(&pts, 0, 10_000, 2000, 3000);
        assert_eq!(out, vec![(2000, 2.0), (4000, 2.0), (10_000, 9.0)]);
    }

    #[test]
    fn increase_handles_resets_and_extrapolates_like_prometheus() {
        // Samples every 10 s in a 60 s window ending at 60 s: 10,20,..,60 s.
        // Counter: 100, 110, 120, reset to 5, 15, 25. Raw increase: 25-100 + 120 = 45.
        let pts: Vec<(i64, f64)> = [100.0, 110.0, 120.0, 5.0, 15.0, 25.0]
            .iter()
            .enumerate()
            .map(|(i, v)| ((i as i64 + 1) * 10_000, *v))
            .collect();
        // sampled = 50 s, avg = 10 s; to_start = 10 s (< 11, extrapolate fully);
        // to_zero = 50 * 100/45 = 111 s (> 10, no effect); to_end = 0.
        // increase = 45 * (50 + 10 + 0) / 50 = 54.
        let inc = increase(&pts, 60_000, 60_000).expect("two points");
        assert!((inc - 54.0).abs() < 1e-9, "{inc}");
        let r = rate(&pts, 60_000, 60_000).expect("rate");
        assert!((r - 0.9).abs() < 1e-9, "{r}");
    }

    #[test]
    fn increase_stops_extrapolating_at_zero_and_far_gaps() {
        // Counter starting near zero: 2 at 30 s, 12 at 40 s, 22 at 50 s; window (0, 60].
        // result 20, sampled 20 s, avg 10 s; to_start = 30 s but to_zero = 20 * 2/20 = 2 s;
        // to_end = 10 s (< 11: extrapolate). increase = 20 * (20 + 2 + 10) / 20 = 32.
        let pts = [(30_000, 2.0), (40_000, 12.0), (50_000, 22.0)];
        let inc = increase(&pts, 60_000, 60_000).expect("inc");
        assert!((inc - 32.0).abs() < 1e-9, "{inc}");
        // Gap at the start larger than 1.1 × avg and no zero clamp: extrapolate avg/2.
        let pts = [(30_000, 1000.0), (40_000, 1010.0), (50_000, 1020.0)];
        // to_zero = 20*1000/20 = 1000 s; to_start 30 s > 11 → +5; to_end 10 → +10.
        let inc = increase(&pts, 60_000, 60_000).expect("inc");
        assert!((inc - 20.0 * 35.0 / 20.0).abs() < 1e-9, "{inc}");
        assert_eq!(increase(&[(1, 1.0)], 60_000, 60_000), None);
    }

    #[test]
    fn aggregates_by_labels() {
        let l = |h: &str, c: &str| {
            vec![
                ("core".to_string(), c.to_string()),
                ("host".to_string(), h.to_string()),
            ]
        };
        let vals = vec![(l("a", "0"), 10.0), (l("a", "1"), 30.0), (l("b", "0"), 5.0)];
        let by = vec!["host".to_string()];
        let sum = aggregate(&vals, Aggregation::Sum, &by);
        assert_eq!(
            sum,
            vec![
                (vec![("host".into(), "a".into())], 40.0),
                (vec![("host".into(), "b".into())], 5.0)
            ]
        );
        let avg = aggregate(&vals, Aggregation::Avg, &[]);
        assert_eq!(avg, vec![(vec![], 15.0)]);
        assert_eq!(aggregate(&vals, Aggregation::Max, &[])[0].1, 30.0);
        assert_eq!(aggregate(&vals, Aggregation::Min, &[])[0].1, 5.0);
        assert_eq!(aggregate(&vals, Aggregation::Count, &by)[0].1, 2.0);
        assert!("median".parse::<Aggregation>().is_err());
    }

    #[test]
    fn aggregates_series_step_by_step() {
        let series = |host: &str, core: &str, pts: Vec<(i64, f64)>| crate::SeriesData {
            key: crate::SeriesKey {
                name: "cpu".into(),
                labels: vec![("core".into(), core.into()), ("host".into(), host.into())],
            },
            points: pts,
        };
        let input = vec![
            series("a", "0", vec![(0, 10.0), (60, 20.0)]),
            series("a", "1", vec![(0, 30.0), (60, 40.0)]),
            series("b", "0", vec![(60, 5.0)]),
        ];
        let by_host = aggregate_series(&input, Aggregation::Avg, &["host".into()], "avg");
        assert_eq!(by_host.len(), 2);
        assert_eq!(
            by_host[0].key.labels,
            vec![("host".to_string(), "a".to_string())]
        );
        assert_eq!(by_host[0].points, vec![(0, 20.0), (60, 30.0)]);
        assert_eq!(by_host[1].points, vec![(60, 5.0)]);
        let total = aggregate_series(&input, Aggregation::Sum, &[], "sum");
        assert_eq!(total[0].points, vec![(0, 40.0), (60, 65.0)]);
    }
}
