//! The cache policy's settings: the TTL of each key kind, the timeline's
//! top-k, the manager's per-call deadlines and the write-behind queue's
//! capacity, resolved from the flags, the environment and the file.

use std::time::Duration;

use super::{ConfigError, Layer, Names, env};

/// The longest TTL of any key kind: thirty days.
pub const MAX_TTL_MS: u64 = 30 * 86_400_000;
/// The largest timeline top-k (the domain's bound).
pub const MAX_TIMELINE_TOP_K: usize = 1000;
/// The longest cache call deadline: a minute.
pub const MAX_CACHE_TIMEOUT_MS: u64 = 60_000;
/// The longest source call deadline: ten minutes.
pub const MAX_SOURCE_TIMEOUT_MS: u64 = 600_000;
/// The largest write-behind queue.
pub const MAX_WRITE_BEHIND_CAPACITY: usize = 1_000_000;

/// What the cache policy and the manager take from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicySettings {
    /// The world snapshot's TTL; `None` keeps it until a write replaces it.
    pub state_ttl: Option<Duration>,
    /// The flags' TTL; `None` (the default) keeps them.
    pub flags_ttl: Option<Duration>,
    /// An entity's TTL (characters, locations, objects).
    pub entity_ttl: Option<Duration>,
    /// A recent timeline's TTL: always one, since the key is derived.
    pub timeline_ttl: Duration,
    /// How many events a recent timeline caches.
    pub timeline_top_k: usize,
    /// The deadline of every cache call the manager makes.
    pub cache_timeout: Duration,
    /// The deadline of every source call the manager makes.
    pub source_timeout: Duration,
    /// How many write-behind updates may wait.
    pub write_behind_capacity: usize,
    /// The most keys an activation prefills; `None` warms every entity.
    pub warm_budget: Option<usize>,
    /// The decode memo's budget in bytes; 0: off.
    pub decode_memo_bytes: usize,
}

impl Default for PolicySettings {
    fn default() -> Self {
        let config = lwcache_core::ManagerConfig::default();
        let policy = &config.policy;
        Self {
            state_ttl: policy.state.ttl,
            flags_ttl: policy.flags.ttl,
            entity_ttl: policy.entity.ttl,
            timeline_ttl: policy
                .timeline
                .ttl
                .unwrap_or(Duration::from_secs(DEFAULT_TIMELINE_TTL_SECS)),
            timeline_top_k: policy.timeline_top_k,
            cache_timeout: config.cache_timeout,
            source_timeout: config.source_timeout,
            write_behind_capacity: config.write_behind_capacity,
            warm_budget: config.warm_budget,
            decode_memo_bytes: config.decode_memo_bytes,
        }
    }
}

/// Only used if the domain's default ever drops the timeline's TTL.
const DEFAULT_TIMELINE_TTL_SECS: u64 = 300;

impl PolicySettings {
    /// Applies these settings to a manager configuration.
    pub fn apply(&self, config: &mut lwcache_core::ManagerConfig) {
        let policy = &mut config.policy;
        policy.state.ttl = self.state_ttl;
        policy.flags.ttl = self.flags_ttl;
        policy.entity.ttl = self.entity_ttl;
        policy.timeline.ttl = Some(self.timeline_ttl);
        policy.timeline_top_k = self.timeline_top_k;
        config.cache_timeout = self.cache_timeout;
        config.source_timeout = self.source_timeout;
        config.write_behind_capacity = self.write_behind_capacity;
        config.warm_budget = self.warm_budget;
        config.decode_memo_bytes = self.decode_memo_bytes;
    }
}

const STATE_TTL: Names = Names::new("--state-ttl-ms", env::STATE_TTL_MS, "state_ttl_ms");
const FLAGS_TTL: Names = Names::new("--flags-ttl-ms", env::FLAGS_TTL_MS, "flags_ttl_ms");
const ENTITY_TTL: Names = Names::new("--entity-ttl-ms", env::ENTITY_TTL_MS, "entity_ttl_ms");
const TIMELINE_TTL: Names =
    Names::new("--timeline-ttl-ms", env::TIMELINE_TTL_MS, "timeline_ttl_ms");
