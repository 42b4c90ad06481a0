//! The cache manager's error: only what the caller can act on. Cache store
//! failures never appear here; they are absorbed and counted.

use lwcache_domain::{CacheKey, DocumentError, WorldError};

use crate::ports::SourceError;

/// Why a cache manager operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A document in the request breaks the limits; nothing was written.
    #[error("invalid document: {0}")]
    Document(#[from] DocumentError),
    /// The key holds nothing a caller reads (the version key).
    #[error("{0} is not a readable key")]
    Unreadable(CacheKey),
    /// The source of truth failed or refused the request.
    #[error(transparent)]
    Source(#[from] SourceError),
}

impl Error {
    /// The domain's refusal, if the source refused the caller's input
    /// (unknown world or entity, a taken id, an invalid document).
    pub fn rejection(&self) -> Option<&WorldError> {
        match self {
            Error::Source(SourceError::Rejected(e)) => Some(e),
            _ => None,
        }
    }
}
