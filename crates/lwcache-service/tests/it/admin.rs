//! The admin routes through the binary: who may call them (the admin
//! token, else the `/v1` token, else a loopback-only listener), what they
//! delete (read back as misses, then hits again), their counters, and on a
//! real Redis Cluster that dropping a world leaves none of its keys on any
//! node.

use reqwest::Method;
use serde_json::json;

use crate::support::{Reply, Server, fresh_world, server_env};

/// `METHOD path` with `Authorization: Bearer token`.
async fn with_token(s: &Server, method: Method, path: &str, token: &str) -> Reply {
    let req = s.request(method, path).bearer_auth(token);
    Reply::read(req.send().await.expect("answered")).await
}

/// The value of `series` in the Prometheus text, if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn admin_count(text: &str, op: &str, result: &str) -> Option<f64> {
    sample(
        text,
        &format!("admin_operations_total{{operation=\"{op}\",result=\"{result}\"}}"),
    )
}

/// Creates world `w` with a snapshot and one character through `token`.
async fn seed(s: &Server, w: &str, token: &str) {
    let put = |path: String, body: serde_json::Value| {
        let req = s.request(Method::PUT, &path).bearer_auth(token).json(&body);
        async move { Reply::read(req.send().await.expect("answered")).await }
    };
    put(format!("/v1/worlds/{w}/state"), json!({ "title": "t" }))
        .await
        .expect(201, None);
    put(
        format!("/v1/worlds/{w}/characters/hero"),
        json!({ "name": "hero" }),
    )
    .await
    .expect(201, None);
}

