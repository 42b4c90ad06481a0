//! The service's error responses: a status and
//! `{ "error": { "code": "...", "message": "..." } }`, where `code` is a
//! stable name for the problem and `message` says which input caused it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lwcache_core::{Error, SourceError};
use lwcache_domain::{DocumentError, IdError, WorldError};

use lwcache_json::MappingError;

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// The HTTP status.
    pub(crate) status: StatusCode,
    /// A stable, machine-readable name of the problem.
    pub(crate) code: &'static str,
    /// What went wrong, naming the input.
    pub(crate) message: String,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with `code`.
    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 with `code`.
    pub(crate) fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 422 with `code`.
    pub(crate) fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// The JSON body.
    pub(crate) fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": { "code": self.code, "message": self.message } })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<IdError> for ApiError {
    fn from(e: IdError) -> Self {
        ApiError::bad_request("invalid_id", e.to_string())
    }
}

impl From<MappingError> for ApiError {
    fn from(e: MappingError) -> Self {
        ApiError::unprocessable("invalid_value", e.to_string())
    }
}

impl From<DocumentError> for ApiError {
    fn from(e: DocumentError) -> Self {
        ApiError::unprocessable("invalid_document", e.to_string())
    }
}

impl From<WorldError> for ApiError {
    fn from(e: WorldError) -> Self {
        let message = e.to_string();
        match e {
            WorldError::UnknownWorld(_) => ApiError::not_found("unknown_world", message),
            WorldError::UnknownEntity { .. } => ApiError::not_found("unknown_entity", message),
            WorldError::EntityExists { .. } => {
                ApiError::new(StatusCode::CONFLICT, "entity_exists", message)
            }
            WorldError::WorldExists(_) => {
                ApiError::new(StatusCode::CONFLICT, "world_exists", message)
            }
            WorldError::Document(d) => d.into(),
            WorldError::InvalidSeed { .. } => ApiError::unprocessable("invalid_seed", message),
        }
    }
}

impl From<SourceError> for ApiError {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Rejected(w) => w.into(),
            SourceError::Invalid(m) => ApiError::bad_request("invalid_request", m),
            // The source's own failures are not the caller's fault: 503 says
            // "try again", and the message names the source.
            SourceError::Unavailable(_) | SourceError::Timeout(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "source_unavailable",
                e.to_string(),
            ),
            other => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "source_error",
                other.to_string(),
            ),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Document(d) => d.into(),
            Error::Source(s) => s.into(),
            Error::Unreadable(key) => {
                ApiError::bad_request("invalid_request", format!("{key} is not a readable key"))
            }
            other => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "internal",
                other.to_string(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use std::time::Duration;

    use lwcache_domain::WorldId;

    use super::*;

    #[test]
    fn refusals_map_to_client_errors_and_failures_to_503() {
        let world = WorldId::new("w").unwrap();
        let cases: Vec<(ApiError, StatusCode, &str)> = vec![
            (
                Error::Source(WorldError::UnknownWorld(world.clone()).into()).into(),
                StatusCode::NOT_FOUND,
                "unknown_world",
            ),
            (
                WorldError::WorldExists(world).into(),
                StatusCode::CONFLICT,
                "world_exists",
            ),
            (
                Error::Document(DocumentError::NonFinite).into(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_document",
            ),
            (
                Error::Source(SourceError::Timeout(Duration::from_secs(1))).into(),
                StatusCode::SERVICE_UNAVAILABLE,
                "source_unavailable",
            ),
            (
                Error::Source(SourceError::Other("odd".into())).into(),
                StatusCode::SERVICE_UNAVAILABLE,
                "source_error",
            ),
        ];
        for (err, status, code) in cases {
            assert_eq!((err.status, err.code), (status, code), "{err:?}");
        }
    }
}
