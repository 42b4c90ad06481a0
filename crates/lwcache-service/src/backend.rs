//! Choosing the backends at run time: the in-memory cache or Redis, the
//! in-memory repository or Neo4j, behind the ports as trait objects.

use std::sync::Arc;
use std::time::Duration;

use lwcache_core::{
    CacheManager, CacheStore, ManagerConfig, MetricsSink, SourceError, WorldRepository,
};
use lwcache_demo::DemoSpec;
use lwcache_domain::{WorldId, WriteMode};
use lwcache_memory::{MemoryRepository, MemoryStore};
use lwcache_neo4j::{Neo4jConfig, Neo4jError, Neo4jRepository};
use lwcache_redis::{RedisConfig, RedisStore};

use crate::config::{
    self, BackendSettings, BreakerSettings, PolicySettings, ReadSettings, RedisTls, WriteModes,
};

/// A cache store chosen at run time.
pub type DynStore = Arc<dyn CacheStore>;
/// A repository chosen at run time.
pub type DynRepository = Arc<dyn WorldRepository>;
/// The cache manager over backends chosen at run time.
pub type Manager = CacheManager<DynStore, DynRepository>;

/// The id of the demo world the embedded default loads.
pub const DEMO_WORLD: &str = "demo";

/// Which cache store is in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheKind {
    /// The in-process store.
    Memory,
    /// Redis, at this URL (credentials hidden).
    Redis(String),
    /// A Redis Cluster, discovered from these seed URLs (credentials
    /// hidden, comma-separated).
    RedisCluster(String),
}

/// Which repository is in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// The in-process repository: nothing persists.
    Memory,
    /// Neo4j, at this URI.
    Neo4j(String),
}

impl std::fmt::Display for CacheKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheKind::Memory => f.write_str("in-memory cache"),
            CacheKind::Redis(url) => write!(f, "Redis at {url}"),
            CacheKind::RedisCluster(urls) => write!(f, "Redis Cluster at {urls}"),
        }
    }
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceKind::Memory => f.write_str("in-memory repository"),
            SourceKind::Neo4j(uri) => write!(f, "Neo4j at {uri}"),
        }
    }
}

/// The opened backends.
#[derive(Clone)]
pub struct Backends {
    /// The cache store.
    pub store: DynStore,
    /// The repository.
    pub repository: DynRepository,
    /// What the store is.
    pub cache: CacheKind,
    /// What the repository is.
    pub source: SourceKind,
    /// How writes update the cache.
    pub write_mode: WriteModes,
    /// Fail-safe reads and stampede control.
    pub reads: ReadSettings,
    /// The circuit breaker around the cache store.
    pub breaker: BreakerSettings,
    /// TTLs, top-k, deadlines and the write-behind queue.
    pub policy: PolicySettings,
    /// How Redis is reached, when it is the store: for the server checks
    /// of `redis_check`.
    pub redis: Option<RedisConfig>,
    /// What never reaches the cache.
    pub privacy: lwcache_domain::SensitivityPolicy,
    /// Where a near cache hears of every commit: the store's own feed.
    pub feed: Arc<dyn lwcache_core::InvalidationFeed>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("cache", &self.cache)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Why the backends could not be opened. The message names the backend;
/// what failed is the [`source`](std::error::Error::source), which
/// `{:#}` (how the binary prints errors) appends after a colon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// Redis's configuration or connection failed.
    #[error("Redis at {url}")]
    Redis {
        /// The URL (a Cluster's seed URLs, comma-separated), credentials
        /// hidden.
        url: String,
        /// What failed: the URL's configuration or the connection.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Neo4j could not be used.
    #[error("Neo4j at {uri}")]
    Neo4j {
        /// The URI.
        uri: String,
        /// What failed.
        source: Neo4jError,
    },
    /// The manager's configuration is invalid: its policy, or a setting
    /// checked against it.
    #[error("invalid cache configuration")]
    Config(#[source] lwcache_core::ConfigError),
    /// The near cache's configuration is invalid.
    #[error("invalid near cache")]
    Near(#[source] lwcache_core::near::NearConfigError),
    /// A file a setting names could not be read.
    #[error("{setting}: cannot read {path}")]
    File {
        /// The setting, in every source's spelling.
        setting: String,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Reads the file `path` that the setting `names` names.
pub(crate) fn read_setting_file(
    path: &std::path::Path,
    names: crate::config::Names,
) -> Result<Vec<u8>, BackendError> {
    std::fs::read(path).map_err(|source| BackendError::File {
        setting: names.spelled(),
        path: path.display().to_string(),
        source,
    })
}

/// Checks that the file a setting names holds PEM certificates: the driver
/// that reads it later skips what it cannot parse.
fn check_pem_certificates(
    path: &std::path::Path,
    names: config::Names,
) -> Result<(), BackendError> {
    let pem = read_setting_file(path, names)?;
    let text = String::from_utf8_lossy(&pem);
    if text.contains("-----BEGIN CERTIFICATE-----") {
        Ok(())
    } else {
        Err(BackendError::File {
            setting: names.spelled(),
            path: path.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "no PEM certificate in the file",
            ),
        })
    }
}

/// Adds the CA and client certificate the settings name to `config`.
fn with_tls_files(mut config: RedisConfig, tls: &RedisTls) -> Result<RedisConfig, BackendError> {
    if let Some(path) = &tls.ca_file {
        config = config.with_ca_cert_pem(read_setting_file(path, config::tls::REDIS_CA_FILE)?);
    }
    if let Some(files) = &tls.client {
        config = config.with_client_cert_pem(
            read_setting_file(&files.cert, config::tls::REDIS_CLIENT_CERT)?,
            read_setting_file(&files.key, config::tls::REDIS_CLIENT_KEY)?,
        );
    }
    Ok(config)
}

/// A URL with any password replaced by `***`, for messages and banners.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let hidden = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_owned()
            };
            format!("{}://{hidden}{}", &url[..scheme_end], &rest[at..])
        }
        None => url.to_owned(),
    }
}

