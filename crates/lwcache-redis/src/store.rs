//! The Redis cache store.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use lwcache_core::ports::{
    CacheError, CacheStore, CacheWrite, Epoch, Lease, WriteKind, WriteOutcome, check_keys,
};
use lwcache_domain::{CacheKey, KeyKind, WorldId};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, RedisError, RedisFuture, Script, Value};

use crate::config::{ConfigError, RedisConfig, Topology};
pub(crate) use crate::failure::Failure;
use crate::failure::classify;
use crate::gets::Gets;
use crate::link::Link;

/// The versioned write: see `write.lua` for its keys, arguments and reply.
const WRITE_SCRIPT: &str = include_str!("write.lua");
/// Takes a fill's leases: see `lease.lua`.
const LEASE_SCRIPT: &str = include_str!("lease.lua");

/// What follows a key to name its lease. No key the domain formats ends in
/// it, and the lease key keeps the key's `{<world>}` hash tag, so a script
/// may touch a key and its lease on one Cluster node.
const LEASE_SUFFIX: &str = ":lease";

/// How many keys one SCAN step of [`CacheStore::drop_world`] asks for (a
/// hint to the server) and so about how many one DEL deletes.
const SCAN_COUNT: usize = 500;

/// How often the standalone connection retries a reconnect before the next
/// call starts over; each try is bounded by the connect timeout.
const RECONNECT_RETRIES: usize = 3;

/// Why [`RedisStore::connect`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The server or Cluster could not be reached, or refused the client.
    #[error("cannot connect to Redis: {0}")]
    Store(#[source] CacheError),
    /// A connection in the background needs a tokio runtime to run on, and
    /// the caller is not on one.
    #[error("connecting to Redis in the background needs a tokio runtime")]
    NoRuntime,
}

/// The connection: both kinds multiplex every call over shared sockets, are
/// cheap to clone, and reconnect by themselves.
#[derive(Clone)]
pub(crate) enum Conn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

// One `ConnectionLike` for both kinds lets a `redis::Script` and every
// command run on either without duplicating the call sites.
impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Standalone(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Standalone(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A cache store on Redis, standalone or Cluster.
///
/// Every versioned write is one Lua script run on the server, so it is
/// atomic with respect to every other call, whichever process makes it. All
/// keys of a world share the `{<world>}` hash tag, so on a Cluster a write
/// touches one slot on one node. Scripts are called by their SHA1 (EVALSHA)
/// and loaded again when a server answers NOSCRIPT (after a restart or a
/// failover). Every call is bounded by the configured response timeout.
///
/// Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisStore {
    link: Link,
    /// Standalone or Cluster, for `Debug`, known before the connection is.
    cluster: bool,
    timeout: Duration,
    /// Batches single-key reads on a standalone server, when configured
    /// (`gets.rs`).
    gets: Option<Gets>,
    write_script: Script,
    lease_script: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.cluster {
            "cluster"
        } else {
            "standalone"
        };
        f.debug_struct("RedisStore")
            .field("topology", &kind)
            .field("connected", &self.link.is_made())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the server or Cluster `config` names, within its connect
    /// timeout. Later losses of the connection are repaired on their own;
    /// calls made meanwhile fail with [`CacheError::Unavailable`].
    pub async fn connect(config: &RedisConfig) -> Result<Self, ConnectError> {
        config.validate()?;
        let limit = config.connect_timeout;
        let conn = match tokio::time::timeout(limit, open(config)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(ConnectError::Store(classify(e, limit))),
            Err(_) => return Err(ConnectError::Store(CacheError::Timeout(limit))),
        };
        tracing::debug!(config = ?config, "connected to Redis");
        Ok(Self::over(Link::made(conn), config))
    }

    /// Returns at once, connecting in the background: a task on the
    /// current tokio runtime tries to connect (each try within the connect
    /// timeout, with pauses growing to 2 s) until the server or Cluster
    /// answers. Until then every call fails at once with
    /// [`CacheError::Unavailable`], naming the last try's error; from then
    /// on the store is the one [`connect`](Self::connect) makes. Only the
    /// configuration is checked here.
    pub fn connect_in_background(config: &RedisConfig) -> Result<Self, ConnectError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConnectError::NoRuntime)?;
        Ok(Self::over(
            Link::in_background(config.clone(), &runtime),
            config,
        ))
    }

    fn over(link: Link, config: &RedisConfig) -> Self {
        let cluster = matches!(config.topology, Topology::Cluster(_));
        let gets = (!cluster && config.batch_reads).then(|| {
            let per_thread = config.read_connection_per_thread.then(|| config.clone());
            Gets::new(link.clone(), config.response_timeout, per_thread)
        });
        Self {
            link,
            cluster,
            timeout: config.response_timeout,
            gets,
            write_script: Script::new(WRITE_SCRIPT),
            lease_script: Script::new(LEASE_SCRIPT),
        }
    }

    /// Whether the connection has been made (by [`connect`](Self::connect),
    /// or by now in the background). A made connection may be down again:
    /// calls say so.
    pub fn is_connected(&self) -> bool {
        self.link.is_made()
    }

    /// How many reading threads have a connection of their own made (with
    /// [`RedisConfig::read_connection_per_thread`]; a thread's latest, on
    /// the last runtime it read on); 0 otherwise.
    pub fn thread_read_connections(&self) -> usize {
        self.gets.as_ref().map_or(0, Gets::thread_connections)
    }

    /// Runs one call on a clone of the connection (they share the socket),
    /// bounded by the response timeout, and converts its failure. This is
    /// the call's one timer: a standalone connection is made with no
    /// response timeout of redis-rs's own, since this one also bounds a wait
    /// on a reconnect, which redis-rs's does not; a Cluster's keeps it, to
    /// give up on one node's answer.
    pub(crate) async fn call<T, F>(&self, f: impl FnOnce(Conn) -> F) -> Result<T, CacheError>
    where
        F: Future<Output = Result<T, Failure>>,
    {
        call_on(&self.link, self.timeout, f).await
    }

    fn version_key(world: &WorldId) -> String {
        CacheKey::version(world).render()
    }

    fn lease_key(key: &CacheKey) -> String {
        format!("{key}{LEASE_SUFFIX}")
    }
}

