//! Shared plumbing of the small record tables (heartbeats, alerts, outbox, audit, policy
//! versions): records are JSON, readable with any redb tool and tolerant of added fields.

use redb::ReadableTable;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;

/// Encode a record.
pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Db(format!("encoding a record: {e}")))
}

/// Decode a record of kind `what`.
pub(crate) fn from_json<T: DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        what,
        message: e.to_string(),
    })
}

/// Take and bump the counter `name` in `meta` (starts at 1).
pub(crate) fn next_seq(meta: &mut redb::Table<&str, u64>, name: &str) -> Result<u64, StoreError> {
    let seq = meta.get(name)?.map(|v| v.value()).unwrap_or(1);
    meta.insert(name, seq + 1)?;
    Ok(seq)
}

/// An `f64` field that may be NaN or infinite (JSON has no such numbers): written as a
/// number when finite and as `"NaN"`, `"inf"` or `"-inf"` otherwise.
pub(crate) mod any_f64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_str(&v.to_string())
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(f64),
        Text(String),
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Number(v) => Ok(v),
            Repr::Text(t) => t
                .parse::<f64>()
                .map_err(|_| serde::de::Error::custom(format!("not a number: {t:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct V(#[serde(with = "super::any_f64")] f64);

    #[test]
    fn non_finite_values_round_trip() {
        for v in [1.5, f64::INFINITY, f64::NEG_INFINITY, -0.0] {
            let back: V =
                serde_json::from_slice(&super::to_json(&V(v)).expect("json")).expect("back");
            assert_eq!(back.0.to_bits(), v.to_bits());
        }
        let nan: V =
            serde_json::from_slice(&super::to_json(&V(f64::NAN)).expect("json")).expect("nan");
        assert!(nan.0.is_nan());
    }
}
