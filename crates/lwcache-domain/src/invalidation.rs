//! Invalidation rules: from a committed change to the cache steps it needs.
//!
//! [`plan`] is a pure function. Its output is plain data, so that it can be
//! logged, queued, retried or replayed by a process other than the one that
//! made the write.

use crate::document::CachedValue;
use crate::id::WorldId;
use crate::key::{CacheKey, KeyKind};
use crate::policy::{CachePolicy, WriteMode};
use crate::world::{Change, Committed};

/// Why a cached value was invalidated: each cause is one the manager
/// reports. (A TTL running out is the store's business and reported by
/// no one; there is no explicit invalidation call.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InvalidationCause {
    /// A timeline event was added.
    EventAdded,
    /// A flag was set or cleared.
    FlagChanged,
    /// An entity was created, updated or deleted.
    EntityMutated,
    /// The world snapshot was replaced.
    SnapshotReplaced,
    /// The entry could not be decoded (an older format, or corrupt bytes).
    DecodeFailure,
    /// A write-behind update found its queue full and deleted the key instead.
    WriteBehindOverflow,
}

impl InvalidationCause {
    /// Every cause, in a fixed order.
    pub const ALL: [InvalidationCause; 6] = [
        InvalidationCause::EventAdded,
        InvalidationCause::FlagChanged,
        InvalidationCause::EntityMutated,
        InvalidationCause::SnapshotReplaced,
        InvalidationCause::DecodeFailure,
        InvalidationCause::WriteBehindOverflow,
    ];

    /// The label used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidationCause::EventAdded => "event_added",
            InvalidationCause::FlagChanged => "flag_changed",
            InvalidationCause::EntityMutated => "entity_mutated",
            InvalidationCause::SnapshotReplaced => "snapshot_replaced",
            InvalidationCause::DecodeFailure => "decode_failure",
            InvalidationCause::WriteBehindOverflow => "write_behind_overflow",
        }
    }
}

/// When a put happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Before the write is acknowledged.
    Now,
    /// By the write-behind worker, after the write is acknowledged.
    Behind,
}

/// What to do with one key.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Put the key's new value, which the committed change carries.
    Put {
        /// The value.
        value: CachedValue,
        /// When.
        timing: Timing,
    },
    /// Delete the key.
    Invalidate,
}

/// One key's step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The key.
    pub key: CacheKey,
    /// What to do with it.
    pub action: Action,
    /// Why.
    pub cause: InvalidationCause,
}

/// Everything the cache must do after one committed write.
#[derive(Debug, Clone, PartialEq)]
pub struct CachePlan {
    /// The world written to.
    pub world: WorldId,
    /// The committed version: `lw:world:{w}:ver` is raised to it, and every
    /// step is conditional on it.
    pub version: u64,
    /// The steps, one per key.
    pub steps: Vec<Step>,
}

/// The cache steps for a committed write.
pub fn plan(committed: &Committed, policy: &CachePolicy) -> CachePlan {
    let world = &committed.world;
    let mut steps = Vec::with_capacity(2);
    let mut put = |key: CacheKey, value: CachedValue, cause| {
        let mode = policy
            .for_kind(key.kind())
            .map_or(WriteMode::Invalidate, |p| p.mode);
        let action = match mode {
            WriteMode::WriteThrough => Action::Put {
                value,
                timing: Timing::Now,
            },
            WriteMode::WriteBehind => Action::Put {
                value,
                timing: Timing::Behind,
            },
            WriteMode::Invalidate => Action::Invalidate,
        };
        steps.push(Step { key, action, cause });
    };
    match &committed.change {
        Change::SnapshotReplaced { snapshot, .. } => put(
            CacheKey::state(world),
            CachedValue::Snapshot(snapshot.clone()),
            InvalidationCause::SnapshotReplaced,
        ),
        Change::FlagChanged { flags, .. } => put(
            CacheKey::flags(world),
            CachedValue::Flags(flags.clone()),
            InvalidationCause::FlagChanged,
        ),
        Change::EntityCreated { entity, state } | Change::EntityUpdated { entity, state } => put(
            CacheKey::entity(world, entity),
            CachedValue::Entity(state.clone()),
            InvalidationCause::EntityMutated,
        ),
        Change::EntityDeleted { entity } => {
            for key in [
                CacheKey::entity(world, entity),
                CacheKey::timeline(world, &entity.entity_id()),
            ] {
                steps.push(Step {
                    key,
                    action: Action::Invalidate,
                    cause: InvalidationCause::EntityMutated,
                });
            }
        }
        // The change carries the new top-k list, read in the write's own
        // transaction.
        Change::EventAdded { event, recent } => put(
            CacheKey::timeline(world, &event.entity),
            CachedValue::Timeline(recent.clone()),
            InvalidationCause::EventAdded,
        ),
    }
    CachePlan {
        world: world.clone(),
        version: committed.version,
        steps,
    }
}

