//! The background refresher and warming what is active, on the in-memory
//! adapters and tokio's paused clock: a popular key is refreshed before its
//! TTL ends and an unpopular one is not, a refresh racing a write never
//! leaves the older value, a deactivated world is not refreshed, and an
//! activation with a budget warms the active entities within it.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed unwrap is a failed test"
)]

use std::sync::Arc;
use std::time::Duration;

use lwcache_core::{CacheManager, Counters, Fields, ManagerConfig, Outcome, RefreshConfig};
use lwcache_domain::{
    CacheKey, Document, EntityKind, EntityRef, EventKind, NewEvent, Op, Value, WorldId, WorldSeed,
};
use lwcache_memory::{MemoryRepository, MemoryStore};
use lwcache_testkit::decorators::Gated;
use lwcache_testkit::fixtures::{character, doc, fresh_world, seed_ops};

/// Entity entries live 10 s, unjittered; the refresher looks every 500 ms
/// and refreshes entries read at least 4 times in their last 2 s.
fn config() -> ManagerConfig {
    let mut config = ManagerConfig::default();
    config.policy.entity.ttl = Some(Duration::from_secs(10));
    config.policy.expiry.jitter_percent = 0;
    config.refresh = Some(RefreshConfig {
        lead_percent: 20,
        interval: Duration::from_millis(500),
        min_reads: 4,
        ..RefreshConfig::default()
    });
    config
}

type Manager<R> = CacheManager<Arc<MemoryStore>, Arc<R>>;

fn manager<R: lwcache_core::WorldRepository + 'static>(
    repo: &Arc<R>,
    config: ManagerConfig,
) -> (Manager<R>, Arc<Counters>) {
    let counters = Arc::new(Counters::new());
    let manager = CacheManager::builder(Arc::new(MemoryStore::new()), Arc::clone(repo))
        .config(config)
        .metrics(counters.clone())
        .try_build()
        .unwrap();
    (manager, counters)
}

async fn two_entities<R: lwcache_core::WorldRepository>(
    repo: &R,
) -> (WorldId, EntityRef, EntityRef) {
    let (hot, cold) = (character("hot"), character("cold"));
    let world = seed_ops(
        repo,
        [
            Op::ReplaceSnapshot(doc("name", "w")),
            Op::CreateEntity(hot.clone(), doc("v", "1")),
            Op::CreateEntity(cold.clone(), doc("v", "1")),
        ],
    )
    .await;
    (world, hot, cold)
}

async fn outcome<R: lwcache_core::WorldRepository + 'static>(
    m: &Manager<R>,
    world: &WorldId,
    e: &EntityRef,
) -> Outcome {
    m.entity(world, e, Fields::Cacheable).await.unwrap().outcome
}

