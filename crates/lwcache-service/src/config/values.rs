//! The values of a few settings that need more than a plain type: the
//! write modes, secrets and Redis URLs kept out of `Debug` output.

use serde::Deserialize;

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

/// How the service's threads share its work (`runtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeModel {
    /// One tokio runtime whose worker threads steal tasks from each other.
    #[default]
    WorkStealing,
    /// One single-threaded runtime per thread, each with a listening socket
    /// of its own on the same port (`SO_REUSEPORT`: the kernel spreads the
    /// connections) and its own Redis connection for reads.
    Sharded,
}

impl RuntimeModel {
    /// Its name in every source.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeModel::WorkStealing => "work-stealing",
            RuntimeModel::Sharded => "sharded",
        }
    }
}

impl std::str::FromStr for RuntimeModel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "work-stealing" => Ok(RuntimeModel::WorkStealing),
            "sharded" => Ok(RuntimeModel::Sharded),
            other => Err(format!(
                "{other:?} is not a runtime: use work-stealing or sharded"
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

/// One Redis URL. `Debug` hides any password it carries.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL, password included.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted(&self) -> String {
        crate::backend::redact_url(&self.0)
    }

    /// Whether the URL asks for TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        Self::tls_scheme(&self.0)
    }

    /// Whether `url` starts with `rediss://`, in any letter case.
    pub fn tls_scheme(url: &str) -> bool {
        url.trim()
            .split_once("://")
            .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("rediss"))
    }
}

impl From<String> for RedisUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl From<&str> for RedisUrl {
    fn from(url: &str) -> Self {
        Self(url.to_owned())
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.redacted(), f)
    }
}
