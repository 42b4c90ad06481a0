//! The service's configuration: flags beat the environment, which beats the
//! configuration file, which beats the defaults.
//!
//! Each source is read into a [`Layer`] of optional values; [`resolve`] is
//! the one pure function that merges three layers into [`Settings`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default largest request body, in bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// The most runtime threads `worker_threads` may ask for.
pub const MAX_WORKER_THREADS: usize = 1024;

pub mod env;
mod policy;
pub mod print;
pub mod privacy;
mod reads;
mod runtime;
pub mod tls;
mod values;

pub use policy::{
    MAX_CACHE_TIMEOUT_MS, MAX_SOURCE_TIMEOUT_MS, MAX_TIMELINE_TOP_K, MAX_TTL_MS,
    MAX_WRITE_BEHIND_CAPACITY, PolicySettings,
};
use reads::read_settings;
pub use reads::{
    DEFAULT_NEAR_HEARTBEAT_MS, MAX_FAIL_SAFE_GRACE_MS, MAX_LEASE_WAIT_MS, MAX_NEAR_MAX_LAG_MS,
    MAX_NEGATIVE_TTL_MS, MIN_NEAR_CACHE_BYTES, NearSettings, ReadSettings,
};
pub use runtime::RuntimeThreads;
pub use tls::{ClientFiles, HttpsSettings, RedisTls};
pub use values::{ClusterUrls, RedisUrl, RuntimeModel, Secret, WriteModes};

/// How each source spells one setting, for the errors that name it.
#[derive(Debug, Clone, Copy)]
pub struct Names {
    flag: &'static str,
    var: &'static str,
    key: &'static str,
}

impl Names {
    const fn new(flag: &'static str, var: &'static str, key: &'static str) -> Self {
        Self { flag, var, key }
    }

    /// `--flag (VAR, key in the file)`.
    pub fn spelled(self) -> String {
        format!("{} ({}, {} in the file)", self.flag, self.var, self.key)
    }

    /// `value` breaks `rule` (what it must be), in every source's spelling.
    fn invalid(self, value: impl std::fmt::Display, rule: &str) -> ConfigError {
        ConfigError::Invalid(format!("{} is {value}; it must be {rule}", self.spelled()))
    }

    /// This setting needs `other`, which no source gives.
    fn missing(self, other: Names) -> ConfigError {
        ConfigError::Invalid(format!(
            "{} is set without {}: give both",
            other.spelled(),
            self.spelled()
        ))
    }
}

/// The largest `breaker_failures`: a run longer than this would leave the
/// breaker all but off.
pub const MAX_BREAKER_FAILURES: u32 = 10_000;
/// The longest `breaker_open_ms`: an hour.
pub const MAX_BREAKER_OPEN_MS: u64 = 3_600_000;

