//! The PromQL subset Tocsin's store answers (what Grafana's Prometheus data source sends
//! for dashboards): selectors; `rate`, `increase` and `avg|min|max|sum|count|last_over_time`
//! over `selector[duration]`; `sum|avg|min|max|count` with `by (..)` or `without (..)`;
//! a comparison with a number that filters (`client_up == 0`); number literals. Parsed into [`Expr`]; anything else is a clear error naming where.

use crate::query::Aggregation;
use crate::selector::Selector;

/// Deepest nesting accepted (aggregations of aggregations…).
const MAX_DEPTH: usize = 16;

/// A function over a range of points of each series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeFn {
    /// Per-second increase of a counter.
    Rate,
    /// Increase of a counter.
    Increase,
    /// Mean of the points.
    AvgOverTime,
    /// Smallest point.
    MinOverTime,
    /// Largest point.
    MaxOverTime,
    /// Sum of the points.
    SumOverTime,
    /// Number of points.
    CountOverTime,
    /// Newest point.
    LastOverTime,
}

impl RangeFn {
    fn parse(name: &str) -> Option<RangeFn> {
        Some(match name {
            "rate" => RangeFn::Rate,
            "increase" => RangeFn::Increase,
            "avg_over_time" => RangeFn::AvgOverTime,
            "min_over_time" => RangeFn::MinOverTime,
            "max_over_time" => RangeFn::MaxOverTime,
            "sum_over_time" => RangeFn::SumOverTime,
            "count_over_time" => RangeFn::CountOverTime,
            "last_over_time" => RangeFn::LastOverTime,
            _ => return None,
        })
    }
}

/// How an aggregation groups series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    /// Keep only these labels.
    By(Vec<String>),
    /// Drop these labels (and the name).
    Without(Vec<String>),
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A number.
    Number(f64),
    /// A series selector (its text, checked).
    Select(String),
    /// A range function over a selector.
    Range {
        /// The function.
        func: RangeFn,
        /// The selector text.
        selector: String,
        /// The range (ms).
        window_ms: i64,
    },
    /// Keep the points for which `point op number` holds.
    Filter {
        /// What is filtered.
        expr: Box<Expr>,
        /// `==`, `!=`, `>`, `<`, `>=`, `<=`.
        op: Compare,
        /// The number compared with.
        value: f64,
    },
    /// An aggregation across series.
    Aggregate {
        /// The operator.
        op: Aggregation,
        /// Its grouping.
        grouping: Grouping,
        /// What it aggregates.
        expr: Box<Expr>,
    },
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `<`
    Lt,
    /// `>=`
    Ge,
    /// `<=`
    Le,
}

impl Compare {
    /// Whether `a op b` holds.
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Compare::Eq => a == b,
            Compare::Ne => a != b,
            Compare::Gt => a > b,
            Compare::Lt => a < b,
            Compare::Ge => a >= b,
            Compare::Le => a <= b,
        }
    }
}

