//! Memory and activation: lwcache's entries in Redis against the same
//! documents as plain JSON, and warming a world against writing the same
//! bytes with naive and pipelined SETs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use lwcache_bench::report::{ActivationRow, MemoryRow};
use lwcache_bench::stats::Samples;
use lwcache_core::CacheManager;
use lwcache_core::codec;
use lwcache_core::ports::{CacheStore, Put, WorldRepository};
use lwcache_demo::DemoSpec;
use lwcache_domain::{CacheKey, CachedValue, WorldId};
use redis::aio::ConnectionManager;

use super::{Plan, config, world_id};
use crate::counting::Counting;
use lwcache_json::document_to_json;

/// `MEMORY USAGE` of lwcache's entry of every character against the same
/// document as plain JSON, stored under a scratch key of the same length.
pub(crate) async fn memory_per_entity(
    raw: &ConnectionManager,
    world: &WorldId,
    spec: &DemoSpec,
) -> Result<MemoryRow> {
    let mut conn = raw.clone();
    let (mut lw_usage, mut json_usage, mut lw_len, mut json_len) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..spec.characters {
        let key = CacheKey::entity(world, &spec.character(i)).to_string();
        let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
        let bytes = bytes.with_context(|| format!("{key} is not cached"))?;
        let CachedValue::Entity(document) = codec::decode(&bytes)?.value else {
            bail!("{key} holds something other than an entity");
        };
        let json = serde_json::to_vec(&document_to_json(&document))?;
        let scratch = key.replacen("lw:world:", "lw:plain:", 1);
        let _: () = redis::cmd("SET")
            .arg(&scratch)
            .arg(&json)
            .query_async(&mut conn)
            .await?;
        lw_usage += memory_usage(&mut conn, &key).await?;
        json_usage += memory_usage(&mut conn, &scratch).await?;
        let _: i64 = redis::cmd("DEL")
            .arg(&scratch)
            .query_async(&mut conn)
            .await?;
        lw_len += bytes.len() as u64;
        json_len += json.len() as u64;
    }
    let n = spec.characters.max(1) as f64;
    Ok(MemoryRow {
        entities: spec.characters,
        what: "every character state of the standard demo world".to_owned(),
        lwcache_memory_usage: lw_usage as f64 / n,
        json_memory_usage: json_usage as f64 / n,
        lwcache_value_bytes: lw_len as f64 / n,
        json_value_bytes: json_len as f64 / n,
    })
}

async fn memory_usage(conn: &mut ConnectionManager, key: &str) -> Result<u64> {
    let usage: Option<u64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query_async(conn)
        .await?;
    usage.with_context(|| format!("MEMORY USAGE found no {key}"))
}

/// Activations of a world of 1,000 entities with 100 events each against
/// writing the same bytes naively, one awaited `SET` per key, and as one
/// pipeline.
pub(crate) async fn activation<S, R>(
    store: S,
    raw: &ConnectionManager,
    repo: &Arc<R>,
    source: &str,
    run: u64,
    plan: &Plan,
) -> Result<(ActivationRow, Duration)>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let world = world_id("activate", source, run)?;
    let spec = DemoSpec::sized(1_000, 100);
    let seed = spec.seed();
    let loading = Instant::now();
    repo.load(&world, &seed)
        .await
        .context("loading the 1,000-entity world")?;
    let load_time = loading.elapsed();

    let counting = Arc::new(Counting::new(store));
    let manager = CacheManager::builder(Arc::clone(&counting), Arc::clone(repo))
        .config(config())
        .build()?;
    let top_k = manager.config().policy.timeline_top_k;

    // One untimed activation warms both sides and records what it writes.
    counting.start_recording();
    let first = manager.activate(&world).await?;
    let puts = counting.take_recording();
    ensure!(
        first.skipped == 0 && puts.len() == first.keys,
        "the warm-up activation wrote {} of {} keys",
        puts.len(),
        first.keys
    );
    let bytes = puts.iter().map(|p| p.bytes.len() as u64).sum();
    let mut keys: Vec<String> = puts.iter().map(|p| p.key.to_string()).collect();
    keys.push(CacheKey::version(&world).to_string());

    let (mut act, mut image, mut naive, mut piped) = (
        Samples::default(),
        Samples::default(),
        Samples::default(),
        Samples::default(),
    );
    let mut round_trips = 0;
    for _ in 0..plan.activations {
        clear(raw, &keys).await?;
        let started = Instant::now();
        repo.image(&world, top_k).await?;
        image.record(started.elapsed());

        counting.take_calls();
        let started = Instant::now();
        let report = manager.activate(&world).await?;
        act.record(started.elapsed());
        round_trips = counting.take_calls();
        ensure!(report.skipped == 0, "an activation skipped keys");

        clear(raw, &keys).await?;
        naive.record(set_one_by_one(raw, &puts).await?);
        clear(raw, &keys).await?;
        piped.record(set_pipelined(raw, &puts).await?);
    }
    // Leave the world warm, as an activation would.
    clear(raw, &keys).await?;
    manager.activate(&world).await?;
    Ok((
        ActivationRow {
            source: source.to_owned(),
            entities: spec.entities(),
            events_per_entity: spec.events_per_entity,
            keys: puts.len(),
            bytes,
            activation: act.summary(),
            activation_round_trips: round_trips,
            image_read: image.summary(),
            naive: naive.summary(),
            naive_round_trips: puts.len() as u64,
            pipelined: piped.summary(),
        },
        load_time,
    ))
}

async fn clear(raw: &ConnectionManager, keys: &[String]) -> Result<()> {
    let mut conn = raw.clone();
    for chunk in keys.chunks(500) {
        let _: i64 = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await?;
    }
    Ok(())
}

fn set_command(put: &Put) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(put.key.to_string()).arg(put.bytes.as_slice());
    if let Some(ttl) = put.ttl {
        cmd.arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
    }
    cmd
}

async fn set_one_by_one(raw: &ConnectionManager, puts: &[Put]) -> Result<Duration> {
    let mut conn = raw.clone();
    let commands: Vec<redis::Cmd> = puts.iter().map(set_command).collect();
    let started = Instant::now();
    for cmd in &commands {
        let _: () = cmd.query_async(&mut conn).await?;
    }
    Ok(started.elapsed())
}

async fn set_pipelined(raw: &ConnectionManager, puts: &[Put]) -> Result<Duration> {
    let mut conn = raw.clone();
    let mut pipe = redis::pipe();
    for put in puts {
        pipe.add_command(set_command(put)).ignore();
    }
    let started = Instant::now();
    let _: () = pipe.query_async(&mut conn).await?;
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use lwcache_domain::{Document, Value};

    use super::*;

    #[test]
    fn documents_map_to_plain_json() {
        let d = Document::new()
            .with("hp", Value::Int(3))
            .with(
                "tags",
                Value::List(vec![Value::Text("a".into()), Value::Null]),
            )
            .with("x", Value::Float(f64::NAN));
        assert_eq!(
            serde_json::to_string(&document_to_json(&d)).unwrap(),
            r#"{"hp":3,"tags":["a",null],"x":null}"#
        );
    }
}
