//! Redis's eviction policy, checked through the binary on a redis-server of
//! the test's own (its policy set with `CONFIG SET`): named in `/readyz`'s
//! `cache.eviction` and in the log at start, with the service staying
//! ready; a user whose ACL refuses `CONFIG` is said to be refused.

use std::process::{Command, Stdio};

use lwcache_testkit::own_redis::OwnRedis;
use serde_json::{Value, json};

use crate::support::{Server, server_env};

fn cli(redis: &OwnRedis, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &redis.port().to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    assert!(out.status.success(), "redis-cli {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn eviction(s: &Server) -> Value {
    let r = s.get("/readyz").await.expect(200, None);
    assert_eq!(r.json["status"], "ready", "a warning, not a state: {r:?}");
    r.json["cache"]["eviction"].clone()
}

#[tokio::test]
async fn the_eviction_policy_is_named_on_readyz_and_in_the_log() {
    let Some(redis) = OwnRedis::start("the_eviction_policy_is_named_on_readyz_and_in_the_log")
    else {
        return;
    };
    cli(
        &redis,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
    );
    let log = std::env::temp_dir().join(format!("{}.log", crate::support::fresh_world("eviction")));
    let file = std::fs::File::create(&log).unwrap();
    let s = Server::start_logging_to(
        &["--redis-url", &redis.url()],
        &[("LWCACHE_LOG", "info")],
        Stdio::from(file),
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(
        text.contains("allkeys-lru") && text.contains("WARN"),
        "the start's log names the policy: {text}"
    );

    let e = eviction(&s).await;
    assert_eq!(e["ok"], false, "{e}");
    assert_eq!(e["nodes"][0]["policy"], "allkeys-lru", "{e}");
    assert_eq!(e["nodes"][0]["verdict"], "evicts_unexpiring_keys", "{e}");
    assert!(
        e["warnings"][0].as_str().unwrap().contains("allkeys-lru"),
        "{e}"
    );

    // Read again on every /readyz: a safe policy clears the warning.
    cli(
        &redis,
        &["CONFIG", "SET", "maxmemory-policy", "volatile-lru"],
    );
    let e = eviction(&s).await;
    assert_eq!(e["ok"], true, "{e}");
    assert_eq!(e["warnings"], json!([]), "{e}");

    // noeviction is safe until memory is nearly full.
    cli(&redis, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    let e = eviction(&s).await;
    assert_eq!(e["ok"], true, "{e}");
    let used = e["nodes"][0]["used_memory"].as_u64().unwrap();
    let max = (used + used / 50).to_string();
    cli(&redis, &["CONFIG", "SET", "maxmemory", &max]);
    let e = eviction(&s).await;
    assert_eq!(e["ok"], false, "{e}");
    assert_eq!(e["nodes"][0]["verdict"], "nearly_full", "{e}");
    assert!(
        e["warnings"][0].as_str().unwrap().contains("noeviction"),
        "{e}"
    );
    cli(&redis, &["CONFIG", "SET", "maxmemory", "0"]);
    let (status, out) = s.terminate();
    assert_eq!(status.code(), Some(0), "{out}");
}

#[tokio::test]
async fn a_user_refused_config_is_told_apart_from_a_failure() {
    let Some(redis) = OwnRedis::start("a_user_refused_config_is_told_apart_from_a_failure") else {
        return;
    };
    cli(
        &redis,
        // Everything lwcache needs (its keys, its channel) but CONFIG.
        &[
            "ACL",
            "SETUSER",
            "noconfig",
            "on",
            ">pw",
            "~lw:*",
            "resetchannels",
            "&lw:invalidate",
            "+@all",
            "-config",
        ],
    );
    cli(
        &redis,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"],
    );
    let url = format!("redis://noconfig:pw@127.0.0.1:{}", redis.port());
    let s = Server::start(&["--redis-url", &url]);
    let e = eviction(&s).await;
    let node = &e["nodes"][0];
    let refusal = node["config_refused"]
        .as_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        refusal.contains("noperm") && refusal.contains("config"),
        "{e}"
    );
    assert_eq!(node["policy"], "allkeys-lfu", "read from INFO memory: {e}");
    assert_eq!(e["ok"], false, "{e}");
}

#[tokio::test]
async fn every_cluster_master_is_checked() {
    let Some(urls) = server_env("LWCACHE_TEST_REDIS_CLUSTER_URLS") else {
        return;
    };
    let s = Server::start(&["--redis-cluster", &urls]);
    let e = eviction(&s).await;
    let nodes = e["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{e}");
    assert!(nodes.iter().all(|n| n["policy"].is_string()), "{e}");
}
