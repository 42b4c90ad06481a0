//! lwcache's metrics port on the OpenTelemetry metrics API.
//!
//! [`OtelMetrics`] turns the cache manager's [`MetricEvent`]s into
//! OpenTelemetry instruments created once from any [`Meter`]. This crate
//! depends on the API only: with no SDK installed every instrument is a
//! no-op, and the binary alone picks the SDK and its exporters (Prometheus
//! text, OTLP). `docs/metrics.md` lists every metric.
//!
//! Recording is on the hot path of every read, so the attribute sets are
//! built once, at construction, for every key kind, cause and stage: an
//! event only picks a prebuilt slice.
//!
//! Every counter and gauge is recorded at construction, at 0, for each of
//! its attribute sets, so that an exporter shows every series from the
//! start (a dashboard's rate is then 0, not "no data"). Histograms are not:
//! an observation at construction would be a false one.
//!
//! [`AdminMetrics`] counts the service's admin operations.

use lwcache_core::{BreakerState, MetricEvent, MetricsSink, Stage};
use lwcache_domain::{InvalidationCause, KeyKind};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};

/// The metric names, as the OpenTelemetry instruments call them.
///
/// A Prometheus exposition adds `_total` to counters and the unit to the
/// histogram (`cache_stage_duration_seconds`).
pub mod name {
    /// Reads served by the cache.
    pub const CACHE_HITS: &str = "cache_hits";
    /// Reads the cache could not serve: served by the source, then filled.
    pub const CACHE_MISSES: &str = "cache_misses";
    /// Reads served from an entry older than a pending write-behind update.
    pub const CACHE_STALE_READS: &str = "cache_stale_reads";
    /// Reads served by the source because the cache failed.
    pub const CACHE_FALLBACKS: &str = "cache_fallbacks";
    /// Cached values rewritten or deleted.
    pub const INVALIDATIONS: &str = "invalidations";
    /// Keys prefilled by warming.
    pub const WARM_COUNT: &str = "warm_count";
    /// Fills not stored because a newer write was seen.
    pub const CACHE_FILLS_REJECTED: &str = "cache_fills_rejected";
    /// Failed cache store calls.
    pub const CACHE_ERRORS: &str = "cache_errors";
    /// Write-behind updates that found the queue full.
    pub const WRITE_BEHIND_DROPS: &str = "write_behind_drops";
    /// Write-behind updates waiting.
    pub const WRITE_BEHIND_DEPTH: &str = "write_behind_depth";
    /// Owed cache steps carried out by the outbox replay.
    pub const OUTBOX_REPLAYED: &str = "outbox_replayed";
    /// Worlds whose cache was dropped: their source went back in time, or the
    /// store refused their owed steps.
    pub const WORLDS_DROPPED: &str = "worlds_dropped";
    /// 1 while the cache is in trouble (reads go to the source), else 0.
    pub const CACHE_TROUBLE: &str = "cache_trouble";
    /// How long a stage took.
    pub const CACHE_STAGE_DURATION: &str = "cache_stage_duration";
    // Fail-safe reads and stampede control.
    /// Reads served from an entry past its TTL because the source failed.
    pub const CACHE_FAIL_SAFE_SERVES: &str = "cache_fail_safe_serves";
    /// Misses that took another read's result in the same process.
    pub const CACHE_COALESCED_MISSES: &str = "cache_coalesced_misses";
    /// Misses that waited for another process's fill (its lease).
    pub const CACHE_LEASE_WAITS: &str = "cache_lease_waits";
    /// Reads answered by a negative entry (no such entity).
    pub const CACHE_NEGATIVE_HITS: &str = "cache_negative_hits";
    /// Reads answered by the near cache (also counted in `cache_hits`).
    pub const CACHE_NEAR_HITS: &str = "cache_near_hits";
    /// Popular keys refreshed before their TTL ended.
    pub const CACHE_REFRESHES: &str = "cache_refreshes";

    // The circuit breaker around the cache store.
    /// The breaker's state: 0 closed, 1 half-open, 2 open.
    pub const CACHE_BREAKER_STATE: &str = "cache_breaker_state";
    /// The breaker's moves, by the state moved to.
    pub const CACHE_BREAKER_TRANSITIONS: &str = "cache_breaker_transitions";
    /// Cache calls failed at once by the open breaker.
    pub const CACHE_BREAKER_REJECTED: &str = "cache_breaker_rejected";

    /// The service's admin operations, by operation and result.
    pub const ADMIN_OPERATIONS: &str = "admin_operations";
}

