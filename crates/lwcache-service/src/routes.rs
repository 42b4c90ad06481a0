//! The HTTP API: one table of endpoints ([`ENDPOINTS`]) from which the
//! router is built, the handlers, and the headers every read carries.
//!
//! - Reads answer the value as JSON with `x-cache: hit | miss | stale` and
//!   `x-world-version`. A read the cache could not serve because it failed
//!   answers `x-cache: miss` and `x-cache-degraded: cache-unavailable`.
//! - Writes answer `{ "version", "cache" }` with `x-world-version`.
//! - Errors answer `{ "error": { "code", "message" } }` (see [`ApiError`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{
    DefaultBodyLimit, FromRequest, FromRequestParts, Path, RawQuery, Request, State,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Json, Router};
use lwcache_core::{CacheStep, Fields, Outcome, Read, Written};
use lwcache_domain::{Change, EntityId, EntityKind, EntityRef, EventKind, FlagName, WorldId};
use serde_json::{Value as JsonValue, json};

use crate::backend::{CacheKind, Manager, SourceKind};
use crate::config::Secret;
use crate::error::ApiError;
use crate::json::{
    document_from_json, document_to_json, event_to_json, flags_to_json, value_from_json,
    value_to_json,
};

/// The header that says how a read was served.
pub const X_CACHE: &str = "x-cache";
/// The header that carries the world version a value was read at or
/// written as.
pub const X_WORLD_VERSION: &str = "x-world-version";
/// The header set when the cache failed and the source answered.
pub const X_CACHE_DEGRADED: &str = "x-cache-degraded";
/// The most events one `recent` read returns.
pub const MAX_RECENT_LIMIT: usize = 1000;

/// An HTTP method the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    /// GET
    Get,
    /// PUT
    Put,
    /// POST
    Post,
    /// DELETE
    Delete,
}

impl Verb {
    /// The method.
    pub fn method(self) -> Method {
        match self {
            Verb::Get => Method::GET,
            Verb::Put => Method::PUT,
            Verb::Post => Method::POST,
            Verb::Delete => Method::DELETE,
        }
    }

    /// The lower-case name, as OpenAPI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Put => "put",
            Verb::Post => "post",
            Verb::Delete => "delete",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Put => MethodFilter::PUT,
            Verb::Post => MethodFilter::POST,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

/// What an endpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Read the world snapshot.
    GetState,
    /// Replace the world snapshot, creating the world when absent.
    PutState,
    /// Read every flag.
    GetFlags,
    /// Read one flag.
    GetFlag,
    /// Set one flag.
    PutFlag,
    /// Clear one flag.
    DeleteFlag,
    /// Read an entity.
    GetEntity(EntityKind),
    /// Create or replace an entity.
    PutEntity(EntityKind),
    /// Delete an entity and its timeline.
    DeleteEntity(EntityKind),
    /// Append an event to an entity's timeline.
    AddEvent,
    /// Read an entity's newest events.
    GetRecent,
    /// Warm a world.
    Activate,
    /// The Prometheus text.
    Metrics,
    /// The process is up.
    Healthz,
    /// The backends answer.
    Readyz,
    /// The OpenAPI document.
    OpenApi,
}

/// One route: a method, a path template (`{name}` for parameters, as both
/// the router and OpenAPI write them) and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// The method.
    pub verb: Verb,
    /// The path template.
    pub path: &'static str,
    /// What it does.
    pub operation: Operation,
}

const fn ep(verb: Verb, path: &'static str, operation: Operation) -> Endpoint {
    Endpoint {
        verb,
        path,
        operation,
    }
}

use EntityKind::{Character, Location, Object};
use Operation as Op;
use Verb::{Delete, Get, Post, Put};

