//! The read settings: fail-safe answers, TTL jitter, negative entries and
//! the lease wait, resolved from the flags, the environment and the file.

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
}

impl Default for ReadSettings {
    fn default() -> Self {
        let config = lwcache_core::ManagerConfig::default();
        let expiry = config.policy.expiry;
        Self {
            fail_safe_grace: expiry.grace,
            ttl_jitter_percent: expiry.jitter_percent,
            negative_ttl: expiry.negative_ttl,
            lease_wait: config.lease_wait,
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
    Ok(out)
}
