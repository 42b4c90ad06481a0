//! The in-memory store as a harness part: its probe, and a harness that
//! puts it in front of any repository.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lwcache_core::ports::WorldRepository;
use lwcache_domain::{CacheKey, WorldId};
use lwcache_memory::MemoryStore;

use crate::{Harness, StoreProbe, TimeControl};

/// Looks inside a [`MemoryStore`].
#[derive(Debug, Clone)]
pub struct MemoryProbe(pub Arc<MemoryStore>);

#[async_trait]
impl StoreProbe for MemoryProbe {
    async fn put_raw(&self, key: &CacheKey, bytes: Vec<u8>) {
        self.0.put_raw(key, bytes);
    }
    async fn keys(&self, world: &WorldId) -> Vec<String> {
        let prefix = lwcache_domain::key::world_prefix(world);
        self.0
            .keys()
            .into_iter()
            .filter(|k| k.starts_with(&prefix))
            .collect()
    }
    async fn ttl(&self, key: &CacheKey) -> Option<Duration> {
        self.0.ttl(key)
    }
    async fn forget(&self, world: &WorldId) {
        self.0.forget(world);
    }
}

/// A fresh [`MemoryStore`] in front of `repo`.
pub fn memory_harness(repo: Arc<dyn WorldRepository>, time: Arc<dyn TimeControl>) -> Harness {
    let store = Arc::new(MemoryStore::new());
    Harness {
        store: store.clone(),
        repo,
        probe: Arc::new(MemoryProbe(store)),
        time,
    }
}
