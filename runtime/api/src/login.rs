//! Browser sessions: `GET /login` (a form asking for a token), `POST /login` (checks it
//! and sets the `tocsin_token` cookie: HttpOnly, SameSite=Strict, Secure over HTTPS) and
//! `POST /logout`. The cookie carries the token itself; nothing is kept on the server.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::auth::Role;
use crate::state::AppState;

/// How long a browser keeps the session cookie.
const SESSION_SECONDS: u64 = 12 * 3600;

fn page(error: Option<&str>) -> Html<String> {
    let error = error
        .map(|e| format!(r#"<p class="error">{}</p>"#, tocsin_notify::escape(e)))
        .unwrap_or_default();
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tocsin — log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; background: #f4f5f7; margin: 0; }}
main {{ max-width: 26rem; margin: 12vh auto; background: #fff; padding: 2rem;
  border-radius: 8px; box-shadow: 0 1px 4px rgba(0,0,0,.12); }}
h1 {{ margin-top: 0; font-size: 1.4rem; }}
input {{ width: 100%; box-sizing: border-box; padding: .6rem; font: inherit; margin: .4rem 0 1rem; }}
button {{ padding: .6rem 1.2rem; font: inherit; background: #1f6feb; color: #fff; border: 0; border-radius: 4px; }}
.error {{ color: #b42318; }}
.hint {{ color: #555; font-size: .9rem; }}
</style></head>
<body><main>
<h1>Tocsin</h1>
{error}
<form method="post" action="/login">
<label for="token">API token (operator or admin)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button>
</form>
<p class="hint">The first admin token is in <code>admin.token</code> in the data directory.</p>
</main></body></html>"#
    ))
}

/// `GET /login`.
pub async fn form() -> Html<String> {
    page(None)
}

/// Body of `POST /login`.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    /// The API token.
    token: String,
}

fn cookie(value: &str, max_age: u64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "tocsin_token={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .ok()
}

/// `POST /login`: a known operator or admin token sets the session cookie and goes to `/`.
pub async fn submit(State(state): State<AppState>, Form(f): Form<LoginForm>) -> Response {
    let secret = f.token.trim();
    let caller = state.tokens().find(secret);
    match caller {
        Some(c) if matches!(c.role, Role::Admin | Role::Operator) => {
            let https = state.limits().https;
            // A token is `tsn_` and hex digits, so it is always a valid header value.
            match cookie(secret, SESSION_SECONDS, https) {
                Some(value) => {
                    let mut response = Redirect::to("/").into_response();
                    response.headers_mut().insert(header::SET_COOKIE, value);
                    response
                }
                None => (StatusCode::UNAUTHORIZED, page(Some("unknown token"))).into_response(),
            }
        }
        Some(_) => (
            StatusCode::FORBIDDEN,
            page(Some("client tokens can only send data")),
        )
            .into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            page(Some("unknown or revoked token")),
        )
            .into_response(),
    }
}

/// `POST /logout`: clear the cookie and show the form.
pub async fn logout(State(state): State<AppState>) -> Response {
    let mut response = Redirect::to("/login").into_response();
    if let Some(value) = cookie("", 0, state.limits().https) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
