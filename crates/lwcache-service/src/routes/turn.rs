//! `POST /v1/worlds/{world_id}/read`: a player's turn in one request. The
//! body names the snapshot, the flags, entities and timelines wanted; the
//! answer holds each item with its cache outcome and version, or the error
//! of that item alone (an unknown entity). The keys go to the cache manager
//! as one batch: the hits in one round trip to the cache store, the misses
//! in one source read.

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::IntoResponse;
use lwcache_core::{Fields, ItemRead};
use lwcache_domain::{
    CacheKey, CachedValue, EntityId, EntityKind, EntityRef, TimelineEvent, WorldError, WorldId,
};
use lwcache_json::{document_to_json, event_to_json, flags_to_json};
use serde::Deserialize;
use serde_json::{Map, Value as JsonValue, json};

use super::AppState;
use super::extract::{Body, Params};
use super::respond::{Answer, X_WORLD_VERSION};
use super::table::{MAX_RECENT_LIMIT, MAX_TURN_ITEMS};
use crate::error::ApiError;

/// The body of a turn read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TurnRequest {
    #[serde(default)]
    snapshot: bool,
    #[serde(default)]
    flags: bool,
    #[serde(default)]
    characters: Vec<String>,
    #[serde(default)]
    locations: Vec<String>,
    #[serde(default)]
    objects: Vec<String>,
    #[serde(default)]
    timelines: Vec<TimelineRequest>,
}

/// One timeline of a turn read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimelineRequest {
    entity_id: String,
    limit: Option<usize>,
}

/// Where an item of the batch goes in the answer.
enum Slot {
    Snapshot,
    Flags,
    Entity(EntityKind, String),
    Timeline(String, usize),
}

pub(super) async fn read_turn(State(s): State<AppState>, p: Params, body: Body) -> Answer {
    let world = p.world()?;
    let request: TurnRequest = body.object("a turn read")?;
    let top_k = s.manager().config().policy.timeline_top_k;
    let (keys, slots, long) = plan(&world, &request, top_k)?;

    let mut answer = Map::new();
    for group in ["characters", "locations", "objects", "timelines"] {
        answer.insert(group.to_owned(), JsonValue::Object(Map::new()));
    }
    let mut newest = 0u64;
    let items = s
        .manager()
        .read_many_shared(&world, &keys, Fields::Cacheable)
        .await?;
    for (slot, item) in slots.iter().zip(items) {
        place(&mut answer, slot, item, &mut newest)?;
    }
    // Longer than the cached top-k: read from the source, one by one.
    for (id, entity, limit) in long {
        let item = s
            .manager()
            .recent(&world, &entity, limit)
            .await
            .map(|r| r.map(|events| std::sync::Arc::new(CachedValue::Timeline(events))));
        place(&mut answer, &Slot::Timeline(id, limit), item, &mut newest)?;
    }
    answer.insert("version".to_owned(), json!(newest));
    let mut response = Json(JsonValue::Object(answer)).into_response();
    response
        .headers_mut()
        .insert(X_WORLD_VERSION, HeaderValue::from(newest));
    Ok(response)
}

/// An id named twice in one group: its answers would take one place.
fn twice(group: &str, id: &str) -> ApiError {
    ApiError::unprocessable(
        "invalid_body",
        format!("a turn read names {id:?} twice in {group}; name each item once"),
    )
}

