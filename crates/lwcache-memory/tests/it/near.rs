//! The near cache over the in-memory store, whose feed delivers each commit
//! before the write returns: two instances on one store and one source,
//! single and batched reads, never older than an acknowledged write; a
//! batch of near hits asks nothing of the store; a flushed store (a
//! restarted server) empties the near cache.

use std::sync::Arc;

use lwcache_core::near::{InvalidationFeed, NearConfig};
use lwcache_core::ports::{CacheStore, WorldRepository};
use lwcache_core::{CacheManager, Fields, Outcome};
use lwcache_domain::{
    CacheKey, Document, EntityKind, EntityRef, Mutation, Op, Value, WorldId, WorldSeed,
};
use lwcache_memory::{MemoryRepository, MemoryStore};
use lwcache_testkit::decorators::Recording;

type Manager = CacheManager<Arc<Recording<Arc<MemoryStore>>>, Arc<MemoryRepository>>;

fn character(id: &str) -> EntityRef {
    EntityRef::parse(EntityKind::Character, id).unwrap()
}

fn mood(text: &str) -> Document {
    Document::new().with("mood", Value::Text(text.to_owned()))
}

async fn instances() -> (
    Manager,
    Manager,
    Arc<Recording<Arc<MemoryStore>>>,
    Arc<MemoryStore>,
    WorldId,
) {
    let store = Arc::new(MemoryStore::new());
    let repo = Arc::new(MemoryRepository::new());
    let world = WorldId::new("near").unwrap();
    repo.load(&world, &WorldSeed::default()).await.unwrap();
    for n in 0..4 {
        let op = Op::CreateEntity(character(&format!("c{n}")), mood("calm"));
        repo.apply(&Mutation {
            world: world.clone(),
            op,
        })
        .await
        .unwrap();
    }
    let build = |recording: Arc<Recording<Arc<MemoryStore>>>| {
        let feed: Arc<dyn InvalidationFeed> = store.clone();
        CacheManager::builder(recording, Arc::clone(&repo))
            .near_cache(NearConfig::default(), feed)
            .unwrap()
            .build()
            .unwrap()
    };
    let recording = Arc::new(Recording::new(Arc::clone(&store)));
    let a = build(Arc::new(Recording::new(Arc::clone(&store))));
    let b = build(Arc::clone(&recording));
    (a, b, recording, store, world)
}

#[tokio::test(start_paused = true)]
async fn another_instances_write_is_never_read_stale_single_or_batched() {
    let (a, b, _, _, world) = instances().await;
    let keys: Vec<CacheKey> = (0..4)
        .map(|n| CacheKey::entity(&world, &character(&format!("c{n}"))))
        .collect();
    let mut near_hits = 0;
    for round in 0..50 {
        // Warm B's near cache, both ways.
        for _ in 0..2 {
            b.entity(&world, &character("c0"), Fields::Cacheable)
                .await
                .unwrap();
            b.read_many(&world, &keys, Fields::Cacheable).await.unwrap();
        }
        let target = character(&format!("c{}", round % 4));
        let text = format!("round-{round}");
        let version = a
            .update_entity(&world, target.clone(), mood(&text))
            .await
            .unwrap()
            .committed
            .version;
        let single = b.entity(&world, &target, Fields::Cacheable).await.unwrap();
        assert!(single.version >= version, "round {round}: {single:?}");
        assert_eq!(single.value.get("mood"), Some(&Value::Text(text.clone())));
        let items = b.read_many(&world, &keys, Fields::Cacheable).await.unwrap();
        for (n, item) in items.into_iter().enumerate() {
            let item = item.unwrap();
            near_hits += usize::from(item.outcome == Outcome::NearHit);
            if n == round % 4 {
                assert!(item.version >= version, "round {round}, batched: {item:?}");
            }
        }
    }
    assert!(
        near_hits > 100,
        "B's batches were served near {near_hits} times"
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_of_near_hits_asks_nothing_of_the_store() {
    let (_, b, recording, _, world) = instances().await;
    let keys: Vec<CacheKey> = (0..4)
        .map(|n| CacheKey::entity(&world, &character(&format!("c{n}"))))
        .collect();
    b.read_many(&world, &keys, Fields::Cacheable).await.unwrap();
    b.read_many(&world, &keys, Fields::Cacheable).await.unwrap();
    let before = recording.calls();
    let items = b.read_many(&world, &keys, Fields::Cacheable).await.unwrap();
    assert!(
        items
            .iter()
            .all(|i| i.as_ref().unwrap().outcome == Outcome::NearHit),
        "{items:?}"
    );
    assert_eq!(recording.calls(), before, "no store call for near hits");
    // A shared read hands out the near cache's own value, every time.
    let first = b.read_shared(&keys[0], Fields::Cacheable).await.unwrap();
    let second = b.read_shared(&keys[0], Fields::Cacheable).await.unwrap();
    assert_eq!(first.outcome, Outcome::NearHit);
    assert!(Arc::ptr_eq(&first.value, &second.value), "no copy");
    assert_eq!(recording.calls(), before);
}

#[tokio::test(start_paused = true)]
async fn a_flushed_store_empties_the_near_cache() {
    let (_, b, _, store, world) = instances().await;
    let c0 = character("c0");
    b.entity(&world, &c0, Fields::Cacheable).await.unwrap();
    b.entity(&world, &c0, Fields::Cacheable).await.unwrap();
    let read = b.entity(&world, &c0, Fields::Cacheable).await.unwrap();
    assert_eq!(read.outcome, Outcome::NearHit);
    store.flush();
    assert_eq!(b.near_cache().unwrap().stats().entries, 0);
    let read = b.entity(&world, &c0, Fields::Cacheable).await.unwrap();
    assert_eq!(read.outcome, Outcome::Miss, "the restarted store is empty");
}

#[tokio::test(start_paused = true)]
async fn removed_and_dropped_keys_leave_every_near_cache() {
    let (a, b, _, _, world) = instances().await;
    let (c0, c1) = (character("c0"), character("c1"));
    for c in [&c0, &c1] {
        for _ in 0..3 {
            b.entity(&world, c, Fields::Cacheable).await.unwrap();
        }
        let read = b.entity(&world, c, Fields::Cacheable).await.unwrap();
        assert_eq!(read.outcome, Outcome::NearHit);
    }
    // An operator's eviction, through the other instance's store.
    let key = CacheKey::entity(&world, &c0);
    a.store().remove(std::slice::from_ref(&key)).await.unwrap();
    let read = b.entity(&world, &c0, Fields::Cacheable).await.unwrap();
    assert_eq!(
        read.outcome,
        Outcome::Miss,
        "the evicted key is gone from B too"
    );
    let read = b.entity(&world, &c1, Fields::Cacheable).await.unwrap();
    assert_eq!(read.outcome, Outcome::NearHit, "only the evicted key went");
    a.store().drop_world(&world).await.unwrap();
    let read = b.entity(&world, &c1, Fields::Cacheable).await.unwrap();
    assert_eq!(
        read.outcome,
        Outcome::Miss,
        "the dropped world is gone from B too"
    );
}
