//! Single-key reads batched on a standalone server (`src/gets.rs`, with
//! `RedisConfig::with_read_batching`): reads
//! made while others are in flight share one `MGET`, each still gets its
//! own key's value, none returns a value older than a write acknowledged
//! before it began, a cut connection fails them within the response
//! timeout, and the store keeps batching after the runtime that started its
//! batching task is gone; with a read connection per thread, each thread
//! on a runtime of its own reads through its own connection, as fresh.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lwcache_core::ports::{CacheError, CacheStore};
use lwcache_domain::{CacheKey, WorldId};
use lwcache_redis::{RedisConfig, RedisStore};
use lwcache_testkit::fixtures::character;
use lwcache_testkit::own_redis::OwnRedis;
use lwcache_testkit::proxy::{Fault, Proxy};

use crate::support::{TEST_RESPONSE_TIMEOUT, standalone_url, upstream};

const READERS: usize = 16;

fn keys(world: &WorldId, n: usize) -> Vec<CacheKey> {
    (0..n)
        .map(|i| CacheKey::entity(world, &character(&format!("c{i}"))))
        .collect()
}

async fn plain(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Writes `value of i` to the `i`th key.
async fn write_values(conn: &mut redis::aio::MultiplexedConnection, keys: &[CacheKey]) {
    for (i, key) in keys.iter().enumerate() {
        let _: () = redis::cmd("SET")
            .arg(key.render())
            .arg(format!("value of {i}"))
            .query_async(conn)
            .await
            .unwrap();
    }
}

/// The GETs and MGETs the server has run since its statistics were reset.
async fn commands(conn: &mut redis::aio::MultiplexedConnection) -> (u64, u64) {
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    (calls(&stats, "get"), calls(&stats, "mget"))
}

/// `calls=` of one command in `INFO commandstats`, 0 when never called.
fn calls(stats: &str, command: &str) -> u64 {
    let prefix = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

async fn store_on(url: &str, timeout: Duration) -> RedisStore {
    let config = RedisConfig::from_url(url)
        .unwrap()
        .with_response_timeout(timeout)
        .with_read_batching(true);
    RedisStore::connect(&config).await.unwrap()
}

/// 16 readers of 32 keys on a server of the test's own, whose command
/// counts only this test moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_share_commands_and_each_gets_its_own_value() {
    let Some(server) = OwnRedis::start("concurrent_reads_share_commands") else {
        return;
    };
    let url = server.url();
    let world = WorldId::new("batched").unwrap();
    let keys = keys(&world, 32);
    let mut conn = plain(&url).await;
    write_values(&mut conn, &keys).await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();

    let store = Arc::new(store_on(&url, TEST_RESPONSE_TIMEOUT).await);
    let keys = Arc::new(keys);
    let per_reader = 300;
    let mut readers = Vec::new();
    for r in 0..READERS {
        let (store, keys) = (store.clone(), keys.clone());
        readers.push(tokio::spawn(async move {
            for j in 0..per_reader {
                let i = (r * 7 + j * 5) % keys.len();
                let value = store.get(&keys[i]).await.unwrap();
                assert_eq!(value, Some(format!("value of {i}").into_bytes()), "key {i}");
            }
        }));
    }
    // A key never written reads as absent within a batch too.
    let missing = CacheKey::flags(&WorldId::new("batched-missing").unwrap());
    assert_eq!(store.get(&missing).await.unwrap(), None);
    for reader in readers {
        reader.await.unwrap();
    }

    let (gets, mgets) = commands(&mut conn).await;
    let reads = (READERS * per_reader + 1) as u64;
    assert!(mgets > 0, "no read was batched: {gets} GETs, no MGET");
    assert!(
        gets + mgets < reads,
        "{reads} reads took {gets} GETs and {mgets} MGETs: none shared a command"
    );

    // Off by default: the same reads on a store configured plainly are one
    // GET each.
    let plain_store = Arc::new(
        RedisStore::connect(&RedisConfig::from_url(&url).unwrap())
            .await
            .unwrap(),
    );
    let mut readers = Vec::new();
    for r in 0..READERS {
        let (store, keys) = (plain_store.clone(), keys.clone());
        readers.push(tokio::spawn(async move {
            for j in 0..per_reader {
                store.get(&keys[(r + j) % keys.len()]).await.unwrap();
            }
        }));
    }
    for reader in readers {
        reader.await.unwrap();
    }
    let (plain_gets, plain_mgets) = commands(&mut conn).await;
    assert_eq!(plain_mgets, mgets, "a plain store batched reads");
    assert_eq!(
        plain_gets,
        gets + (READERS * per_reader) as u64,
        "a plain store sends one GET per read"
    );
}

/// A writer acknowledges ever higher values of one key; readers, in flight
/// together and so batched, each read a value at least as high as the last
/// one acknowledged before their read began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_read_never_misses_a_write_acknowledged_before_it() {
    let Some(url) = standalone_url() else { return };
    let world = lwcache_testkit::fixtures::fresh_world();
    let key = keys(&world, 1).remove(0);
    let store = Arc::new(store_on(&url, TEST_RESPONSE_TIMEOUT).await);
    let acked = Arc::new(AtomicU64::new(0));
    let writes = 400u64;

    let writer = {
        let (acked, key, url) = (acked.clone(), key.render(), url.clone());
        tokio::spawn(async move {
            let mut conn = plain(&url).await;
            for n in 1..=writes {
                let _: () = redis::cmd("SET")
                    .arg(&key)
                    .arg(n)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                acked.store(n, Ordering::SeqCst);
            }
        })
    };
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let (store, acked, key) = (store.clone(), acked.clone(), key.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0u64;
            loop {
                let floor = acked.load(Ordering::SeqCst);
                let read = match store.get(&key).await.unwrap() {
                    Some(bytes) => String::from_utf8(bytes).unwrap().parse::<u64>().unwrap(),
                    None => 0,
                };
                assert!(
                    read >= floor,
                    "read {read} after the write of {floor} was acknowledged"
                );
                reads += 1;
                if floor == writes {
                    return reads;
                }
            }
        }));
    }
    writer.await.unwrap();
    let mut total = 0;
    for reader in readers {
        total += reader.await.unwrap();
    }
    assert!(total > writes, "the readers read only {total} times");
}

