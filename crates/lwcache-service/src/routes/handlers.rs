//! The handlers: each reads its parameters, asks the cache manager, and
//! answers through `respond`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use lwcache_core::Fields;
use lwcache_domain::{CacheKey, CachedValue, EntityKind};
use lwcache_json::{document_from_json, event_to_json, value_from_json, value_to_json};
use serde_json::{Value as JsonValue, json};

use super::extract::{Body, Params, recent_limit};
use super::respond::{Answer, X_WORLD_VERSION, read_response, set_read_headers, written_response};
use super::{AppState, render};
use crate::error::ApiError;
use crate::json::event_from_json;
use crate::readiness::{Health, Readiness};

/// Reads `key` as a shared value (no copy of a near or memoized entry) and
/// answers the JSON text `body` gives for it, `None` for a value of
/// another kind than the route serves: the source's fault, said as such.
async fn shared_read(
    s: &AppState,
    key: CacheKey,
    body: impl FnOnce(&Arc<CachedValue>) -> Option<Result<Bytes, ApiError>>,
) -> Answer {
    let read = s.manager().read_shared(&key, Fields::Cacheable).await?;
    let Some(body) = body(&read.value) else {
        return Err(ApiError::from(lwcache_core::SourceError::Other(
            format!("the source answered {key} with a value of another kind").into(),
        )));
    };
    let mut response = render::json_response(body?);
    set_read_headers(response.headers_mut(), read.outcome, read.version);
    Ok(response)
}

/// The rendered body of a value of the kind `of_kind` accepts.
fn whole(
    of_kind: fn(&CachedValue) -> bool,
) -> impl FnOnce(&Arc<CachedValue>) -> Option<Result<Bytes, ApiError>> {
    move |value| of_kind(value).then(|| render::body(value))
}

pub(super) async fn get_state(State(s): State<AppState>, p: Params) -> Answer {
    let of_kind = |v: &CachedValue| matches!(v, CachedValue::Snapshot(_));
    shared_read(&s, CacheKey::state(&p.world()?), whole(of_kind)).await
}

pub(super) async fn put_state(State(s): State<AppState>, p: Params, body: Body) -> Answer {
    let world = p.world()?;
    let doc = document_from_json(&body.json()?)?;
    let written = s.manager().replace_snapshot(&world, doc).await?;
    Ok(written_response(&written))
}

pub(super) async fn get_flags(State(s): State<AppState>, p: Params) -> Answer {
    let of_kind = |v: &CachedValue| matches!(v, CachedValue::Flags(_));
    shared_read(&s, CacheKey::flags(&p.world()?), whole(of_kind)).await
}

pub(super) async fn get_flag(State(s): State<AppState>, p: Params) -> Answer {
    let world = p.world()?;
    let name = p.flag()?;
    let read = s.manager().flag(&world, &name).await?;
    match &read.value {
        Some(value) => Ok(read_response(&read, value_to_json(value))),
        None => {
            let mut response =
                ApiError::not_found("unknown_flag", format!("world {world} has no flag {name}"))
                    .into_response();
            set_read_headers(response.headers_mut(), read.outcome, read.version);
            Ok(response)
        }
    }
}

pub(super) async fn put_flag(State(s): State<AppState>, p: Params, body: Body) -> Answer {
    let world = p.world()?;
    let name = p.flag()?;
    let value = value_from_json(&body.json()?)?;
    let written = s.manager().set_flag(&world, name, value).await?;
    Ok(written_response(&written))
}

pub(super) async fn delete_flag(State(s): State<AppState>, p: Params) -> Answer {
    let world = p.world()?;
    let name = p.flag()?;
    let written = s.manager().clear_flag(&world, name).await?;
    Ok(written_response(&written))
}

