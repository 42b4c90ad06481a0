//! What the checker declares and says about a run: the windows
//! `docs/consistency.md` allows reads to be stale in, with their bounds, the
//! near caches' bound under `--near`, and the report's notes.

use lwcache_chaos::report::Declared;

use crate::{Plan, Topology};

/// The windows docs/consistency.md declares, with their bounds, of those
/// the topology's schedule has.
pub(crate) fn declared(topology: Topology) -> Vec<Declared> {
    if topology == Topology::Cluster {
        return Vec::new();
    }
    vec![Declared {
        window: "redis-partition-one-instance".to_owned(),
        within_ms: DECLARED_ONE_INSTANCE_MS,
        why: "a write acknowledged while its instance could not reach Redis is carried out by another instance's replay of the outbox: until then that instance may serve the previous value (replay_min_age 500 ms + replay_interval 500 ms + one round)".to_owned(),
    }]
}

/// The near cache of each instance with `--near`: its byte budget, and its
/// max_lag, the declared bound of a near read's staleness.
pub(crate) const NEAR_CACHE_BYTES: usize = 16 << 20;
pub(crate) const NEAR_MAX_LAG_MS: u64 = 500;

/// The bound of the one-instance partition's window: the replay's 1 s and
/// room for one round on a busy machine.
const DECLARED_ONE_INSTANCE_MS: u64 = 2_000;

pub(crate) fn notes(plan: &Plan, topology: Topology, near: bool) -> Vec<String> {
    let declared = declared(topology)
        .into_iter()
        .map(|d| {
            format!(
                "`{}`: stale by at most {} ms, because {}",
                d.window, d.within_ms, d.why
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let declared = if declared.is_empty() {
        "none".to_owned()
    } else {
        declared
    };
    let near = if near {
        format!(
            " With near caches on, a read the near cache answered may be behind by at most {NEAR_MAX_LAG_MS} ms (its max_lag: it answers only while its feed confirmed within that bound) in every window."
        )
    } else {
        String::new()
    };
    vec![
        format!("Declared windows: {declared}.{near} Every other violation counts."),
        "A read is checked against the writes acknowledged before it was sent; failed reads (errors, timeouts) count against availability only.".to_owned(),
        format!(
            "After each heal the writers pause while the cache is compared with Neo4j every 250 ms, up to {} s.",
            plan.converge_bound.as_secs()
        ),
        "A key rests 10 s after a write of unknown outcome, so that no two writes of one key are ever in flight at once.".to_owned(),
        "A killed instance is started again at the heal, with Redis up (it would start without it too, degraded, serving from Neo4j).".to_owned(),
        match topology {
            Topology::Standalone => "Topology: standalone Redis, one proxy per instance.".to_owned(),
            Topology::Cluster => "Topology: a Redis Cluster of 3 masters without replicas; each master announces its proxy's port, and the 3 proxies are shared by every instance, so every Redis fault reaches every instance. `redis-partition-one-instance` has no proxy of its own to act on here and is replaced by `redis-partition-one-master` (the master holding the first world blackholed from every instance; the Cluster's bus stays up). `redis-killed-restarted-empty` kills every master and starts each again with its nodes.conf: identities and slots kept, data gone.".to_owned(),
        },
    ]
}
