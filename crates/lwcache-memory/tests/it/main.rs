//! The conformance suite against the in-memory adapters, on tokio's paused
//! clock.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lwcache_domain::{CacheKey, WorldId};
use lwcache_memory::{MemoryRepository, MemoryStore};
use lwcache_testkit::{Harness, PausedClock, StoreProbe};

struct Probe(Arc<MemoryStore>);

#[async_trait]
impl StoreProbe for Probe {
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

async fn harness() -> Option<Harness> {
    let store = Arc::new(MemoryStore::new());
    Some(Harness {
        store: store.clone(),
        repo: Arc::new(MemoryRepository::new()),
        probe: Arc::new(Probe(store)),
        time: Arc::new(PausedClock),
    })
}

mod conformance {
    use super::harness;
    lwcache_testkit::conformance_tests!(harness(), (start_paused = true));
}
