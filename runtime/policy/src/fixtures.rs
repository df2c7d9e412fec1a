//! Fixtures: examples an alert rule must get right, in its manifest, run against the very
//! component that is deployed — by `tocsin rule test` and before every swap. Input series
//! use promtool's notation: `cpu_usage_percent{host="a"} 50+10x4 _ 95 stale`, where `a+bxN`
//! (or `a-bxN`) is N+1 points from `a` in steps of `b`, `axN` is `a` N+1 times, `_` is a
//! missing point and `stale` a stale marker; one point every `step`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use tocsin_engine::GuestKind;
use tocsin_engine::types::{Context, Series, Severity};

use crate::set::LoadedPolicy;

/// Time of a fixture's first point.
const T0: i64 = 1_700_000_000_000;

fn default_step() -> Duration {
    Duration::from_secs(15)
}

/// One `[[fixture]]` of a manifest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// What it shows, e.g. `"fires above 90 %"`.
    pub name: String,
    /// Time between points of `series` (default `"15s"`).
    #[serde(default = "default_step", with = "humantime_serde")]
    pub step: Duration,
    /// Input series in promtool notation (see the module docs).
    pub series: Vec<String>,
    /// Evaluation time after the first point (default: the last point's time).
    #[serde(default, with = "humantime_serde::option")]
    pub at: Option<Duration>,
    /// Label sets of alerts already active (for rules with a clear threshold).
    #[serde(default)]
    pub active: Vec<BTreeMap<String, String>>,
    /// The alerts that must fire, no more, no fewer (empty: nothing fires).
    #[serde(default)]
    pub expect: Vec<Expected>,
}

/// An alert a fixture expects.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// Its key labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `info`, `warning` or `critical`, when it matters.
    #[serde(default)]
    pub severity: Option<String>,
}

/// A fixture's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct FixtureResult {
    /// The fixture.
    pub name: String,
    /// `None` when it passed; what differed otherwise.
    pub failure: Option<String>,
}

fn number(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .map_err(|_| format!("`{s}` is not a number"))
}

/// Expand promtool value notation into values (`None`: missing point).
pub fn expand(values: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for token in values.split_whitespace() {
        match token {
            "_" => out.push(None),
            "stale" => out.push(Some(f64::from_bits(tocsin_store::STALE_NAN))),
            t => match t.split_once('x') {
                Some((head, times)) => {
                    let n: usize = times
                        .parse()
                        .map_err(|_| format!("`{t}`: `{times}` is not a count"))?;
                    if n > 100_000 {
                        return Err(format!("`{t}`: at most 100000 repetitions"));
                    }
                    // `a+b`, `a-b` (a may itself be negative) or `a`.
                    let split = head
                        .char_indices()
                        .skip(1)
                        .find(|(_, c)| *c == '+' || *c == '-')
                        .map(|(i, _)| i);
                    let (start, delta) = match split {
                        Some(i) => (number(&head[..i])?, number(&head[i..])?),
                        None => (number(head)?, 0.0),
                    };
                    out.extend((0..=n).map(|k| Some(start + delta * k as f64)));
                }
                None => out.push(Some(number(t)?)),
            },
        }
    }
    Ok(out)
}

/// Parse one `name{labels} values` line into a series with points from [`T0`].
pub fn parse_series(line: &str, step_ms: i64) -> Result<Series, String> {
    let line = line.trim();
    let split = match line.find('}') {
        Some(i) => i + 1,
        None => line.find(char::is_whitespace).unwrap_or(line.len()),
    };
    let (head, values) = line.split_at(split);
    let selector = tocsin_store::Selector::parse(head).map_err(|e| e.to_string())?;
    let mut name = None;
    let mut labels = Vec::new();
    for m in &selector.matchers {
        let Some(v) = m.equal_value() else {
            return Err(format!("`{head}`: labels must be `name=\"value\"`"));
        };
        if m.label == "__name__" {
            name = Some(v.to_string());
        } else {
            labels.push((m.label.clone(), v.to_string()));
        }
    }
    labels.sort();
    let points = expand(values)?
        .into_iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (T0 + i as i64 * step_ms, v)))
        .collect();
    Ok(Series {
        name: name.ok_or_else(|| format!("`{head}` has no metric name"))?,
        labels,
        points,
    })
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

/// Check a fixture's notation without running it.
pub fn check(f: &Fixture) -> Result<(), String> {
    let step = ms(f.step).max(1);
    for s in &f.series {
        parse_series(s, step).map_err(|e| format!("fixture `{}`: {e}", f.name))?;
    }
    Ok(())
}

