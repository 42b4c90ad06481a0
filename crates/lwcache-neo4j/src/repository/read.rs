//! Reads: one statement each, which projects the world's version before the
//! data, so every answer carries the version it was read at; and the
//! decoding of what those statements return.

use std::collections::{BTreeMap, HashMap};

use lwcache_core::ports::{SourceError, check_keys};
use lwcache_domain::{
    CacheKey, CachedValue, EntityId, EntityRef, EventKind, FlagName, Flags, KeyTarget,
    TimelineEvent, Versioned, WorldError, WorldId, WorldImage,
};
use neo4rs::{Query, Row, query};
use serde::Deserialize;

use super::{Neo4jRepository, corrupt_err, get, get_version, parse_kind};
use crate::cypher;
use crate::error::Neo4jError;
use crate::json;

impl Neo4jRepository {
    /// Runs a read bounded by the call timeout.
    async fn read_rows(&self, q: Query) -> Result<Vec<Row>, SourceError> {
        let limit = self.config.query_timeout();
        Ok(self.bounded(limit, self.rows(q)).await?)
    }

    pub(super) async fn read_version(&self, world: &WorldId) -> Result<u64, SourceError> {
        let rows = self
            .read_rows(query(cypher::VERSION).param("w", world.as_str()))
            .await?;
        match rows.first() {
            Some(row) => Ok(get_version(row)?),
            None => Err(WorldError::UnknownWorld(world.clone()).into()),
        }
    }

    pub(super) async fn read_key(
        &self,
        key: &CacheKey,
        limit: usize,
    ) -> Result<Versioned<CachedValue>, SourceError> {
        let world = key.world();
        let w = world.as_str();
        let q = match key.target() {
            KeyTarget::State => query(cypher::READ_SNAPSHOT).param("w", w),
            KeyTarget::Flags => query(cypher::READ_FLAGS).param("w", w),
            KeyTarget::Entity(e) => query(cypher::READ_ENTITY)
                .param("w", w)
                .param("id", e.id_str()),
            KeyTarget::Timeline(e) => query(cypher::RECENT)
                .param("w", w)
                .param("id", e.as_str())
                .param("k", i64::try_from(limit).unwrap_or(i64::MAX)),
            KeyTarget::Version => {
                return Err(SourceError::Invalid(format!("{key} is not a readable key")));
            }
        };
        let rows = self.read_rows(q).await?;
        let Some(row) = rows.first() else {
            return Err(WorldError::UnknownWorld(world.clone()).into());
        };
        let version = get_version(row)?;
        let value = match key.target() {
            KeyTarget::State => {
                CachedValue::Snapshot(json::decode(&get::<String>(row, "snapshot")?)?)
            }
            KeyTarget::Flags => CachedValue::Flags(flags_of(Some(row))?),
            KeyTarget::Entity(e) => {
                let kind: Option<String> = get(row, "kind")?;
                match kind.as_deref().map(parse_kind).transpose()? {
                    Some(kind) if kind == e.kind() => {
                        CachedValue::Entity(json::decode(&get::<String>(row, "state")?)?)
                    }
                    _ => {
                        return Err(WorldError::UnknownEntity {
                            world: world.clone(),
                            entity: e.to_string(),
                        }
                        .into());
                    }
                }
            }
            KeyTarget::Timeline(e) => {
                if !get::<bool>(row, "found")? {
                    return Err(WorldError::UnknownEntity {
                        world: world.clone(),
                        entity: format!("entity {e}"),
                    }
                    .into());
                }
                CachedValue::Timeline(events_of(e, get(row, "events")?)?)
            }
            KeyTarget::Version => unreachable!("refused above"),
        };
        Ok(Versioned::new(version, value))
    }