/// The attribute keys.
pub mod attr {
    /// The key kind: `state`, `flags`, `ver`, `timeline`, `character`,
    /// `location`, `object`.
    pub const KEY_KIND: &str = "key_kind";
    /// Why an entry was invalidated (`InvalidationCause::as_str`).
    pub const CAUSE: &str = "cause";
    /// The state a circuit breaker moved to (`BreakerState::as_str`).
    pub const TO: &str = "to";
    /// The measured stage (`Stage::as_str`).
    pub const STAGE: &str = "stage";
    /// How a lease wait ended (`filled` or `timed_out`), or an admin
    /// operation (`done` or `failed`).
    pub const RESULT: &str = "result";
    /// The admin operation (`AdminOperation::as_str`).
    pub const OPERATION: &str = "operation";
}

/// Every stage, in the order of [`stage_index`].
const STAGES: [Stage; 4] = [
    Stage::CacheRead,
    Stage::Fill,
    Stage::SourceRead,
    Stage::SourceWrite,
];

/// The histogram's bucket boundaries, in seconds: fine below a millisecond,
/// where cache reads land, coarse up to the source's timeouts.
pub const DURATION_BOUNDARIES: [f64; 16] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5,
];

fn kind_index(kind: KeyKind) -> usize {
    match kind {
        KeyKind::State => 0,
        KeyKind::Flags => 1,
        KeyKind::Version => 2,
        KeyKind::Timeline => 3,
        KeyKind::Character => 4,
        KeyKind::Location => 5,
        KeyKind::Object => 6,
    }
}

fn cause_index(cause: InvalidationCause) -> usize {
    match cause {
        InvalidationCause::EventAdded => 0,
        InvalidationCause::FlagChanged => 1,
        InvalidationCause::EntityMutated => 2,
        InvalidationCause::SnapshotReplaced => 3,
        InvalidationCause::DecodeFailure => 4,
        InvalidationCause::WriteBehindOverflow => 5,
    }
}

fn stage_index(stage: Stage) -> usize {
    match stage {
        Stage::CacheRead => 0,
        Stage::Fill => 1,
        Stage::SourceRead => 2,
        Stage::SourceWrite => 3,
    }
}

const KINDS: usize = KeyKind::ALL.len();
const CAUSES: usize = InvalidationCause::ALL.len();

/// A [`MetricsSink`] that records on OpenTelemetry instruments.
#[derive(Debug, Clone)]
pub struct OtelMetrics {
    hits: Counter<u64>,
    misses: Counter<u64>,
    stale: Counter<u64>,
    fallbacks: Counter<u64>,
    invalidations: Counter<u64>,
    warm_count: Counter<u64>,
    fills_rejected: Counter<u64>,
    cache_errors: Counter<u64>,
    write_behind_drops: Counter<u64>,
    write_behind_depth: Gauge<u64>,
    replayed: Counter<u64>,
    worlds_dropped: Counter<u64>,
    trouble: Gauge<u64>,
    stage_duration: Histogram<f64>,
    fail_safe: Counter<u64>,
    coalesced: Counter<u64>,
    lease_waits: Counter<u64>,
    negative_hits: Counter<u64>,
    near_hits: Counter<u64>,
    refreshes: Counter<u64>,
    /// `[key_kind, result]`, indexed by `kind_index * 2 + filled`.
    by_kind_wait: Vec<[KeyValue; 2]>,
    /// `[key_kind]`, indexed by [`kind_index`].
    by_kind: Vec<[KeyValue; 1]>,
    /// `[key_kind, cause]`, indexed by `kind_index * CAUSES + cause_index`.
    by_kind_cause: Vec<[KeyValue; 2]>,
    /// `[stage, key_kind]`, indexed by `stage_index * KINDS + kind_index`.
    by_stage_kind: Vec<[KeyValue; 2]>,

    breaker_state: Gauge<u64>,
    breaker_transitions: Counter<u64>,
    breaker_rejected: Counter<u64>,
    /// `[to]`, indexed by `BreakerState::level`.
    by_breaker: [[KeyValue; 1]; 3],
}

/// Every breaker state, in the order of `BreakerState::level`.
const BREAKER_STATES: [BreakerState; 3] = [
    BreakerState::Closed,
    BreakerState::HalfOpen,
    BreakerState::Open,
];