const TOP_K: Names = Names::new("--timeline-top-k", env::TIMELINE_TOP_K, "timeline_top_k");
const CACHE_TIMEOUT: Names = Names::new(
    "--cache-timeout-ms",
    env::CACHE_TIMEOUT_MS,
    "cache_timeout_ms",
);
const SOURCE_TIMEOUT: Names = Names::new(
    "--source-timeout-ms",
    env::SOURCE_TIMEOUT_MS,
    "source_timeout_ms",
);
const WARM_BUDGET: Names = Names::new(
    "--warm-budget-keys",
    env::WARM_BUDGET_KEYS,
    "warm_budget_keys",
);
const DECODE_MEMO: Names = Names::new(
    "--decode-memo-bytes",
    env::DECODE_MEMO_BYTES,
    "decode_memo_bytes",
);
const CAPACITY: Names = Names::new(
    "--write-behind-capacity",
    env::WRITE_BEHIND_CAPACITY,
    "write_behind_capacity",
);

/// Resolves and checks the policy settings; an error names the setting in
/// every source's spelling.
pub(super) fn policy_settings(
    flags: &Layer,
    env: &Layer,
    file: &Layer,
) -> Result<PolicySettings, ConfigError> {
    let pick = |get: fn(&Layer) -> Option<u64>| [flags, env, file].into_iter().find_map(get);
    // `zero`: what 0 means, for a setting that takes it besides the range.
    let allowed = |value: u64, min: u64, max: u64, names: Names, zero: Option<&str>| {
        if (min..=max).contains(&value) {
            Ok(value)
        } else {
            let range = format!("from {min} to {max}");
            Err(names.invalid(
                value,
                &zero.map_or(range.clone(), |z| format!("0 ({z}) or {range}")),
            ))
        }
    };
    let within =
        |value: u64, min: u64, max: u64, names: Names| allowed(value, min, max, names, None);
    // 0 keeps the key until a write replaces it; the timeline's key is
    // derived from events and must expire, so it has no such choice.
    let ttl =
        |get: fn(&Layer) -> Option<u64>, names: Names, default: Option<Duration>| match pick(get) {
            None => Ok(default),
            Some(0) => Ok(None),
            Some(ms) => allowed(ms, 1, MAX_TTL_MS, names, Some("no TTL"))
                .map(|ms| Some(Duration::from_millis(ms))),
        };
    let d = PolicySettings::default();
    let mut out = PolicySettings {
        state_ttl: ttl(|l| l.state_ttl_ms, STATE_TTL, d.state_ttl)?,
        flags_ttl: ttl(|l| l.flags_ttl_ms, FLAGS_TTL, d.flags_ttl)?,
        entity_ttl: ttl(|l| l.entity_ttl_ms, ENTITY_TTL, d.entity_ttl)?,
        ..d
    };
    if let Some(ms) = pick(|l| l.timeline_ttl_ms) {
        out.timeline_ttl = Duration::from_millis(within(ms, 1, MAX_TTL_MS, TIMELINE_TTL)?);
    }
    if let Some(k) = pick(|l| l.timeline_top_k) {
        let k = within(k, 1, MAX_TIMELINE_TOP_K as u64, TOP_K)?;
        out.timeline_top_k = usize::try_from(k).map_err(|_| TOP_K.invalid(k, "a count"))?;
    }
    if let Some(ms) = pick(|l| l.cache_timeout_ms) {
        out.cache_timeout =
            Duration::from_millis(within(ms, 1, MAX_CACHE_TIMEOUT_MS, CACHE_TIMEOUT)?);
    }
    if let Some(ms) = pick(|l| l.source_timeout_ms) {
        out.source_timeout =
            Duration::from_millis(within(ms, 1, MAX_SOURCE_TIMEOUT_MS, SOURCE_TIMEOUT)?);
    }
    if let Some(n) = pick(|l| l.write_behind_capacity) {
        let n = within(n, 1, MAX_WRITE_BEHIND_CAPACITY as u64, CAPACITY)?;
        out.write_behind_capacity =
            usize::try_from(n).map_err(|_| CAPACITY.invalid(n, "a count"))?;
    }
    if let Some(n) = pick(|l| l.warm_budget_keys) {
        out.warm_budget = match n {
            0 => None,
            // The flags and the snapshot come first.
            n => Some(
                usize::try_from(allowed(
                    n,
                    2,
                    u64::from(u32::MAX),
                    WARM_BUDGET,
                    Some("no budget"),
                )?)
                .map_err(|_| WARM_BUDGET.invalid(n, "a count"))?,
            ),
        };
    }
    if let Some(n) = pick(|l| l.decode_memo_bytes) {
        let n = within(n, 0, MAX_DECODE_MEMO_BYTES, DECODE_MEMO)?;
        out.decode_memo_bytes =
            usize::try_from(n).map_err(|_| DECODE_MEMO.invalid(n, "a count"))?;
    }
    Ok(out)
}

/// The largest decode memo: 64 GiB, far past any machine's sense.
const MAX_DECODE_MEMO_BYTES: u64 = 1 << 36;
