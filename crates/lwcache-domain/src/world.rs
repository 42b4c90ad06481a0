//! Writes to a world, what they change, and the reference model of a world.
//!
//! A [`Mutation`] is what a caller asks for. The source of truth applies it in
//! one transaction, bumps the world's version and answers with a
//! [`Committed`]: the new version and the [`Change`] that happened, with the
//! after-image that write-through needs. Invalidation rules are a pure
//! function of the [`Change`].
//!
//! [`WorldModel`] is the executable definition of those semantics: the
//! in-memory repository is built on it, and property tests use it as the
//! oracle that every other repository and the cache must agree with.

use std::collections::BTreeMap;

use crate::document::{
    CachedValue, Document, DocumentError, DocumentLimits, EventKind, Flags, RecentTimelines,
    TimelineEvent, Value, Versioned,
};
use crate::id::{EntityId, EntityKind, EntityRef, FlagName, WorldId};
use crate::key::{CacheKey, KeyKind, KeyTarget};
pub use crate::seed::WorldSeed;

/// A write that a caller asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    /// The world written to.
    pub world: WorldId,
    /// What to do.
    pub op: Op,
}

/// The operations a world supports.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Replaces the world snapshot; creates the world when it is absent.
    ReplaceSnapshot(Document),
    /// Sets a flag to a value.
    SetFlag(FlagName, Value),
    /// Clears a flag; clearing an absent flag is allowed and still a write.
    ClearFlag(FlagName),
    /// Creates an entity; fails if its id is taken in the world.
    CreateEntity(EntityRef, Document),
    /// Replaces the state of an existing entity.
    UpdateEntity(EntityRef, Document),
    /// Creates or replaces an entity.
    PutEntity(EntityRef, Document),
    /// Deletes an entity and its timeline.
    DeleteEntity(EntityRef),
    /// Appends an event to an existing entity's timeline.
    AddEvent(NewEvent),
}

impl Op {
    /// A short name for logs and spans.
    pub fn name(&self) -> &'static str {
        match self {
            Op::ReplaceSnapshot(_) => "replace_snapshot",
            Op::SetFlag(..) => "set_flag",
            Op::ClearFlag(_) => "clear_flag",
            Op::CreateEntity(..) => "create_entity",
            Op::UpdateEntity(..) => "update_entity",
            Op::PutEntity(..) => "put_entity",
            Op::DeleteEntity(_) => "delete_entity",
            Op::AddEvent(_) => "add_event",
        }
    }

    /// The kind of key the operation writes: the label of its spans and
    /// metrics.
    pub fn key_kind(&self) -> KeyKind {
        match self {
            Op::ReplaceSnapshot(_) => KeyKind::State,
            Op::SetFlag(..) | Op::ClearFlag(_) => KeyKind::Flags,
            Op::CreateEntity(e, _)
            | Op::UpdateEntity(e, _)
            | Op::PutEntity(e, _)
            | Op::DeleteEntity(e) => KeyKind::of_entity(e.kind()),
            Op::AddEvent(_) => KeyKind::Timeline,
        }
    }

    /// Checks every document of the operation against `limits`.
    pub fn check(&self, limits: &DocumentLimits) -> Result<(), DocumentError> {
        match self {
            Op::ReplaceSnapshot(d)
            | Op::CreateEntity(_, d)
            | Op::UpdateEntity(_, d)
            | Op::PutEntity(_, d) => d.check(limits),
            Op::SetFlag(_, v) => Document::new().with("value", v.clone()).check(limits),
            Op::AddEvent(e) => e.data.check(limits),
            Op::ClearFlag(_) | Op::DeleteEntity(_) => Ok(()),
        }
    }
}

/// How an operation writes an entity's state: what it needs of the entity
/// that holds the id now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateWrite {
    /// [`Op::CreateEntity`]: the id must be free.
    Create,
    /// [`Op::UpdateEntity`]: an entity of the same kind must hold the id.
    Update,
    /// [`Op::PutEntity`]: the id is free or held by an entity of the same
    /// kind.
    Put,
}

