//! Stampede control across processes: 100 concurrent readers of one cold
//! key, spread over two `lwcache serve` processes sharing one Redis and one
//! Neo4j, cost exactly one Neo4j read. Each process sends its concurrent
//! misses through one flight; the two flights meet at the key's lease in
//! Redis, and the one that loses waits for the other's fill.
//!
//! The reads are counted by Neo4j itself, not by the project's code: its
//! query collector (`db.stats.collect('QUERIES')`, in Community) records
//! every invocation with its parameters, so the count is of the entity
//! statement run with this test's world.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::neo4j::neo4j_args;
use crate::support::{Server, fresh_world, server_env};

const READERS: usize = 100;

/// The entity read's statement, as the Neo4j adapter sends it, told apart
/// from every other statement by this line.
const ENTITY_READ: &str = "OPTIONAL MATCH (e:Entity {world_id: $w, id: $id})";

async fn graph() -> neo4rs::Graph {
    let var = |v: &str| std::env::var(v).ok().filter(|v| !v.trim().is_empty());
    let config = neo4rs::ConfigBuilder::default()
        .uri(var("LWCACHE_TEST_NEO4J_URI").unwrap())
        .user(var("LWCACHE_TEST_NEO4J_USER").unwrap_or_else(|| "neo4j".to_owned()))
        .password(var("LWCACHE_TEST_NEO4J_PASSWORD").unwrap_or_default())
        .build()
        .unwrap();
    neo4rs::Graph::connect(config).unwrap()
}

async fn run(graph: &neo4rs::Graph, q: neo4rs::Query) {
    let mut rows = graph.execute(q).await.unwrap();
    while rows.next().await.unwrap().is_some() {}
}

/// How many times Neo4j ran the entity read with `world` as its world, by
/// its query collector.
async fn entity_reads(graph: &neo4rs::Graph, world: &str) -> i64 {
    let q = neo4rs::query(
        "CALL db.stats.retrieve('QUERIES') YIELD data \
         WITH data WHERE data.query CONTAINS $statement \
         UNWIND data.invocations AS invocation \
         WITH invocation WHERE invocation.params.w = $w \
         RETURN count(invocation) AS n",
    )
    .param("statement", ENTITY_READ)
    .param("w", world);
    let mut rows = graph.execute(q).await.unwrap();
    let row = rows.next().await.unwrap().expect("one row");
    row.get("n").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cold_key_read_by_100_callers_in_two_processes_costs_one_neo4j_read() {
    let Some(redis) = server_env("LWCACHE_TEST_REDIS_URL") else {
        return;
    };
    let Some(mut args) = neo4j_args() else {
        return;
    };
    // Invalidation leaves the created entity's key cold (a tombstone); a
    // lease wait far above any fill's time makes the losing process wait
    // for the winner's fill rather than read the source after the bound.
    args.extend(
        [
            "--redis-url",
            &redis,
            "--write-mode",
            "invalidate",
            "--lease-wait-ms",
            "10000",
        ]
        .map(str::to_owned),
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = Server::start(&refs);
    let b = Server::start(&refs);
    let world = fresh_world("stampede");
    let path = format!("/v1/worlds/{world}/characters/hero");
    a.call(
        Method::PUT,
        &format!("/v1/worlds/{world}/state"),
        Some(&json!({"name": "Harbor"})),
    )
    .await
    .expect(201, None);
    a.call(Method::PUT, &path, Some(&json!({"mood": "calm"})))
        .await
        .expect(201, None);

    let graph = graph().await;
    // A fresh collection, so that no earlier test's invocations fill the
    // collector's per-statement quota.
    run(&graph, neo4rs::query("CALL db.stats.stop('QUERIES')")).await;
    run(&graph, neo4rs::query("CALL db.stats.clear('QUERIES')")).await;
    run(
        &graph,
        neo4rs::query(
            "CALL db.stats.collect('QUERIES', \
             {durationSeconds: 300, numberOfInvocationsPerQuery: 100000})",
        ),
    )
    .await;
    assert_eq!(entity_reads(&graph, &world).await, 0, "nothing read yet");

    let client = reqwest::Client::new();
    let start = Arc::new(tokio::sync::Barrier::new(READERS));
    let mut readers = Vec::with_capacity(READERS);
    for i in 0..READERS {
        let url = format!("{}{path}", if i % 2 == 0 { &a.base } else { &b.base });
        let client = client.clone();
        let start = Arc::clone(&start);
        readers.push(tokio::spawn(async move {
            start.wait().await;
            let r = client.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            let cache = r.headers()["x-cache"].to_str().unwrap().to_owned();
            let body: serde_json::Value = r.json().await.unwrap();
            (status, cache, body)
        }));
    }
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for reader in readers {
        let (status, cache, body) = reader.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, json!({"mood": "calm"}));
        *outcomes.entry(cache).or_default() += 1;
    }

    // The collector records asynchronously: wait for the first read, then
    // give any other one time to arrive.
    let deadline = Instant::now() + Duration::from_secs(20);
    while entity_reads(&graph, &world).await == 0 {
        assert!(
            Instant::now() < deadline,
            "Neo4j recorded no read of the key ({outcomes:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        entity_reads(&graph, &world).await,
        1,
        "Neo4j reads of one cold key read by {READERS} callers over two processes ({outcomes:?})"
    );
    assert_eq!(
        a.get(&path).await.expect(200, None).cache(),
        "hit",
        "the one read filled the cache"
    );
    for s in [a, b] {
        let (status, out) = s.terminate();
        assert_eq!(status.code(), Some(0), "{out}");
    }
}
