//! End-to-end: many players taking turns at once on one world, through the
//! cache manager, then a check that every cached entry agrees with the
//! source of truth.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod real;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use lwcache_core::ports::{CacheStore, Claim, SourceError, WorldRepository};
use lwcache_core::{CacheManager, Counters, Fields, ManagerConfig, codec};
use lwcache_domain::{
    CacheKey, CachedValue, Committed, Document, EntityKind, EntityRef, EventKind, FlagName,
    Mutation, Owed, OwedId, Value, Versioned, WorldId, WorldImage, WriteMode,
};
use lwcache_memory::{MemoryRepository, MemoryStore};

const PLAYERS: u64 = 8;
const TURNS: u64 = 300;
const IDS: [&str; 6] = ["ada", "bo", "cy", "pier", "lamp", "door"];

fn entity(i: u64) -> EntityRef {
    let kind = EntityKind::ALL[(i % 3) as usize];
    EntityRef::parse(kind, IDS[(i % 6) as usize]).unwrap()
}

/// A small xorshift generator: the turns are random but repeatable.
fn rng(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move |n| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s % n
    }
}

/// Yields to the scheduler a varying number of times after each source
/// call, so that other players' turns run between a read and its fill, as
/// they would over a network.
struct Yielding {
    inner: MemoryRepository,
    calls: AtomicU64,
}

impl Yielding {
    async fn pause(&self) {
        let n = self.calls.fetch_add(1, Ordering::Relaxed) % 7;
        for _ in 0..n {
            tokio::task::yield_now().await;
        }
    }
}

#[async_trait]
impl WorldRepository for Yielding {
    async fn version(&self, world: &WorldId) -> Result<u64, SourceError> {
        let v = self.inner.version(world).await;
        self.pause().await;
        v
    }
    async fn read(
        &self,
        key: &CacheKey,
        limit: usize,
    ) -> Result<Versioned<CachedValue>, SourceError> {
        let v = self.inner.read(key, limit).await;
        self.pause().await;
        v
    }
    async fn image(
        &self,
        world: &WorldId,
        top_k: usize,
    ) -> Result<Versioned<WorldImage>, SourceError> {
        let v = self.inner.image(world, top_k).await;
        self.pause().await;
        v
    }
    async fn apply(&self, mutation: &Mutation) -> Result<Committed, SourceError> {
        let v = self.inner.apply(mutation).await;
        self.pause().await;
        v
    }
    async fn owed(&self, claim: &Claim) -> Result<Vec<Owed>, SourceError> {
        let v = self.inner.owed(claim).await;
        self.pause().await;
        v
    }
    async fn settle(&self, done: &[OwedId]) -> Result<(), SourceError> {
        let v = self.inner.settle(done).await;
        self.pause().await;
        v
    }
    async fn ping(&self) -> Result<(), SourceError> {
        self.inner.ping().await
    }
}

async fn concurrent_turns_leave_the_cache_consistent(mode: WriteMode) {
    let store = Arc::new(MemoryStore::new());
    let repo = Arc::new(Yielding {
        inner: MemoryRepository::new(),
        calls: AtomicU64::new(0),
    });
    let counters = Arc::new(Counters::new());
    let mut config = ManagerConfig::default();
    config.policy.entity.mode = mode;
    config.policy.timeline_top_k = 5;
    let m = CacheManager::builder(store.clone(), repo.clone())
        .config(config)
        .metrics(counters.clone())
        .build()
        .unwrap();
    let world = WorldId::new("e2e").unwrap();
    m.replace_snapshot(&world, Document::new()).await.unwrap();
    for i in 0..6 {
        m.put_entity(&world, entity(i), Document::new())
            .await
            .unwrap();
    }
    m.activate(&world).await.unwrap();

    let mut players = Vec::new();
    for p in 0..PLAYERS {
        let (m, world) = (m.clone(), world.clone());
        players.push(tokio::spawn(async move {
            let mut next = rng(p + 1);
            for turn in 0..TURNS {
                let e = entity(next(6));
                let doc = Document::new()
                    .with("player", Value::Int(p as i64))
                    .with("turn", Value::Int(turn as i64));
                // Refusals (a deleted entity, a taken id) are part of play.
                let _ = match next(10) {
                    0 => m.world_state(&world).await.map(drop),
                    1 => m.flags(&world).await.map(drop),
                    2 | 3 => m.entity(&world, &e, Fields::Cacheable).await.map(drop),
                    4 => m.recent(&world, &e.entity_id(), 5).await.map(drop),
                    5 => m.put_entity(&world, e, doc).await.map(drop),
                    6 => {
                        let name = FlagName::new(format!("f{}", next(3))).unwrap();
                        m.set_flag(&world, name, Value::Int(turn as i64))
                            .await
                            .map(drop)
                    }
                    7 => m
                        .add_event(&world, e.entity_id(), EventKind::new("turn").unwrap(), doc)
                        .await
                        .map(drop),
                    8 if next(8) == 0 => m.delete_entity(&world, e).await.map(drop),
                    _ => m.replace_snapshot(&world, doc).await.map(drop),
                };
            }
        }));
    }
    for p in players {
        p.await.unwrap();
    }
    m.settle().await;

    // Every entry the cache holds equals what the source holds now.
    let mut checked = 0;
    let mut keys = vec![CacheKey::state(&world), CacheKey::flags(&world)];
    for i in 0..6 {
        keys.push(CacheKey::entity(&world, &entity(i)));
        keys.push(CacheKey::timeline(&world, &entity(i).entity_id()));
    }
    for key in keys {
        let Some(bytes) = store.get(&key).await.unwrap() else {
            continue;
        };
        let entry = match codec::decode_slot(&bytes).unwrap() {
            codec::Slot::Value(entry) => entry,
            // Invalidated: nothing cached to compare.
            codec::Slot::Tombstone { .. } => continue,
            codec::Slot::Absent { entity } => {
                assert!(
                    repo.read(&key, 5).await.is_err(),
                    "{key} is cached as no {entity} but the source has it"
                );
                continue;
            }
        };
        let source = repo.read(&key, 5).await;
        let source = source.unwrap_or_else(|e| panic!("{key} is cached but the source says {e}"));
        assert_eq!(entry.value, source.value, "{key} is stale ({mode:?})");
        checked += 1;
    }
    assert!(checked >= 4, "the check looked at {checked} entries");
    let c = counters.snapshot();
    assert!(c.hits > 0 && c.misses > 0, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_turns_with_write_through() {
    concurrent_turns_leave_the_cache_consistent(WriteMode::WriteThrough).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_turns_with_invalidation() {
    concurrent_turns_leave_the_cache_consistent(WriteMode::Invalidate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_turns_with_write_behind() {
    concurrent_turns_leave_the_cache_consistent(WriteMode::WriteBehind).await;
}
