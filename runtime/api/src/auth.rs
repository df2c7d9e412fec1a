//! Who may call what: API tokens (only the SHA-256 of each secret is kept), roles, and the
//! middleware that checks a route's required role and hands the caller to the handler for
//! the audit log. Secrets are 256 random bits, so a plain SHA-256 is as strong as a slow
//! password hash would be, and a lookup costs one hash.

use std::collections::HashMap;
use std::sync::RwLock;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tocsin_store::TokenRecord;

use crate::error::AppError;
use crate::state::AppState;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: policies, silences, commands, tokens, the audit log.
    Admin,
    /// Read everything and manage silences.
    Operator,
    /// Ingest for its own client id, nothing else.
    Client,
}

impl Role {
    /// Parse `admin`, `operator` or `client`.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Role::Admin),
            "operator" => Some(Role::Operator),
            "client" => Some(Role::Client),
            _ => None,
        }
    }

    /// The name, as stored.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Client => "client",
        }
    }

    /// Whether this role may call a route that needs `need`.
    pub fn allows(self, need: Need) -> bool {
        match need {
            Need::Public => true,
            Need::Operator | Need::Page => matches!(self, Role::Admin | Role::Operator),
            Need::Admin => self == Role::Admin,
            Need::Client => matches!(self, Role::Admin | Role::Client),
        }
    }
}

/// What a route requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing (health, the OpenAPI document).
    Public,
    /// An operator or admin token: reads and silences.
    Operator,
    /// An admin token: changes to what runs and who may call.
    Admin,
    /// A client token (for its own id) or an admin token: ingest.
    Client,
    /// A page of the dashboard: like `Operator`, but a browser without a token is sent
    /// to the login form.
    Page,
}

impl Need {
    /// The roles that satisfy it, for error messages and the OpenAPI document.
    pub fn roles(self) -> &'static str {
        match self {
            Need::Public => "anyone",
            Need::Operator | Need::Page => "operator or admin",
            Need::Admin => "admin",
            Need::Client => "client or admin",
        }
    }
}

/// The authenticated caller of a request (an extension handlers can take).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// For a client token, its client id.
    pub client: Option<String>,
}

impl Caller {
    /// How the audit log names this caller.
    pub fn actor(&self) -> String {
        format!("token:{}", self.name)
    }
}

/// A new secret: `tsn_` and 64 hex digits (256 random bits).
pub fn new_secret() -> Result<String, AppError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| AppError::internal(format!("no randomness for a token: {e}")))?;
    Ok(format!("tsn_{}", hex::encode(bytes)))
}

/// The stored form of a secret.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The tokens the server accepts, by digest.
#[derive(Debug, Default)]
pub struct Tokens {
    by_digest: RwLock<HashMap<String, Caller>>,
}

impl Tokens {
    /// Accept exactly `records` from now on (records with an unknown role are skipped with
    /// a warning: they grant nothing).
    pub fn replace(&self, records: &[TokenRecord]) {
        let map = records
            .iter()
            .filter_map(|r| match Role::parse(&r.role) {
                Some(role) => Some((
                    r.sha256.clone(),
                    Caller {
                        name: r.name.clone(),
                        role,
                        client: r.client.clone(),
                    },
                )),
                None => {
                    tracing::warn!(token = %r.name, role = %r.role, "token with an unknown role ignored");
                    None
                }
            })
            .collect();
        *self.by_digest.write().unwrap_or_else(|e| e.into_inner()) = map;
    }

    /// The caller a secret belongs to.
    pub fn find(&self, secret: &str) -> Option<Caller> {
        self.by_digest
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest(secret))
            .cloned()
    }

    /// Whether any admin token is accepted.
    pub fn has_admin(&self) -> bool {
        self.by_digest
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .any(|c| c.role == Role::Admin)
    }
}

/// Where a secret came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum From {
    Header,
    Cookie,
}

