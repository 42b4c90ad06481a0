//! The circuit breaker around the cache store: after a run of failed calls
//! it stops calling the store for a while, so that callers stop paying the
//! cache timeout on a store that does not answer.
//!
//! - **Closed**: every call goes through; `breaker_failures` failures in a
//!   row (errors that a reconnect may cure, or the cache timeout) open it.
//! - **Open**: every call fails at once with [`CacheError::CircuitOpen`]
//!   until `breaker_open` has passed.
//! - **Half-open**: the first call after that goes through as the probe and
//!   every other call still fails at once; the probe's answer closes the
//!   breaker, its failure opens it for another `breaker_open`. The replay
//!   loop pings the store every `replay_interval` while the cache is in
//!   trouble, so a breaker probes even when no caller calls.
//!
//! - **Owed steps**: the cache step of a write already committed to the
//!   source (and the epoch it is learned with) is never refused. It is
//!   tried, bounded by the cache timeout, whatever the state, and its
//!   answer decides as a probe's would: the store answering closes the
//!   breaker, its failure opens it for another `breaker_open`. A step not
//!   tried is a step owed until a replay: after an outage that every
//!   process saw, a process whose breaker is still open would acknowledge
//!   writes that another process, already reading the cache again, does
//!   not see. Trying costs a write at most the cache timeout while the
//!   store is out of reach.
//!
//! The breaker decides only *whether to call*. Whether the cache may be read
//! is the trouble mode's business (`outbox.rs`): every rejected call counts
//! as a failed one there, so a breaker that closes leaves the cache unread
//! until the replay loop has carried out what was owed meanwhile.
//!
//! [`CacheError::CircuitOpen`]: crate::ports::CacheError::CircuitOpen

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::lock;
use crate::ports::CacheError;

/// Where a circuit breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls go to the cache store.
    Closed,
    /// One call, the probe, is under way; the others fail at once.
    HalfOpen,
    /// Calls fail at once, without reaching the cache store.
    Open,
}

impl BreakerState {
    /// `closed`, `half_open` or `open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }

    /// The state as a gauge's value: 0 closed, 1 half-open, 2 open.
    pub fn level(self) -> u64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// The probe is under way.
    HalfOpen,
}

/// What a finished call says about the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The store answered (a refusal is an answer too).
    Answered,
    /// The store could not be reached or did not answer in time.
    Failed,
}

impl Verdict {
    /// Sorts a call's result: only failures that say the store is out of
    /// reach count against it. A refused call (a script error, a wrong
    /// type, a permission) came from a store that answers.
    pub(super) fn of<T>(result: &Result<T, CacheError>) -> Verdict {
        match result {
            Ok(_) | Err(CacheError::Refused(_)) => Verdict::Answered,
            Err(_) => Verdict::Failed,
        }
    }
}

/// A circuit breaker. Its clock is tokio's, so tests pause and advance it.
#[derive(Debug)]
pub(super) struct Breaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<State>,
    /// Whether `state` is `Closed { failures: 0 }`, the state of a healthy
    /// store: a call admitted and answered then changes nothing, and takes
    /// no lock. Written under the lock, with every change of `state`.
    clean: AtomicBool,
}

/// Leave to make one call, handed back with its verdict by
/// [`Breaker::finish`]. A permit dropped unfinished (its caller went away)
/// gives the probe's turn to the next call.
#[derive(Debug)]
pub(super) struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    /// An owed step let through a breaker that was not closed: its verdict
    /// decides as a probe's does, without the probe's turn.
    owed: bool,
    finished: bool,
}

