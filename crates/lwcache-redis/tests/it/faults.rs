//! The manager in front of a real Redis reached through the testkit's
//! fault-injecting proxy: a partition opens the circuit breaker, after which
//! nothing more is sent to Redis while reads and writes are served; a slow
//! Redis keeps the write-behind queue bounded, shedding by invalidation,
//! and loses nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lwcache_core::ports::{CacheError, CacheStore, WorldRepository};
use lwcache_core::{
    BreakerState, CacheManager, CacheStep, Counters, Fields, ManagerConfig, Outcome, StaleReads,
};
use lwcache_domain::{EventKind, WorldId};
use lwcache_memory::MemoryRepository;
use lwcache_redis::{RedisConfig, RedisStore};
use lwcache_testkit::fixtures::{character, doc};
use lwcache_testkit::proxy::{Fault, Proxy};

use crate::support::{seed_world, standalone_url, upstream};

/// A store reaching Redis through `proxy`; the connection-level timeout
/// is a backstop well past the manager's deadline.
async fn through(proxy: &Proxy) -> RedisStore {
    let config = RedisConfig::from_url(&format!("redis://{}", proxy.addr()))
        .unwrap()
        .with_response_timeout(Duration::from_secs(2));
    RedisStore::connect(&config).await.unwrap()
}

type Manager = CacheManager<RedisStore, Arc<dyn WorldRepository>>;