/// [`RedisStore::call`] on `link`, bounded by `timeout`.
pub(crate) async fn call_on<T, F>(
    link: &Link,
    timeout: Duration,
    f: impl FnOnce(Conn) -> F,
) -> Result<T, CacheError>
where
    F: Future<Output = Result<T, Failure>>,
{
    let conn = link.conn()?;
    match tokio::time::timeout(timeout, f(conn)).await {
        Ok(result) => result.map_err(|e| e.into_cache_error(timeout)),
        Err(_) => Err(CacheError::Timeout(timeout)),
    }
}

impl Conn {
    /// One SCAN step over the keys matching `pattern`, on the server that
    /// holds `slot_key`'s slot: a Cluster node scans only its own keys, and
    /// an unkeyed command would go to any node.
    async fn scan_step(
        &mut self,
        cursor: u64,
        pattern: &str,
        slot_key: &str,
    ) -> Result<(u64, Vec<String>), Failure> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT);
        match self {
            Conn::Standalone(c) => Ok(cmd.query_async(c).await?),
            Conn::Cluster(c) => {
                let route = Route::with_key(slot_key, SlotAddr::Master);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                let reply = c.route_command(cmd, routing).await?;
                Ok(redis::from_redis_value(reply).map_err(RedisError::from)?)
            }
        }
    }
}

/// Opens the connection `config` names (not bounded: callers bound it by
/// the connect timeout).
pub(crate) async fn open(config: &RedisConfig) -> redis::RedisResult<Conn> {
    match &config.topology {
        Topology::Standalone(node) => {
            let info = config.connection_info(node)?;
            let client = match config.tls_certificates() {
                Some(certs) => redis::Client::build_with_tls(info, certs)?,
                None => redis::Client::open(info)?,
            };
            // The manager retries its first connection as it would a lost
            // one, and a refusal (a wrong password, no server listening)
            // would show only as the connect timeout running out: one plain
            // connection first answers with the server's own error.
            drop(client.get_multiplexed_async_connection().await?);
            let manager = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                // `RedisStore::call` bounds every call, waits on a
                // reconnect included: a second timer would cost each read
                // without bounding anything more.
                .set_response_timeout(None)
                .set_number_of_retries(RECONNECT_RETRIES);
            let conn = ConnectionManager::new_with_config(client, manager).await?;
            Ok(Conn::Standalone(conn))
        }
        Topology::Cluster(nodes) => {
            let infos = nodes
                .iter()
                .map(|n| config.connection_info(n))
                .collect::<redis::RedisResult<Vec<_>>>()?;
            let mut builder = ClusterClientBuilder::new(infos)
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.response_timeout)
                .retries(RECONNECT_RETRIES as u32);
            if let Some(user) = &config.username {
                builder = builder.username(user);
            }
            if let Some(password) = &config.password {
                builder = builder.password(password);
            }
            if let Some(certs) = config.tls_certificates() {
                builder = builder.certs(certs);
            }
            let conn = builder.build()?.get_async_connection().await?;
            Ok(Conn::Cluster(conn))
        }
    }
}