impl OtelMetrics {
    /// Creates every instrument on `meter`.
    pub fn new(meter: &Meter) -> Self {
        let counter = |name: &'static str, unit: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_unit(unit)
                .with_description(description)
                .build()
        };
        let kind_kv = |kind: KeyKind| KeyValue::new(attr::KEY_KIND, kind.as_str());
        let mut by_kind_cause = Vec::with_capacity(KINDS * CAUSES);
        for kind in KeyKind::ALL {
            for cause in InvalidationCause::ALL {
                by_kind_cause.push([kind_kv(kind), KeyValue::new(attr::CAUSE, cause.as_str())]);
            }
        }
        let mut by_stage_kind = Vec::with_capacity(STAGES.len() * KINDS);
        for stage in STAGES {
            for kind in KeyKind::ALL {
                by_stage_kind.push([KeyValue::new(attr::STAGE, stage.as_str()), kind_kv(kind)]);
            }
        }
        let mut by_kind_wait = Vec::with_capacity(KINDS * 2);
        for kind in KeyKind::ALL {
            for result in ["timed_out", "filled"] {
                by_kind_wait.push([kind_kv(kind), KeyValue::new(attr::RESULT, result)]);
            }
        }
        OtelMetrics {
            fail_safe: counter(
                name::CACHE_FAIL_SAFE_SERVES,
                "{read}",
                "Reads served from an entry past its TTL, marked stale, because the source failed.",
            ),
            coalesced: counter(
                name::CACHE_COALESCED_MISSES,
                "{read}",
                "Misses that took another concurrent read's result in the same process instead of reading the source.",
            ),
            lease_waits: counter(
                name::CACHE_LEASE_WAITS,
                "{read}",
                "Misses that waited for another process's fill of the key, by whether it came in time.",
            ),
            negative_hits: counter(
                name::CACHE_NEGATIVE_HITS,
                "{read}",
                "Reads answered by a cached 'no such entity'.",
            ),
            near_hits: counter(
                name::CACHE_NEAR_HITS,
                "{read}",
                "Reads answered by the near cache, without a round trip (also in cache_hits).",
            ),
            refreshes: counter(
                name::CACHE_REFRESHES,
                "{refresh}",
                "Popular keys refreshed from the source shortly before their TTL ended.",
            ),
            by_kind_wait,
            hits: counter(name::CACHE_HITS, "{read}", "Reads served by the cache."),
            misses: counter(
                name::CACHE_MISSES,
                "{read}",
                "Reads the cache could not serve: served by the source, then filled.",
            ),
            stale: counter(
                name::CACHE_STALE_READS,
                "{read}",
                "Reads served from a cache entry older than a pending write-behind update.",
            ),
            fallbacks: counter(
                name::CACHE_FALLBACKS,
                "{read}",
                "Reads served by the source because the cache failed.",
            ),
            invalidations: counter(
                name::INVALIDATIONS,
                "{key}",
                "Cached values rewritten or deleted, by key kind and cause.",
            ),
            warm_count: counter(name::WARM_COUNT, "{key}", "Keys prefilled by warming."),
            fills_rejected: counter(
                name::CACHE_FILLS_REJECTED,
                "{fill}",
                "Fills not stored because the cache had seen a newer write.",
            ),
            cache_errors: counter(name::CACHE_ERRORS, "{call}", "Failed cache store calls."),
            write_behind_drops: counter(
                name::WRITE_BEHIND_DROPS,
                "{update}",
                "Write-behind updates that found the queue full and became invalidations.",
            ),
            write_behind_depth: meter
                .u64_gauge(name::WRITE_BEHIND_DEPTH)
                .with_unit("{update}")
                .with_description("Write-behind updates waiting.")
                .build(),
            replayed: counter(
                name::OUTBOX_REPLAYED,
                "{step}",
                "Owed cache steps carried out by the outbox replay: steps a crash or an unreachable cache left undone.",
            ),
            worlds_dropped: counter(
                name::WORLDS_DROPPED,
                "{world}",
                "Worlds whose cache was dropped: by a caller (an operator, a source started afresh), because the source's version went back, or because the store refused their owed steps.",
            ),
            trouble: meter
                .u64_gauge(name::CACHE_TROUBLE)
                .with_unit("1")
                .with_description("1 while a cache call has failed and owed steps are not yet replayed: reads go to the source.")
                .build(),
            stage_duration: meter
                .f64_histogram(name::CACHE_STAGE_DURATION)
                .with_unit("s")
                .with_description(
                    "How long a stage took: cache reads, fills, source reads and source writes.",
                )
                .with_boundaries(DURATION_BOUNDARIES.to_vec())
                .build(),
            by_kind: KeyKind::ALL.into_iter().map(|k| [kind_kv(k)]).collect(),
            by_kind_cause,
            by_stage_kind,

            breaker_state: meter
                .u64_gauge(name::CACHE_BREAKER_STATE)
                .with_unit("1")
                .with_description("The cache circuit breaker: 0 closed, 1 half-open (one probe under way), 2 open (cache calls fail at once).")
                .build(),
            breaker_transitions: counter(
                name::CACHE_BREAKER_TRANSITIONS,
                "{transition}",
                "Moves of the cache circuit breaker, by the state moved to.",
            ),
            breaker_rejected: counter(
                name::CACHE_BREAKER_REJECTED,
                "{call}",
                "Cache calls failed at once, without reaching the store, by the open breaker.",
            ),
            by_breaker: BREAKER_STATES.map(|s| [KeyValue::new(attr::TO, s.as_str())]),
        }
        .start_at_zero()
    }

    fn kind(&self, kind: KeyKind) -> &[KeyValue] {
        &self.by_kind[kind_index(kind)]
    }

    /// Records every counter at 0 and every gauge at its starting value,
    /// for each attribute set.
    fn start_at_zero(self) -> Self {
        let by_kind = [
            &self.hits,
            &self.misses,
            &self.stale,
            &self.fallbacks,
            &self.fills_rejected,
            &self.fail_safe,
            &self.coalesced,
            &self.negative_hits,
            &self.near_hits,
            &self.refreshes,
        ];
        for counter in by_kind {
            for attrs in &self.by_kind {
                counter.add(0, attrs);
            }
        }
        for attrs in &self.by_kind_cause {
            self.invalidations.add(0, attrs);
        }
        for attrs in &self.by_kind_wait {
            self.lease_waits.add(0, attrs);
        }
        for attrs in &self.by_breaker {
            self.breaker_transitions.add(0, attrs);
        }
        for counter in [
            &self.warm_count,
            &self.cache_errors,
            &self.write_behind_drops,
            &self.replayed,
            &self.worlds_dropped,
            &self.breaker_rejected,
        ] {
            counter.add(0, &[]);
        }
        self.write_behind_depth.record(0, &[]);
        self.trouble.record(0, &[]);
        self.breaker_state.record(BreakerState::Closed.level(), &[]);
        self
    }
}

