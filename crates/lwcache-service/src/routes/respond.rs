//! Writing answers: the headers every read carries and the body of every
//! write.

use axum::Json;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lwcache_core::{CacheStep, Outcome, Read, Written};
use lwcache_domain::Change;
use serde_json::{Value as JsonValue, json};

use crate::error::ApiError;

/// The header that says how a read was served.
pub const X_CACHE: &str = "x-cache";
/// The header that carries the world version a value was read at or
/// written as.
pub const X_WORLD_VERSION: &str = "x-world-version";
/// Set to `near` when the near cache answered (no round trip to the store).
pub const X_CACHE_TIER: &str = "x-cache-tier";
/// The header set when the cache failed and the source answered.
pub const X_CACHE_DEGRADED: &str = "x-cache-degraded";
/// Why a read was served past its TTL (with `x-cache: stale`): how the
/// source failed (`source-unavailable`, `source-timeout`, `source-error`).
pub const X_CACHE_STALE_REASON: &str = "x-cache-stale-reason";
/// A fail-safe answer's age in milliseconds (the standard `Age` header
/// carries it in whole seconds).
pub const X_CACHE_AGE_MS: &str = "x-cache-age-ms";

// The same names, parsed once: every read sets two of them.
const CACHE: HeaderName = HeaderName::from_static(X_CACHE);
const WORLD_VERSION: HeaderName = HeaderName::from_static(X_WORLD_VERSION);
const CACHE_TIER: HeaderName = HeaderName::from_static(X_CACHE_TIER);
const CACHE_DEGRADED: HeaderName = HeaderName::from_static(X_CACHE_DEGRADED);
const CACHE_STALE_REASON: HeaderName = HeaderName::from_static(X_CACHE_STALE_REASON);
const CACHE_AGE_MS: HeaderName = HeaderName::from_static(X_CACHE_AGE_MS);

pub(super) fn set_read_headers(headers: &mut HeaderMap, outcome: Outcome, version: u64) {
    let cache = match outcome {
        // A hit either way; `x-cache-tier` says which tier answered.
        Outcome::Hit | Outcome::NearHit => "hit",
        Outcome::Stale | Outcome::FailSafe(_) => "stale",
        Outcome::Miss | Outcome::Fallback => "miss",
    };
    headers.insert(CACHE, HeaderValue::from_static(cache));
    if outcome == Outcome::NearHit {
        headers.insert(CACHE_TIER, HeaderValue::from_static("near"));
    }
    if outcome == Outcome::Fallback {
        headers.insert(
            CACHE_DEGRADED,
            HeaderValue::from_static("cache-unavailable"),
        );
    }
    if let Outcome::FailSafe(staleness) = outcome {
        headers.insert(
            CACHE_STALE_REASON,
            HeaderValue::from_static(staleness.reason.as_str()),
        );
        headers.insert(
            axum::http::header::AGE,
            HeaderValue::from(staleness.age.as_secs()),
        );
        let ms = u64::try_from(staleness.age.as_millis()).unwrap_or(u64::MAX);
        headers.insert(CACHE_AGE_MS, HeaderValue::from(ms));
    }
    headers.insert(WORLD_VERSION, HeaderValue::from(version));
}

pub(super) fn read_response<T>(read: &Read<T>, body: JsonValue) -> Response {
    let mut response = Json(body).into_response();
    set_read_headers(response.headers_mut(), read.outcome, read.version);
    response
}

fn step_name(step: CacheStep) -> &'static str {
    match step {
        CacheStep::Applied => "applied",
        CacheStep::Superseded => "superseded",
        CacheStep::Deferred => "deferred",
        CacheStep::Failed => "failed",
    }
}

pub(super) fn written_response(written: &Written) -> Response {
    let status = match &written.committed.change {
        Change::SnapshotReplaced {
            created_world: true,
            ..
        }
        | Change::EntityCreated { .. }
        | Change::EventAdded { .. } => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    let mut body = json!({
        "version": written.committed.version,
        "cache": step_name(written.cache),
    });
    if let Change::EventAdded { event, .. } = &written.committed.change {
        body["seq"] = json!(event.seq);
    }
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        X_WORLD_VERSION,
        HeaderValue::from(written.committed.version),
    );
    response
}

pub(super) type Answer = Result<Response, ApiError>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use lwcache_core::{SourceFailure, Staleness};

    use super::*;

    #[test]
    fn fail_safe_answers_say_stale_why_and_how_old() {
        let mut h = HeaderMap::new();
        let staleness = Staleness {
            age: Duration::from_millis(61_250),
            reason: SourceFailure::Timeout,
        };
        set_read_headers(&mut h, Outcome::FailSafe(staleness), 7);
        assert_eq!(h[X_CACHE], "stale");
        assert_eq!(h[X_CACHE_STALE_REASON], "source-timeout");
        assert_eq!(h[axum::http::header::AGE], "61");
        assert_eq!(h[X_CACHE_AGE_MS], "61250");
        assert_eq!(h[X_WORLD_VERSION], "7");

        let mut h = HeaderMap::new();
        set_read_headers(&mut h, Outcome::Hit, 7);
        assert_eq!(h[X_CACHE], "hit");
        for absent in [X_CACHE_STALE_REASON, X_CACHE_AGE_MS, "age"] {
            assert!(!h.contains_key(absent), "{absent} on a hit");
        }
    }
}
