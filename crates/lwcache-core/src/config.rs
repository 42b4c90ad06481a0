//! The cache manager's configuration.

use std::time::Duration;

use lwcache_domain::{CachePolicy, KeyKind, PolicyError};

/// The default deadline of one cache store call made by the manager
/// ([`ManagerConfig::cache_timeout`]). The manager owns this deadline;
/// adapters derive their own connection-level bounds from it.
pub const DEFAULT_CACHE_TIMEOUT: Duration = Duration::from_millis(250);

/// The default deadline of one source call made by the manager
/// ([`ManagerConfig::source_timeout`]).
pub const DEFAULT_SOURCE_TIMEOUT: Duration = Duration::from_secs(5);

/// The default run of failed cache calls that opens the circuit breaker
/// ([`ManagerConfig::breaker_failures`]).
pub const DEFAULT_BREAKER_FAILURES: u32 = 5;

/// The default time an open circuit breaker waits before its probe
/// ([`ManagerConfig::breaker_open`]).
pub const DEFAULT_BREAKER_OPEN: Duration = Duration::from_secs(1);

/// Whether a write-behind key may be served older than an acknowledged
/// write while its update waits in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StaleReads {
    /// Never: a write-behind key is tombstoned in the write's cache step,
    /// before the acknowledgement, and the worker refills it afterwards.
    /// Every instance then misses (and reads the source) or reads the refill.
    #[default]
    Never,
    /// The older entry stays until the worker replaces it. This process
    /// serves it marked [`Outcome::Stale`](crate::Outcome::Stale); other
    /// processes serve it as a hit. The window is the queue's delay. An
    /// explicit opt-in, for derived data that may lag.
    WhileQueued,
}

/// Everything the cache manager is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerConfig {
    /// The domain policies: write modes, TTLs, top-k, limits, privacy,
    /// warming. Its `limits` are the one setting of document limits; a
    /// repository that checks them too is given these.
    pub policy: CachePolicy,
    /// Every cache store call the manager makes is bounded by this; past it
    /// the call counts as failed and the caller is served by the source.
    /// This is the deadline of a cache call: an adapter's own timeout is
    /// only a connection-level backstop (see `docs/ARCHITECTURE.md`,
    /// "Settings: who owns what").
    pub cache_timeout: Duration,
    /// Every source call the manager makes is bounded by this, whatever the
    /// repository's own timeout.
    pub source_timeout: Duration,
    /// How many write-behind updates may wait; past it an update becomes a
    /// synchronous invalidation instead of blocking the caller.
    pub write_behind_capacity: usize,
    /// Whether write-behind keys may be served older than a write.
    pub stale_reads: StaleReads,
    /// The entry format written; every format of this release is read
    /// ([`Format`](crate::codec::Format)). Changed only in the second step
    /// of a rolling upgrade, once every instance reads the new one.
    pub entry_format: crate::codec::Format,
    /// How long a miss's lease on its key lasts: the fill of a source read
    /// slower than this is dropped.
    pub lease_ttl: Duration,
    /// How long a miss waits for another reader's fill of the same key
    /// before it reads the source itself (without filling).
    pub lease_wait: Duration,
    /// The outbox replay: how often each process looks for owed cache steps.
    pub replay_interval: Duration,
    /// Only owed steps at least this old are replayed: younger ones belong
    /// to writes whose own step is probably still running.
    pub replay_min_age: Duration,
    /// At most this many owed steps per replay round.
    pub replay_batch: usize,
    /// Done outbox entries are removed in batches of at most this many, one
    /// source transaction per batch, at least every `settle_interval`.
    pub settle_batch: usize,
    /// How long done outbox entries may wait for their batch.
    pub settle_interval: Duration,

    // The circuit breaker around the cache store (`manager/breaker.rs`).
    /// How many cache calls in a row may fail (unreachable, or past
    /// `cache_timeout`) before the breaker opens and cache calls fail at
    /// once, without paying the timeout. At least 1.
    pub breaker_failures: u32,
    /// How long an open breaker fails calls before it lets one through as a
    /// probe; the probe's answer closes it, its failure opens it again.
    pub breaker_open: Duration,

    // Refreshing and warming what is popular (`manager/refresh.rs`,
    // `manager/warm.rs`).
    /// The background refresher: popular state and timeline keys are read
    /// again from the source and filled shortly before their TTL ends, so
    /// that their readers do not miss. `None` (the default): off, and reads
    /// are not counted.
    pub refresh: Option<RefreshConfig>,
    /// At most this many keys per activation: the flags, the snapshot,
    /// then the most active entities (read lately, then with the newest
    /// events), two keys each. `None` (the default): every entity, up to
    /// the policy's `warm.max_entities`. At least 2.
    pub warm_budget: Option<usize>,
    /// The decode memo's budget, in bytes: each key's last entry read from
    /// the store is kept with its decoded value, and a read that finds the
    /// same bytes shares that value instead of decoding them again. It
    /// changes no answer (the store is asked on every read). 0 turns it
    /// off.
    pub decode_memo_bytes: usize,
}

