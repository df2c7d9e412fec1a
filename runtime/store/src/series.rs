//! Series identity: a metric name plus labels sorted by key, validated, with a canonical
//! text key and a compact byte encoding for the `series` table.

use crate::error::SampleError;

/// Most labels a series may carry.
pub const MAX_LABELS: usize = 32;
/// Longest metric or label name.
pub const MAX_NAME_LEN: usize = 256;
/// Longest label value.
pub const MAX_VALUE_LEN: usize = 1024;

/// Bits of the stale marker: a NaN that says "this series ended here" (Prometheus' value),
/// distinct from an ordinary NaN measurement.
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// Whether `v` is the stale marker (ordinary NaNs are values).
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN
}

/// One measurement to ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels, any order (sorted on ingest).
    pub labels: Vec<(String, String)>,
    /// Timestamp, ms since the epoch.
    pub ts_ms: i64,
    /// Value; NaN and infinities are legal.
    pub value: f64,
}

impl Sample {
    /// The stale marker for a series at `ts_ms`: queries see no value from here on until
    /// the series reports again.
    pub fn stale(name: &str, labels: &[(String, String)], ts_ms: i64) -> Sample {
        Sample {
            name: name.to_string(),
            labels: labels.to_vec(),
            ts_ms,
            value: f64::from_bits(STALE_NAN),
        }
    }
}

/// A series' identity, labels sorted by key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// Metric name.
    pub name: String,
    /// Labels sorted by key, no duplicate keys.
    pub labels: Vec<(String, String)>,
}

fn valid_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
        && s.len() <= MAX_NAME_LEN
}

impl SeriesKey {
    /// Validate and normalise a name and labels.
    pub fn new(name: &str, labels: &[(String, String)]) -> Result<SeriesKey, SampleError> {
        if !valid_name(name, true) {
            return Err(SampleError::InvalidName(name.chars().take(80).collect()));
        }
        if labels.len() > MAX_LABELS {
            return Err(SampleError::TooManyLabels {
                count: labels.len(),
                max: MAX_LABELS,
            });
        }
        let mut sorted = labels.to_vec();
        sorted.sort();
        for (i, (k, v)) in sorted.iter().enumerate() {
            if !valid_name(k, false) || k.starts_with("__") {
                return Err(SampleError::InvalidLabel(k.chars().take(80).collect()));
            }
            if v.len() > MAX_VALUE_LEN {
                return Err(SampleError::LabelValueTooLong {
                    label: k.clone(),
                    max: MAX_VALUE_LEN,
                });
            }
            if i > 0 && sorted[i - 1].0 == *k {
                return Err(SampleError::DuplicateLabel(k.clone()));
            }
        }
        Ok(SeriesKey {
            name: name.to_string(),
            labels: sorted,
        })
    }

    /// The value of label `key` (`__name__` is the metric name).
    pub fn label(&self, key: &str) -> Option<&str> {
        if key == "__name__" {
            return Some(&self.name);
        }
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Canonical text: `name{a="x",b="y"}` (values escaped as in Prometheus).
    pub fn canonical(&self) -> String {
        let mut s = self.name.clone();
        if !self.labels.is_empty() {
            s.push('{');
            for (i, (k, v)) in self.labels.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                s.push_str(k);
                s.push_str("=\"");
                for c in v.chars() {
                    match c {
                        '\\' => s.push_str("\\\\"),
                        '"' => s.push_str("\\\""),
                        '\n' => s.push_str("\\n"),
                        c => s.push(c),
                    }
                }
                s.push('"');
            }
            s.push('}');
        }
        s
    }

    /// Bytes for the `series` table: strings, each prefixed by its u32 length.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |s: &str| {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        put(&self.name);
        for (k, v) in &self.labels {
            put(k);
            put(v);
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<SeriesKey> {
        let mut parts = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let s = std::str::from_utf8(rest.get(4..4 + len)?).ok()?;
            parts.push(s.to_string());
            rest = &rest[4 + len..];
        }
        let mut it = parts.into_iter();
        let name = it.next()?;
        let mut labels = Vec::new();
        while let Some(k) = it.next() {
            labels.push((k, it.next()?));
        }
        Some(SeriesKey { name, labels })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn normalises_and_roundtrips() {
        let k = SeriesKey::new("cpu_usage", &l(&[("z", "1"), ("a", "q\"x")])).expect("valid");
        assert_eq!(k.canonical(), "cpu_usage{a=\"q\\\"x\",z=\"1\"}");
        assert_eq!(SeriesKey::decode(&k.encode()), Some(k.clone()));
        assert_eq!(k.label("__name__"), Some("cpu_usage"));
        assert_eq!(k.label("z"), Some("1"));
    }

    #[test]
    fn rejects_bad_names_and_labels() {
        assert!(matches!(
            SeriesKey::new("9lives", &[]),
            Err(SampleError::InvalidName(_))
        ));
        assert!(matches!(
            SeriesKey::new("a b", &[]),
            Err(SampleError::InvalidName(_))
        ));
        assert!(matches!(
            SeriesKey::new("ok", &l(&[("bad-label", "x")])),
            Err(SampleError::InvalidLabel(_))
        ));
        assert!(matches!(
            SeriesKey::new("ok", &l(&[("__x", "x")])),
            Err(SampleError::InvalidLabel(_))
        ));
        assert!(matches!(
            SeriesKey::new("ok", &l(&[("a", "1"), ("a", "2")])),
            Err(SampleError::DuplicateLabel(_))
        ));
        let many: Vec<_> = (0..33)
            .map(|i| (format!("l{i}"), "v".to_string()))
            .collect();
        assert!(matches!(
            SeriesKey::new("ok", &many),
            Err(SampleError::TooManyLabels { count: 33, .. })
        ));
        assert!(SeriesKey::decode(&[1, 0, 0]).is_none());
    }
}
