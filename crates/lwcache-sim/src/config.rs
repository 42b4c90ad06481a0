//! What one simulated run is made of: how many instances and clients, how
//! many operations, how often each fault strikes, and which deliberately
//! broken variant (if any) stands in for a part of the protocol.

use crate::oracle::KnownIssue;

/// A deliberately broken part of the protocol, to prove that the oracle
/// notices it. [`Variant::Sound`] is the protocol as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The protocol as built.
    Sound,
    /// The store accepts every fill, whatever its lease or version: a fill
    /// becomes an unconditional put.
    FillsIgnoreLeases,
    /// Write-behind keys are served older than an acknowledged write while
    /// their refill is queued (`StaleReads::WhileQueued`): the documented
    /// opt-in, which the oracle does not declare.
    StaleWhileQueued,
    /// The repository records no owed step: every write's outbox entry is
    /// removed in the write's own transaction.
    ForgetOwed,
}

impl Variant {
    /// Every broken variant.
    pub const BROKEN: [Variant; 3] = [
        Variant::FillsIgnoreLeases,
        Variant::StaleWhileQueued,
        Variant::ForgetOwed,
    ];

    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Sound => "sound",
            Variant::FillsIgnoreLeases => "fills-ignore-leases",
            Variant::StaleWhileQueued => "stale-while-queued",
            Variant::ForgetOwed => "forget-owed",
        }
    }

    /// The variant named `name`.
    pub fn parse(name: &str) -> Option<Variant> {
        [Variant::Sound]
            .into_iter()
            .chain(Variant::BROKEN)
            .find(|v| v.as_str() == name)
    }
}

/// How often each fault strikes, as probabilities per port call or per
/// scheduler step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultRates {
    /// A store call fails at once (connection refused).
    pub store_fail: f64,
    /// A store call hangs past the manager's cache timeout, never landing.
    pub store_hang: f64,
    /// A store call lands, but its answer comes after the cache timeout.
    pub store_lost_reply: f64,
    /// A store write is sent, the caller gives up, and it lands later, as
    /// commands already in a socket do.
    pub store_late: f64,
    /// A store call is delayed (under or near the cache timeout).
    pub store_delay: f64,
    /// A source call fails at once.
    pub source_fail: f64,
    /// A source call hangs past the manager's source timeout.
    pub source_hang: f64,
    /// A source write commits, but its answer comes after the source
    /// timeout.
    pub source_lost_reply: f64,
    /// The instance making a port call crashes right after it (its futures
    /// dropped, its tasks dead).
    pub crash_at_call: f64,
    /// Each scheduler step (every 10–300 ms of simulated time) injects one
    /// of the cluster-wide faults with this chance, picked by the weights
    /// below: the store restarted empty, the store or the source
    /// unreachable from everyone for a while, an instance crashed.
    pub global: f64,
    /// Weight of a store restart (everything lost, leases included).
    pub restart_weight: u32,
    /// Weight of a store outage for every instance.
    pub store_outage_weight: u32,
    /// Weight of a source outage for every instance.
    pub source_outage_weight: u32,
    /// Weight of an instance crash.
    pub crash_weight: u32,
}

impl FaultRates {
    /// The rates the quick and full runs use.
    pub const DEFAULT: FaultRates = FaultRates {
        store_fail: 0.004,
        store_hang: 0.002,
        store_lost_reply: 0.002,
        store_late: 0.002,
        store_delay: 0.03,
        source_fail: 0.003,
        source_hang: 0.001,
        source_lost_reply: 0.001,
        crash_at_call: 0.0005,
        global: 0.25,
        restart_weight: 20,
        store_outage_weight: 30,
        source_outage_weight: 15,
        crash_weight: 35,
    };

    /// No fault at all: only the seeded yields and short delays.
    pub const NONE: FaultRates = FaultRates {
        store_fail: 0.0,
        store_hang: 0.0,
        store_lost_reply: 0.0,
        store_late: 0.0,
        store_delay: 0.0,
        source_fail: 0.0,
        source_hang: 0.0,
        source_lost_reply: 0.0,
        crash_at_call: 0.0,
        global: 0.0,
        restart_weight: 0,
        store_outage_weight: 0,
        source_outage_weight: 0,
        crash_weight: 0,
    };
}

