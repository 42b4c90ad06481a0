//! Bearer authentication: on `/v1` when a token is configured, and always
//! on the admin routes.
//!
//! The admin routes take the admin token when one is set, else the `/v1`
//! token. With neither, they answer only on a listener bound to a loopback
//! address, where only processes of this host can reach them; on any other
//! listener they are refused (403 `admin_disabled`).

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use std::net::SocketAddr;

use super::AppState;
use crate::config::Secret;
use crate::error::ApiError;

/// Compares in time that depends on the lengths only, not on where the
/// first difference is.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The credentials of an `Authorization` value of the bearer scheme, which
/// HTTP compares without regard to letter case (RFC 9110, 11.1), followed
/// by at least one space.
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim_matches(' '))
}

/// Why a request's credentials do not match `token`, if they do not.
fn refusal(req: &Request, token: &Secret) -> Option<&'static str> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    match presented {
        None => Some("this route needs an Authorization: Bearer <token> header"),
        Some(value) => match bearer_credentials(value) {
            Some(t) if same_secret(t.trim().as_bytes(), token.expose().as_bytes()) => None,
            Some(_) => Some("the bearer token is not the one configured"),
            None => Some("the Authorization header must be Bearer <token>"),
        },
    }
}

fn unauthorized(message: &str) -> Response {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response()
}

pub(super) async fn require_token(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(token) = &s.config().auth_token
        && let Some(message) = refusal(&req, token)
    {
        return unauthorized(message);
    }
    next.run(req).await
}

/// Who may call the admin routes.
#[derive(Debug, Clone)]
pub(super) enum AdminAccess {
    /// Requests with this bearer token.
    Token(Secret),
    /// Any request: the listener is loopback-only and no token is set.
    Loopback,
    /// None: no token is set and the listener is reachable from outside.
    Refused,
}

impl AdminAccess {
    /// The admin token if set, else the `/v1` token; with neither, open on
    /// a loopback listener only.
    pub(super) fn new(
        admin_token: Option<Secret>,
        auth_token: Option<Secret>,
        listen: SocketAddr,
    ) -> Self {
        match admin_token.or(auth_token) {
            Some(token) => AdminAccess::Token(token),
            None if listen.ip().is_loopback() => AdminAccess::Loopback,
            None => AdminAccess::Refused,
        }
    }
}

pub(super) async fn require_admin(State(s): State<AppState>, req: Request, next: Next) -> Response {
    match &s.config().admin.access {
        AdminAccess::Token(token) => {
            if let Some(message) = refusal(&req, token) {
                return unauthorized(message);
            }
        }
        AdminAccess::Loopback => {}
        AdminAccess::Refused => {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "admin_disabled",
                "the admin routes need --admin-token or --auth-token on a listener that is not loopback-only",
            )
            .into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_read_in_any_letter_case() {
        for value in ["Bearer t0k", "bearer t0k", "BEARER t0k", "BeArEr   t0k "] {
            assert_eq!(bearer_credentials(value), Some("t0k"), "{value}");
        }
        assert_eq!(bearer_credentials("Basic t0k"), None);
        assert_eq!(bearer_credentials("Bearert0k"), None);
        assert_eq!(bearer_credentials("Bearer"), None);
    }

    #[test]
    fn admin_access_prefers_the_admin_token_and_opens_only_on_loopback() {
        let t = |s: &str| Some(Secret::new(s));
        let outside: SocketAddr = "0.0.0.0:80".parse().unwrap_or_else(|_| unreachable!());
        let local: SocketAddr = "[::1]:80".parse().unwrap_or_else(|_| unreachable!());
        let token = |a: AdminAccess| match a {
            AdminAccess::Token(t) => Some(t.expose().to_owned()),
            _ => None,
        };
        assert_eq!(
            token(AdminAccess::new(t("adm"), t("v1"), outside)).as_deref(),
            Some("adm")
        );
        assert_eq!(
            token(AdminAccess::new(None, t("v1"), outside)).as_deref(),
            Some("v1")
        );
        assert!(matches!(
            AdminAccess::new(None, None, local),
            AdminAccess::Loopback
        ));
        assert!(matches!(
            AdminAccess::new(None, None, outside),
            AdminAccess::Refused
        ));
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