/// An admin operation of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminOperation {
    /// Every key of one world deleted.
    DropWorld,
    /// One key deleted.
    EvictKey,
    /// A world's refreshing and warming stopped.
    DeactivateWorld,
}

impl AdminOperation {
    /// Every operation, in the order of their attribute sets.
    pub const ALL: [AdminOperation; 3] = [
        AdminOperation::DropWorld,
        AdminOperation::EvictKey,
        AdminOperation::DeactivateWorld,
    ];

    /// The label: `drop_world`, `evict_key`, `deactivate_world`.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminOperation::DropWorld => "drop_world",
            AdminOperation::EvictKey => "evict_key",
            AdminOperation::DeactivateWorld => "deactivate_world",
        }
    }

    fn index(self) -> usize {
        match self {
            AdminOperation::DropWorld => 0,
            AdminOperation::EvictKey => 1,
            AdminOperation::DeactivateWorld => 2,
        }
    }
}

/// Counts admin operations on `admin_operations{operation, result}`, every
/// series from 0.
#[derive(Debug, Clone)]
pub struct AdminMetrics {
    operations: Counter<u64>,
    /// `[operation, result]`, indexed by `index * 2 + done`.
    by_op: Vec<[KeyValue; 2]>,
}

impl AdminMetrics {
    /// Creates the counter on `meter`, each series at 0.
    pub fn new(meter: &Meter) -> Self {
        let operations = meter
            .u64_counter(name::ADMIN_OPERATIONS)
            .with_unit("{operation}")
            .with_description("Admin operations of the service, by operation and result.")
            .build();
        let mut by_op = Vec::with_capacity(AdminOperation::ALL.len() * 2);
        for op in AdminOperation::ALL {
            for result in ["failed", "done"] {
                by_op.push([
                    KeyValue::new(attr::OPERATION, op.as_str()),
                    KeyValue::new(attr::RESULT, result),
                ]);
            }
        }
        for attrs in &by_op {
            operations.add(0, attrs);
        }
        AdminMetrics { operations, by_op }
    }

    /// Counts one operation: `done` or `failed`.
    pub fn record(&self, op: AdminOperation, done: bool) {
        self.operations
            .add(1, &self.by_op[op.index() * 2 + usize::from(done)]);
    }
}

