//! Reading requests: the path parameters, the bounded body and the
//! `limit` query, each refused with an [`ApiError`] that names the input.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use lwcache_domain::{EntityId, EntityKind, EntityRef, FlagName, WorldId};
use serde_json::Value as JsonValue;

use super::AppState;
use super::table::MAX_RECENT_LIMIT;
use crate::error::ApiError;

/// The path parameters, percent-decoded text as the router captured them
/// (a few, so found by name in order, with no map built per request);
/// each handler validates the ones it uses.
pub(super) struct Params(RawPathParams);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match RawPathParams::from_request_parts(parts, state).await {
            Ok(raw) => Ok(Params(raw)),
            Err(e) => Err(ApiError::bad_request("invalid_path", e.body_text())),
        }
    }
}

impl Params {
    pub(super) fn text(&self, name: &str) -> Result<&str, ApiError> {
        let found = self.0.iter().find(|(key, _)| *key == name);
        found.map(|(_, value)| value).ok_or_else(|| {
            ApiError::bad_request("invalid_path", format!("missing path parameter {name}"))
        })
    }

    pub(super) fn world(&self) -> Result<WorldId, ApiError> {
        Ok(WorldId::new(self.text("world_id")?)?)
    }
}

/// How long a request's body may take to arrive once its head has: a
/// client that stops sending mid-body holds its connection, and a shutdown
/// waiting for it, no longer.
pub(crate) const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The request body, bounded by the configured limit and [`BODY_TIMEOUT`].
pub(super) struct Body(Bytes);

impl FromRequest<AppState> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let Ok(read) = tokio::time::timeout(BODY_TIMEOUT, Bytes::from_request(req, state)).await
        else {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
            ));
        };
        match read {
            Ok(bytes) => Ok(Body(bytes)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "the request body is larger than the limit of {} bytes",
                    state.config().max_body_bytes
                ),
            )),
            Err(e) => Err(ApiError::bad_request("unreadable_body", e.body_text())),
        }
    }
}

impl Body {
    /// The body as `T`, which it must spell as one JSON object: an array
    /// (whose items serde would take as the fields in order) or a field
    /// named twice is refused, naming `what`.
    pub(super) fn object<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, ApiError> {
        match self.0.iter().find(|b| !b.is_ascii_whitespace()) {
            None => Err(empty_body()),
            Some(b'{') => serde_json::from_slice(&self.0).map_err(|e| {
                if e.is_data() {
                    ApiError::unprocessable("invalid_body", format!("{what}: {e}"))
                } else {
                    not_json(&e)
                }
            }),
            Some(_) => Err(ApiError::unprocessable(
                "invalid_body",
                format!("{what}: the body must be a JSON object"),
            )),
        }
    }

    pub(super) fn json(&self) -> Result<JsonValue, ApiError> {
        if self.0.iter().all(u8::is_ascii_whitespace) {
            return Err(empty_body());
        }
        serde_json::from_slice(&self.0).map_err(|e| not_json(&e))
    }
}

fn empty_body() -> ApiError {
    ApiError::bad_request("bad_json", "the request body is empty; send JSON")
}

fn not_json(e: &serde_json::Error) -> ApiError {
    ApiError::bad_request(
        "bad_json",
        format!("the request body is not valid JSON: {e}"),
    )
}

impl Params {
    pub(super) fn flag(&self) -> Result<FlagName, ApiError> {
        Ok(FlagName::new(self.text("flag")?)?)
    }

    pub(super) fn entity(&self, kind: EntityKind) -> Result<EntityRef, ApiError> {
        Ok(EntityRef::parse(kind, self.text("id")?)?)
    }

    pub(super) fn entity_id(&self) -> Result<EntityId, ApiError> {
        Ok(EntityId::new(self.text("entity_id")?)?)
    }
}

/// Reads `limit` from a query string: absent means the cached top-k.
pub(super) fn recent_limit(query: Option<&str>, default: usize) -> Result<usize, ApiError> {
    let mut limit = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "limit" {
            continue;
        }
        if limit.is_some() {
            return Err(ApiError::bad_request(
                "invalid_query",
                "limit is given more than once; give it once",
            ));
        }
        // Digits only: `+1` or `%31` are not how a number is written here.
        let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
        limit = match value.parse::<usize>() {
            Ok(n) if digits && (1..=MAX_RECENT_LIMIT).contains(&n) => Some(n),
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "limit must be a whole number from 1 to {MAX_RECENT_LIMIT}, not {value:?}"
                    ),
                ));
            }
        };
    }
    Ok(limit.unwrap_or(default))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use super::*;

    #[test]
    fn limits_parse_or_name_the_problem() {
        assert_eq!(recent_limit(None, 10), Ok(10));
        assert_eq!(recent_limit(Some("limit=3"), 10), Ok(3));
        assert_eq!(recent_limit(Some("x=1&limit=25"), 10), Ok(25));
        for bad in [
            "limit=0",
            "limit=-1",
            "limit=abc",
            "limit=",
            "limit=1001",
            "limit=+1",
            "limit=%31",
            "limit=3&limit=5",
        ] {
            let err = recent_limit(Some(bad), 10).unwrap_err();
            assert_eq!(err.code, "invalid_query", "{bad}");
            assert!(err.message.contains("limit"), "{bad}: {}", err.message);
        }
    }
}