#[tokio::test(start_paused = true)]
async fn a_popular_key_is_refreshed_before_its_ttl_and_an_unpopular_one_is_not() {
    let repo = Arc::new(MemoryRepository::new());
    let (world, hot, cold) = two_entities(&*repo).await;
    let (m, counters) = manager(&repo, config());
    for _ in 0..10 {
        m.entity(&world, &hot, Fields::Cacheable).await.unwrap();
    }
    assert_eq!(outcome(&m, &world, &cold).await, Outcome::Miss);
    // Past both TTLs' lead windows, within the hot key's refreshed TTL.
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    assert_eq!(counters.snapshot().refreshes, 1);
    assert_eq!(outcome(&m, &world, &hot).await, Outcome::Hit);
    assert_eq!(outcome(&m, &world, &cold).await, Outcome::Miss);
    // Read since its refresh, the hot key stays fresh round after round.
    for _ in 0..4 {
        for _ in 0..4 {
            m.entity(&world, &hot, Fields::Cacheable).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert_eq!(outcome(&m, &world, &hot).await, Outcome::Hit);
    }
    assert!(counters.snapshot().refreshes >= 4);
}

#[tokio::test(start_paused = true)]
async fn a_key_no_longer_read_is_not_refreshed_again() {
    let repo = Arc::new(MemoryRepository::new());
    let (world, hot, _) = two_entities(&*repo).await;
    let (m, counters) = manager(&repo, config());
    for _ in 0..10 {
        m.entity(&world, &hot, Fields::Cacheable).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(counters.snapshot().refreshes, 1);
    assert_eq!(outcome(&m, &world, &hot).await, Outcome::Miss);
}

#[tokio::test(start_paused = true)]
async fn a_refresh_racing_a_write_never_leaves_the_older_value() {
    let repo = Arc::new(Gated::new(MemoryRepository::new()));
    let (world, hot, _) = two_entities(&*repo).await;
    let (m, counters) = manager(&repo, config());
    for _ in 0..10 {
        m.entity(&world, &hot, Fields::Cacheable).await.unwrap();
    }
    // The refresher's source read of the hot key pauses once it has read
    // the old value; a write commits and runs its cache step meanwhile.
    repo.arm(CacheKey::entity(&world, &hot));
    let reached = tokio::time::timeout(Duration::from_secs(20), repo.reached()).await;
    assert!(reached.is_ok(), "the refresher never read the popular key");
    let written = m
        .update_entity(&world, hot.clone(), doc("v", "2"))
        .await
        .unwrap();
    repo.release();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let snapshot = counters.snapshot();
    assert_eq!(snapshot.refreshes, 1);
    assert_eq!(snapshot.fills_rejected, 1);
    let read = m.entity(&world, &hot, Fields::Cacheable).await.unwrap();
    assert_eq!(read.value, doc("v", "2"));
    assert_eq!(read.version, written.committed.version);
}

#[tokio::test(start_paused = true)]
async fn a_deactivated_world_is_not_refreshed_until_activated_again() {
    let repo = Arc::new(MemoryRepository::new());
    let (world, hot, _) = two_entities(&*repo).await;
    let (m, counters) = manager(&repo, config());
    for _ in 0..10 {
        m.entity(&world, &hot, Fields::Cacheable).await.unwrap();
    }
    m.deactivate(&world);
    assert!(!m.is_active(&world));
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    assert_eq!(counters.snapshot().refreshes, 0);
    assert_eq!(outcome(&m, &world, &hot).await, Outcome::Miss);

    m.activate(&world).await.unwrap();
    assert!(m.is_active(&world));
    for _ in 0..10 {
        m.entity(&world, &hot, Fields::Cacheable).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    assert_eq!(counters.snapshot().refreshes, 1);
    assert_eq!(outcome(&m, &world, &hot).await, Outcome::Hit);
}

/// A world of `n` characters `c00000`…, with one event each for the
/// characters in `with_events`, in that order (the last is the newest).
fn seed(n: usize, with_events: &[usize]) -> WorldSeed {
    let name = |i: usize| EntityRef::parse(EntityKind::Character, &format!("c{i:05}")).unwrap();
    WorldSeed {
        snapshot: Document::new().with("name", Value::Text("w".into())),
        flags: Vec::new(),
        entities: (0..n).map(|i| (name(i), doc("v", "1"))).collect(),
        events: with_events
            .iter()
            .map(|&i| NewEvent {
                entity: name(i).entity_id(),
                kind: EventKind::new("tick").unwrap(),
                at_ms: 0,
                data: Document::new(),
                top_k: 10,
            })
            .collect(),
    }
}

async fn load(repo: &MemoryRepository, world: &WorldId, seed: &WorldSeed) {
    lwcache_core::WorldRepository::load(repo, world, seed)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_activation_within_a_budget_warms_the_active_entities() {
    let repo = Arc::new(MemoryRepository::new());
    let world = fresh_world();
    // Events for 40, then 7, then 3: 3 has the newest.
    load(&repo, &world, &seed(10_000, &[40, 7, 3])).await;
    let mut config = ManagerConfig::default();
    config.warm_budget = Some(2 + 2 * 3);
    let (m, counters) = manager(&repo, config);
    let read_lately = EntityRef::parse(EntityKind::Character, "c09999").unwrap();
    for _ in 0..3 {
        m.entity(&world, &read_lately, Fields::Cacheable)
            .await
            .unwrap();
    }
    let report = m.activate(&world).await.unwrap();
    assert_eq!(report.keys, 8);
    assert_eq!(counters.snapshot().warm_count, 8);
    let mut keys = m.store().keys();
    keys.sort();
    let mut expected: Vec<String> = [CacheKey::flags(&world), CacheKey::state(&world)]
        .into_iter()
        .chain(["c09999", "c00003", "c00007"].iter().flat_map(|id| {
            let e = EntityRef::parse(EntityKind::Character, id).unwrap();
            [
                CacheKey::entity(&world, &e),
                CacheKey::timeline(&world, &e.entity_id()),
            ]
        }))
        .map(|k| k.to_string())
        .collect();
    expected.sort();
    assert_eq!(keys, expected);
}

#[tokio::test(start_paused = true)]
async fn an_activation_without_a_budget_warms_every_entity() {
    let repo = Arc::new(MemoryRepository::new());
    let world = fresh_world();
    load(&repo, &world, &seed(300, &[1])).await;
    let (m, _) = manager(&repo, ManagerConfig::default());
    let report = m.activate(&world).await.unwrap();
    assert_eq!(report.keys, 2 + 2 * 300);
}
