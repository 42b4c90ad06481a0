//! What a Redis server says of its memory: the eviction policy (`CONFIG GET
//! maxmemory-policy`) and how full it is (`INFO memory`), judged against
//! what the protocol needs kept.
//!
//! The protocol keeps one kind of key without a TTL that it needs: a
//! world's version key (`lw:world:{w}:ver`), which tells a world that went
//! back in time. Flags have no TTL by default but are entries like any
//! other (a lost one is read again from the source). Entries, tombstones,
//! negative entries and leases carry TTLs, and losing one of them early
//! costs a source read, never a stale answer (a fill lands only under its
//! lease). So:
//!
//! - `volatile-lru`, `volatile-lfu`, `volatile-ttl`, `volatile-random`
//!   evict only keys with a TTL: safe.
//! - `allkeys-*` may evict version keys: [`Eviction::EvictsUnexpiringKeys`].
//! - `noeviction` never evicts, and refuses writes once `maxmemory` is
//!   reached: safe until memory is nearly full
//!   ([`Eviction::NearlyFull`], at [`NEARLY_FULL_PERCENT`] of
//!   `maxmemory`). With `maxmemory` 0 (no limit) nothing is evicted or
//!   refused by Redis.
//!
//! A user whose ACL refuses `CONFIG` is no failure: the policy is then
//! taken from `INFO memory` (which names it too), and the refusal is said.

use std::sync::Mutex;

use lwcache_core::ports::{CacheError, Cause};
use redis::Value;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};

use crate::config::{RedisConfig, Topology};
use crate::store::{Conn, open};

/// How full a `noeviction` server may be, in percent of `maxmemory`,
/// before it is called nearly full.
pub const NEARLY_FULL_PERCENT: u64 = 90;

/// What one node's memory settings mean for the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Eviction {
    /// Nothing the protocol keeps without a TTL can be evicted, and memory
    /// is not nearly full under `noeviction`.
    Safe,
    /// The policy (`allkeys-*`) may evict keys without a TTL: world
    /// version keys.
    EvictsUnexpiringKeys(String),
    /// `noeviction` with memory at or past [`NEARLY_FULL_PERCENT`] of
    /// `maxmemory`: writes are about to be refused (OOM).
    NearlyFull {
        /// `used_memory`, in bytes.
        used: u64,
        /// `maxmemory`, in bytes.
        max: u64,
    },
    /// A policy this adapter does not know.
    UnknownPolicy(String),
    /// Neither `CONFIG GET` nor `INFO` named the policy.
    NotVisible,
}

impl Eviction {
    /// A short name for logs and JSON: `safe`, `evicts_unexpiring_keys`,
    /// `nearly_full`, `unknown_policy`, `not_visible`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Eviction::Safe => "safe",
            Eviction::EvictsUnexpiringKeys(_) => "evicts_unexpiring_keys",
            Eviction::NearlyFull { .. } => "nearly_full",
            Eviction::UnknownPolicy(_) => "unknown_policy",
            Eviction::NotVisible => "not_visible",
        }
    }
}

impl std::fmt::Display for Eviction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Eviction::Safe => f.write_str("no key the protocol keeps can be evicted"),
            Eviction::EvictsUnexpiringKeys(p) => write!(
                f,
                "maxmemory-policy {p} may evict keys without a TTL (world version keys); \
                 use a volatile-* policy or noeviction"
            ),
            Eviction::NearlyFull { used, max } => write!(
                f,
                "noeviction with used_memory {used} of maxmemory {max} bytes: \
                 Redis refuses writes once it is full"
            ),
            Eviction::UnknownPolicy(p) => write!(f, "unknown maxmemory-policy {p}"),
            Eviction::NotVisible => f.write_str("the server did not say its maxmemory-policy"),
        }
    }
}

/// One node's memory settings and use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMemory {
    /// The node's address as the client knows it.
    pub node: String,
    /// `maxmemory-policy`, from `CONFIG GET`, or from `INFO memory` when
    /// `CONFIG` is refused.
    pub policy: Option<String>,
    /// The server's refusal of `CONFIG GET` (an ACL without `+config|get`).
    pub config_refused: Option<String>,
    /// `used_memory`, in bytes.
    pub used_memory: Option<u64>,
    /// `maxmemory`, in bytes; 0 is no limit.
    pub maxmemory: Option<u64>,
}

