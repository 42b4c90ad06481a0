//! Where the Redis store is and how to talk to it.
//!
//! A [`RedisConfig`] is built from a URL (`redis://` or `rediss://` for TLS),
//! or from the URLs of some Cluster nodes, then adjusted with the `with_*`
//! methods. Nothing here touches the network; [`RedisConfig::validate`] runs
//! again when a store connects, so a configuration assembled by hand is
//! checked too. Errors name the problem and never echo a URL, which may hold
//! a password.

use std::fmt;
use std::time::Duration;

use redis::{ConnectionAddr, IntoConnectionInfo};

/// How long a connection may take to be established, by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one call may take, by default: the cache manager's default
/// call deadline ([`lwcache_core::DEFAULT_CACHE_TIMEOUT`], 250 ms). The
/// store bounds every call by it with one timer, which also covers a wait on
/// a reconnect; a manager whose cache timeout is no shorter then arms no
/// timer of its own around reads ([`CacheStore::read_deadline`]).
///
/// [`CacheStore::read_deadline`]: lwcache_core::ports::CacheStore::read_deadline
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = lwcache_core::DEFAULT_CACHE_TIMEOUT;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL is empty.
    #[error("the Redis URL is empty")]
    EmptyUrl,
    /// The URL cannot be parsed.
    #[error("the Redis URL is malformed: {0}")]
    MalformedUrl(String),
    /// The URL's scheme is neither `redis` nor `rediss`.
    #[error("unsupported URL scheme {0:?}: use redis:// or rediss:// (TLS)")]
    UnsupportedScheme(String),
    /// The URL names no host.
    #[error("the Redis URL names no host")]
    MissingHost,
    /// The URL's path is not a database index.
    #[error("{0:?} is not a database index: the path must be /<non-negative integer>")]
    InvalidDatabase(String),
    /// The URL carries query parameters or a fragment, which this adapter
    /// does not read: refusing them beats ignoring a setting silently.
    #[error("the Redis URL carries query parameters or a fragment, which are not supported")]
    UnsupportedOptions,
    /// No Cluster node was given.
    #[error("a Redis Cluster configuration needs at least one node URL")]
    NoClusterNodes,
    /// Some Cluster nodes use TLS and others do not.
    #[error("the Cluster node URLs mix redis:// and rediss://")]
    MixedTls,
    /// Cluster node URLs carry different credentials.
    #[error("the Cluster node URLs carry different credentials")]
    ConflictingCredentials,
    /// A Cluster has database 0 only.
    #[error("a Redis Cluster has database 0 only, not {0}")]
    ClusterDatabase(i64),
    /// A timeout of zero would fail every call.
    #[error("the {0} timeout must be greater than zero")]
    ZeroTimeout(&'static str),
    /// A CA certificate was given for a connection without TLS.
    #[error("a CA certificate was given but the URL is redis://, not rediss://")]
    CaWithoutTls,
    /// A client certificate was given for a connection without TLS.
    #[error("a client certificate was given but the URL is redis://, not rediss://")]
    ClientCertWithoutTls,
}

/// One Redis server's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Node {
    /// The node's URL, without credentials: credentials are applied apart,
    /// so they never pass through a formatted string.
    fn url(&self, tls: bool) -> String {
        let scheme = if tls { "rediss" } else { "redis" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Whether the store is one server or a Cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server (or a proxy in front of several), through a multiplexed
    /// connection that reconnects by itself.
    Standalone(Node),
    /// A Redis Cluster, discovered from these seed nodes.
    Cluster(Vec<Node>),
}

/// How to reach the Redis store.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// One server or a Cluster.
    pub topology: Topology,
    /// Serve over TLS (`rediss://`).
    pub tls: bool,
    /// The PEM certificate(s) of the CA to trust instead of the system's
    /// roots, for TLS only.
    pub ca_cert_pem: Option<Vec<u8>>,
    /// The client's PEM certificate chain and private key, for servers that
    /// authenticate clients by certificate (mutual TLS); TLS only.
    pub client_cert_pem: Option<ClientCert>,
    /// The ACL user, if not `default`.
    pub username: Option<String>,
    /// The password.
    pub password: Option<String>,
    /// The database index (standalone only).
    pub database: i64,
    /// How long establishing a connection may take.
    pub connect_timeout: Duration,
    /// How long one call may take, from its start (a wait on a reconnect
    /// included) to the last byte of the answer. Under the cache manager,
    /// keep it at or below the manager's `cache_timeout`: reads then pay one
    /// timer, this one; above it, the manager bounds each call too.
    pub response_timeout: Duration,
    /// Batch single-key reads made while others are in flight into shared
    /// `MGET`s (standalone only; off by default). It saves round trips and
    /// redis-server's CPU where each read crosses a second hop (a service
    /// answering over HTTP, which turns it on), and costs a client already
    /// pipelining through redis-rs at moderate concurrency:
    /// `docs/redis-adapter.md`.
    pub batch_reads: bool,
    /// With [`batch_reads`](Self::batch_reads), give each thread that
    /// reads its own connection for its single-key reads, made on that
    /// thread's runtime the first time it reads (off by default). For a
    /// process that runs one single-threaded runtime per thread (`lwcache
    /// serve --runtime sharded`): a read then never wakes another thread.
    /// Until a thread's connection is made its reads use the shared one.
    pub read_connection_per_thread: bool,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Credentials and certificates are never printed.
        f.debug_struct("RedisConfig")
            .field("topology", &self.topology)
            .field("tls", &self.tls)
            .field("ca_cert_pem", &self.ca_cert_pem.as_ref().map(|_| "<pem>"))
            .field("client_cert_pem", &self.client_cert_pem)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("batch_reads", &self.batch_reads)
            .field(
                "read_connection_per_thread",
                &self.read_connection_per_thread,
            )
            .finish()
    }
}

