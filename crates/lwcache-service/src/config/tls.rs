//! TLS settings: the files of Redis's private CA and client certificate,
//! and the certificate and key the HTTP listener serves HTTPS with.
//!
//! Resolving checks only what the settings say of each other (a key with
//! its certificate, a CA with a `rediss://` URL); the files are read when
//! the backends open and the listener binds, with errors that name the
//! setting.

use std::path::PathBuf;

use super::{ClusterUrls, ConfigError, Layer, Names, RedisUrl, env};

/// The Redis CA file's names.
pub const REDIS_CA_FILE: Names = Names::new("--redis-ca-file", env::REDIS_CA_FILE, "redis_ca_file");
/// The Redis client certificate's names.
pub const REDIS_CLIENT_CERT: Names = Names::new(
    "--redis-client-cert",
    env::REDIS_CLIENT_CERT,
    "redis_client_cert",
);
/// The Redis client key's names.
pub const REDIS_CLIENT_KEY: Names = Names::new(
    "--redis-client-key",
    env::REDIS_CLIENT_KEY,
    "redis_client_key",
);
/// The Neo4j CA file's names.
pub const NEO4J_CA_FILE: Names = Names::new("--neo4j-ca-file", env::NEO4J_CA_FILE, "neo4j_ca_file");
/// The HTTPS certificate's names.
pub const TLS_CERT: Names = Names::new("--tls-cert", env::TLS_CERT, "tls_cert");
/// The HTTPS key's names.
pub const TLS_KEY: Names = Names::new("--tls-key", env::TLS_KEY, "tls_key");

/// The files TLS to Redis uses besides the URL's `rediss://`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// PEM certificate(s) of the CA to trust instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate chain and its key, for servers that ask
    /// for one (mutual TLS).
    pub client: Option<ClientFiles>,
}

/// A certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFiles {
    /// The certificate chain, the own certificate first.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// HTTPS on the listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsSettings {
    /// The PEM certificate chain served.
    pub cert: PathBuf,
    /// Its PEM private key.
    pub key: PathBuf,
}

fn pick(
    flags: &Layer,
    env: &Layer,
    file: &Layer,
    get: fn(&Layer) -> &Option<PathBuf>,
) -> Option<PathBuf> {
    [flags, env, file].into_iter().find_map(|l| get(l).clone())
}

/// A certificate and its key: both or neither.
fn pair(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    names: (Names, Names),
) -> Result<Option<ClientFiles>, ConfigError> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(ClientFiles { cert, key })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(names.1.missing(names.0)),
        (None, Some(_)) => Err(names.0.missing(names.1)),
    }
}

/// The Redis TLS files, checked against the Redis target: they need a
/// `rediss://` URL (or Cluster).
pub(super) fn redis_tls(
    flags: &Layer,
    env: &Layer,
    file: &Layer,
    target: (&Option<RedisUrl>, &Option<ClusterUrls>),
) -> Result<RedisTls, ConfigError> {
    let ca_file = pick(flags, env, file, |l| &l.redis_ca_file);
    let client = pair(
        pick(flags, env, file, |l| &l.redis_client_cert),
        pick(flags, env, file, |l| &l.redis_client_key),
        (REDIS_CLIENT_CERT, REDIS_CLIENT_KEY),
    )?;
    let tls = match target {
        (Some(url), _) => Some(url.is_tls()),
        (None, Some(urls)) => Some(urls.expose().iter().all(|u| RedisUrl::tls_scheme(u))),
        (None, None) => None,
    };
    let named = if ca_file.is_some() {
        Some(REDIS_CA_FILE)
    } else if client.is_some() {
        Some(REDIS_CLIENT_CERT)
    } else {
        None
    };
    if let Some(names) = named {
        match tls {
            None => {
                return Err(ConfigError::Invalid(format!(
                    "{} is set but no Redis is: give --redis-url or --redis-cluster",
                    names.spelled()
                )));
            }
            Some(false) => {
                return Err(ConfigError::Invalid(format!(
                    "{} is set but Redis is reached by redis://: TLS needs rediss://",
                    names.spelled()
                )));
            }
            Some(true) => {}
        }
    }
    Ok(RedisTls { ca_file, client })
}

/// A Neo4j CA file needs a scheme that verifies certificates: `+s`.
pub(super) fn neo4j_ca(uri: Option<&str>, ca_file: bool) -> Result<(), ConfigError> {
    if !ca_file {
        return Ok(());
    }
    match uri.and_then(|u| u.split_once("://")).map(|(s, _)| s) {
        Some(scheme) if scheme.ends_with("+s") => Ok(()),
        Some(scheme) => Err(ConfigError::Invalid(format!(
            "{} is set but the Neo4j URI's scheme is {scheme}://: a CA is used by \
             bolt+s:// and neo4j+s:// only",
            NEO4J_CA_FILE.spelled()
        ))),
        None => Err(ConfigError::Invalid(format!(
            "{} is set but no Neo4j URI is",
            NEO4J_CA_FILE.spelled()
        ))),
    }
}

/// HTTPS on the listener, when a certificate and key are given.
pub(super) fn https(
    flags: &Layer,
    env: &Layer,
    file: &Layer,
) -> Result<Option<HttpsSettings>, ConfigError> {
    let files = pair(
        pick(flags, env, file, |l| &l.tls_cert),
        pick(flags, env, file, |l| &l.tls_key),
        (TLS_CERT, TLS_KEY),
    )?;
    Ok(files.map(|f| HttpsSettings {
        cert: f.cert,
        key: f.key,
    }))
}
