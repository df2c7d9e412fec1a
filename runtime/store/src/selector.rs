//! Series selectors in Prometheus syntax: `name{label="v",other=~"a|b",x!="y",z!~"re"}`.
//! Regular expressions are fully anchored, as in Prometheus.

use regex::Regex;

use crate::error::StoreError;
use crate::series::SeriesKey;

/// How a matcher compares.
#[derive(Debug, Clone)]
pub enum MatchOp {
    /// `=`
    Eq(String),
    /// `!=`
    Ne(String),
    /// `=~`
    Re(Regex),
    /// `!~`
    NotRe(Regex),
}

/// One `label op "value"` condition (`__name__` is the metric name).
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label.
    pub label: String,
    /// The comparison.
    pub op: MatchOp,
}

impl Matcher {
    /// Whether `value` (empty when the label is absent) satisfies this matcher.
    pub fn matches(&self, value: &str) -> bool {
        match &self.op {
            MatchOp::Eq(v) => value == v,
            MatchOp::Ne(v) => value != v,
            MatchOp::Re(r) => r.is_match(value),
            MatchOp::NotRe(r) => !r.is_match(value),
        }
    }

    /// The exact value required, for index lookups.
    pub fn equal_value(&self) -> Option<&str> {
        match &self.op {
            MatchOp::Eq(v) if !v.is_empty() => Some(v),
            _ => None,
        }
    }
}

/// A parsed selector: all matchers must hold.
#[derive(Debug, Clone)]
pub struct Selector {
    /// The conditions.
    pub matchers: Vec<Matcher>,
}

impl Selector {
    /// Parse selector text.
    pub fn parse(text: &str) -> Result<Selector, StoreError> {
        let err = |message: &str| StoreError::Selector {
            selector: text.chars().take(200).collect(),
            message: message.to_string(),
        };
        let s = text.trim();
        let (name, rest) = match s.find('{') {
            Some(i) => (s[..i].trim(), &s[i..]),
            None => (s, ""),
        };
        let mut matchers = Vec::new();
        if !name.is_empty() {
            SeriesKey::new(name, &[]).map_err(|_| err("invalid metric name"))?;
            matchers.push(Matcher {
                label: "__name__".into(),
                op: MatchOp::Eq(name.into()),
            });
        }
        if !rest.is_empty() {
            let inner = rest
                .strip_prefix('{')
                .and_then(|r| r.strip_suffix('}'))
                .ok_or_else(|| err("expected `{...}` after the name"))?;
            let mut chars = inner.chars().peekable();
            loop {
                while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    break;
                }
                let mut label = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        label.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if label.is_empty() {
                    return Err(err("expected a label name"));
                }
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                let op: String = [chars.next(), chars.peek().copied()]
                    .into_iter()
                    .flatten()
                    .collect();
                let op = match op.as_str() {
                    "=~" | "!=" | "!~" => {
                        chars.next();
                        op
                    }
                    o if o.starts_with('=') => "=".to_string(),
                    _ => return Err(err("expected =, !=, =~ or !~")),
                };
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if chars.next() != Some('"') {
                    return Err(err("expected a double-quoted value"));
                }
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => value.push('\n'),
                            Some(c) => value.push(c),
                            None => return Err(err("unterminated escape")),
                        },
                        Some(c) => value.push(c),
                        None => return Err(err("unterminated value")),
                    }
                }
                let regex = |v: &str| {
                    Regex::new(&format!("^(?:{v})$")).map_err(|e| err(&format!("bad regex: {e}")))
                };
                let op = match op.as_str() {
                    "=" => MatchOp::Eq(value),
                    "!=" => MatchOp::Ne(value),
                    "=~" => MatchOp::Re(regex(&value)?),
                    _ => MatchOp::NotRe(regex(&value)?),
                };
                matchers.push(Matcher { label, op });
            }
        }
        if !matchers.iter().any(|m| !m.matches("")) {
            return Err(err(
                "needs at least one matcher that does not match the empty string",
            ));
        }
        Ok(Selector { matchers })
    }

    /// Whether `key` is selected.
    pub fn matches(&self, key: &SeriesKey) -> bool {
        self.matchers
            .iter()
            .all(|m| m.matches(key.label(&m.label).unwrap_or("")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, labels: &[(&str, &str)]) -> SeriesKey {
        let l: Vec<_> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SeriesKey::new(name, &l).expect("key")
    }

    #[test]
    fn parses_and_matches() {
        let s = Selector::parse(r#"cpu_usage{host="a",core=~"0|1", mode!="idle",dc!~"eu.*"}"#)
            .expect("parse");
        assert_eq!(s.matchers.len(), 5);
        assert!(s.matches(&key("cpu_usage", &[("host", "a"), ("core", "1")])));
        assert!(
            !s.matches(&key("cpu_usage", &[("host", "a"), ("core", "10")])),
            "anchored"
        );
        assert!(!s.matches(&key(
            "cpu_usage",
            &[("host", "a"), ("core", "0"), ("dc", "eu-1")]
        )));
        assert!(!s.matches(&key(
            "cpu_usage",
            &[("host", "a"), ("core", "0"), ("mode", "idle")]
        )));
        assert!(!s.matches(&key("mem", &[("host", "a"), ("core", "0")])));
        let s = Selector::parse("up").expect("bare name");
        assert!(s.matches(&key("up", &[("x", "y")])));
        let s = Selector::parse(r#"{__name__=~"load.*"}"#).expect("name matcher");
        assert!(s.matches(&key("load1", &[])));
        let s = Selector::parse(r#"x{v="a\"b"}"#).expect("escape");
        assert!(s.matches(&key("x", &[("v", "a\"b")])));
    }

    #[test]
    fn errors_are_clear() {
        for bad in [
            "",
            "{}",
            r#"{a=~".*"}"#,
            "cpu{host}",
            r#"cpu{host="a"#,
            r#"cpu{host=~"("}"#,
            "9x",
            r#"cpu{host=a}"#,
        ] {
            let e = Selector::parse(bad).expect_err(bad);
            assert!(e.to_string().starts_with("invalid selector"), "{e}");
        }
    }
}
