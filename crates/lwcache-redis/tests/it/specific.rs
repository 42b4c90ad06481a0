//! What only a real Redis shows: the keyspace, slots, round trips, TTLs on
//! the server's clock, scripts lost and reloaded, ACLs, and two processes'
//! clients racing.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use lwcache_core::codec;
use lwcache_core::ports::{CacheStore, CacheWrite, Lease, Put, WorldRepository, WriteOutcome};
use lwcache_core::{CacheError, CacheManager, Counters, Fields, ManagerConfig};
use lwcache_domain::{CacheKey, CachedValue, EntityId, KeyKind};
use lwcache_memory::MemoryRepository;
use lwcache_redis::{RedisConfig, RedisStore, Topology};
use lwcache_testkit::decorators::Gated;
use lwcache_testkit::fixtures::{character, doc, fresh_world};
use lwcache_testkit::store::{entry, entry_v2};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::support::{
    ACL_VAR, Probe, TEST_RESPONSE_TIMEOUT, TLS_CA_VAR, TLS_VAR, cluster_store, cluster_urls,
    connect_one, seed_world, server_env, standalone_store, standalone_url,
};

/// Checks that flush scripts on the shared standalone server and checks
/// that count script calls on it must not overlap: a NOSCRIPT retry would
/// be counted as a round trip.
static SCRIPTS: Mutex<()> = Mutex::const_new(());

/// The SHA1s of the write and lease scripts, as the server knows them.
fn script_shas() -> [String; 2] {
    [
        include_str!("../../src/write.lua"),
        include_str!("../../src/lease.lua"),
    ]
    .map(|source| redis::Script::new(source).get_hash().to_owned())
}

/// A server (or Cluster) under test.
pub(crate) enum Target {
    /// One server.
    Standalone(String),
    /// A Cluster's nodes.
    Cluster(Vec<String>),
}

impl Target {
    /// A fresh store with its own connection: a separate client, as another
    /// process would have.
    async fn store(&self) -> RedisStore {
        match self {
            Target::Standalone(url) => standalone_store(url).await,
            Target::Cluster(urls) => cluster_store(urls).await,
        }
    }

    async fn probe(&self) -> Probe {
        match self {
            Target::Standalone(url) => Probe::standalone(url).await,
            Target::Cluster(urls) => Probe::cluster(urls).await,
        }
    }
}

fn manager<S>(
    store: S,
    repo: Arc<dyn WorldRepository>,
    config: ManagerConfig,
) -> (CacheManager<S, Arc<dyn WorldRepository>>, Arc<Counters>)
where
    S: CacheStore + 'static,
{
    let counters = Arc::new(Counters::new());
    let m = CacheManager::builder(store, repo)
        .config(config)
        .metrics(counters.clone())
        .build()
        .expect("valid config");
    (m, counters)
}

/// After warming, the server holds exactly the world's expected keys, each
/// under `lw:world:{<id>}:`, and nothing else mentions the world: no lease
/// outlives its fill, and no version key is written, since only commits
/// raise it.
async fn warming_writes_only_the_worlds_keys(t: &Target) {
    let repo: Arc<dyn WorldRepository> = Arc::new(MemoryRepository::new());
    let world = seed_world(repo.as_ref(), 2).await;
    let (m, _) = manager(Arc::new(t.store().await), repo, ManagerConfig::default());
    let report = m.activate(&world).await.expect("activate");
    let probe = t.probe().await;
    let w = world.as_str();
    let mut want: Vec<String> = [
        "state",
        "flags",
        "character:c0:state",
        "character:c1:state",
        "location:l1:state",
        "object:o1:state",
        "timeline:c0:recent",
        "timeline:c1:recent",
        "timeline:l1:recent",
        "timeline:o1:recent",
    ]
    .iter()
    .map(|k| format!("lw:world:{{{w}}}:{k}"))
    .collect();
    want.sort();
    assert_eq!(report.keys, want.len(), "every key was warmed");
    let mentioning = probe.scan(&format!("*{w}*")).await;
    assert_eq!(
        mentioning, want,
        "exactly the world's keys, under its prefix"
    );
    let mut kinds: Vec<KeyKind> = mentioning
        .iter()
        .map(|k| CacheKey::parse(k).expect("a key the domain formats").kind())
        .collect();
    kinds.sort();
    let distinct: BTreeSet<KeyKind> = kinds.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        KeyKind::ALL.len() - 1,
        "one of each kind but the version at least"
    );
    for k in [KeyKind::State, KeyKind::Flags] {
        assert_eq!(kinds.iter().filter(|&&x| x == k).count(), 1, "one {k}");
    }
}