impl Breaker {
    /// A closed breaker that opens after `threshold` failures in a row (at
    /// least one) and stays open for `open_for`.
    pub(super) fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            state: Mutex::new(State::Closed { failures: 0 }),
            clean: AtomicBool::new(true),
        }
    }

    /// The breaker's state now. An open breaker whose interval has passed
    /// is still `Open` until a call takes the probe's turn.
    pub(super) fn state(&self) -> BreakerState {
        match *lock(&self.state) {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen => BreakerState::HalfOpen,
        }
    }

    /// Leave to call the store, or `Err` (with the state it moved to, if it
    /// moved) when the call must fail at once.
    pub(super) fn admit(&self) -> Result<(Permit<'_>, Option<BreakerState>), ()> {
        // A call racing the breaker's opening is one let through just
        // before it opened: `finish` lets the probe alone decide.
        if self.clean.load(Ordering::Acquire) {
            return Ok((self.permit(false), None));
        }
        let mut state = lock(&self.state);
        match *state {
            State::Closed { .. } => Ok((self.permit(false), None)),
            State::Open { until } if Instant::now() >= until => {
                self.set(&mut state, State::HalfOpen);
                Ok((self.permit(true), Some(BreakerState::HalfOpen)))
            }
            State::Open { .. } | State::HalfOpen => Err(()),
        }
    }

    /// Leave for a call that a committed write owes the cache: never
    /// refused (see the module's doc). Answers the permit and the state
    /// the breaker moved to, if it moved (it does not, on admission).
    pub(super) fn admit_owed(&self) -> (Permit<'_>, Option<BreakerState>) {
        if self.clean.load(Ordering::Acquire) {
            return (self.permit(false), None);
        }
        let closed = matches!(*lock(&self.state), State::Closed { .. });
        let mut permit = self.permit(false);
        permit.owed = !closed;
        (permit, None)
    }

    fn permit(&self, probe: bool) -> Permit<'_> {
        Permit {
            breaker: self,
            probe,
            owed: false,
            finished: false,
        }
    }

    /// Records a call's verdict; answers the state the breaker moved to, if
    /// it moved.
    pub(super) fn finish(&self, mut permit: Permit<'_>, verdict: Verdict) -> Option<BreakerState> {
        permit.finished = true;
        // Closed with no failure stays so on an answer. A failure that
        // another call counts meanwhile is ordered after this answer.
        if verdict == Verdict::Answered && !permit.probe && self.clean.load(Ordering::Acquire) {
            return None;
        }
        let mut state = lock(&self.state);
        let next = match (*state, permit.probe || permit.owed, verdict) {
            // An owed step answering while the breaker is open: the store
            // answers, whatever the probe's turn says.
            (State::Open { .. } | State::HalfOpen, true, Verdict::Answered) => {
                State::Closed { failures: 0 }
            }
            (State::Open { .. } | State::HalfOpen, true, Verdict::Failed) => State::Open {
                until: Instant::now() + self.open_for,
            },
            (State::Closed { .. }, _, Verdict::Answered) => State::Closed { failures: 0 },
            (State::Closed { failures }, _, Verdict::Failed) => {
                let failures = failures.saturating_add(1);
                if failures >= self.threshold {
                    State::Open {
                        until: Instant::now() + self.open_for,
                    }
                } else {
                    State::Closed { failures }
                }
            }
            // A call let through before the breaker opened, finishing after:
            // the probe alone decides.
            (other, _, _) => other,
        };
        let moved = discriminant(&next) != discriminant(&state);
        self.set(&mut state, next);
        moved.then(|| public(&next))
    }

    /// Changes the state, and `clean` with it; `state` is the held lock.
    fn set(&self, state: &mut State, next: State) {
        *state = next;
        let clean = matches!(next, State::Closed { failures: 0 });
        self.clean.store(clean, Ordering::Release);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.finished || !self.probe {
            return;
        }
        // The probe's caller went away before the store answered: the next
        // call probes instead, at once.
        let mut state = lock(&self.breaker.state);
        if matches!(*state, State::HalfOpen) {
            self.breaker.set(
                &mut state,
                State::Open {
                    until: Instant::now(),
                },
            );
        }
    }
}

fn discriminant(state: &State) -> u8 {
    match state {
        State::Closed { .. } => 0,
        State::HalfOpen => 1,
        State::Open { .. } => 2,
    }
}

fn public(state: &State) -> BreakerState {
    match state {
        State::Closed { .. } => BreakerState::Closed,
        State::HalfOpen => BreakerState::HalfOpen,
        State::Open { .. } => BreakerState::Open,
    }
}

