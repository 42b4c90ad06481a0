//! The in-memory world repository.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use lwcache_core::ports::{Claim, SourceError, WorldRepository, check_keys};
use lwcache_domain::world::apply_to;
use lwcache_domain::{
    CacheKey, CachedValue, Committed, EntityRef, KeyTarget, Mutation, Owed, OwedId, Versioned,
    WorldError, WorldId, WorldImage, WorldModel, WorldSeed,
};
use tokio::time::Instant;

/// A source of truth in process memory, built on [`WorldModel`], the
/// domain's reference semantics. Each mutation runs under one lock: it is
/// the transaction that bumps the world's version and records what the
/// cache owes for it in the outbox.
#[derive(Debug, Default)]
pub struct MemoryRepository {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    worlds: HashMap<WorldId, WorldModel>,
    /// Owed cache steps, with when they were recorded and who claimed them
    /// until when. Ordered by world and version; claims take the oldest.
    outbox: BTreeMap<OwedId, Outboxed>,
}

#[derive(Debug)]
struct Outboxed {
    owed: Owed,
    at: Instant,
    claim: Option<(String, Instant)>,
}

impl MemoryRepository {
    /// An empty repository.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A mutation either completes under the lock or changes nothing.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with_world<T>(
        &self,
        world: &WorldId,
        f: impl FnOnce(&WorldModel) -> Result<T, SourceError>,
    ) -> Result<T, SourceError> {
        let state = self.state();
        let model = state
            .worlds
            .get(world)
            .ok_or_else(|| WorldError::UnknownWorld(world.clone()))?;
        f(model)
    }

    /// How many outbox entries are waiting, claimed or not.
    pub fn outbox_len(&self) -> usize {
        self.state().outbox.len()
    }
}

#[async_trait]
impl WorldRepository for MemoryRepository {
    async fn version(&self, world: &WorldId) -> Result<u64, SourceError> {
        self.with_world(world, |m| Ok(m.version()))
    }

    async fn read(
        &self,
        key: &CacheKey,
        limit: usize,
    ) -> Result<Versioned<CachedValue>, SourceError> {
        self.with_world(key.world(), |m| {
            Ok(Versioned::new(m.version(), read_in(m, key, limit)?))
        })
    }

    /// Every key under one lock: at one version.
    async fn read_many(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
        limit: usize,
    ) -> Result<Versioned<Vec<Result<CachedValue, WorldError>>>, SourceError> {
        check_keys(world, keys).map_err(|e| SourceError::Invalid(e.to_string()))?;
        self.with_world(world, |m| {
            let items = keys
                .iter()
                .map(|key| match read_in(m, key, limit) {
                    Ok(value) => Ok(Ok(value)),
                    Err(SourceError::Rejected(e)) => Ok(Err(e)),
                    Err(e) => Err(e),
                })
                .collect::<Result<Vec<_>, SourceError>>()?;
            Ok(Versioned::new(m.version(), items))
        })
    }

    async fn image(
        &self,
        world: &WorldId,
        top_k: usize,
    ) -> Result<Versioned<WorldImage>, SourceError> {
        self.with_world(world, |m| Ok(m.image(top_k)))
    }

    async fn apply(&self, mutation: &Mutation) -> Result<Committed, SourceError> {
        let mut state = self.state();
        let mut slot = state.worlds.remove(&mutation.world);
        let result = apply_to(&mut slot, mutation.clone());
        if let Some(model) = slot {
            state.worlds.insert(mutation.world.clone(), model);
        }
        let committed = result?;
        let owed = Owed::of(&committed);
        state.outbox.insert(
            owed.id(),
            Outboxed {
                owed,
                at: Instant::now(),
                claim: None,
            },
        );
        Ok(committed)
    }

    async fn load(&self, world: &WorldId, seed: &WorldSeed) -> Result<u64, SourceError> {
        seed.validate(world)?;
        let mut state = self.state();
        if state.worlds.contains_key(world) {
            return Err(WorldError::WorldExists(world.clone()).into());
        }
        // A load bypasses the cache, so it owes it nothing: no outbox.
        let mut slot = None;
        for mutation in seed.mutations(world) {
            apply_to(&mut slot, mutation)?;
        }
        // The seed's first mutation replaces the snapshot, which makes the
        // world.
        let model = slot.ok_or_else(|| WorldError::InvalidSeed {
            world: world.clone(),
            problem: "the seed made no world".to_owned(),
        })?;
        let version = model.version();
        state.worlds.insert(world.clone(), model);
        Ok(version)
    }

    async fn owed(&self, claim: &Claim) -> Result<Vec<Owed>, SourceError> {
        let mut state = self.state();
        let now = Instant::now();
        let mut claimed = Vec::new();
        let mut by_age: Vec<(&OwedId, &mut Outboxed)> = state
            .outbox
            .iter_mut()
            .filter(|(id, _)| claim.world.as_ref().is_none_or(|w| *w == id.world))
            .filter(|(_, o)| now.saturating_duration_since(o.at) >= claim.min_age)
            .filter(|(_, o)| {
                o.claim
                    .as_ref()
                    .is_none_or(|(owner, until)| *until <= now || *owner == claim.owner)
            })
            .collect();
        by_age.sort_by_key(|(_, o)| o.at);
        for (_, o) in by_age.into_iter().take(claim.limit) {
            o.claim = Some((claim.owner.clone(), now + claim.lease));
            claimed.push(o.owed.clone());
        }
        Ok(claimed)
    }

    async fn settle(&self, done: &[OwedId]) -> Result<(), SourceError> {
        let mut state = self.state();
        for id in done {
            state.outbox.remove(id);
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), SourceError> {
        Ok(())
    }
}

fn unknown(world: &WorldId, entity: &EntityRef) -> WorldError {
    WorldError::UnknownEntity {
        world: world.clone(),
        entity: entity.to_string(),
    }
}

/// What `key` holds in a world's model.
fn read_in(m: &WorldModel, key: &CacheKey, limit: usize) -> Result<CachedValue, SourceError> {
    let world = key.world();
    Ok(match key.target() {
        KeyTarget::State => CachedValue::Snapshot(m.snapshot().clone()),
        KeyTarget::Flags => CachedValue::Flags(m.flags().clone()),
        KeyTarget::Version => {
            return Err(SourceError::Invalid(format!("{key} is not a readable key")));
        }
        KeyTarget::Timeline(e) => {
            CachedValue::Timeline(
                m.recent(e, limit)
                    .ok_or_else(|| WorldError::UnknownEntity {
                        world: world.clone(),
                        entity: format!("entity {e}"),
                    })?,
            )
        }
        KeyTarget::Entity(e) => {
            CachedValue::Entity(m.entity(e).cloned().ok_or_else(|| unknown(world, e))?)
        }
    })
}
