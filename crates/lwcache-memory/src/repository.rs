//! The in-memory world repository.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use lwcache_core::ports::{SourceError, WorldRepository};
use lwcache_domain::world::apply_to;
use lwcache_domain::{
    CacheKey, CachedValue, Committed, EntityRef, KeyTarget, Mutation, Versioned, WorldError,
    WorldId, WorldImage, WorldModel,
};

/// A source of truth in process memory, built on [`WorldModel`], the
/// domain's reference semantics. Each mutation runs under one lock: it is
/// the transaction that bumps the world's version.
#[derive(Debug, Default)]
pub struct MemoryRepository {
    worlds: Mutex<HashMap<WorldId, WorldModel>>,
}

impl MemoryRepository {
    /// An empty repository.
    pub fn new() -> Self {
        Self::default()
    }

    fn worlds(&self) -> MutexGuard<'_, HashMap<WorldId, WorldModel>> {
        // A mutation either completes under the lock or changes nothing.
        self.worlds.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with_world<T>(
        &self,
        world: &WorldId,
        f: impl FnOnce(&WorldModel) -> Result<T, SourceError>,
    ) -> Result<T, SourceError> {
        let worlds = self.worlds();
        let model = worlds
            .get(world)
            .ok_or_else(|| WorldError::UnknownWorld(world.clone()))?;
        f(model)
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
        let world = key.world();
        self.with_world(world, |m| {
            let value = match key.target() {
                KeyTarget::State => CachedValue::Snapshot(m.snapshot().clone()),
                KeyTarget::Flags => CachedValue::Flags(m.flags().clone()),
                KeyTarget::Version => {
                    return Err(SourceError::Invalid(format!("{key} is not a readable key")));
                }
                KeyTarget::Timeline(e) => {
                    CachedValue::Timeline(m.recent(e, limit).ok_or_else(|| {
                        WorldError::UnknownEntity {
                            world: world.clone(),
                            entity: format!("entity {e}"),
                        }
                    })?)
                }
                KeyTarget::Entity(e) => {
                    CachedValue::Entity(m.entity(e).cloned().ok_or_else(|| unknown(world, e))?)
                }
            };
            Ok(Versioned::new(m.version(), value))
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
        let mut worlds = self.worlds();
        let mut slot = worlds.remove(&mutation.world);
        let result = apply_to(&mut slot, mutation.clone());
        if let Some(model) = slot {
            worlds.insert(mutation.world.clone(), model);
        }
        Ok(result?)
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