/// The secret a request presents: `Authorization: Bearer …`, else the `tocsin_token`
/// cookie (what the dashboard's browser sends; another `Authorization` scheme, such as a
/// proxy's Basic, leaves the cookie in charge).
fn presented_with(headers: &HeaderMap) -> Option<(&str, From)> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, secret)| (secret.trim(), From::Header));
    bearer.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| pair.trim().strip_prefix("tocsin_token="))
            .map(|secret| (secret, From::Cookie))
    })
}

#[cfg(test)]
fn presented(headers: &HeaderMap) -> Option<&str> {
    presented_with(headers).map(|(secret, _)| secret)
}

fn unauthorized(message: &str) -> Response {
    let mut response = AppError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"tocsin\""),
    );
    response
}

/// Middleware: let the request through when its token's role satisfies `need`, with the
/// [`Caller`] in its extensions; 401 without a known token, 403 with too weak a one.
pub async fn require(
    State((state, need)): State<(AppState, Need)>,
    mut request: Request,
    next: Next,
) -> Response {
    if need == Need::Public {
        return next.run(request).await;
    }
    match check(&state, request.method(), request.headers(), need) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(refusal) => refusal,
    }
}

/// The caller of a request if its token satisfies `need`; else the answer: 401 without
/// a known token (a redirect to the login form for pages), 403 with too weak a one.
// The refusal is the response itself, as axum handlers return it; boxing it buys nothing.
#[allow(clippy::result_large_err)]
pub fn check(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    need: Need,
) -> Result<Caller, Response> {
    // A cookie travels with any request the browser makes, even one another page on the
    // same site triggers: it authenticates reads only. Changes need the header.
    let safe = matches!(*method, Method::GET | Method::HEAD);
    let caller = presented_with(headers)
        .filter(|(_, from)| safe || *from == From::Header)
        .map(|(s, _)| (s, state.tokens().find(s)));
    let caller = match caller {
        Some((_, Some(caller))) => caller,
        _ if need == Need::Page => {
            return Err(axum::response::Redirect::to("/login").into_response());
        }
        None => {
            return Err(unauthorized(
                "this route needs a token: `Authorization: Bearer <token>`",
            ));
        }
        Some((_, None)) => return Err(unauthorized("unknown or revoked token")),
    };
    if !caller.role.allows(need) {
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            format!(
                "token `{}` is {}; this route needs {}",
                caller.name,
                caller.role.name(),
                need.roles()
            ),
        )
        .into_response());
    }
    Ok(caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_allow_what_the_issue_says() {
        use Need::*;
        let table = [
            (Role::Admin, [true, true, true, true, true]),
            (Role::Operator, [true, true, false, false, true]),
            (Role::Client, [true, false, false, true, false]),
        ];
        for (role, expect) in table {
            let got = [Public, Operator, Admin, Client, Page].map(|n| role.allows(n));
            assert_eq!(got, expect, "{role:?}");
        }
    }

    #[test]
    fn secrets_are_random_and_found_only_by_their_digest() {
        let a = new_secret().expect("secret");
        let b = new_secret().expect("secret");
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 64);
        let tokens = Tokens::default();
        tokens.replace(&[TokenRecord {
            name: "ci".into(),
            role: "operator".into(),
            client: None,
            sha256: digest(&a),
            created_ms: 0,
            created_by: "test".into(),
        }]);
        assert_eq!(tokens.find(&a).map(|c| c.name), Some("ci".into()));
        assert_eq!(tokens.find(&b), None);
        assert_eq!(tokens.find(&digest(&a)), None, "the digest is not a secret");
        assert!(!tokens.has_admin());
    }

    #[test]
    fn the_secret_comes_from_the_bearer_header_or_the_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; tocsin_token=tsn_c"),
        );
        assert_eq!(presented(&h), Some("tsn_c"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer tsn_h"),
        );
        assert_eq!(presented(&h), Some("tsn_h"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic eDp5"),
        );
        assert_eq!(
            presented_with(&h),
            Some(("tsn_c", From::Cookie)),
            "another scheme leaves the cookie in charge"
        );
        h.remove(header::COOKIE);
        assert_eq!(presented(&h), None, "another scheme is not a token");
    }
}