/// Reads queued behind one in flight when the connection stops answering
/// fail within the response timeout, each of them, and the store reads
/// again once it heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_reads_fail_within_the_response_timeout_when_redis_stops_answering() {
    let Some(url) = standalone_url() else { return };
    let proxy = Proxy::start(upstream(&url)).await.unwrap();
    let bound = Duration::from_millis(300);
    let store = Arc::new(store_on(&format!("redis://{}", proxy.addr()), bound).await);
    let world = lwcache_testkit::fixtures::fresh_world();
    let keys = Arc::new(keys(&world, 8));
    assert_eq!(store.get(&keys[0]).await.unwrap(), None);

    proxy.set_fault(Fault::Blackhole);
    let started = Instant::now();
    let mut readers = Vec::new();
    for r in 0..READERS {
        let (store, keys) = (store.clone(), keys.clone());
        readers.push(tokio::spawn(async move {
            let result = store.get(&keys[r % keys.len()]).await;
            (result, Instant::now())
        }));
    }
    for reader in readers {
        let (result, ended) = reader.await.unwrap();
        assert!(
            matches!(result, Err(CacheError::Timeout(t)) if t == bound),
            "{result:?}"
        );
        // Each read has its own bound: one queued behind a read in flight
        // does not wait for that read's bound and then its own.
        let took = ended - started;
        assert!(took < bound * 2, "a read failed after {took:?}");
    }

    proxy.set_fault(Fault::None);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut readers = Vec::new();
        for r in 0..READERS {
            let (store, keys) = (store.clone(), keys.clone());
            readers.push(tokio::spawn(async move {
                store.get(&keys[r % keys.len()]).await
            }));
        }
        let mut ok = 0;
        for reader in readers {
            ok += usize::from(reader.await.unwrap() == Ok(None));
        }
        if ok == READERS {
            break;
        }
        assert!(Instant::now() < deadline, "the store never read again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Concurrent reads of `key` on `store` from tasks of `runtime`.
fn read_together(
    runtime: &tokio::runtime::Runtime,
    store: &RedisStore,
    key: &CacheKey,
) -> Vec<Result<Option<Vec<u8>>, CacheError>> {
    runtime.block_on(async {
        let mut readers = Vec::new();
        for _ in 0..READERS {
            let (store, key) = (store.clone(), key.clone());
            readers.push(tokio::spawn(async move { store.get(&key).await }));
        }
        let mut results = Vec::new();
        for reader in readers {
            results.push(reader.await.unwrap());
        }
        results
    })
}

/// The batching task runs on the runtime of the read that started it; when
/// that runtime has shut down, a read on another runtime starts it again
/// (a read queued to the gone task would fail for good).
#[test]
fn batching_survives_the_runtime_that_started_it() {
    let Some(url) = standalone_url() else { return };
    let world = lwcache_testkit::fixtures::fresh_world();
    let key = CacheKey::flags(&world);
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    };
    let first = runtime();
    let store = first.block_on(store_on(&url, TEST_RESPONSE_TIMEOUT));
    assert!(
        read_together(&first, &store, &key)
            .iter()
            .all(|r| r == &Ok(None))
    );
    drop(first);
    // The connection's own task went with the first runtime too: its first
    // call on the second one finds the socket gone and reconnects. The
    // reads queued meanwhile must still be answered.
    let second = runtime();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let results = read_together(&second, &store, &key);
        if results.iter().all(|r| r == &Ok(None)) {
            break;
        }
        assert!(Instant::now() < deadline, "{results:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sharded_store(url: &str) -> RedisConfig {
    RedisConfig::from_url(url)
        .unwrap()
        .with_response_timeout(TEST_RESPONSE_TIMEOUT)
        .with_read_batching(true)
        .with_read_connection_per_thread(true)
}

/// A runtime that runs its tasks while the test's thread does other
/// things: the store's own connection lives there.
fn background_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A current-thread runtime, the kind a sharded process runs per thread.
fn shard_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Reads on `runtime` until this thread's own connection answers them (or
/// a deadline passes), then `rounds` rounds of concurrent reads of every
/// key, each checked against the value `value(i)` written to key `i`.
fn read_on_shard(
    runtime: &tokio::runtime::Runtime,
    store: &RedisStore,
    keys: &Arc<Vec<CacheKey>>,
    connections: usize,
    rounds: usize,
) {
    runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        // The first read opens this thread's connection; reads answer (on
        // the shared one) while it is made.
        loop {
            assert_eq!(
                store.get(&keys[0]).await.unwrap(),
                Some(b"value of 0".to_vec())
            );
            if store.thread_read_connections() >= connections {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "this thread's connection never came"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for _ in 0..rounds {
            let mut readers = Vec::new();
            for r in 0..READERS {
                let (store, keys) = (store.clone(), keys.clone());
                readers.push(tokio::spawn(async move {
                    let i = (r * 7) % keys.len();
                    let value = store.get(&keys[i]).await.unwrap();
                    assert_eq!(value, Some(format!("value of {i}").into_bytes()), "key {i}");
                }));
            }
            for reader in readers {
                reader.await.unwrap();
            }
        }
    });
}

/// With a read connection per thread, each thread on a single-threaded
/// runtime of its own reads through a connection of its own, made on its
/// runtime, with every value right; a thread whose runtime is replaced
/// replaces its connection (the old one went with its runtime) instead of
/// adding one; and a store without the option opens none.
#[test]
fn each_sharded_thread_reads_through_its_own_connection() {
    let Some(server) = OwnRedis::start("each_sharded_thread_reads") else {
        return;
    };
    let url = server.url();
    let world = WorldId::new("sharded").unwrap();
    let keys = Arc::new(keys(&world, 32));
    let setup = background_runtime();
    let store = setup.block_on(async {
        let mut conn = plain(&url).await;
        write_values(&mut conn, &keys).await;
        RedisStore::connect(&sharded_store(&url)).await.unwrap()
    });
    assert_eq!(store.thread_read_connections(), 0);

    let clients = || {
        setup.block_on(async {
            let list: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query_async(&mut plain(&url).await)
                .await
                .unwrap();
            list.lines().count()
        })
    };
    // Two shards read at once: each thread makes one connection, which
    // lives as long as its runtime.
    let barrier = std::sync::Barrier::new(3);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let (store, keys, barrier) = (&store, &keys, &barrier);
            scope.spawn(move || {
                let runtime = shard_runtime();
                read_on_shard(&runtime, store, keys, 2, 20);
                barrier.wait();
                barrier.wait();
            });
        }
        barrier.wait();
        assert_eq!(store.thread_read_connections(), 2);
        // The store's own, the two threads' and the one asking.
        assert_eq!(clients(), 4, "connections to the server");
        barrier.wait();
    });

    // One thread, two runtimes in turn: the second replaces the first's
    // connection, whose tasks went with it.
    std::thread::scope(|scope| {
        scope.spawn(|| {
            read_on_shard(&shard_runtime(), &store, &keys, 3, 5);
            read_on_shard(&shard_runtime(), &store, &keys, 3, 5);
        });
    });
    assert_eq!(store.thread_read_connections(), 3);

    let plain_store = setup.block_on(async {
        RedisStore::connect(
            &RedisConfig::from_url(&url)
                .unwrap()
                .with_read_batching(true),
        )
        .await
        .unwrap()
    });
    std::thread::scope(|scope| {
        scope.spawn(|| read_on_shard(&shard_runtime(), &plain_store, &keys, 0, 5));
    });
    assert_eq!(plain_store.thread_read_connections(), 0);
}

