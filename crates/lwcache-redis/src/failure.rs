//! The adapter's failures and how they map onto the port's causes.

use std::time::Duration;

use lwcache_core::ports::{CacheError, Cause};
use redis::{ErrorKind, RedisError, ServerErrorKind};

/// The adapter's own failures, turned into [`CacheError`] at the port.
#[derive(Debug)]
pub(crate) enum Failure {
    /// redis-rs or the server reported an error.
    Redis(RedisError),
    /// The call was refused before it was sent, or the reply made no sense.
    Refused(String),
}

impl From<RedisError> for Failure {
    fn from(e: RedisError) -> Self {
        Failure::Redis(e)
    }
}

impl Failure {
    pub(crate) fn into_cache_error(self, limit: Duration) -> CacheError {
        match self {
            Failure::Refused(why) => CacheError::Refused(why.into()),
            Failure::Redis(e) => classify(e, limit),
        }
    }
}

/// Sorts a redis-rs error into the port's three causes: what a retry after
/// a reconnect or failover may cure is `Unavailable`; what the server will
/// refuse again (ACL, script errors, wrong types) is `Refused`.
pub(crate) fn classify(e: RedisError, limit: Duration) -> CacheError {
    if e.is_timeout() {
        return CacheError::Timeout(limit);
    }
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        return CacheError::Unavailable(Cause::new(e));
    }
    match e.kind() {
        ErrorKind::Io
        | ErrorKind::ClusterConnectionNotFound
        | ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ReadOnly
            | ServerErrorKind::Moved
            | ServerErrorKind::Ask,
        ) => CacheError::Unavailable(Cause::new(e)),
        _ => CacheError::Refused(Cause::new(e)),
    }
}
