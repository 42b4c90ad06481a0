//! Every route over HTTP: statuses, bodies, `x-cache` transitions,
//! `x-world-version`, bad inputs that change nothing, the bearer token,
//! and SIGTERM.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, fresh_world, server_env};

/// The body limit the suite's servers are started with.
pub(crate) const LIMIT: usize = 4096;

/// The whole suite, on a server started with `--write-mode invalidate` and
/// `--max-body-bytes 4096`, over whichever backends it runs on; answers the
/// id of the world it wrote.
pub(crate) async fn every_route(s: &Server) -> String {
    let w = fresh_world("routes");
    let v1 = |rest: &str| format!("/v1/worlds/{w}{rest}");

    // An unknown world: 404 on reads and on entity writes.
    s.get(&v1("/state"))
        .await
        .expect(404, Some("unknown_world"));
    s.get(&v1("/flags"))
        .await
        .expect(404, Some("unknown_world"));
    s.call(
        Method::PUT,
        &v1("/characters/hero"),
        Some(&json!({"name": "Ada"})),
    )
    .await
    .expect(404, Some("unknown_world"));

    // PUT state creates the world (201), then replaces its snapshot (200).
    let snapshot = json!({"name": "Harbor", "depth": 3, "ratio": 0.5, "tags": ["fog", null], "meta": {"a": true}});
    let r = s
        .call(Method::PUT, &v1("/state"), Some(&snapshot))
        .await
        .expect(201, None);
    assert_eq!(r.json["version"], json!(1));
    assert_eq!(r.version(), 1);
    let snapshot = json!({"name": "Harbor", "depth": 4, "ratio": 0.5, "weather": "fog"});
    let r = s
        .call(Method::PUT, &v1("/state"), Some(&snapshot))
        .await
        .expect(200, None);
    assert_eq!(r.version(), 2);

    // miss, then hit, at the same version, with the same body.
    let first = s.get(&v1("/state")).await.expect(200, None);
    assert_eq!(first.cache(), "miss");
    assert_eq!(first.json, snapshot);
    assert_eq!(first.version(), 2);
    let second = s.get(&v1("/state")).await.expect(200, None);
    assert_eq!(second.cache(), "hit");
    assert_eq!(second.json, snapshot);
    assert_eq!(second.version(), 2);

    // Flags.
    let r = s
        .call(Method::PUT, &v1("/flags/door_open"), Some(&json!(true)))
        .await
        .expect(200, None);
    assert_eq!(r.version(), 3);
    s.call(Method::PUT, &v1("/flags/visits"), Some(&json!(7)))
        .await
        .expect(200, None);
    let r = s.get(&v1("/flags/door_open")).await.expect(200, None);
    assert_eq!(r.json, json!(true));
    assert_eq!(r.cache(), "miss");
    let r = s.get(&v1("/flags")).await.expect(200, None);
    assert_eq!(r.json, json!({"door_open": true, "visits": 7}));
    assert_eq!(r.cache(), "hit");
    assert_eq!(r.version(), 4);
    s.call(Method::DELETE, &v1("/flags/door_open"), None)
        .await
        .expect(200, None);
    let r = s
        .get(&v1("/flags/door_open"))
        .await
        .expect(404, Some("unknown_flag"));
    assert_eq!(
        r.cache(),
        "miss",
        "a 404 of a read still says how it was served"
    );
    assert!(r.message().contains("door_open"), "{r:?}");
    let r = s.get(&v1("/flags/visits")).await.expect(200, None);
    assert_eq!((r.json.clone(), r.cache()), (json!(7), "hit"));

    // Characters: create (201), read miss then hit, update, read misses
    // again with the new value and a newer version.
    let hero = json!({"name": "Ada", "hp": 10});
    s.call(Method::PUT, &v1("/characters/hero"), Some(&hero))
        .await
        .expect(201, None);
    let r = s.get(&v1("/characters/hero")).await.expect(200, None);
    assert_eq!((r.json.clone(), r.cache()), (hero.clone(), "miss"));
    let before = r.version();
    let r = s.get(&v1("/characters/hero")).await.expect(200, None);
    assert_eq!((r.cache(), r.version()), ("hit", before));
    let hero2 = json!({"name": "Ada", "hp": 9, "pos": [1.5, -2]});
    let w2 = s
        .call(Method::PUT, &v1("/characters/hero"), Some(&hero2))
        .await
        .expect(200, None);
    let r = s.get(&v1("/characters/hero")).await.expect(200, None);
    assert_eq!((r.json.clone(), r.cache()), (hero2.clone(), "miss"));
    assert_eq!(r.version(), w2.version());
    assert!(r.version() > before);
    assert_eq!(s.get(&v1("/characters/hero")).await.cache(), "hit");

    // Locations and objects: the same three verbs.
    for (plural, id) in [("locations", "pier"), ("objects", "lamp")] {
        let path = v1(&format!("/{plural}/{id}"));
        s.call(Method::PUT, &path, Some(&json!({"name": id})))
            .await
            .expect(201, None);
        let r = s.get(&path).await.expect(200, None);
        assert_eq!(r.json, json!({"name": id}));
        s.call(Method::DELETE, &path, None).await.expect(200, None);
        s.get(&path).await.expect(404, Some("unknown_entity"));
        s.call(Method::DELETE, &path, None)
            .await
            .expect(404, Some("unknown_entity"));
    }
    // An id taken by another kind: 409.
    s.call(Method::PUT, &v1("/objects/hero"), Some(&json!({})))
        .await
        .expect(409, Some("entity_exists"));
    // The entity routes check the kind: hero is no location.
    s.get(&v1("/locations/hero"))
        .await
        .expect(404, Some("unknown_entity"));

    // Timeline: three events, newest first, limited.
    let mut seqs = Vec::new();
    for (i, kind) in ["spoke", "moved", "noticed"].iter().enumerate() {
        let r = s
            .call(
                Method::POST,
                &v1("/timeline/hero/events"),
                Some(&json!({"kind": kind, "data": {"n": i}})),
            )
            .await
            .expect(201, None);
        assert_eq!(r.json["seq"], r.json["version"]);
        seqs.push(r.json["seq"].as_u64().unwrap());
    }
    let r = s
        .get(&v1("/timeline/hero/recent?limit=2"))
        .await
        .expect(200, None);
    let events = r.json.as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["kind"], "noticed");
    assert_eq!(events[0]["seq"].as_u64(), Some(seqs[2]));
    assert_eq!(events[1]["seq"].as_u64(), Some(seqs[1]));
    assert_eq!(events[0]["data"], json!({"n": 2}));
    assert_eq!(events[0]["entity"], "hero");
    assert!(r.header("x-cache").is_some() && r.version() >= seqs[2]);
    let r = s.get(&v1("/timeline/hero/recent")).await.expect(200, None);
    assert_eq!(r.json.as_array().unwrap().len(), 3);
    s.call(
        Method::POST,
        &v1("/timeline/ghost/events"),
        Some(&json!({"kind": "spoke"})),
    )
    .await
    .expect(404, Some("unknown_entity"));

    // Activation warms the world; the next reads hit.
    let r = s
        .call(Method::POST, &v1("/activate"), None)
        .await
        .expect(200, None);
    assert!(r.json["keys"].as_u64().unwrap() >= 3, "{r:?}");
    assert_eq!(s.get(&v1("/characters/hero")).await.cache(), "hit");
    assert_eq!(s.get(&v1("/timeline/hero/recent")).await.cache(), "hit");
    s.call(Method::POST, "/v1/worlds/no-such-world/activate", None)
        .await
        .expect(404, Some("unknown_world"));

    turn_read(s, &w).await;

    bad_inputs(s, &w).await;
    w
}