/// The violations the protocol was found to have (`docs/simulation.md`
/// describes each, and its fix), and whether each counts: an issue not
/// exposed is recognised by its signature and reported apart without
/// failing the run (or, for `commit_across_restart`, its trigger is left
/// out), so that a sweep of a protocol that still has one fails only on
/// what is new. Each has a regression test that exposes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Known {
    /// Re-create (create, or put on a free id) an entity that was deleted:
    /// while the delete's step is owed, the old timeline is served after
    /// the create's acknowledgement.
    pub recreate_after_delete: bool,
    /// The store down for every instance at once: an instance that saw the
    /// outage through a read leaves trouble while other writers' young
    /// failed steps are still owed.
    pub outage_for_everyone: bool,
    /// A store write delayed before it is sent, across a store restart: an
    /// older commit lands after the newer entry was lost.
    pub commit_across_restart: bool,
}

impl Known {
    /// Every known violation exposed.
    pub const ALL: Known = Known {
        recreate_after_delete: true,
        outage_for_everyone: true,
        commit_across_restart: true,
    };

    /// None exposed.
    pub const NONE: Known = Known {
        recreate_after_delete: false,
        outage_for_everyone: false,
        commit_across_restart: false,
    };

    /// What every run exposes: the issues the protocol has fixed, so that
    /// a regression fails the run (a re-created entity's timeline, trouble
    /// ending while failed steps are owed, an older commit landing after a
    /// store restart). Every known issue is fixed: this is [`Known::ALL`].
    pub const FIXED: Known = Known::ALL;

    /// `self` with `issue` exposed as well.
    pub fn with(mut self, issue: KnownIssue) -> Known {
        match issue {
            KnownIssue::RecreateAfterDelete => self.recreate_after_delete = true,
            KnownIssue::OutageForEveryone => self.outage_for_everyone = true,
            KnownIssue::CommitAcrossRestart => self.commit_across_restart = true,
        }
        self
    }
}

/// One simulated run.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// The seed every draw comes from.
    pub seed: u64,
    /// Manager calls to make (reads, writes, activations), over every
    /// client.
    pub ops: u64,
    /// Cache manager instances over the one store and repository.
    pub instances: usize,
    /// Concurrent clients; each picks an instance per operation.
    pub clients: usize,
    /// Fault rates.
    pub faults: FaultRates,
    /// The protocol, or a broken variant of it.
    pub variant: Variant,
    /// Whether to keep the whole trace (for printing); the trace's hash is
    /// always kept.
    pub keep_trace: bool,
    /// Which known violations the workload and faults may meet.
    pub known: Known,
}

impl SimConfig {
    /// The run that aims at a known issue: the issue exposed, and the
    /// faults that meet it made more frequent. What the issue's regression
    /// test runs, and what `--aim NAME` replays.
    pub fn aimed_at(seed: u64, issue: KnownIssue) -> Self {
        let mut config = SimConfig::new(seed);
        config.known = Known::FIXED.with(issue);
        config.faults = match issue {
            KnownIssue::RecreateAfterDelete => FaultRates {
                source_lost_reply: 0.01,
                crash_at_call: 0.002,
                ..FaultRates::DEFAULT
            },
            KnownIssue::OutageForEveryone => FaultRates {
                global: 0.5,
                store_outage_weight: 80,
                ..FaultRates::DEFAULT
            },
            KnownIssue::CommitAcrossRestart => FaultRates {
                global: 0.5,
                restart_weight: 60,
                store_delay: 0.1,
                ..FaultRates::DEFAULT
            },
        };
        config
    }

    /// The defaults for `seed`: 3 instances, 6 clients, 2,000 operations,
    /// the default fault rates, the sound protocol, no known violation
    /// exposed.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            ops: 2_000,
            instances: 3,
            clients: 6,
            faults: FaultRates::DEFAULT,
            variant: Variant::Sound,
            keep_trace: false,
            known: Known::FIXED,
        }
    }
}
