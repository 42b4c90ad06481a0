//! Port decorators for the checks: each wraps any adapter of a port and is
//! itself an adapter of that port, so faults can be injected into a real
//! Redis or Neo4j as easily as into the in-memory adapters.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use std::time::Duration;

use lwcache_core::ports::{
    CacheError, CacheStore, CacheWrite, Claim, Epoch, Lease, SourceError, WorldRepository,
    WriteOutcome,
};
use lwcache_domain::{
    CacheKey, CachedValue, Committed, Mutation, Owed, OwedId, Versioned, WorldId, WorldImage,
    WorldSeed,
};
use tokio::sync::Notify;

/// Records the bytes of every value handed to the store, and counts the
/// calls (each one round trip to a real store).
pub struct Recording<S> {
    inner: S,
    written: Mutex<Vec<Vec<u8>>>,
    calls: AtomicUsize,
}

impl<S> Recording<S> {
    /// Wraps a store.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            written: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
        }
    }

    /// How many calls reached the store so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }

    /// Every value written so far.
    pub fn written(&self) -> Vec<Vec<u8>> {
        self.written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl<S: CacheStore> CacheStore for Recording<S> {
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
        self.written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(write.puts.iter().map(|p| p.bytes.clone()));
        self.inner.write(write).await
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
    async fn drop_world(&self, world: &WorldId) -> Result<usize, CacheError> {
        self.count();
        self.inner.drop_world(world).await
    }
    async fn ping(&self) -> Result<(), CacheError> {
        self.count();
        self.inner.ping().await
    }
}

/// Fails every call while switched on, as an unreachable server would.
pub struct Faulty<S> {
    inner: S,
    failing: AtomicBool,
}

impl<S> Faulty<S> {
    /// Wraps a store, initially healthy.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            failing: AtomicBool::new(false),
        }
    }

    /// Switches the failure on or off.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), CacheError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(CacheError::Unavailable("injected fault".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl<S: CacheStore> CacheStore for Faulty<S> {
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, CacheError> {
        self.check()?;
        self.inner.get(key).await
    }
    async fn get_many(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
    ) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        self.check()?;
        self.inner.get_many(world, keys).await
    }
    async fn write(&self, write: &CacheWrite) -> Result<WriteOutcome, CacheError> {
        self.check()?;
        self.inner.write(write).await
    }
    async fn lease(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
        lease: Lease,
        ttl: Duration,
    ) -> Result<Vec<bool>, CacheError> {
        self.check()?;
        self.inner.lease(world, keys, lease, ttl).await
    }
    async fn drop_world(&self, world: &WorldId) -> Result<usize, CacheError> {
        self.check()?;
        self.inner.drop_world(world).await
    }
    async fn version(&self, world: &WorldId) -> Result<Option<u64>, CacheError> {
        self.check()?;
        self.inner.version(world).await
    }
    async fn epoch(&self, world: &WorldId) -> Result<Epoch, CacheError> {
        self.check()?;
        self.inner.epoch(world).await
    }
    async fn remove(&self, keys: &[CacheKey]) -> Result<(), CacheError> {
        self.check()?;
        self.inner.remove(keys).await
    }
    async fn ping(&self) -> Result<(), CacheError> {
        self.check()?;
        self.inner.ping().await
    }
}

/// Pauses reads of one key between the source read and its return, so a
/// check can interleave a write exactly there.
pub struct Gated<R> {
    inner: R,
    gate: Mutex<Option<CacheKey>>,
    reached: Arc<Notify>,
    released: Arc<Notify>,
}