/// A turn in one request: each item agrees with its single read, unknown
/// entities fail their own item, the limits are named.
async fn turn_read(s: &Server, w: &str) {
    let path = format!("/v1/worlds/{w}/read");
    let body = json!({
        "snapshot": true,
        "flags": true,
        "characters": ["hero", "nobody"],
        "locations": ["hero"],
        "timelines": [{"entity_id": "hero", "limit": 2}, {"entity_id": "hero2"}, {"entity_id": "ghost"}],
    });
    s.call(
        Method::PUT,
        &format!("/v1/worlds/{w}/characters/hero2"),
        Some(&json!({"name": "Bo"})),
    )
    .await
    .expect(201, None);
    let r = s
        .call(Method::POST, &path, Some(&body))
        .await
        .expect(200, None);
    let t = &r.json;
    let single = |rest: &str| format!("/v1/worlds/{w}{rest}");
    assert_eq!(t["snapshot"]["value"], s.get(&single("/state")).await.json);
    assert_eq!(
        t["snapshot"]["cache"], "hit",
        "warmed by the activation: {t}"
    );
    assert_eq!(t["flags"]["value"], s.get(&single("/flags")).await.json);
    assert_eq!(
        t["characters"]["hero"]["value"],
        s.get(&single("/characters/hero")).await.json
    );
    assert_eq!(t["characters"]["nobody"]["error"]["code"], "unknown_entity");
    assert_eq!(
        t["locations"]["hero"]["error"]["code"], "unknown_entity",
        "hero is no location"
    );
    let recent = s.get(&single("/timeline/hero/recent?limit=2")).await.json;
    assert_eq!(t["timelines"]["hero"]["events"], recent);
    assert_eq!(t["timelines"]["hero2"]["events"], json!([]));
    assert_eq!(t["timelines"]["ghost"]["error"]["code"], "unknown_entity");
    let newest = t["version"].as_u64().unwrap();
    assert_eq!(r.version(), newest);
    assert!(newest >= t["characters"]["hero"]["version"].as_u64().unwrap());

    // A second read of the same turn hits on every known item.
    let again = s
        .call(Method::POST, &path, Some(&body))
        .await
        .expect(200, None);
    for item in [
        &again.json["snapshot"],
        &again.json["flags"],
        &again.json["characters"]["hero"],
        &again.json["timelines"]["hero"],
    ] {
        assert_eq!(item["cache"], "hit", "{}", again.json);
    }

    // Refusals name the problem.
    let many: Vec<String> = (0..300).map(|i| format!("c{i}")).collect();
    let r = s
        .call(Method::POST, &path, Some(&json!({ "characters": many })))
        .await
        .expect(400, Some("too_many_items"));
    assert!(r.message().contains("256"), "{r:?}");
    s.call(
        Method::POST,
        &path,
        Some(&json!({ "timelines": [{"entity_id": "hero", "limit": 0}] })),
    )
    .await
    .expect(400, Some("invalid_limit"));
    s.call(
        Method::POST,
        &path,
        Some(&json!({ "snapshot": true, "extra": 1 })),
    )
    .await
    .expect(422, Some("invalid_body"));
    s.call(Method::POST, &path, Some(&json!({})))
        .await
        .expect(422, Some("invalid_body"));
    // An array would be taken field by field, in order; a field or an id
    // named twice would keep one answer of two.
    for (body, names) in [
        (r#"[true]"#.to_owned(), "a JSON object"),
        (r#"{"snapshot": true, "snapshot": false}"#.to_owned(), "duplicate field"),
        (r#"{"characters": ["hero", "hero"]}"#.to_owned(), "twice"),
        (
            r#"{"timelines": [{"entity_id": "hero", "limit": 1}, {"entity_id": "hero", "limit": 50}]}"#
                .to_owned(),
            "twice",
        ),
    ] {
        let r = s
            .call_raw(Method::POST, &path, body.clone().into_bytes())
            .await
            .expect(422, Some("invalid_body"));
        assert!(r.message().contains(names), "{body}: {r:?}");
    }
    s.call_raw(Method::POST, &path, b"{\"snapshot\": tru".to_vec())
        .await
        .expect(400, Some("bad_json"));
    s.call(
        Method::POST,
        &path,
        Some(&json!({ "characters": ["no spaces"] })),
    )
    .await
    .expect(400, None);
    s.call(
        Method::POST,
        "/v1/worlds/no-such-world/read",
        Some(&json!({ "snapshot": true })),
    )
    .await
    .expect(404, Some("unknown_world"));
}

/// Refused requests: each answers a 4xx naming the problem, and none
/// changes the world (the next write gets exactly the next version).
async fn bad_inputs(s: &Server, w: &str) {
    let v1 = |rest: &str| format!("/v1/worlds/{w}{rest}");
    let state = s.get(&v1("/state")).await.expect(200, None);
    let hero = s.get(&v1("/characters/hero")).await.expect(200, None);
    let probe = s
        .call(Method::PUT, &v1("/flags/probe"), Some(&json!(0)))
        .await
        .expect(200, None);
    let version = probe.version();

    // Malformed ids, in every position.
    for (path, what) in [
        ("/v1/worlds/bad:id/state".to_owned(), "world id"),
        ("/v1/worlds/%7Bx%7D/flags".to_owned(), "world id"),
        (v1("/characters/a%20b"), "character id"),
        (v1("/locations/%C3%A9"), "location id"),
        (v1(&format!("/objects/{}", "o".repeat(129))), "object id"),
        (v1("/flags/no%3Aflag"), "flag name"),
        (v1("/timeline/x%2Fy/recent"), "entity id"),
    ] {
        let r = s.get(&path).await.expect(400, Some("invalid_id"));
        assert!(r.message().contains(what), "{path}: {r:?}");
    }
    s.call(Method::PUT, &v1("/characters/bad%3Aid"), Some(&json!({})))
        .await
        .expect(400, Some("invalid_id"));
    // A capture that is not UTF-8 once percent-decoded.
    let r = s
        .get(&v1("/characters/%FF"))
        .await
        .expect(400, Some("invalid_path"));
    assert!(r.message().contains("UTF-8"), "{r:?}");

    // Bad JSON, wrong shapes, values out of range, documents too deep.
    let r = s
        .call_raw(Method::PUT, &v1("/state"), b"{\"name\": ".to_vec())
        .await
        .expect(400, Some("bad_json"));
    assert!(r.message().contains("line 1"), "{r:?}");
    s.call_raw(Method::PUT, &v1("/state"), Vec::new())
        .await
        .expect(400, Some("bad_json"));
    s.call(Method::PUT, &v1("/state"), Some(&json!([1, 2])))
        .await
        .expect(422, Some("invalid_value"));
    s.call(Method::PUT, &v1("/characters/hero"), Some(&json!("Ada")))
        .await
        .expect(422, Some("invalid_value"));
    let r = s
        .call_raw(
            Method::PUT,
            &v1("/characters/hero"),
            br#"{"hp": 18446744073709551615}"#.to_vec(),
        )
        .await
        .expect(422, Some("invalid_value"));
    assert!(r.message().contains("/hp"), "{r:?}");
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!([deep]);
    }
    s.call(
        Method::PUT,
        &v1("/characters/hero"),
        Some(&json!({ "deep": deep })),
    )
    .await
    .expect(422, Some("invalid_document"));
    s.call_raw(Method::PUT, &v1("/flags/probe"), b"tru".to_vec())
        .await
        .expect(400, Some("bad_json"));
    for (body, code) in [
        (json!({"kind": "bad kind"}), "invalid_event_kind"),
        (json!({"data": {}}), "invalid_body"),
        (json!({"kind": "spoke", "when": 1}), "invalid_body"),
        (json!({"kind": 3}), "invalid_body"),
        (json!({"kind": "spoke", "data": [1]}), "invalid_value"),
        (json!(["spoke"]), "invalid_body"),
    ] {
        s.call(Method::POST, &v1("/timeline/hero/events"), Some(&body))
            .await
            .expect(422, Some(code));
    }

    // A body over the configured limit: 413, nothing written.
    let big = json!({ "text": "x".repeat(LIMIT) });
    let r = s
        .call(Method::PUT, &v1("/state"), Some(&big))
        .await
        .expect(413, Some("body_too_large"));
    assert!(r.message().contains(&LIMIT.to_string()), "{r:?}");
    s.call(Method::PUT, &v1("/characters/hero"), Some(&big))
        .await
        .expect(413, Some("body_too_large"));

    // Bad queries, unknown routes and methods.
    for q in ["limit=0", "limit=abc", "limit=100000"] {
        s.get(&v1(&format!("/timeline/hero/recent?{q}")))
            .await
            .expect(400, Some("invalid_query"));
    }
    s.get(&v1("/nothing-here"))
        .await
        .expect(404, Some("no_route"));
    s.get("/v2/worlds").await.expect(404, Some("no_route"));
    s.call(Method::DELETE, &v1("/state"), None)
        .await
        .expect(405, Some("method_not_allowed"));
    s.call(Method::POST, &v1("/flags"), None)
        .await
        .expect(405, Some("method_not_allowed"));

    // Nothing changed: same values, and the next write takes the very next
    // version.
    assert_eq!(s.get(&v1("/state")).await.json, state.json);
    assert_eq!(s.get(&v1("/characters/hero")).await.json, hero.json);
    let next = s
        .call(Method::PUT, &v1("/flags/probe"), Some(&json!(1)))
        .await
        .expect(200, None);
    assert_eq!(
        next.version(),
        version + 1,
        "a refused request consumed a version"
    );
}

pub(crate) async fn service_routes(s: &Server) {
    let r = s.get("/healthz").await.expect(200, None);
    assert_eq!(r.json["status"], "ok");
    let r = s.get("/readyz").await.expect(200, None);
    assert_eq!(r.json["status"], "ready");
    assert_eq!(r.json["cache"]["ok"], json!(true));
    assert_eq!(r.json["source"]["ok"], json!(true));
    let r = s.get("/metrics").await.expect(200, None);
    assert!(
        r.header("content-type").unwrap().starts_with("text/plain"),
        "{r:?}"
    );
    assert!(
        counter_total(&r.text, "cache_hits_total") > 0,
        "the suite's hits are counted: {}",
        r.text
    );
    assert!(
        counter_total(&r.text, "cache_misses_total") > 0,
        "the suite's misses are counted: {}",
        r.text
    );
    assert!(
        counter_total(&r.text, "invalidations_total") > 0,
        "the suite's writes invalidated: {}",
        r.text
    );
    crate::prometheus::promtool_check(&r.text);
    let r = s.get("/openapi.json").await.expect(200, None);
    assert!(r.json["openapi"].as_str().unwrap().starts_with("3."));
}

/// The sum of every sample of the counter `name` (all label sets).
fn counter_total(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let value = match rest.strip_prefix('{') {
                Some(labelled) => labelled.rsplit_once("} ")?.1,
                None => rest.strip_prefix(' ')?,
            };
            value.trim().parse::<f64>().ok()
        })
        .map(|v| v as u64)
        .sum()
}

