//! Warming: what a world's activation prefills.
//!
//! On activation the cache is filled with the flags, the snapshot, and for
//! each entity (up to [`WarmPolicy::max_entities`]) its state and its top-k
//! recent events, all read from the source at one version. The entries are
//! cut into batches of [`WarmPolicy::batch_size`] keys: one batch is one
//! round trip to the cache store.
//!
//! [`WarmPolicy::max_entities`]: crate::policy::WarmPolicy::max_entities
//! [`WarmPolicy::batch_size`]: crate::policy::WarmPolicy::batch_size

use crate::document::CachedValue;
use crate::id::WorldId;
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
    /// Plans the warming of `world` from an image read at `version`.
    pub fn new(world: &WorldId, version: u64, image: &WorldImage, policy: &CachePolicy) -> Self {
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
        for (entity, state) in image.entities.iter().take(policy.warm.max_entities) {
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
    }
}