pub(super) async fn get_entity(kind: EntityKind, State(s): State<AppState>, p: Params) -> Answer {
    let world = p.world()?;
    let entity = p.entity(kind)?;
    let of_kind = |v: &CachedValue| matches!(v, CachedValue::Entity(_));
    shared_read(&s, CacheKey::entity(&world, &entity), whole(of_kind)).await
}

pub(super) async fn put_entity(
    kind: EntityKind,
    State(s): State<AppState>,
    p: Params,
    body: Body,
) -> Answer {
    let world = p.world()?;
    let entity = p.entity(kind)?;
    let doc = document_from_json(&body.json()?)?;
    let written = s.manager().put_entity(&world, entity, doc).await?;
    Ok(written_response(&written))
}

pub(super) async fn delete_entity(
    kind: EntityKind,
    State(s): State<AppState>,
    p: Params,
) -> Answer {
    let world = p.world()?;
    let entity = p.entity(kind)?;
    let written = s.manager().delete_entity(&world, entity).await?;
    Ok(written_response(&written))
}

pub(super) async fn add_event(State(s): State<AppState>, p: Params, body: Body) -> Answer {
    let world = p.world()?;
    let entity = p.entity_id()?;
    let event = event_from_json(&body.json()?)?;
    let written = s
        .inner
        .manager
        .add_event(&world, entity, event.kind, event.data)
        .await?;
    Ok(written_response(&written))
}

pub(super) async fn get_recent(
    State(s): State<AppState>,
    p: Params,
    RawQuery(query): RawQuery,
) -> Answer {
    let world = p.world()?;
    let entity = p.entity_id()?;
    let top_k = s.manager().config().policy.timeline_top_k;
    let limit = recent_limit(query.as_deref(), top_k)?;
    if limit <= top_k {
        return shared_read(&s, CacheKey::timeline(&world, &entity), |v| match &**v {
            // The whole cached list, as every read of it answers it.
            CachedValue::Timeline(events) if events.len() <= limit => Some(render::body(v)),
            CachedValue::Timeline(events) => Some(render::events_body(&events[..limit])),
            _ => None,
        })
        .await;
    }
    // Longer than the cached top-k: the source answers.
    let read = s.manager().recent(&world, &entity, limit).await?;
    let events: Vec<JsonValue> = read.value.iter().map(event_to_json).collect();
    Ok(read_response(&read, JsonValue::Array(events)))
}

pub(super) async fn activate(State(s): State<AppState>, p: Params) -> Answer {
    let report = s.manager().activate(&p.world()?).await?;
    let mut response = Json(json!({
        "version": report.version,
        "keys": report.keys,
        "batches": report.batches,
        "skipped": report.skipped,
    }))
    .into_response();
    response
        .headers_mut()
        .insert(X_WORLD_VERSION, HeaderValue::from(report.version));
    Ok(response)
}

pub(super) async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        (s.config().metrics_text)(),
    )
        .into_response()
}

pub(super) async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// The service's state (`readiness.rs`): ready, degraded while reads go
/// to the source, unavailable when the source does not answer.
pub(super) async fn readyz(State(s): State<AppState>) -> Response {
    let (cache, source) = s.manager().health().await;
    // Read after the ping, which may have been the breaker's probe.
    let breaker = s.manager().breaker();
    let health = Health {
        cache,
        breaker,
        source,
        trouble: s.manager().in_trouble(),
    };
    let readiness = Readiness::of(&health);
    let mut body = readiness.body(
        &health,
        &s.config().cache.to_string(),
        &s.config().source.to_string(),
    );
    // Asked only of a cache that answered, so that /readyz stays quick.
    if let (Some(check), true) = (&s.config().eviction, health.cache.is_ok()) {
        body["cache"]["eviction"] = check.json().await;
    }
    (readiness.http_status(), Json(body)).into_response()
}

pub(super) async fn openapi() -> Response {
    Json(crate::openapi::document()).into_response()
}

pub(super) async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found("no_route", format!("no route for {method} {}", uri.path()))
}

pub(super) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}", uri.path()),
    )
}