impl<R> Gated<R> {
    /// Wraps a repository, with no gate armed.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            gate: Mutex::new(None),
            reached: Arc::new(Notify::new()),
            released: Arc::new(Notify::new()),
        }
    }

    /// Arms the gate for the next read of `key`.
    pub fn arm(&self, key: CacheKey) {
        *self.gate.lock().unwrap_or_else(PoisonError::into_inner) = Some(key);
    }

    /// Waits until a read has reached the gate (its value already read).
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Lets the paused read go on.
    pub fn release(&self) {
        self.released.notify_one();
    }

    /// The race in one call: spawns `read`, waits until it has read `key`
    /// from the source and is paused there, runs `between` to completion,
    /// then lets the read finish. Returns both outputs; a panic in `read`
    /// is a panic here.
    pub async fn interleave<T, U>(
        &self,
        key: CacheKey,
        read: impl Future<Output = T> + Send + 'static,
        between: impl Future<Output = U>,
    ) -> (T, U)
    where
        T: Send + 'static,
    {
        self.arm(key);
        let reader = tokio::spawn(read);
        self.reached().await;
        let between = between.await;
        self.release();
        match reader.await {
            Ok(read) => (read, between),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

#[async_trait]
impl<R: WorldRepository> WorldRepository for Gated<R> {
    async fn version(&self, world: &WorldId) -> Result<u64, SourceError> {
        self.inner.version(world).await
    }
    async fn read(
        &self,
        key: &CacheKey,
        limit: usize,
    ) -> Result<Versioned<CachedValue>, SourceError> {
        let value = self.inner.read(key, limit).await;
        let armed = {
            let mut gate = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
            if gate.as_ref() == Some(key) {
                gate.take();
                true
            } else {
                false
            }
        };
        if armed {
            self.reached.notify_one();
            self.released.notified().await;
        }
        value
    }
    async fn image(
        &self,
        world: &WorldId,
        top_k: usize,
    ) -> Result<Versioned<WorldImage>, SourceError> {
        self.inner.image(world, top_k).await
    }
    async fn apply(&self, mutation: &Mutation) -> Result<Committed, SourceError> {
        self.inner.apply(mutation).await
    }
    async fn load(&self, world: &WorldId, seed: &WorldSeed) -> Result<u64, SourceError> {
        self.inner.load(world, seed).await
    }
    async fn owed(&self, claim: &Claim) -> Result<Vec<Owed>, SourceError> {
        self.inner.owed(claim).await
    }
    async fn settle(&self, done: &[OwedId]) -> Result<(), SourceError> {
        self.inner.settle(done).await
    }
    async fn ping(&self) -> Result<(), SourceError> {
        self.inner.ping().await
    }
}

#[cfg(test)]
mod tests {
    use lwcache_core::ports::Put;
    use lwcache_domain::{Op, WorldSeed};
    use lwcache_memory::{MemoryRepository, MemoryStore};

    use super::*;
    use crate::fixtures::{doc, flag, fresh_world};

    /// A commit that carries the epoch the plain store holds for `world`.
    fn commit(world: &WorldId, version: u64, key: &CacheKey, tag: &str) -> CacheWrite {
        CacheWrite::commit(
            world.clone(),
            version,
            Some(EPOCH),
            vec![Put {
                key: key.clone(),
                bytes: crate::store::entry(version, tag),
                ttl: None,
            }],
        )
    }

    /// A fresh in-memory store's first epoch.
    const EPOCH: Epoch = Epoch(1);

    #[tokio::test]
    async fn recording_keeps_every_put_and_forwards_every_call() {
        let store = Recording::new(MemoryStore::new());
        let world = fresh_world();
        let key = CacheKey::state(&world);
        assert_eq!(store.epoch(&world).await.unwrap(), EPOCH);
        let outcome = store.write(&commit(&world, 2, &key, "a")).await.unwrap();
        assert_eq!(outcome.landed, 1);
        assert_eq!(store.version(&world).await.unwrap(), Some(2));
        // A refused put was still handed to the store: it is recorded.
        let outcome = store.write(&commit(&world, 1, &key, "b")).await.unwrap();
        assert_eq!(outcome.skipped, 1);
        let (a, b) = (crate::store::entry(2, "a"), crate::store::entry(1, "b"));
        assert_eq!(store.written(), [a.clone(), b]);
        assert_eq!(store.get(&key).await.unwrap(), Some(a));
        let lease = lwcache_core::ports::Lease(7);
        let held = store
            .lease(
                &world,
                std::slice::from_ref(&key),
                lease,
                std::time::Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(held, [true]);
        store.remove(std::slice::from_ref(&key)).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap(), None);
        assert!(store.drop_world(&world).await.unwrap() >= 1);
        store.ping().await.unwrap();
    }

    #[tokio::test]
    async fn faulty_fails_every_call_while_on_and_changes_nothing() {
        let store = Faulty::new(MemoryStore::new());
        let world = fresh_world();
        let key = CacheKey::state(&world);
        assert_eq!(store.epoch(&world).await.unwrap(), EPOCH);
        store.write(&commit(&world, 1, &key, "a")).await.unwrap();

        store.set_failing(true);
        let unavailable = |r: Result<(), CacheError>| {
            assert!(matches!(r, Err(CacheError::Unavailable(_))), "{r:?}");
        };
        unavailable(store.get(&key).await.map(drop));
        unavailable(store.epoch(&world).await.map(drop));
        unavailable(store.write(&commit(&world, 2, &key, "b")).await.map(drop));
        unavailable(
            store
                .lease(
                    &world,
                    std::slice::from_ref(&key),
                    lwcache_core::ports::Lease(1),
                    std::time::Duration::from_secs(1),
                )
                .await
                .map(drop),
        );
        unavailable(store.version(&world).await.map(drop));
        unavailable(store.remove(std::slice::from_ref(&key)).await);
        unavailable(store.drop_world(&world).await.map(drop));
        unavailable(store.ping().await);

        store.set_failing(false);
        assert_eq!(store.version(&world).await.unwrap(), Some(1));
        assert_eq!(
            store.get(&key).await.unwrap(),
            Some(crate::store::entry(1, "a"))
        );
        store.ping().await.unwrap();
    }

    #[tokio::test]
    async fn gated_forwards_every_call_and_pauses_only_the_armed_read_once() {
        let repo = Arc::new(Gated::new(MemoryRepository::new()));
        let world = fresh_world();
        let seed = WorldSeed {
            snapshot: doc("title", "gated"),
            ..WorldSeed::default()
        };
        let loaded = repo.load(&world, &seed).await.unwrap();
        assert_eq!(repo.version(&world).await.unwrap(), loaded);
        repo.ping().await.unwrap();
        let image = repo.image(&world, 5).await.unwrap();
        assert_eq!(image.version, loaded);

        let key = CacheKey::state(&world);
        let reader = {
            let repo = repo.clone();
            let key = key.clone();
            async move { repo.read(&key, 5).await.unwrap() }
        };
        let write = Mutation {
            world: world.clone(),
            op: Op::SetFlag(flag("open"), lwcache_domain::Value::Bool(true)),
        };
        let (read, committed) = repo
            .interleave(key.clone(), reader, repo.apply(&write))
            .await;
        let committed = committed.unwrap();
        // The read took its value before the write committed.
        assert_eq!(read.version, loaded);
        assert!(committed.version > loaded);
        // Disarmed: the next read of the same key does not wait.
        let again = repo.read(&key, 5).await.unwrap();
        assert_eq!(again.version, committed.version);
    }
}