/// A Prometheus duration: `90s`, `5m`, `1h30m`, `2d`, `1w`, `250ms` (or a bare number of
/// seconds, as the HTTP API's `step` allows). Answers milliseconds.
pub fn duration_ms(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if let Ok(seconds) = t.parse::<f64>() {
        let ms = (seconds * 1000.0).round();
        return if (1.0..1e15).contains(&ms) {
            Ok(ms as i64)
        } else {
            Err(format!("duration `{t}` out of range"))
        };
    }
    let mut total: i64 = 0;
    let mut rest = t;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("duration `{t}`: expected a number"));
        }
        let n: i64 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration `{t}`: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            other => return Err(format!("duration `{t}`: unknown unit `{other}`")),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration `{t}` out of range"))?;
    }
    if total <= 0 {
        return Err(format!("duration `{t}` must be positive"));
    }
    Ok(total)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn skip_space(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }

    fn error(&self, message: &str) -> String {
        format!("{message} at character {} of `{}`", self.pos + 1, self.text)
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.error(&format!("expected `{c}`")))
        }
    }

    fn ident(&mut self) -> &'a str {
        self.skip_space();
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    /// `{...}` from the current position, quoted values skipped.
    fn braces(&mut self) -> Result<&'a str, String> {
        let start = self.pos;
        let mut quoted = false;
        let mut escaped = false;
        for (i, c) in self.rest().char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                '}' if !quoted => {
                    self.pos += i + 1;
                    return Ok(&self.text[start..self.pos]);
                }
                _ => {}
            }
        }
        Err(self.error("unclosed `{`"))
    }

    fn labels(&mut self) -> Result<Vec<String>, String> {
        self.expect('(')?;
        let mut out = Vec::new();
        loop {
            if self.eat(')') {
                return Ok(out);
            }
            let name = self.ident();
            if name.is_empty() || name.contains(':') {
                return Err(self.error("expected a label name"));
            }
            out.push(name.to_string());
            if !self.eat(',') {
                self.expect(')')?;
                return Ok(out);
            }
        }
    }

    fn grouping(&mut self) -> Result<Option<Grouping>, String> {
        self.skip_space();
        let save = self.pos;
        match self.ident() {
            "by" => Ok(Some(Grouping::By(self.labels()?))),
            "without" => Ok(Some(Grouping::Without(self.labels()?))),
            _ => {
                self.pos = save;
                Ok(None)
            }
        }
    }

    /// A selector whose name (possibly empty) was just read.
    fn selector(&mut self, name: &str, start: usize) -> Result<String, String> {
        self.skip_space();
        if self.rest().starts_with('{') {
            self.braces()?;
        } else if name.is_empty() {
            return Err(self.error("expected a metric name, `{`, a function or a number"));
        }
        let text = self.text[start..self.pos].trim().to_string();
        Selector::parse(&text).map_err(|e| e.to_string())?;
        Ok(text)
    }

    /// A primary expression, optionally compared with a number.
    fn expr(&mut self, depth: usize) -> Result<Expr, String> {
        let expr = self.primary(depth)?;
        self.skip_space();
        let rest = self.rest();
        let op = [
            ("==", Compare::Eq),
            ("!=", Compare::Ne),
            (">=", Compare::Ge),
            ("<=", Compare::Le),
            (">", Compare::Gt),
            ("<", Compare::Lt),
        ]
        .into_iter()
        .find(|(text, _)| rest.starts_with(text));
        let Some((text, op)) = op else {
            return Ok(expr);
        };
        self.pos += text.len();
        match self.primary(depth + 1)? {
            Expr::Number(value) => Ok(Expr::Filter {
                expr: Box::new(expr),
                op,
                value,
            }),
            _ => Err(self.error("only a comparison with a number is supported")),
        }
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, String> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.skip_space();
        let start = self.pos;
        let rest = self.rest();
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')))
            .unwrap_or(rest.len());
        if rest.starts_with(|c: char| c.is_ascii_digit() || c == '.' || c == '-')
            && let Ok(n) = rest[..number_len].parse::<f64>()
        {
            self.pos += number_len;
            return Ok(Expr::Number(n));
        }
        let name = self.ident();
        if let Ok(op) = name.parse::<Aggregation>() {
            let before = self.grouping()?;
            self.expect('(')?;
            let inner = self.expr(depth + 1)?;
            self.expect(')')?;
            let after = self.grouping()?;
            let grouping = match (before, after) {
                (Some(_), Some(_)) => return Err(self.error("grouping given twice")),
                (g, None) | (None, g) => g.unwrap_or(Grouping::By(Vec::new())),
            };
            return Ok(Expr::Aggregate {
                op,
                grouping,
                expr: Box::new(inner),
            });
        }
        if let Some(func) = RangeFn::parse(name) {
            self.expect('(')?;
            self.skip_space();
            let sel_start = self.pos;
            let sel_name = self.ident();
            let selector = self.selector(sel_name, sel_start)?;
            self.expect('[')?;
            let close = self
                .rest()
                .find(']')
                .ok_or_else(|| self.error("unclosed `[`"))?;
            let window = &self.rest()[..close];
            let window_ms = duration_ms(window).map_err(|e| self.error(&e))?;
            self.pos += close + 1;
            self.expect(')')?;
            return Ok(Expr::Range {
                func,
                selector,
                window_ms,
            });
        }
        self.skip_space();
        if self.rest().starts_with('(') {
            return Err(self.error(&format!(
                "function `{name}` is not supported (rate, increase, *_over_time, sum, avg, min, max, count)"
            )));
        }
        Ok(Expr::Select(self.selector(name, start)?))
    }
}