/// Reads on two sharded threads, each through its own connection, never
/// return a value older than a write acknowledged before they began.
#[test]
fn sharded_reads_never_miss_a_write_acknowledged_before_them() {
    let Some(url) = standalone_url() else { return };
    let world = lwcache_testkit::fixtures::fresh_world();
    let key = keys(&world, 1).remove(0);
    let setup = background_runtime();
    let store = setup
        .block_on(RedisStore::connect(&sharded_store(&url)))
        .unwrap();
    let acked = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let writes = 400u64;
    let mut shards = Vec::new();
    for _ in 0..2 {
        let (store, key, acked, done) = (store.clone(), key.clone(), acked.clone(), done.clone());
        shards.push(std::thread::spawn(move || {
            shard_runtime().block_on(async move {
                let mut readers = Vec::new();
                for _ in 0..READERS / 2 {
                    let (store, key, acked, done) =
                        (store.clone(), key.clone(), acked.clone(), done.clone());
                    readers.push(tokio::spawn(async move {
                        let mut reads = 0u64;
                        loop {
                            let finished = done.load(Ordering::SeqCst);
                            let floor = acked.load(Ordering::SeqCst);
                            let read = match store.get(&key).await.unwrap() {
                                Some(bytes) => {
                                    String::from_utf8(bytes).unwrap().parse::<u64>().unwrap()
                                }
                                None => 0,
                            };
                            assert!(
                                read >= floor,
                                "read {read} after the write of {floor} was acknowledged"
                            );
                            reads += 1;
                            if finished {
                                return reads;
                            }
                        }
                    }));
                }
                let mut total = 0;
                for reader in readers {
                    total += reader.await.unwrap();
                }
                total
            })
        }));
    }
    setup.block_on(async {
        let mut conn = plain(&url).await;
        for n in 1..=writes {
            let _: () = redis::cmd("SET")
                .arg(key.render())
                .arg(n)
                .query_async(&mut conn)
                .await
                .unwrap();
            acked.store(n, Ordering::SeqCst);
        }
    });
    done.store(true, Ordering::SeqCst);
    let total: u64 = shards.into_iter().map(|s| s.join().unwrap()).sum();
    assert!(total > writes, "the readers read only {total} times");
    assert_eq!(store.thread_read_connections(), 2);
}