impl<S, R> super::Inner<S, R>
where
    S: crate::ports::CacheStore + 'static,
    R: crate::ports::WorldRepository + 'static,
{
    /// Reports a move of the breaker.
    pub(super) fn breaker_moved(&self, moved: Option<BreakerState>) {
        let Some(state) = moved else { return };
        self.metrics
            .record(crate::metrics::MetricEvent::Breaker(state));
        match state {
            // Said when it opens from closed; a failed probe opening it
            // again (every `breaker_open` while the outage lasts) is a
            // debug line.
            BreakerState::Open if !self.breaker_said_open.swap(true, Ordering::Relaxed) => {
                tracing::warn!(
                    open_for = ?self.config.breaker_open,
                    "cache circuit breaker open: reads go to the source; writes still try their steps"
                )
            }
            BreakerState::Open => {
                tracing::debug!("cache circuit breaker open again: the probe failed")
            }
            BreakerState::HalfOpen => tracing::debug!("cache circuit breaker half-open: probing"),
            BreakerState::Closed => {
                self.breaker_said_open.store(false, Ordering::Relaxed);
                tracing::info!("cache circuit breaker closed: the cache store answers again")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use super::*;

    const OPEN: Duration = Duration::from_secs(1);

    fn fail(b: &Breaker) -> Option<BreakerState> {
        let (permit, _) = b.admit().unwrap();
        b.finish(permit, Verdict::Failed)
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_run_of_failures_and_an_answer_resets_the_run() {
        let b = Breaker::new(3, OPEN);
        assert_eq!(fail(&b), None);
        assert_eq!(fail(&b), None);
        let (permit, _) = b.admit().unwrap();
        assert_eq!(b.finish(permit, Verdict::Answered), None);
        assert_eq!(fail(&b), None);
        assert_eq!(fail(&b), None);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(fail(&b), Some(BreakerState::Open));
        assert!(b.admit().is_err(), "an open breaker refuses calls");
    }

    #[tokio::test(start_paused = true)]
    async fn one_probe_after_the_interval_closes_or_reopens() {
        let b = Breaker::new(1, OPEN);
        assert_eq!(fail(&b), Some(BreakerState::Open));
        tokio::time::advance(OPEN - Duration::from_millis(1)).await;
        assert!(b.admit().is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        let (probe, moved) = b.admit().unwrap();
        assert_eq!(moved, Some(BreakerState::HalfOpen));
        assert!(b.admit().is_err(), "one probe at a time");
        assert_eq!(b.finish(probe, Verdict::Failed), Some(BreakerState::Open));
        assert!(b.admit().is_err(), "a failed probe opens it again");
        tokio::time::advance(OPEN).await;
        let (probe, _) = b.admit().unwrap();
        assert_eq!(
            b.finish(probe, Verdict::Answered),
            Some(BreakerState::Closed)
        );
        assert!(b.admit().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_probe_hands_its_turn_on() {
        let b = Breaker::new(1, OPEN);
        fail(&b);
        tokio::time::advance(OPEN).await;
        let (probe, _) = b.admit().unwrap();
        drop(probe);
        assert_eq!(b.state(), BreakerState::Open);
        let (probe, moved) = b.admit().unwrap();
        assert_eq!(moved, Some(BreakerState::HalfOpen));
        b.finish(probe, Verdict::Answered);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_call_from_before_the_opening_does_not_decide() {
        let b = Breaker::new(1, OPEN);
        let (early, _) = b.admit().unwrap();
        assert_eq!(fail(&b), Some(BreakerState::Open));
        assert_eq!(b.finish(early, Verdict::Answered), None);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn refusals_are_answers() {
        let refused: Result<(), CacheError> = Err(CacheError::Refused("no".into()));
        assert_eq!(Verdict::of(&refused), Verdict::Answered);
        let timeout: Result<(), CacheError> = Err(CacheError::Timeout(OPEN));
        assert_eq!(Verdict::of(&timeout), Verdict::Failed);
        assert_eq!(Verdict::of(&Ok::<(), CacheError>(())), Verdict::Answered);
    }
}