/// One source's settings; `None` where the source says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// The address to listen on.
    pub listen: Option<SocketAddr>,
    /// The Redis URL (`redis://`, `rediss://`).
    pub redis_url: Option<RedisUrl>,
    /// The Redis Cluster's seed node URLs; exclusive with `redis_url`.
    pub redis_cluster: Option<ClusterUrls>,
    /// The CA certificate(s) to trust for `rediss://`, a PEM file.
    pub redis_ca_file: Option<PathBuf>,
    /// The client certificate chain presented to Redis, a PEM file.
    pub redis_client_cert: Option<PathBuf>,
    /// The client certificate's private key, a PEM file.
    pub redis_client_key: Option<PathBuf>,
    /// The Neo4j URI (`bolt://`, `neo4j://`, with `+s` or `+ssc` for TLS).
    pub neo4j_uri: Option<String>,
    /// The Neo4j user.
    pub neo4j_user: Option<String>,
    /// The Neo4j password.
    pub neo4j_password: Option<Secret>,
    /// The CA certificate(s) to trust for `bolt+s://`/`neo4j+s://`, a PEM
    /// file.
    pub neo4j_ca_file: Option<PathBuf>,
    /// The bearer token every `/v1` route requires.
    pub auth_token: Option<Secret>,
    /// The bearer token the admin routes require instead, if set.
    pub admin_token: Option<Secret>,
    /// The largest request body, in bytes.
    pub max_body_bytes: Option<usize>,
    /// How many threads run the service's async work; 0 (the default) is
    /// one per core, 1 runs it all on one thread.
    pub worker_threads: Option<usize>,
    /// How the threads share the work: `work-stealing` (the default) or
    /// `sharded`.
    pub runtime: Option<RuntimeModel>,
    /// The certificate chain the listener serves HTTPS with, a PEM file.
    pub tls_cert: Option<PathBuf>,
    /// Its private key, a PEM file.
    pub tls_key: Option<PathBuf>,
    /// How writes update the cache.
    pub write_mode: Option<WriteModes>,
    /// What else never reaches the cache (`[privacy]` in the file).
    #[serde(default)]
    pub privacy: privacy::PrivacyLayer,
    // Fail-safe reads and stampede control.
    /// How long an entry is kept past its TTL for fail-safe reads, in ms.
    pub fail_safe_grace_ms: Option<u64>,
    /// How far TTLs are spread, in percent either way.
    pub ttl_jitter_percent: Option<u32>,
    /// How long an unknown entity is remembered, in ms; 0 turns it off.
    pub negative_ttl_ms: Option<u64>,
    /// How long a miss waits for another process's fill, in ms.
    pub lease_wait_ms: Option<u64>,
    /// The near cache's byte budget; 0 (the default) leaves it off.
    pub near_cache_bytes: Option<u64>,
    /// The oldest feed confirmation a near hit may rely on, in ms.
    pub near_max_lag_ms: Option<u64>,
    /// How often the near cache's feed confirms it is live, in ms.
    pub near_heartbeat_ms: Option<u64>,

    // The circuit breaker around the cache store.
    /// How many failed cache calls in a row open the breaker.
    pub breaker_failures: Option<u32>,
    /// How long an open breaker waits before its probe, in milliseconds.
    pub breaker_open_ms: Option<u64>,

    // The cache policy and the manager's deadlines.
    /// The world snapshot's TTL, in ms; 0 for none.
    pub state_ttl_ms: Option<u64>,
    /// The flags' TTL, in ms; 0 for none.
    pub flags_ttl_ms: Option<u64>,
    /// An entity's TTL, in ms; 0 for none.
    pub entity_ttl_ms: Option<u64>,
    /// A recent timeline's TTL, in ms.
    pub timeline_ttl_ms: Option<u64>,
    /// How many events a recent timeline caches.
    pub timeline_top_k: Option<u64>,
    /// The deadline of every cache call, in ms.
    pub cache_timeout_ms: Option<u64>,
    /// The deadline of every source call, in ms.
    pub source_timeout_ms: Option<u64>,
    /// How many write-behind updates may wait.
    pub write_behind_capacity: Option<u64>,
    /// The most keys an activation prefills; 0 warms every entity.
    pub warm_budget_keys: Option<u64>,
    /// The decode memo's budget in bytes; 0 turns it off.
    pub decode_memo_bytes: Option<u64>,
}

/// Why the configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An environment variable holds a value of the wrong shape.
    #[error("environment variable {var}: {problem}")]
    Env {
        /// The variable.
        var: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The configuration file could not be read or parsed.
    #[error("configuration file {path}: {problem}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// The merged settings contradict themselves.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// One source names two settings of which only one may be given.
    #[error("{first} and {second} are mutually exclusive: give one of them")]
    Exclusive {
        /// The first setting, as its source spells it.
        first: &'static str,
        /// The second setting, as its source spells it.
        second: &'static str,
    },
    /// The Redis Cluster's seed URLs are unusable.
    #[error("{setting} is not a usable list of Redis Cluster seed URLs")]
    RedisCluster {
        /// The setting, as its source spells it.
        setting: &'static str,
        /// What is wrong with the URLs (never echoing one).
        source: lwcache_redis::ConfigError,
    },
}

