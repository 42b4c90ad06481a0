//! A cache store decorator that counts the calls made through it: each
//! port call of the Redis adapter is one round trip (one command or one
//! EVALSHA), so the count is the activation's round trips.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use std::time::Duration;

use lwcache_core::ports::{CacheError, CacheStore, CacheWrite, Epoch, Lease, Put, WriteOutcome};
use lwcache_domain::{CacheKey, WorldId};

/// Counts every call to the wrapped store and, while recording, keeps the
/// puts of every write that was applied.
pub(crate) struct Counting<S> {
    inner: S,
    calls: AtomicU64,
    recording: Mutex<Option<Vec<Put>>>,
}

impl<S: CacheStore> Counting<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            calls: AtomicU64::new(0),
            recording: Mutex::new(None),
        }
    }

    /// Calls so far; resets the count.
    pub(crate) fn take_calls(&self) -> u64 {
        self.calls.swap(0, Ordering::SeqCst)
    }

    /// Starts keeping the puts of applied writes.
    pub(crate) fn start_recording(&self) {
        *self.lock() = Some(Vec::new());
    }

    /// The puts kept since [`Counting::start_recording`]; stops keeping them.
    pub(crate) fn take_recording(&self) -> Vec<Put> {
        self.lock().take().unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<Put>>> {
        self.recording
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl<S: CacheStore> CacheStore for Counting<S> {
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, CacheError> {
        self.count();
        self.inner.get(key).await
    }

    fn read_deadline(&self) -> Option<Duration> {
        self.inner.read_deadline()
    }

    async fn get_many(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
    ) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        self.count();
        self.inner.get_many(world, keys).await
    }

    async fn write(&self, write: &CacheWrite) -> Result<WriteOutcome, CacheError> {
        self.count();
        let outcome = self.inner.write(write).await?;
        if outcome.skipped == 0
            && let Some(puts) = self.lock().as_mut()
        {
            puts.extend(write.puts.iter().cloned());
        }
        Ok(outcome)
    }

    async fn lease(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
        lease: Lease,
        ttl: Duration,
    ) -> Result<Vec<bool>, CacheError> {
        self.count();
        self.inner.lease(world, keys, lease, ttl).await
    }

    async fn drop_world(&self, world: &WorldId) -> Result<usize, CacheError> {
        self.count();
        self.inner.drop_world(world).await
    }

    async fn version(&self, world: &WorldId) -> Result<Option<u64>, CacheError> {
        self.count();
        self.inner.version(world).await
    }

    async fn epoch(&self, world: &WorldId) -> Result<Epoch, CacheError> {
        self.count();
        self.inner.epoch(world).await
    }

    async fn remove(&self, keys: &[CacheKey]) -> Result<(), CacheError> {
        self.count();
        self.inner.remove(keys).await
    }

    async fn ping(&self) -> Result<(), CacheError> {
        self.count();
        self.inner.ping().await
    }
}
