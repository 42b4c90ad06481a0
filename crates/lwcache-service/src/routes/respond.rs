//! Writing answers: the headers every read carries and the body of every
//! write.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
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
/// The header set when the cache failed and the source answered.
pub const X_CACHE_DEGRADED: &str = "x-cache-degraded";

pub(super) fn set_read_headers(headers: &mut HeaderMap, outcome: Outcome, version: u64) {
    let cache = match outcome {
        Outcome::Hit => "hit",
        Outcome::Stale => "stale",
        Outcome::Miss | Outcome::Fallback => "miss",
    };
    headers.insert(X_CACHE, HeaderValue::from_static(cache));
    if outcome == Outcome::Fallback {
        headers.insert(
            X_CACHE_DEGRADED,
            HeaderValue::from_static("cache-unavailable"),
        );
    }
    headers.insert(X_WORLD_VERSION, HeaderValue::from(version));
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
