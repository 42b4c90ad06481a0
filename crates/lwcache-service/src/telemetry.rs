//! Telemetry: the tracing subscriber, the metrics sink the cache manager
//! reports to, and the Prometheus text served at `GET /metrics`.
//!
//! This version keeps in-process [`Counters`] and writes logs to stderr with
//! `tracing_subscriber::fmt`; an OpenTelemetry set-up can replace it behind
//! the same interface.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::sync::Arc;

use lwcache_core::{Counters, MetricsSink};
use tracing_subscriber::filter::LevelFilter;

/// How telemetry is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// The most verbose level logged (`LWCACHE_LOG`, default `info`).
    pub level: String,
}

impl TelemetryConfig {
    /// Reads `LWCACHE_LOG` (`error`, `warn`, `info`, `debug`, `trace` or
    /// `off`); anything else is reported by [`Telemetry::install`].
    pub fn from_env() -> Self {
        Self {
            level: std::env::var("LWCACHE_LOG").unwrap_or_else(|_| "info".to_owned()),
        }
    }
}

/// Why telemetry could not be installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The log level is not one of the known levels.
    #[error("invalid log level {0:?}: use error, warn, info, debug, trace or off")]
    Level(String),
    /// A global tracing subscriber was installed already.
    #[error("a tracing subscriber is already installed: {0}")]
    Subscriber(String),
}

/// Installed telemetry: the metrics sink and its Prometheus text.
#[derive(Debug)]
pub struct Telemetry {
    counters: Arc<Counters>,
}

impl Telemetry {
    /// Installs the global tracing subscriber (logs on stderr) and creates
    /// the metrics sink.
    pub fn install(config: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
        let level: LevelFilter = config
            .level
            .trim()
            .parse()
            .map_err(|_| TelemetryError::Level(config.level.clone()))?;
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
            .map_err(|e| TelemetryError::Subscriber(e.to_string()))?;
        Ok(Telemetry {
            counters: Arc::new(Counters::new()),
        })
    }

    /// The sink the cache manager reports to.
    pub fn metrics(&self) -> Arc<dyn MetricsSink> {
        self.counters.clone()
    }

    /// The counters in the Prometheus text exposition format.
    pub fn prometheus_text(&self) -> String {
        let s = self.counters.snapshot();
        let rows: [(&str, &str, u64); 10] = [
            (
                "lwcache_cache_hits_total",
                "Reads served from the cache.",
                s.hits,
            ),
            (
                "lwcache_cache_misses_total",
                "Reads that missed and were served by the source.",
                s.misses,
            ),
            (
                "lwcache_cache_stale_total",
                "Reads served from an entry older than a queued write-behind update.",
                s.stale,
            ),
            (
                "lwcache_cache_fallbacks_total",
                "Reads served by the source because the cache failed.",
                s.fallbacks,
            ),
            (
                "lwcache_invalidations_total",
                "Cached values rewritten or deleted.",
                s.invalidations,
            ),
            (
                "lwcache_warm_count_total",
                "Keys prefilled by warming.",
                s.warm_count,
            ),
            (
                "lwcache_fills_rejected_total",
                "Fills that lost against a newer write.",
                s.fills_rejected,
            ),
            (
                "lwcache_decode_failures_total",
                "Cache entries that failed to decode.",
                s.decode_failures,
            ),
            (
                "lwcache_cache_errors_total",
                "Failed cache store calls.",
                s.cache_errors,
            ),
            (
                "lwcache_write_behind_dropped_total",
                "Write-behind updates that found the queue full.",
                s.write_behind_dropped,
            ),
        ];
        let mut out = String::new();
        for (name, help, value) in rows {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }

    /// Flushes and stops telemetry.
    pub fn shutdown(self) {}
}