/// Connects to Redis, or, when it cannot be reached (down, or silent past
/// the connect timeout), returns a store that connects in the background:
/// the service then starts and serves from the source until Redis answers.
/// A server that answers and refuses the client at once is an error. (A
/// refusal that redis-rs retries until the connect timeout, as a wrong
/// password, looks like a silent server: the service starts degraded and
/// `/readyz` names the refusal.)
async fn open_redis(config: &RedisConfig) -> Result<RedisStore, lwcache_redis::ConnectError> {
    match RedisStore::connect(config).await {
        Ok(store) => Ok(store),
        Err(lwcache_redis::ConnectError::Store(
            e @ (lwcache_core::CacheError::Unavailable(_) | lwcache_core::CacheError::Timeout(_)),
        )) => {
            tracing::warn!(error = %e, "Redis is not reachable at start; serving from the source and connecting in the background");
            RedisStore::connect_in_background(config)
        }
        Err(other) => Err(other),
    }
}

impl Backends {
    /// Opens what `settings` names: the in-memory store and repository
    /// unless a Redis URL (or Cluster) or a Neo4j URI is given. Redis down
    /// is no error: its store connects in the background.
    pub async fn open(settings: &BackendSettings) -> Result<Backends, BackendError> {
        let redis = match (&settings.redis_url, &settings.redis_cluster) {
            (Some(url), _) => Some((
                url.redacted(),
                RedisConfig::from_url(url.expose()),
                CacheKind::Redis(url.redacted()),
            )),
            (None, Some(urls)) => Some((
                urls.redacted(),
                RedisConfig::cluster(urls.expose()),
                CacheKind::RedisCluster(urls.redacted()),
            )),
            (None, None) => None,
        };
        let mut redis_config = None;
        let feed: Arc<dyn lwcache_core::InvalidationFeed>;
        let (store, cache): (DynStore, CacheKind) = match redis {
            None => {
                let store = Arc::new(MemoryStore::new());
                feed = store.clone();
                (store, CacheKind::Memory)
            }
            Some((shown, config, kind)) => {
                let err = |source: Box<dyn std::error::Error + Send + Sync>| BackendError::Redis {
                    url: shown.clone(),
                    source,
                };
                // The cache timeout is the deadline of every cache call: the
                // store's own bound is the same, so that a read pays one
                // timer, the store's (`CacheStore::read_deadline`).
                // Each HTTP read crosses a second hop to Redis: batching the
                // reads in flight together saves round trips and
                // redis-server's work (`docs/redis-adapter.md`). A sharded
                // service reads through a connection per shard.
                let config = config
                    .map_err(|e| err(e.into()))?
                    .with_response_timeout(settings.policy.cache_timeout)
                    .with_read_batching(true)
                    .with_read_connection_per_thread(settings.redis_read_connection_per_thread);
                let config = with_tls_files(config, &settings.redis_tls)?;
                let store = open_redis(&config).await.map_err(|e| err(e.into()))?;
                let heartbeat = settings.reads.near.map_or(
                    Duration::from_millis(config::DEFAULT_NEAR_HEARTBEAT_MS),
                    |n| n.heartbeat,
                );
                feed = Arc::new(
                    lwcache_redis::RedisFeed::new(&config)
                        .map_err(|e| err(e.into()))?
                        .with_heartbeat(heartbeat),
                );
                redis_config = Some(config);
                (Arc::new(store), kind)
            }
        };
        let (repository, source): (DynRepository, SourceKind) = match &settings.neo4j {
            None => (Arc::new(MemoryRepository::new()), SourceKind::Memory),
            Some(neo4j) => {
                let shown = redact_url(&neo4j.uri);
                let mut config = Neo4jConfig::new(neo4j.uri.clone());
                // What runs without the manager (bulk loads, the schema
                // step) is bounded by the same source timeout.
                let connect = config.connect_timeout();
                config = config.with_timeouts(connect, settings.policy.source_timeout);
                if let Some(ca) = &neo4j.ca_file {
                    check_pem_certificates(ca, config::tls::NEO4J_CA_FILE)?;
                    config = config.with_ca_file(ca.clone());
                }
                if neo4j.user.is_some() || neo4j.password.is_some() {
                    config = config.with_credentials(
                        neo4j.user.clone().unwrap_or_else(|| "neo4j".to_owned()),
                        neo4j
                            .password
                            .as_ref()
                            .map(|p| p.expose().to_owned())
                            .unwrap_or_default(),
                    );
                }
                let repo = Neo4jRepository::connect(config).await.map_err(|source| {
                    BackendError::Neo4j {
                        uri: shown.clone(),
                        source,
                    }
                })?;
                (Arc::new(repo), SourceKind::Neo4j(shown))
            }
        };
        Ok(Backends {
            store,
            repository,
            cache,
            source,
            write_mode: settings.write_mode,
            reads: settings.reads,
            breaker: settings.breaker,
            policy: settings.policy,
            redis: redis_config,
            privacy: settings.privacy.clone(),
            feed,
        })
    }

