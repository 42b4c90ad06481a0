//! A deterministic simulation of lwcache's consistency protocol.
//!
//! Several instances, each its own [`lwcache_core::CacheManager`] (its own
//! write-behind queue, settler and replay loop), share one in-memory store
//! and one in-memory repository through fault-injecting decorators
//! ([`SimStore`], [`SimRepo`]). Everything runs on one current-thread tokio
//! runtime on the paused clock; every port call draws, from the run's seed,
//! yields around it and the fault it meets, so the seed alone decides the
//! interleaving and the faults, and a run replays exactly. The oracle
//! ([`oracle`]) checks every read against the domain's reference model and
//! the log of acknowledged writes, and checks at quiescence that every
//! cached entry equals the source. `docs/simulation.md` says why it is
//! built this way and what it covers.
//!
//! - [`config`]: a run's parameters, fault rates and broken variants;
//! - [`run`](run()): one seed; [`sweep`](mod@sweep): many seeds on threads, and the
//!   shrinking of a failing seed to its fewest operations;
//! - [`trace`]: the trace every run records (its hash always, its events on
//!   demand).

pub mod config;
mod ctx;
mod ops;
pub mod oracle;
mod repo;
mod run;
mod store;
pub mod sweep;
pub mod trace;

pub use config::{FaultRates, Known, SimConfig, Variant};
pub use oracle::{KnownIssue, Violation, ViolationKind};
pub use repo::SimRepo;
pub use run::{manager_config, run};
pub use store::SimStore;
pub use sweep::{Sweep, shrink, sweep};
pub use trace::{Event, Trace};

/// Why a run could not be made (not a finding about the protocol).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The tokio runtime would not start.
    #[error("could not start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The world could not be set up.
    #[error("could not set up the world: {0}")]
    Setup(String),
}

/// What one run counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Manager calls made: reads, writes, activations.
    pub ops: u64,
    /// Operations whose future a crash dropped.
    pub ops_dropped: u64,
    /// Reads answered (checked or failed).
    pub reads: u64,
    /// Reads that failed (the source unreachable).
    pub failed_reads: u64,
    /// Writes acknowledged.
    pub writes_acked: u64,
    /// Writes the source refused (a taken id, an unknown entity).
    pub writes_refused: u64,
    /// Writes that failed or timed out (their outcome unknown).
    pub writes_failed: u64,
    /// Acknowledged writes whose cache step failed.
    pub steps_failed: u64,
    /// Activations.
    pub activations: u64,
    /// Store calls that met a fault (failed, hung, lost their reply, landed
    /// late).
    pub store_faults: u64,
    /// Source calls that met a fault.
    pub source_faults: u64,
    /// Instances crashed.
    pub crashes: u64,
    /// Store restarts (everything lost).
    pub store_restarts: u64,
    /// Store outages for every instance.
    pub store_outages: u64,
    /// Source outages for every instance.
    pub source_outages: u64,
}

impl Stats {
    fn count_fault(&mut self, store: bool) {
        if store {
            self.store_faults += 1;
        } else {
            self.source_faults += 1;
        }
    }

    /// Every fault injected.
    pub fn faults(&self) -> u64 {
        self.store_faults
            + self.source_faults
            + self.crashes
            + self.store_restarts
            + self.store_outages
            + self.source_outages
    }

    /// Adds another run's counts.
    pub fn add(&mut self, other: &Stats) {
        self.ops += other.ops;
        self.ops_dropped += other.ops_dropped;
        self.reads += other.reads;
        self.failed_reads += other.failed_reads;
        self.writes_acked += other.writes_acked;
        self.writes_refused += other.writes_refused;
        self.writes_failed += other.writes_failed;
        self.steps_failed += other.steps_failed;
        self.activations += other.activations;
        self.store_faults += other.store_faults;
        self.source_faults += other.source_faults;
        self.crashes += other.crashes;
        self.store_restarts += other.store_restarts;
        self.store_outages += other.store_outages;
        self.source_outages += other.source_outages;
    }
}

/// What one run saw.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Its seed.
    pub seed: u64,
    /// Operations made.
    pub ops: u64,
    /// Simulated time, in milliseconds, quiescence included.
    pub sim_ms: u64,
    /// Reads checked by the oracle.
    pub checked: u64,
    /// Reads older than an acknowledged write inside the declared window
    /// (its cache step failed, the reader had not seen the fault, the owed
    /// step was not replayed yet).
    pub declared: u64,
    /// Violations, in the order found.
    pub violations: Vec<Violation>,
    /// The hash of the whole trace.
    pub trace_hash: u64,
    /// How many events the trace has.
    pub trace_len: u64,
    /// The trace's events, when kept.
    pub trace: Vec<Event>,
    /// Counts.
    pub stats: Stats,
}

impl RunReport {
    /// Whether the run found a violation that is not a known issue.
    pub fn failed(&self) -> bool {
        self.violations.iter().any(|v| v.known.is_none())
    }

    /// Violations that match a known issue (not exposed).
    pub fn known(&self) -> usize {
        self.violations.iter().filter(|v| v.known.is_some()).count()
    }
}