impl Layer {
    /// Parses a TOML configuration file's text; unknown keys are errors.
    pub fn from_toml(text: &str) -> Result<Layer, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Reads and parses a TOML configuration file.
    pub fn from_file(path: &Path) -> Result<Layer, ConfigError> {
        let err = |problem: String| ConfigError::File {
            path: path.display().to_string(),
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Layer::from_toml(&text).map_err(err)
    }
}

/// How to reach Neo4j.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neo4jSettings {
    /// The URI.
    pub uri: String,
    /// The user, if the server has authentication on.
    pub user: Option<String>,
    /// The password.
    pub password: Option<Secret>,
    /// The CA file to trust instead of the system's roots (`+s` schemes).
    pub ca_file: Option<PathBuf>,
}

/// The circuit breaker around the cache store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// How many failed cache calls in a row open it.
    pub failures: u32,
    /// How long it stays open before its probe.
    pub open: std::time::Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failures: lwcache_core::DEFAULT_BREAKER_FAILURES,
            open: lwcache_core::DEFAULT_BREAKER_OPEN,
        }
    }
}

/// Which backends to use; all `None` is the embedded default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendSettings {
    /// The Redis URL; `None` for the in-memory cache or a Cluster.
    pub redis_url: Option<RedisUrl>,
    /// The Redis Cluster's seed URLs; never set with `redis_url`.
    pub redis_cluster: Option<ClusterUrls>,
    /// The CA and client certificate files of TLS to Redis.
    pub redis_tls: RedisTls,
    /// Neo4j; `None` for the in-memory repository.
    pub neo4j: Option<Neo4jSettings>,
    /// How writes update the cache.
    pub write_mode: WriteModes,
    /// The circuit breaker around the cache store.
    pub breaker: BreakerSettings,
    /// Fail-safe reads and stampede control.
    pub reads: ReadSettings,
    /// TTLs, top-k, deadlines and the write-behind queue.
    pub policy: PolicySettings,
    /// What never reaches the cache.
    pub privacy: lwcache_domain::SensitivityPolicy,
    /// A Redis connection per thread for single-key reads (set when the
    /// service runs sharded).
    pub redis_read_connection_per_thread: bool,
}

/// The service's settings, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The backends.
    pub backends: BackendSettings,
    /// The bearer token every `/v1` route requires, if any.
    pub auth_token: Option<Secret>,
    /// The bearer token the admin routes require instead of `auth_token`.
    pub admin_token: Option<Secret>,
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
    /// The threads that run the service's async work.
    pub runtime: RuntimeThreads,
    /// HTTPS on the listener; `None` serves plain HTTP.
    pub https: Option<HttpsSettings>,
    /// The privacy settings the sources gave, merged as `resolve` merges
    /// them (the policy itself is `backends.privacy`): what
    /// `--print-config` writes as `[privacy]`.
    pub privacy_given: privacy::PrivacyLayer,
}