#[tokio::test]
async fn every_route_on_the_embedded_default_then_sigterm_exits_0() {
    let s = Server::start(&[
        "--write-mode",
        "invalidate",
        "--max-body-bytes",
        &LIMIT.to_string(),
    ]);
    {
        let out = s.stdout.lock().unwrap().clone();
        assert!(out.contains("NOTHING PERSISTS"), "{out}");
    }
    // The demo world answers at once.
    let r = s.get("/v1/worlds/demo/state").await.expect(200, None);
    assert!(r.json.is_object() && r.version() > 0, "{r:?}");
    let r = s
        .get("/v1/worlds/demo/characters/player-01")
        .await
        .expect(200, None);
    assert!(
        r.json.get("journal").is_none(),
        "a player's private journal never leaves: {r:?}"
    );
    every_route(&s).await;
    service_routes(&s).await;
    if let Some(threads) = s.threads() {
        // One worker per core beside the thread that started it.
        assert!(threads >= 2, "the default runtime has workers: {threads}");
    }
    let (status, out) = s.terminate();
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.contains("lwcache: stopped"), "{out}");
}

#[tokio::test]
async fn the_default_write_mode_writes_through() {
    let s = Server::start(&[]);
    let w = fresh_world("through");
    s.call(
        Method::PUT,
        &format!("/v1/worlds/{w}/state"),
        Some(&json!({"a": 1})),
    )
    .await
    .expect(201, None);
    let path = format!("/v1/worlds/{w}/characters/c1");
    s.call(Method::PUT, &path, Some(&json!({"hp": 1})))
        .await
        .expect(201, None);
    let r = s.get(&path).await.expect(200, None);
    assert_eq!((r.cache(), r.json.clone()), ("hit", json!({"hp": 1})));
    let w3 = s
        .call(Method::PUT, &path, Some(&json!({"hp": 2})))
        .await
        .expect(200, None);
    let r = s.get(&path).await.expect(200, None);
    assert_eq!(
        (r.cache(), r.json.clone(), r.version()),
        ("hit", json!({"hp": 2}), w3.version())
    );
}