/// What an entity write does, once decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityWrite {
    /// A new entity is created.
    Insert,
    /// The existing entity's state is replaced.
    Replace,
}

impl StateWrite {
    /// Decides a write of `entity` given the kind of the entity holding its
    /// id now (`None` when the id is free): the one rule every repository
    /// follows. An id is unique across kinds, so a different kind holding it
    /// makes creating [`WorldError::EntityExists`] and updating
    /// [`WorldError::UnknownEntity`].
    pub fn resolve(
        self,
        world: &WorldId,
        entity: &EntityRef,
        existing: Option<EntityKind>,
    ) -> Result<EntityWrite, WorldError> {
        match (self, existing) {
            (StateWrite::Update | StateWrite::Put, Some(kind)) if kind == entity.kind() => {
                Ok(EntityWrite::Replace)
            }
            (StateWrite::Update, _) => Err(WorldError::UnknownEntity {
                world: world.clone(),
                entity: entity.to_string(),
            }),
            (StateWrite::Create | StateWrite::Put, Some(existing)) => {
                Err(WorldError::EntityExists {
                    world: world.clone(),
                    id: entity.entity_id(),
                    existing,
                })
            }
            (StateWrite::Create | StateWrite::Put, None) => Ok(EntityWrite::Insert),
        }
    }
}

impl EntityWrite {
    /// The change the write commits.
    pub fn change(self, entity: EntityRef, state: Document) -> Change {
        match self {
            EntityWrite::Insert => Change::EntityCreated { entity, state },
            EntityWrite::Replace => Change::EntityUpdated { entity, state },
        }
    }
}

/// An event to append; the source assigns its `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The entity the event is about; it must exist.
    pub entity: EntityId,
    /// What kind of event it is.
    pub kind: EventKind,
    /// When it happened, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Its details.
    pub data: Document,
    /// How many of the entity's newest events, this one included, the
    /// commit returns in [`Change::EventAdded`]'s `recent`: the cache's
    /// top-k, so that the write can put the timeline it changed instead of
    /// invalidating it. The cache manager sets it from its policy.
    pub top_k: usize,
}

/// What a committed write changed: plain data, the input of the invalidation
/// rules.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The snapshot was replaced.
    SnapshotReplaced {
        /// The new snapshot.
        snapshot: Document,
        /// Whether the write created the world.
        created_world: bool,
    },
    /// A flag was set or cleared.
    FlagChanged {
        /// The flag.
        name: FlagName,
        /// All flags after the write.
        flags: Flags,
    },
    /// An entity was created.
    EntityCreated {
        /// The entity.
        entity: EntityRef,
        /// Its state.
        state: Document,
    },
    /// An entity's state was replaced.
    EntityUpdated {
        /// The entity.
        entity: EntityRef,
        /// Its new state.
        state: Document,
    },
    /// An entity and its timeline were deleted.
    EntityDeleted {
        /// The entity.
        entity: EntityRef,
    },
    /// An event was appended to an entity's timeline.
    EventAdded {
        /// The event, with its assigned `seq`.
        event: TimelineEvent,
        /// The entity's newest events after this one, newest first, at most
        /// [`NewEvent::top_k`] of them: what a read of the timeline at this
        /// version answers, read in the write's own transaction.
        recent: Vec<TimelineEvent>,
    },
}

impl Change {
    /// A short name for logs and spans.
    pub fn name(&self) -> &'static str {
        match self {
            Change::SnapshotReplaced { .. } => "snapshot_replaced",
            Change::FlagChanged { .. } => "flag_changed",
            Change::EntityCreated { .. } => "entity_created",
            Change::EntityUpdated { .. } => "entity_updated",
            Change::EntityDeleted { .. } => "entity_deleted",
            Change::EventAdded { .. } => "event_added",
        }
    }
}

