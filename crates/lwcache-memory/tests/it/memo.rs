//! The decode memo through the manager, over the in-memory store: a hit
//! whose bytes are unchanged shares the value decoded before; a write, by
//! this instance or another, is read at once; a corrupted entry is not
//! answered from the memo; with the memo off every hit decodes anew.

use std::sync::Arc;

use lwcache_core::ports::{CacheStore, WorldRepository};
use lwcache_core::{CacheManager, Fields, ManagerConfig, Outcome};
use lwcache_domain::{
    CacheKey, CachedValue, Document, EntityKind, EntityRef, Mutation, Op, Value, WorldId, WorldSeed,
};
use lwcache_memory::{MemoryRepository, MemoryStore};

type Manager = CacheManager<Arc<MemoryStore>, Arc<MemoryRepository>>;

fn mood(text: &str) -> Document {
    Document::new().with("mood", Value::Text(text.to_owned()))
}

async fn setup(memo_bytes: usize) -> (Manager, Manager, Arc<MemoryStore>, WorldId, EntityRef) {
    let store = Arc::new(MemoryStore::new());
    let repo = Arc::new(MemoryRepository::new());
    let world = WorldId::new("memo").unwrap();
    repo.load(&world, &WorldSeed::default()).await.unwrap();
    let entity = EntityRef::parse(EntityKind::Character, "c0").unwrap();
    repo.apply(&Mutation {
        world: world.clone(),
        op: Op::CreateEntity(entity.clone(), mood("calm")),
    })
    .await
    .unwrap();
    let build = || {
        let config = ManagerConfig {
            decode_memo_bytes: memo_bytes,
            ..ManagerConfig::default()
        };
        CacheManager::builder(Arc::clone(&store), Arc::clone(&repo))
            .config(config)
            .build()
            .unwrap()
    };
    (build(), build(), store, world, entity)
}

fn text(value: &CachedValue) -> String {
    match value {
        CachedValue::Entity(doc) => match doc.get("mood") {
            Some(Value::Text(t)) => t.clone(),
            other => panic!("no mood: {other:?}"),
        },
        other => panic!("not an entity: {other:?}"),
    }
}

#[tokio::test]
async fn unchanged_bytes_share_one_value_and_every_write_is_read_at_once() {
    let (a, b, _, world, entity) = setup(1 << 20).await;
    let key = CacheKey::entity(&world, &entity);
    let miss = b.read_shared(&key, Fields::Cacheable).await.unwrap();
    assert_eq!(miss.outcome, Outcome::Miss);
    let first = b.read_shared(&key, Fields::Cacheable).await.unwrap();
    let second = b.read_shared(&key, Fields::Cacheable).await.unwrap();
    assert_eq!(
        (first.outcome, second.outcome),
        (Outcome::Hit, Outcome::Hit)
    );
    assert!(
        Arc::ptr_eq(&first.value, &second.value),
        "the second hit decoded its unchanged bytes again"
    );
    for round in 0..20 {
        let (writer, reader) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let mood_now = format!("round-{round}");
        let written = writer
            .update_entity(&world, entity.clone(), mood(&mood_now))
            .await
            .unwrap();
        let read = reader.read_shared(&key, Fields::Cacheable).await.unwrap();
        assert_eq!(text(&read.value), mood_now, "round {round}");
        assert!(read.version >= written.committed.version, "round {round}");
        let typed = reader
            .entity(&world, &entity, Fields::Cacheable)
            .await
            .unwrap();
        assert_eq!(text(&CachedValue::Entity(typed.value)), mood_now);
    }
}

#[tokio::test]
async fn a_corrupted_entry_is_decoded_not_remembered() {
    let (_, b, store, world, entity) = setup(1 << 20).await;
    let key = CacheKey::entity(&world, &entity);
    b.read_shared(&key, Fields::Cacheable).await.unwrap();
    let hit = b.read_shared(&key, Fields::Cacheable).await.unwrap();
    assert_eq!(hit.outcome, Outcome::Hit);
    store.put_raw(&key, b"not an entry".to_vec());
    let read = b.read_shared(&key, Fields::Cacheable).await.unwrap();
    assert_eq!(
        read.outcome,
        Outcome::Miss,
        "bad bytes are a miss, not the memo's value"
    );
    assert_eq!(text(&read.value), "calm");
    assert!(store.get(&key).await.unwrap().is_some(), "refilled");
}

#[tokio::test]
async fn with_the_memo_off_every_hit_decodes() {
    let (_, b, _, world, entity) = setup(0).await;
    let key = CacheKey::entity(&world, &entity);
    b.read_shared(&key, Fields::Cacheable).await.unwrap();
    let first = b.read_shared(&key, Fields::Cacheable).await.unwrap();
    let second = b.read_shared(&key, Fields::Cacheable).await.unwrap();
    assert_eq!(
        (first.outcome, second.outcome),
        (Outcome::Hit, Outcome::Hit)
    );
    assert!(!Arc::ptr_eq(&first.value, &second.value));
    assert_eq!(first.value, second.value);
}
