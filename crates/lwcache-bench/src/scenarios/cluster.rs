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
    // redis-benchmark --cluster learns the topology from the first node.
    let (rows, problem) = throughput(
        &manager,
        &raw,
        &urls[0],
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
