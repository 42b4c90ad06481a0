//! One seeded run: a current-thread tokio runtime on the paused clock, the
//! instances, the clients, the scheduler of cluster-wide faults, then
//! quiescence (faults healed, the replay loops given simulated time, every
//! write-behind queue settled) and the convergence check.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use lwcache_core::ports::{CacheStore, WorldRepository};
use lwcache_core::{ManagerConfig, StaleReads};
use lwcache_domain::{CacheKey, KeyKind, WorldId, WorldModel, world::apply_to};
use lwcache_memory::{MemoryRepository, MemoryStore};

use crate::config::{SimConfig, Variant};
use crate::ctx::{Ctx, OP_FAULTS, Outage};
use crate::ops::{self, Op};
use crate::oracle::Oracle;
use crate::{RunReport, SimError};

/// The managers' configuration in the simulation: the defaults (the
/// protocol as shipped) with a small timeline top-k.
pub fn manager_config(variant: Variant) -> ManagerConfig {
    let mut config = ManagerConfig::default();
    config.policy.timeline_top_k = ops::TOP_K;
    if variant == Variant::StaleWhileQueued {
        config.stale_reads = StaleReads::WhileQueued;
    }
    config
}

/// Runs one seed to the end and answers what it saw.
pub fn run(config: &SimConfig) -> Result<RunReport, SimError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(SimError::Runtime)?;
    let report = runtime.block_on(simulate(config.clone()));
    // Dropping the runtime drops every task still parked, the crashed
    // incarnations' included.
    drop(runtime);
    report
}

async fn simulate(config: SimConfig) -> Result<RunReport, SimError> {
    let world = WorldId::new("sim").map_err(|e| SimError::Setup(e.to_string()))?;
    let store = Arc::new(MemoryStore::new());
    let repo = Arc::new(MemoryRepository::new());
    let seed = ops::seed();
    repo.load(&world, &seed)
        .await
        .map_err(|e| SimError::Setup(e.to_string()))?;
    let mut model = None;
    for mutation in seed.mutations(&world) {
        apply_to(&mut model, mutation).map_err(|e| SimError::Setup(e.to_string()))?;
    }
    let model: WorldModel = model.ok_or_else(|| SimError::Setup("no world".to_owned()))?;
    let manager_config = manager_config(config.variant);
    let oracle = Oracle::new(
        model,
        ops::keys(&world),
        manager_config.policy.timeline_top_k,
        manager_config.policy.privacy.clone(),
        config.known,
    );
    let ctx = Arc::new(Ctx::new(
        config.clone(),
        manager_config,
        world,
        Arc::clone(&store),
        Arc::clone(&repo),
        oracle,
    ));
    for slot in 0..config.instances {
        ctx.start(slot);
    }
    let clients: Vec<_> = (0..config.clients)
        .map(|_| tokio::spawn(client(Arc::clone(&ctx))))
        .collect();
    let chaos = tokio::spawn(chaos(Arc::clone(&ctx)));
    for c in clients {
        let _ = c.await;
    }
    quiesce(&ctx).await;
    chaos.abort();
    let sim_ms = ctx.now_us() / 1000;
    let tick = ctx.shared().trace.len();
    // Convergence: every entry the store holds equals the source.
    let mut entries = Vec::new();
    let keys = ctx.shared().oracle.keys().to_vec();
    for key in keys {
        if let Ok(Some(bytes)) = store.get(&key).await {
            entries.push((key, bytes));
        }
    }
    let listed = store.keys();
    let owed = repo.outbox_len();
    ctx.clear();
    let mut shared = ctx.shared();
    for (key, bytes) in entries {
        shared.oracle.check_entry(&key, &bytes, tick);
    }
    for name in listed {
        let known = CacheKey::parse(&name)
            .is_ok_and(|k| k.kind() == KeyKind::Version || shared.oracle.knows(&k));
        if !known {
            shared.oracle.unknown_key(&name, tick);
        }
    }
    shared.oracle.undrained(owed, tick);
    let stats = shared.stats.clone();
    Ok(RunReport {
        seed: config.seed,
        ops: stats.ops,
        sim_ms,
        checked: shared.oracle.checked,
        declared: shared.oracle.declared,
        violations: std::mem::take(&mut shared.oracle.violations),
        trace_hash: shared.trace.hash(),
        trace_len: shared.trace.len(),
        trace: shared.trace.events().to_vec(),
        stats,
    })
}

