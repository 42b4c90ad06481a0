//! The in-memory store's invalidation feed: every commit is delivered to
//! every follower before the write returns, so its broadcast delay is zero.
//! A ticker confirms the feed's liveness as a Redis feed's heartbeat would;
//! [`MemoryStore::flush`](crate::MemoryStore::flush), the stand-in for a
//! restarted server, reports the connection lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lwcache_core::near::{FeedGuard, InvalidationSink};
use lwcache_domain::{CacheKey, WorldId};

/// How often a follower hears that the feed is live.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(10);

/// The followers of one store.
#[derive(Default)]
pub(crate) struct Followers {
    next: AtomicU64,
    sinks: Mutex<Vec<(u64, Arc<dyn InvalidationSink>)>>,
}

impl std::fmt::Debug for Followers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Followers")
            .field("count", &self.all().len())
            .finish()
    }
}

impl Followers {
    fn all(&self) -> Vec<Arc<dyn InvalidationSink>> {
        self.sinks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(_, s)| Arc::clone(s))
            .collect()
    }

    /// Tells every follower that `keys` changed at `version`.
    pub(crate) fn invalidate(&self, keys: &[CacheKey], version: u64) {
        if keys.is_empty() {
            return;
        }
        for sink in self.all() {
            sink.invalidate(keys, version);
        }
    }

    /// Tells every follower that `world` was dropped.
    pub(crate) fn invalidate_world(&self, world: &WorldId) {
        for sink in self.all() {
            sink.invalidate_world(world);
        }
    }

    /// Tells every follower that the connection was lost.
    pub(crate) fn lost(&self) {
        for sink in self.all() {
            sink.lost();
        }
    }

    /// Adds a follower, confirmed every [`HEARTBEAT`] until the guard is
    /// dropped.
    pub(crate) fn follow(self: &Arc<Self>, sink: Arc<dyn InvalidationSink>) -> FeedGuard {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.sinks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((id, Arc::clone(&sink)));
        sink.confirmed(tokio::time::Instant::now());
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            loop {
                tick.tick().await;
                sink.confirmed(tokio::time::Instant::now());
            }
        });
        let followers = Arc::clone(self);
        FeedGuard::on_drop(move || {
            ticker.abort();
            followers
                .sinks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|(i, _)| *i != id);
        })
    }
}