/// Every route the router serves; the router is built from this table and
/// nothing else.
pub const ENDPOINTS: &[Endpoint] = &[
    ep(Get, "/v1/worlds/{world_id}/state", Op::GetState),
    ep(Put, "/v1/worlds/{world_id}/state", Op::PutState),
    ep(Get, "/v1/worlds/{world_id}/flags", Op::GetFlags),
    ep(Get, "/v1/worlds/{world_id}/flags/{flag}", Op::GetFlag),
    ep(Put, "/v1/worlds/{world_id}/flags/{flag}", Op::PutFlag),
    ep(Delete, "/v1/worlds/{world_id}/flags/{flag}", Op::DeleteFlag),
    ep(
        Get,
        "/v1/worlds/{world_id}/characters/{id}",
        Op::GetEntity(Character),
    ),
    ep(
        Put,
        "/v1/worlds/{world_id}/characters/{id}",
        Op::PutEntity(Character),
    ),
    ep(
        Delete,
        "/v1/worlds/{world_id}/characters/{id}",
        Op::DeleteEntity(Character),
    ),
    ep(
        Get,
        "/v1/worlds/{world_id}/locations/{id}",
        Op::GetEntity(Location),
    ),
    ep(
        Put,
        "/v1/worlds/{world_id}/locations/{id}",
        Op::PutEntity(Location),
    ),
    ep(
        Delete,
        "/v1/worlds/{world_id}/locations/{id}",
        Op::DeleteEntity(Location),
    ),
    ep(
        Get,
        "/v1/worlds/{world_id}/objects/{id}",
        Op::GetEntity(Object),
    ),
    ep(
        Put,
        "/v1/worlds/{world_id}/objects/{id}",
        Op::PutEntity(Object),
    ),
    ep(
        Delete,
        "/v1/worlds/{world_id}/objects/{id}",
        Op::DeleteEntity(Object),
    ),
    ep(
        Post,
        "/v1/worlds/{world_id}/timeline/{entity_id}/events",
        Op::AddEvent,
    ),
    ep(
        Get,
        "/v1/worlds/{world_id}/timeline/{entity_id}/recent",
        Op::GetRecent,
    ),
    ep(Post, "/v1/worlds/{world_id}/activate", Op::Activate),
    ep(Get, "/metrics", Op::Metrics),
    ep(Get, "/healthz", Op::Healthz),
    ep(Get, "/readyz", Op::Readyz),
    ep(Get, "/openapi.json", Op::OpenApi),
];

/// What the router needs besides the manager.
pub struct ApiConfig {
    /// The bearer token every `/v1` route requires, if any.
    pub auth_token: Option<Secret>,
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
    /// The cache store in use, for `/readyz`.
    pub cache: CacheKind,
    /// The repository in use, for `/readyz`.
    pub source: SourceKind,
    /// The body of `GET /metrics`.
    pub metrics_text: Box<dyn Fn() -> String + Send + Sync>,
}

/// The handlers' shared state.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    manager: Manager,
    config: ApiConfig,
}

/// The router of every endpoint in [`ENDPOINTS`], with JSON answers for
/// unknown paths (404) and methods (405), the body limit and, when a token
/// is configured, bearer authentication on `/v1`.
pub fn router(manager: Manager, config: ApiConfig) -> Router {
    let max_body_bytes = config.max_body_bytes;
    let auth = config.auth_token.is_some();
    let state = AppState {
        inner: Arc::new(Shared { manager, config }),
    };
    let mut v1: Router<AppState> = Router::new();
    let mut open: Router<AppState> = Router::new();
    for endpoint in ENDPOINTS {
        let route = method_router(endpoint);
        if endpoint.path.starts_with("/v1/") {
            v1 = v1.route(endpoint.path, route);
        } else {
            open = open.route(endpoint.path, route);
        }
    }
    if auth {
        v1 = v1.route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    }
    v1.merge(open)
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

fn method_router(endpoint: &Endpoint) -> MethodRouter<AppState> {
    let f = endpoint.verb.filter();
    match endpoint.operation {
        Op::GetState => on(f, get_state),
        Op::PutState => on(f, put_state),
        Op::GetFlags => on(f, get_flags),
        Op::GetFlag => on(f, get_flag),
        Op::PutFlag => on(f, put_flag),
        Op::DeleteFlag => on(f, delete_flag),
        Op::GetEntity(kind) => on(f, move |s: State<AppState>, p: Params| {
            get_entity(kind, s, p)
        }),
        Op::PutEntity(kind) => on(f, move |s: State<AppState>, p: Params, b: Body| {
            put_entity(kind, s, p, b)
        }),
        Op::DeleteEntity(kind) => on(f, move |s: State<AppState>, p: Params| {
            delete_entity(kind, s, p)
        }),
        Op::AddEvent => on(f, add_event),
        Op::GetRecent => on(f, get_recent),
        Op::Activate => on(f, activate),
        Op::Metrics => on(f, metrics),
        Op::Healthz => on(f, healthz),
        Op::Readyz => on(f, readyz),
        Op::OpenApi => on(f, openapi),
    }
}

// ---- extractors -------------------------------------------------------------

/// The path parameters, as text; each handler validates the ones it uses.
struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<HashMap<String, String>>::from_request_parts(parts, state).await {
            Ok(Path(map)) => Ok(Params(map)),
            Err(e) => Err(ApiError::bad_request("invalid_path", e.body_text())),
        }
    }
}

impl Params {
    fn text(&self, name: &str) -> Result<&str, ApiError> {
        self.0.get(name).map(String::as_str).ok_or_else(|| {
            ApiError::bad_request("invalid_path", format!("missing path parameter {name}"))
        })
    }

