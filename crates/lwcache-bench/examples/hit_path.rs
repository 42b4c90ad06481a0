//! The throughput scenario's hit loop alone, for a profiler: `tasks`
//! concurrent tasks read one cached entity through `CacheManager` over a
//! real Redis (typed, which copies the document; with `shared`, the shared
//! value), or (with `raw`) the same key by redis-rs GETs.
//!
//! ```text
//! cargo build --release -p lwcache-bench --example hit_path
//! perf record -g --call-graph dwarf -- \
//!     target/release/examples/hit_path redis://127.0.0.1:6379 64 400000
//! ```

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use lwcache_core::ports::WorldRepository;
use lwcache_core::{CacheManager, Fields, Outcome};
use lwcache_demo::DemoSpec;
use lwcache_domain::{CacheKey, WorldId};
use lwcache_memory::MemoryRepository;
use lwcache_redis::{RedisConfig, RedisStore};

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .context("usage: hit_path REDIS_URL [TASKS] [READS] [raw|shared]")?;
    let tasks: usize = args.next().map_or(Ok(64), |s| s.parse())?;
    let reads: usize = args.next().map_or(Ok(400_000), |s| s.parse())?;
    let mode = args.next().unwrap_or_default();
    let (raw, shared) = (mode == "raw", mode == "shared");

    let store = RedisStore::connect(&RedisConfig::from_url(&url)?).await?;
    let repo = Arc::new(MemoryRepository::new());
    let world = WorldId::new("hit-path")?;
    let spec = DemoSpec::standard();
    repo.load(&world, &spec.seed()).await?;
    let manager = CacheManager::builder(store, Arc::clone(&repo)).build()?;
    manager.activate(&world).await?;
    let entity = spec.character(spec.players);
    let cache_key = CacheKey::entity(&world, &entity);
    let key = cache_key.to_string();
    let conn = redis::aio::ConnectionManager::new(redis::Client::open(url.as_str())?).await?;

    let per_task = reads / tasks;
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (m, w, e, k, ck, mut c) = (
            manager.clone(),
            world.clone(),
            entity.clone(),
            key.clone(),
            cache_key.clone(),
            conn.clone(),
        );
        handles.push(tokio::spawn(async move {
            for _ in 0..per_task {
                if raw {
                    let v: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query_async(&mut c).await?;
                    ensure!(v.is_some(), "{k} is not cached");
                } else if shared {
                    let r = m.read_shared(&ck, Fields::Cacheable).await?;
                    ensure!(r.outcome == Outcome::Hit, "not a hit: {:?}", r.outcome);
                } else {
                    let r = m.entity(&w, &e, Fields::Cacheable).await?;
                    ensure!(r.outcome == Outcome::Hit, "not a hit: {:?}", r.outcome);
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let took = started.elapsed();
    eprintln!(
        "{} {} reads at {tasks} tasks: {:.0}/s",
        if raw {
            "raw GET"
        } else if shared {
            "lwcache shared"
        } else {
            "lwcache typed"
        },
        per_task * tasks,
        (per_task * tasks) as f64 / took.as_secs_f64()
    );
    Ok(())
}
