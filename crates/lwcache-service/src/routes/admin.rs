//! The admin routes: drop a world's cache, evict one key. Both act on the
//! cache store only; the source of truth keeps everything.
//!
//! Both are safe for the consistency protocol as far as fills go: a fill
//! lands only under the lease its miss took before reading the source, and
//! dropping a world deletes its leases with its entries, so no fill read
//! before the drop lands after it (an evicted key's lease stays; a fill
//! under it read the source after the lease was taken, and every write's
//! step since deleted that lease). What deleting gives up is the entries'
//! and tombstones' versions: a write's own cache step still in flight when
//! its key is deleted may land after a newer write's step was deleted, as
//! after a Redis restart (`docs/consistency.md`), until the key's TTL.
//!
//! The routes are behind `auth::require_admin`; each is counted on
//! `admin_operations{operation, result}`.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use lwcache_core::CacheError;
use lwcache_domain::{CacheKey, KeyTarget};
use lwcache_otel::{AdminMetrics, AdminOperation};
use opentelemetry::metrics::Meter;
use serde_json::json;

use super::AppState;
use super::auth::AdminAccess;
use super::extract::Params;
use super::respond::Answer;
use crate::config::Secret;
use crate::error::ApiError;

/// Who may call the admin routes, and their counter.
pub struct AdminConfig {
    pub(super) access: AdminAccess,
    metrics: AdminMetrics,
}

impl AdminConfig {
    /// The admin routes take `admin_token` if set, else `auth_token`; with
    /// neither they answer only when `listen` is a loopback address.
    /// Operations are counted on `meter`.
    pub fn new(
        admin_token: Option<Secret>,
        auth_token: Option<Secret>,
        listen: SocketAddr,
        meter: &Meter,
    ) -> Self {
        Self {
            access: AdminAccess::new(admin_token, auth_token, listen),
            metrics: AdminMetrics::new(meter),
        }
    }
}

fn cache_failed(e: &CacheError) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "cache_unavailable",
        format!("the cache store failed: {e}"),
    )
}

/// `DELETE /admin/worlds/{world_id}/cache`: every key of the world, its
/// version and leases included.
pub(super) async fn drop_world(State(s): State<AppState>, p: Params) -> Answer {
    let world = p.world()?;
    let dropped = s.manager().drop_world(&world).await;
    let admin = &s.config().admin;
    admin
        .metrics
        .record(AdminOperation::DropWorld, dropped.is_ok());
    // Keys already deleted stay deleted (deleting is always safe); the rest
    // of the drop is owed: this instance makes it again, and reads go to
    // the source until it is whole.
    let keys = dropped.map_err(|e| {
        let mut answer = cache_failed(&e);
        answer
            .message
            .push_str("; the drop is owed: this instance makes it again, and reads go to the source until then");
        answer
    })?;
    tracing::info!(world = %world, keys, "admin: dropped the world's cache");
    Ok(Json(json!({ "world": world.as_str(), "keys": keys })).into_response())
}

/// `DELETE /admin/keys/{key}`: one entry, named as the store holds it
/// (`lw:world:{w}:character:hero:state`). The version key is not an entry.
pub(super) async fn evict_key(State(s): State<AppState>, p: Params) -> Answer {
    let text = p.text("key")?;
    let key = CacheKey::parse(text).map_err(|e| {
        ApiError::bad_request("invalid_key", format!("{text:?} is not a cache key: {e}"))
    })?;
    if *key.target() == KeyTarget::Version {
        return Err(ApiError::bad_request(
            "invalid_key",
            format!("{key} is the world's version, not an entry: drop the world instead"),
        ));
    }
    let removed = s.manager().store().remove(std::slice::from_ref(&key)).await;
    s.config()
        .admin
        .metrics
        .record(AdminOperation::EvictKey, removed.is_ok());
    removed.map_err(|e| cache_failed(&e))?;
    tracing::info!(key = %key, "admin: evicted a key");
    Ok(Json(json!({ "key": key.to_string() })).into_response())
}

/// `POST /admin/worlds/{world_id}/deactivate`: this instance stops
/// refreshing and warming the world; its cached keys stay and are read as
/// before. `POST /v1/worlds/{world_id}/activate` makes it active again.
pub(super) async fn deactivate_world(State(s): State<AppState>, p: Params) -> Answer {
    let world = p.world()?;
    s.manager().deactivate(&world);
    s.config()
        .admin
        .metrics
        .record(AdminOperation::DeactivateWorld, true);
    tracing::info!(world = %world, "admin: deactivated the world");
    let active = s.manager().is_active(&world);
    Ok(Json(json!({ "world": world.as_str(), "active": active })).into_response())
}