async fn manager(proxy: &Proxy, config: ManagerConfig) -> (Manager, WorldId, Arc<Counters>) {
    let repo: Arc<dyn WorldRepository> = Arc::new(MemoryRepository::new());
    let world = seed_world(repo.as_ref(), 8).await;
    let counters = Arc::new(Counters::new());
    let m = CacheManager::builder(through(proxy).await, repo)
        .config(config)
        .metrics(counters.clone())
        .build()
        .unwrap();
    (m, world, counters)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_opens_the_breaker_and_no_read_is_sent_until_it_heals() {
    let Some(url) = standalone_url() else { return };
    let proxy = Proxy::start(upstream(&url)).await.unwrap();
    let (m, world, counters) = manager(
        &proxy,
        ManagerConfig {
            breaker_failures: 3,
            // Long enough for the checks below to run before any probe.
            breaker_open: Duration::from_secs(3),
            ..ManagerConfig::default()
        },
    )
    .await;
    let c0 = character("c0");
    m.activate(&world).await.unwrap();
    let read = m.entity(&world, &c0, Fields::Cacheable).await.unwrap();
    assert_eq!(read.outcome, Outcome::Hit);

    proxy.set_fault(Fault::Blackhole);
    for mood in ["a", "b", "c"] {
        let w = m
            .update_entity(&world, c0.clone(), doc("mood", mood))
            .await
            .unwrap();
        assert_eq!(w.cache, CacheStep::Failed, "timed out, acknowledged");
    }
    assert_eq!(m.breaker(), BreakerState::Open);

    // Open: reads are served by the source without one byte reaching the
    // partitioned proxy. A write still tries its step (its commit owes it)
    // and fails within the cache timeout, which keeps the breaker open.
    let dropped = proxy.stats().bytes_dropped;
    let errors = counters.snapshot().cache_errors;
    let opened = counters.snapshot().breaker_opened;
    for _ in 0..2 {
        let r = m.entity(&world, &c0, Fields::Cacheable).await.unwrap();
        assert_eq!(r.outcome, Outcome::Fallback);
    }
    assert_eq!(m.health().await.0, Err(CacheError::CircuitOpen));
    let now = counters.snapshot();
    assert_eq!(now.breaker_opened, opened, "no probe ran meanwhile");
    assert_eq!(now.cache_errors, errors, "no call was made, so none failed");
    assert!(
        now.breaker_rejected >= 1,
        "the health check was refused: {now:?}"
    );
    assert_eq!(proxy.stats().bytes_dropped, dropped, "nothing was sent");
    for mood in ["d", "e"] {
        let started = Instant::now();
        let w = m
            .update_entity(&world, c0.clone(), doc("mood", mood))
            .await
            .unwrap();
        assert_eq!(w.cache, CacheStep::Failed);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let r = m.entity(&world, &c0, Fields::Cacheable).await.unwrap();
        assert_eq!((r.outcome, r.value), (Outcome::Fallback, doc("mood", mood)));
    }
    assert!(
        proxy.stats().bytes_dropped > dropped,
        "the writes' steps were sent"
    );
    assert!(
        counters.snapshot().cache_errors >= errors + 2,
        "each write tried its step"
    );
    assert_eq!(m.breaker(), BreakerState::Open);

    // Healed: a probe closes the breaker, the replay carries out what was
    // owed, and the cache serves the newest value.
    proxy.set_fault(Fault::None);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let r = m.entity(&world, &c0, Fields::Cacheable).await.unwrap();
        assert_eq!(r.value, doc("mood", "e"), "never an older value");
        seen.push((m.breaker(), r.outcome));
        if r.outcome == Outcome::Hit {
            break;
        }
        assert!(Instant::now() < deadline, "never healed: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(m.breaker(), BreakerState::Closed);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_keeps_the_write_behind_queue_bounded_and_loses_nothing() {
    let Some(url) = standalone_url() else { return };
    let proxy = Proxy::start(upstream(&url)).await.unwrap();
    let capacity = 4;
    let (m, world, counters) = manager(
        &proxy,
        ManagerConfig {
            write_behind_capacity: capacity,
            // Timelines go through the queue only with stale reads opted
            // into; otherwise their new list is put in the write's step.
            stale_reads: StaleReads::WhileQueued,
            ..ManagerConfig::default()
        },
    )
    .await;
    m.activate(&world).await.unwrap();
    // 30 ms a chunk, each way: eight writers at once outpace the one
    // worker, whose every update waits for the slow store.
    proxy.set_fault(Fault::Delay(Duration::from_millis(30)));
    let kind = EventKind::new("spoke").unwrap();
    let mut writers = Vec::new();
    for n in 0..8 {
        let (m, world, kind) = (m.clone(), world.clone(), kind.clone());
        writers.push(tokio::spawn(async move {
            let id = character(&format!("c{n}")).entity_id();
            for i in 0..3 {
                let data = lwcache_domain::Document::new().with("i", lwcache_domain::Value::Int(i));
                m.add_event(&world, id.clone(), kind.clone(), data)
                    .await
                    .expect("acknowledged, however slow the cache");
                assert!(m.write_behind_depth() <= capacity, "the queue is bounded");
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    assert!(
        counters.snapshot().write_behind_dropped > 0,
        "the queue shed work by invalidating: {:?}",
        counters.snapshot()
    );
    proxy.set_fault(Fault::None);
    m.settle().await;
    // Nothing lost: once the cache is read again (owed steps replayed),
    // every timeline, shed or not, reads as the source holds it.
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in 0..8 {
        let id = character(&format!("c{n}")).entity_id();
        let key = lwcache_domain::CacheKey::timeline(&world, &id);
        loop {
            let r = m.recent(&world, &id, 10).await.unwrap();
            let source = m.repository().read(&key, 10).await.unwrap();
            if matches!(r.outcome, Outcome::Hit | Outcome::Miss) {
                assert_eq!(
                    lwcache_domain::CachedValue::Timeline(r.value),
                    source.value,
                    "c{n}"
                );
                break;
            }
            assert!(Instant::now() < deadline, "c{n}: still {:?}", r.outcome);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    m.shutdown().await;
}

/// A read while the connection is being made again waits no longer than
/// the response timeout: the store's one timer covers the wait on the
/// reconnect, which redis-rs's own response timeout does not, so that the
/// manager may leave its reads to the store's bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_waiting_on_a_reconnect_is_bounded_by_the_response_timeout() {
    let Some(url) = standalone_url() else { return };
    let proxy = Proxy::start(upstream(&url)).await.unwrap();
    let bound = Duration::from_millis(200);
    let config = RedisConfig::from_url(&format!("redis://{}", proxy.addr()))
        .unwrap()
        .with_response_timeout(bound);
    // Each reconnect attempt may take the whole connect timeout (1 s).
    assert!(config.connect_timeout >= Duration::from_secs(1));
    let store = RedisStore::connect(&config).await.unwrap();
    assert_eq!(store.read_deadline(), Some(bound));
    let key = lwcache_domain::CacheKey::flags(&WorldId::new("reconnect").unwrap());
    assert_eq!(store.get(&key).await.unwrap(), None);

    // The connection is cut; new ones are taken and never answered, so
    // that each reconnect attempt hangs until its connect timeout.
    proxy.set_fault(Fault::Cut);
    let deadline = Instant::now() + Duration::from_secs(5);
    while proxy.stats().open > 0 {
        assert!(Instant::now() < deadline, "the proxy kept the connection");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy.set_fault(Fault::Blackhole);
    for attempt in 0..4 {
        let started = Instant::now();
        let result = store.get(&key).await;
        let took = started.elapsed();
        assert!(result.is_err(), "attempt {attempt}: {result:?}");
        assert!(
            took < bound + Duration::from_millis(300),
            "attempt {attempt} took {took:?}: {result:?}"
        );
    }
    assert!(
        matches!(store.get(&key).await, Err(CacheError::Timeout(_))),
        "waiting on the reconnect runs into the response timeout"
    );

    // Healed: the store reads again.
    proxy.set_fault(Fault::None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.get(&key).await.is_err() {
        assert!(Instant::now() < deadline, "the store never reconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A source that starts again from nothing over a cache that outlived the
/// old one (an in-memory repository in a new process), with Redis cut when
/// the new process drops the world's old keys: the drop is owed, reads go
/// to the source meanwhile, and no old entry is ever served, before or
/// after Redis answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_made_while_redis_is_cut_is_owed_and_no_old_entry_is_served() {
    let Some(url) = standalone_url() else { return };
    // The old process: its world cached at a version the new source will
    // not reach soon.
    let old_repo: Arc<dyn WorldRepository> = Arc::new(MemoryRepository::new());
    let world = seed_world(old_repo.as_ref(), 1).await;
    let old = CacheManager::builder(crate::support::standalone_store(&url).await, old_repo)
        .build()
        .unwrap();
    let c0 = character("c0");
    for n in 0..20 {
        old.update_entity(&world, c0.clone(), doc("mood", &format!("old-{n}")))
            .await
            .unwrap();
    }
    assert_eq!(
        old.entity(&world, &c0, Fields::Cacheable)
            .await
            .unwrap()
            .outcome,
        Outcome::Hit
    );
    old.shutdown().await;
    // The new process: the same world id, made again from nothing.
    let proxy = Proxy::start(upstream(&url)).await.unwrap();
    let fresh = MemoryRepository::new();
    fresh
        .load(&world, &lwcache_domain::WorldSeed::default())
        .await
        .unwrap();
    fresh
        .apply(&lwcache_domain::Mutation {
            world: world.clone(),
            op: lwcache_domain::Op::CreateEntity(c0.clone(), doc("mood", "calm")),
        })
        .await
        .unwrap();
    let repo: Arc<dyn WorldRepository> = Arc::new(fresh);
    let m = CacheManager::builder(through(&proxy).await, repo)
        .config(ManagerConfig {
            cache_timeout: Duration::from_millis(200),
            replay_interval: Duration::from_millis(100),
            ..ManagerConfig::default()
        })
        .build()
        .unwrap();
    proxy.set_fault(Fault::Cut);
    assert!(m.drop_world(&world).await.is_err(), "Redis is cut");
    assert!(m.owes_drop(&world));
    let read = m.entity(&world, &c0, Fields::Cacheable).await.unwrap();
    assert_eq!(
        read.value.get("mood"),
        doc("mood", "calm").get("mood"),
        "{read:?}"
    );
    proxy.set_fault(Fault::None);
    // Redis answers again: every read, until the cache serves one, is the
    // new source's value, never an old entry.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let read = m.entity(&world, &c0, Fields::Cacheable).await.unwrap();
        assert_eq!(
            read.value.get("mood"),
            doc("mood", "calm").get("mood"),
            "an old entry was served: {read:?}"
        );
        if read.outcome == Outcome::Hit {
            break;
        }
        assert!(Instant::now() < deadline, "still {:?}", read.outcome);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!m.owes_drop(&world), "the drop was made");
    m.shutdown().await;
}
