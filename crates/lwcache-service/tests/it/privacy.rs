//! Privacy by configuration, checked where it matters: in a real Redis.
//!
//! For each mode (extra sensitive names and prefixes; allow-lists per key
//! kind; private event kinds) one `lwcache serve` over the real Redis (the
//! in-memory repository behind it) takes a workload that writes marked
//! sensitive data in every position (a snapshot's, an entity's and a flag
//! value's top level, nested maps, maps in lists, flags by name, event
//! data), reads every key (hits, then after an admin drop fills, a turn
//! read and an activation), and then every key of the Redis is SCANned and
//! read: no sensitive name and no marked value may appear in any value,
//! while the public markers written beside them must (so that the scan is
//! seen to read what the service cached). The HTTP answers are checked
//! too: the cacheable view never carries what the mode keeps out.

use std::io::Write as _;
use std::process::{Command, Stdio};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, fresh_world, server_env};

/// Every value under the keys matching `pattern` in the Redis at `url`,
/// concatenated (raw bytes, lossily as text): `--scan` lists the keys, one
/// pipelined `GET` per key reads them.
fn every_value(url: &str, pattern: &str) -> (usize, String) {
    let keys = Command::new("redis-cli")
        .args(["-u", url, "--scan", "--pattern", pattern])
        .output()
        .expect("redis-cli runs (apt-get install redis-tools)");
    assert!(keys.status.success(), "{keys:?}");
    let keys: Vec<String> = String::from_utf8_lossy(&keys.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let mut child = Command::new("redis-cli")
        .args(["-u", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli runs");
    let mut script = String::new();
    for key in &keys {
        // Keys hold only id characters, `:`, `{` and `}`: nothing to quote.
        script.push_str(&format!("GET \"{key}\"\n"));
    }
    // Written from a thread of its own while the output is read: with
    // many keys, redis-cli's answers fill its stdout pipe before it has
    // read all of its stdin, and a writer that waited would wait forever.
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(script.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{out:?}");
    (
        keys.len(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A document with `name: value` at the top level, nested in a map, in a
/// map in a list, and beside public fields.
fn planted(public: &str, name: &str, value: &str) -> Value {
    json!({
        "name": public,
        "hp": 7,
        name: value,
        "diagnosis": format!("{value}-default"),
        "inner": { name: format!("{value}-nested"), "ok": public },
        "list": [ { name: format!("{value}-in-list") }, public ],
    })
}

/// What one mode keeps out, and what it must let through.
struct Mode {
    label: &'static str,
    args: Vec<String>,
    /// Values marked with this run's and mode's secret, unique to them:
    /// they must appear in no value of the whole Redis.
    marked: Vec<String>,
    /// Names (and plain texts) that must appear in no value of the mode's
    /// world; other worlds, other modes' among them, may hold them.
    names: Vec<String>,
    /// Texts that must appear in some value of the mode's world.
    public: Vec<String>,
}

async fn call(
    s: &Server,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> crate::support::Reply {
    s.call(method, path, body.as_ref()).await
}

/// Writes the marked data into world `w`, then reads every key in every
/// way the service reads: hits, fills after a drop, a turn, an activation.
async fn workload(s: &Server, w: &str, secret: &str) {
    let v1 = format!("/v1/worlds/{w}");
    call(
        s,
        Method::PUT,
        &format!("{v1}/state"),
        Some(planted(
            "PUBLIC-title",
            "trauma_history",
            &format!("{secret}-state"),
        )),
    )
    .await
    .expect(201, None);
    for (plural, id) in [
        ("characters", "hero"),
        ("locations", "pier"),
        ("objects", "lamp"),
    ] {
        let mut doc = planted(
            &format!("PUBLIC-{id}"),
            "trauma_history",
            &format!("{secret}-{id}"),
        );
        doc["therapy_plan"] = json!(format!("{secret}-{id}-prefixed"));
        doc["mood"] = json!(format!("UNLISTED-{id}"));
        call(s, Method::PUT, &format!("{v1}/{plural}/{id}"), Some(doc))
            .await
            .expect(201, None);
    }
    for (flag, value) in [
        ("door_open", json!("PUBLIC-door")),
        ("trauma_history", json!(format!("{secret}-flag"))),
        ("therapy_flag", json!(format!("{secret}-flag-prefixed"))),
        (
            "weather",
            json!({ "trauma_history": format!("{secret}-in-flag"), "sky": "UNLISTED-sky" }),
        ),
    ] {
        call(s, Method::PUT, &format!("{v1}/flags/{flag}"), Some(value))
            .await
            .expect(200, None);
    }
    for (kind, data) in [
        (
            "spoke",
            planted("PUBLIC-spoke", "trauma_history", &format!("{secret}-event")),
        ),
        (
            "journal_entry",
            json!({ "text": format!("I feel {secret}-journal") }),
        ),
        (
            "spoke",
            json!({ "text": "PUBLIC-later", "therapy_note": format!("{secret}-event-prefixed") }),
        ),
    ] {
        call(
            s,
            Method::POST,
            &format!("{v1}/timeline/hero/events"),
            Some(json!({ "kind": kind, "data": data })),
        )
        .await
        .expect(201, None);
    }
    let reads = [
        format!("{v1}/state"),
        format!("{v1}/flags"),
        format!("{v1}/characters/hero"),
        format!("{v1}/locations/pier"),
        format!("{v1}/objects/lamp"),
        format!("{v1}/timeline/hero/recent"),
    ];
    for path in &reads {
        s.get(path).await.expect(200, None);
    }
    // Fills: everything read again from the source after a drop.
    call(s, Method::DELETE, &format!("/admin/worlds/{w}/cache"), None)
        .await
        .expect(200, None);
    for path in &reads {
        s.get(path).await.expect(200, None);
    }
    call(s, Method::DELETE, &format!("/admin/worlds/{w}/cache"), None)
        .await
        .expect(200, None);
    let turn = json!({ "snapshot": true, "flags": true, "characters": ["hero"],
        "locations": ["pier"], "objects": ["lamp"], "timelines": [{ "entity_id": "hero" }] });
    call(s, Method::POST, &format!("{v1}/read"), Some(turn))
        .await
        .expect(200, None);
    call(s, Method::DELETE, &format!("/admin/worlds/{w}/cache"), None)
        .await
        .expect(200, None);
    call(s, Method::POST, &format!("{v1}/activate"), None)
        .await
        .expect(200, None);
    // Settle the write-behind timelines before the scan.
    s.get(&format!("{v1}/timeline/hero/recent"))
        .await
        .expect(200, None);
}

/// Every HTTP answer of world `w`, as text.
async fn answers(s: &Server, w: &str) -> String {
    let v1 = format!("/v1/worlds/{w}");
    let mut all = String::new();
    for path in [
        format!("{v1}/state"),
        format!("{v1}/flags"),
        format!("{v1}/characters/hero"),
        format!("{v1}/locations/pier"),
        format!("{v1}/objects/lamp"),
        format!("{v1}/timeline/hero/recent"),
        format!("{v1}/timeline/hero/recent?limit=1000"),
    ] {
        all.push_str(&s.get(&path).await.expect(200, None).text);
    }
    all
}

fn modes(run: &str) -> Vec<(String, Mode)> {
    let s = |v: &str| v.to_owned();
    let marked = |secret: &str, what: &[&str]| {
        what.iter()
            .map(|w| format!("{secret}-{w}"))
            .collect::<Vec<_>>()
    };
    let names_secret = format!("{run}names");
    let allow_secret = format!("{run}allow");
    let events_secret = format!("{run}events");
    vec![
        (
            names_secret.clone(),
            Mode {
                label: "names",
                args: vec![
                    s("--privacy-sensitive-names"),
                    s("trauma_history"),
                    s("--privacy-sensitive-prefixes"),
                    s("therapy_"),
                ],
                marked: marked(
                    &names_secret,
                    &["state", "hero", "pier", "lamp", "flag", "in-flag", "event"],
                ),
                names: vec![s("trauma_history"), s("therapy_"), s("diagnosis")],
                public: vec![
                    s("PUBLIC-title"),
                    s("PUBLIC-hero"),
                    s("PUBLIC-door"),
                    s("PUBLIC-spoke"),
                    s("UNLISTED-hero"),
                    s("journal_entry"),
                ],
            },
        ),
        (
            allow_secret.clone(),
            Mode {
                label: "allow",
                args: [
                    "character=name,hp",
                    "location=name",
                    "object=name,hp",
                    "state=name,hp",
                    "flags=door_open",
                    "timeline=text",
                ]
                .iter()
                .flat_map(|a| [s("--privacy-allow"), s(a)])
                .collect(),
                marked: marked(
                    &allow_secret,
                    &["state", "hero", "pier", "lamp", "flag", "in-flag", "event"],
                ),
                names: vec![
                    s("UNLISTED-"),
                    s("weather"),
                    s("mood"),
                    s("trauma_history"),
                    s("therapy_"),
                    s("inner"),
                ],
                public: vec![
                    s("PUBLIC-hero"),
                    s("PUBLIC-pier"),
                    s("PUBLIC-lamp"),
                    s("PUBLIC-title"),
                    s("PUBLIC-door"),
                    s("PUBLIC-later"),
                ],
            },
        ),
        (
            events_secret.clone(),
            Mode {
                label: "events",
                args: vec![s("--privacy-private-event-kinds"), s("journal_entry")],
                marked: marked(&events_secret, &["journal"]),
                names: vec![s("journal_entry"), s("I feel"), s("diagnosis")],
                public: vec![s("PUBLIC-spoke"), s("PUBLIC-later"), s("trauma_history")],
            },
        ),
    ]
}

#[tokio::test]
async fn no_configured_sensitive_data_reaches_a_real_redis_in_any_mode() {
    let Some(url) = server_env("LWCACHE_TEST_REDIS_URL") else {
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let run = format!("SECRET{nanos}");
    for (secret, mode) in modes(&run) {
        let mut args = vec!["--redis-url".to_owned(), url.clone()];
        args.extend(mode.args.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let s = Server::start(&args);
        let w = fresh_world(&format!("privacy-{}", mode.label));
        workload(&s, &w, &secret).await;
        let (keys, everything) = every_value(&url, "*");
        let (world_keys, world) = every_value(&url, &format!("lw:world:{{{w}}}:*"));
        assert!(
            world_keys >= 6 && keys >= world_keys,
            "{}: the world is cached",
            mode.label
        );
        for needle in &mode.marked {
            assert!(
                !everything.contains(needle.as_str()),
                "{}: {needle:?} reached Redis",
                mode.label
            );
        }
        for needle in &mode.names {
            assert!(
                !world.contains(needle.as_str()),
                "{}: {needle:?} reached the world's keys",
                mode.label
            );
        }
        for needle in &mode.public {
            assert!(
                world.contains(needle.as_str()),
                "{}: {needle:?} should be cached (the scan reads what is cached)",
                mode.label
            );
        }
        // The cacheable view over HTTP keeps the same things out, whether
        // served by the cache or by the source (limit past the top-k).
        let text = answers(&s, &w).await;
        for needle in mode.marked.iter().chain(&mode.names) {
            assert!(
                !text.contains(needle.as_str()),
                "{}: {needle:?} served over HTTP: {text}",
                mode.label
            );
        }
        let (status, out) = s.terminate();
        assert_eq!(status.code(), Some(0), "{out}");
    }
}

#[test]
fn privacy_settings_that_would_let_data_through_are_refused_at_start() {
    let err = crate::support::serve_refused(
        &[
            "--privacy-sensitive-names",
            "trauma_history",
            "--privacy-allow",
            "character=name,trauma_history",
        ],
        &[],
    );
    assert!(
        err.contains("--privacy-allow") && err.contains("trauma_history"),
        "{err}"
    );
    let file = std::env::temp_dir().join(format!("lwcache-privacy-{}.toml", std::process::id()));
    std::fs::write(&file, "[privacy.allow]\nver = [\"x\"]\n").unwrap();
    let err = crate::support::serve_refused(&["--config", file.to_str().unwrap()], &[]);
    std::fs::remove_file(&file).unwrap();
    assert!(
        err.contains("\"ver\" is not a key kind with fields"),
        "{err}"
    );
    let err =
        crate::support::serve_refused(&[], &[("LWCACHE_PRIVACY_PRIVATE_EVENT_KINDS", "has space")]);
    assert!(err.contains("LWCACHE_PRIVACY_PRIVATE_EVENT_KINDS"), "{err}");
}