impl NodeMemory {
    /// What these settings mean for the protocol.
    pub fn eviction(&self) -> Eviction {
        let Some(policy) = self.policy.as_deref() else {
            return Eviction::NotVisible;
        };
        match policy {
            "volatile-lru" | "volatile-lfu" | "volatile-ttl" | "volatile-random" => Eviction::Safe,
            "allkeys-lru" | "allkeys-lfu" | "allkeys-random" => {
                Eviction::EvictsUnexpiringKeys(policy.to_owned())
            }
            "noeviction" => match (self.used_memory, self.maxmemory) {
                (Some(used), Some(max))
                    if max > 0
                        && u128::from(used) * 100
                            >= u128::from(max) * u128::from(NEARLY_FULL_PERCENT) =>
                {
                    Eviction::NearlyFull { used, max }
                }
                _ => Eviction::Safe,
            },
            other => Eviction::UnknownPolicy(other.to_owned()),
        }
    }

    /// Reads a node's answers to `CONFIG GET maxmemory-policy` and `INFO
    /// memory` (each either a reply or the server's refusal).
    fn from_replies(node: String, config: &Reply, info: &Reply) -> Self {
        let info_text = info.as_ref().ok().and_then(text);
        let field = |name: &str| {
            info_text.as_deref().and_then(|t| {
                t.lines()
                    .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
                    .map(str::to_owned)
            })
        };
        let number = |name: &str| field(name).and_then(|v| v.trim().parse::<u64>().ok());
        let (from_config, config_refused) = match config {
            Err(refusal) => (None, Some(refusal.clone())),
            Ok(reply) => (config_value(reply, "maxmemory-policy"), None),
        };
        Self {
            node,
            policy: from_config.or_else(|| field("maxmemory_policy").map(|p| p.trim().to_owned())),
            config_refused,
            used_memory: number("used_memory"),
            maxmemory: number("maxmemory"),
        }
    }
}

/// One node's reply, or the server's refusal of the command.
type Reply = Result<Value, String>;

/// Each node's reply, by the node's address.
type Replies = Vec<(String, Reply)>;

/// A bulk or simple string's text.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => Some(s.clone()),
        _ => None,
    }
}

/// The value of `name` in a `CONFIG GET` reply: a flat array (RESP2) or a
/// map (RESP3).
fn config_value(reply: &Value, name: &str) -> Option<String> {
    let pairs: Vec<(&Value, &Value)> = match reply {
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|c| Some((c.first()?, c.get(1)?)))
            .collect(),
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
        _ => return None,
    };
    pairs
        .into_iter()
        .find(|(k, _)| text(k).is_some_and(|k| k.eq_ignore_ascii_case(name)))
        .and_then(|(_, v)| text(v))
}

/// Reads the memory settings of the server, or of every Cluster master, on
/// a connection of its own (made on first use, kept for the next).
pub struct ServerProbe {
    config: RedisConfig,
    conn: Mutex<Option<Conn>>,
}