    fn world(&self) -> Result<WorldId, ApiError> {
        Ok(WorldId::new(self.text("world_id")?)?)
    }
}

/// The request body, bounded by the configured limit.
struct Body(Bytes);

impl FromRequest<AppState> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Body(bytes)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "the request body is larger than the limit of {} bytes",
                    state.inner.config.max_body_bytes
                ),
            )),
            Err(e) => Err(ApiError::bad_request("unreadable_body", e.body_text())),
        }
    }
}

impl Body {
    fn json(&self) -> Result<JsonValue, ApiError> {
        if self.0.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "bad_json",
                "the request body is empty; send JSON",
            ));
        }
        serde_json::from_slice(&self.0).map_err(|e| {
            ApiError::bad_request(
                "bad_json",
                format!("the request body is not valid JSON: {e}"),
            )
        })
    }
}

// ---- responses --------------------------------------------------------------

fn set_read_headers(headers: &mut HeaderMap, outcome: Outcome, version: u64) {
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

fn read_response<T>(read: &Read<T>, body: JsonValue) -> Response {
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

fn written_response(written: &Written) -> Response {
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
    if let Change::EventAdded { event } = &written.committed.change {
        body["seq"] = json!(event.seq);
    }
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        X_WORLD_VERSION,
        HeaderValue::from(written.committed.version),
    );
    response
}

type Answer = Result<Response, ApiError>;

// ---- handlers ---------------------------------------------------------------

async fn get_state(State(s): State<AppState>, p: Params) -> Answer {
    let read = s.inner.manager.world_state(&p.world()?).await?;
    Ok(read_response(&read, document_to_json(&read.value)))
}

async fn put_state(State(s): State<AppState>, p: Params, body: Body) -> Answer {
    let world = p.world()?;
    let doc = document_from_json(&body.json()?)?;
    let written = s.inner.manager.replace_snapshot(&world, doc).await?;
    Ok(written_response(&written))
}

async fn get_flags(State(s): State<AppState>, p: Params) -> Answer {
    let read = s.inner.manager.flags(&p.world()?).await?;
    Ok(read_response(&read, flags_to_json(&read.value)))
}

fn flag_name(p: &Params) -> Result<FlagName, ApiError> {
    Ok(FlagName::new(p.text("flag")?)?)
}

async fn get_flag(State(s): State<AppState>, p: Params) -> Answer {
    let world = p.world()?;
    let name = flag_name(&p)?;
    let read = s.inner.manager.flag(&world, &name).await?;
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

async fn put_flag(State(s): State<AppState>, p: Params, body: Body) -> Answer {
    let world = p.world()?;
    let name = flag_name(&p)?;
    let value = value_from_json(&body.json()?)?;
    let written = s.inner.manager.set_flag(&world, name, value).await?;
    Ok(written_response(&written))
}

async fn delete_flag(State(s): State<AppState>, p: Params) -> Answer {
    let world = p.world()?;
    let name = flag_name(&p)?;
    let written = s.inner.manager.clear_flag(&world, name).await?;
    Ok(written_response(&written))
}

fn entity_ref(kind: EntityKind, p: &Params) -> Result<EntityRef, ApiError> {
    Ok(EntityRef::parse(kind, p.text("id")?)?)
}

async fn get_entity(kind: EntityKind, State(s): State<AppState>, p: Params) -> Answer {
    let world = p.world()?;
    let entity = entity_ref(kind, &p)?;
    let read = s
        .inner
        .manager
        .entity(&world, &entity, Fields::Cacheable)
        .await?;
    Ok(read_response(&read, document_to_json(&read.value)))
}

async fn put_entity(kind: EntityKind, State(s): State<AppState>, p: Params, body: Body) -> Answer {
    let world = p.world()?;
    let entity = entity_ref(kind, &p)?;
    let doc = document_from_json(&body.json()?)?;
    let written = s.inner.manager.put_entity(&world, entity, doc).await?;
    Ok(written_response(&written))
}

async fn delete_entity(kind: EntityKind, State(s): State<AppState>, p: Params) -> Answer {
    let world = p.world()?;
    let entity = entity_ref(kind, &p)?;
    let written = s.inner.manager.delete_entity(&world, entity).await?;
    Ok(written_response(&written))
}

fn entity_id(p: &Params) -> Result<EntityId, ApiError> {
    Ok(EntityId::new(p.text("entity_id")?)?)
}

async fn add_event(State(s): State<AppState>, p: Params, body: Body) -> Answer {
    let world = p.world()?;
    let entity = entity_id(&p)?;
    let json = body.json()?;
    let JsonValue::Object(fields) = &json else {
        return Err(ApiError::unprocessable(
            "invalid_body",
            "an event is a JSON object: {\"kind\": \"...\", \"data\": {...}}",
        ));
    };
    if let Some(unknown) = fields.keys().find(|k| *k != "kind" && *k != "data") {
        return Err(ApiError::unprocessable(
            "invalid_body",
            format!("an event has the fields kind and data, not {unknown:?}"),
        ));
    }
    let kind = match fields.get("kind") {
        Some(JsonValue::String(k)) => EventKind::new(k.clone())
            .map_err(|e| ApiError::unprocessable("invalid_event_kind", e.to_string()))?,
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid_body",
                "the event's kind must be a string",
            ));
        }
        None => {
            return Err(ApiError::unprocessable(
                "invalid_body",
                "the event has no kind",
            ));
        }
    };
    let data = match fields.get("data") {
        None | Some(JsonValue::Null) => lwcache_domain::Document::new(),
        Some(d) => document_from_json(d)?,
    };
    let written = s
        .inner
        .manager
        .add_event(&world, entity, kind, data)
        .await?;
    Ok(written_response(&written))
}

