//! The `LWCACHE_*` environment variables: their names, and the layer read
//! from them.

use std::path::PathBuf;

use super::{ClusterUrls, ConfigError, Layer, RedisUrl, Secret};

/// The listen address.
pub const LISTEN: &str = "LWCACHE_LISTEN";
/// The Redis URL.
pub const REDIS_URL: &str = "LWCACHE_REDIS_URL";
/// The Redis Cluster's seed node URLs, comma-separated.
pub const REDIS_CLUSTER: &str = "LWCACHE_REDIS_CLUSTER";
/// The CA certificate(s) to trust for `rediss://`, a PEM file.
pub const REDIS_CA_FILE: &str = "LWCACHE_REDIS_CA_FILE";
/// The client certificate chain presented to Redis, a PEM file.
pub const REDIS_CLIENT_CERT: &str = "LWCACHE_REDIS_CLIENT_CERT";
/// The client certificate's private key, a PEM file.
pub const REDIS_CLIENT_KEY: &str = "LWCACHE_REDIS_CLIENT_KEY";
/// The CA certificate(s) to trust for `bolt+s://`/`neo4j+s://`, a PEM file.
pub const NEO4J_CA_FILE: &str = "LWCACHE_NEO4J_CA_FILE";
/// The certificate chain the listener serves HTTPS with, a PEM file.
pub const TLS_CERT: &str = "LWCACHE_TLS_CERT";
/// Its private key, a PEM file.
pub const TLS_KEY: &str = "LWCACHE_TLS_KEY";
/// The Neo4j URI.
pub const NEO4J_URI: &str = "LWCACHE_NEO4J_URI";
/// The Neo4j user.
pub const NEO4J_USER: &str = "LWCACHE_NEO4J_USER";
/// The Neo4j password.
pub const NEO4J_PASSWORD: &str = "LWCACHE_NEO4J_PASSWORD";
/// The bearer token every `/v1` route requires.
pub const AUTH_TOKEN: &str = "LWCACHE_AUTH_TOKEN";
/// The bearer token the admin routes require instead, if set.
pub const ADMIN_TOKEN: &str = "LWCACHE_ADMIN_TOKEN";
/// The largest request body, in bytes.
pub const MAX_BODY_BYTES: &str = "LWCACHE_MAX_BODY_BYTES";
/// How many threads run the service's async work; 0 is one per core.
pub const WORKER_THREADS: &str = "LWCACHE_WORKER_THREADS";
/// How the threads share the work: `work-stealing` or `sharded`.
pub const RUNTIME: &str = "LWCACHE_RUNTIME";
/// How writes update the cache: `spec` or `invalidate`.
pub const WRITE_MODE: &str = "LWCACHE_WRITE_MODE";
/// The path of a TOML configuration file.
pub const CONFIG: &str = "LWCACHE_CONFIG";
// Fail-safe reads and stampede control.
/// How long an entry is kept past its TTL for fail-safe reads, in ms.
pub const FAIL_SAFE_GRACE_MS: &str = "LWCACHE_FAIL_SAFE_GRACE_MS";
/// How far TTLs are spread, in percent either way.
pub const TTL_JITTER_PERCENT: &str = "LWCACHE_TTL_JITTER_PERCENT";
/// How long an unknown entity is remembered, in ms (0: never).
pub const NEGATIVE_TTL_MS: &str = "LWCACHE_NEGATIVE_TTL_MS";
/// How long a miss waits for another process's fill, in ms.
pub const LEASE_WAIT_MS: &str = "LWCACHE_LEASE_WAIT_MS";
/// The near cache's byte budget; 0 leaves it off.
pub const NEAR_CACHE_BYTES: &str = "LWCACHE_NEAR_CACHE_BYTES";
/// The oldest feed confirmation a near hit may rely on, in ms.
pub const NEAR_MAX_LAG_MS: &str = "LWCACHE_NEAR_MAX_LAG_MS";
/// How often the near cache's feed confirms it is live, in ms.
pub const NEAR_HEARTBEAT_MS: &str = "LWCACHE_NEAR_HEARTBEAT_MS";

// The cache policy and the manager's deadlines.
/// The world snapshot's TTL, in ms; 0 for none.
pub const STATE_TTL_MS: &str = "LWCACHE_STATE_TTL_MS";
/// The flags' TTL, in ms; 0 for none.
pub const FLAGS_TTL_MS: &str = "LWCACHE_FLAGS_TTL_MS";
/// An entity's TTL, in ms; 0 for none.
pub const ENTITY_TTL_MS: &str = "LWCACHE_ENTITY_TTL_MS";
/// A recent timeline's TTL, in ms.
pub const TIMELINE_TTL_MS: &str = "LWCACHE_TIMELINE_TTL_MS";
/// How many events a recent timeline caches.
pub const TIMELINE_TOP_K: &str = "LWCACHE_TIMELINE_TOP_K";
/// The deadline of every cache call, in ms.
pub const CACHE_TIMEOUT_MS: &str = "LWCACHE_CACHE_TIMEOUT_MS";
/// The deadline of every source call, in ms.
pub const SOURCE_TIMEOUT_MS: &str = "LWCACHE_SOURCE_TIMEOUT_MS";
/// How many write-behind updates may wait.
pub const WRITE_BEHIND_CAPACITY: &str = "LWCACHE_WRITE_BEHIND_CAPACITY";
/// The most keys an activation prefills; 0 warms every entity.
pub const WARM_BUDGET_KEYS: &str = "LWCACHE_WARM_BUDGET_KEYS";
/// The decode memo's budget in bytes; 0 turns it off.
pub const DECODE_MEMO_BYTES: &str = "LWCACHE_DECODE_MEMO_BYTES";

