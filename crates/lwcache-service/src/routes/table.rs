//! The endpoint table: every route as data, the one list the router is
//! built from and the OpenAPI document is checked against.

use axum::http::Method;
use axum::routing::MethodFilter;
use lwcache_domain::EntityKind;

/// The most events one `recent` read returns.
pub const MAX_RECENT_LIMIT: usize = 1000;

/// The most items one turn read names.
pub const MAX_TURN_ITEMS: usize = 256;

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

    pub(super) fn filter(self) -> MethodFilter {
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
    /// Read a turn's keys at once.
    ReadTurn,
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
    /// Delete every cached key of a world (admin).
    DropWorld,
    /// Delete one cached key (admin).
    EvictKey,
}

impl Operation {
    /// Whether the route is an admin route, behind `auth::require_admin`.
    pub fn is_admin(self) -> bool {
        matches!(self, Operation::DropWorld | Operation::EvictKey)
    }
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
    ep(Post, "/v1/worlds/{world_id}/read", Op::ReadTurn),
    ep(Post, "/v1/worlds/{world_id}/activate", Op::Activate),
    ep(Get, "/metrics", Op::Metrics),
    ep(Get, "/healthz", Op::Healthz),
    ep(Get, "/readyz", Op::Readyz),
    ep(Get, "/openapi.json", Op::OpenApi),
    ep(Delete, "/admin/worlds/{world_id}/cache", Op::DropWorld),
    ep(Delete, "/admin/keys/{key}", Op::EvictKey),
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_table_has_no_duplicate_routes() {
        let pairs: BTreeSet<(Verb, &str)> = ENDPOINTS.iter().map(|e| (e.verb, e.path)).collect();
        assert_eq!(pairs.len(), ENDPOINTS.len());
    }

    #[test]
    fn admin_routes_are_exactly_those_under_admin() {
        for e in ENDPOINTS {
            assert_eq!(
                e.operation.is_admin(),
                e.path.starts_with("/admin/"),
                "{e:?}"
            );
        }
    }
}
