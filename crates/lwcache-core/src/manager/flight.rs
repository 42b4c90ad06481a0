//! Stampede control in one process: concurrent misses of one key join one
//! flight. The first reader leads (takes the lease, reads the source,
//! fills: `read.rs`'s `load`), the others wait for its result in the
//! flight's slot. The leader's guard removes the flight and closes its slot
//! when it is dropped, so a leader whose caller gave up never leaves
//! followers waiting: they see the slot closed and lead or join anew.
//!
//! The slot wakes its followers in the order they began to wait, so that a
//! run on tokio's paused clock (the simulation's) is the same every time:
//! a `watch` channel spreads its waiters over queues chosen at random.
//!
//! Read your writes: a result says from when it is current (it reflects
//! every write acknowledged before that instant: the start of its source
//! read, or of its fill when the fill landed under its lease, which no
//! write's step deleted meanwhile). A follower that joined later than that
//! could otherwise be served a value older than a write acknowledged before
//! it started; it reads the cache again instead (where the fill usually
//! is), and the source itself if that misses.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lwcache_domain::{CacheKey, CachedValue};
use tokio::sync::Notify;

use super::{Inner, Outcome, lock};
use crate::error::Error;
use crate::metrics::MetricEvent;
use crate::ports::{CacheStore, WorldRepository};

/// What one miss produced, for every reader of the key in this process
/// that waited for it.
#[derive(Debug, Clone)]
pub(super) struct Loaded {
    pub(super) version: u64,
    /// The value as it may be cached: redacted.
    pub(super) cacheable: CachedValue,
    /// Every field, when this process has them: read from the source, or
    /// waited for as a fill that nothing was redacted from.
    pub(super) full: Option<CachedValue>,
    /// `Miss` when read from the source, `Hit` when another process's fill
    /// served it.
    pub(super) outcome: Outcome,
}

/// What a flight produced, and from when it is current: it reflects every
/// write acknowledged before the [`ticket`] `current_from` was drawn.
#[derive(Debug, Clone)]
pub(super) struct Landed {
    pub(super) current_from: u64,
    pub(super) result: Result<Loaded, Error>,
}

/// Tickets: one sequence for the process, so that "before" is exact even
/// when two events share an instant (tokio's paused clock, a coarse one).
static TICKETS: AtomicU64 = AtomicU64::new(0);

/// The next ticket.
pub(super) fn ticket() -> u64 {
    TICKETS.fetch_add(1, Ordering::SeqCst)
}

/// Where a flight's result lands.
#[derive(Default)]
pub(super) struct Slot {
    state: Mutex<SlotState>,
    changed: Notify,
}

#[derive(Default)]
enum SlotState {
    #[default]
    Waiting,
    Landed(Landed),
    /// The leader was dropped before it landed.
    Closed,
}

impl Slot {
    /// Lands `landed` unless the slot is closed, and wakes every follower.
    fn land(&self, landed: Landed) {
        {
            let mut state = lock(&self.state);
            if matches!(*state, SlotState::Waiting) {
                *state = SlotState::Landed(landed);
            }
        }
        self.changed.notify_waiters();
    }

    /// Closes the slot unless it landed, and wakes every follower.
    fn close(&self) {
        {
            let mut state = lock(&self.state);
            if matches!(*state, SlotState::Waiting) {
                *state = SlotState::Closed;
            }
        }
        self.changed.notify_waiters();
    }

    /// The flight's result once it lands; `None` when its leader was
    /// dropped first.
    async fn wait(&self) -> Option<Landed> {
        loop {
            let notified = self.changed.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the state is read: a landing in between
            // wakes it.
            notified.as_mut().enable();
            match &*lock(&self.state) {
                SlotState::Waiting => {}
                SlotState::Landed(landed) => return Some(landed.clone()),
                SlotState::Closed => return None,
            }
            notified.await;
        }
    }
}

/// One miss in flight in this process: its leader's token and where its
/// result lands.
pub(super) struct Flight {
    token: u64,
    slot: Arc<Slot>,
}

/// The leader of a flight. Dropping it (the leader's future was dropped,
/// or it finished) removes the flight and closes its slot, so that a
/// cancelled leader never leaves its followers waiting: they see the slot
/// closed and lead or join anew.
struct Leading<'a> {
    flights: &'a Mutex<HashMap<CacheKey, Flight>>,
    key: &'a CacheKey,
    token: u64,
    slot: Arc<Slot>,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        {
            let mut flights = lock(self.flights);
            if flights.get(self.key).is_some_and(|f| f.token == self.token) {
                flights.remove(self.key);
            }
        }
        self.slot.close();
    }
}

impl<S, R> Inner<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    /// Loads a missed key once for every concurrent reader in this process:
    /// the first one leads (takes the lease, reads the source, fills), the
    /// others wait for its result. A follower whose leader is dropped
    /// before it lands leads or joins anew; one that joined after the
    /// result was current reads again. `recheck` is for misses: after its
    /// lease, the leader looks at the cache once more (`load`); a refresh
    /// of an entry still fresh passes `false`.
    pub(super) async fn flight(&self, key: &CacheKey, recheck: bool) -> Result<Loaded, Error> {
        loop {
            let joined = {
                let mut flights = lock(&self.flights);
                match flights.get(key) {
                    Some(flight) => Err((Arc::clone(&flight.slot), ticket())),
                    None => {
                        let slot = Arc::new(Slot::default());
                        let token = self.next_lease().0;
                        let flight = Flight {
                            token,
                            slot: Arc::clone(&slot),
                        };
                        flights.insert(key.clone(), flight);
                        Ok(Leading {
                            flights: &self.flights,
                            key,
                            token,
                            slot,
                        })
                    }
                }
            };
            match joined {
                Ok(leading) => {
                    let landed = self.load(key, recheck).await;
                    let result = landed.result.clone();
                    leading.slot.land(landed);
                    return result;
                }
                Err((slot, joined)) => {
                    match slot.wait().await {
                        Some(landed) if landed.current_from < joined => {
                            return self.reread(key).await;
                        }
                        Some(landed) => {
                            self.metrics.record(MetricEvent::Coalesced(key.kind()));
                            return landed.result;
                        }
                        // The leader was dropped before it landed.
                        None => {}
                    }
                }
            }
        }
    }

    /// A follower too late for its flight's result: the cache again, where
    /// the flight's fill usually is, else a load of its own.
    async fn reread(&self, key: &CacheKey) -> Result<Loaded, Error> {
        if let Ok(Some(bytes)) = self.cache_read(self.store.get(key)).await
            && let Some(result) = self.usable(key, &bytes)
        {
            return result;
        }
        self.load(key, true).await.result
    }
}
