//! A store made while nothing listens: every call fails at once with
//! `Unavailable`, the manager serves from the source, and once a server
//! comes up on the address the store connects by itself and the cache
//! fills; no new store, no restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lwcache_core::ports::{CacheError, CacheStore, WorldRepository};
use lwcache_core::{CacheManager, CacheStep, Counters, Fields, Outcome};
use lwcache_memory::MemoryRepository;
use lwcache_redis::{RedisConfig, RedisStore};
use lwcache_testkit::fixtures::{character, doc};

use lwcache_testkit::own_redis::OwnRedis;

use crate::support::{cluster_urls, seed_world};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_made_before_its_server_connects_once_it_is_up() {
    let Some(mut server) =
        OwnRedis::reserve("a_store_made_before_its_server_connects_once_it_is_up")
    else {
        return;
    };
    let config = RedisConfig::from_url(&server.url())
        .unwrap()
        .with_connect_timeout(Duration::from_millis(200))
        .with_response_timeout(Duration::from_millis(500));
    let store = RedisStore::connect_in_background(&config).expect("returns without a server");
    assert!(!store.is_connected());
    match store.ping().await {
        Err(CacheError::Unavailable(why)) => {
            assert!(why.to_string().contains("not connected yet"), "{why}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }

    let repo: Arc<dyn WorldRepository> = Arc::new(MemoryRepository::new());
    let world = seed_world(repo.as_ref(), 1).await;
    let counters = Arc::new(Counters::new());
    let m = CacheManager::builder(store.clone(), repo)
        .metrics(counters.clone())
        .build()
        .unwrap();
    let c0 = character("c0");
    let r = m.entity(&world, &c0, Fields::Cacheable).await.unwrap();
    assert_eq!(
        (r.outcome, r.value),
        (Outcome::Fallback, doc("mood", "calm"))
    );
    let w = m
        .update_entity(&world, c0.clone(), doc("mood", "steady"))
        .await
        .expect("writes are durable without the cache");
    assert_eq!(w.cache, CacheStep::Failed);

    assert!(server.spawn(), "redis-server starts on the reserved port");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut outcomes = Vec::new();
    loop {
        let r = m.entity(&world, &c0, Fields::Cacheable).await.unwrap();
        assert_eq!(r.value, doc("mood", "steady"), "never an older value");
        outcomes.push(r.outcome);
        if r.outcome == Outcome::Hit {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never served by the cache: {outcomes:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.is_connected());
    assert!(outcomes.contains(&Outcome::Miss), "filled: {outcomes:?}");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_store_connects_in_the_background_too() {
    // Nothing listens on a port just freed: calls fail at once.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = RedisConfig::cluster([format!("redis://127.0.0.1:{free}")])
        .unwrap()
        .with_connect_timeout(Duration::from_millis(200));
    let store = RedisStore::connect_in_background(&nowhere).unwrap();
    assert!(matches!(
        store.ping().await,
        Err(CacheError::Unavailable(_))
    ));

    let Some(urls) = cluster_urls() else { return };
    let config = RedisConfig::cluster(&urls).unwrap();
    let store = RedisStore::connect_in_background(&config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.ping().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the Cluster store never connected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.is_connected());
}
