//! Reading the Prometheus text exposition format's sample lines (`name value`,
//! `name{label="v",...} value [timestamp-ms]`; `#` lines and blank lines skipped), as
//! script metrics print them. Label syntax is the selector parser's, restricted to `=`.

use crate::selector::{MatchOp, Selector};
use crate::series::Sample;

/// Parse `text`: the samples read (stamped `ts_ms` unless a line has its own timestamp)
/// and, for each line that was not a sample, its 1-based number and why.
pub fn parse_text(text: &str, ts_ms: i64) -> (Vec<Sample>, Vec<(usize, String)>) {
    let mut samples = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line, ts_ms) {
            Ok(s) => samples.push(s),
            Err(e) => errors.push((i + 1, e)),
        }
    }
    (samples, errors)
}

/// Parse one sample line.
pub fn parse_line(line: &str, ts_ms: i64) -> Result<Sample, String> {
    let line = line.trim();
    let split = series_end(line).ok_or("unterminated `{`")?;
    let (series, rest) = line.split_at(split);
    let selector = Selector::parse(series).map_err(|e| e.to_string())?;
    let mut name = None;
    let mut labels = Vec::new();
    for m in selector.matchers {
        let MatchOp::Eq(value) = m.op else {
            return Err(format!("label `{}`: only `=` belongs in a sample", m.label));
        };
        if m.label == "__name__" {
            name = Some(value);
        } else {
            labels.push((m.label, value));
        }
    }
    let name = name.ok_or("no metric name")?;
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value: f64 = value
        .parse()
        .map_err(|_| format!("`{value}` is not a number"))?;
    let ts_ms = match fields.next() {
        Some(t) => t
            .parse()
            .map_err(|_| format!("`{t}` is not a timestamp in milliseconds"))?,
        None => ts_ms,
    };
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected `{extra}` after the timestamp"));
    }
    Ok(Sample {
        name,
        labels,
        ts_ms,
        value,
    })
}

/// Where the series part of a line ends: after the closing `}` (quotes respected), or at
/// the first blank when there are no labels.
fn series_end(line: &str) -> Option<usize> {
    let brace = line.find('{');
    let blank = line.find(char::is_whitespace);
    match (brace, blank) {
        (Some(b), w) if w.is_none_or(|w| b < w) => {
            let mut quoted = false;
            let mut escaped = false;
            for (i, c) in line[b..].char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' if quoted => escaped = true,
                    '"' => quoted = !quoted,
                    '}' if !quoted => return Some(b + i + 1),
                    _ => {}
                }
            }
            None
        }
        (_, Some(w)) => Some(w),
        (_, None) => Some(line.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_lines_are_read_and_bad_lines_named() {
        let text = "# HELP backup_age_seconds Age\n\
                    backup_age_seconds 3600\n\
                    queue_depth{queue=\"mail\",host=\"a b}\"} 7 1700000000000\n\
                    \n\
                    temp{sensor=\"x\"} NaN\n\
                    up +Inf\n\
                    bad{x=~\"a\"} 1\n\
                    novalue\n\
                    text{a=\"b\"} many\n\
                    open{a=\"b\" 1\n\
                    x 1 2 3\n";
        let (samples, errors) = parse_text(text, 42);
        let got: Vec<(&str, usize, i64)> = samples
            .iter()
            .map(|s| (s.name.as_str(), s.labels.len(), s.ts_ms))
            .collect();
        assert_eq!(
            got,
            vec![
                ("backup_age_seconds", 0, 42),
                ("queue_depth", 2, 1_700_000_000_000),
                ("temp", 1, 42),
                ("up", 0, 42),
            ]
        );
        assert_eq!(
            samples[1].labels[1],
            ("host".to_string(), "a b}".to_string())
        );
        assert!(samples[2].value.is_nan());
        assert_eq!(samples[3].value, f64::INFINITY);
        let lines: Vec<usize> = errors.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![7, 8, 9, 10, 11], "{errors:?}");
        assert!(errors[0].1.contains("only `=`"), "{errors:?}");
    }
}
