//! Warming: what a world's activation prefills.
//!
//! On activation the cache is filled with the flags, the snapshot, and for
//! each entity (up to [`WarmPolicy::max_entities`]) its state and its top-k
//! recent events, all read from the source at one version. Within a budget
//! of keys ([`WarmPlan::active`]), only the most active entities are:
//! those read lately, then those with the newest events. The entries are
//! cut into batches of [`WarmPolicy::batch_size`] keys: one batch is one
//! round trip to the cache store.
//!
//! [`WarmPolicy::max_entities`]: crate::policy::WarmPolicy::max_entities
//! [`WarmPolicy::batch_size`]: crate::policy::WarmPolicy::batch_size

use std::collections::{BTreeMap, BTreeSet};

use crate::document::{CachedValue, Document};
use crate::id::{EntityId, EntityRef, WorldId};
use crate::key::CacheKey;
use crate::policy::CachePolicy;
use crate::world::WorldImage;

/// The entries to prefill for one world, in batches.
#[derive(Debug, Clone, PartialEq)]
pub struct WarmPlan {
    /// The world.
    pub world: WorldId,
    /// The version the image was read at.
    pub version: u64,
    /// The entries, cut into batches.
    pub batches: Vec<Vec<(CacheKey, CachedValue)>>,
}

impl WarmPlan {
    /// Plans the warming of `world` from an image read at `version`: every
    /// entity, up to the policy's `max_entities`, in id order.
    pub fn new(world: &WorldId, version: u64, image: &WorldImage, policy: &CachePolicy) -> Self {
        let entities = image.entities.iter().take(policy.warm.max_entities);
        Self::of(world, version, image, policy, entities, usize::MAX)
    }

    /// Plans the warming of what is active in `world`, within `max_keys`
    /// keys: the flags and the snapshot first, then the entities by how
    /// active they are, each with its state and its timeline (two keys),
    /// as long as both fit:
    ///
    /// 1. those in `active`, in its order (the caller's recently read
    ///    entities, most read first), that the image holds;
    /// 2. the others with events, by their newest event, newest first
    ///    (recent events in the source);
    /// 3. the rest in id order.
    ///
    /// At most the policy's `max_entities` entities either way.
    pub fn active(
        world: &WorldId,
        version: u64,
        image: &WorldImage,
        policy: &CachePolicy,
        active: &[EntityId],
        max_keys: usize,
    ) -> Self {
        let by_id: BTreeMap<EntityId, (&EntityRef, &Document)> = image
            .entities
            .iter()
            .map(|(e, state)| (e.entity_id(), (e, state)))
            .collect();
        let mut chosen: Vec<(&EntityRef, &Document)> = Vec::new();
        let mut taken = BTreeSet::new();
        for id in active {
            if let Some(&entry) = by_id.get(id)
                && taken.insert(id.clone())
            {
                chosen.push(entry);
            }
        }
        let mut rest: Vec<(Option<u64>, &EntityId, (&EntityRef, &Document))> = by_id
            .iter()
            .filter(|(id, _)| !taken.contains(*id))
            .map(|(id, &entry)| {
                let newest = image
                    .recent
                    .get(id)
                    .and_then(|events| events.iter().map(|e| e.seq).max());
                (newest, id, entry)
            })
            .collect();
        // Newest event first; entities without events (None) last, in id
        // order, which the stable sort keeps.
        rest.sort_by_key(|(newest, _, _)| std::cmp::Reverse(*newest));
        chosen.extend(rest.into_iter().map(|(_, _, entry)| entry));
        let entities = chosen.into_iter().take(policy.warm.max_entities);
        Self::of(world, version, image, policy, entities, max_keys)
    }