impl MetricsSink for OtelMetrics {
    fn record(&self, event: MetricEvent) {
        match event {
            MetricEvent::Hit(kind) => self.hits.add(1, self.kind(kind)),
            MetricEvent::NearHit(kind) => {
                self.hits.add(1, self.kind(kind));
                self.near_hits.add(1, self.kind(kind));
            }
            MetricEvent::Miss(kind) => self.misses.add(1, self.kind(kind)),
            MetricEvent::Stale(kind) => self.stale.add(1, self.kind(kind)),
            MetricEvent::Fallback(kind) => self.fallbacks.add(1, self.kind(kind)),
            MetricEvent::FillRejected(kind) => self.fills_rejected.add(1, self.kind(kind)),
            MetricEvent::Invalidation(kind, cause) => self.invalidations.add(
                1,
                &self.by_kind_cause[kind_index(kind) * CAUSES + cause_index(cause)],
            ),
            MetricEvent::Warmed(n) => self.warm_count.add(n, &[]),
            MetricEvent::CacheError => self.cache_errors.add(1, &[]),
            MetricEvent::WriteBehindDropped => self.write_behind_drops.add(1, &[]),
            MetricEvent::Replayed(n) => self.replayed.add(n, &[]),
            MetricEvent::WorldDropped => self.worlds_dropped.add(1, &[]),
            MetricEvent::Trouble(on) => self.trouble.record(u64::from(on), &[]),
            MetricEvent::WriteBehindDepth(depth) => self
                .write_behind_depth
                .record(u64::try_from(depth).unwrap_or(u64::MAX), &[]),
            MetricEvent::Latency(stage, kind, took) => self.stage_duration.record(
                took.as_secs_f64(),
                &self.by_stage_kind[stage_index(stage) * KINDS + kind_index(kind)],
            ),
            MetricEvent::FailSafe(kind) => self.fail_safe.add(1, self.kind(kind)),
            MetricEvent::Coalesced(kind) => self.coalesced.add(1, self.kind(kind)),
            MetricEvent::LeaseWait(kind, filled) => self.lease_waits.add(
                1,
                &self.by_kind_wait[kind_index(kind) * 2 + usize::from(filled)],
            ),
            MetricEvent::NegativeHit(kind) => self.negative_hits.add(1, self.kind(kind)),
            MetricEvent::Refreshed(kind) => self.refreshes.add(1, self.kind(kind)),
            MetricEvent::Breaker(state) => {
                self.breaker_state.record(state.level(), &[]);
                let to = usize::try_from(state.level()).unwrap_or(0);
                self.breaker_transitions.add(1, &self.by_breaker[to]);
            }
            MetricEvent::BreakerRejected => self.breaker_rejected.add(1, &[]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prebuilt_attributes_match_every_index() {
        let m = OtelMetrics::new(&opentelemetry::global::meter("lwcache-test"));
        for kind in KeyKind::ALL {
            assert_eq!(m.kind(kind)[0].value.as_str(), kind.as_str());
            for cause in InvalidationCause::ALL {
                let kv = &m.by_kind_cause[kind_index(kind) * CAUSES + cause_index(cause)];
                assert_eq!(kv[0].value.as_str(), kind.as_str());
                assert_eq!(kv[1].value.as_str(), cause.as_str());
            }
            for (filled, result) in [(false, "timed_out"), (true, "filled")] {
                let kv = &m.by_kind_wait[kind_index(kind) * 2 + usize::from(filled)];
                assert_eq!(kv[0].value.as_str(), kind.as_str());
                assert_eq!(kv[1].value.as_str(), result);
            }
            for state in BREAKER_STATES {
                let kv = &m.by_breaker[usize::try_from(state.level()).unwrap_or(0)];
                assert_eq!(kv[0].value.as_str(), state.as_str());
            }
            for stage in STAGES {
                let kv = &m.by_stage_kind[stage_index(stage) * KINDS + kind_index(kind)];
                assert_eq!(kv[0].value.as_str(), stage.as_str());
                assert_eq!(kv[1].value.as_str(), kind.as_str());
            }
        }
        let admin = AdminMetrics::new(&opentelemetry::global::meter("lwcache-test"));
        for op in AdminOperation::ALL {
            for (done, result) in [(false, "failed"), (true, "done")] {
                let kv = &admin.by_op[op.index() * 2 + usize::from(done)];
                assert_eq!(kv[0].value.as_str(), op.as_str());
                assert_eq!(kv[1].value.as_str(), result);
            }
        }
    }
}
