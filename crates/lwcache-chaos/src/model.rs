//! The checker's model: what was written, what was read, and whether each
//! read honoured read-your-writes.
//!
//! Keys are partitioned among writers, and one key's writes are issued one
//! after the other, each carrying the key's next sequence number (1, 2, ...)
//! in its value. That makes the check exact without knowing anything of the
//! cache: a read that starts after write #n of a key was acknowledged must
//! return the value of some write #m with m >= n. A write whose outcome is
//! unknown (an error, a timeout, a killed process) may or may not have
//! happened; its value counts as what it is, its sequence number, and it
//! never raises what a read must return.
//!
//! Times are microseconds since the run started, on one monotonic clock.

use serde::Serialize;

/// The four kinds of keys the workload writes and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A world snapshot: `PUT`/`GET state`.
    State,
    /// One flag: `PUT`/`GET flags/{flag}`.
    Flag,
    /// One entity's state: `PUT`/`GET characters|locations|objects/{id}`.
    Entity,
    /// One entity's recent timeline: `POST events`, `GET recent`.
    Timeline,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 4] = [Kind::State, Kind::Flag, Kind::Entity, Kind::Timeline];

    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::State => "state",
            Kind::Flag => "flag",
            Kind::Entity => "entity",
            Kind::Timeline => "timeline",
        }
    }
}

/// How one write attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged (2xx) at `at_us`, committed as world `version`.
    Acked {
        /// When the answer arrived.
        at_us: u64,
        /// The world version the service reported.
        version: u64,
    },
    /// An error or a timeout: it may or may not have been applied.
    Unknown,
}

/// One write attempt of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteAttempt {
    /// The key's sequence number carried in the value.
    pub seq: u64,
    /// When the request was sent.
    pub sent_us: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// Every write attempt of one key, in sequence order (attempt `i` carries
/// `seq = i + 1`).
#[derive(Debug, Clone, Default)]
pub struct KeyHistory {
    writes: Vec<WriteAttempt>,
    /// `(ack time, seq)` of acknowledged writes; both increase together,
    /// since one key's writes are issued one after the other.
    acked: Vec<(u64, u64)>,
}

/// What a successful read returned, reduced to what the check needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A single value: the sequence number it carries, 0 for the value
    /// before any write (an unset flag).
    Register(u64),
    /// A recent timeline: the sequence numbers of its events as listed,
    /// whether their world versions were strictly decreasing (newest
    /// first), and the `limit` asked for.
    Timeline {
        /// Sequence numbers, in the order listed.
        seqs: Vec<u64>,
        /// World versions strictly decreasing down the list.
        newest_first: bool,
        /// The `limit` of the request.
        limit: usize,
    },
}

/// The verdict on one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It returned a value at least as new as every write acknowledged
    /// before it started.
    Consistent,
    /// It returned an older value than a write acknowledged before it.
    Stale(Staleness),
    /// A timeline that is not newest first.
    Unordered,
    /// A timeline whose newest entries are newer than the expected event,
    /// yet the expected event is missing from it.
    Missing {
        /// The sequence number that should be listed.
        expected: u64,
    },
    /// A value that no write had carried when the read ended.
    Phantom {
        /// The sequence number returned.
        got: u64,
    },
}

/// How stale a stale read was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Staleness {
    /// The newest sequence number acknowledged before the read started.
    pub expected: u64,
    /// The sequence number it returned (0: the value before any write).
    pub got: u64,
    /// How long before the read's start the first write newer than `got`
    /// had been acknowledged.
    pub behind_us: u64,
    /// How many of the key's writes it missed: `expected - got`.
    pub versions: u64,
}

impl Verdict {
    /// How long the read was behind: 0 unless stale; unordered, missing and
    /// phantom answers are wrong at any horizon, so they count as forever.
    pub fn behind_us(&self) -> u64 {
        match self {
            Verdict::Consistent => 0,
            Verdict::Stale(s) => s.behind_us,
            Verdict::Unordered | Verdict::Missing { .. } | Verdict::Phantom { .. } => u64::MAX,
        }
    }
}

impl KeyHistory {
    /// Records the next attempt; `seq` must be one more than the last.
    /// Returns false (and records nothing) otherwise.
    pub fn push(&mut self, attempt: WriteAttempt) -> bool {
        if attempt.seq != self.writes.len() as u64 + 1 {
            return false;
        }
        if let Outcome::Acked { at_us, .. } = attempt.outcome {
            self.acked.push((at_us, attempt.seq));
        }
        self.writes.push(attempt);
        true
    }

