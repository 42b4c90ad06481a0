//! The adapter's errors, and how they become the port's.

use std::time::Duration;

use lwcache_core::ports::{Cause, SourceError};

/// Why connecting to Neo4j, or a call to it, failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Neo4jError {
    /// The configuration cannot work (bad URI, zero timeout).
    #[error("invalid Neo4j configuration: {0}")]
    InvalidConfig(String),
    /// The server cannot be reached.
    #[error("Neo4j unreachable at {uri}: {reason}")]
    Unreachable {
        /// The URI tried.
        uri: String,
        /// What failed: part of the message, so not also its source (a
        /// chain printed in full would say it twice).
        reason: Cause,
    },
    /// The server refused the credentials.
    #[error("Neo4j refused the credentials of user {user:?}: {reason}")]
    Unauthorized {
        /// The user.
        user: String,
        /// The server's message.
        reason: String,
    },
    /// The call did not finish in time.
    #[error("Neo4j did not answer within {0:?}")]
    Timeout(Duration),
    /// Creating the schema (constraints and indexes) failed.
    #[error("Neo4j schema step failed: {0}")]
    Schema(#[source] Box<Neo4jError>),
    /// Neo4j reported an error.
    #[error("Neo4j error {code}: {message}")]
    Server {
        /// Its status code, such as `Neo.ClientError.Statement.SyntaxError`.
        code: String,
        /// Its message.
        message: String,
    },
    /// A stored value is not what lwcache writes.
    #[error("unexpected data in Neo4j: {0}")]
    Corrupt(String),
}

impl From<Neo4jError> for SourceError {
    fn from(e: Neo4jError) -> Self {
        match e {
            Neo4jError::Unreachable { .. } | Neo4jError::Unauthorized { .. } => {
                SourceError::Unavailable(Cause::new(e))
            }
            Neo4jError::Timeout(d) => SourceError::Timeout(d),
            Neo4jError::InvalidConfig(_)
            | Neo4jError::Schema(_)
            | Neo4jError::Server { .. }
            | Neo4jError::Corrupt(_) => SourceError::Other(Cause::new(e)),
        }
    }
}

impl Neo4jError {
    /// Classifies a driver error.
    pub(crate) fn from_driver(e: neo4rs::Error, uri: &str, user: &str) -> Self {
        use neo4rs::Error as E;
        let unreachable = |reason: Cause| Neo4jError::Unreachable {
            uri: uri.to_owned(),
            reason,
        };
        match e {
            E::AuthenticationError(reason) => Neo4jError::Unauthorized {
                user: user.to_owned(),
                reason,
            },
            E::Neo4j(err) if err.code().starts_with("Neo.ClientError.Security.") => {
                Neo4jError::Unauthorized {
                    user: user.to_owned(),
                    reason: err.message().to_owned(),
                }
            }
            E::Neo4j(err) => Neo4jError::Server {
                code: err.code().to_owned(),
                message: err.message().to_owned(),
            },
            E::IOError { detail } => unreachable(Cause::new(detail)),
            E::ConnectionTimedOut => unreachable("connection timed out".into()),
            e @ (E::ConnectionError
            | E::IncompleteBoltExchange
            | E::ServerUnavailableError(_)
            | E::RoutingTableError(_)
            | E::RoutingTableRefreshFailed(_)
            | E::ProtocolMismatch(_)
            | E::UnsupportedVersion(..)
            | E::UrlParseError(_)
            | E::UnsupportedScheme(_)
            | E::InvalidDnsName(_)) => unreachable(Cause::new(e)),
            other => Neo4jError::Corrupt(other.to_string()),
        }
    }

    /// Whether retrying the same transaction may succeed.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, Neo4jError::Server { code, .. } if code.starts_with("Neo.TransientError."))
    }
}