/// Run every fixture of an alert-rule policy against its loaded guest. Other kinds have
/// none to run.
pub fn run_fixtures(policy: &LoadedPolicy) -> Vec<FixtureResult> {
    if policy.manifest.kind != GuestKind::AlertRule {
        return Vec::new();
    }
    let lookback = ms(policy.manifest.input.lookback).max(1);
    policy
        .manifest
        .fixtures
        .iter()
        .map(|f| FixtureResult {
            name: f.name.clone(),
            failure: run_one(policy, f, lookback).err(),
        })
        .collect()
}

fn run_one(policy: &LoadedPolicy, f: &Fixture, lookback: i64) -> Result<(), String> {
    let step = ms(f.step).max(1);
    let mut series = Vec::new();
    for line in &f.series {
        series.push(parse_series(line, step)?);
    }
    let last = series
        .iter()
        .filter_map(|s| s.points.last().map(|p| p.0))
        .max()
        .unwrap_or(T0);
    let now = f.at.map_or(last, |a| T0.saturating_add(ms(a)));
    // What the host would hand over: the lookback window, stale points dropped, ended
    // series left out.
    let input: Vec<Series> = series
        .into_iter()
        .filter_map(|mut s| {
            s.points
                .retain(|p| p.0 > now.saturating_sub(lookback) && p.0 <= now);
            let ended = s.points.last().is_none_or(|p| tocsin_store::is_stale(p.1));
            s.points.retain(|p| !tocsin_store::is_stale(p.1));
            (!ended).then_some(s)
        })
        .collect();
    let active: Vec<Vec<(String, String)>> = f
        .active
        .iter()
        .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .collect();
    let ctx = Context {
        now_ms: now,
        params: policy.manifest.params_list(),
    };
    let signals = policy
        .guest
        .instance()
        .evaluate(&ctx, &input, &active)
        .map_err(|e| format!("the rule failed: {e}"))?;
    let mut got: Vec<(BTreeMap<String, String>, &'static str)> = signals
        .iter()
        .map(|s| (s.key.iter().cloned().collect(), severity(s.severity)))
        .collect();
    got.sort();
    let mut missing = Vec::new();
    for e in &f.expect {
        match got
            .iter()
            .position(|(l, sev)| *l == e.labels && e.severity.as_deref().is_none_or(|s| s == *sev))
        {
            Some(i) => {
                got.remove(i);
            }
            None => missing.push(format!(
                "{:?} {}",
                e.labels,
                e.severity.as_deref().unwrap_or("")
            )),
        }
    }
    if missing.is_empty() && got.is_empty() {
        return Ok(());
    }
    let extra: Vec<String> = got.iter().map(|(l, s)| format!("{l:?} {s}")).collect();
    Err(format!(
        "expected but not fired: [{}]; fired but not expected: [{}]",
        missing.join(", "),
        extra.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promtool_notation_expands() {
        assert_eq!(
            expand("1+1x3 _ 7 -2-2x1 5x2").expect("ok"),
            vec![
                Some(1.0),
                Some(2.0),
                Some(3.0),
                Some(4.0),
                None,
                Some(7.0),
                Some(-2.0),
                Some(-4.0),
                Some(5.0),
                Some(5.0),
                Some(5.0)
            ]
        );
        let stale = expand("stale").expect("ok");
        assert!(tocsin_store::is_stale(stale[0].expect("point")));
        assert!(expand("1+1xmany").is_err());
        assert!(expand("abc").is_err());
        assert!(expand("1x1000000").is_err());
    }

    #[test]
    fn series_lines_parse() {
        let s = parse_series(r#"cpu{host="a",core="0"} 50+10x2"#, 15_000).expect("ok");
        assert_eq!(s.name, "cpu");
        assert_eq!(
            s.labels,
            vec![
                ("core".to_string(), "0".to_string()),
                ("host".to_string(), "a".to_string())
            ]
        );
        assert_eq!(
            s.points,
            vec![(T0, 50.0), (T0 + 15_000, 60.0), (T0 + 30_000, 70.0)]
        );
        let bare = parse_series("load1 1 2", 1000).expect("ok");
        assert_eq!(bare.points.len(), 2);
        assert!(parse_series(r#"{host="a"} 1"#, 1000).is_err(), "no name");
        assert!(
            parse_series(r#"cpu{host=~"a"} 1"#, 1000).is_err(),
            "not equality"
        );
    }
}
