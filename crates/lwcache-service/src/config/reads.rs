//! The read settings: fail-safe answers, TTL jitter, negative entries, the
//! lease wait and the near cache, resolved from the flags, the environment
//! and the file.

use std::time::Duration;

use super::{ConfigError, Layer, Names, env};

/// Fail-safe reads and stampede control, as the cache manager takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadSettings {
    /// How long an entry is kept past its TTL, served only while the
    /// source fails; zero turns fail-safe reads off.
    pub fail_safe_grace: Duration,
    /// How far TTLs are spread, in percent either way.
    pub ttl_jitter_percent: u32,
    /// How long an unknown entity is remembered; `None` never.
    pub negative_ttl: Option<Duration>,
    /// How long a miss waits for another process's fill of the same key.
    pub lease_wait: Duration,
    /// The near cache, when it is on.
    pub near: Option<NearSettings>,
}

/// The near cache in front of the store (`docs/near-cache.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NearSettings {
    /// Its byte budget.
    pub bytes: usize,
    /// The oldest feed confirmation a near hit may rely on.
    pub max_lag: Duration,
    /// How often the feed confirms that it is live.
    pub heartbeat: Duration,
}

/// The smallest near cache.
pub const MIN_NEAR_CACHE_BYTES: u64 = 64 << 10;
/// The longest near-cache lag bound: a minute.
pub const MAX_NEAR_MAX_LAG_MS: u64 = 60_000;
/// The near cache's default heartbeat, in ms.
pub const DEFAULT_NEAR_HEARTBEAT_MS: u64 = 50;

impl Default for ReadSettings {
    fn default() -> Self {
        let config = lwcache_core::ManagerConfig::default();
        let expiry = config.policy.expiry;
        Self {
            fail_safe_grace: expiry.grace,
            ttl_jitter_percent: expiry.jitter_percent,
            negative_ttl: expiry.negative_ttl,
            lease_wait: config.lease_wait,
            near: None,
        }
    }
}

/// The longest fail-safe grace: a day.
pub const MAX_FAIL_SAFE_GRACE_MS: u64 = 86_400_000;
/// The longest negative TTL: an hour.
pub const MAX_NEGATIVE_TTL_MS: u64 = 3_600_000;
/// The longest lease wait: a minute.
pub const MAX_LEASE_WAIT_MS: u64 = 60_000;

/// Resolves and checks the read settings; an error names the setting in
/// every source's spelling.
pub(super) fn read_settings(
    flags: &Layer,
    env: &Layer,
    file: &Layer,
) -> Result<ReadSettings, ConfigError> {
    fn pick<T: Copy>(f: Option<T>, e: Option<T>, c: Option<T>) -> Option<T> {
        f.or(e).or(c)
    }
    let within = |value: u64, max: u64, flag, var, key| {
        if value > max {
            Err(Names::new(flag, var, key).invalid(value, &format!("at most {max}")))
        } else {
            Ok(value)
        }
    };
    let mut out = ReadSettings::default();
    if let Some(ms) = pick(
        flags.fail_safe_grace_ms,
        env.fail_safe_grace_ms,
        file.fail_safe_grace_ms,
    ) {
        let ms = within(
            ms,
            MAX_FAIL_SAFE_GRACE_MS,
            "--fail-safe-grace-ms",
            env::FAIL_SAFE_GRACE_MS,
            "fail_safe_grace_ms",
        )?;
        out.fail_safe_grace = Duration::from_millis(ms);
    }
    if let Some(p) = pick(
        flags.ttl_jitter_percent,
        env.ttl_jitter_percent,
        file.ttl_jitter_percent,
    ) {
        within(
            u64::from(p),
            u64::from(lwcache_domain::MAX_JITTER_PERCENT),
            "--ttl-jitter-percent",
            env::TTL_JITTER_PERCENT,
            "ttl_jitter_percent",
        )?;
        out.ttl_jitter_percent = p;
    }
    if let Some(ms) = pick(
        flags.negative_ttl_ms,
        env.negative_ttl_ms,
        file.negative_ttl_ms,
    ) {
        let ms = within(
            ms,
            MAX_NEGATIVE_TTL_MS,
            "--negative-ttl-ms",
            env::NEGATIVE_TTL_MS,
            "negative_ttl_ms",
        )?;
        out.negative_ttl = (ms > 0).then(|| Duration::from_millis(ms));
    }
    if let Some(ms) = pick(flags.lease_wait_ms, env.lease_wait_ms, file.lease_wait_ms) {
        let ms = within(
            ms,
            MAX_LEASE_WAIT_MS,
            "--lease-wait-ms",
            env::LEASE_WAIT_MS,
            "lease_wait_ms",
        )?;
        out.lease_wait = Duration::from_millis(ms);
    }
    out.near = near_settings(flags, env, file)?;
    Ok(out)
}

/// The near cache's settings: on when `near_cache_bytes` is above 0; its lag
/// bound must leave room for two heartbeats.
fn near_settings(
    flags: &Layer,
    env: &Layer,
    file: &Layer,
) -> Result<Option<NearSettings>, ConfigError> {
    let pick = |f: Option<u64>, e: Option<u64>, c: Option<u64>| f.or(e).or(c);
    let bytes_names = Names::new(
        "--near-cache-bytes",
        env::NEAR_CACHE_BYTES,
        "near_cache_bytes",
    );
    let lag_names = Names::new("--near-max-lag-ms", env::NEAR_MAX_LAG_MS, "near_max_lag_ms");
    let beat_names = Names::new(
        "--near-heartbeat-ms",
        env::NEAR_HEARTBEAT_MS,
        "near_heartbeat_ms",
    );
    let bytes = pick(
        flags.near_cache_bytes,
        env.near_cache_bytes,
        file.near_cache_bytes,
    )
    .unwrap_or(0);
    let lag = pick(
        flags.near_max_lag_ms,
        env.near_max_lag_ms,
        file.near_max_lag_ms,
    )
    .unwrap_or(u64::try_from(lwcache_core::near::DEFAULT_NEAR_MAX_LAG.as_millis()).unwrap_or(500));
    let beat = pick(
        flags.near_heartbeat_ms,
        env.near_heartbeat_ms,
        file.near_heartbeat_ms,
    )
    .unwrap_or(DEFAULT_NEAR_HEARTBEAT_MS);
    if bytes == 0 {
        return Ok(None);
    }
    if bytes < MIN_NEAR_CACHE_BYTES {
        return Err(bytes_names.invalid(
            bytes,
            &format!("0 (off) or at least {MIN_NEAR_CACHE_BYTES}"),
        ));
    }
    let bytes = usize::try_from(bytes)
        .map_err(|_| bytes_names.invalid(bytes, "a size this machine can address"))?;
    if lag == 0 || lag > MAX_NEAR_MAX_LAG_MS {
        return Err(lag_names.invalid(lag, &format!("from 1 to {MAX_NEAR_MAX_LAG_MS}")));
    }
    if beat == 0 || beat.saturating_mul(2) > lag {
        return Err(beat_names.invalid(
            beat,
            &format!("from 1 to half of the near cache's max lag ({lag} ms)"),
        ));
    }
    Ok(Some(NearSettings {
        bytes,
        max_lag: Duration::from_millis(lag),
        heartbeat: Duration::from_millis(beat),
    }))
}