    /// The next sequence number to write.
    pub fn next_seq(&self) -> u64 {
        self.writes.len() as u64 + 1
    }

    /// Every attempt so far.
    pub fn writes(&self) -> &[WriteAttempt] {
        &self.writes
    }

    /// The newest write acknowledged strictly before `t_us`, as `(seq, ack
    /// time)`.
    pub fn acked_before(&self, t_us: u64) -> Option<(u64, u64)> {
        let i = self.acked.partition_point(|&(at, _)| at < t_us);
        i.checked_sub(1).map(|i| (self.acked[i].1, self.acked[i].0))
    }

    /// The ack time of the first acknowledged write newer than `seq`.
    fn first_ack_after(&self, seq: u64) -> Option<u64> {
        let i = self.acked.partition_point(|&(_, s)| s <= seq);
        self.acked.get(i).map(|&(at, _)| at)
    }

    /// Checks a read that started at `start_us`, ended at `end_us` and
    /// returned `observed`.
    pub fn check(&self, start_us: u64, end_us: u64, observed: &Observed) -> Verdict {
        let got = match observed {
            Observed::Register(got) => *got,
            Observed::Timeline { seqs, .. } => seqs.iter().copied().max().unwrap_or(0),
        };
        if got > 0 {
            let sent = self.writes.get((got - 1) as usize).map(|w| w.sent_us);
            if sent.is_none_or(|sent| sent > end_us) {
                return Verdict::Phantom { got };
            }
        }
        if let Observed::Timeline { newest_first, .. } = observed
            && !newest_first
        {
            return Verdict::Unordered;
        }
        let Some((expected, _)) = self.acked_before(start_us) else {
            return Verdict::Consistent;
        };
        if got < expected {
            let behind_us = self
                .first_ack_after(got)
                .map_or(0, |at| start_us.saturating_sub(at));
            return Verdict::Stale(Staleness {
                expected,
                got,
                behind_us,
                versions: expected - got,
            });
        }
        if let Observed::Timeline { seqs, limit, .. } = observed {
            let full_of_newer = seqs.len() >= *limit && seqs.iter().all(|&s| s > expected);
            if !seqs.contains(&expected) && !full_of_newer {
                return Verdict::Missing { expected };
            }
        }
        Verdict::Consistent
    }
}

/// A count of nines: `-log10(bad / total)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Nines {
    /// Some reads were bad: exactly this many nines.
    Exact(f64),
    /// No read was bad: at least `log10(total)` nines can be claimed.
    AtLeast(f64),
    /// No read was checked.
    NoData,
}

impl Nines {
    /// The nines of `total` reads of which `bad` were bad.
    pub fn of(total: u64, bad: u64) -> Nines {
        if total == 0 {
            Nines::NoData
        } else if bad == 0 {
            Nines::AtLeast((total as f64).log10())
        } else {
            // log10(total / bad), not -log10(bad / total): no "-0.00".
            Nines::Exact((total as f64 / bad.min(total) as f64).log10())
        }
    }

    /// Renders as `2.31` or `≥ 5.00`.
    pub fn render(&self) -> String {
        match self {
            Nines::Exact(n) => format!("{n:.2}"),
            Nines::AtLeast(n) => format!("≥ {n:.2}"),
            Nines::NoData => "no data".to_owned(),
        }
    }
}

/// The nines of reads consistent within `horizon_us`: a read counts as bad
/// when its verdict is behind by more than the horizon.
pub fn nines_within(verdicts: &[Verdict], horizon_us: u64) -> Nines {
    let bad = verdicts
        .iter()
        .filter(|v| v.behind_us() > horizon_us)
        .count() as u64;
    Nines::of(verdicts.len() as u64, bad)
}

/// A fault's window: from its start until the next fault starts (or the
/// run ends), so the recovery after it is healed counts as its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    /// The fault's name.
    pub name: String,
    /// When it was applied.
    pub start_us: u64,
    /// When it was healed.
    pub heal_us: u64,
    /// When the next window starts.
    pub end_us: u64,
}

/// The index of the window `t_us` falls in, `None` before the first one
/// (the baseline).
pub fn window_of(windows: &[Window], t_us: u64) -> Option<usize> {
    windows
        .iter()
        .position(|w| w.start_us <= t_us && t_us < w.end_us)
}

#[cfg(test)]
mod tests;
