//! Stampede control in one process: concurrent misses of one key join one
//! flight. The first reader leads (takes the lease, reads the source,
//! fills: `read.rs`'s `load`), the others wait for its result on a watch
//! channel. The leader's guard removes the flight when it is dropped, so a
//! leader whose caller gave up never leaves followers waiting: they see the
//! channel close and lead or join anew.
//!
//! Read your writes: a result says from when it is current (it reflects
//! every write acknowledged before that instant: the start of its source
//! read, or of its fill when the fill landed under its lease, which no
//! write's step deleted meanwhile). A follower that joined later than that
//! could otherwise be served a value older than a write acknowledged before
//! it started; it reads the cache again instead (where the fill usually
//! is), and the source itself if that misses.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use lwcache_domain::{CacheKey, CachedValue};
use tokio::sync::watch;

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

/// The result of a flight, `None` until it lands.
type Landing = Option<Landed>;

/// One miss in flight in this process: its leader's token and where its
/// result lands.
pub(super) struct Flight {
    token: u64,
    result: watch::Receiver<Landing>,
}

/// The leader of a flight. Dropping it (the leader's future was dropped,
/// or it finished) removes the flight, so that a cancelled leader never
/// leaves its followers waiting: they see the channel close and lead or
/// join anew.
struct Leading<'a> {
    flights: &'a Mutex<HashMap<CacheKey, Flight>>,
    key: &'a CacheKey,
    token: u64,
    result: watch::Sender<Landing>,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let mut flights = lock(self.flights);
        if flights.get(self.key).is_some_and(|f| f.token == self.token) {
            flights.remove(self.key);
        }
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
                    Some(flight) => Err((flight.result.clone(), ticket())),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        let token = self.next_lease().0;
                        flights.insert(key.clone(), Flight { token, result: rx });
                        Ok(Leading {
                            flights: &self.flights,
                            key,
                            token,
                            result: tx,
                        })
                    }
                }
            };
            match joined {
                Ok(leading) => {
                    let landed = self.load(key, recheck).await;
                    leading.result.send_replace(Some(landed.clone()));
                    return landed.result;
                }
                Err((mut rx, joined)) => {
                    let landed = rx
                        .wait_for(Option::is_some)
                        .await
                        .ok()
                        .and_then(|r| r.clone());
                    match landed {
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
        if let Ok(Some(bytes)) = self.cache_call(self.store.get(key)).await
            && let Some(result) = self.usable(key, &bytes)
        {
            return result;
        }
        self.load(key, true).await.result
    }
}