    /// The flags, the snapshot and `entities` with their timelines, as long
    /// as they fit in `max_keys` (an entity's two keys together), batched.
    fn of<'a>(
        world: &WorldId,
        version: u64,
        image: &WorldImage,
        policy: &CachePolicy,
        entities: impl Iterator<Item = (&'a EntityRef, &'a Document)>,
        max_keys: usize,
    ) -> Self {
        let mut entries = vec![
            (
                CacheKey::flags(world),
                CachedValue::Flags(image.flags.clone()),
            ),
            (
                CacheKey::state(world),
                CachedValue::Snapshot(image.snapshot.clone()),
            ),
        ];
        entries.truncate(max_keys);
        for (entity, state) in entities {
            if entries.len().saturating_add(2) > max_keys {
                break;
            }
            entries.push((
                CacheKey::entity(world, entity),
                CachedValue::Entity(state.clone()),
            ));
            let id = entity.entity_id();
            let recent = image
                .recent
                .get(&id)
                .map(|events| events.iter().take(policy.timeline_top_k).cloned().collect())
                .unwrap_or_default();
            entries.push((
                CacheKey::timeline(world, &id),
                CachedValue::Timeline(recent),
            ));
        }
        let size = policy.warm.batch_size.max(1);
        let mut batches = Vec::with_capacity(entries.len().div_ceil(size));
        let mut rest = entries.into_iter().peekable();
        while rest.peek().is_some() {
            batches.push(rest.by_ref().take(size).collect());
        }
        Self {
            world: world.clone(),
            version,
            batches,
        }
    }

    /// How many keys the plan fills.
    pub fn len(&self) -> usize {
        self.batches.iter().map(Vec::len).sum()
    }

    /// Whether the plan fills nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{Document, EventKind, Value};
    use crate::id::{EntityId, EntityKind, EntityRef};
    use crate::key::KeyKind;
    use crate::key::strategies::world_id;
    use crate::world::{Mutation, NewEvent, Op, WorldModel, apply_to};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn warming_fills_flags_snapshot_and_every_entity(
            world in world_id(),
            n_entities in 0usize..12,
            n_events in 0usize..30,
            top_k in 1usize..6,
            batch in 1usize..7,
        ) {
            let mut slot = Some(WorldModel::created(Document::new().with("name", Value::Text("w".into()))));
            let mut refs = Vec::new();
            for i in 0..n_entities {
                let e = EntityRef::parse(EntityKind::ALL[i % 3], &format!("e{i}")).unwrap();
                apply_to(&mut slot, Mutation { world: world.clone(), op: Op::CreateEntity(e.clone(), Document::new()) }).unwrap();
                refs.push(e);
            }
            for j in 0..n_events {
                if refs.is_empty() { break; }
                let e = &refs[j % refs.len()];
                apply_to(&mut slot, Mutation { world: world.clone(), op: Op::AddEvent(NewEvent {
                    entity: e.entity_id(), kind: EventKind::new("tick").unwrap(), at_ms: j as i64, data: Document::new(), top_k,
                })}).unwrap();
            }
            let model = slot.unwrap();
            let mut policy = CachePolicy::default();
            policy.timeline_top_k = top_k;
            policy.warm.batch_size = batch;
            let image = model.image(top_k);
            let plan = WarmPlan::new(&world, image.version, &image.value, &policy);
            prop_assert_eq!(plan.version, model.version());
            prop_assert_eq!(plan.len(), 2 + 2 * n_entities);
            prop_assert!(plan.batches.iter().all(|b| !b.is_empty() && b.len() <= batch));
            for (key, value) in plan.batches.iter().flatten() {
                prop_assert_eq!(key.world(), &world);
                prop_assert_ne!(key.kind(), KeyKind::Version);
                // Every prefilled value is what a read-through would cache.
                prop_assert_eq!(Some(value.clone()), model.read(key, top_k));
            }
            for e in &refs {
                prop_assert!(plan.batches.iter().flatten().any(|(k, _)| *k == CacheKey::timeline(&world, &EntityId::new(e.id_str()).unwrap())));
            }
        }

        #[test]
        fn an_active_plan_stays_within_its_budget_and_takes_the_active_first(
            world in world_id(),
            n_entities in 0usize..20,
            events_of in proptest::collection::vec(0usize..20, 0..40),
            active_of in proptest::collection::vec(0usize..25, 0..5),
            budget in 0usize..30,
        ) {
            let mut slot = Some(WorldModel::created(Document::new()));
            let mut refs = Vec::new();
            for i in 0..n_entities {
                let e = EntityRef::parse(EntityKind::ALL[i % 3], &format!("e{i:02}")).unwrap();
                apply_to(&mut slot, Mutation { world: world.clone(), op: Op::CreateEntity(e.clone(), Document::new()) }).unwrap();
                refs.push(e);
            }
            for (j, &i) in events_of.iter().enumerate() {
                let Some(e) = refs.get(i) else { continue };
                apply_to(&mut slot, Mutation { world: world.clone(), op: Op::AddEvent(NewEvent {
                    entity: e.entity_id(), kind: EventKind::new("tick").unwrap(), at_ms: j as i64, data: Document::new(), top_k: 3,
                })}).unwrap();
            }
            let model = slot.unwrap();
            let mut policy = CachePolicy::default();
            policy.timeline_top_k = 3;
            let image = model.image(3);
            let active: Vec<EntityId> = active_of.iter().map(|i| EntityId::new(format!("e{i:02}")).unwrap()).collect();
            let plan = WarmPlan::active(&world, image.version, &image.value, &policy, &active, budget);
            let keys: Vec<CacheKey> = plan.batches.iter().flatten().map(|(k, _)| k.clone()).collect();
            prop_assert!(keys.len() <= budget);
            let fits = budget.min(2) + 2 * (budget.saturating_sub(2) / 2).min(n_entities);
            prop_assert_eq!(keys.len(), fits);
            for (key, value) in plan.batches.iter().flatten() {
                prop_assert_eq!(Some(value.clone()), model.read(key, 3));
            }
            let warmed: Vec<EntityId> = keys.iter().skip(2).step_by(2)
                .map(|k| match k.target() { crate::key::KeyTarget::Entity(e) => e.entity_id(), _ => unreachable!() })
                .collect();
            // The active entities the world has come first, in their order.
            let mut expected_first: Vec<EntityId> = Vec::new();
            for id in &active {
                if refs.iter().any(|e| e.entity_id() == *id) && !expected_first.contains(id) {
                    expected_first.push(id.clone());
                }
            }
            let n = expected_first.len().min(warmed.len());
            prop_assert_eq!(&warmed[..n], &expected_first[..n]);
            // After them, no entity left out has a newer event than one taken.
            let newest = |id: &EntityId| image.value.recent.get(id).and_then(|ev| ev.iter().map(|e| e.seq).max());
            let rest_taken: Vec<_> = warmed[n..].iter().map(newest).collect();
            for e in &refs {
                let id = e.entity_id();
                if !warmed.contains(&id) {
                    prop_assert!(rest_taken.iter().all(|t| *t >= newest(&id)));
                }
            }
        }
    }
}