/// Parse a query.
pub fn parse(text: &str) -> Result<Expr, String> {
    let mut p = Parser { text, pos: 0 };
    let expr = p.expr(0)?;
    p.skip_space();
    if !p.rest().is_empty() {
        return Err(p.error("unexpected text (binary operators are not supported)"));
    }
    Ok(expr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grafana_style_queries_parse() {
        assert_eq!(parse("up").expect("up"), Expr::Select("up".into()));
        assert_eq!(
            parse(r#" node_load1{host=~"a|b", x="}"} "#).expect("braces"),
            Expr::Select(r#"node_load1{host=~"a|b", x="}"}"#.into())
        );
        assert_eq!(
            parse(r#"sum by (host) (rate(net_bytes_total{dir="rx"}[1m0s]))"#).expect("sum"),
            Expr::Aggregate {
                op: Aggregation::Sum,
                grouping: Grouping::By(vec!["host".into()]),
                expr: Box::new(Expr::Range {
                    func: RangeFn::Rate,
                    selector: r#"net_bytes_total{dir="rx"}"#.into(),
                    window_ms: 60_000,
                }),
            }
        );
        assert_eq!(
            parse("avg(cpu) without (core)").expect("without after"),
            Expr::Aggregate {
                op: Aggregation::Avg,
                grouping: Grouping::Without(vec!["core".into()]),
                expr: Box::new(Expr::Select("cpu".into())),
            }
        );
        assert_eq!(parse("1").expect("number"), Expr::Number(1.0));
        assert_eq!(
            parse("count(client_up == 0)").expect("filter"),
            Expr::Aggregate {
                op: Aggregation::Count,
                grouping: Grouping::By(vec![]),
                expr: Box::new(Expr::Filter {
                    expr: Box::new(Expr::Select("client_up".into())),
                    op: Compare::Eq,
                    value: 0.0,
                }),
            }
        );
        assert!(matches!(
            parse("max_over_time(x[5m])"),
            Ok(Expr::Range {
                func: RangeFn::MaxOverTime,
                window_ms: 300_000,
                ..
            })
        ));
    }

    #[test]
    fn unsupported_and_broken_queries_are_clear_errors() {
        for (q, says) in [
            ("up + 1", "binary operators"),
            ("up == down", "comparison with a number"),
            ("histogram_quantile(0.9, x)", "not supported"),
            ("rate(x)", "expected `[`"),
            ("rate(x[5q])", "unknown unit"),
            ("rate(x[5m]", "expected `)`"),
            ("sum by (a) (x) by (b)", "twice"),
            ("x{a=", "unclosed"),
            ("{}", "at least one matcher"),
            ("", "expected a metric name"),
            ("sum(", "expected a metric name"),
        ] {
            let e = parse(q).expect_err(q);
            assert!(e.contains(says), "{q}: {e}");
        }
        let deep = format!("{}x{}", "sum(".repeat(100), ")".repeat(100));
        assert!(
            parse(&deep)
                .expect_err("deep")
                .contains("nested too deeply")
        );
    }

    #[test]
    fn durations_follow_prometheus() {
        assert_eq!(duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(duration_ms("250ms"), Ok(250));
        assert_eq!(duration_ms("15"), Ok(15_000));
        assert_eq!(duration_ms("0.5"), Ok(500));
        for bad in [
            "",
            "m",
            "-1",
            "0s",
            "1x",
            "99999999999999999999s",
            "inf",
            "0.0001",
            "0",
        ] {
            assert!(duration_ms(bad).is_err(), "{bad}");
        }
    }
}
