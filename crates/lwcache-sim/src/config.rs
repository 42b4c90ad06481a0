//! What one simulated run is made of: how many instances and clients, how
//! many operations, how often each fault strikes, and which deliberately
//! broken variant (if any) stands in for a part of the protocol.

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
    /// of the cluster-wide faults: the store restarted empty, the store or
    /// the source unreachable from everyone for a while, an instance
    /// crashed.
    pub global: f64,
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
    };
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
}

impl SimConfig {
    /// The defaults for `seed`: 3 instances, 6 clients, 2,000 operations,
    /// the default fault rates, the sound protocol.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            ops: 2_000,
            instances: 3,
            clients: 6,
            faults: FaultRates::DEFAULT,
            variant: Variant::Sound,
            keep_trace: false,
        }
    }
}
