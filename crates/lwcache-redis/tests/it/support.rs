//! Harnesses over real servers, found through the environment, and a probe
//! that looks inside Redis with plain commands.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lwcache_core::ports::WorldRepository;
use lwcache_domain::{CacheKey, Document, EntityKind, NewEvent, Op, Value, WorldId};
use lwcache_memory::MemoryRepository;
use lwcache_redis::{RedisConfig, RedisStore};
use lwcache_testkit::fixtures::{doc, entity, event_kind, flag, seed_ops};
use lwcache_testkit::{Harness, RealClock, StoreProbe};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, RedisFuture, Value as RValue};

/// The standalone server's URL.
pub(crate) const STANDALONE_VAR: &str = "LWCACHE_TEST_REDIS_URL";
/// The Cluster nodes' URLs, comma-separated.
pub(crate) const CLUSTER_VAR: &str = "LWCACHE_TEST_REDIS_CLUSTER_URLS";
/// A standalone URL that authenticates as an ACL user limited to `~lw:*`.
pub(crate) const ACL_VAR: &str = "LWCACHE_TEST_REDIS_ACL_URL";
/// A `rediss://` URL of a server whose certificate a private CA signed.
pub(crate) const TLS_VAR: &str = "LWCACHE_TEST_REDIS_TLS_URL";
/// The path of that CA's PEM certificate.
pub(crate) const TLS_CA_VAR: &str = "LWCACHE_TEST_REDIS_TLS_CA";

/// What follows a key to name its lease in Redis.
pub(crate) const LEASE_SUFFIX: &str = ":lease";

/// Generous for a loaded 2-core machine: these tests check behaviour, not
/// speed.
pub(crate) const TEST_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The value of `var`, or `None` after saying loudly that the test is
/// skipped; panics instead when servers are required.
pub(crate) fn server_env(var: &str) -> Option<String> {
    lwcache_testkit::servers::server_var(var, "lwcache-redis")
}

/// The standalone URL, if configured.
pub(crate) fn standalone_url() -> Option<String> {
    server_env(STANDALONE_VAR)
}

/// The Cluster node URLs, if configured.
pub(crate) fn cluster_urls() -> Option<Vec<String>> {
    server_env(CLUSTER_VAR).map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

/// A store on the standalone server.
pub(crate) async fn standalone_store(url: &str) -> RedisStore {
    let config = RedisConfig::from_url(url)
        .expect("a valid LWCACHE_TEST_REDIS_URL")
        .with_response_timeout(TEST_RESPONSE_TIMEOUT);
    RedisStore::connect(&config).await.expect("connects")
}

/// A store on the Cluster.
pub(crate) async fn cluster_store(urls: &[String]) -> RedisStore {
    let config = RedisConfig::cluster(urls)
        .expect("valid LWCACHE_TEST_REDIS_CLUSTER_URLS")
        .with_response_timeout(TEST_RESPONSE_TIMEOUT);
    RedisStore::connect(&config).await.expect("connects")
}

/// The conformance harness on the standalone server.
pub(crate) async fn standalone_harness() -> Option<Harness> {
    let url = standalone_url()?;
    Some(harness(
        Arc::new(standalone_store(&url).await),
        Probe::standalone(&url).await,
    ))
}

/// The conformance harness on the Cluster.
pub(crate) async fn cluster_harness() -> Option<Harness> {
    let urls = cluster_urls()?;
    Some(harness(
        Arc::new(cluster_store(&urls).await),
        Probe::cluster(&urls).await,
    ))
}

fn harness(store: Arc<RedisStore>, probe: Probe) -> Harness {
    Harness {
        store,
        repo: Arc::new(MemoryRepository::new()),
        probe: Arc::new(probe),
        time: Arc::new(RealClock),
    }
}

/// A test's own connection: one server, or the Cluster with key routing.
#[derive(Clone)]
pub(crate) enum Raw {
    /// One server.
    One(MultiplexedConnection),
    /// The Cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Raw {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, RValue> {
        match self {
            Raw::One(c) => c.req_packed_command(cmd),
            Raw::Cluster(c) => c.req_packed_command(cmd),
        }
    }
    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<RValue>> {
        match self {
            Raw::One(c) => c.req_packed_commands(pipeline, offset, count),
            Raw::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }
    fn get_db(&self) -> i64 {
        match self {
            Raw::One(c) => c.get_db(),
            Raw::Cluster(c) => c.get_db(),
        }
    }
}

/// A connection to one server.
pub(crate) async fn connect_one(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .expect("a valid URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connects")
}

/// Looks inside Redis past the port: SET, SCAN, PTTL, DEL.
#[derive(Clone)]
pub(crate) struct Probe {
    /// Routes keyed commands.
    pub(crate) raw: Raw,
    /// Every master, for SCAN (a Cluster node scans only its own slots).
    pub(crate) masters: Vec<MultiplexedConnection>,
}

impl Probe {
    /// A probe of one server.
    pub(crate) async fn standalone(url: &str) -> Probe {
        let conn = connect_one(url).await;
        Probe {
            raw: Raw::One(conn.clone()),
            masters: vec![conn],
        }
    }

    /// A probe of a Cluster: keyed commands are routed by slot, and SCAN
    /// goes to every master listed by `CLUSTER NODES`.
    pub(crate) async fn cluster(urls: &[String]) -> Probe {
        let client = redis::cluster::ClusterClient::new(urls.to_vec()).expect("valid URLs");
        let raw = client.get_async_connection().await.expect("connects");
        let mut seed = connect_one(&urls[0]).await;
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut seed)
            .await
            .expect("CLUSTER NODES");
        let mut masters = Vec::new();
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 3 || !fields[2].split(',').any(|f| f == "master") {
                continue;
            }
            let addr = fields[1].split('@').next().expect("ip:port@cport");
            masters.push(connect_one(&format!("redis://{addr}")).await);
        }
        assert!(!masters.is_empty(), "the Cluster lists its masters");
        Probe {
            raw: Raw::Cluster(raw),
            masters,
        }
    }

    /// Every key matching `pattern` on every master, sorted, deduplicated.
    pub(crate) async fn scan(&self, pattern: &str) -> Vec<String> {
        let mut keys = BTreeSet::new();
        for conn in &self.masters {
            let mut conn = conn.clone();
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await
                    .expect("SCAN");
                keys.extend(batch);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        keys.into_iter().collect()
    }

    /// Every key under the world's prefix, its leases included.
    pub(crate) async fn everything(&self, world: &WorldId) -> Vec<String> {
        let prefix = lwcache_domain::key::world_prefix(world);
        self.scan(&format!("{prefix}*")).await
    }

    /// `PTTL key`: -2 absent, -1 persistent, else milliseconds left.
    pub(crate) async fn pttl(&self, key: &str) -> i64 {
        redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut self.raw.clone())
            .await
            .expect("PTTL")
    }
}

