//! How to reach Neo4j.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lwcache_core::DEFAULT_SOURCE_TIMEOUT;
use lwcache_domain::{CachePolicy, DocumentLimits};

use crate::error::Neo4jError;

/// The URI schemes Neo4j's drivers accept: `bolt` for one server, `neo4j`
/// for a routing connection (a cluster, or a single server that routes to
/// itself); `+s` adds TLS with verified certificates, `+ssc` TLS that
/// accepts a self-signed certificate.
pub const SCHEMES: &[&str] = &[
    "bolt",
    "neo4j",
    "bolt+s",
    "neo4j+s",
    "bolt+ssc",
    "neo4j+ssc",
];

/// Where Neo4j is and how to talk to it.
#[derive(Clone)]
pub struct Neo4jConfig {
    uri: String,
    user: String,
    password: String,
    database: Option<String>,
    connect_timeout: Duration,
    query_timeout: Duration,
    max_connections: usize,
    limits: DocumentLimits,
    ca_file: Option<PathBuf>,
}

impl fmt::Debug for Neo4jConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Neo4jConfig")
            .field("uri", &self.uri)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("database", &self.database)
            .field("connect_timeout", &self.connect_timeout)
            .field("query_timeout", &self.query_timeout)
            .field("max_connections", &self.max_connections)
            .field("limits", &self.limits)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl Neo4jConfig {
    /// A configuration for `uri`, such as `bolt://127.0.0.1:7687`, user
    /// `neo4j` with an empty password (for servers without
    /// authentication), the default database, a 5 s connect timeout, a call
    /// timeout equal to the cache manager's default source deadline
    /// ([`lwcache_core::DEFAULT_SOURCE_TIMEOUT`], 5 s), and the default
    /// policy's document limits.
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            user: "neo4j".to_owned(),
            password: String::new(),
            database: None,
            connect_timeout: Duration::from_secs(5),
            query_timeout: DEFAULT_SOURCE_TIMEOUT,
            max_connections: 16,
            limits: CachePolicy::default().limits,
            ca_file: None,
        }
    }

    /// Trusts the CA certificate(s) in the PEM file `path` instead of the
    /// system's roots, for `bolt+s://` and `neo4j+s://` (`+ssc` checks no
    /// certificate, and the plain schemes have no TLS).
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// The CA file to trust, if any.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// Sets the user and password.
    pub fn with_credentials(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.user = user.into();
        self.password = password.into();
        self
    }

    /// Uses a named database instead of the server's default.
    pub fn with_database(mut self, database: impl Into<String>) -> Self {
        self.database = Some(database.into());
        self
    }

    /// Sets how long connecting may take, and how long any one call may
    /// take (a bulk load gets ten times the call timeout). Under the cache
    /// manager its `source_timeout` is the deadline of every call it makes;
    /// this one bounds what runs without it: loads, the schema step, and
    /// the repository used alone.
    pub fn with_timeouts(mut self, connect: Duration, query: Duration) -> Self {
        self.connect_timeout = connect;
        self.query_timeout = query;
        self
    }

    /// Sets the size of the connection pool.
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets the limits documents must respect to be written. The cache
    /// policy owns them: pass its `limits` (`CachePolicy::limits`), so that
    /// a bulk load, which bypasses the manager, is held to the same ones.
    pub fn with_limits(mut self, limits: DocumentLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The database, if not the default.
    pub fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The timeout of each call.
    pub fn query_timeout(&self) -> Duration {
        self.query_timeout
    }

    /// The document limits.
    pub fn limits(&self) -> DocumentLimits {
        self.limits
    }

    /// Checks the configuration without connecting: a known scheme, a
    /// host, a port that is a number, non-zero timeouts and pool size.
    pub fn validate(&self) -> Result<(), Neo4jError> {
        let invalid = |problem: String| Neo4jError::InvalidConfig(problem);
        let (scheme, rest) = self
            .uri
            .split_once("://")
            .ok_or_else(|| invalid(format!("{:?} is not a URI (scheme://host:port)", self.uri)))?;
        if !SCHEMES.contains(&scheme) {
            return Err(invalid(format!(
                "unsupported scheme {scheme:?} in {:?}; expected one of {}",
                self.uri,
                SCHEMES.join(", ")
            )));
        }
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(invalid(
                "credentials belong in the user and password settings, not in the URI".to_owned(),
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
                (host, Some(port))
            }
            _ => (authority, None),
        };
        if host.is_empty() {
            return Err(invalid(format!("no host in {:?}", self.uri)));
        }
        if let Some(port) = port {
            match port.parse::<u16>() {
                Ok(p) if p > 0 => {}
                _ => {
                    return Err(invalid(format!(
                        "port {port:?} in {:?} is not 1..65535",
                        self.uri
                    )));
                }
            }
        }
        if self.connect_timeout.is_zero() || self.query_timeout.is_zero() {
            return Err(invalid("timeouts must be greater than zero".to_owned()));
        }
        if self.max_connections == 0 {
            return Err(invalid("the pool needs at least one connection".to_owned()));
        }
        if self.ca_file.is_some() && !scheme.ends_with("+s") {
            return Err(invalid(format!(
                "a CA file is used by bolt+s:// and neo4j+s:// only, not {scheme}://"
            )));
        }
        Ok(())
    }

    pub(crate) fn password(&self) -> &str {
        &self.password
    }

    pub(crate) fn max_connections(&self) -> usize {
        self.max_connections
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_driver_schemes() {
        for uri in [
            "bolt://127.0.0.1:7687",
            "neo4j://localhost:7687",
            "bolt+s://db.example:7687",
            "neo4j+ssc://db.example",
            "bolt://[::1]:7687",
        ] {
            assert_eq!(Neo4jConfig::new(uri).validate(), Ok(()), "{uri}");
        }
    }

    #[test]
    fn refuses_bad_uris_naming_the_problem() {
        for (uri, needle) in [
            ("127.0.0.1:7687", "not a URI"),
            ("http://127.0.0.1:7474", "unsupported scheme \"http\""),
            ("bolt://:7687", "no host"),
            ("bolt://host:99999", "port \"99999\""),
            ("bolt://host:x", "port \"x\""),
            ("bolt://neo4j:secret@host:7687", "credentials"),
        ] {
            let err = Neo4jConfig::new(uri).validate().unwrap_err();
            assert!(err.to_string().contains(needle), "{uri}: {err}");
            assert!(!err.to_string().contains("secret"), "{err}");
        }
    }

    #[test]
    fn a_ca_file_goes_with_a_verifying_tls_scheme_only() {
        for uri in ["bolt+s://h:7687", "neo4j+s://h:7687"] {
            let config = Neo4jConfig::new(uri).with_ca_file("/ca.pem");
            assert_eq!(config.validate(), Ok(()), "{uri}");
            assert_eq!(config.ca_file(), Some(Path::new("/ca.pem")));
        }
        for uri in ["bolt://h:7687", "neo4j://h:7687", "bolt+ssc://h:7687"] {
            let err = Neo4jConfig::new(uri)
                .with_ca_file("/ca.pem")
                .validate()
                .unwrap_err();
            assert!(err.to_string().contains("CA file"), "{uri}: {err}");
        }
    }

    #[test]
    fn debug_never_shows_the_password() {
        let config = Neo4jConfig::new("bolt://h:1").with_credentials("neo4j", "hunter2");
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn zero_timeouts_and_pools_are_refused() {
        let zero =
            Neo4jConfig::new("bolt://h:1").with_timeouts(Duration::ZERO, Duration::from_secs(1));
        assert!(zero.validate().is_err());
        assert!(
            Neo4jConfig::new("bolt://h:1")
                .with_max_connections(0)
                .validate()
                .is_err()
        );
    }
}
