//! The near cache through the binary: two `lwcache serve` processes with
//! `--near-cache-bytes` over one Redis and one Neo4j. A repeated read is
//! answered near (`x-cache-tier: near`), a write through one process is
//! read through the other within the lag bound, and bad settings are
//! refused naming the setting.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::neo4j::neo4j_args;
use crate::support::{Server, fresh_world, serve_refused, server_env};

const MAX_LAG_MS: u64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_process_reaches_the_others_near_cache_in_time() {
    let Some(redis) = server_env("LWCACHE_TEST_REDIS_URL") else {
        return;
    };
    let Some(mut args) = neo4j_args() else {
        return;
    };
    args.extend(
        [
            "--redis-url",
            &redis,
            "--near-cache-bytes",
            "1048576",
            "--near-max-lag-ms",
            &MAX_LAG_MS.to_string(),
            "--near-heartbeat-ms",
            "20",
        ]
        .map(str::to_owned),
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = Server::start(&refs);
    let b = Server::start(&refs);
    let world = fresh_world("near");
    let path = format!("/v1/worlds/{world}/characters/hero");
    a.call(
        Method::PUT,
        &format!("/v1/worlds/{world}/state"),
        Some(&json!({"name": "Harbor"})),
    )
    .await
    .expect(201, None);
    a.call(Method::PUT, &path, Some(&json!({"n": 0})))
        .await
        .expect(201, None);

    let mut near_reads = 0;
    for n in 1..=20u64 {
        // B reads until its near cache answers.
        let started = Instant::now();
        loop {
            let r = b.get(&path).await.expect(200, None);
            if r.header("x-cache-tier") == Some("near") {
                near_reads += 1;
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "never near: {r:?}"
            );
        }
        let w = a
            .call(Method::PUT, &path, Some(&json!({"n": n})))
            .await
            .expect(200, None);
        let acked = Instant::now();
        let version = w.json["version"].as_u64().unwrap();
        loop {
            let r = b.get(&path).await.expect(200, None);
            if r.version() >= version {
                assert_eq!(r.json["n"], n);
                break;
            }
            assert!(
                acked.elapsed() <= Duration::from_millis(MAX_LAG_MS),
                "B served version {} ({:?}) {:?} after A acknowledged {version}",
                r.version(),
                r.header("x-cache-tier"),
                acked.elapsed()
            );
        }
    }
    assert_eq!(near_reads, 20);
    let metrics = b.get("/metrics").await.expect(200, None).text;
    let near_hits: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("cache_near_hits_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(near_hits >= 20.0, "{metrics}");
    for s in [a, b] {
        let (status, out) = s.terminate();
        assert_eq!(status.code(), Some(0), "{out}");
    }
}

#[test]
fn near_cache_settings_are_checked_by_name() {
    let err = serve_refused(&["--near-cache-bytes", "1000"], &[]);
    assert!(
        err.contains("--near-cache-bytes") && err.contains("65536"),
        "{err}"
    );
    let err = serve_refused(
        &["--near-cache-bytes", "1048576", "--near-max-lag-ms", "0"],
        &[],
    );
    assert!(err.contains("--near-max-lag-ms"), "{err}");
    let err = serve_refused(
        &[],
        &[
            ("LWCACHE_NEAR_CACHE_BYTES", "1048576"),
            ("LWCACHE_NEAR_MAX_LAG_MS", "100"),
            ("LWCACHE_NEAR_HEARTBEAT_MS", "80"),
        ],
    );
    assert!(err.contains("LWCACHE_NEAR_HEARTBEAT_MS"), "{err}");
}