#[async_trait]
impl StoreProbe for Probe {
    async fn put_raw(&self, key: &CacheKey, bytes: Vec<u8>) {
        let _: () = redis::cmd("SET")
            .arg(key.to_string())
            .arg(bytes)
            .query_async(&mut self.raw.clone())
            .await
            .expect("SET");
    }

    /// The world's data keys and its version key, as the in-memory store
    /// lists them: leases and the epoch are the store's bookkeeping, not
    /// keys of the world.
    async fn keys(&self, world: &WorldId) -> Vec<String> {
        let epoch = format!(
            "{}{}",
            lwcache_domain::key::world_prefix(world),
            lwcache_redis::EPOCH_SUFFIX
        );
        let mut keys = self.everything(world).await;
        keys.retain(|k| !k.ends_with(LEASE_SUFFIX) && *k != epoch);
        keys
    }

    async fn ttl(&self, key: &CacheKey) -> Option<Duration> {
        match self.pttl(&key.to_string()).await {
            ms if ms >= 0 => Some(Duration::from_millis(ms as u64)),
            _ => None,
        }
    }

    async fn forget(&self, world: &WorldId) {
        let keys = self.everything(world).await;
        if keys.is_empty() {
            return;
        }
        // One world, one hash tag, one slot: a single DEL is legal on a
        // Cluster.
        let _: i64 = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut self.raw.clone())
            .await
            .expect("DEL");
    }
}

/// A world made in the source: a snapshot, a flag, `characters` characters
/// (`c0`, `c1`, ...) with one event each, a location `l1` and an object
/// `o1`.
pub(crate) async fn seed_world(repo: &dyn WorldRepository, characters: usize) -> WorldId {
    let mut ops = vec![
        Op::ReplaceSnapshot(doc("name", "Harbor")),
        Op::SetFlag(flag("door_open"), Value::Bool(false)),
        Op::CreateEntity(entity(EntityKind::Location, "l1"), doc("name", "Pier")),
        Op::CreateEntity(entity(EntityKind::Object, "o1"), doc("name", "Lantern")),
    ];
    for n in 0..characters {
        let id = format!("c{n}");
        ops.push(Op::CreateEntity(
            entity(EntityKind::Character, &id),
            doc("mood", "calm"),
        ));
        ops.push(Op::AddEvent(NewEvent {
            entity: entity(EntityKind::Character, &id).entity_id(),
            kind: event_kind("spoke"),
            at_ms: n as i64,
            data: Document::new().with("n", Value::Int(n as i64)),
            top_k: lwcache_domain::DEFAULT_TOP_K,
        }));
    }
    seed_ops(repo, ops).await
}

/// The standalone server's address, for the proxy's upstream.
pub(crate) fn upstream(url: &str) -> std::net::SocketAddr {
    let authority = url
        .trim_start_matches("redis://")
        .rsplit('@')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    authority.parse().unwrap()
}