/// The keys of a turn read, where each answer goes, and the timelines
/// longer than the cache keeps (read apart); every id checked first.
#[allow(clippy::type_complexity, reason = "three lists, built together")]
fn plan(
    world: &WorldId,
    request: &TurnRequest,
    top_k: usize,
) -> Result<(Vec<CacheKey>, Vec<Slot>, Vec<(String, EntityId, usize)>), ApiError> {
    let count = usize::from(request.snapshot)
        + usize::from(request.flags)
        + request.characters.len()
        + request.locations.len()
        + request.objects.len()
        + request.timelines.len();
    if count > MAX_TURN_ITEMS {
        return Err(ApiError::bad_request(
            "too_many_items",
            format!("the read names {count} items; at most {MAX_TURN_ITEMS} are allowed"),
        ));
    }
    if count == 0 {
        return Err(ApiError::unprocessable(
            "invalid_body",
            "a turn read names at least one item",
        ));
    }
    let (mut keys, mut slots, mut long) = (Vec::new(), Vec::new(), Vec::new());
    if request.snapshot {
        keys.push(CacheKey::state(world));
        slots.push(Slot::Snapshot);
    }
    if request.flags {
        keys.push(CacheKey::flags(world));
        slots.push(Slot::Flags);
    }
    for (kind, group, ids) in [
        (EntityKind::Character, "characters", &request.characters),
        (EntityKind::Location, "locations", &request.locations),
        (EntityKind::Object, "objects", &request.objects),
    ] {
        let mut named = HashSet::with_capacity(ids.len());
        for id in ids {
            if !named.insert(id.as_str()) {
                return Err(twice(group, id));
            }
            let entity = EntityRef::parse(kind, id)?;
            keys.push(CacheKey::entity(world, &entity));
            slots.push(Slot::Entity(kind, id.clone()));
        }
    }
    let mut named = HashSet::with_capacity(request.timelines.len());
    for t in &request.timelines {
        if !named.insert(t.entity_id.as_str()) {
            return Err(twice("timelines", &t.entity_id));
        }
        let entity = EntityId::new(t.entity_id.clone())?;
        let limit = t.limit.unwrap_or(top_k);
        if !(1..=MAX_RECENT_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_limit",
                format!(
                    "the limit of timeline {} is {limit}; it must be between 1 and {MAX_RECENT_LIMIT}",
                    t.entity_id
                ),
            ));
        }
        if limit > top_k {
            long.push((t.entity_id.clone(), entity, limit));
        } else {
            keys.push(CacheKey::timeline(world, &entity));
            slots.push(Slot::Timeline(t.entity_id.clone(), limit));
        }
    }
    Ok((keys, slots, long))
}

/// Puts one item's answer where it goes. An unknown world fails the whole
/// read: every item would say it.
fn place(
    answer: &mut Map<String, JsonValue>,
    slot: &Slot,
    item: ItemRead<std::sync::Arc<CachedValue>>,
    newest: &mut u64,
) -> Result<(), ApiError> {
    let body = match item {
        Ok(read) => {
            *newest = (*newest).max(read.version);
            let mut body = json!({ "cache": read.outcome.as_str(), "version": read.version });
            if let Some(stale) = read.staleness() {
                // Past its TTL, served because the source failed.
                body["stale"] = json!({
                    "reason": stale.reason.as_str(),
                    "age_ms": u64::try_from(stale.age.as_millis()).unwrap_or(u64::MAX),
                });
            }
            match (slot, read.value.as_ref()) {
                (Slot::Snapshot, CachedValue::Snapshot(d))
                | (Slot::Entity(..), CachedValue::Entity(d)) => {
                    body["value"] = document_to_json(d);
                }
                (Slot::Flags, CachedValue::Flags(f)) => body["value"] = flags_to_json(f),
                (Slot::Timeline(_, limit), CachedValue::Timeline(events)) => {
                    body["events"] = events_json(&events[..events.len().min(*limit)]);
                }
                _ => {
                    return Err(ApiError::from(lwcache_core::SourceError::Other(
                        "the source answered a key with a value of another kind".into(),
                    )));
                }
            }
            body
        }
        Err(e) => {
            if let Some(WorldError::UnknownWorld(_)) = e.rejection() {
                return Err(e.into());
            }
            ApiError::from(e).body()
        }
    };
    match slot {
        Slot::Snapshot => {
            answer.insert("snapshot".to_owned(), body);
        }
        Slot::Flags => {
            answer.insert("flags".to_owned(), body);
        }
        Slot::Entity(kind, id) => {
            let group = match kind {
                EntityKind::Character => "characters",
                EntityKind::Location => "locations",
                EntityKind::Object => "objects",
            };
            if let Some(JsonValue::Object(map)) = answer.get_mut(group) {
                map.insert(id.clone(), body);
            }
        }
        Slot::Timeline(id, _) => {
            if let Some(JsonValue::Object(map)) = answer.get_mut("timelines") {
                map.insert(id.clone(), body);
            }
        }
    }
    Ok(())
}

fn events_json(events: &[TimelineEvent]) -> JsonValue {
    JsonValue::Array(events.iter().map(event_to_json).collect())
}
