//! The Redis-tier rows again on a real Redis Cluster, beside the standalone
//! ones in the same run: a hit against a raw GET, the 14-key turn against
//! one MGET (a world's keys share one slot, so one node answers it), and
//! throughput against redis-rs and `redis-benchmark --cluster`.

use std::sync::Arc;

use anyhow::{Context, Result};
use lwcache_bench::report::{LatencyComparison, ThroughputRow};
use lwcache_core::CacheManager;
use lwcache_core::ports::WorldRepository;
use lwcache_demo::DemoSpec;
use lwcache_memory::MemoryRepository;
use lwcache_redis::{RedisConfig, RedisStore};

use super::{Plan, REPLY_TIMEOUT, config, read_hit_vs_get, throughput, turn_warm, world_id};

/// What the Cluster rows measured.
pub(crate) struct ClusterFigures {
    pub(crate) latency: Vec<LatencyComparison>,
    pub(crate) throughput: Vec<ThroughputRow>,
    pub(crate) problem: Option<String>,
}

/// Measures the Redis-tier rows on the Cluster whose seed nodes are `urls`.
pub(crate) async fn cluster_rows(
    urls: &[String],
    redis_benchmark: &std::path::Path,
    plan: &Plan,
    run_id: u64,
) -> Result<ClusterFigures> {
    let mut store_config = RedisConfig::cluster(urls.iter().map(String::as_str))?;
    store_config.response_timeout = REPLY_TIMEOUT;
    let store = RedisStore::connect(&store_config)
        .await
        .context("connecting the Redis store to the Cluster")?;
    let raw = redis::cluster::ClusterClientBuilder::new(urls.to_vec())
        .response_timeout(REPLY_TIMEOUT)
        .build()?
        .get_async_connection()
        .await
        .context("connecting redis-rs to the Cluster")?;
    let memory = Arc::new(MemoryRepository::new());
    let world = world_id("read-cluster", "memory", run_id)?;
    let spec = DemoSpec::standard();
    memory.load(&world, &spec.seed()).await?;
    let manager = CacheManager::builder(store, Arc::clone(&memory))
        .config(config())
        .build()?;
    manager.activate(&world).await?;
    let entity = spec.character(spec.players);
    let mut latency =
        vec![read_hit_vs_get(&manager, &raw, &world, &entity, plan, "cluster").await?];
    latency.extend(turn_warm(&manager, &raw, &world, &spec, plan, "cluster").await?);
    // redis-benchmark --cluster spreads keys by its own `{tag}`: it runs
    // instead against the master that holds the world's slot, which is
    // what every GET of the key reaches.
    let key = lwcache_domain::CacheKey::entity(&world, &entity).to_string();
    let owner = owner_url(&raw, &key).await?;
    let (rows, problem) = throughput(
        &manager,
        &raw,
        &owner,
        redis_benchmark,
        &world,
        &entity,
        plan,
        "cluster",
    )
    .await?;
    Ok(ClusterFigures {
        latency,
        throughput: rows,
        problem,
    })
}

/// The URL of the master that holds `key`'s slot, from `CLUSTER KEYSLOT`
/// and `CLUSTER SLOTS`.
async fn owner_url<C: super::Raw>(raw: &C, key: &str) -> Result<String> {
    let mut conn = raw.clone();
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(&mut conn)
        .await?;
    let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn)
        .await?;
    for range in slots {
        let redis::Value::Array(items) = range else {
            continue;
        };
        let bound = |i: usize| match items.get(i) {
            Some(redis::Value::Int(n)) => Some(*n),
            _ => None,
        };
        let (Some(first), Some(last)) = (bound(0), bound(1)) else {
            continue;
        };
        if !(first..=last).contains(&slot) {
            continue;
        }
        if let Some(redis::Value::Array(master)) = items.get(2) {
            let host = match master.first() {
                Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(redis::Value::SimpleString(s)) => s.clone(),
                _ => continue,
            };
            if let Some(redis::Value::Int(port)) = master.get(1) {
                return Ok(format!("redis://{host}:{port}"));
            }
        }
    }
    anyhow::bail!("no master in CLUSTER SLOTS holds slot {slot} of {key}")
}