    /// Many keys in one statement ([`cypher::READ_MANY`]), answered in
    /// the order asked.
    pub(super) async fn read_keys(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
        limit: usize,
    ) -> Result<Versioned<Vec<Result<CachedValue, WorldError>>>, SourceError> {
        check_keys(world, keys).map_err(|e| SourceError::Invalid(e.to_string()))?;
        let (mut state, mut flags) = (false, false);
        let (mut entities, mut timelines) = (Vec::new(), Vec::new());
        for key in keys {
            match key.target() {
                KeyTarget::State => state = true,
                KeyTarget::Flags => flags = true,
                KeyTarget::Entity(e) => entities.push(e.id_str().to_owned()),
                KeyTarget::Timeline(e) => timelines.push(e.as_str().to_owned()),
                KeyTarget::Version => unreachable!("refused by check_keys"),
            }
        }
        let q = query(cypher::READ_MANY)
            .param("w", world.as_str())
            .param("state", state)
            .param("flags", flags)
            .param("entities", entities)
            .param("timelines", timelines)
            .param("k", i64::try_from(limit).unwrap_or(i64::MAX));
        let rows = self.read_rows(q).await?;
        let Some(row) = rows.first() else {
            return Err(WorldError::UnknownWorld(world.clone()).into());
        };
        let version = get_version(row)?;
        let snapshot = match get::<Option<String>>(row, "snapshot")? {
            Some(s) => Some(json::decode(&s)?),
            None => None,
        };
        let flags = if flags {
            Some(flags_of(Some(row))?)
        } else {
            None
        };
        let found: HashMap<String, StateRow> = get::<Vec<StateRow>>(row, "entities")?
            .into_iter()
            .map(|e| (e.id.clone(), e))
            .collect();
        let recent: HashMap<String, Vec<EventRow>> = get::<Vec<TimelineRow>>(row, "timelines")?
            .into_iter()
            .map(|t| (t.id, t.events))
            .collect();
        let items = keys
            .iter()
            .map(|key| {
                let unknown = |entity: String| WorldError::UnknownEntity {
                    world: world.clone(),
                    entity,
                };
                Ok(match key.target() {
                    KeyTarget::State => match &snapshot {
                        Some(s) => Ok(CachedValue::Snapshot(s.clone())),
                        None => return Err(corrupt_err("no snapshot in the answer".to_owned())),
                    },
                    KeyTarget::Flags => match &flags {
                        Some(f) => Ok(CachedValue::Flags(f.clone())),
                        None => return Err(corrupt_err("no flags in the answer".to_owned())),
                    },
                    KeyTarget::Entity(e) => match found.get(e.id_str()) {
                        Some(row) if parse_kind(&row.kind)? == e.kind() => {
                            Ok(CachedValue::Entity(json::decode(&row.state)?))
                        }
                        _ => Err(unknown(e.to_string())),
                    },
                    KeyTarget::Timeline(e) => match recent.get(e.as_str()) {
                        Some(events) => Ok(CachedValue::Timeline(events_of(e, events.clone())?)),
                        None => Err(unknown(format!("entity {e}"))),
                    },
                    KeyTarget::Version => unreachable!("refused by check_keys"),
                })
            })
            .collect::<Result<Vec<_>, Neo4jError>>()?;
        Ok(Versioned::new(version, items))
    }

    pub(super) async fn read_image(
        &self,
        world: &WorldId,
        top_k: usize,
    ) -> Result<Versioned<WorldImage>, SourceError> {
        let q = query(cypher::IMAGE)
            .param("w", world.as_str())
            .param("k", i64::try_from(top_k).unwrap_or(i64::MAX));
        // An image reads the whole world: give it the time of a load.
        let rows = self
            .bounded(self.config.query_timeout() * 10, self.rows(q))
            .await?;
        let Some(row) = rows.first() else {
            return Err(WorldError::UnknownWorld(world.clone()).into());
        };
        let version = get_version(row)?;
        let snapshot = json::decode(&get::<String>(row, "snapshot")?)?;
        let flags = flags_of(Some(row))?;
        let mut entities = BTreeMap::new();
        let mut recent = BTreeMap::new();
        for e in get::<Vec<EntityRow>>(row, "entities")? {
            let kind = parse_kind(&e.kind)?;
            let entity =
                EntityRef::parse(kind, &e.id).map_err(|err| corrupt_err(err.to_string()))?;
            let events = events_of(&entity.entity_id(), e.events)?;
            if !events.is_empty() {
                recent.insert(entity.entity_id(), events);
            }
            entities.insert(entity, json::decode(&e.state)?);
        }
        Ok(Versioned::new(
            version,
            WorldImage {
                snapshot,
                flags,
                entities,
                recent,
            },
        ))
    }
}

#[derive(Deserialize)]
struct EntityRow {
    id: String,
    kind: String,
    state: String,
    events: Vec<EventRow>,
}

#[derive(Deserialize)]
struct StateRow {
    id: String,
    kind: String,
    state: String,
}

#[derive(Deserialize)]
struct TimelineRow {
    id: String,
    events: Vec<EventRow>,
}

#[derive(Clone, Deserialize)]
pub(super) struct EventRow {
    seq: i64,
    kind: String,
    at_ms: i64,
    data: String,
}

/// The `flags` column of a row: the world's flags as name and JSON value.
pub(super) fn flags_of(row: Option<&Row>) -> Result<Flags, Neo4jError> {
    let row = row.ok_or_else(|| corrupt_err("no row for the flags".to_owned()))?;
    let pairs: Vec<(String, String)> = get(row, "flags")?;
    pairs
        .into_iter()
        .map(|(name, value)| {
            let name = FlagName::new(name).map_err(|e| corrupt_err(e.to_string()))?;
            Ok((name, json::decode_value(&value)?))
        })
        .collect()
}

pub(super) fn events_of(
    entity: &EntityId,
    rows: Vec<EventRow>,
) -> Result<Vec<TimelineEvent>, Neo4jError> {
    rows.into_iter()
        .map(|r| {
            Ok(TimelineEvent {
                seq: u64::try_from(r.seq).map_err(|_| corrupt_err(format!("seq {}", r.seq)))?,
                entity: entity.clone(),
                kind: EventKind::new(r.kind).map_err(|e| corrupt_err(e.to_string()))?,
                at_ms: r.at_ms,
                data: json::decode(&r.data)?,
            })
        })
        .collect()
}