/// A write the source of truth made durable.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    /// The world written to.
    pub world: WorldId,
    /// The world's version after the write.
    pub version: u64,
    /// What changed.
    pub change: Change,
}

/// Why the source of truth refused a write or a read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorldError {
    /// The world does not exist.
    #[error("unknown world {0}")]
    UnknownWorld(WorldId),
    /// The entity does not exist in the world.
    #[error("world {world} has no {entity}")]
    UnknownEntity {
        /// The world.
        world: WorldId,
        /// What was asked for: a kind and id, or a timeline's entity id.
        entity: String,
    },
    /// The entity id is already taken in the world.
    #[error("world {world} already has an entity {id} (a {existing})")]
    EntityExists {
        /// The world.
        world: WorldId,
        /// The id.
        id: EntityId,
        /// The kind of the entity that holds the id.
        existing: EntityKind,
    },
    /// A document broke the limits.
    #[error("invalid document: {0}")]
    Document(#[from] DocumentError),
    /// A bulk load named a world that already exists.
    #[error("world {0} already exists")]
    WorldExists(WorldId),
    /// A bulk load's seed contradicts itself.
    #[error("invalid seed for world {world}: {problem}")]
    InvalidSeed {
        /// The world.
        world: WorldId,
        /// What is wrong, naming the entity.
        problem: String,
    },
}

/// Everything the cache prefills for a world, read at one version.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorldImage {
    /// The snapshot.
    pub snapshot: Document,
    /// The flags.
    pub flags: Flags,
    /// Every entity and its state.
    pub entities: BTreeMap<EntityRef, Document>,
    /// The newest events of every entity that has any, newest first.
    pub recent: RecentTimelines,
}

/// The reference model of one world: the semantics every repository has.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorldModel {
    version: u64,
    snapshot: Document,
    flags: Flags,
    entities: BTreeMap<EntityId, (EntityKind, Document)>,
    events: BTreeMap<EntityId, Vec<TimelineEvent>>,
}

impl WorldModel {
    /// A world created with `snapshot`, at version 1.
    pub fn created(snapshot: Document) -> Self {
        Self {
            version: 1,
            snapshot,
            ..Self::default()
        }
    }

    /// The current version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Applies `op` to an existing world. (Creating a world is
    /// [`WorldModel::created`]; see [`apply_to`] for both.)
    pub fn apply(&mut self, world: &WorldId, op: Op) -> Result<Committed, WorldError> {
        let unknown = |entity: String| WorldError::UnknownEntity {
            world: world.clone(),
            entity,
        };
        let change = match op {
            Op::ReplaceSnapshot(snapshot) => {
                self.snapshot = snapshot.clone();
                Change::SnapshotReplaced {
                    snapshot,
                    created_world: false,
                }
            }
            Op::SetFlag(name, value) => {
                self.flags.insert(name.clone(), value);
                Change::FlagChanged {
                    name,
                    flags: self.flags.clone(),
                }
            }
            Op::ClearFlag(name) => {
                self.flags.remove(&name);
                Change::FlagChanged {
                    name,
                    flags: self.flags.clone(),
                }
            }
            Op::CreateEntity(entity, state) => {
                self.write_entity(world, StateWrite::Create, entity, state)?
            }
            Op::UpdateEntity(entity, state) => {
                self.write_entity(world, StateWrite::Update, entity, state)?
            }
            Op::PutEntity(entity, state) => {
                self.write_entity(world, StateWrite::Put, entity, state)?
            }
            Op::DeleteEntity(entity) => {
                let id = entity.entity_id();
                match self.entities.get(&id) {
                    Some((kind, _)) if *kind == entity.kind() => {
                        self.entities.remove(&id);
                        self.events.remove(&id);
                    }
                    _ => return Err(unknown(entity.to_string())),
                }
                Change::EntityDeleted { entity }
            }
            Op::AddEvent(new) => {
                if !self.entities.contains_key(&new.entity) {
                    return Err(unknown(format!("entity {}", new.entity)));
                }
                let event = TimelineEvent {
                    seq: self.version + 1,
                    entity: new.entity,
                    kind: new.kind,
                    at_ms: new.at_ms,
                    data: new.data,
                };
                let events = self.events.entry(event.entity.clone()).or_default();
                events.push(event.clone());
                // Events are appended in seq order, so the newest are last.
                let recent = events.iter().rev().take(new.top_k).cloned().collect();
                Change::EventAdded { event, recent }
            }
        };
        self.version += 1;
        Ok(Committed {
            world: world.clone(),
            version: self.version,
            change,
        })
    }