/// Two clients with their own connections, as two service processes would
/// have: a read on one is paused between its source read and its fill, a
/// write through the other commits and runs its cache step, then the fill
/// arrives. The commit took the fill's lease on the server, which refuses
/// the fill.
async fn two_clients_never_leave_a_stale_fill(t: &Target) {
    let repo = Arc::new(MemoryRepository::new());
    let world = seed_world(repo.as_ref(), 1).await;
    let gated = Arc::new(Gated::new(repo.clone() as Arc<dyn WorldRepository>));
    let (reader_m, reader_counters) = manager(
        Arc::new(t.store().await),
        gated.clone(),
        ManagerConfig::default(),
    );
    let writer_store = Arc::new(t.store().await);
    let (writer_m, _) = manager(writer_store.clone(), repo.clone(), ManagerConfig::default());
    let c0 = character("c0");
    let key = CacheKey::entity(&world, &c0);
    writer_m.activate(&world).await.expect("activate");
    writer_store
        .remove(std::slice::from_ref(&key))
        .await
        .unwrap();

    let read = {
        let (m, world, c0) = (reader_m.clone(), world.clone(), c0.clone());
        async move { m.entity(&world, &c0, Fields::Cacheable).await }
    };
    let write = writer_m.update_entity(&world, c0.clone(), doc("mood", "hopeful"));
    let (old, w) = gated.interleave(key.clone(), read, write).await;
    let (old, w) = (old.expect("reader"), w.unwrap());
    assert_eq!(
        old.value,
        doc("mood", "calm"),
        "the reader read before the write"
    );
    assert_eq!(
        reader_counters.snapshot().fills_rejected,
        1,
        "the racing fill was refused by the server"
    );
    if let Some(bytes) = writer_store.get(&key).await.unwrap() {
        let entry = codec::decode(&bytes).unwrap();
        assert_eq!(entry.value, CachedValue::Entity(doc("mood", "hopeful")));
        assert_eq!(entry.version, w.committed.version);
    }
    let now = reader_m
        .entity(&world, &c0, Fields::Cacheable)
        .await
        .unwrap();
    assert_eq!(now.value, doc("mood", "hopeful"));
}

