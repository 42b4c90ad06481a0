//! Two instances with near caches on one real Redis: a write through A is
//! never read stale from B's near cache later than the declared bound, and
//! B's invalidation connection, reached through the testkit's proxy, can be
//! cut or blackholed: B's near cache empties and is bypassed until the feed
//! is back. Also on the Cluster, where the publish crosses the cluster bus.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lwcache_core::near::NearConfig;
use lwcache_core::ports::{CacheStore, WorldRepository};
use lwcache_core::{CacheManager, Fields, Outcome};
use lwcache_domain::{Value, WorldId};
use lwcache_memory::MemoryRepository;
use lwcache_redis::{RedisConfig, RedisFeed, RedisStore};
use lwcache_testkit::fixtures::{character, doc};
use lwcache_testkit::proxy::{Fault, Proxy};

use crate::support::{cluster_urls, seed_world, standalone_url, upstream};

type Manager = CacheManager<RedisStore, Arc<dyn WorldRepository>>;

/// The bound a hit may rely on: the feed's last confirmation is at most
/// this old. The feed beats every 20 ms.
const MAX_LAG: Duration = Duration::from_millis(200);

/// An instance over the store `store_urls` names, following the feed at
/// `feed_urls`; `cluster` picks the topology.
async fn instance(
    repo: Arc<dyn WorldRepository>,
    store_urls: &[String],
    feed_urls: &[String],
) -> Manager {
    let config = |urls: &[String]| {
        let c = if urls.len() == 1 {
            RedisConfig::from_url(&urls[0]).unwrap()
        } else {
            RedisConfig::cluster(urls.iter().map(String::as_str)).unwrap()
        };
        c.with_response_timeout(Duration::from_millis(300))
    };
    let store = RedisStore::connect(&config(store_urls)).await.unwrap();
    let feed = RedisFeed::new(&config(feed_urls))
        .unwrap()
        .with_heartbeat(Duration::from_millis(20));
    let near = NearConfig {
        max_lag: MAX_LAG,
        ..NearConfig::default()
    };
    CacheManager::builder(store, repo)
        .near_cache(near, Arc::new(feed))
        .unwrap()
        .build()
        .unwrap()
}

/// Two instances over the standalone server at `url`, sharing one source
/// that holds a world of two characters.
async fn two_instances(url: String) -> (Manager, Manager, WorldId) {
    let repo: Arc<dyn WorldRepository> = Arc::new(MemoryRepository::new());
    let world = seed_world(repo.as_ref(), 2).await;
    let urls = [url];
    let a = instance(repo.clone(), &urls, &urls).await;
    let b = instance(repo, &urls, &urls).await;
    (a, b, world)
}

