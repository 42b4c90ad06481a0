//! The binary on a real Redis Cluster (`--redis-cluster`): the route suite,
//! then plain `redis-cli` against every node shows that the world's keys
//! all hash to one slot, held by one node, as the adapter's scripts need.

use std::collections::BTreeSet;
use std::process::Command;

use crate::routes::{LIMIT, every_route, service_routes};
use crate::support::{Server, serve_refused, server_env};

/// `host` and `port` of a `redis://host:port` URL (no credentials in the
/// test Cluster's URLs).
fn host_port(url: &str) -> (String, String) {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .trim_end_matches('/');
    let (host, port) = authority
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in {url}"));
    (host.to_owned(), port.to_owned())
}

/// `redis-cli` against one node, its output's lines.
fn cli(url: &str, args: &[&str]) -> Vec<String> {
    let (host, port) = host_port(url);
    let out = Command::new("redis-cli")
        .args(["-h", &host, "-p", &port])
        .args(args)
        .output()
        .expect("redis-cli runs (apt-get install redis-tools)");
    assert!(
        out.status.success(),
        "redis-cli {args:?} on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn keyslot(url: &str, key: &str) -> u16 {
    let out = cli(url, &["CLUSTER", "KEYSLOT", key]);
    out.first()
        .and_then(|s| s.trim_start_matches("(integer) ").parse().ok())
        .unwrap_or_else(|| panic!("CLUSTER KEYSLOT {key}: {out:?}"))
}

#[tokio::test]
async fn every_route_on_a_redis_cluster_keeps_a_world_in_one_slot() {
    let Some(urls) = server_env("LWCACHE_TEST_REDIS_CLUSTER_URLS") else {
        return;
    };
    let nodes: Vec<&str> = urls.split(',').map(str::trim).collect();
    assert!(
        nodes.len() >= 2,
        "a Cluster of one node proves little: {urls}"
    );
    let s = Server::start(&[
        "--redis-cluster",
        &urls,
        "--write-mode",
        "invalidate",
        "--max-body-bytes",
        &LIMIT.to_string(),
    ]);
    {
        let out = s.stdout.lock().unwrap().clone();
        assert!(out.contains("cache:  Redis Cluster at redis://"), "{out}");
    }
    let r = s.get("/readyz").await.expect(200, None);
    assert!(
        r.json["cache"]["backend"]
            .as_str()
            .unwrap()
            .starts_with("Redis Cluster"),
        "{r:?}"
    );
    let world = every_route(&s).await;
    service_routes(&s).await;

    // Every node's own keys of the world: SCAN on a Cluster node lists
    // only the keys it holds.
    let pattern = format!("lw:world:{{{world}}}:*");
    let mut holders = Vec::new();
    let mut keys = BTreeSet::new();
    for node in &nodes {
        let mine = cli(node, &["--scan", "--pattern", &pattern]);
        if !mine.is_empty() {
            holders.push(*node);
        }
        keys.extend(mine);
    }
    assert!(
        keys.len() >= 3,
        "the suite activated the world, so its keys are cached: {keys:?}"
    );
    assert_eq!(
        holders.len(),
        1,
        "the world's keys are spread over several nodes: {holders:?}"
    );
    let slots: BTreeSet<u16> = keys.iter().map(|k| keyslot(nodes[0], k)).collect();
    assert_eq!(
        slots,
        BTreeSet::from([keyslot(nodes[0], &world)]),
        "every key of the world hashes to the slot of its hash tag: {keys:?}"
    );

    let (status, out) = s.terminate();
    assert_eq!(status.code(), Some(0), "{out}");
}

#[test]
fn redis_url_and_redis_cluster_together_are_refused_naming_both() {
    let err = serve_refused(
        &[
            "--redis-url",
            "redis://127.0.0.1:1",
            "--redis-cluster",
            "redis://127.0.0.1:2,redis://127.0.0.1:3",
        ],
        &[],
    );
    assert!(
        err.contains("--redis-url") && err.contains("--redis-cluster"),
        "{err}"
    );
}

#[test]
fn a_bad_cluster_url_in_the_environment_is_refused_by_name() {
    let err = serve_refused(
        &[],
        &[(
            "LWCACHE_REDIS_CLUSTER",
            "redis://:s3cret-pw@127.0.0.1:2,http://127.0.0.1:3",
        )],
    );
    assert!(err.contains("LWCACHE_REDIS_CLUSTER"), "{err}");
    assert!(err.contains("http"), "the problem is named: {err}");
    assert!(!err.contains("s3cret-pw"), "{err}");
}
