//! Dropping a world's cache, owed until it is done.
//!
//! A drop deletes every key of a world, its version and leases included,
//! and tells near caches. Callers drop a world when what the cache holds of
//! it cannot be trusted: an operator's call, or a source that starts again
//! from nothing (an in-memory repository in a new process) over a cache
//! that outlived the old one. A drop that fails is not forgotten: like a
//! failed cache step, it puts the cache in trouble (reads go to the source)
//! and the replay loop makes it again, and the trouble does not end while
//! it is owed. So a key the drop should have removed is never served.

use lwcache_domain::WorldId;

use super::{CacheManager, Inner, lock};
use crate::metrics::MetricEvent;
use crate::ports::{CacheError, CacheStore, WorldRepository};

impl<S, R> CacheManager<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    /// Deletes every key of `world` from the cache, its version and leases
    /// included, and this process's near cache of it; answers how many
    /// keys went. On an error the drop is owed: reads of every world go to
    /// the source until the replay loop has made it.
    pub async fn drop_world(&self, world: &WorldId) -> Result<usize, CacheError> {
        self.inner.drop_world(world).await
    }

    /// Whether a drop of `world` is owed (made and failed, not yet made
    /// again).
    pub fn owes_drop(&self, world: &WorldId) -> bool {
        lock(&self.inner.owed_drops).contains(world)
    }
}

impl<S, R> Inner<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    pub(super) async fn drop_world(&self, world: &WorldId) -> Result<usize, CacheError> {
        if let Some(near) = &self.near {
            crate::near::InvalidationSink::invalidate_world(near.as_ref(), world);
        }
        // Owed before the call: the trouble the failed call starts can end
        // only once the drop is made, even if the replay loop runs between.
        lock(&self.owed_drops).insert(world.clone());
        let dropped = self.cache_call(self.store.drop_world(world)).await;
        match &dropped {
            Ok(keys) => {
                lock(&self.owed_drops).remove(world);
                self.metrics.record(MetricEvent::WorldDropped);
                tracing::info!(world = %world, keys, "dropped the world's cache");
            }
            Err(e) => {
                tracing::warn!(world = %world, error = %e, "could not drop the world's cache; the drop is owed and reads go to the source until it is made");
            }
        }
        dropped
    }

    /// Makes every owed drop again; answers whether none is owed now.
    pub(super) async fn make_owed_drops(&self) -> bool {
        let owed: Vec<WorldId> = lock(&self.owed_drops).iter().cloned().collect();
        let mut all = true;
        for world in owed {
            all &= self.drop_world(&world).await.is_ok();
        }
        all
    }
}