/// Merges the three sources: for each setting the flag wins over the
/// environment, which wins over the file; what none gives takes its default.
/// The Redis URL and the Redis Cluster count as one setting: the highest
/// source naming either decides, and naming both in one source is an error.
pub fn resolve(flags: &Layer, env: &Layer, file: &Layer) -> Result<Settings, ConfigError> {
    fn pick<T: Clone>(f: &Option<T>, e: &Option<T>, c: &Option<T>) -> Option<T> {
        f.as_ref().or(e.as_ref()).or(c.as_ref()).cloned()
    }
    let listen = match pick(&flags.listen, &env.listen, &file.listen) {
        Some(addr) => addr,
        None => DEFAULT_LISTEN
            .parse()
            .map_err(|_| ConfigError::Invalid("the default listen address".into()))?,
    };
    let neo4j_uri = pick(&flags.neo4j_uri, &env.neo4j_uri, &file.neo4j_uri);
    let neo4j_user = pick(&flags.neo4j_user, &env.neo4j_user, &file.neo4j_user);
    let neo4j_password = pick(
        &flags.neo4j_password,
        &env.neo4j_password,
        &file.neo4j_password,
    );
    let neo4j_ca_file = pick(
        &flags.neo4j_ca_file,
        &env.neo4j_ca_file,
        &file.neo4j_ca_file,
    );
    if let Some(uri) = &neo4j_uri {
        check_neo4j_scheme(uri)?;
    }
    tls::neo4j_ca(neo4j_uri.as_deref(), neo4j_ca_file.is_some())?;
    let neo4j = match neo4j_uri {
        Some(uri) => Some(Neo4jSettings {
            uri,
            user: neo4j_user,
            password: neo4j_password,
            ca_file: neo4j_ca_file,
        }),
        None if neo4j_user.is_some() || neo4j_password.is_some() => {
            return Err(ConfigError::Invalid(
                "a Neo4j user or password is set but no Neo4j URI".into(),
            ));
        }
        None => None,
    };
    let auth_token = pick(&flags.auth_token, &env.auth_token, &file.auth_token);
    if auth_token
        .as_ref()
        .is_some_and(|t| t.expose().trim().is_empty())
    {
        return Err(ConfigError::Invalid("the auth token is empty".into()));
    }
    let max_body_bytes = pick(
        &flags.max_body_bytes,
        &env.max_body_bytes,
        &file.max_body_bytes,
    )
    .unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if max_body_bytes == 0 {
        return Err(
            Names::new("--max-body-bytes", env::MAX_BODY_BYTES, "max_body_bytes")
                .invalid(0, "at least 1"),
        );
    }
    let runtime = runtime::resolve(flags, env, file)?;
    let admin_token = pick(&flags.admin_token, &env.admin_token, &file.admin_token);
    if admin_token
        .as_ref()
        .is_some_and(|t| t.expose().trim().is_empty())
    {
        return Err(ConfigError::Invalid("the admin token is empty".into()));
    }
    let (redis_url, redis_cluster) = redis_target(flags, env, file)?;
    let breaker = breaker(flags, env, file)?;
    let redis_tls = tls::redis_tls(flags, env, file, (&redis_url, &redis_cluster))?;
    Ok(Settings {
        listen,
        backends: BackendSettings {
            redis_url,
            redis_cluster,
            redis_tls,
            neo4j,
            write_mode: pick(&flags.write_mode, &env.write_mode, &file.write_mode)
                .unwrap_or_default(),
            reads: read_settings(flags, env, file)?,
            policy: policy::policy_settings(flags, env, file)?,
            privacy: privacy::resolve(&flags.privacy, &env.privacy, &file.privacy)?,
            breaker,
            redis_read_connection_per_thread: matches!(runtime, RuntimeThreads::Sharded(_)),
        },
        auth_token,
        admin_token,
        max_body_bytes,
        runtime,
        https: tls::https(flags, env, file)?,
        privacy_given: merged_privacy([&flags.privacy, &env.privacy, &file.privacy]),
    })
}

/// The privacy layers as one: names, prefixes and event kinds of every
/// source (sorted, once each), each kind's allow-list from the highest
/// source that gives one. Resolving it alone gives the same policy.
fn merged_privacy(layers: [&privacy::PrivacyLayer; 3]) -> privacy::PrivacyLayer {
    let union = |get: fn(&privacy::PrivacyLayer) -> &Vec<String>| {
        let all: std::collections::BTreeSet<String> = layers
            .iter()
            .flat_map(|l| get(l).iter().map(|s| s.trim().to_owned()))
            .collect();
        all.into_iter().collect()
    };
    let mut allow = std::collections::BTreeMap::new();
    for layer in layers.iter().rev() {
        for (kind, fields) in &layer.allow {
            allow.insert(kind.trim().to_ascii_lowercase(), fields.clone());
        }
    }
    privacy::PrivacyLayer {
        sensitive_names: union(|l| &l.sensitive_names),
        sensitive_prefixes: union(|l| &l.sensitive_prefixes),
        private_event_kinds: union(|l| &l.private_event_kinds),
        allow,
    }
}

