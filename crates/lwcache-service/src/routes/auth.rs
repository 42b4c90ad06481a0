//! Bearer authentication on `/v1`, when a token is configured.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
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

pub(super) async fn require_token(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(token) = &s.config().auth_token {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or(""));
        let problem = match presented {
            None => Some("this route needs an Authorization: Bearer <token> header"),
            Some(value) => match bearer_credentials(value) {
                Some(t) if same_secret(t.trim().as_bytes(), token.expose().as_bytes()) => None,
                Some(_) => Some("the bearer token is not the one configured"),
                None => Some("the Authorization header must be Bearer <token>"),
            },
        };
        if let Some(message) = problem {
            return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
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
    fn secrets_compare_exactly() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