// The circuit breaker around the cache store.
/// How many failed cache calls in a row open the breaker.
pub const BREAKER_FAILURES: &str = "LWCACHE_BREAKER_FAILURES";
/// How long an open breaker waits before its probe, in milliseconds.
pub const BREAKER_OPEN_MS: &str = "LWCACHE_BREAKER_OPEN_MS";

impl Layer {
    /// Reads the `LWCACHE_*` variables through `lookup` (the process
    /// environment in the binary, a map in tests). Empty values count as
    /// unset.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Layer, ConfigError> {
        let get = |var: &str| lookup(var).filter(|v| !v.trim().is_empty());
        let listen = match get(LISTEN) {
            Some(v) => Some(v.trim().parse().map_err(|e| ConfigError::Env {
                var: LISTEN,
                problem: format!("{v:?} is not a socket address ({e})"),
            })?),
            None => None,
        };
        let max_body_bytes = match get(MAX_BODY_BYTES) {
            Some(v) => Some(v.trim().parse().map_err(|e| ConfigError::Env {
                var: MAX_BODY_BYTES,
                problem: format!("{v:?} is not a number of bytes ({e})"),
            })?),
            None => None,
        };
        let worker_threads = match get(WORKER_THREADS) {
            Some(v) => Some(v.trim().parse().map_err(|e| ConfigError::Env {
                var: WORKER_THREADS,
                problem: format!("{v:?} is not a number of threads ({e})"),
            })?),
            None => None,
        };
        let runtime = match get(RUNTIME) {
            Some(v) => Some(v.parse().map_err(|problem| ConfigError::Env {
                var: RUNTIME,
                problem,
            })?),
            None => None,
        };
        let write_mode = match get(WRITE_MODE) {
            Some(v) => Some(v.parse().map_err(|problem| ConfigError::Env {
                var: WRITE_MODE,
                problem,
            })?),
            None => None,
        };
        let number = |var: &'static str| -> Result<Option<u64>, ConfigError> {
            match get(var) {
                Some(v) => v.trim().parse().map(Some).map_err(|e| ConfigError::Env {
                    var,
                    problem: format!("{v:?} is not a whole number ({e})"),
                }),
                None => Ok(None),
            }
        };
        let ttl_jitter_percent = match number(TTL_JITTER_PERCENT)? {
            Some(n) => Some(u32::try_from(n).map_err(|_| ConfigError::Env {
                var: TTL_JITTER_PERCENT,
                problem: format!("{n} is not a percentage"),
            })?),
            None => None,
        };
        let breaker_failures = match get(BREAKER_FAILURES) {
            Some(v) => Some(v.trim().parse().map_err(|e| ConfigError::Env {
                var: BREAKER_FAILURES,
                problem: format!("{v:?} is not a number of calls ({e})"),
            })?),
            None => None,
        };
        let breaker_open_ms = match get(BREAKER_OPEN_MS) {
            Some(v) => Some(v.trim().parse().map_err(|e| ConfigError::Env {
                var: BREAKER_OPEN_MS,
                problem: format!("{v:?} is not a number of milliseconds ({e})"),
            })?),
            None => None,
        };
        Ok(Layer {
            listen,
            write_mode,
            fail_safe_grace_ms: number(FAIL_SAFE_GRACE_MS)?,
            ttl_jitter_percent,
            negative_ttl_ms: number(NEGATIVE_TTL_MS)?,
            lease_wait_ms: number(LEASE_WAIT_MS)?,
            near_cache_bytes: number(NEAR_CACHE_BYTES)?,
            near_max_lag_ms: number(NEAR_MAX_LAG_MS)?,
            near_heartbeat_ms: number(NEAR_HEARTBEAT_MS)?,
            redis_url: get(REDIS_URL).map(RedisUrl::from),
            redis_ca_file: get(REDIS_CA_FILE).map(PathBuf::from),
            redis_client_cert: get(REDIS_CLIENT_CERT).map(PathBuf::from),
            redis_client_key: get(REDIS_CLIENT_KEY).map(PathBuf::from),
            neo4j_ca_file: get(NEO4J_CA_FILE).map(PathBuf::from),
            tls_cert: get(TLS_CERT).map(PathBuf::from),
            tls_key: get(TLS_KEY).map(PathBuf::from),
            redis_cluster: get(REDIS_CLUSTER).map(|v| ClusterUrls::parse_list(&v)),
            neo4j_uri: get(NEO4J_URI),
            neo4j_user: get(NEO4J_USER),
            neo4j_password: get(NEO4J_PASSWORD).map(Secret::new),
            auth_token: get(AUTH_TOKEN).map(Secret::new),
            admin_token: get(ADMIN_TOKEN).map(Secret::new),
            privacy: super::privacy::PrivacyLayer::from_env(get),
            max_body_bytes,
            worker_threads,
            runtime,
            breaker_failures,
            breaker_open_ms,
            state_ttl_ms: number(STATE_TTL_MS)?,
            flags_ttl_ms: number(FLAGS_TTL_MS)?,
            entity_ttl_ms: number(ENTITY_TTL_MS)?,
            timeline_ttl_ms: number(TIMELINE_TTL_MS)?,
            timeline_top_k: number(TIMELINE_TOP_K)?,
            cache_timeout_ms: number(CACHE_TIMEOUT_MS)?,
            source_timeout_ms: number(SOURCE_TIMEOUT_MS)?,
            write_behind_capacity: number(WRITE_BEHIND_CAPACITY)?,
            warm_budget_keys: number(WARM_BUDGET_KEYS)?,
            decode_memo_bytes: number(DECODE_MEMO_BYTES)?,
        })
    }
}
