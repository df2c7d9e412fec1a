//! `tocsin check`: a Nagios/Icinga plugin over a running Tocsin's API. Exit codes 0 OK,
//! 1 WARNING, 2 CRITICAL, 3 UNKNOWN; one status line with performance data
//! `'label'=value[UOM];warn;crit;min;max`; thresholds in Nagios range syntax.

use std::fmt::Write as _;

/// A Nagios range: `10` (outside 0..10 alerts), `10:` (below 10), `~:10` (above 10),
/// `10:20` (outside), `@10:20` (inside).
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    text: String,
    start: f64,
    end: f64,
    inside: bool,
}

impl Range {
    /// Parse range syntax.
    pub fn parse(text: &str) -> Result<Range, String> {
        let t = text.trim();
        let (inside, body) = match t.strip_prefix('@') {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let number = |s: &str| -> Result<f64, String> {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("range `{text}`: `{s}` is not a number"))
        };
        let (start, end) = match body.split_once(':') {
            None => (0.0, number(body)?),
            Some((s, e)) => {
                let start = if s == "~" {
                    f64::NEG_INFINITY
                } else if s.is_empty() {
                    0.0
                } else {
                    number(s)?
                };
                let end = if e.is_empty() {
                    f64::INFINITY
                } else {
                    number(e)?
                };
                (start, end)
            }
        };
        if start > end {
            return Err(format!("range `{text}`: start is above end"));
        }
        Ok(Range {
            text: t.to_string(),
            start,
            end,
            inside,
        })
    }

    /// Whether `v` raises the alert.
    pub fn alerts(&self, v: f64) -> bool {
        let within = v >= self.start && v <= self.end;
        if self.inside { within } else { !within }
    }
}

/// A check's outcome, in Nagios order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// 0.
    Ok,
    /// 1.
    Warning,
    /// 2.
    Critical,
    /// 3.
    Unknown,
}

impl Status {
    /// The exit code.
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }
}

/// One measured value.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    /// Its perfdata label.
    pub label: String,
    /// The value.
    pub value: f64,
}

/// Judge `measures` against the thresholds: the worst status, and the plugin's line.
pub fn judge(
    what: &str,
    measures: &[Measure],
    warning: Option<&Range>,
    critical: Option<&Range>,
    uom: &str,
    min_max: (Option<f64>, Option<f64>),
) -> (Status, String) {
    let text = |r: Option<&Range>| r.map(|r| r.text.clone()).unwrap_or_default();
    let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let thresholds = format!(
        "{uom};{};{};{};{}",
        text(warning),
        text(critical),
        num(min_max.0),
        num(min_max.1)
    );
    judge_with(
        what,
        measures,
        |m| {
            if m.value.is_nan() {
                Status::Unknown
            } else if critical.is_some_and(|r| r.alerts(m.value)) {
                Status::Critical
            } else if warning.is_some_and(|r| r.alerts(m.value)) {
                Status::Warning
            } else {
                Status::Ok
            }
        },
        |_| thresholds.clone(),
    )
}

/// Judge `measures` with `classify`; `perf` gives each one's `UOM;warn;crit;min;max`.
pub fn judge_with(
    what: &str,
    measures: &[Measure],
    classify: impl Fn(&Measure) -> Status,
    perf: impl Fn(&Measure) -> String,
) -> (Status, String) {
    if measures.is_empty() {
        return (Status::Unknown, format!("TOCSIN UNKNOWN - {what}: no data"));
    }
    let mut status = Status::Ok;
    let mut worst: Vec<String> = Vec::new();
    for m in measures {
        let s = classify(m);
        if s > status {
            status = s;
            worst.clear();
        }
        if s == status && s != Status::Ok {
            worst.push(format!("{} = {}", m.label, m.value));
        }
    }
    let summary = if worst.is_empty() {
        let shown: Vec<String> = measures
            .iter()
            .take(5)
            .map(|m| format!("{} = {}", m.label, m.value))
            .collect();
        let more = measures.len().saturating_sub(5);
        let more = if more > 0 {
            format!(" (+{more} more)")
        } else {
            String::new()
        };
        format!("{}{more}", shown.join(", "))
    } else {
        worst.join(", ")
    };
    let mut line = format!("TOCSIN {} - {what}: {summary} |", status.word());
    for m in measures {
        let _ = write!(
            line,
            " '{}'={}{}",
            m.label.replace('\'', "''"),
            m.value,
            perf(m)
        );
    }
    (status, line)
}