/// Waits (up to 5 s) until `m`'s near cache is live.
async fn coherent(m: &Manager) {
    let started = Instant::now();
    while !m.near_cache().unwrap().coherent() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the feed never confirmed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Writes through A and reads through B until B sees each write, checking
/// that no read of B older than the write comes later than `MAX_LAG` after
/// its acknowledgement. Returns the delays until B saw each write, and how
/// many of B's reads were near hits.
async fn writes_reach_the_other_instance(
    a: &Manager,
    b: &Manager,
    world: &WorldId,
) -> (Vec<Duration>, usize) {
    let c0 = character("c0");
    let (mut delays, mut near_hits) = (Vec::new(), 0);
    for round in 0..60 {
        // B reads until its near cache holds the entity.
        for _ in 0..50 {
            let read = b.entity(world, &c0, Fields::Cacheable).await.unwrap();
            if read.outcome == Outcome::NearHit {
                near_hits += 1;
                break;
            }
        }
        let mood = format!("mood-{round}");
        let written = a
            .update_entity(world, c0.clone(), doc("mood", &mood))
            .await
            .unwrap();
        let acked = Instant::now();
        let version = written.committed.version;
        loop {
            let read = b.entity(world, &c0, Fields::Cacheable).await.unwrap();
            near_hits += usize::from(read.outcome == Outcome::NearHit);
            if read.version >= version {
                assert_eq!(read.value.get("mood"), Some(&Value::Text(mood.clone())));
                delays.push(acked.elapsed());
                break;
            }
            assert!(
                acked.elapsed() <= MAX_LAG,
                "B served version {} ({:?}) {:?} after A acknowledged version {version}",
                read.version,
                read.outcome,
                acked.elapsed()
            );
            tokio::task::yield_now().await;
        }
    }
    (delays, near_hits)
}

fn report(name: &str, mut delays: Vec<Duration>) {
    delays.sort();
    let at = |q: f64| delays[((delays.len() - 1) as f64 * q) as usize];
    eprintln!(
        "{name}: {} writes seen by the other instance after p50 {:?}, p99 {:?}, max {:?}",
        delays.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_instance_never_reads_stale_from_the_others_near_cache() {
    let Some(url) = standalone_url() else { return };
    let (a, b, world) = two_instances(url).await;
    coherent(&a).await;
    coherent(&b).await;
    a.activate(&world).await.unwrap();
    let (delays, near_hits) = writes_reach_the_other_instance(&a, &b, &world).await;
    assert!(near_hits >= 60, "B's near cache served {near_hits} reads");
    report("standalone", delays);
    // Read-your-writes on A: its own write is seen at once, whatever the
    // feed's delay.
    let c0 = character("c0");
    for n in 0..20 {
        a.entity(&world, &c0, Fields::Cacheable).await.unwrap();
        let w = a
            .update_entity(&world, c0.clone(), doc("mood", &format!("own-{n}")))
            .await
            .unwrap();
        let read = a.entity(&world, &c0, Fields::Cacheable).await.unwrap();
        assert!(read.version >= w.committed.version, "{read:?}");
    }
}

/// Reads `c` through `b` until its near cache serves it.
async fn until_near(b: &Manager, world: &WorldId, c: &lwcache_domain::EntityRef) {
    for _ in 0..50 {
        let read = b.entity(world, c, Fields::Cacheable).await.unwrap();
        if read.outcome == Outcome::NearHit {
            return;
        }
    }
    panic!("{c} never became a near hit");
}

/// Reads `c` through `b` until it is no longer a near hit, within the
/// declared bound after `since`.
async fn until_gone(b: &Manager, world: &WorldId, c: &lwcache_domain::EntityRef, since: Instant) {
    loop {
        let read = b.entity(world, c, Fields::Cacheable).await.unwrap();
        if read.outcome != Outcome::NearHit {
            return;
        }
        assert!(
            since.elapsed() <= MAX_LAG,
            "B's near cache still served {c} {:?} after it was removed",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_key_and_a_dropped_world_leave_the_other_instances_near_cache() {
    let Some(url) = standalone_url() else { return };
    let (a, b, world) = two_instances(url).await;
    coherent(&b).await;
    let (c0, c1) = (character("c0"), character("c1"));
    until_near(&b, &world, &c0).await;
    until_near(&b, &world, &c1).await;
    let key = lwcache_domain::CacheKey::entity(&world, &c0);
    a.store().remove(std::slice::from_ref(&key)).await.unwrap();
    until_gone(&b, &world, &c0, Instant::now()).await;
    let read = b.entity(&world, &c1, Fields::Cacheable).await.unwrap();
    assert_eq!(read.outcome, Outcome::NearHit, "only the evicted key went");
    a.store().drop_world(&world).await.unwrap();
    until_gone(&b, &world, &c1, Instant::now()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_writes_reach_the_other_instances_near_cache() {
    let Some(urls) = cluster_urls() else { return };
    let repo: Arc<dyn WorldRepository> = Arc::new(MemoryRepository::new());
    let world = seed_world(repo.as_ref(), 2).await;
    // B follows another node than A: the publish crosses the cluster bus.
    let mut other = urls.clone();
    other.rotate_left(1);
    let a = instance(repo.clone(), &urls, &urls).await;
    let b = instance(repo, &urls, &other).await;
    coherent(&a).await;
    coherent(&b).await;
    a.activate(&world).await.unwrap();
    let (delays, near_hits) = writes_reach_the_other_instance(&a, &b, &world).await;
    assert!(near_hits >= 60, "B's near cache served {near_hits} reads");
    report("cluster", delays);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_and_regaining_the_feed_empties_and_restores_the_near_cache() {
    let Some(url) = standalone_url() else { return };
    let proxy = Proxy::start(upstream(&url)).await.unwrap();
    let repo: Arc<dyn WorldRepository> = Arc::new(MemoryRepository::new());
    let world = seed_world(repo.as_ref(), 2).await;
    let feed_url = [format!("redis://{}", proxy.addr())];
    let b = instance(repo, &[url], &feed_url).await;
    coherent(&b).await;
    b.activate(&world).await.unwrap();
    let c0 = character("c0");
    let near = b.near_cache().unwrap();

    for fault in [Fault::Cut, Fault::Blackhole] {
        // Warm: the second read is a near hit.
        b.entity(&world, &c0, Fields::Cacheable).await.unwrap();
        let read = b.entity(&world, &c0, Fields::Cacheable).await.unwrap();
        assert_eq!(read.outcome, Outcome::NearHit, "{fault:?}");
        assert!(near.stats().entries > 0);

        proxy.set_fault(fault);
        // Within the lag bound the tier is bypassed, and once the feed
        // notices (the cut at once, the blackhole by its PING's timeout) it
        // is empty.
        let started = Instant::now();
        while near.coherent() || near.stats().entries > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{fault:?}: the near cache still holds {:?}",
                near.stats()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let read = b.entity(&world, &c0, Fields::Cacheable).await.unwrap();
        assert_eq!(
            read.outcome,
            Outcome::Hit,
            "{fault:?}: served by Redis, not near"
        );
        let read = b.entity(&world, &c0, Fields::Cacheable).await.unwrap();
        assert_eq!(
            read.outcome,
            Outcome::Hit,
            "{fault:?}: nothing is kept near meanwhile"
        );
        assert_eq!(near.stats().entries, 0);

        proxy.set_fault(Fault::None);
        coherent(&b).await;
        b.entity(&world, &c0, Fields::Cacheable).await.unwrap();
        let read = b.entity(&world, &c0, Fields::Cacheable).await.unwrap();
        assert_eq!(
            read.outcome,
            Outcome::NearHit,
            "{fault:?}: back after the heal"
        );
    }
}