    /// Creates or replaces an entity's state as `how` allows.
    fn write_entity(
        &mut self,
        world: &WorldId,
        how: StateWrite,
        entity: EntityRef,
        state: Document,
    ) -> Result<Change, WorldError> {
        let id = entity.entity_id();
        let existing = self.entities.get(&id).map(|(kind, _)| *kind);
        let write = how.resolve(world, &entity, existing)?;
        self.entities.insert(id, (entity.kind(), state.clone()));
        Ok(write.change(entity, state))
    }

    /// The snapshot.
    pub fn snapshot(&self) -> &Document {
        &self.snapshot
    }

    /// The flags.
    pub fn flags(&self) -> &Flags {
        &self.flags
    }

    /// The state of `entity`, if it exists with that kind.
    pub fn entity(&self, entity: &EntityRef) -> Option<&Document> {
        match self.entities.get(&entity.entity_id()) {
            Some((kind, doc)) if *kind == entity.kind() => Some(doc),
            _ => None,
        }
    }

    /// Every entity of the world.
    pub fn entity_refs(&self) -> impl Iterator<Item = EntityRef> + '_ {
        self.entities
            .iter()
            .map(|(id, (kind, _))| EntityRef::new(*kind, id.clone()))
    }

    /// The `limit` newest events of `entity`, newest first; `None` when the
    /// entity does not exist.
    pub fn recent(&self, entity: &EntityId, limit: usize) -> Option<Vec<TimelineEvent>> {
        if !self.entities.contains_key(entity) {
            return None;
        }
        let events = self.events.get(entity).map(Vec::as_slice).unwrap_or(&[]);
        // Events are appended in seq order, so the newest are at the end.
        Some(events.iter().rev().take(limit).cloned().collect())
    }

    /// What the source would answer for `key`, the value a cache entry of
    /// that key must agree with; `None` when there is nothing to cache
    /// (an absent entity, or the version key).
    pub fn read(&self, key: &CacheKey, top_k: usize) -> Option<CachedValue> {
        match key.target() {
            KeyTarget::State => Some(CachedValue::Snapshot(self.snapshot.clone())),
            KeyTarget::Flags => Some(CachedValue::Flags(self.flags.clone())),
            KeyTarget::Version => None,
            KeyTarget::Timeline(e) => self.recent(e, top_k).map(CachedValue::Timeline),
            KeyTarget::Entity(e) => self.entity(e).cloned().map(CachedValue::Entity),
        }
    }

    /// Everything warming prefills, at the current version.
    pub fn image(&self, top_k: usize) -> Versioned<WorldImage> {
        let entities = self
            .entities
            .iter()
            .map(|(id, (kind, doc))| (EntityRef::new(*kind, id.clone()), doc.clone()))
            .collect();
        let recent = self
            .events
            .keys()
            .filter_map(|id| self.recent(id, top_k).map(|r| (id.clone(), r)))
            .filter(|(_, r)| !r.is_empty())
            .collect();
        Versioned::new(
            self.version,
            WorldImage {
                snapshot: self.snapshot.clone(),
                flags: self.flags.clone(),
                entities,
                recent,
            },
        )
    }
}

