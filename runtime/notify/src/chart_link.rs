//! Signed, expiring chart links. Chat services fetch `/api/charts/alert.png` without a
//! token, so the link a message carries ends in `&exp=<unix s>&sig=<hex>`: an
//! HMAC-SHA256, under a key only this server holds, of everything before `&sig=`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a chart link in a message works.
pub const LINK_TTL_SECS: i64 = 7 * 86_400;

/// The server's key for chart links (empty: links are not signed).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ChartKey(pub Vec<u8>);

impl std::fmt::Debug for ChartKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "ChartKey(none)"
        } else {
            "ChartKey(<redacted>)"
        })
    }
}

fn mac(key: &ChartKey, text: &str) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key.0).ok()?;
    mac.update(text.as_bytes());
    Some(mac)
}

/// `query` with `&exp=...&sig=...` appended (unchanged without a key).
pub fn sign(key: &ChartKey, query: &str, now_secs: i64) -> String {
    if key.0.is_empty() {
        return query.to_string();
    }
    let unsigned = format!("{query}&exp={}", now_secs + LINK_TTL_SECS);
    match mac(key, &unsigned) {
        Some(m) => format!("{unsigned}&sig={}", hex::encode(m.finalize().into_bytes())),
        None => query.to_string(),
    }
}

/// Whether a raw query string carries a valid, unexpired signature.
pub fn verify(key: &ChartKey, raw_query: &str, now_secs: i64) -> bool {
    if key.0.is_empty() {
        return false;
    }
    let Some((unsigned, sig)) = raw_query.rsplit_once("&sig=") else {
        return false;
    };
    let exp = unsigned
        .rsplit_once("&exp=")
        .and_then(|(_, e)| e.parse::<i64>().ok());
    let Some(exp) = exp.filter(|e| *e >= now_secs) else {
        return false;
    };
    let _ = exp;
    let (Ok(sig), Some(m)) = (hex::decode(sig), mac(key, unsigned)) else {
        return false;
    };
    // Constant-time comparison.
    m.verify_slice(&sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_links_verify_until_they_expire_and_not_when_changed() {
        let key = ChartKey(vec![7; 32]);
        let link = sign(&key, "rule=cpu-high&host=a", 1_000);
        assert!(
            link.starts_with("rule=cpu-high&host=a&exp=605800&sig="),
            "{link}"
        );
        assert!(verify(&key, &link, 1_000));
        assert!(verify(&key, &link, 605_800));
        assert!(!verify(&key, &link, 605_801), "expired");
        assert!(
            !verify(&key, &link.replace("host=a", "host=b"), 1_000),
            "another host"
        );
        assert!(!verify(&ChartKey(vec![8; 32]), &link, 1_000), "another key");
        assert!(!verify(&key, "rule=cpu-high", 1_000));
        assert!(!verify(&key, "rule=x&exp=99999999&sig=zz", 1_000));
        assert_eq!(sign(&ChartKey::default(), "rule=x", 1), "rule=x");
        assert!(!verify(&ChartKey::default(), &link, 1_000));
        assert_eq!(format!("{key:?}"), "ChartKey(<redacted>)");
    }
}