/// The Neo4j URI's names.
const NEO4J_URI: Names = Names::new("--neo4j-uri", env::NEO4J_URI, "neo4j_uri");

/// Refuses a Neo4j URI whose scheme the driver does not speak, naming the
/// setting and the schemes it does (TLS included: `+s`, `+ssc`).
fn check_neo4j_scheme(uri: &str) -> Result<(), ConfigError> {
    let scheme = uri.split_once("://").map(|(s, _)| s);
    match scheme {
        Some(s) if lwcache_neo4j::config::SCHEMES.contains(&s) => Ok(()),
        _ => Err(ConfigError::Invalid(format!(
            "{} has the scheme {:?}; use one of {} (+s: TLS with a verified certificate, \
             +ssc: TLS accepting a self-signed one)",
            NEO4J_URI.spelled(),
            scheme.unwrap_or(""),
            lwcache_neo4j::config::SCHEMES
                .iter()
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The breaker's settings, each within its bounds.
fn breaker(flags: &Layer, env: &Layer, file: &Layer) -> Result<BreakerSettings, ConfigError> {
    let defaults = BreakerSettings::default();
    let failures = match [flags, env, file].iter().find_map(|l| l.breaker_failures) {
        None => defaults.failures,
        Some(n) if (1..=MAX_BREAKER_FAILURES).contains(&n) => n,
        Some(n) => {
            return Err(Names::new(
                "--breaker-failures",
                env::BREAKER_FAILURES,
                "breaker_failures",
            )
            .invalid(n, &format!("from 1 to {MAX_BREAKER_FAILURES}")));
        }
    };
    let open = match [flags, env, file].iter().find_map(|l| l.breaker_open_ms) {
        None => defaults.open,
        Some(ms) if (1..=MAX_BREAKER_OPEN_MS).contains(&ms) => std::time::Duration::from_millis(ms),
        Some(ms) => {
            return Err(
                Names::new("--breaker-open-ms", env::BREAKER_OPEN_MS, "breaker_open_ms")
                    .invalid(ms, &format!("from 1 to {MAX_BREAKER_OPEN_MS}")),
            );
        }
    };
    Ok(BreakerSettings { failures, open })
}

/// How each source spells the two ways to name Redis: flags, variables,
/// file keys.
const REDIS_NAMES: [(&str, &str); 3] = [
    ("--redis-url", "--redis-cluster"),
    (env::REDIS_URL, env::REDIS_CLUSTER),
    ("redis_url", "redis_cluster"),
];

/// Where the cache is, as one setting: the highest source that names Redis
/// decides, so a `--redis-cluster` flag overrides `LWCACHE_REDIS_URL`; one
/// source naming both is an error. Cluster URLs are checked here, by the
/// rules of the Redis adapter, so that a bad one is refused before
/// anything starts.
fn redis_target(
    flags: &Layer,
    env: &Layer,
    file: &Layer,
) -> Result<(Option<RedisUrl>, Option<ClusterUrls>), ConfigError> {
    for (layer, (url_name, cluster_name)) in [flags, env, file].into_iter().zip(REDIS_NAMES) {
        match (&layer.redis_url, &layer.redis_cluster) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Exclusive {
                    first: url_name,
                    second: cluster_name,
                });
            }
            (Some(url), None) => return Ok((Some(url.clone()), None)),
            (None, Some(urls)) => {
                lwcache_redis::RedisConfig::cluster(urls.expose()).map_err(|source| {
                    ConfigError::RedisCluster {
                        setting: cluster_name,
                        source,
                    }
                })?;
                return Ok((None, Some(urls.clone())));
            }
            (None, None) => {}
        }
    }
    Ok((None, None))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_files;