    /// Whether the repository keeps what is written past this process.
    pub fn persistent(&self) -> bool {
        self.source != SourceKind::Memory
    }

    /// A cache manager over these backends, reporting to `metrics`.
    pub fn manager(&self, metrics: Arc<dyn MetricsSink>) -> Result<Manager, BackendError> {
        let mut config = ManagerConfig {
            breaker_failures: self.breaker.failures,
            breaker_open: self.breaker.open,
            ..ManagerConfig::default()
        };
        self.policy.apply(&mut config);
        if self.write_mode == WriteModes::Invalidate {
            let policy = &mut config.policy;
            for key in [
                &mut policy.state,
                &mut policy.flags,
                &mut policy.entity,
                &mut policy.timeline,
            ] {
                key.mode = WriteMode::Invalidate;
            }
        }
        let expiry = &mut config.policy.expiry;
        expiry.grace = self.reads.fail_safe_grace;
        expiry.jitter_percent = self.reads.ttl_jitter_percent;
        expiry.negative_ttl = self.reads.negative_ttl;
        config.lease_wait = self.reads.lease_wait;
        config.policy.privacy = self.privacy.clone();
        let mut builder = CacheManager::builder(self.store.clone(), self.repository.clone())
            .config(config)
            .metrics(metrics);
        if let Some(near) = self.reads.near {
            let near = lwcache_core::NearConfig {
                max_bytes: near.bytes,
                max_lag: near.max_lag,
                ..lwcache_core::NearConfig::default()
            };
            builder = builder
                .near_cache(near, Arc::clone(&self.feed))
                .map_err(BackendError::Near)?;
        }
        // Everything the manager checks is refused here, at start-up, rather
        // than a setting left off with a log line.
        builder.try_build().map_err(BackendError::Config)
    }

    /// Loads the demo world `spec` as `world` when the repository does not
    /// have it. Returns the version loaded, or `None` when it was there.
    ///
    /// When the repository is in memory but the cache is not, the cache may
    /// hold this world's keys from an earlier process, whose repository is
    /// gone: `manager` drops them first, so that none is served as a hit. A
    /// drop that fails (Redis unreachable at start) stays owed: reads go to
    /// the source until the manager has made it.
    pub async fn ensure_demo(
        &self,
        manager: &Manager,
        world: &WorldId,
        spec: &DemoSpec,
    ) -> Result<Option<u64>, SourceError> {
        match self.repository.version(world).await {
            Ok(_) => return Ok(None),
            Err(SourceError::Rejected(lwcache_domain::WorldError::UnknownWorld(_))) => {}
            Err(other) => return Err(other),
        }
        if !self.persistent() && self.cache != CacheKind::Memory {
            // Failure is logged by the manager, which owes the drop.
            let _ = manager.drop_world(world).await;
        }
        let version = self.repository.load(world, &spec.seed()).await?;
        Ok(Some(version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_in_urls() {
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            redact_url("redis://user:pw@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(redact_url("rediss://:pw@host"), "rediss://:***@host");
        assert_eq!(redact_url("redis://token@host"), "redis://***@host");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