/// TTLs run on the server's clock: a put with one expires, a put without
/// one (flags) and the version key are persistent, and a put without a TTL
/// over a key that had one makes it persistent.
async fn ttls_expire_on_the_server_and_flags_persist(t: &Target) {
    let store = t.store().await;
    let probe = t.probe().await;
    let world = fresh_world();
    let timeline = CacheKey::timeline(&world, &EntityId::new("e1").unwrap());
    let flags = CacheKey::flags(&world);
    let state = CacheKey::state(&world);
    let ttl = Duration::from_millis(500);
    let put = |key: &CacheKey, version: u64, ttl: Option<Duration>| Put {
        key: key.clone(),
        bytes: entry(version, "x"),
        ttl,
    };
    let epoch = Some(store.epoch(&world).await.unwrap());
    let first = CacheWrite::commit(
        world.clone(),
        1,
        epoch,
        vec![
            put(&timeline, 1, Some(ttl)),
            put(&flags, 1, None),
            put(&state, 1, Some(ttl)),
        ],
    );
    assert_eq!(store.write(&first).await.unwrap(), landed(3, None));
    let second = CacheWrite::commit(world.clone(), 2, epoch, vec![put(&state, 2, None)]);
    assert_eq!(store.write(&second).await.unwrap(), landed(1, Some(1)));
    let left = probe.pttl(&timeline.to_string()).await;
    assert!(left > 0 && left <= 500, "PTTL {left} not within (0, 500]");
    assert_eq!(
        probe.pttl(&flags.to_string()).await,
        -1,
        "flags never expire"
    );
    assert_eq!(
        probe.pttl(&state.to_string()).await,
        -1,
        "a put without TTL persists"
    );
    let ver = CacheKey::version(&world).to_string();
    assert_eq!(probe.pttl(&ver).await, -1, "the version key never expires");

    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(store.get(&timeline).await.unwrap(), None, "expired");
    assert_eq!(
        probe.pttl(&timeline.to_string()).await,
        -2,
        "gone from the server"
    );
    assert_eq!(store.get(&flags).await.unwrap(), Some(entry(1, "x")));
    assert_eq!(store.get(&state).await.unwrap(), Some(entry(2, "x")));
    assert_eq!(store.version(&world).await.unwrap(), Some(2));
}

/// A server that lost its scripts (restart, failover, SCRIPT FLUSH) answers
/// NOSCRIPT; the store loads the script again and the call succeeds.
async fn lost_scripts_are_reloaded(t: &Target) {
    let _only_flusher = SCRIPTS.lock().await;
    let store = t.store().await;
    let probe = t.probe().await;
    let world = fresh_world();
    let key = CacheKey::state(&world);
    for round in 1..=2u64 {
        for conn in &probe.masters {
            let _: () = redis::cmd("SCRIPT")
                .arg("FLUSH")
                .query_async(&mut conn.clone())
                .await
                .unwrap();
        }
        let epoch = Some(store.epoch(&world).await.unwrap());
        let w = CacheWrite::commit(
            world.clone(),
            10 * round,
            epoch,
            vec![Put {
                key: key.clone(),
                bytes: entry(10 * round, "v"),
                ttl: None,
            }],
        );
        let previous = (round > 1).then_some(10 * (round - 1));
        assert_eq!(store.write(&w).await.unwrap(), landed(1, previous));
        // The commit took the last round's lease, so this one is free.
        let held = store
            .lease(
                &world,
                std::slice::from_ref(&key),
                Lease(round),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        assert_eq!(held, [true]);
    }
    assert_eq!(store.get(&key).await.unwrap(), Some(entry(20, "v")));
    for sha in script_shas() {
        let mut loaded = 0;
        for conn in &probe.masters {
            let exists: Vec<i64> = redis::cmd("SCRIPT")
                .arg("EXISTS")
                .arg(&sha)
                .query_async(&mut conn.clone())
                .await
                .unwrap();
            loaded += exists[0];
        }
        assert!(loaded >= 1, "script {sha} is loaded again");
    }
}

/// The script's replace rule on raw bytes is the codec's: for each pair of
/// what a key holds and what a commit puts, the put lands exactly when
/// `codec::replaces` says so. The pairs cover versions past 2^53 and ones
/// that differ only in a low or a high byte, tombstones, both entry formats,
/// and bytes that are not entries (no magic, short, an unknown format,
/// unknown flags).
async fn the_script_replaces_as_the_codec_does(t: &Target) {
    let store = t.store().await;
    let probe = t.probe().await;
    let world = fresh_world();
    let with_byte = |mut bytes: Vec<u8>, at: usize, value: u8| {
        bytes[at] = value;
        bytes
    };
    let big = (1u64 << 53) + 1;
    let samples: Vec<Vec<u8>> = vec![
        entry(1, "a"),
        entry(255, "a"),
        entry(256, "a"),
        entry(big, "a"),
        entry(big + 1, "a"),
        entry(u64::MAX, "a"),
        codec::tombstone(1),
        codec::tombstone(256),
        codec::tombstone(big),
        b"plain".to_vec(),
        b"LW\x01\x00short".to_vec(),
        with_byte(entry(2, "a"), 2, 9),
        with_byte(entry(2, "a"), 3, 0x80),
        with_byte(entry(2, "a"), 3, 1),
        // Format 2, with its stamps in the header, and a format-2 tombstone;
        // flag bit 1 is format 2's only, and format 3 is not read.
        entry_v2(2, "b"),
        entry_v2(256, "b"),
        with_byte(codec::tombstone(256), 2, 2),
        with_byte(entry(2, "a"), 3, 2),
        with_byte(entry_v2(2, "b"), 2, 3),
    ];
    let mut n = 0;
    for current in samples.iter().map(Some).chain([None]) {
        for new in &samples {
            n += 1;
            let key = CacheKey::entity(&world, &character(&format!("c{n}")));
            if let Some(bytes) = current {
                lwcache_testkit::StoreProbe::put_raw(&probe, &key, bytes.clone()).await;
            }
            let put = Put {
                key: key.clone(),
                bytes: new.clone(),
                ttl: None,
            };
            let epoch = Some(store.epoch(&world).await.unwrap());
            let w = CacheWrite::commit(world.clone(), 1, epoch, vec![put]);
            let outcome = store.write(&w).await.unwrap();
            let want = codec::replaces(current.map(Vec::as_slice), new);
            assert_eq!(outcome.landed == 1, want, "{current:?} replaced by {new:?}");
            let now = if want {
                Some(new.clone())
            } else {
                current.cloned()
            };
            assert_eq!(store.get(&key).await.unwrap(), now);
        }
    }
}

/// What a write where every put landed answers.
fn landed(puts: usize, previous: Option<u64>) -> WriteOutcome {
    WriteOutcome {
        landed: puts,
        skipped: 0,
        previous,
        epoch_lost: false,
    }
}

/// Declares the checks shared by both topologies as tests.
macro_rules! shared_checks {
    ($target:expr, $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(target) = $target else { return };
                super::$check(&target).await;
            }
        )*
    };
}