#[tokio::test]
async fn admin_routes_take_the_admin_token_and_delete_what_they_name() {
    let s = Server::start(&["--auth-token", "v1-token", "--admin-token", "adm-token"]);
    let w = fresh_world("admin");
    seed(&s, &w, "v1-token").await;
    let hero = format!("/v1/worlds/{w}/characters/hero");
    let state = format!("/v1/worlds/{w}/state");
    // Written through: both are hits.
    for path in [&hero, &state] {
        let r = with_token(&s, Method::GET, path, "v1-token")
            .await
            .expect(200, None);
        assert_eq!(r.cache(), "hit", "{path}");
    }
    let metrics = s.get("/metrics").await.expect(200, None).text;
    for op in ["drop_world", "evict_key"] {
        for result in ["done", "failed"] {
            assert_eq!(admin_count(&metrics, op, result), Some(0.0), "{metrics}");
        }
    }

    // Evict one key: the /v1 token is not enough, nor no token.
    let key = format!("lw:world:{{{w}}}:character:hero:state");
    let evict = format!("/admin/keys/{key}");
    s.call(Method::DELETE, &evict, None)
        .await
        .expect(401, Some("unauthorized"));
    with_token(&s, Method::DELETE, &evict, "v1-token")
        .await
        .expect(401, Some("unauthorized"));
    let r = with_token(&s, Method::DELETE, &evict, "adm-token")
        .await
        .expect(200, None);
    assert_eq!(r.json["key"], key.as_str());
    let r = with_token(&s, Method::GET, &hero, "v1-token")
        .await
        .expect(200, None);
    assert_eq!(r.cache(), "miss", "the evicted key is read from the source");
    assert_eq!(r.json["name"], "hero");
    let r = with_token(&s, Method::GET, &state, "v1-token")
        .await
        .expect(200, None);
    assert_eq!(r.cache(), "hit", "the other key stays");
    // The version key is not an entry; a key must parse.
    for bad in [
        format!("/admin/keys/lw:world:{{{w}}}:ver"),
        "/admin/keys/not-a-key".to_owned(),
    ] {
        with_token(&s, Method::DELETE, &bad, "adm-token")
            .await
            .expect(400, Some("invalid_key"));
    }

    // Drop the world: every key goes; reads miss, then refill.
    let drop = format!("/admin/worlds/{w}/cache");
    with_token(&s, Method::DELETE, &drop, "v1-token")
        .await
        .expect(401, Some("unauthorized"));
    let r = with_token(&s, Method::DELETE, &drop, "adm-token")
        .await
        .expect(200, None);
    assert_eq!(r.json["world"], w.as_str());
    assert!(
        r.json["keys"].as_u64().unwrap() >= 2,
        "at least the refilled character, the state and the version: {r:?}"
    );
    for path in [&hero, &state] {
        let r = with_token(&s, Method::GET, path, "v1-token")
            .await
            .expect(200, None);
        assert_eq!(r.cache(), "miss", "{path} after the drop");
        let r = with_token(&s, Method::GET, path, "v1-token")
            .await
            .expect(200, None);
        assert_eq!(r.cache(), "hit", "{path} refilled");
    }
    with_token(
        &s,
        Method::DELETE,
        "/admin/worlds/bad%20id/cache",
        "adm-token",
    )
    .await
    .expect(400, Some("invalid_id"));

    let metrics = s.get("/metrics").await.expect(200, None).text;
    assert_eq!(admin_count(&metrics, "evict_key", "done"), Some(1.0));
    assert_eq!(admin_count(&metrics, "drop_world", "done"), Some(1.0));
    assert_eq!(admin_count(&metrics, "drop_world", "failed"), Some(0.0));
    let (status, _) = s.terminate();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn without_an_admin_token_the_v1_token_guards_the_admin_routes() {
    let s = Server::start(&["--auth-token", "v1-token"]);
    let w = fresh_world("admin-v1");
    seed(&s, &w, "v1-token").await;
    let drop = format!("/admin/worlds/{w}/cache");
    s.call(Method::DELETE, &drop, None)
        .await
        .expect(401, Some("unauthorized"));
    with_token(&s, Method::DELETE, &drop, "v1-token")
        .await
        .expect(200, None);
}

#[tokio::test]
async fn without_tokens_the_admin_routes_answer_on_loopback_only() {
    let local = Server::start(&[]);
    let w = fresh_world("admin-open");
    seed(&local, &w, "unused").await;
    let r = local
        .call(Method::DELETE, &format!("/admin/worlds/{w}/cache"), None)
        .await
        .expect(200, None);
    assert!(r.json["keys"].as_u64().unwrap() >= 1, "{r:?}");

    // Bound to every interface: refused, and nothing is deleted.
    let open = Server::start_on("0.0.0.0:0", &[], &[]);
    seed(&open, &w, "unused").await;
    for path in [
        format!("/admin/worlds/{w}/cache"),
        format!("/admin/keys/lw:world:{{{w}}}:state"),
    ] {
        open.call(Method::DELETE, &path, None)
            .await
            .expect(403, Some("admin_disabled"));
    }
    let r = open
        .get(&format!("/v1/worlds/{w}/state"))
        .await
        .expect(200, None);
    assert_eq!(r.cache(), "hit", "the refused drop deleted nothing");
}

/// `redis-cli` on one node of `url` (`redis://host:port`).
fn node_keys(url: &str, pattern: &str) -> Vec<String> {
    let out = std::process::Command::new("redis-cli")
        .args(["-u", url, "--scan", "--pattern", pattern])
        .output()
        .expect("redis-cli runs (apt-get install redis-tools)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn dropping_a_world_on_a_redis_cluster_leaves_none_of_its_keys() {
    let Some(urls) = server_env("LWCACHE_TEST_REDIS_CLUSTER_URLS") else {
        return;
    };
    let nodes: Vec<&str> = urls.split(',').map(str::trim).collect();
    let s = Server::start(&["--redis-cluster", &urls]);
    let w = fresh_world("admin-cluster");
    let other = fresh_world("admin-cluster-other");
    seed(&s, &w, "unused").await;
    seed(&s, &other, "unused").await;
    s.call(Method::POST, &format!("/v1/worlds/{w}/activate"), None)
        .await
        .expect(200, None);
    let pattern = |w: &str| format!("lw:world:{{{w}}}:*");
    let before: usize = nodes.iter().map(|n| node_keys(n, &pattern(&w)).len()).sum();
    assert!(before >= 3, "the world is cached: {before} keys");
    let r = s
        .call(Method::DELETE, &format!("/admin/worlds/{w}/cache"), None)
        .await
        .expect(200, None);
    assert_eq!(r.json["keys"].as_u64(), Some(before as u64), "{r:?}");
    for node in &nodes {
        assert_eq!(
            node_keys(node, &pattern(&w)),
            Vec::<String>::new(),
            "{node}"
        );
    }
    let kept: usize = nodes
        .iter()
        .map(|n| node_keys(n, &pattern(&other)).len())
        .sum();
    assert!(kept >= 2, "the other world stays: {kept} keys");
    let r = s
        .get(&format!("/v1/worlds/{w}/characters/hero"))
        .await
        .expect(200, None);
    assert_eq!(r.cache(), "miss");
}