/// Applies a mutation to a world that may not exist yet: `ReplaceSnapshot`
/// creates it, every other operation needs it.
pub fn apply_to(
    slot: &mut Option<WorldModel>,
    mutation: Mutation,
) -> Result<Committed, WorldError> {
    match (slot.as_mut(), mutation.op) {
        (Some(model), op) => model.apply(&mutation.world, op),
        (None, Op::ReplaceSnapshot(snapshot)) => {
            *slot = Some(WorldModel::created(snapshot.clone()));
            Ok(Committed {
                world: mutation.world,
                version: 1,
                change: Change::SnapshotReplaced {
                    snapshot,
                    created_world: true,
                },
            })
        }
        (None, _) => Err(WorldError::UnknownWorld(mutation.world)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> WorldId {
        WorldId::new("w").unwrap()
    }

    fn character(id: &str) -> EntityRef {
        EntityRef::parse(EntityKind::Character, id).unwrap()
    }

    #[test]
    fn create_needs_a_free_id() {
        let e = character("a");
        assert_eq!(
            StateWrite::Create.resolve(&world(), &e, None),
            Ok(EntityWrite::Insert)
        );
        for held in EntityKind::ALL {
            assert_eq!(
                StateWrite::Create.resolve(&world(), &e, Some(held)),
                Err(WorldError::EntityExists {
                    world: world(),
                    id: e.entity_id(),
                    existing: held,
                })
            );
        }
    }

    #[test]
    fn update_needs_an_entity_of_the_same_kind() {
        let e = character("a");
        assert_eq!(
            StateWrite::Update.resolve(&world(), &e, Some(EntityKind::Character)),
            Ok(EntityWrite::Replace)
        );
        let unknown = Err(WorldError::UnknownEntity {
            world: world(),
            entity: e.to_string(),
        });
        assert_eq!(StateWrite::Update.resolve(&world(), &e, None), unknown);
        assert_eq!(
            StateWrite::Update.resolve(&world(), &e, Some(EntityKind::Location)),
            unknown
        );
    }

    #[test]
    fn put_creates_or_replaces_but_never_changes_kind() {
        let e = character("a");
        assert_eq!(
            StateWrite::Put.resolve(&world(), &e, None),
            Ok(EntityWrite::Insert)
        );
        assert_eq!(
            StateWrite::Put.resolve(&world(), &e, Some(EntityKind::Character)),
            Ok(EntityWrite::Replace)
        );
        assert_eq!(
            StateWrite::Put.resolve(&world(), &e, Some(EntityKind::Object)),
            Err(WorldError::EntityExists {
                world: world(),
                id: e.entity_id(),
                existing: EntityKind::Object,
            })
        );
    }

    #[test]
    fn the_decision_names_the_change() {
        let e = character("a");
        let state = Document::new();
        assert_eq!(
            EntityWrite::Insert.change(e.clone(), state.clone()),
            Change::EntityCreated {
                entity: e.clone(),
                state: state.clone(),
            }
        );
        assert_eq!(
            EntityWrite::Replace.change(e.clone(), state.clone()),
            Change::EntityUpdated { entity: e, state }
        );
    }

    #[test]
    fn every_op_names_the_key_kind_it_writes() {
        let e = character("a");
        assert_eq!(
            Op::ReplaceSnapshot(Document::new()).key_kind(),
            KeyKind::State
        );
        assert_eq!(
            Op::ClearFlag(FlagName::new("f").unwrap()).key_kind(),
            KeyKind::Flags
        );
        assert_eq!(Op::DeleteEntity(e.clone()).key_kind(), KeyKind::Character);
        assert_eq!(
            Op::AddEvent(NewEvent {
                entity: e.entity_id(),
                kind: EventKind::new("k").unwrap(),
                at_ms: 0,
                data: Document::new(),
                top_k: 1,
            })
            .key_kind(),
            KeyKind::Timeline
        );
    }
}