mod standalone {
    use super::*;

    fn target() -> Option<Target> {
        standalone_url().map(Target::Standalone)
    }

    shared_checks!(
        target(),
        warming_writes_only_the_worlds_keys,
        two_clients_never_leave_a_stale_fill,
        ttls_expire_on_the_server_and_flags_persist,
        lost_scripts_are_reloaded,
        the_script_replaces_as_the_codec_does,
    );

    /// Reads the server's MONITOR feed over a raw socket: every command
    /// every client sends, in the order the server runs them. Other tests
    /// share the server, so commands are told apart by the world they name.
    struct Monitor {
        lines: BufReader<TcpStream>,
    }

    impl Monitor {
        async fn start(host: &str, port: u16) -> Monitor {
            let mut socket = TcpStream::connect((host, port)).await.unwrap();
            socket.write_all(b"MONITOR\r\n").await.unwrap();
            let mut lines = BufReader::new(socket);
            let mut ok = String::new();
            lines.read_line(&mut ok).await.unwrap();
            assert_eq!(ok.trim_end(), "+OK", "MONITOR started");
            Monitor { lines }
        }

        /// Every line up to the one that carries `marker`.
        async fn until(&mut self, marker: &str) -> Vec<String> {
            let mut seen = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let mut line = String::new();
                let n = tokio::time::timeout_at(deadline, self.lines.read_line(&mut line))
                    .await
                    .expect("the marker shows up in MONITOR")
                    .unwrap();
                assert!(n > 0, "MONITOR closed");
                if line.contains(marker) {
                    return seen;
                }
                seen.push(line);
            }
        }
    }

    /// Warming sends one lease script call for every key, then one write
    /// script call per batch: the number of round trips is one more than the
    /// number of batches, not the number of keys.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn warming_takes_one_round_trip_per_batch() {
        let Some(url) = standalone_url() else { return };
        let _no_flush = SCRIPTS.lock().await;
        let Topology::Standalone(node) = RedisConfig::from_url(&url).unwrap().topology else {
            unreachable!("from_url gives one server")
        };
        let store = Arc::new(standalone_store(&url).await);
        let repo: Arc<dyn WorldRepository> = Arc::new(MemoryRepository::new());
        let world = seed_world(repo.as_ref(), 40).await;
        // Load both scripts before watching, so that no NOSCRIPT retry is
        // counted.
        let other = fresh_world();
        store
            .write(&CacheWrite::commit(other.clone(), 1, None, vec![]))
            .await
            .unwrap();
        store
            .lease(
                &other,
                &[CacheKey::state(&other)],
                Lease(1),
                Duration::from_secs(1),
            )
            .await
            .unwrap();

        let mut monitor = Monitor::start(&node.host, node.port).await;
        let batch_size = 16;
        let mut config = ManagerConfig::default();
        config.policy.warm.batch_size = batch_size;
        let (m, _) = manager(store.clone(), repo.clone(), config);
        let report = m.activate(&world).await.expect("activate");
        let marker = format!("lwcache-marker-{}", world.as_str());
        let _: String = redis::cmd("ECHO")
            .arg(&marker)
            .query_async(&mut connect_one(&url).await)
            .await
            .unwrap();
        let lines = monitor.until(&marker).await;

        let tag = format!("{{{}}}", world.as_str());
        let calls: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains(&tag) && !l.contains(" lua]"))
            .collect();
        let command = |l: &str| {
            l.split_once("] ")
                .map(|(_, rest)| {
                    rest.split(' ')
                        .next()
                        .unwrap_or("")
                        .trim_matches('"')
                        .to_ascii_uppercase()
                })
                .unwrap_or_default()
        };
        assert!(
            calls.iter().all(|l| command(l) == "EVALSHA"),
            "warming sends script calls only: {calls:?}"
        );
        assert_eq!(
            report.keys,
            4 + 2 + 2 * 40,
            "flags, state, l1, o1 and their timelines, 40 characters and theirs"
        );
        assert_eq!(report.batches, report.keys.div_ceil(batch_size));
        assert_eq!(
            calls.len(),
            1 + report.batches,
            "one lease call, then one round trip per batch of {batch_size}, for {} keys",
            report.keys
        );
    }

    /// A user limited to `~lw:*`, the channel `lw:invalidate` and GET, SET,
    /// DEL, EVALSHA, SCRIPT LOAD, PING, SCAN, PUBLISH and SUBSCRIBE can do
    /// everything the port needs, and follow the invalidation feed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_acl_user_limited_to_lw_keys_suffices() {
        let Some(url) = server_env(ACL_VAR) else {
            return;
        };
        let config = RedisConfig::from_url(&url)
            .unwrap()
            .with_response_timeout(TEST_RESPONSE_TIMEOUT);
        assert!(config.username.is_some(), "{ACL_VAR} names a user");
        let store = RedisStore::connect(&config)
            .await
            .expect("the ACL user connects");
        exercise(&store).await;
        // The manager on top, as the service runs it.
        let repo: Arc<dyn WorldRepository> = Arc::new(MemoryRepository::new());
        let world = seed_world(repo.as_ref(), 2).await;
        let (m, counters) = manager(store, repo, ManagerConfig::default());
        m.activate(&world).await.unwrap();
        m.update_entity(&world, character("c0"), doc("mood", "brave"))
            .await
            .unwrap();
        let r = m
            .entity(&world, &character("c0"), Fields::Cacheable)
            .await
            .unwrap();
        assert_eq!(r.value, doc("mood", "brave"));
        assert_eq!(counters.snapshot().cache_errors, 0, "no call was refused");
        feed_confirms(&config).await;
    }

    /// The invalidation feed subscribes and beats as `config`'s user.
    pub(super) async fn feed_confirms(config: &RedisConfig) {
        let near = Arc::new(lwcache_core::NearCache::new(Default::default()));
        let _guard = lwcache_core::InvalidationFeed::follow(
            &lwcache_redis::RedisFeed::new(config).unwrap(),
            near.clone(),
        );
        let started = std::time::Instant::now();
        while !near.coherent() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the ACL user's feed never confirmed"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Every port operation once, checked.
    pub(super) async fn exercise(store: &RedisStore) {
        let world = fresh_world();
        let key = CacheKey::state(&world);
        let flags = CacheKey::flags(&world);
        store.ping().await.unwrap();
        assert_eq!(store.version(&world).await.unwrap(), None);
        let put = |key: &CacheKey, version: u64| Put {
            key: key.clone(),
            bytes: entry(version, "s"),
            ttl: Some(Duration::from_secs(60)),
        };
        let fill = CacheWrite::fill(world.clone(), 4, Lease(7), vec![put(&key, 4)]);
        let unleased = store.write(&fill).await.unwrap();
        assert_eq!((unleased.landed, unleased.skipped), (0, 1), "no lease yet");
        let held = store
            .lease(
                &world,
                &[key.clone(), flags.clone()],
                Lease(7),
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert_eq!(held, [true, true]);
        assert_eq!(store.write(&fill).await.unwrap(), landed(1, None));
        assert_eq!(store.get(&key).await.unwrap(), Some(entry(4, "s")));
        let epoch = Some(store.epoch(&world).await.unwrap());
        let commit = CacheWrite::commit(world.clone(), 5, epoch, vec![put(&flags, 5)]);
        assert_eq!(store.write(&commit).await.unwrap(), landed(1, None));
        assert_eq!(store.version(&world).await.unwrap(), Some(5));
        store.remove(std::slice::from_ref(&key)).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap(), None);
        assert_eq!(
            store.drop_world(&world).await.unwrap(),
            3,
            "flags, ver and epoch"
        );
        assert_eq!(store.version(&world).await.unwrap(), None);
        assert_eq!(store.get(&flags).await.unwrap(), None);
    }

    /// `rediss://` with a private CA: the store connects over TLS, trusting
    /// that CA, and every operation works.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls_with_a_private_ca_works() {
        let Some(url) = server_env(TLS_VAR) else {
            return;
        };
        let Some(ca) = server_env(TLS_CA_VAR) else {
            return;
        };
        let pem = std::fs::read(&ca).expect("the CA certificate file");
        let config = RedisConfig::from_url(&url)
            .unwrap()
            .with_ca_cert_pem(pem)
            .with_response_timeout(TEST_RESPONSE_TIMEOUT);
        assert!(config.tls, "{TLS_VAR} is a rediss:// URL");
        let store = RedisStore::connect(&config)
            .await
            .expect("a TLS connection");
        exercise(&store).await;
        // Without the CA, the server's certificate is not trusted.
        let untrusted = RedisConfig::from_url(&url).unwrap();
        assert!(RedisStore::connect(&untrusted).await.is_err());
    }

    /// A user the server does not allow to run scripts gets `Refused`, not
    /// `Unavailable`: retrying will not help.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn missing_permissions_are_refused() {
        let Some(url) = standalone_url() else { return };
        let Topology::Standalone(node) = RedisConfig::from_url(&url).unwrap().topology else {
            unreachable!("from_url gives one server")
        };
        let user = format!("lwcache-noscript-{}", std::process::id());
        let mut admin = connect_one(&url).await;
        let _: () = redis::cmd("ACL")
            .arg(
                &[
                    "SETUSER", &user, "reset", "on", ">pw", "~lw:*", "+get", "+ping", "+del",
                ][..],
            )
            .query_async(&mut admin)
            .await
            .unwrap();
        let config =
            RedisConfig::from_url(&format!("redis://{user}:pw@{}:{}", node.host, node.port))
                .unwrap()
                .with_response_timeout(TEST_RESPONSE_TIMEOUT);
        let store = RedisStore::connect(&config).await.expect("connects");
        let world = fresh_world();
        let result = store
            .lease(
                &world,
                &[CacheKey::state(&world)],
                Lease(1),
                Duration::from_secs(1),
            )
            .await;
        let get = store.get(&CacheKey::state(&world)).await;
        let _: i64 = redis::cmd("ACL")
            .arg(&["DELUSER", &user][..])
            .query_async(&mut admin)
            .await
            .unwrap();
        assert!(matches!(result, Err(CacheError::Refused(_))), "{result:?}");
        assert_eq!(get, Ok(None), "what the user may do still works");
    }
}