/// The measures of a PromQL instant query: one per result series, labelled by `label`'s
/// value (or the series' labels).
pub fn query_measures(
    target: &crate::remote::Target,
    query: &str,
    label: Option<&str>,
) -> Result<Vec<Measure>, String> {
    let body = target.get(&format!(
        "/api/v1/query?query={}",
        crate::remote::encode(query)
    ))?;
    let data = &body["data"];
    if data["resultType"] == "scalar" {
        let value = data["result"][1].as_str().and_then(|v| v.parse().ok());
        return Ok(value
            .map(|value| Measure {
                label: query.to_string(),
                value,
            })
            .into_iter()
            .collect());
    }
    let mut out = Vec::new();
    for r in data["result"].as_array().into_iter().flatten() {
        let Some(value) = r["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        let metric = r["metric"].as_object();
        let name = metric
            .and_then(|m| m.get("__name__"))
            .and_then(|v| v.as_str())
            .unwrap_or(query);
        let value_of = |l: &str| metric.and_then(|m| m.get(l)).and_then(|v| v.as_str());
        let label = match label {
            // Named by the label's value, after the metric when there is one.
            Some(l) => match (value_of("__name__"), value_of(l)) {
                (Some(n), Some(v)) => format!("{n}_{v}"),
                (None, Some(v)) => v.to_string(),
                (_, None) => name.to_string(),
            },
            None => {
                let rest: Vec<String> = metric
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| *k != "__name__")
                    .map(|(k, v)| format!("{k}:{}", v.as_str().unwrap_or("")))
                    .collect();
                // `=` may not appear in a perfdata label: `name{k:v,...}`.
                if rest.is_empty() {
                    name.to_string()
                } else {
                    format!("{name}{{{}}}", rest.join(","))
                }
            }
        };
        out.push(Measure { label, value });
    }
    Ok(out)
}

/// `tocsin check alerts`: CRITICAL while a critical alert fires, WARNING while any other
/// does.
pub fn alerts(target: &crate::remote::Target) -> u8 {
    let what = "firing alerts";
    let measures = query_measures(
        target,
        "sum by (severity) (alerts_firing)",
        Some("severity"),
    );
    let (status, line) = match measures {
        Err(e) => (Status::Unknown, format!("TOCSIN UNKNOWN - {what}: {e}")),
        Ok(m) => judge_with(
            what,
            &m,
            |m| match (m.value > 0.0, m.label.as_str()) {
                (false, _) => Status::Ok,
                (true, "critical") => Status::Critical,
                (true, _) => Status::Warning,
            },
            |_| ";;;0;".to_string(),
        ),
    };
    println!("{line}");
    status.code()
}

/// Run a check and print its line; answers the exit code.
pub fn run(
    what: &str,
    measures: Result<Vec<Measure>, String>,
    warning: Option<&str>,
    critical: Option<&str>,
    uom: &str,
    min_max: (Option<f64>, Option<f64>),
) -> u8 {
    let ranges = warning
        .map(Range::parse)
        .transpose()
        .and_then(|w| Ok((w, critical.map(Range::parse).transpose()?)));
    let (status, line) = match (ranges, measures) {
        (Err(e), _) => (Status::Unknown, format!("TOCSIN UNKNOWN - {e}")),
        (_, Err(e)) => (Status::Unknown, format!("TOCSIN UNKNOWN - {what}: {e}")),
        (Ok((w, c)), Ok(m)) => judge(what, &m, w.as_ref(), c.as_ref(), uom, min_max),
    };
    println!("{line}");
    status.code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_the_nagios_guidelines() {
        let r = |t: &str| Range::parse(t).expect(t);
        assert!(r("10").alerts(11.0) && r("10").alerts(-1.0) && !r("10").alerts(10.0));
        assert!(r("10:").alerts(9.9) && !r("10:").alerts(1e9));
        assert!(r("~:10").alerts(10.1) && !r("~:10").alerts(-1e9));
        assert!(r("10:20").alerts(21.0) && !r("10:20").alerts(15.0));
        assert!(r("@10:20").alerts(15.0) && !r("@10:20").alerts(9.0));
        for bad in ["", "x", "20:10", "1:y", "@", "inf"] {
            assert!(Range::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_worst_value_decides_and_perfdata_follows_the_format() {
        let m = |label: &str, value| Measure {
            label: label.into(),
            value,
        };
        let w = Range::parse("80").expect("w");
        let c = Range::parse("95").expect("c");
        let (status, line) = judge(
            "disk",
            &[m("/", 50.0), m("it's", 90.0), m("/var", 97.5)],
            Some(&w),
            Some(&c),
            "%",
            (Some(0.0), Some(100.0)),
        );
        assert_eq!(status, Status::Critical);
        assert_eq!(
            line,
            "TOCSIN CRITICAL - disk: /var = 97.5 | '/'=50%;80;95;0;100 'it''s'=90%;80;95;0;100 '/var'=97.5%;80;95;0;100"
        );
        let (status, line) = judge("x", &[m("a", 1.0)], Some(&w), None, "", (None, None));
        assert_eq!(
            (status, line.as_str()),
            (Status::Ok, "TOCSIN OK - x: a = 1 | 'a'=1;80;;;")
        );
        let (status, _) = judge("x", &[], Some(&w), None, "", (None, None));
        assert_eq!(status, Status::Unknown);
    }
}
