//! Consistency policies: how each kind of key is kept up to date.
//!
//! The spec's defaults: write-through for the critical keys (flags, world
//! snapshot), write-behind for derived caches (recent timelines). Derived data
//! expires; flags never do and are versioned instead.

use std::time::Duration;

use crate::document::DocumentLimits;
use crate::key::KeyKind;
use crate::privacy::SensitivityPolicy;

/// How many events a recent-timeline entry holds unless the policy says
/// otherwise.
pub const DEFAULT_TOP_K: usize = 20;

/// What happens to a key's cached value after the source commits a write
/// that changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// The new value is put in the cache before the write is acknowledged.
    WriteThrough,
    /// The new value is put in the cache by a background worker; the write is
    /// acknowledged at once. Readers may see the older value meanwhile.
    WriteBehind,
    /// The cached value is deleted; the next read fills it.
    Invalidate,
}

/// The policy of one key kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPolicy {
    /// How writes reach the cache.
    pub mode: WriteMode,
    /// How long an entry lives; `None` for persistent keys.
    pub ttl: Option<Duration>,
}

/// Every policy the cache applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    /// `lw:world:{w}:state`
    pub state: KeyPolicy,
    /// `lw:world:{w}:flags`
    pub flags: KeyPolicy,
    /// `lw:world:{w}:timeline:<e>:recent`
    pub timeline: KeyPolicy,
    /// Character, location and object state keys.
    pub entity: KeyPolicy,
    /// How many events a recent-timeline entry holds.
    pub timeline_top_k: usize,
    /// Bounds on documents.
    pub limits: DocumentLimits,
    /// Which fields never reach the cache.
    pub privacy: SensitivityPolicy,
    /// How worlds are warmed.
    pub warm: WarmPolicy,
}

/// How a world is warmed on activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmPolicy {
    /// At most this many entities are prefilled (with their timelines).
    pub max_entities: usize,
    /// How many keys go to the cache store in one batch (one round trip).
    pub batch_size: usize,
}

impl Default for WarmPolicy {
    fn default() -> Self {
        Self {
            max_entities: 10_000,
            batch_size: 256,
        }
    }
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            state: KeyPolicy {
                mode: WriteMode::WriteThrough,
                ttl: Some(Duration::from_secs(3600)),
            },
            flags: KeyPolicy {
                mode: WriteMode::WriteThrough,
                ttl: None,
            },
            timeline: KeyPolicy {
                mode: WriteMode::WriteBehind,
                ttl: Some(Duration::from_secs(300)),
            },
            entity: KeyPolicy {
                mode: WriteMode::WriteThrough,
                ttl: Some(Duration::from_secs(3600)),
            },
            timeline_top_k: DEFAULT_TOP_K,
            limits: DocumentLimits::default(),
            privacy: SensitivityPolicy::default(),
            warm: WarmPolicy::default(),
        }
    }
}

/// Why a policy was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A TTL of zero would expire entries as they are written.
    #[error("the TTL of {0} keys is zero")]
    ZeroTtl(KeyKind),
    /// A TTL too short for the cache store's millisecond resolution.
    #[error("the TTL of {0} keys is under a millisecond")]
    SubMillisecondTtl(KeyKind),
    /// `timeline_top_k` outside 1..=1000.
    #[error("timeline_top_k is {0}; it must be between 1 and 1000")]
    TopK(usize),
    /// A warm batch size of zero.
    #[error("warm.batch_size is zero")]
    BatchSize,
}

impl CachePolicy {
    /// The policy of a key kind; `None` for the version key, which is never
    /// written by a policy and never expires.
    pub fn for_kind(&self, kind: KeyKind) -> Option<KeyPolicy> {
        match kind {
            KeyKind::State => Some(self.state),
            KeyKind::Flags => Some(self.flags),
            KeyKind::Timeline => Some(self.timeline),
            KeyKind::Character | KeyKind::Location | KeyKind::Object => Some(self.entity),
            KeyKind::Version => None,
        }
    }

    /// The TTL of a key kind.
    pub fn ttl(&self, kind: KeyKind) -> Option<Duration> {
        self.for_kind(kind).and_then(|p| p.ttl)
    }

    /// Checks the policy.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for kind in KeyKind::ALL {
            if let Some(ttl) = self.ttl(kind) {
                if ttl.is_zero() {
                    return Err(PolicyError::ZeroTtl(kind));
                }
                if ttl < Duration::from_millis(1) {
                    return Err(PolicyError::SubMillisecondTtl(kind));
                }
            }
        }
        if !(1..=1000).contains(&self.timeline_top_k) {
            return Err(PolicyError::TopK(self.timeline_top_k));
        }
        if self.warm.batch_size == 0 {
            return Err(PolicyError::BatchSize);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_spec() {
        let p = CachePolicy::default();
        p.validate().unwrap();
        assert_eq!(p.flags.mode, WriteMode::WriteThrough);
        assert_eq!(p.flags.ttl, None, "flags never expire");
        assert_eq!(p.state.mode, WriteMode::WriteThrough);
        assert_eq!(p.timeline.mode, WriteMode::WriteBehind);
        assert!(p.timeline.ttl.is_some(), "derived data expires");
        assert_eq!(p.ttl(KeyKind::Version), None);
    }

    #[test]
    fn rejects_bad_values() {
        let mut p = CachePolicy::default();
        p.timeline.ttl = Some(Duration::ZERO);
        assert_eq!(p.validate(), Err(PolicyError::ZeroTtl(KeyKind::Timeline)));
        let mut p = CachePolicy::default();
        p.timeline_top_k = 0;
        assert_eq!(p.validate(), Err(PolicyError::TopK(0)));
        let mut p = CachePolicy::default();
        p.state.ttl = Some(Duration::from_micros(10));
        assert_eq!(
            p.validate(),
            Err(PolicyError::SubMillisecondTtl(KeyKind::State))
        );
    }
}