/// `name` with `keys` as its arguments, its buffers made at their final
/// sizes: a key is written in pieces, each of which would grow them.
pub(crate) fn command(name: &str, keys: &[CacheKey]) -> redis::Cmd {
    command_of(name, keys.iter())
}

/// [`command`] over borrowed keys.
pub(crate) fn command_of<'a>(
    name: &str,
    keys: impl ExactSizeIterator<Item = &'a CacheKey> + Clone,
) -> redis::Cmd {
    let bytes: usize = keys
        .clone()
        .map(|k| k.spelling().iter().map(|p| p.len()).sum::<usize>())
        .sum();
    let mut cmd = redis::Cmd::with_capacity(1 + keys.len(), name.len() + bytes);
    cmd.arg(name);
    for key in keys {
        cmd.arg(KeyArg(key));
    }
    cmd
}

/// A key as a command's argument, spelled straight into its buffer.
struct KeyArg<'a>(&'a CacheKey);

impl redis::ToRedisArgs for KeyArg<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + redis::RedisWrite,
    {
        let mut arg = out.writer_for_next_arg();
        for piece in self.0.spelling() {
            // The writer appends to the command's `Vec`: it cannot fail.
            let _ = std::io::Write::write_all(&mut arg, piece.as_bytes());
        }
    }
}

/// A TTL in whole milliseconds, at least 1: `0` means "no TTL" to the
/// script, and a sub-millisecond TTL must still expire.
fn ttl_ms(ttl: Option<Duration>) -> u64 {
    match ttl {
        None => 0,
        Some(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1),
    }
}

fn parse_version(raw: &str, key: &str) -> Result<u64, Failure> {
    raw.parse::<u64>()
        .map_err(|_| Failure::Refused(format!("{key} holds {raw:?}, not a version")))
}

#[async_trait]
impl CacheStore for RedisStore {
    /// Every call is bounded by the response timeout, by one timer that
    /// also covers a wait on a reconnect.
    fn read_deadline(&self) -> Option<Duration> {
        Some(self.timeout)
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, CacheError> {
        if key.kind() == KeyKind::Version {
            return Err(CacheError::Refused(
                format!("{key} is the version key").into(),
            ));
        }
        match &self.gets {
            Some(gets) => gets.get(key).await,
            None => crate::gets::get_one(&self.link, self.timeout, key).await,
        }
    }

    /// One `MGET`: every key of a world shares its hash tag, so one Cluster
    /// node serves them all.
    async fn get_many(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
    ) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        check_keys(world, keys)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mget = command("MGET", keys);
        let asked = keys.len();
        self.call(|mut conn| async move {
            let entries: Vec<Option<Vec<u8>>> = mget.query_async(&mut conn).await?;
            if entries.len() != asked {
                return Err(Failure::Refused(format!(
                    "MGET of {asked} keys answered {} values",
                    entries.len()
                )));
            }
            Ok(entries)
        })
        .await
    }

    async fn write(&self, write: &CacheWrite) -> Result<WriteOutcome, CacheError> {
        write.check()?;
        let ver_key = Self::version_key(&write.world);
        let mut invocation = self.write_script.prepare_invoke();
        invocation.key(&ver_key);
        for put in &write.puts {
            invocation.key(put.key.render());
        }
        for put in &write.puts {
            invocation.key(Self::lease_key(&put.key));
        }
        invocation.key(crate::epoch::epoch_key(&write.world));
        let (kind, token) = match write.kind {
            WriteKind::Fill { lease } => ("fill", lease.0.to_string()),
            WriteKind::Commit { epoch } => {
                ("commit", epoch.map(|e| e.0.to_string()).unwrap_or_default())
            }
        };
        invocation
            .arg(kind)
            .arg(write.version.to_string())
            .arg(token);
        for put in &write.puts {
            invocation.arg(put.bytes.as_slice());
            invocation.arg(ttl_ms(put.ttl));
        }
        let puts = write.puts.len();
        self.call(|mut conn| async move {
            let (landed, skipped, previous, lost): (usize, usize, String, u8) =
                invocation.invoke_async(&mut conn).await?;
            if landed + skipped != puts {
                return Err(Failure::Refused(format!(
                    "the write script counted {landed} landed and {skipped} skipped of {puts} puts"
                )));
            }
            let previous = match previous.as_str() {
                "" => None,
                raw => Some(parse_version(raw, &ver_key)?),
            };
            Ok(WriteOutcome {
                landed,
                skipped,
                previous,
                epoch_lost: lost == 1,
            })
        })
        .await
    }

