//! The access token: required by every route but `/healthz` when one is
//! configured (always when listening beyond loopback).
//!
//! Tokens are compared as SHA-256 digests in constant time, so neither the
//! contents nor the length of the configured token leak through timing.
//! The token is never logged.

use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::HttpState;

#[derive(Clone)]
pub struct Token(Option<[u8; 32]>);

impl Token {
    /// An empty string means no token is required.
    pub fn new(token: &str) -> Token {
        Token((!token.is_empty()).then(|| digest(token)))
    }

    /// Whether `offered` is acceptable.
    pub fn accepts(&self, offered: Option<&str>) -> bool {
        let Some(expected) = &self.0 else {
            return true;
        };
        let Some(offered) = offered else {
            return false;
        };
        let got = digest(offered);
        expected
            .iter()
            .zip(got.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The token a request offers: `Authorization: Bearer …`, else `?token=…`
/// (for the page and the WebSocket, which a browser opens without headers).
fn offered(req: &Request) -> Option<String> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme is case-insensitive (RFC 9110).
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
        });
    bearer.or_else(|| {
        Query::<TokenQuery>::try_from_uri(req.uri())
            .ok()
            .and_then(|q| q.0.token)
    })
}

pub async fn require(State(state): State<HttpState>, req: Request, next: Next) -> Response {
    if state.token.accepts(offered(&req).as_deref()) {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"kao\"")],
        "kao: this server needs its access token (http.token): open the page as /?token=TOKEN, or send `Authorization: Bearer TOKEN`\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_accepts_only_the_exact_string() {
        let t = Token::new("correct-horse-battery");
        assert!(t.accepts(Some("correct-horse-battery")));
        assert!(!t.accepts(Some("correct-horse-batter")));
        assert!(!t.accepts(Some("correct-horse-battery ")));
        assert!(!t.accepts(Some("")));
        assert!(!t.accepts(None));
    }

    #[test]
    fn no_token_configured_accepts_everyone() {
        let t = Token::new("");
        assert!(t.accepts(None));
        assert!(t.accepts(Some("anything")));
    }
}
