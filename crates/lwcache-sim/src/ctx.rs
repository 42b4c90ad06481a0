//! What every part of one run shares: the seeded generator, the trace, the
//! oracle, the counters, the cluster-wide faults in force, and the
//! instances (each slot's current incarnation, crashed and restarted here).
//!
//! Everything runs on one current-thread runtime, so the one lock is never
//! contended; it is a lock only because the ports must be `Send + Sync`. It
//! is never held across an `.await`.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use lwcache_core::{CacheManager, ManagerConfig};
use lwcache_demo::Rng;
use lwcache_domain::WorldId;
use lwcache_memory::{MemoryRepository, MemoryStore};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::Stats;
use crate::config::SimConfig;
use crate::oracle::{Oracle, Reader};
use crate::repo::SimRepo;
use crate::store::SimStore;
use crate::trace::{Event, Fault, Port, Trace, What};

/// A manager of the simulation: over the fault-injecting decorators of the
/// one store and the one repository.
pub(crate) type Manager = CacheManager<SimStore<MemoryStore>, SimRepo<MemoryRepository>>;

tokio::task_local! {
    /// The store fault ids an operation's own calls met, so that a write
    /// whose cache step failed knows which fault failed it.
    pub(crate) static OP_FAULTS: RefCell<Vec<u64>>;
}

/// A cluster-wide outage of one port.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outage {
    /// Its fault id, shared by every call it fails.
    pub id: u64,
    /// Calls hang past the timeout instead of failing at once.
    pub hang: bool,
}

/// The mutable part of a run.
pub(crate) struct Shared {
    pub rng: Rng,
    pub trace: Trace,
    pub oracle: Oracle,
    pub stats: Stats,
    /// Faults are over: the run is converging.
    pub healed: bool,
    pub store_outage: Option<Outage>,
    pub source_outage: Option<Outage>,
    next_fault: u64,
    /// The number the next written value carries.
    pub next_value: i64,
    /// The next operation's number.
    pub next_op: u64,
    /// How many times the store restarted: a write sent before a restart
    /// dies with its connection.
    pub store_epoch: u64,
}

impl Shared {
    /// A fault id no other fault has.
    pub(crate) fn fault_id(&mut self) -> u64 {
        self.next_fault += 1;
        self.next_fault
    }
}

/// One instance slot: its current incarnation, if running.
pub(crate) struct Slot {
    life: u32,
    live: Option<Live>,
}

struct Live {
    manager: Manager,
    alive: Arc<AtomicBool>,
    ops: Vec<AbortHandle>,
}

/// The run's shared context.
pub(crate) struct Ctx {
    pub config: SimConfig,
    pub manager_config: ManagerConfig,
    pub store: Arc<MemoryStore>,
    pub repo: Arc<MemoryRepository>,
    pub world: WorldId,
    started: Instant,
    state: Mutex<Shared>,
    slots: Mutex<Vec<Slot>>,
}

/// How one port call goes, drawn before it is made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallPlan {
    /// Yields before the call.
    pub before: u8,
    /// Yields after it, before its answer reaches the caller.
    pub after: u8,
    /// The fault it meets.
    pub fault: Fault,
    /// An outage hangs rather than failing at once.
    pub hang: bool,
}

impl Ctx {
    pub(crate) fn new(
        config: SimConfig,
        manager_config: ManagerConfig,
        world: WorldId,
        store: Arc<MemoryStore>,
        repo: Arc<MemoryRepository>,
        oracle: Oracle,
    ) -> Self {
        let slots = (0..config.instances)
            .map(|_| Slot {
                life: 0,
                live: None,
            })
            .collect();
        let shared = Shared {
            rng: Rng::new(config.seed),
            trace: Trace::new(config.keep_trace),
            oracle,
            stats: Stats::default(),
            healed: false,
            store_outage: None,
            source_outage: None,
            next_fault: 1,
            next_value: 1,
            next_op: 0,
            store_epoch: 0,
        };
        Self {
            config,
            manager_config,
            store,
            repo,
            world,
            started: Instant::now(),
            state: Mutex::new(shared),
            slots: Mutex::new(slots),
        }
    }

