//! Stampede control in one process: concurrent misses of one key join one
//! flight. The first reader leads (takes the lease, reads the source,
//! fills: `read.rs`'s `load`), the others wait for its result on a watch
//! channel. The leader's guard removes the flight when it is dropped, so a
//! leader whose caller gave up never leaves followers waiting: they see the
//! channel close and lead or join anew.

use std::collections::HashMap;
use std::sync::Mutex;

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

/// The result of a flight, `None` until it lands.
type Landing = Option<Result<Loaded, Error>>;

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
    /// before it lands leads or joins anew.
    pub(super) async fn flight(&self, key: &CacheKey) -> Result<Loaded, Error> {
        loop {
            let joined = {
                let mut flights = lock(&self.flights);
                match flights.get(key) {
                    Some(flight) => Err(flight.result.clone()),
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
                    let loaded = self.load(key).await;
                    leading.result.send_replace(Some(loaded.clone()));
                    return loaded;
                }
                Err(mut rx) => {
                    let landed = rx
                        .wait_for(Option::is_some)
                        .await
                        .ok()
                        .and_then(|r| r.clone());
                    if let Some(loaded) = landed {
                        self.metrics.record(MetricEvent::Coalesced(key.kind()));
                        return loaded;
                    }
                }
            }
        }
    }
}