/// Reads `limit` from a query string: absent means the cached top-k.
fn recent_limit(query: Option<&str>, default: usize) -> Result<usize, ApiError> {
    let mut limit = default;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "limit" {
            continue;
        }
        limit = match value.parse::<usize>() {
            Ok(n) if (1..=MAX_RECENT_LIMIT).contains(&n) => n,
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
    Ok(limit)
}

async fn get_recent(State(s): State<AppState>, p: Params, RawQuery(query): RawQuery) -> Answer {
    let world = p.world()?;
    let entity = entity_id(&p)?;
    let top_k = s.inner.manager.config().policy.timeline_top_k;
    let limit = recent_limit(query.as_deref(), top_k)?;
    let read = s.inner.manager.recent(&world, &entity, limit).await?;
    let events: Vec<JsonValue> = read.value.iter().map(event_to_json).collect();
    Ok(read_response(&read, JsonValue::Array(events)))
}

async fn activate(State(s): State<AppState>, p: Params) -> Answer {
    let report = s.inner.manager.activate(&p.world()?).await?;
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

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        (s.inner.config.metrics_text)(),
    )
        .into_response()
}

async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// Ready when the source answers; a cache that does not answer makes the
/// service degraded (reads go to the source) but still ready.
async fn readyz(State(s): State<AppState>) -> Response {
    let (cache, source) = s.inner.manager.health().await;
    let part = |backend: String, result: Result<(), String>| match result {
        Ok(()) => json!({ "backend": backend, "ok": true }),
        Err(e) => json!({ "backend": backend, "ok": false, "error": e }),
    };
    let (status, word) = match (&cache, &source) {
        (_, Err(_)) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        (Err(_), Ok(())) => (StatusCode::OK, "degraded"),
        (Ok(()), Ok(())) => (StatusCode::OK, "ready"),
    };
    let body = json!({
        "status": word,
        "cache": part(s.inner.config.cache.to_string(), cache.map_err(|e| e.to_string())),
        "source": part(s.inner.config.source.to_string(), source.map_err(|e| e.to_string())),
    });
    (status, Json(body)).into_response()
}

async fn openapi() -> Response {
    Json(crate::openapi::document()).into_response()
}

async fn no_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found("no_route", format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}", uri.path()),
    )
}

/// Compares in time that depends on the lengths only, not on where the
/// first difference is.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(token) = &s.inner.config.auth_token {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or(""));
        let problem = match presented {
            None => Some("this route needs an Authorization: Bearer <token> header"),
            Some(value) => match value.strip_prefix("Bearer ") {
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
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn limits_parse_or_name_the_problem() {
        assert_eq!(recent_limit(None, 10), Ok(10));
        assert_eq!(recent_limit(Some("limit=3"), 10), Ok(3));
        assert_eq!(recent_limit(Some("x=1&limit=25"), 10), Ok(25));
        for bad in ["limit=0", "limit=-1", "limit=abc", "limit=", "limit=1001"] {
            let err = recent_limit(Some(bad), 10).unwrap_err();
            assert_eq!(err.code, "invalid_query", "{bad}");
            assert!(err.message.contains("limit"), "{bad}: {}", err.message);
        }
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }

    #[test]
    fn the_table_has_no_duplicate_routes() {
        let pairs: BTreeSet<(Verb, &str)> = ENDPOINTS.iter().map(|e| (e.verb, e.path)).collect();
        assert_eq!(pairs.len(), ENDPOINTS.len());
    }
}