    /// The shared state, locked.
    pub(crate) fn shared(&self) -> MutexGuard<'_, Shared> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn slots(&self) -> MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Simulated microseconds since the run started.
    pub(crate) fn now_us(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Appends to the trace and answers the trace position after it.
    pub(crate) fn log(&self, shared: &mut Shared, what: What) -> u64 {
        let at_ms = self.now_us() / 1000;
        shared.trace.push(Event { at_ms, what });
        shared.trace.len()
    }

    /// Logs a cluster-wide event.
    pub(crate) fn global(&self, text: String) {
        let mut shared = self.shared();
        self.log(&mut shared, What::Global(text));
    }

    /// The store restarts empty: entries, versions and leases are lost, and
    /// so are writes still in flight.
    pub(crate) fn restart_store(&self) {
        self.store.flush();
        let mut shared = self.shared();
        shared.store_epoch += 1;
        shared.stats.store_restarts += 1;
        self.log(
            &mut shared,
            What::Global("the store restarts empty".to_owned()),
        );
    }

    /// Draws how a port call of incarnation `(slot, life)` goes, logs it,
    /// and notes a failure as seen by the incarnation (and by the
    /// operation making it, for store calls).
    pub(crate) fn plan_call(
        &self,
        reader: Reader,
        port: Port,
        key: Option<String>,
        store: bool,
    ) -> CallPlan {
        let mut shared = self.shared();
        let s = &mut *shared;
        let rates = self.config.faults;
        let rng = &mut s.rng;
        let before = if rng.chance(0.5) {
            0
        } else {
            1 + rng.below(3) as u8
        };
        let after = if rng.chance(0.5) {
            0
        } else {
            1 + rng.below(3) as u8
        };
        let outage = if store {
            s.store_outage
        } else {
            s.source_outage
        };
        let mut hang = false;
        let mut fault_id = None;
        let fault = if s.healed {
            if rng.chance(0.02) {
                Fault::Delay(1 + rng.below(20) as u64)
            } else {
                Fault::None
            }
        } else if let Some(outage) = outage {
            hang = outage.hang;
            fault_id = Some(outage.id);
            Fault::Outage
        } else {
            let (fail, hang_p, lost, late, delay) = if store {
                (
                    rates.store_fail,
                    rates.store_hang,
                    rates.store_lost_reply,
                    if matches!(port, Port::Fill | Port::Commit | Port::Lease) {
                        rates.store_late
                    } else {
                        0.0
                    },
                    rates.store_delay,
                )
            } else {
                (
                    rates.source_fail,
                    rates.source_hang,
                    rates.source_lost_reply,
                    0.0,
                    rates.store_delay,
                )
            };
            let x = rng.unit();
            let mut edge = 0.0;
            let mut hit = |p: f64| {
                edge += p;
                x < edge
            };
            if hit(fail) {
                Fault::Fail
            } else if hit(hang_p) {
                Fault::Hang
            } else if hit(lost) {
                Fault::LostReply
            } else if hit(late) {
                Fault::Late(1 + rng.below(600) as u64)
            } else if hit(rates.crash_at_call) {
                Fault::Crash
            } else if hit(delay)
                && (self.config.known.commit_across_restart
                    || !matches!(port, Port::Fill | Port::Commit))
            {
                // Mostly short; now and then close to or past the timeout.
                let ms = match rng.below(10) {
                    0 => 200 + rng.below(100),
                    1..=3 => 10 + rng.below(90),
                    _ => 1 + rng.below(5),
                };
                Fault::Delay(ms as u64)
            } else {
                Fault::None
            }
        };
        if matches!(
            fault,
            Fault::Fail | Fault::Hang | Fault::LostReply | Fault::Late(_)
        ) {
            fault_id = Some(s.fault_id());
            s.stats.count_fault(store);
        }
        let tick = self.log(
            s,
            What::Call {
                slot: reader.0,
                life: reader.1,
                port,
                key,
                fault,
            },
        );
        if let Some(id) = fault_id {
            let timeout = if store {
                self.manager_config.cache_timeout
            } else {
                self.manager_config.source_timeout
            };
            let now = self.now_us();
            let noticed = match fault {
                Fault::Fail => (now, tick),
                Fault::Outage if !hang => (now, tick),
                _ => (now + timeout.as_micros() as u64, u64::MAX),
            };
            s.oracle.saw(reader, id, noticed.0, noticed.1);
            if store {
                let _ = OP_FAULTS.try_with(|f| f.borrow_mut().push(id));
            }
        }
        CallPlan {
            before,
            after,
            fault,
            hang,
        }
    }

    /// The manager of a running slot, with its incarnation.
    pub(crate) fn manager(&self, slot: usize) -> Option<(Manager, u32)> {
        let slots = self.slots();
        let s = slots.get(slot)?;
        s.live.as_ref().map(|l| (l.manager.clone(), s.life))
    }

    /// The live managers.
    pub(crate) fn managers(&self) -> Vec<Manager> {
        self.slots()
            .iter()
            .filter_map(|s| s.live.as_ref().map(|l| l.manager.clone()))
            .collect()
    }

    /// Slots with no running incarnation.
    pub(crate) fn dead_slots(&self) -> Vec<usize> {
        self.slots()
            .iter()
            .enumerate()
            .filter(|(_, s)| s.live.is_none())
            .map(|(i, _)| i)
            .collect()
    }

    /// Registers an operation's task with its incarnation, so that a crash
    /// drops it; aborts it at once if the incarnation is gone.
    pub(crate) fn register(&self, slot: usize, life: u32, handle: AbortHandle) {
        let mut slots = self.slots();
        match slots.get_mut(slot) {
            Some(Slot {
                life: g,
                live: Some(live),
            }) if *g == life => {
                if live.ops.len() > 64 {
                    live.ops.retain(|h| !h.is_finished());
                }
                live.ops.push(handle);
            }
            _ => handle.abort(),
        }
    }

    /// Starts a fresh incarnation in `slot`: a new manager, with a new
    /// owner name, its own queue and replay loop, over fresh decorators.
    pub(crate) fn start(self: &Arc<Self>, slot: usize) {
        let life = {
            let mut slots = self.slots();
            let Some(s) = slots.get_mut(slot) else { return };
            if s.live.is_some() {
                return;
            }
            s.life += 1;
            s.life
        };
        let alive = Arc::new(AtomicBool::new(true));
        let store = SimStore::new(
            Arc::clone(self),
            Arc::clone(&self.store),
            (slot, life),
            Arc::clone(&alive),
        );
        let repo = SimRepo::new(
            Arc::clone(self),
            Arc::clone(&self.repo),
            (slot, life),
            Arc::clone(&alive),
        );
        let clock = Arc::new(SimClock {
            started: self.started,
        });
        // The manager is built whole: whatever it gains (a breaker, a near
        // cache in front of the store) runs in the simulation with it.
        let built = CacheManager::builder(store, repo)
            .config(self.manager_config.clone())
            .clock(clock)
            .build();
        match built {
            Ok(manager) => {
                if let Some(s) = self.slots().get_mut(slot) {
                    s.live = Some(Live {
                        manager,
                        alive,
                        ops: Vec::new(),
                    });
                }
                self.global(format!("start i{slot}.{life}"));
            }
            Err(e) => self.global(format!("i{slot}.{life} refused its configuration: {e}")),
        }
    }

    /// Crashes incarnation `(slot, life)` (the current one when `life` is
    /// `None`): its port calls stop, its operations' futures are dropped,
    /// the manager goes; a fresh one starts after a seeded pause.
    pub(crate) fn crash(self: &Arc<Self>, slot: usize, life: Option<u32>, why: &str) {
        let taken = {
            let mut slots = self.slots();
            match slots.get_mut(slot) {
                Some(s) if life.is_none_or(|g| g == s.life) => s.live.take().map(|l| (l, s.life)),
                _ => None,
            }
        };
        let Some((live, life)) = taken else { return };
        live.alive.store(false, Ordering::SeqCst);
        for op in &live.ops {
            op.abort();
        }
        let pause = {
            let mut shared = self.shared();
            shared.stats.crashes += 1;
            self.log(
                &mut shared,
                What::Global(format!("crash i{slot}.{life} ({why})")),
            );
            Duration::from_millis(shared.rng.below(300) as u64)
        };
        drop(live);
        let ctx = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(pause).await;
            ctx.start(slot);
        });
    }

    /// Drops every incarnation: their managers hold this context, which
    /// holds them.
    pub(crate) fn clear(&self) {
        let lives: Vec<Live> = self
            .slots()
            .iter_mut()
            .filter_map(|s| s.live.take())
            .collect();
        for live in &lives {
            live.alive.store(false, Ordering::SeqCst);
        }
        drop(lives);
    }
}

/// Event timestamps on the paused clock: the same in every run of a seed.
struct SimClock {
    started: Instant,
}

impl lwcache_core::Clock for SimClock {
    fn now_ms(&self) -> i64 {
        lwcache_demo::EPOCH_MS + i64::try_from(self.started.elapsed().as_millis()).unwrap_or(0)
    }
}

/// Waits out a call's seeded yields; a crashed incarnation waits forever,
/// which is how a dead process's await points behave.
pub(crate) async fn gate(alive: &AtomicBool, yields: u8) {
    for _ in 0..yields {
        tokio::task::yield_now().await;
    }
    if !alive.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
}
