//! The service's configuration: flags beat the environment, which beats the
//! configuration file, which beats the defaults.
//!
//! Each source is read into a [`Layer`] of optional values; [`resolve`] is
//! the one pure function that merges three layers into [`Settings`].

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default largest request body, in bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

pub mod privacy;
mod reads;

use reads::read_settings;
pub use reads::{MAX_FAIL_SAFE_GRACE_MS, MAX_LEASE_WAIT_MS, MAX_NEGATIVE_TTL_MS, ReadSettings};

/// The environment variables read, by setting.
pub mod env {
    /// The listen address.
    pub const LISTEN: &str = "LWCACHE_LISTEN";
    /// The Redis URL.
    pub const REDIS_URL: &str = "LWCACHE_REDIS_URL";
    /// The Redis Cluster's seed node URLs, comma-separated.
    pub const REDIS_CLUSTER: &str = "LWCACHE_REDIS_CLUSTER";
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

    // The circuit breaker around the cache store.
    /// How many failed cache calls in a row open the breaker.
    pub const BREAKER_FAILURES: &str = "LWCACHE_BREAKER_FAILURES";
    /// How long an open breaker waits before its probe, in milliseconds.
    pub const BREAKER_OPEN_MS: &str = "LWCACHE_BREAKER_OPEN_MS";
}

/// The largest `breaker_failures`: a run longer than this would leave the
/// breaker all but off.
pub const MAX_BREAKER_FAILURES: u32 = 10_000;
/// The longest `breaker_open_ms`: an hour.
pub const MAX_BREAKER_OPEN_MS: u64 = 3_600_000;

/// How writes update the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteModes {
    /// The spec's policy: write-through for the snapshot, flags and
    /// entities, write-behind for recent timelines.
    #[default]
    Spec,
    /// Every write deletes the keys it changes; the next read misses and
    /// fills them.
    Invalidate,
}

impl std::str::FromStr for WriteModes {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "spec" => Ok(WriteModes::Spec),
            "invalidate" => Ok(WriteModes::Invalidate),
            other => Err(format!(
                "{other:?} is not a write mode: use spec or invalidate"
            )),
        }
    }
}

/// A secret (password, token): kept out of `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// The URLs of some Redis Cluster nodes, from which the client discovers
/// the rest. `Debug` hides any password the URLs carry.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ClusterUrls(Vec<String>);

impl ClusterUrls {
    /// Wraps the seed URLs.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(urls: I) -> Self {
        Self(urls.into_iter().map(Into::into).collect())
    }

    /// Splits a comma-separated list; blank items are left out.
    pub fn parse_list(list: &str) -> Self {
        Self::new(
            list.split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned),
        )
    }

    /// The URLs, passwords included.
    pub fn expose(&self) -> &[String] {
        &self.0
    }

    /// The URLs with passwords replaced by `***`, comma-separated.
    pub fn redacted(&self) -> String {
        self.0
            .iter()
            .map(|u| crate::backend::redact_url(u))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl std::fmt::Debug for ClusterUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|u| crate::backend::redact_url(u)))
            .finish()
    }
}