/// One client: takes operations until the run's budget is spent, each on a
/// running instance drawn from the seed, each in a task of its own that a
/// crash of that instance drops.
async fn client(ctx: Arc<Ctx>) {
    loop {
        let drawn = {
            let mut shared = ctx.shared();
            if shared.next_op >= ctx.config.ops {
                None
            } else {
                let op = Op::draw(&mut shared);
                let slot = shared.rng.below(ctx.config.instances);
                let think = shared.rng.below(4) as u64;
                Some((op, slot, think))
            }
        };
        let Some((op, slot, think)) = drawn else {
            return;
        };
        if think > 0 {
            tokio::time::sleep(Duration::from_millis(think)).await;
        }
        let Some((manager, life)) = ctx.manager(slot) else {
            // Restarting: a real client would get a refused connection.
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let n = {
            let mut shared = ctx.shared();
            shared.next_op += 1;
            shared.stats.ops += 1;
            shared.next_op
        };
        let task = tokio::spawn(OP_FAULTS.scope(
            RefCell::new(Vec::new()),
            ops::run(Arc::clone(&ctx), manager, slot, life, n, op),
        ));
        ctx.register(slot, life, task.abort_handle());
        if task.await.is_err() {
            let mut shared = ctx.shared();
            shared.stats.ops_dropped += 1;
            ctx.log(
                &mut shared,
                crate::trace::What::End {
                    op: n,
                    result: "dropped by a crash".to_owned(),
                },
            );
        }
    }
}

/// The cluster-wide faults: every 10–300 ms, with the configured chance,
/// one of a store restart (everything lost, leases included), the store or
/// the source down for everyone for a while, or an instance crash.
async fn chaos(ctx: Arc<Ctx>) {
    loop {
        let (wait, pick, slot, length, hang) = {
            let mut shared = ctx.shared();
            let rng = &mut shared.rng;
            let wait = 10 + rng.below(290) as u64;
            let pick = if rng.chance(ctx.config.faults.global) {
                pick_global(&ctx.config, rng.below(1 << 16))
            } else {
                None
            };
            let slot = rng.below(ctx.config.instances);
            let length = 20 + rng.below(1500) as u64;
            let hang = rng.chance(0.5);
            (wait, pick, slot, length, hang)
        };
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if ctx.shared().healed {
            return;
        }
        match pick {
            None => {}
            Some(Global::Restart) => ctx.restart_store(),
            Some(Global::StoreOutage) => outage(&ctx, true, length, hang).await,
            Some(Global::SourceOutage) => outage(&ctx, false, length.min(800), hang).await,
            Some(Global::Crash) => ctx.crash(slot, None, "scheduled"),
        }
    }
}

/// A cluster-wide fault.
#[derive(Debug, Clone, Copy)]
enum Global {
    Restart,
    StoreOutage,
    SourceOutage,
    Crash,
}

/// Picks a cluster-wide fault by the configured weights from a draw in
/// `0..65536`.
fn pick_global(config: &SimConfig, draw: usize) -> Option<Global> {
    let f = &config.faults;
    let weights = [
        (Global::Restart, f.restart_weight),
        (Global::StoreOutage, f.store_outage_weight),
        (Global::SourceOutage, f.source_outage_weight),
        (Global::Crash, f.crash_weight),
    ];
    let total: u64 = weights.iter().map(|(_, w)| u64::from(*w)).sum();
    let mut at = (draw as u64 * total) >> 16;
    for (global, w) in weights {
        if at < u64::from(w) {
            return Some(global);
        }
        at -= u64::from(w);
    }
    None
}

/// The store (or the source) unreachable from every instance for `ms`.
async fn outage(ctx: &Arc<Ctx>, store: bool, ms: u64, hang: bool) {
    {
        let mut shared = ctx.shared();
        let id = shared.fault_id();
        shared.oracle.shared_fault(id);
        let outage = Some(Outage { id, hang });
        let port = if store {
            shared.store_outage = outage;
            shared.stats.store_outages += 1;
            "store"
        } else {
            shared.source_outage = outage;
            shared.stats.source_outages += 1;
            "source"
        };
        let how = if hang { "hangs" } else { "refuses" };
        ctx.log(
            &mut shared,
            crate::trace::What::Global(format!("the {port} {how} every call for {ms} ms")),
        );
    }
    tokio::time::sleep(Duration::from_millis(ms)).await;
    let mut shared = ctx.shared();
    if store {
        shared.store_outage = None;
    } else {
        shared.source_outage = None;
    }
    ctx.log(
        &mut shared,
        crate::trace::What::Global("the outage ends".to_owned()),
    );
}

/// Heals every fault, restarts the crashed instances, gives the replay
/// loops time to run (their claims of crashed owners expire within 2 s),
/// and waits for every write-behind queue.
async fn quiesce(ctx: &Arc<Ctx>) {
    {
        let mut shared = ctx.shared();
        shared.healed = true;
        shared.store_outage = None;
        shared.source_outage = None;
        ctx.log(
            &mut shared,
            crate::trace::What::Global("faults healed".to_owned()),
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for slot in ctx.dead_slots() {
        ctx.start(slot);
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    for manager in ctx.managers() {
        manager.settle().await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
}