/// The decode memo's default budget: 8 MiB.
pub const DEFAULT_DECODE_MEMO_BYTES: usize = 8 << 20;

/// The background refresher's settings (`manager/refresh.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshConfig {
    /// An entry is refreshed once less than this share of its TTL is left,
    /// in percent: 1 to 90.
    pub lead_percent: u32,
    /// How often the refresher looks at its candidates. Shorter than the
    /// lead window (`lead_percent` of the shortest TTL it refreshes), so
    /// that every entry is looked at inside its window.
    pub interval: Duration,
    /// Only keys whose read count (as the sketch estimates it, halved after
    /// each sample) is at least this are refreshed. At least 1.
    pub min_reads: u32,
    /// How many popular keys are kept as candidates: the memory of the
    /// refresher, whatever the number of keys read. At least 1.
    pub candidates: usize,
    /// Counters per row of the frequency sketch (4 rows of 4 bytes each).
    /// At least 16; rounded up to a power of two.
    pub sketch_width: usize,
    /// Reads between two agings of the sketch, which halve every count.
    /// At least 1.
    pub sample: u64,
    /// At most this many refreshes per round, the most popular first.
    /// At least 1.
    pub per_round: usize,
}

impl RefreshConfig {
    /// The key kinds the refresher refreshes when their policy gives them a
    /// TTL: the world snapshot, entities' states and recent timelines.
    pub const KINDS: [KeyKind; 5] = [
        KeyKind::State,
        KeyKind::Timeline,
        KeyKind::Character,
        KeyKind::Location,
        KeyKind::Object,
    ];

    /// Checks the settings, against the TTLs of `policy`.
    pub fn validate(&self, policy: &CachePolicy) -> Result<(), RefreshError> {
        if !(1..=90).contains(&self.lead_percent) {
            return Err(RefreshError::LeadPercent(self.lead_percent));
        }
        if self.interval.is_zero() {
            return Err(RefreshError::ZeroInterval);
        }
        if self.min_reads == 0 {
            return Err(RefreshError::Zero("min_reads"));
        }
        if self.candidates == 0 {
            return Err(RefreshError::Zero("candidates"));
        }
        if self.sketch_width == 0 {
            return Err(RefreshError::Zero("sketch_width"));
        }
        if self.sample == 0 {
            return Err(RefreshError::Zero("sample"));
        }
        if self.per_round == 0 {
            return Err(RefreshError::Zero("per_round"));
        }
        for kind in Self::KINDS {
            let Some(ttl) = policy.ttl(kind) else {
                continue;
            };
            let window = self.window(ttl);
            if self.interval >= window {
                return Err(RefreshError::IntervalPastWindow {
                    kind,
                    interval: self.interval,
                    window,
                });
            }
        }
        Ok(())
    }

    /// How long before the end of a TTL of `ttl` an entry is refreshed.
    pub fn window(&self, ttl: Duration) -> Duration {
        ttl * self.lead_percent.min(100) / 100
    }
}

impl Default for RefreshConfig {
    fn default() -> Self {
        Self {
            lead_percent: 20,
            interval: Duration::from_millis(250),
            min_reads: 4,
            candidates: 1024,
            sketch_width: 4096,
            sample: 40_960,
            per_round: 256,
        }
    }
}