mod cluster {
    use super::*;

    fn target() -> Option<Target> {
        cluster_urls().map(Target::Cluster)
    }

    /// The rules `docs/operations.md` gives the user on a Cluster: the
    /// standalone user's, and `CLUSTER SLOTS`, by which redis-rs learns the
    /// topology (without it the connection is refused).
    const ACL_RULES: &[&str] = &[
        "on",
        ">lwcache-cluster-test",
        "~lw:*",
        "resetchannels",
        "&lw:invalidate",
        "-@all",
        "+get",
        "+set",
        "+del",
        "+evalsha",
        "+script|load",
        "+ping",
        "+scan",
        "+publish",
        "+subscribe",
        "+cluster|slots",
    ];

    /// That user, made on every master, can do everything the port needs
    /// on the Cluster and follow the feed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_acl_user_limited_to_lw_keys_suffices_on_a_cluster() {
        let Some(urls) = cluster_urls() else { return };
        let user = "lwcache-cluster";
        let mut with_user = Vec::new();
        for url in &urls {
            let mut admin = connect_one(url).await;
            let mut cmd = redis::cmd("ACL");
            cmd.arg("SETUSER").arg(user).arg("reset");
            for rule in ACL_RULES {
                cmd.arg(*rule);
            }
            let _: () = cmd.query_async(&mut admin).await.unwrap();
            with_user.push(url.replacen(
                "redis://",
                &format!("redis://{user}:lwcache-cluster-test@"),
                1,
            ));
        }
        let config = RedisConfig::cluster(with_user.iter().map(String::as_str))
            .unwrap()
            .with_response_timeout(TEST_RESPONSE_TIMEOUT);
        assert!(config.username.is_some());
        let store = RedisStore::connect(&config)
            .await
            .expect("the ACL user connects to the Cluster");
        super::standalone::exercise(&store).await;
        super::standalone::feed_confirms(&config).await;
    }

    shared_checks!(
        target(),
        warming_writes_only_the_worlds_keys,
        two_clients_never_leave_a_stale_fill,
        ttls_expire_on_the_server_and_flags_persist,
        lost_scripts_are_reloaded,
        the_script_replaces_as_the_codec_does,
    );

    /// Every key of a world hashes to the slot of its `{<world>}` tag, so one
    /// script may touch them all on one node.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_world_lives_in_one_slot() {
        let Some(target) = target() else { return };
        let repo: Arc<dyn WorldRepository> = Arc::new(MemoryRepository::new());
        let world = seed_world(repo.as_ref(), 3).await;
        let (m, _) = manager(
            Arc::new(target.store().await),
            repo,
            ManagerConfig::default(),
        );
        m.activate(&world).await.expect("activate");
        let probe = target.probe().await;
        let keys = probe.scan(&format!("*{}*", world.as_str())).await;
        assert!(keys.len() > 10, "warmed: {keys:?}");
        let slot = |key: String| {
            let mut raw = probe.raw.clone();
            async move {
                let slot: i64 = redis::cmd("CLUSTER")
                    .arg("KEYSLOT")
                    .arg(key)
                    .query_async(&mut raw)
                    .await
                    .unwrap();
                slot
            }
        };
        let want = slot(format!("{{{}}}", world.as_str())).await;
        for key in keys {
            assert_eq!(slot(key.clone()).await, want, "{key}");
        }
    }
}
