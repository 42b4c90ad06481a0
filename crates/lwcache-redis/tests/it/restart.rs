//! Redis stopped in the middle of a session and started again: no caller
//! error, reads keep being served, and the cache refills after the restart;
//! a commit step prepared before the restart lands tombstones after it.
//!
//! This test owns its redis-server (the testkit's `OwnRedis`), because only
//! the process that started a server can stop it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lwcache_core::codec;
use lwcache_core::ports::{CacheStore, CacheWrite, Put, WorldRepository};
use lwcache_core::{CacheManager, CacheStep, Counters, Fields, ManagerConfig, Outcome};
use lwcache_domain::CacheKey;
use lwcache_memory::MemoryRepository;
use lwcache_redis::{RedisConfig, RedisStore};
use lwcache_testkit::fixtures::{character, doc, fresh_world};
use lwcache_testkit::own_redis::OwnRedis;
use lwcache_testkit::store::entry;

use crate::support::seed_world;

/// A store over `server` that gives up on it quickly, so that the tests
/// see its restart within their bounds.
async fn connect(server: &OwnRedis) -> RedisStore {
    let config = RedisConfig::from_url(&server.url())
        .unwrap()
        .with_connect_timeout(Duration::from_millis(200))
        .with_response_timeout(Duration::from_millis(200));
    RedisStore::connect(&config).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_restarted_mid_session() {
    let Some(mut server) = OwnRedis::start("redis_stopped_and_restarted_mid_session") else {
        return;
    };
    let store = connect(&server).await;
    let repo: Arc<dyn WorldRepository> = Arc::new(MemoryRepository::new());
    let world = seed_world(repo.as_ref(), 1).await;
    let counters = Arc::new(Counters::new());
    let mut mc = ManagerConfig::default();
    mc.cache_timeout = Duration::from_millis(300);
    let m = CacheManager::builder(store, repo)
        .config(mc)
        .metrics(counters.clone())
        .build()
        .unwrap();
    let c0 = character("c0");
    m.activate(&world).await.expect("activate");
    assert_eq!(
        m.entity(&world, &c0, Fields::Cacheable)
            .await
            .unwrap()
            .outcome,
        Outcome::Hit
    );

    server.stop();
    for _ in 0..3 {
        let r = m
            .entity(&world, &c0, Fields::Cacheable)
            .await
            .expect("reads survive");
        assert_eq!(
            (r.outcome, r.value),
            (Outcome::Fallback, doc("mood", "calm"))
        );
    }
    let w = m
        .update_entity(&world, c0.clone(), doc("mood", "steady"))
        .await
        .expect("writes survive");
    assert_eq!(w.cache, CacheStep::Failed);
    let r = m.entity(&world, &c0, Fields::Cacheable).await.unwrap();
    assert_eq!(
        (r.outcome, r.value),
        (Outcome::Fallback, doc("mood", "steady"))
    );

    assert!(server.spawn(), "redis-server restarts on the same port");
    // The connection manager reconnects by itself; until it has, reads are
    // still served by the source.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut outcomes = Vec::new();
    loop {
        let r = m
            .entity(&world, &c0, Fields::Cacheable)
            .await
            .expect("reads survive");
        assert_eq!(
            r.value,
            doc("mood", "steady"),
            "never a stale or lost value"
        );
        outcomes.push(r.outcome);
        if r.outcome == Outcome::Hit {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cache never refilled: {outcomes:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        outcomes.contains(&Outcome::Miss),
        "refilled by a miss: {outcomes:?}"
    );
    assert!(counters.snapshot().fallbacks >= 4);
}

/// A commit step prepared before a restart that lost a newer entry, and
/// sent after it (a paused process, a retry): the server restarted empty
/// holds another epoch, so the step lands the tombstone of its version, not
/// its older value, and says so; a writer that learns the new epoch lands
/// values again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_prepared_before_a_restart_lands_tombstones_after_it() {
    let Some(mut server) =
        OwnRedis::start("a_commit_prepared_before_a_restart_lands_tombstones_after_it")
    else {
        return;
    };
    let store = connect(&server).await;
    let world = fresh_world();
    let key = CacheKey::entity(&world, &character("c0"));
    let commit = |version, epoch| {
        CacheWrite::commit(
            world.clone(),
            version,
            epoch,
            vec![Put {
                key: key.clone(),
                bytes: entry(version, "v"),
                ttl: None,
            }],
        )
    };
    let before = store.epoch(&world).await.expect("the epoch");
    // The older write's step, prepared now and sent after the restart.
    let older = commit(4, Some(before));
    let newer = store.write(&commit(5, Some(before))).await.unwrap();
    assert_eq!((newer.landed, newer.epoch_lost), (1, false));

    server.stop();
    assert!(server.spawn(), "redis-server restarts on the same port");
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "the store never reconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.get(&key).await.unwrap(), None, "restarted empty");

    let late = store.write(&older).await.expect("the late step lands");
    assert_eq!((late.landed, late.epoch_lost), (1, true), "{late:?}");
    assert_eq!(
        store.get(&key).await.unwrap(),
        Some(codec::tombstone(4)),
        "a miss, not v4's value over the lost v5"
    );
    let after = store.epoch(&world).await.unwrap();
    assert_ne!(after, before);
    let fresh = store.write(&commit(6, Some(after))).await.unwrap();
    assert_eq!((fresh.landed, fresh.epoch_lost), (1, false));
    assert_eq!(store.get(&key).await.unwrap(), Some(entry(6, "v")));
}