/// Why a refresher configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// `lead_percent` outside 1..=90.
    #[error("refresh.lead_percent is {0}; it must be between 1 and 90")]
    LeadPercent(u32),
    /// A zero interval.
    #[error("refresh.interval is zero")]
    ZeroInterval,
    /// A setting that must be at least 1 is 0.
    #[error("refresh.{0} is zero")]
    Zero(&'static str),
    /// Rounds further apart than the lead window: an entry could end its
    /// TTL between two looks.
    #[error(
        "refresh.interval ({interval:?}) is not shorter than the lead window of {kind} keys ({window:?})"
    )]
    IntervalPastWindow {
        /// The key kind with the shortest window.
        kind: KeyKind,
        /// The interval.
        interval: Duration,
        /// Its window.
        window: Duration,
    },
}

/// Why a manager configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The domain policy is invalid.
    #[error("invalid cache policy")]
    Policy(#[from] PolicyError),
    /// The refresher's settings are invalid.
    #[error("invalid refresher settings")]
    Refresh(#[from] RefreshError),
    /// A warming budget under the flags and the snapshot.
    #[error("warm_budget is {0}; it must be at least 2 (the flags and the snapshot)")]
    WarmBudget(usize),
}

impl ManagerConfig {
    /// Checks the whole configuration: the policy, the refresher's
    /// settings against its TTLs, the warming budget.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.policy.validate()?;
        if let Some(refresh) = &self.refresh {
            refresh.validate(&self.policy)?;
        }
        if let Some(budget) = self.warm_budget
            && budget < 2
        {
            return Err(ConfigError::WarmBudget(budget));
        }
        Ok(())
    }
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            policy: CachePolicy::default(),
            cache_timeout: DEFAULT_CACHE_TIMEOUT,
            source_timeout: DEFAULT_SOURCE_TIMEOUT,
            write_behind_capacity: 1024,
            stale_reads: StaleReads::Never,
            entry_format: crate::codec::Format::V1,
            lease_ttl: Duration::from_secs(5),
            lease_wait: Duration::from_millis(50),
            replay_interval: Duration::from_millis(500),
            replay_min_age: Duration::from_millis(500),
            replay_batch: 256,
            settle_batch: 256,
            settle_interval: Duration::from_millis(100),

            breaker_failures: DEFAULT_BREAKER_FAILURES,
            breaker_open: DEFAULT_BREAKER_OPEN,

            refresh: None,
            warm_budget: None,
            decode_memo_bytes: DEFAULT_DECODE_MEMO_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_configuration_is_valid_with_the_refresher_on_too() {
        let mut config = ManagerConfig::default();
        assert_eq!(config.validate(), Ok(()));
        config.refresh = Some(RefreshConfig::default());
        config.warm_budget = Some(2);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn refresher_settings_outside_their_ranges_are_refused() {
        let policy = CachePolicy::default();
        let bad = [
            RefreshConfig {
                lead_percent: 0,
                ..RefreshConfig::default()
            },
            RefreshConfig {
                lead_percent: 91,
                ..RefreshConfig::default()
            },
            RefreshConfig {
                interval: Duration::ZERO,
                ..RefreshConfig::default()
            },
            RefreshConfig {
                candidates: 0,
                ..RefreshConfig::default()
            },
            RefreshConfig {
                min_reads: 0,
                ..RefreshConfig::default()
            },
            RefreshConfig {
                per_round: 0,
                ..RefreshConfig::default()
            },
        ];
        for refresh in bad {
            assert!(refresh.validate(&policy).is_err(), "{refresh:?}");
        }
    }

    #[test]
    fn an_interval_past_the_shortest_lead_window_is_refused() {
        let mut config = ManagerConfig::default();
        config.policy.timeline.ttl = Some(Duration::from_secs(1));
        config.refresh = Some(RefreshConfig {
            lead_percent: 20,
            interval: Duration::from_millis(200),
            ..RefreshConfig::default()
        });
        assert!(matches!(
            config.validate(),
            Err(ConfigError::Refresh(RefreshError::IntervalPastWindow {
                kind: KeyKind::Timeline,
                ..
            }))
        ));
        config.refresh = Some(RefreshConfig {
            lead_percent: 20,
            interval: Duration::from_millis(100),
            ..RefreshConfig::default()
        });
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn a_warm_budget_under_two_keys_is_refused() {
        let config = ManagerConfig {
            warm_budget: Some(1),
            ..ManagerConfig::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::WarmBudget(1)));
    }
}