/// A client certificate chain and its private key, both PEM. `Debug`
/// prints neither.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate chain, the client's own certificate first.
    pub cert_pem: Vec<u8>,
    /// The private key of the first certificate.
    pub key_pem: Vec<u8>,
}

impl fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientCert(<pem>)")
    }
}

/// What one URL says.
struct ParsedUrl {
    node: Node,
    tls: bool,
    username: Option<String>,
    password: Option<String>,
    database: i64,
}

fn parse_url(url: &str) -> Result<ParsedUrl, ConfigError> {
    let url = url.trim();
    if url.is_empty() {
        return Err(ConfigError::EmptyUrl);
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(ConfigError::MalformedUrl(
            "no scheme: expected redis://host:port".into(),
        ));
    };
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "redis" => false,
        "rediss" => true,
        other => return Err(ConfigError::UnsupportedScheme(other.to_owned())),
    };
    if rest.contains(['?', '#']) {
        return Err(ConfigError::UnsupportedOptions);
    }
    let parsed = redis::parse_redis_url(url)
        .ok_or_else(|| ConfigError::MalformedUrl("not a valid URL".into()))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::MissingHost);
    }
    let database = match parsed.path().trim_start_matches('/') {
        "" => 0,
        db => match db.parse::<i64>() {
            Ok(n) if n >= 0 => n,
            _ => return Err(ConfigError::InvalidDatabase(db.to_owned())),
        },
    };
    // redis-rs decodes the percent-encoded credentials, and defaults the
    // port to 6379.
    let info = url
        .into_connection_info()
        .map_err(|e| ConfigError::MalformedUrl(e.to_string()))?;
    let (host, port) = match info.addr() {
        ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
        ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port),
        _ => return Err(ConfigError::MissingHost),
    };
    let settings = info.redis_settings();
    Ok(ParsedUrl {
        node: Node { host, port },
        tls,
        username: settings.username().map(str::to_owned),
        password: settings.password().map(str::to_owned),
        database,
    })
}