#[tokio::test]
async fn the_bearer_token_guards_every_v1_route_and_flags_beat_env() {
    // The environment names one token, the flag another: the flag wins.
    let s = Server::start_with_env(
        &["--auth-token", "flag-token"],
        &[("LWCACHE_AUTH_TOKEN", "env-token")],
    );
    {
        let out = s.stdout.lock().unwrap().clone();
        assert!(out.contains("Bearer"), "{out}");
    }
    let w = fresh_world("auth");
    let state = format!("/v1/worlds/{w}/state");
    let r = s
        .call(Method::PUT, &state, Some(&json!({"a": 1})))
        .await
        .expect(401, Some("unauthorized"));
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    s.get("/v1/worlds/demo/state")
        .await
        .expect(401, Some("unauthorized"));
    s.get("/v1/worlds/demo/flags")
        .await
        .expect(401, Some("unauthorized"));
    s.call(Method::POST, "/v1/worlds/demo/activate", None)
        .await
        .expect(401, Some("unauthorized"));
    // The open routes stay open.
    s.get("/healthz").await.expect(200, None);
    s.get("/readyz").await.expect(200, None);
    s.get("/metrics").await.expect(200, None);
    s.get("/openapi.json").await.expect(200, None);

    let wrong = Server::with_token_view(&s, "env-token");
    wrong
        .get("/v1/worlds/demo/state")
        .await
        .expect(401, Some("unauthorized"));
    let basic = s
        .request(Method::GET, "/v1/worlds/demo/state")
        .header("authorization", "Basic ZmxhZy10b2tlbg==")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status().as_u16(), 401);
    // HTTP's auth schemes are case-insensitive.
    for scheme in ["bearer", "BEARER"] {
        let r = s
            .request(Method::GET, "/v1/worlds/demo/state")
            .header("authorization", format!("{scheme} flag-token"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{scheme}");
    }

    let right = Server::with_token_view(&s, "flag-token");
    right.get("/v1/worlds/demo/state").await.expect(200, None);
    // The refused PUT wrote nothing: the world does not exist.
    right.get(&state).await.expect(404, Some("unknown_world"));
    right
        .call(Method::PUT, &state, Some(&json!({"a": 1})))
        .await
        .expect(201, None);
    drop(right);
    drop(wrong);
    let (status, _) = s.terminate();
    assert_eq!(status.code(), Some(0));
}

/// On Redis, with the service's async work on one thread
/// (`--worker-threads 1`, as the HTTP benchmark runs it): every route
/// answers as on the default runtime, and the process runs no thread
/// beside the one that started it.
#[tokio::test]
async fn every_route_on_redis_on_one_thread() {
    let Some(url) = server_env("LWCACHE_TEST_REDIS_URL") else {
        return;
    };
    let s = Server::start(&[
        "--redis-url",
        &url,
        "--worker-threads",
        "1",
        "--write-mode",
        "invalidate",
        "--max-body-bytes",
        &LIMIT.to_string(),
    ]);
    let r = s.get("/readyz").await.expect(200, None);
    assert!(
        r.json["cache"]["backend"]
            .as_str()
            .unwrap()
            .starts_with("Redis"),
        "{r:?}"
    );
    every_route(&s).await;
    service_routes(&s).await;
    if let Some(threads) = s.threads() {
        assert_eq!(threads, 1, "one thread runs the whole service");
    }
    let (status, out) = s.terminate();
    assert_eq!(status.code(), Some(0), "{out}");
}

#[tokio::test]
async fn redis_down_at_start_is_served_by_the_source_until_it_appears() {
    let Some(mut redis) = lwcache_testkit::own_redis::OwnRedis::reserve(
        "redis_down_at_start_is_served_by_the_source_until_it_appears",
    ) else {
        return;
    };
    // Nothing listens on the port yet: the service starts all the same.
    let s = Server::start(&["--redis-url", &redis.url(), "--breaker-open-ms", "200"]);
    let r = s.get("/readyz").await.expect(200, None);
    assert_eq!(r.json["status"], "degraded", "{r:?}");
    assert_eq!(r.json["serving"], "source", "{r:?}");
    assert_eq!(r.json["cache"]["ok"], json!(false), "{r:?}");
    let state = "/v1/worlds/demo/state";
    let r = s.get(state).await.expect(200, None);
    assert_eq!(r.cache(), "miss");
    assert_eq!(r.header("x-cache-degraded"), Some("cache-unavailable"));
    let w = s
        .call(
            Method::PUT,
            "/v1/worlds/demo/flags/gate",
            Some(&json!("open")),
        )
        .await
        .expect(200, None);
    assert_eq!(w.json["cache"], "failed", "durable, its cache step owed");

    assert!(redis.spawn(), "redis-server starts on the port");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let ready = s.get("/readyz").await;
        let read = s.get("/v1/worlds/demo/flags/gate").await.expect(200, None);
        assert_eq!(read.json, json!("open"), "never an older value");
        seen.push((ready.json["status"].clone(), read.cache().to_owned()));
        if ready.json["status"] == "ready" && read.cache() == "hit" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never ready and served by the cache: {seen:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (status, out) = s.terminate();
    assert_eq!(status.code(), Some(0), "{out}");
}

impl Server {
    /// A second client on the same process with another token (the test
    /// server keeps running; this view does not own it).
    fn with_token_view(s: &Server, token: &str) -> TokenView {
        TokenView {
            base: s.base.clone(),
            token: token.to_owned(),
        }
    }
}

/// A client of a running server with a fixed token.
struct TokenView {
    base: String,
    token: String,
}

impl TokenView {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> crate::support::Reply {
        let client = reqwest::Client::new();
        let mut req = client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        crate::support::Reply::read(req.send().await.unwrap()).await
    }

    async fn get(&self, path: &str) -> crate::support::Reply {
        self.call(Method::GET, path, None).await
    }
}

/// On Redis, sharded (`--runtime sharded --worker-threads 3`): every route
/// answers as on the default runtime; the process runs one thread per
/// shard and no other; the connections of many clients at once are spread
/// over the shards, each reading through a Redis connection of its own,
/// and all of them read the same, latest value.
#[tokio::test]
async fn every_route_on_redis_sharded() {
    let Some(redis) = lwcache_testkit::own_redis::OwnRedis::start("every_route_on_redis_sharded")
    else {
        return;
    };
    let s = Server::start(&[
        "--redis-url",
        &redis.url(),
        "--runtime",
        "sharded",
        "--worker-threads",
        "3",
        "--write-mode",
        "invalidate",
        "--max-body-bytes",
        &LIMIT.to_string(),
    ]);
    every_route(&s).await;
    service_routes(&s).await;
    if let Some(threads) = s.threads() {
        assert_eq!(threads, 3, "one thread per shard runs the whole service");
    }

    let path = "/v1/worlds/demo/flags/gate";
    s.call(Method::PUT, path, Some(&json!("sharded")))
        .await
        .expect(200, None);
    let before = redis_clients(&redis.url()).await;
    // Connections opened together, then each asked once: the kernel hands
    // them to the shards' listeners.
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut conns = Vec::new();
    for _ in 0..48 {
        conns.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let mut answers = Vec::new();
    for conn in conns {
        answers.push(tokio::spawn(http_get(conn, path)));
    }
    for answer in answers {
        let text = answer.await.unwrap();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("\"sharded\""), "the latest value: {text}");
    }
    let after = redis_clients(&redis.url()).await;
    assert!(
        after >= before + 2,
        "the two other shards read through connections of their own: {before} then {after} clients"
    );
    let (status, out) = s.terminate();
    assert_eq!(status.code(), Some(0), "{out}");
}

/// One `GET path` on `conn`, which the server closes after answering; the
/// whole answer.
async fn http_get(mut conn: tokio::net::TcpStream, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!("GET {path} HTTP/1.1\r\nHost: lwcache\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    answer
}

/// How many clients the Redis server at `url` (`redis://host:port`) has,
/// from `CLIENT LIST` over a connection of this test's own (counted).
async fn redis_clients(url: &str) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("redis://").trim_end_matches('/');
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"CLIENT LIST\r\n").await.unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "Redis closed the connection");
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply);
        let Some((head, body)) = text.split_once("\r\n") else {
            continue;
        };
        let len: usize = head.trim_start_matches('$').parse().unwrap();
        if body.len() >= len {
            return body[..len].lines().count();
        }
    }
}

/// A client that stops sending in the middle of its body: its request is
/// answered 408 once the body timeout passes, and a SIGTERM meanwhile
/// stops the service then, not whenever the client goes away.
#[tokio::test]
async fn a_stalled_body_is_answered_408_and_does_not_hold_a_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start(&[]);
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stalled
        .write_all(
            b"POST /v1/worlds/demo/read HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"snapshot\":true",
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let answer = tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(40),
            stalled.read_to_end(&mut text),
        )
        .await;
        String::from_utf8_lossy(&text).into_owned()
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, out) = tokio::task::spawn_blocking(move || s.terminate())
        .await
        .unwrap();
    let stopped = started.elapsed();
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(
        stopped < std::time::Duration::from_secs(30),
        "the service waited {stopped:?} for the stalled body"
    );
    let answer = answer.await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 408") && answer.contains("body_timeout"),
        "{answer}"
    );
}