    async fn lease(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
        lease: Lease,
        ttl: Duration,
    ) -> Result<Vec<bool>, CacheError> {
        check_keys(world, keys)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.lease_script.prepare_invoke();
        for key in keys {
            invocation.key(Self::lease_key(key));
        }
        invocation.arg(lease.0.to_string()).arg(ttl_ms(Some(ttl)));
        let count = keys.len();
        self.call(|mut conn| async move {
            let held: Vec<i64> = invocation.invoke_async(&mut conn).await?;
            if held.len() != count {
                return Err(Failure::Refused(format!(
                    "the lease script answered {} of {count} keys",
                    held.len()
                )));
            }
            Ok(held.into_iter().map(|h| h == 1).collect())
        })
        .await
    }

    async fn version(&self, world: &WorldId) -> Result<Option<u64>, CacheError> {
        let key = Self::version_key(world);
        self.call(|mut conn| async move {
            let raw: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
            raw.map(|raw| parse_version(&raw, &key)).transpose()
        })
        .await
    }

    async fn epoch(&self, world: &WorldId) -> Result<Epoch, CacheError> {
        self.learn_epoch(world).await
    }

    async fn remove(&self, keys: &[CacheKey]) -> Result<(), CacheError> {
        // The version key is not an entry: like the in-memory store, removal
        // leaves it alone (losing it would only force a reseed, but the port
        // deletes entries). One DEL per world keeps each command within one
        // Cluster slot.
        let mut by_world: BTreeMap<&WorldId, Vec<String>> = BTreeMap::new();
        for key in keys.iter().filter(|k| k.kind() != KeyKind::Version) {
            by_world.entry(key.world()).or_default().push(key.render());
        }
        if by_world.is_empty() {
            return Ok(());
        }
        // Then near caches drop them too, whatever version they hold: the
        // message follows the deletion on the same connection.
        self.call(|mut conn| async move {
            for keys in by_world.values() {
                let _: i64 = redis::cmd("DEL").arg(keys).query_async(&mut conn).await?;
                let message = crate::feed::removed_message(keys);
                let _: i64 = redis::cmd("PUBLISH")
                    .arg(crate::feed::CHANNEL)
                    .arg(message)
                    .query_async(&mut conn)
                    .await?;
            }
            Ok(())
        })
        .await
    }

    async fn drop_world(&self, world: &WorldId) -> Result<usize, CacheError> {
        // World ids hold only [A-Za-z0-9._-], none of them a glob character,
        // so the prefix needs no escaping in the pattern. Every key of the
        // world (entries, leases, the version) shares its hash tag, so the
        // one node of that slot holds them all and one DEL may take a whole
        // page of them.
        let prefix = lwcache_domain::key::world_prefix(world);
        let pattern = format!("{prefix}*");
        let slot_key = Self::version_key(world);
        let mut dropped = 0;
        let mut cursor = 0;
        loop {
            let (next, keys) = self
                .call(|mut conn| {
                    let (pattern, slot_key) = (&pattern, &slot_key);
                    async move { conn.scan_step(cursor, pattern, slot_key).await }
                })
                .await?;
            if !keys.is_empty() {
                dropped += self
                    .call(|mut conn| async move {
                        let n: usize = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
                        Ok(n)
                    })
                    .await?;
            }
            if next == 0 {
                // Near caches drop the world too: what they hold may be
                // newer than the source now is.
                let message = crate::feed::world_message(world);
                self.call(|mut conn| async move {
                    let _: i64 = redis::cmd("PUBLISH")
                        .arg(crate::feed::CHANNEL)
                        .arg(&message)
                        .query_async(&mut conn)
                        .await?;
                    Ok(())
                })
                .await?;
                return Ok(dropped);
            }
            cursor = next;
        }
    }

    async fn ping(&self) -> Result<(), CacheError> {
        self.call(|mut conn| async move {
            let _: Value = redis::cmd("PING").query_async(&mut conn).await?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_to_whole_milliseconds_and_never_to_zero() {
        assert_eq!(ttl_ms(None), 0);
        assert_eq!(ttl_ms(Some(Duration::from_micros(10))), 1);
        assert_eq!(ttl_ms(Some(Duration::from_millis(1500))), 1500);
    }

    #[test]
    fn versions_parse_or_are_refused() {
        assert!(matches!(parse_version("42", "k"), Ok(42)));
        assert!(matches!(
            parse_version("18446744073709551615", "k"),
            Ok(u64::MAX)
        ));
        assert!(matches!(parse_version("x", "k"), Err(Failure::Refused(_))));
    }
}