impl RedisConfig {
    /// One server at `url`: `redis://[user[:password]@]host[:port][/db]`,
    /// or `rediss://...` for TLS. Timeouts take their defaults.
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        let p = parse_url(url)?;
        Ok(Self {
            topology: Topology::Standalone(p.node),
            tls: p.tls,
            ca_cert_pem: None,
            client_cert_pem: None,
            username: p.username,
            password: p.password,
            database: p.database,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            batch_reads: false,
            read_connection_per_thread: false,
        })
    }

    /// A Cluster, discovered from some of its nodes' URLs. Every URL must
    /// use the same scheme and credentials (or none after the first), and
    /// name no database but 0.
    pub fn cluster<I>(urls: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut nodes = Vec::new();
        let mut first: Option<ParsedUrl> = None;
        for url in urls {
            let p = parse_url(url.as_ref())?;
            if p.database != 0 {
                return Err(ConfigError::ClusterDatabase(p.database));
            }
            nodes.push(p.node.clone());
            match &first {
                None => first = Some(p),
                Some(f) => {
                    if f.tls != p.tls {
                        return Err(ConfigError::MixedTls);
                    }
                    let bare = p.username.is_none() && p.password.is_none();
                    if !bare && (f.username != p.username || f.password != p.password) {
                        return Err(ConfigError::ConflictingCredentials);
                    }
                }
            }
        }
        let Some(first) = first else {
            return Err(ConfigError::NoClusterNodes);
        };
        Ok(Self {
            topology: Topology::Cluster(nodes),
            tls: first.tls,
            ca_cert_pem: None,
            client_cert_pem: None,
            username: first.username,
            password: first.password,
            database: 0,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            batch_reads: false,
            read_connection_per_thread: false,
        })
    }

    /// Authenticates as `username` with `password`, overriding the URL's.
    pub fn with_credentials(mut self, username: Option<String>, password: String) -> Self {
        self.username = username;
        self.password = Some(password);
        self
    }

    /// Selects database `database` (standalone only).
    pub fn with_database(mut self, database: i64) -> Self {
        self.database = database;
        self
    }

    /// Bounds the time establishing a connection may take.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Bounds the time one call may take.
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Batches single-key reads made while others are in flight (see
    /// [`batch_reads`](Self::batch_reads)); ignored on a Cluster.
    pub fn with_read_batching(mut self, on: bool) -> Self {
        self.batch_reads = on;
        self
    }

    /// Gives each reading thread a connection of its own for its batched
    /// single-key reads (see
    /// [`read_connection_per_thread`](Self::read_connection_per_thread)).
    pub fn with_read_connection_per_thread(mut self, on: bool) -> Self {
        self.read_connection_per_thread = on;
        self
    }

    /// Trusts the CA certificate(s) in `pem` instead of the system's roots.
    pub fn with_ca_cert_pem(mut self, pem: Vec<u8>) -> Self {
        self.ca_cert_pem = Some(pem);
        self
    }

    /// Presents the PEM certificate chain `cert_pem` and its private key
    /// `key_pem` to servers that ask for a client certificate (mutual TLS).
    /// The PEM is parsed when the store connects.
    pub fn with_client_cert_pem(mut self, cert_pem: Vec<u8>, key_pem: Vec<u8>) -> Self {
        self.client_cert_pem = Some(ClientCert { cert_pem, key_pem });
        self
    }

    /// The certificates redis-rs takes, `None` when neither a CA nor a
    /// client certificate is given (the system's roots, no client
    /// certificate).
    pub(crate) fn tls_certificates(&self) -> Option<redis::TlsCertificates> {
        if self.ca_cert_pem.is_none() && self.client_cert_pem.is_none() {
            return None;
        }
        Some(redis::TlsCertificates {
            client_tls: self
                .client_cert_pem
                .as_ref()
                .map(|c| redis::ClientTlsConfig {
                    client_cert: c.cert_pem.clone(),
                    client_key: c.key_pem.clone(),
                }),
            root_cert: self.ca_cert_pem.clone(),
        })
    }

    /// Checks what the constructors cannot see: settings changed afterwards.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match &self.topology {
            Topology::Standalone(node) if node.host.is_empty() => {
                return Err(ConfigError::MissingHost);
            }
            Topology::Cluster(nodes) if nodes.is_empty() => {
                return Err(ConfigError::NoClusterNodes);
            }
            Topology::Cluster(nodes) if nodes.iter().any(|n| n.host.is_empty()) => {
                return Err(ConfigError::MissingHost);
            }
            Topology::Cluster(_) if self.database != 0 => {
                return Err(ConfigError::ClusterDatabase(self.database));
            }
            _ => {}
        }
        if self.database < 0 {
            return Err(ConfigError::InvalidDatabase(self.database.to_string()));
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout("connect"));
        }
        if self.response_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout("response"));
        }
        if self.ca_cert_pem.is_some() && !self.tls {
            return Err(ConfigError::CaWithoutTls);
        }
        if self.client_cert_pem.is_some() && !self.tls {
            return Err(ConfigError::ClientCertWithoutTls);
        }
        Ok(())
    }

    /// The connection settings of `node`, credentials and database applied.
    pub(crate) fn connection_info(&self, node: &Node) -> redis::RedisResult<redis::ConnectionInfo> {
        let info = node.url(self.tls).into_connection_info()?;
        let mut settings = redis::RedisConnectionInfo::default().set_db(self.database);
        if let Some(user) = &self.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password);
        }
        Ok(info.set_redis_settings(settings))
    }
}