impl std::fmt::Debug for ServerProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerProbe")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ServerProbe {
    /// A probe of the server or Cluster `config` names; nothing is
    /// connected until [`memory`](Self::memory).
    pub fn new(config: &RedisConfig) -> Self {
        Self {
            config: config.clone(),
            conn: Mutex::new(None),
        }
    }

    /// Each node's `maxmemory-policy`, `used_memory` and `maxmemory`; on a
    /// Cluster, every master's. A refused `CONFIG` is reported in the
    /// node's [`NodeMemory::config_refused`], not as an error; an
    /// unreachable server is an error.
    pub async fn memory(&self) -> Result<Vec<NodeMemory>, CacheError> {
        let limit = self.config.response_timeout;
        let run = async {
            let mut conn = self.conn().await?;
            let config = self.ask(&mut conn, config_get()).await?;
            let info = self.ask(&mut conn, info_memory()).await?;
            Ok::<_, redis::RedisError>(self.nodes(config, info))
        };
        match tokio::time::timeout(limit + self.config.connect_timeout, run).await {
            Ok(Ok(nodes)) => Ok(nodes),
            Ok(Err(e)) => {
                // A connection that failed is made again on the next call.
                *self.lock() = None;
                Err(CacheError::Unavailable(Cause::new(e)))
            }
            Err(_) => Err(CacheError::Timeout(limit)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Conn>> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn conn(&self) -> redis::RedisResult<Conn> {
        if let Some(conn) = self.lock().clone() {
            return Ok(conn);
        }
        let conn = open(&self.config).await?;
        *self.lock() = Some(conn.clone());
        Ok(conn)
    }

    /// Runs `cmd` on the server, or on every Cluster master. A server's
    /// error is that node's reply; only a lost connection fails the call.
    async fn ask(&self, conn: &mut Conn, cmd: redis::Cmd) -> redis::RedisResult<Replies> {
        let refused = |e: &redis::RedisError| matches!(e.kind(), redis::ErrorKind::Server(_));
        match conn {
            Conn::Standalone(c) => {
                let name = match &self.config.topology {
                    Topology::Standalone(n) => format!("{}:{}", n.host, n.port),
                    Topology::Cluster(_) => String::new(),
                };
                match cmd.query_async::<Value>(c).await {
                    Ok(v) => Ok(vec![(name, Ok(v))]),
                    Err(e) if refused(&e) => Ok(vec![(name, Err(e.to_string()))]),
                    Err(e) => Err(e),
                }
            }
            Conn::Cluster(c) => {
                let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                match c.route_command(cmd, all).await {
                    Ok(Value::Map(replies)) => Ok(replies
                        .into_iter()
                        .map(|(node, reply)| {
                            let reply = match reply {
                                Value::ServerError(e) => Err(e.to_string()),
                                other => Ok(other),
                            };
                            (text(&node).unwrap_or_default(), reply)
                        })
                        .collect()),
                    Ok(other) => Ok(vec![("cluster".to_owned(), Ok(other))]),
                    Err(e) if refused(&e) => Ok(vec![("cluster".to_owned(), Err(e.to_string()))]),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Pairs each node's two replies.
    fn nodes(&self, config: Replies, info: Replies) -> Vec<NodeMemory> {
        config
            .into_iter()
            .map(|(node, config)| {
                let info = info
                    .iter()
                    .find(|(n, _)| *n == node)
                    .map_or(Ok(Value::Nil), |(_, i)| i.clone());
                NodeMemory::from_replies(node, &config, &info)
            })
            .collect()
    }
}

fn config_get() -> redis::Cmd {
    let mut cmd = redis::cmd("CONFIG");
    cmd.arg("GET").arg("maxmemory-policy");
    cmd
}

fn info_memory() -> redis::Cmd {
    let mut cmd = redis::cmd("INFO");
    cmd.arg("memory");
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(policy: Option<&str>, used: u64, max: u64) -> NodeMemory {
        NodeMemory {
            node: "n".into(),
            policy: policy.map(str::to_owned),
            config_refused: None,
            used_memory: Some(used),
            maxmemory: Some(max),
        }
    }

    #[test]
    fn only_policies_that_keep_unexpiring_keys_are_safe() {
        for p in [
            "volatile-lru",
            "volatile-lfu",
            "volatile-ttl",
            "volatile-random",
        ] {
            assert_eq!(node(Some(p), 99, 100).eviction(), Eviction::Safe, "{p}");
        }
        for p in ["allkeys-lru", "allkeys-lfu", "allkeys-random"] {
            assert_eq!(
                node(Some(p), 1, 100).eviction(),
                Eviction::EvictsUnexpiringKeys(p.into())
            );
        }
        assert_eq!(node(Some("noeviction"), 89, 100).eviction(), Eviction::Safe);
        assert_eq!(
            node(Some("noeviction"), 90, 100).eviction(),
            Eviction::NearlyFull { used: 90, max: 100 }
        );
        assert_eq!(
            node(Some("noeviction"), u64::MAX, 0).eviction(),
            Eviction::Safe,
            "maxmemory 0 is no limit"
        );
        assert_eq!(
            node(Some("lru-someday"), 1, 1).eviction(),
            Eviction::UnknownPolicy("lru-someday".into())
        );
        assert_eq!(node(None, 1, 1).eviction(), Eviction::NotVisible);
    }

    #[test]
    fn replies_in_either_protocol_are_read_and_a_refusal_falls_back_to_info() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let info = Ok(bulk(
            "# Memory\r\nused_memory:1234\r\nmaxmemory:5000\r\nmaxmemory_policy:allkeys-lru\r\n",
        ));
        let resp2 = Ok(Value::Array(vec![
            bulk("maxmemory-policy"),
            bulk("volatile-lru"),
        ]));
        let n = NodeMemory::from_replies("a".into(), &resp2, &info);
        assert_eq!(
            n.policy.as_deref(),
            Some("volatile-lru"),
            "CONFIG GET first"
        );
        assert_eq!((n.used_memory, n.maxmemory), (Some(1234), Some(5000)));
        let resp3 = Ok(Value::Map(vec![(
            bulk("maxmemory-policy"),
            bulk("noeviction"),
        )]));
        let n = NodeMemory::from_replies("a".into(), &resp3, &info);
        assert_eq!(n.policy.as_deref(), Some("noeviction"));
        let refused = Err("NOPERM no config".to_owned());
        let n = NodeMemory::from_replies("a".into(), &refused, &info);
        assert_eq!(n.policy.as_deref(), Some("allkeys-lru"), "from INFO");
        assert!(n.config_refused.is_some());
    }
}
