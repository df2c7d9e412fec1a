//! The Prometheus text exposition format (0.0.4): metric families with `# HELP` and
//! `# TYPE`, each family's samples together, label values escaped, names checked.

use std::collections::BTreeSet;
use std::fmt::Write;

/// A metric or label name Prometheus accepts (`__`-prefixed label names are reserved).
pub fn valid_name(name: &str, label: bool) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (!label && c == ':'));
    first_ok
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (!label && c == ':'))
        && !(label && name.starts_with("__"))
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}

/// One sample: its labels and value.
pub type Point = (Vec<(String, String)>, f64);

/// One histogram series: labels, cumulative buckets `(upper bound, count)`, sum, count.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Labels.
    pub labels: Vec<(String, String)>,
    /// Cumulative buckets, ascending bounds, without `+Inf`.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

/// A page of metric families being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
    names: BTreeSet<String>,
    skipped: u64,
}

impl Exposition {
    /// Write family `name` of `kind` (`counter`, `gauge`, `untyped`) with its samples.
    /// A family whose name is invalid or already written is skipped, as is a sample with
    /// an invalid label name; both are counted in [`Exposition::skipped`].
    pub fn family(&mut self, name: &str, kind: &str, help: &str, points: Vec<Point>) {
        if !valid_name(name, false) || !self.names.insert(name.to_string()) {
            self.skipped += points.len() as u64;
            return;
        }
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        for (labels, value) in points {
            if labels.iter().any(|(k, _)| !valid_name(k, true)) {
                self.skipped += 1;
                continue;
            }
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let labels = if labels.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", labels.join(","))
            };
            let _ = writeln!(self.out, "{name}{labels} {}", number(value));
        }
    }

    /// Write histogram `name`: per label set, cumulative `(upper bound, count)` buckets
    /// (`+Inf` is added from `count`), the sum and the count.
    pub fn histogram(&mut self, name: &str, help: &str, series: Vec<Histogram>) {
        if !valid_name(name, false) || !self.names.insert(name.to_string()) {
            self.skipped += series.len() as u64;
            return;
        }
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} histogram");
        for h in series {
            let labels: Vec<String> = h
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let with = |extra: String| {
                let mut all = labels.clone();
                all.push(extra);
                format!("{{{}}}", all.join(","))
            };
            let plain = if labels.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", labels.join(","))
            };
            for (le, n) in &h.buckets {
                let _ = writeln!(
                    self.out,
                    "{name}_bucket{} {n}",
                    with(format!("le=\"{}\"", number(*le)))
                );
            }
            let _ = writeln!(
                self.out,
                "{name}_bucket{} {}",
                with("le=\"+Inf\"".into()),
                h.count
            );
            let _ = writeln!(self.out, "{name}_sum{plain} {}", number(h.sum));
            let _ = writeln!(self.out, "{name}_count{plain} {}", h.count);
        }
    }

    /// Samples skipped so far (bad names, repeated families).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_written_once_with_escaped_labels() {
        let mut e = Exposition::default();
        e.family(
            "up_total",
            "counter",
            "a\\b\nc",
            vec![
                (vec![("path".into(), "C:\\x \"q\"\nz".into())], 1.0),
                (vec![], f64::NAN),
                (vec![("__bad".into(), "v".into())], 2.0),
            ],
        );
        e.family("up_total", "counter", "again", vec![(vec![], 1.0)]);
        e.family("9lives", "gauge", "bad name", vec![(vec![], 1.0)]);
        e.family("inf", "gauge", "inf", vec![(vec![], f64::NEG_INFINITY)]);
        assert_eq!(e.skipped(), 3);
        assert_eq!(
            e.finish(),
            "# HELP up_total a\\\\b\\nc\n# TYPE up_total counter\n\
             up_total{path=\"C:\\\\x \\\"q\\\"\\nz\"} 1\nup_total NaN\n\
             # HELP inf inf\n# TYPE inf gauge\ninf -Inf\n"
        );
    }

    #[test]
    fn histograms_have_cumulative_buckets_inf_sum_and_count() {
        let mut e = Exposition::default();
        e.histogram(
            "call_seconds",
            "calls",
            vec![Histogram {
                labels: vec![("policy".into(), "a".into())],
                buckets: vec![(0.001, 2), (0.01, 3)],
                sum: 0.0125,
                count: 4,
            }],
        );
        assert_eq!(
            e.finish(),
            "# HELP call_seconds calls\n# TYPE call_seconds histogram\n\
             call_seconds_bucket{policy=\"a\",le=\"0.001\"} 2\n\
             call_seconds_bucket{policy=\"a\",le=\"0.01\"} 3\n\
             call_seconds_bucket{policy=\"a\",le=\"+Inf\"} 4\n\
             call_seconds_sum{policy=\"a\"} 0.0125\ncall_seconds_count{policy=\"a\"} 4\n"
        );
    }

    #[test]
    fn names_follow_the_prometheus_rules() {
        assert!(valid_name("node_cpu_seconds_total", false));
        assert!(valid_name("job:rate5m", false));
        assert!(!valid_name("job:rate5m", true));
        assert!(!valid_name("", false));
        assert!(!valid_name("a-b", false));
        assert!(!valid_name("__name__", true));
        assert!(valid_name("_x", true));
    }
}