/// One source's settings; `None` where the source says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// The address to listen on.
    pub listen: Option<SocketAddr>,
    /// The Redis URL (`redis://`, `rediss://`).
    pub redis_url: Option<String>,
    /// The Redis Cluster's seed node URLs; exclusive with `redis_url`.
    pub redis_cluster: Option<ClusterUrls>,
    /// The Neo4j URI (`bolt://`, `neo4j://`).
    pub neo4j_uri: Option<String>,
    /// The Neo4j user.
    pub neo4j_user: Option<String>,
    /// The Neo4j password.
    pub neo4j_password: Option<Secret>,
    /// The bearer token every `/v1` route requires.
    pub auth_token: Option<Secret>,
    /// The bearer token the admin routes require instead, if set.
    pub admin_token: Option<Secret>,
    /// The largest request body, in bytes.
    pub max_body_bytes: Option<usize>,
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

    // The circuit breaker around the cache store.
    /// How many failed cache calls in a row open the breaker.
    pub breaker_failures: Option<u32>,
    /// How long an open breaker waits before its probe, in milliseconds.
    pub breaker_open_ms: Option<u64>,
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
    /// Reads the `LWCACHE_*` variables through `lookup` (the process
    /// environment in the binary, a map in tests). Empty values count as
    /// unset.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Layer, ConfigError> {
        let get = |var: &str| lookup(var).filter(|v| !v.trim().is_empty());
        let listen = match get(env::LISTEN) {
            Some(v) => Some(v.trim().parse().map_err(|e| ConfigError::Env {
                var: env::LISTEN,
                problem: format!("{v:?} is not a socket address ({e})"),
            })?),
            None => None,
        };
        let max_body_bytes = match get(env::MAX_BODY_BYTES) {
            Some(v) => Some(v.trim().parse().map_err(|e| ConfigError::Env {
                var: env::MAX_BODY_BYTES,
                problem: format!("{v:?} is not a number of bytes ({e})"),
            })?),
            None => None,
        };
        let write_mode = match get(env::WRITE_MODE) {
            Some(v) => Some(v.parse().map_err(|problem| ConfigError::Env {
                var: env::WRITE_MODE,
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
        let ttl_jitter_percent = match number(env::TTL_JITTER_PERCENT)? {
            Some(n) => Some(u32::try_from(n).map_err(|_| ConfigError::Env {
                var: env::TTL_JITTER_PERCENT,
                problem: format!("{n} is not a percentage"),
            })?),
            None => None,
        };
        let breaker_failures = match get(env::BREAKER_FAILURES) {
            Some(v) => Some(v.trim().parse().map_err(|e| ConfigError::Env {
                var: env::BREAKER_FAILURES,
                problem: format!("{v:?} is not a number of calls ({e})"),
            })?),
            None => None,
        };
        let breaker_open_ms = match get(env::BREAKER_OPEN_MS) {
            Some(v) => Some(v.trim().parse().map_err(|e| ConfigError::Env {
                var: env::BREAKER_OPEN_MS,
                problem: format!("{v:?} is not a number of milliseconds ({e})"),
            })?),
            None => None,
        };
        Ok(Layer {
            listen,
            write_mode,
            fail_safe_grace_ms: number(env::FAIL_SAFE_GRACE_MS)?,
            ttl_jitter_percent,
            negative_ttl_ms: number(env::NEGATIVE_TTL_MS)?,
            lease_wait_ms: number(env::LEASE_WAIT_MS)?,
            redis_url: get(env::REDIS_URL),
            redis_cluster: get(env::REDIS_CLUSTER).map(|v| ClusterUrls::parse_list(&v)),
            neo4j_uri: get(env::NEO4J_URI),
            neo4j_user: get(env::NEO4J_USER),
            neo4j_password: get(env::NEO4J_PASSWORD).map(Secret),
            auth_token: get(env::AUTH_TOKEN).map(Secret),
            admin_token: get(env::ADMIN_TOKEN).map(Secret),
            privacy: privacy::PrivacyLayer::from_env(get),
            max_body_bytes,
            breaker_failures,
            breaker_open_ms,
        })
    }

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
    pub redis_url: Option<String>,
    /// The Redis Cluster's seed URLs; never set with `redis_url`.
    pub redis_cluster: Option<ClusterUrls>,
    /// Neo4j; `None` for the in-memory repository.
    pub neo4j: Option<Neo4jSettings>,
    /// How writes update the cache.
    pub write_mode: WriteModes,
    /// The circuit breaker around the cache store.
    pub breaker: BreakerSettings,
    /// Fail-safe reads and stampede control.
    pub reads: ReadSettings,
    /// What never reaches the cache.
    pub privacy: lwcache_domain::SensitivityPolicy,
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
    let neo4j = match neo4j_uri {
        Some(uri) => Some(Neo4jSettings {
            uri,
            user: neo4j_user,
            password: neo4j_password,
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
        return Err(ConfigError::Invalid(
            "max_body_bytes must be at least 1".into(),
        ));
    }
    let admin_token = pick(&flags.admin_token, &env.admin_token, &file.admin_token);
    if admin_token
        .as_ref()
        .is_some_and(|t| t.expose().trim().is_empty())
    {
        return Err(ConfigError::Invalid("the admin token is empty".into()));
    }
    let (redis_url, redis_cluster) = redis_target(flags, env, file)?;
    let breaker = breaker(flags, env, file)?;
    Ok(Settings {
        listen,
        backends: BackendSettings {
            redis_url,
            redis_cluster,
            neo4j,
            write_mode: pick(&flags.write_mode, &env.write_mode, &file.write_mode)
                .unwrap_or_default(),
            reads: read_settings(flags, env, file)?,
            breaker,
            privacy: privacy::resolve(&flags.privacy, &env.privacy, &file.privacy)?,
        },
        auth_token,
        admin_token,
        max_body_bytes,
    })
}

/// The breaker's settings, each within its bounds.
fn breaker(flags: &Layer, env: &Layer, file: &Layer) -> Result<BreakerSettings, ConfigError> {
    let defaults = BreakerSettings::default();
    let failures = match [flags, env, file].iter().find_map(|l| l.breaker_failures) {
        None => defaults.failures,
        Some(n) if (1..=MAX_BREAKER_FAILURES).contains(&n) => n,
        Some(n) => {
            return Err(ConfigError::Invalid(format!(
                "breaker_failures must be from 1 to {MAX_BREAKER_FAILURES}, not {n}"
            )));
        }
    };
    let open = match [flags, env, file].iter().find_map(|l| l.breaker_open_ms) {
        None => defaults.open,
        Some(ms) if (1..=MAX_BREAKER_OPEN_MS).contains(&ms) => std::time::Duration::from_millis(ms),
        Some(ms) => {
            return Err(ConfigError::Invalid(format!(
                "breaker_open_ms must be from 1 to {MAX_BREAKER_OPEN_MS}, not {ms}"
            )));
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
) -> Result<(Option<String>, Option<ClusterUrls>), ConfigError> {
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
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    fn layer(listen: &str, redis: &str, token: &str) -> Layer {
        Layer {
            listen: Some(listen.parse().unwrap()),
            redis_url: Some(redis.to_owned()),
            auth_token: Some(Secret::new(token)),
            ..Layer::default()
        }
    }

    #[test]
    fn flags_beat_env_which_beats_the_file() {
        let flags = layer("127.0.0.1:1", "redis://flag", "flag-token");
        let env = layer("127.0.0.1:2", "redis://env", "env-token");
        let file = layer("127.0.0.1:3", "redis://file", "file-token");
        let s = resolve(&flags, &env, &file).unwrap();
        assert_eq!(s.listen.port(), 1);
        assert_eq!(s.backends.redis_url.as_deref(), Some("redis://flag"));
        assert_eq!(s.auth_token.unwrap().expose(), "flag-token");

        let s = resolve(&Layer::default(), &env, &file).unwrap();
        assert_eq!(s.listen.port(), 2);
        assert_eq!(s.backends.redis_url.as_deref(), Some("redis://env"));
        assert_eq!(s.auth_token.unwrap().expose(), "env-token");

        let s = resolve(&Layer::default(), &Layer::default(), &file).unwrap();
        assert_eq!(s.listen.port(), 3);
        assert_eq!(s.backends.redis_url.as_deref(), Some("redis://file"));
        assert_eq!(s.auth_token.unwrap().expose(), "file-token");
    }

    #[test]
    fn precedence_is_per_setting() {
        let flags = Layer {
            max_body_bytes: Some(10),
            ..Layer::default()
        };
        let env = Layer {
            redis_url: Some("redis://env".into()),
            ..Layer::default()
        };
        let file = Layer::from_toml(
            "listen = \"127.0.0.1:9\"\nredis_url = \"redis://file\"\nmax_body_bytes = 99\n\
             write_mode = \"invalidate\"\n\
             neo4j_uri = \"bolt://file:7687\"\nneo4j_user = \"neo4j\"\nneo4j_password = \"pw\"\n",
        )
        .unwrap();
        let s = resolve(&flags, &env, &file).unwrap();
        assert_eq!(s.max_body_bytes, 10);
        assert_eq!(s.backends.redis_url.as_deref(), Some("redis://env"));
        assert_eq!(s.listen.port(), 9);
        assert_eq!(s.backends.write_mode, WriteModes::Invalidate);
        let neo4j = s.backends.neo4j.unwrap();
        assert_eq!(neo4j.uri, "bolt://file:7687");
        assert_eq!(neo4j.user.as_deref(), Some("neo4j"));
        assert_eq!(neo4j.password.unwrap().expose(), "pw");
    }

    #[test]
    fn nothing_given_is_the_embedded_default() {
        let s = resolve(&Layer::default(), &Layer::default(), &Layer::default()).unwrap();
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.backends, BackendSettings::default());
        assert_eq!(s.auth_token, None);
        assert_eq!(s.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    }

    #[test]
    fn env_is_read_through_the_lookup() {
        let vars: HashMap<&str, &str> = [
            (env::LISTEN, "127.0.0.1:7000"),
            (env::REDIS_URL, "redis://127.0.0.1:6379"),
            (env::AUTH_TOKEN, "s3cret"),
            (env::MAX_BODY_BYTES, "2048"),
            (env::NEO4J_URI, ""),
            (env::WRITE_MODE, "invalidate"),
        ]
        .into_iter()
        .collect();
        let layer = Layer::from_env(|k| vars.get(k).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(layer.listen.unwrap().port(), 7000);
        assert_eq!(layer.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
        assert_eq!(layer.auth_token.as_ref().unwrap().expose(), "s3cret");
        assert_eq!(layer.max_body_bytes, Some(2048));
        assert_eq!(layer.neo4j_uri, None, "an empty variable counts as unset");
        assert_eq!(layer.write_mode, Some(WriteModes::Invalidate));
    }

    #[test]
    fn bad_values_name_their_source() {
        let err =
            Layer::from_env(|k| (k == env::LISTEN).then(|| "nowhere".to_owned())).unwrap_err();
        assert!(err.to_string().contains(env::LISTEN), "{err}");
        let err = Layer::from_toml("listen = \"127.0.0.1:1\"\nredis = \"x\"\n").unwrap_err();
        assert!(err.contains("redis"), "{err}");
        let err = resolve(
            &Layer {
                neo4j_user: Some("neo4j".into()),
                ..Layer::default()
            },
            &Layer::default(),
            &Layer::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no Neo4j URI"), "{err}");
    }

    #[test]
    fn read_settings_come_from_each_source_and_are_checked_by_name() {
        let d = resolve(&Layer::default(), &Layer::default(), &Layer::default()).unwrap();
        assert_eq!(d.backends.reads, ReadSettings::default());
        assert_eq!(d.backends.reads.fail_safe_grace, Duration::from_secs(600));
        let vars: HashMap<&str, &str> = [
            (env::FAIL_SAFE_GRACE_MS, "1500"),
            (env::TTL_JITTER_PERCENT, "20"),
            (env::NEGATIVE_TTL_MS, "0"),
        ]
        .into();
        let env = Layer::from_env(|k| vars.get(k).map(|v| (*v).to_owned())).unwrap();
        let file = Layer::from_toml("lease_wait_ms = 700\nttl_jitter_percent = 5\n").unwrap();
        let flags = Layer {
            fail_safe_grace_ms: Some(2500),
            ..Layer::default()
        };
        let r = resolve(&flags, &env, &file).unwrap().backends.reads;
        assert_eq!(r.fail_safe_grace, Duration::from_millis(2500), "the flag");
        assert_eq!(r.ttl_jitter_percent, 20, "the environment over the file");
        assert_eq!(r.negative_ttl, None, "0 turns negative caching off");
        assert_eq!(r.lease_wait, Duration::from_millis(700), "the file");

        let err =
            Layer::from_env(|k| (k == env::LEASE_WAIT_MS).then(|| "soon".to_owned())).unwrap_err();
        assert!(err.to_string().contains(env::LEASE_WAIT_MS), "{err}");
        let too_much = Layer {
            ttl_jitter_percent: Some(80),
            ..Layer::default()
        };
        let err = resolve(&too_much, &Layer::default(), &Layer::default()).unwrap_err();
        for name in [
            "--ttl-jitter-percent",
            env::TTL_JITTER_PERCENT,
            "ttl_jitter_percent",
        ] {
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let s = resolve(
            &layer("127.0.0.1:1", "redis://x", "top-secret-token"),
            &Layer::default(),
            &Layer::default(),
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("top-secret-token"));
    }

    #[test]
    fn the_breaker_comes_from_flags_env_or_file_within_bounds() {
        let s = resolve(&Layer::default(), &Layer::default(), &Layer::default()).unwrap();
        assert_eq!(s.backends.breaker, BreakerSettings::default());
        assert_eq!(
            s.backends.breaker.failures,
            lwcache_core::DEFAULT_BREAKER_FAILURES
        );

        let vars: HashMap<&str, &str> = [
            (env::BREAKER_FAILURES, " 7 "),
            (env::BREAKER_OPEN_MS, "250"),
        ]
        .into_iter()
        .collect();
        let env = Layer::from_env(|k| vars.get(k).map(|v| (*v).to_owned())).unwrap();
        let file = Layer::from_toml("breaker_failures = 9\nbreaker_open_ms = 5000\n").unwrap();
        let flags = Layer {
            breaker_failures: Some(2),
            ..Layer::default()
        };
        let s = resolve(&flags, &env, &file).unwrap();
        assert_eq!(s.backends.breaker.failures, 2);
        assert_eq!(
            s.backends.breaker.open,
            std::time::Duration::from_millis(250)
        );
        let s = resolve(&Layer::default(), &Layer::default(), &file).unwrap();
        assert_eq!(s.backends.breaker.failures, 9);
        assert_eq!(s.backends.breaker.open, std::time::Duration::from_secs(5));

        for bad in [
            Layer {
                breaker_failures: Some(0),
                ..Layer::default()
            },
            Layer {
                breaker_open_ms: Some(0),
                ..Layer::default()
            },
            Layer {
                breaker_open_ms: Some(MAX_BREAKER_OPEN_MS + 1),
                ..Layer::default()
            },
        ] {
            let err = resolve(&bad, &Layer::default(), &Layer::default()).unwrap_err();
            assert!(err.to_string().contains("breaker_"), "{err}");
        }
        let err =
            Layer::from_env(|k| (k == env::BREAKER_OPEN_MS).then(|| "1s".to_owned())).unwrap_err();
        assert!(err.to_string().contains(env::BREAKER_OPEN_MS), "{err}");
    }

    fn cluster(urls: &[&str]) -> Layer {
        Layer {
            redis_cluster: Some(ClusterUrls::new(urls.iter().copied())),
            ..Layer::default()
        }
    }

    #[test]
    fn the_cluster_seeds_come_from_flags_env_or_file() {
        let flags = cluster(&["redis://flag-a:7000", "redis://flag-b:7001"]);
        let vars: HashMap<&str, &str> = [(
            env::REDIS_CLUSTER,
            " redis://env-a:7000 ,, redis://env-b:7001,",
        )]
        .into_iter()
        .collect();
        let env = Layer::from_env(|k| vars.get(k).map(|v| (*v).to_owned())).unwrap();
        let file = Layer::from_toml(
            "redis_cluster = [\"redis://file-a:7000\", \"redis://file-b:7001\"]\n",
        )
        .unwrap();
        let seeds = |s: Settings| s.backends.redis_cluster.unwrap().expose().to_vec();

        let s = resolve(&flags, &env, &file).unwrap();
        assert_eq!(s.backends.redis_url, None);
        assert_eq!(seeds(s), ["redis://flag-a:7000", "redis://flag-b:7001"]);
        let s = resolve(&Layer::default(), &env, &file).unwrap();
        assert_eq!(
            seeds(s),
            ["redis://env-a:7000", "redis://env-b:7001"],
            "the variable is split on commas, blanks left out"
        );
        let s = resolve(&Layer::default(), &Layer::default(), &file).unwrap();
        assert_eq!(seeds(s), ["redis://file-a:7000", "redis://file-b:7001"]);
    }

    #[test]
    fn the_highest_source_naming_redis_decides_between_url_and_cluster() {
        let url = Layer {
            redis_url: Some("redis://env:6379".into()),
            ..Layer::default()
        };
        let s = resolve(&cluster(&["redis://flag:7000"]), &url, &Layer::default()).unwrap();
        assert_eq!(s.backends.redis_url, None);
        assert!(s.backends.redis_cluster.is_some());

        let s = resolve(&Layer::default(), &url, &cluster(&["redis://file:7000"])).unwrap();
        assert_eq!(s.backends.redis_url.as_deref(), Some("redis://env:6379"));
        assert_eq!(s.backends.redis_cluster, None);
    }

    #[test]
    fn url_and_cluster_in_one_source_are_refused_naming_both() {
        let both = Layer {
            redis_url: Some("redis://one:6379".into()),
            ..cluster(&["redis://a:7000"])
        };
        for (flags, env, file, first, second) in [
            (
                &both,
                &Layer::default(),
                &Layer::default(),
                "--redis-url",
                "--redis-cluster",
            ),
            (
                &Layer::default(),
                &both,
                &Layer::default(),
                env::REDIS_URL,
                env::REDIS_CLUSTER,
            ),
            (
                &Layer::default(),
                &Layer::default(),
                &both,
                "redis_url",
                "redis_cluster",
            ),
        ] {
            let err = resolve(flags, env, file).unwrap_err();
            assert_eq!(err, ConfigError::Exclusive { first, second });
            let text = err.to_string();
            assert!(text.contains(first) && text.contains(second), "{text}");
        }
    }

    #[test]
    fn bad_cluster_urls_are_refused_by_the_redis_rules() {
        let cases: [(&[&str], lwcache_redis::ConfigError); 4] = [
            (
                &["http://a:7000"],
                lwcache_redis::ConfigError::UnsupportedScheme("http".into()),
            ),
            (
                &["redis://a:7000", "rediss://b:7001"],
                lwcache_redis::ConfigError::MixedTls,
            ),
            (
                &["redis://a:7000/2"],
                lwcache_redis::ConfigError::ClusterDatabase(2),
            ),
            (&[], lwcache_redis::ConfigError::NoClusterNodes),
        ];
        for (urls, expected) in cases {
            let err = resolve(&cluster(urls), &Layer::default(), &Layer::default()).unwrap_err();
            assert_eq!(
                err,
                ConfigError::RedisCluster {
                    setting: "--redis-cluster",
                    source: expected
                },
                "{urls:?}"
            );
        }
        // The adapter's rules, credentials and TLS included, are the ones
        // a single URL follows.
        let s = resolve(
            &Layer::default(),
            &Layer::default(),
            &cluster(&["rediss://user:pw@a:7000", "rediss://b:7001"]),
        )
        .unwrap();
        assert_eq!(s.backends.redis_cluster.unwrap().expose().len(), 2);
        let err = Layer::from_toml("redis_cluster = \"redis://a:7000\"\n").unwrap_err();
        assert!(
            err.contains("redis_cluster") || err.contains("sequence"),
            "{err}"
        );
    }

    #[test]
    fn cluster_passwords_stay_out_of_debug_output() {
        let s = resolve(
            &cluster(&["redis://user:hunter2-cluster@a:7000", "redis://b:7001"]),
            &Layer::default(),
            &Layer::default(),
        )
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2-cluster"), "{shown}");
        assert!(shown.contains("redis://user:***@a:7000"), "{shown}");
        assert_eq!(
            s.backends.redis_cluster.unwrap().expose()[0],
            "redis://user:hunter2-cluster@a:7000"
        );
    }
}