impl CachePlan {
    /// The keys the plan touches, besides the version key.
    pub fn keys(&self) -> impl Iterator<Item = &CacheKey> {
        self.steps.iter().map(|s| &s.key)
    }

    /// The kinds of the keys the plan touches.
    pub fn kinds(&self) -> impl Iterator<Item = KeyKind> + '_ {
        self.keys().map(CacheKey::kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{Document, EventKind, TimelineEvent, Value};
    use crate::id::{EntityId, EntityKind, EntityRef, FlagName, WorldId};
    use crate::key::KeyTarget;
    use crate::key::strategies::{entity_ref, id_string, world_id};
    use crate::world::{Mutation, NewEvent, Op, WorldModel, apply_to};
    use proptest::prelude::*;

    fn op(ids: Vec<String>, top_k: usize) -> impl Strategy<Value = Op> {
        let pick = prop::sample::select(ids);
        let kind = (0usize..3).prop_map(|k| EntityKind::ALL[k]);
        let entity = (kind, pick.clone()).prop_map(|(k, id)| EntityRef::parse(k, &id).unwrap());
        let doc = (any::<i64>(), "[a-z]{0,4}").prop_map(|(n, s)| {
            Document::new()
                .with("n", Value::Int(n))
                .with("s", Value::Text(s))
        });
        let flag = prop::sample::select(vec!["door", "lamp", "storm"])
            .prop_map(|s| FlagName::new(s).unwrap());
        prop_oneof![
            doc.clone().prop_map(Op::ReplaceSnapshot),
            (flag.clone(), any::<bool>()).prop_map(|(f, b)| Op::SetFlag(f, Value::Bool(b))),
            flag.prop_map(Op::ClearFlag),
            (entity.clone(), doc.clone()).prop_map(|(e, d)| Op::CreateEntity(e, d)),
            (entity.clone(), doc.clone()).prop_map(|(e, d)| Op::UpdateEntity(e, d)),
            (entity.clone(), doc.clone()).prop_map(|(e, d)| Op::PutEntity(e, d)),
            entity.prop_map(Op::DeleteEntity),
            (pick, doc, any::<i32>()).prop_map(move |(id, d, at)| Op::AddEvent(NewEvent {
                entity: EntityId::new(id).unwrap(),
                kind: EventKind::new("moved").unwrap(),
                at_ms: i64::from(at),
                data: d,
                top_k,
            })),
        ]
    }

    /// A world, built by random operations, a final operation, and the keys
    /// worth looking at: every key of every id in play, of this world and of
    /// another.
    fn scenario() -> impl Strategy<Value = (WorldId, Vec<Op>, Op, Vec<String>, usize)> {
        (
            world_id(),
            prop::collection::vec(id_string(), 1..4),
            1usize..4,
        )
            .prop_flat_map(|(world, ids, top_k)| {
                (
                    Just(world),
                    prop::collection::vec(op(ids.clone(), top_k), 0..20),
                    op(ids.clone(), top_k),
                    Just(ids),
                    Just(top_k),
                )
            })
    }

    fn keys_of(world: &WorldId, ids: &[String]) -> Vec<CacheKey> {
        let mut keys = vec![
            CacheKey::state(world),
            CacheKey::flags(world),
            CacheKey::version(world),
        ];
        for id in ids {
            keys.push(CacheKey::timeline(
                world,
                &EntityId::new(id.as_str()).unwrap(),
            ));
            for kind in EntityKind::ALL {
                keys.push(CacheKey::entity(
                    world,
                    &EntityRef::parse(kind, id).unwrap(),
                ));
            }
        }
        keys
    }

    proptest! {
        #[test]
        fn plans_cover_every_key_the_change_makes_stale(
            (world, history, last, ids, top_k) in scenario()
        ) {
            let mut policy = CachePolicy::default();
            policy.timeline_top_k = top_k;
            let mut slot: Option<WorldModel> =
                Some(WorldModel::created(Document::new()));
            for op in history {
                let _ = apply_to(&mut slot, Mutation { world: world.clone(), op });
            }
            let before = slot.clone();
            let owed_before = last.stale_keys(&world);
            let Ok(committed) = apply_to(&mut slot, Mutation { world: world.clone(), op: last }) else {
                // A refused write changes nothing.
                prop_assert_eq!(&slot, &before);
                return Ok(());
            };
            let plan = plan(&committed, &policy);
            prop_assert_eq!(
                crate::outbox::stale_keys(&committed),
                plan.keys().cloned().collect::<Vec<_>>(),
                "what the outbox records is what the plan touches"
            );
            prop_assert_eq!(
                owed_before,
                crate::outbox::stale_keys(&committed),
                "the keys known before the write are those of the commit"
            );
            let (before, after) = (before.unwrap(), slot.unwrap());
            prop_assert_eq!(plan.version, after.version());
            prop_assert!(after.version() > before.version(), "every write bumps the version");
            for key in keys_of(&world, &ids) {
                // Absence is never cached, so only a key that had a value can
                // hold a stale one.
                let old = before.read(&key, top_k);
                let stale = old.is_some() && old != after.read(&key, top_k);
                if stale {
                    prop_assert!(plan.keys().any(|k| *k == key), "{} changed but is not in the plan", key);
                }
            }
            for key in plan.keys() {
                prop_assert_eq!(key.world(), &world, "the plan touches another world");
                prop_assert!(!matches!(key.target(), KeyTarget::Version));
            }
        }

        #[test]
        fn write_through_puts_carry_the_new_value(
            (world, history, last, ids, top_k) in scenario()
        ) {
            let mut slot = Some(WorldModel::created(Document::new()));
            for op in history {
                let _ = apply_to(&mut slot, Mutation { world: world.clone(), op });
            }
            let _ = ids;
            if let Ok(committed) = apply_to(&mut slot, Mutation { world: world.clone(), op: last }) {
                let model = slot.unwrap();
                for step in plan(&committed, &CachePolicy::default()).steps {
                    match step.action {
                        Action::Put { value, .. } => {
                            prop_assert_eq!(Some(value), model.read(&step.key, top_k));
                        }
                        Action::Invalidate => prop_assert_eq!(model.read(&step.key, top_k), None),
                    }
                }
            }
        }

        #[test]
        fn plans_follow_the_policy(entity in entity_ref(), world in world_id()) {
            let mut policy = CachePolicy::default();
            policy.entity.mode = WriteMode::Invalidate;
            let committed = Committed {
                world: world.clone(),
                version: 9,
                change: Change::EntityUpdated { entity: entity.clone(), state: Document::new() },
            };
            let p = plan(&committed, &policy);
            prop_assert_eq!(p.steps.len(), 1);
            prop_assert_eq!(&p.steps[0].action, &Action::Invalidate);
            prop_assert_eq!(&p.steps[0].key, &CacheKey::entity(&world, &entity));
        }
    }

    #[test]
    fn an_added_event_puts_the_new_timeline_behind() {
        let world = WorldId::new("w").unwrap();
        let mut slot = Some(WorldModel::created(Document::new()));
        let e = EntityRef::parse(EntityKind::Character, "c1").unwrap();
        apply_to(
            &mut slot,
            Mutation {
                world: world.clone(),
                op: Op::CreateEntity(e.clone(), Document::new()),
            },
        )
        .unwrap();
        let committed = apply_to(
            &mut slot,
            Mutation {
                world: world.clone(),
                op: Op::AddEvent(NewEvent {
                    entity: e.entity_id(),
                    kind: EventKind::new("spoke").unwrap(),
                    at_ms: 5,
                    data: Document::new(),
                    top_k: 20,
                }),
            },
        )
        .unwrap();
        let p = plan(&committed, &CachePolicy::default());
        let event = TimelineEvent {
            seq: 3,
            entity: e.entity_id(),
            kind: EventKind::new("spoke").unwrap(),
            at_ms: 5,
            data: Document::new(),
        };
        assert_eq!(p.version, 3);
        assert_eq!(
            p.steps,
            vec![Step {
                key: CacheKey::timeline(&world, &e.entity_id()),
                action: Action::Put {
                    value: CachedValue::Timeline(vec![event]),
                    timing: Timing::Behind
                },
                cause: InvalidationCause::EventAdded,
            }]
        );
    }
}
