//! The HTTP API: one table of endpoints ([`ENDPOINTS`]) from which the
//! router is built, the handlers, and the headers every read carries.
//!
//! - Reads answer the value as JSON with `x-cache: hit | miss | stale` and
//!   `x-world-version`. A read the cache could not serve because it failed
//!   answers `x-cache: miss` and `x-cache-degraded: cache-unavailable`.
//! - Writes answer `{ "version", "cache" }` with `x-world-version`.
//! - Errors answer `{ "error": { "code", "message" } }` (see `ApiError`).
//!
//! `table` holds the endpoints as data, `extract` reads requests,
//! `respond` writes answers, `handlers` does the work between them (`turn`
//! for the batched turn read) and `auth` checks the bearer token.

mod admin;
mod auth;
mod extract;
mod handlers;
mod render;
mod respond;
pub(crate) mod table;
mod turn;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::middleware;
use axum::routing::{MethodRouter, on};

use crate::backend::{CacheKind, Manager, SourceKind};
use crate::config::Secret;
pub use admin::AdminConfig;
use extract::{Body, Params};
pub use respond::{
    X_CACHE, X_CACHE_AGE_MS, X_CACHE_DEGRADED, X_CACHE_STALE_REASON, X_CACHE_TIER, X_WORLD_VERSION,
};
pub use table::{ENDPOINTS, Endpoint, MAX_RECENT_LIMIT, MAX_TURN_ITEMS, Operation, Verb};

use Operation as Op;

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
    /// Redis's eviction check, for `/readyz`'s `cache.eviction`.
    pub eviction: Option<crate::readiness::EvictionCheck>,
    /// Who may call the admin routes, and their counter.
    pub admin: AdminConfig,
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

impl AppState {
    fn manager(&self) -> &Manager {
        &self.inner.manager
    }

    fn config(&self) -> &ApiConfig {
        &self.inner.config
    }
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
        let mut route = method_router(endpoint);
        if endpoint.operation.is_admin() {
            let admin = middleware::from_fn_with_state(state.clone(), auth::require_admin);
            route = route.route_layer(admin);
        }
        if endpoint.path.starts_with("/v1/") {
            v1 = v1.route(endpoint.path, route);
        } else {
            open = open.route(endpoint.path, route);
        }
    }
    if auth {
        v1 = v1.route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    }
    v1.merge(open)
        .fallback(handlers::no_route)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

fn method_router(endpoint: &Endpoint) -> MethodRouter<AppState> {
    let f = endpoint.verb.filter();
    match endpoint.operation {
        Op::GetState => on(f, handlers::get_state),
        Op::PutState => on(f, handlers::put_state),
        Op::GetFlags => on(f, handlers::get_flags),
        Op::GetFlag => on(f, handlers::get_flag),
        Op::PutFlag => on(f, handlers::put_flag),
        Op::DeleteFlag => on(f, handlers::delete_flag),
        Op::GetEntity(kind) => on(f, move |s: State<AppState>, p: Params| {
            handlers::get_entity(kind, s, p)
        }),
        Op::PutEntity(kind) => on(f, move |s: State<AppState>, p: Params, b: Body| {
            handlers::put_entity(kind, s, p, b)
        }),
        Op::DeleteEntity(kind) => on(f, move |s: State<AppState>, p: Params| {
            handlers::delete_entity(kind, s, p)
        }),
        Op::AddEvent => on(f, handlers::add_event),
        Op::GetRecent => on(f, handlers::get_recent),
        Op::ReadTurn => on(f, turn::read_turn),
        Op::Activate => on(f, handlers::activate),
        Op::Metrics => on(f, handlers::metrics),
        Op::Healthz => on(f, handlers::healthz),
        Op::Readyz => on(f, handlers::readyz),
        Op::OpenApi => on(f, handlers::openapi),
        Op::DropWorld => on(f, admin::drop_world),
        Op::EvictKey => on(f, admin::evict_key),
        Op::DeactivateWorld => on(f, admin::deactivate_world),
    }
}
