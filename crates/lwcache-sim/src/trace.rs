//! The trace of a run: every operation's start and end, every port call
//! with the fault it met, every cluster-wide fault, in the order they
//! happened. Two runs of one seed give equal traces; the hash of a trace
//! stands for it when the whole is not kept.

use std::fmt;
use std::hash::{Hash, Hasher};

/// Which port call a trace line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Port {
    /// `CacheStore::get`.
    Get,
    /// `CacheStore::get_many`.
    GetMany,
    /// `CacheStore::write`, a fill.
    Fill,
    /// `CacheStore::write`, a commit.
    Commit,
    /// `CacheStore::lease`.
    Lease,
    /// `CacheStore::version`.
    StoreVersion,
    /// `CacheStore::epoch`.
    Epoch,
    /// `CacheStore::remove`.
    Remove,
    /// `CacheStore::drop_world`.
    DropWorld,
    /// `CacheStore::ping`.
    StorePing,
    /// `WorldRepository::version`.
    SourceVersion,
    /// `WorldRepository::read`.
    Read,
    /// `WorldRepository::read_many`.
    ReadMany,
    /// `WorldRepository::image`.
    Image,
    /// `WorldRepository::apply`.
    Apply,
    /// `WorldRepository::owed`.
    Owed,
    /// `WorldRepository::settle`.
    Settle,
    /// `WorldRepository::ping`.
    SourcePing,
}

/// What a port call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Nothing but seeded yields.
    None,
    /// A delay of this many milliseconds before the call.
    Delay(u64),
    /// An immediate failure.
    Fail,
    /// No answer before the manager's timeout; the call never lands.
    Hang,
    /// The call landed; its answer came after the manager's timeout.
    LostReply,
    /// The caller gave up; the call lands this many milliseconds later.
    Late(u64),
    /// The instance crashed right after the call.
    Crash,
    /// The port is down for everyone (a cluster-wide outage).
    Outage,
    /// The instance had crashed: the call never happens.
    Dead,
}

/// One line of a trace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Event {
    /// Simulated milliseconds since the run started.
    pub at_ms: u64,
    /// What happened.
    pub what: What,
}

/// What one trace line records.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum What {
    /// A client started an operation on an instance (`slot`, incarnation
    /// `life`).
    Start {
        /// The operation's number in the run.
        op: u64,
        /// The instance.
        slot: usize,
        /// Its incarnation.
        life: u32,
        /// What it does, e.g. `read entity character:c1`.
        desc: String,
    },
    /// The operation ended.
    End {
        /// The operation's number.
        op: u64,
        /// How: `hit v12`, `acked v13 Applied`, `error ...`.
        result: String,
    },
    /// A port call made by an instance.
    Call {
        /// The instance.
        slot: usize,
        /// Its incarnation.
        life: u32,
        /// The call.
        port: Port,
        /// The key (the first one), when the call names keys.
        key: Option<String>,
        /// The fault it met.
        fault: Fault,
    },
    /// A cluster-wide fault or a recovery step.
    Global(String),
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>8}ms ", self.at_ms)?;
        match &self.what {
            What::Start {
                op,
                slot,
                life,
                desc,
            } => write!(f, "op {op} start on i{slot}.{life}: {desc}"),
            What::End { op, result } => write!(f, "op {op} end: {result}"),
            What::Call {
                slot,
                life,
                port,
                key,
                fault,
            } => {
                write!(f, "  i{slot}.{life} {port:?}")?;
                if let Some(key) = key {
                    write!(f, " {key}")?;
                }
                if *fault != Fault::None {
                    write!(f, " <- {fault:?}")?;
                }
                Ok(())
            }
            What::Global(text) => write!(f, "** {text}"),
        }
    }
}

/// A run's trace: the events when kept, and always their hash.
#[derive(Debug, Clone)]
pub struct Trace {
    keep: bool,
    events: Vec<Event>,
    hasher: Fnv,
    len: u64,
}

impl Trace {
    /// An empty trace that keeps its events when `keep`.
    pub fn new(keep: bool) -> Self {
        Self {
            keep,
            events: Vec::new(),
            hasher: Fnv::default(),
            len: 0,
        }
    }

    /// Appends an event.
    pub fn push(&mut self, event: Event) {
        event.hash(&mut self.hasher);
        self.len += 1;
        if self.keep {
            self.events.push(event);
        }
    }

    /// The events kept (none unless asked for).
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// How many events there were.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether there were none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The hash of every event, in order.
    pub fn hash(&self) -> u64 {
        self.hasher.finish()
    }
}

/// FNV-1a, 64 bits: a hasher with no random key, so that a trace hashes to
/// the same value in every process.
#[derive(Debug, Clone)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}
