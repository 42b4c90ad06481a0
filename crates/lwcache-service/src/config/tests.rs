#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::HashMap;
use std::time::Duration;

use super::*;

pub(super) fn layer(listen: &str, redis: &str, token: &str) -> Layer {
    Layer {
        listen: Some(listen.parse().unwrap()),
        redis_url: Some(redis.into()),
        auth_token: Some(Secret::new(token)),
        ..Layer::default()
    }
}

#[test]
fn flags_beat_env_which_beats_the_file() {
    let flags = layer("127.0.0.1:1", "redis://flag", "flag-token");
    let env = layer("127.0.0.1:2", "redis://env", "env-token");
    let file = layer("127.0.0.1:3", "redis://file", "file-token");
    let s = resolve(&flags, &env, &file).unwrap();
    assert_eq!(s.listen.port(), 1);
    assert_eq!(
        s.backends.redis_url.as_ref().map(RedisUrl::expose),
        Some("redis://flag")
    );
    assert_eq!(s.auth_token.unwrap().expose(), "flag-token");

    let s = resolve(&Layer::default(), &env, &file).unwrap();
    assert_eq!(s.listen.port(), 2);
    assert_eq!(
        s.backends.redis_url.as_ref().map(RedisUrl::expose),
        Some("redis://env")
    );
    assert_eq!(s.auth_token.unwrap().expose(), "env-token");

    let s = resolve(&Layer::default(), &Layer::default(), &file).unwrap();
    assert_eq!(s.listen.port(), 3);
    assert_eq!(
        s.backends.redis_url.as_ref().map(RedisUrl::expose),
        Some("redis://file")
    );
    assert_eq!(s.auth_token.unwrap().expose(), "file-token");
}

#[test]
fn precedence_is_per_setting() {
    let flags = Layer {
        max_body_bytes: Some(10),
        ..Layer::default()
    };
    let env = Layer {
        redis_url: Some("redis://env".into()),
        ..Layer::default()
    };
    let file = Layer::from_toml(
        "listen = \"127.0.0.1:9\"\nredis_url = \"redis://file\"\nmax_body_bytes = 99\n\
         write_mode = \"invalidate\"\n\
         neo4j_uri = \"bolt://file:7687\"\nneo4j_user = \"neo4j\"\nneo4j_password = \"pw\"\n",
    )
    .unwrap();
    let s = resolve(&flags, &env, &file).unwrap();
    assert_eq!(s.max_body_bytes, 10);
    assert_eq!(
        s.backends.redis_url.as_ref().map(RedisUrl::expose),
        Some("redis://env")
    );
    assert_eq!(s.listen.port(), 9);
    assert_eq!(s.backends.write_mode, WriteModes::Invalidate);
    let neo4j = s.backends.neo4j.unwrap();
    assert_eq!(neo4j.uri, "bolt://file:7687");
    assert_eq!(neo4j.user.as_deref(), Some("neo4j"));
    assert_eq!(neo4j.password.unwrap().expose(), "pw");
}

#[test]
fn nothing_given_is_the_embedded_default() {
    let s = resolve(&Layer::default(), &Layer::default(), &Layer::default()).unwrap();
    assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(s.backends, BackendSettings::default());
    assert_eq!(s.auth_token, None);
    assert_eq!(s.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
}

#[test]
fn env_is_read_through_the_lookup() {
    let vars: HashMap<&str, &str> = [
        (env::LISTEN, "127.0.0.1:7000"),
        (env::REDIS_URL, "redis://127.0.0.1:6379"),
        (env::AUTH_TOKEN, "s3cret"),
        (env::MAX_BODY_BYTES, "2048"),
        (env::NEO4J_URI, ""),
        (env::WRITE_MODE, "invalidate"),
    ]
    .into_iter()
    .collect();
    let layer = Layer::from_env(|k| vars.get(k).map(|v| (*v).to_owned())).unwrap();
    assert_eq!(layer.listen.unwrap().port(), 7000);
    assert_eq!(
        layer.redis_url.as_ref().map(RedisUrl::expose),
        Some("redis://127.0.0.1:6379")
    );
    assert_eq!(layer.auth_token.as_ref().unwrap().expose(), "s3cret");
    assert_eq!(layer.max_body_bytes, Some(2048));
    assert_eq!(layer.neo4j_uri, None, "an empty variable counts as unset");
    assert_eq!(layer.write_mode, Some(WriteModes::Invalidate));
}

#[test]
fn bad_values_name_their_source() {
    let err = Layer::from_env(|k| (k == env::LISTEN).then(|| "nowhere".to_owned())).unwrap_err();
    assert!(err.to_string().contains(env::LISTEN), "{err}");
    let err = Layer::from_toml("listen = \"127.0.0.1:1\"\nredis = \"x\"\n").unwrap_err();
    assert!(err.contains("redis"), "{err}");
    let err = resolve(
        &Layer {
            neo4j_user: Some("neo4j".into()),
            ..Layer::default()
        },
        &Layer::default(),
        &Layer::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no Neo4j URI"), "{err}");
}

#[test]
fn a_range_refusal_names_zero_where_zero_is_allowed() {
    let refused = |layer: Layer| {
        resolve(&layer, &Layer::default(), &Layer::default())
            .unwrap_err()
            .to_string()
    };
    let err = refused(Layer {
        state_ttl_ms: Some(2_592_000_001),
        ..Layer::default()
    });
    assert!(err.contains("0 (no TTL) or from 1 to"), "{err}");
    let err = refused(Layer {
        warm_budget_keys: Some(1),
        ..Layer::default()
    });
    assert!(err.contains("0 (no budget) or from 2 to"), "{err}");
    let err = refused(Layer {
        timeline_ttl_ms: Some(0),
        ..Layer::default()
    });
    assert!(!err.contains("0 ("), "the timeline's TTL has no 0: {err}");
}

#[test]
fn read_settings_come_from_each_source_and_are_checked_by_name() {
    let d = resolve(&Layer::default(), &Layer::default(), &Layer::default()).unwrap();
    assert_eq!(d.backends.reads, ReadSettings::default());
    assert_eq!(d.backends.reads.fail_safe_grace, Duration::from_secs(600));
    let vars: HashMap<&str, &str> = [
        (env::FAIL_SAFE_GRACE_MS, "1500"),
        (env::TTL_JITTER_PERCENT, "20"),
        (env::NEGATIVE_TTL_MS, "0"),
    ]
    .into();
    let env = Layer::from_env(|k| vars.get(k).map(|v| (*v).to_owned())).unwrap();
    let file = Layer::from_toml("lease_wait_ms = 700\nttl_jitter_percent = 5\n").unwrap();
    let flags = Layer {
        fail_safe_grace_ms: Some(2500),
        ..Layer::default()
    };
    let r = resolve(&flags, &env, &file).unwrap().backends.reads;
    assert_eq!(r.fail_safe_grace, Duration::from_millis(2500), "the flag");
    assert_eq!(r.ttl_jitter_percent, 20, "the environment over the file");
    assert_eq!(r.negative_ttl, None, "0 turns negative caching off");
    assert_eq!(r.lease_wait, Duration::from_millis(700), "the file");

    let err =
        Layer::from_env(|k| (k == env::LEASE_WAIT_MS).then(|| "soon".to_owned())).unwrap_err();
    assert!(err.to_string().contains(env::LEASE_WAIT_MS), "{err}");
    let too_much = Layer {
        ttl_jitter_percent: Some(80),
        ..Layer::default()
    };
    let err = resolve(&too_much, &Layer::default(), &Layer::default()).unwrap_err();
    for name in [
        "--ttl-jitter-percent",
        env::TTL_JITTER_PERCENT,
        "ttl_jitter_percent",
    ] {
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let s = resolve(
        &layer("127.0.0.1:1", "redis://x", "top-secret-token"),
        &Layer::default(),
        &Layer::default(),
    )
    .unwrap();
    assert!(!format!("{s:?}").contains("top-secret-token"));
}

#[test]
fn the_breaker_comes_from_flags_env_or_file_within_bounds() {
    let s = resolve(&Layer::default(), &Layer::default(), &Layer::default()).unwrap();
    assert_eq!(s.backends.breaker, BreakerSettings::default());
    assert_eq!(
        s.backends.breaker.failures,
        lwcache_core::DEFAULT_BREAKER_FAILURES
    );

    let vars: HashMap<&str, &str> = [
        (env::BREAKER_FAILURES, " 7 "),
        (env::BREAKER_OPEN_MS, "250"),
    ]
    .into_iter()
    .collect();
    let env = Layer::from_env(|k| vars.get(k).map(|v| (*v).to_owned())).unwrap();
    let file = Layer::from_toml("breaker_failures = 9\nbreaker_open_ms = 5000\n").unwrap();
    let flags = Layer {
        breaker_failures: Some(2),
        ..Layer::default()
    };
    let s = resolve(&flags, &env, &file).unwrap();
    assert_eq!(s.backends.breaker.failures, 2);
    assert_eq!(
        s.backends.breaker.open,
        std::time::Duration::from_millis(250)
    );
    let s = resolve(&Layer::default(), &Layer::default(), &file).unwrap();
    assert_eq!(s.backends.breaker.failures, 9);
    assert_eq!(s.backends.breaker.open, std::time::Duration::from_secs(5));

    for bad in [
        Layer {
            breaker_failures: Some(0),
            ..Layer::default()
        },
        Layer {
            breaker_open_ms: Some(0),
            ..Layer::default()
        },
        Layer {
            breaker_open_ms: Some(MAX_BREAKER_OPEN_MS + 1),
            ..Layer::default()
        },
    ] {
        let err = resolve(&bad, &Layer::default(), &Layer::default()).unwrap_err();
        assert!(err.to_string().contains("breaker_"), "{err}");
        for name in ["--breaker-", "LWCACHE_BREAKER_"] {
            assert!(err.to_string().contains(name), "every spelling: {err}");
        }
    }
    let err =
        Layer::from_env(|k| (k == env::BREAKER_OPEN_MS).then(|| "1s".to_owned())).unwrap_err();
    assert!(err.to_string().contains(env::BREAKER_OPEN_MS), "{err}");
}

#[test]
fn the_runtime_threads_come_from_flags_env_or_file_within_bounds() {
    let none = Layer::default();
    let s = resolve(&none, &none, &none).unwrap();
    assert_eq!(s.runtime, RuntimeThreads::PerCore);

    let env = Layer::from_env(|k| (k == env::WORKER_THREADS).then(|| " 1 ".to_owned())).unwrap();
    let file = Layer::from_toml("worker_threads = 6\n").unwrap();
    let flags = Layer {
        worker_threads: Some(0),
        ..Layer::default()
    };
    assert_eq!(
        resolve(&flags, &env, &file).unwrap().runtime,
        RuntimeThreads::PerCore
    );
    assert_eq!(
        resolve(&none, &env, &file).unwrap().runtime,
        RuntimeThreads::One
    );
    let s = resolve(&none, &none, &file).unwrap();
    assert_eq!(s.runtime, RuntimeThreads::Workers(6));
    assert_eq!(s.runtime.count(), 6);

    let too_many = Layer {
        worker_threads: Some(MAX_WORKER_THREADS + 1),
        ..Layer::default()
    };
    let err = resolve(&too_many, &none, &none).unwrap_err().to_string();
    for name in [
        "--worker-threads",
        env::WORKER_THREADS,
        "worker_threads in the file",
    ] {
        assert!(err.contains(name), "every spelling: {err}");
    }
    assert!(err.contains(&(MAX_WORKER_THREADS + 1).to_string()), "{err}");
    let err = Layer::from_env(|k| (k == env::WORKER_THREADS).then(|| "two".to_owned()))
        .unwrap_err()
        .to_string();
    assert!(err.contains(env::WORKER_THREADS), "{err}");
}

#[test]
fn the_runtime_model_comes_from_flags_env_or_file_and_shards_per_core_by_default() {
    let none = Layer::default();
    assert_eq!(
        resolve(&none, &none, &none).unwrap().runtime.model(),
        RuntimeModel::WorkStealing
    );
    let env = Layer::from_env(|k| (k == env::RUNTIME).then(|| " sharded ".to_owned())).unwrap();
    let file = Layer::from_toml("runtime = \"work-stealing\"\nworker_threads = 3\n").unwrap();
    let flags = Layer {
        runtime: Some(RuntimeModel::WorkStealing),
        ..Layer::default()
    };
    // The flag over the variable over the file, and the threads from
    // wherever they are set.
    assert_eq!(
        resolve(&flags, &env, &file).unwrap().runtime,
        RuntimeThreads::Workers(3)
    );
    let s = resolve(&none, &env, &file).unwrap();
    assert_eq!(s.runtime, RuntimeThreads::Sharded(3));
    assert_eq!((s.runtime.shards(), s.runtime.count()), (3, 3));
    assert!(s.backends.redis_read_connection_per_thread);
    let per_core = resolve(&none, &env, &none).unwrap().runtime;
    assert_eq!(per_core, RuntimeThreads::Sharded(0));
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    assert_eq!(per_core.shards(), cores);
    assert!(
        !resolve(&flags, &none, &file)
            .unwrap()
            .backends
            .redis_read_connection_per_thread
    );
    // One thread is one thread, however it is shared.
    let one = Layer {
        worker_threads: Some(1),
        ..Layer::default()
    };
    assert_eq!(
        resolve(&one, &env, &none).unwrap().runtime,
        RuntimeThreads::One
    );

    let err = Layer::from_env(|k| (k == env::RUNTIME).then(|| "actor".to_owned()))
        .unwrap_err()
        .to_string();
    assert!(err.contains(env::RUNTIME) && err.contains("actor"), "{err}");
    assert!(err.contains("work-stealing or sharded"), "{err}");
    let err = Layer::from_toml("runtime = \"actor\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("runtime") && err.contains("actor"), "{err}");
}

pub(super) fn cluster(urls: &[&str]) -> Layer {
    Layer {
        redis_cluster: Some(ClusterUrls::new(urls.iter().copied())),
        ..Layer::default()
    }
}

#[test]
fn the_cluster_seeds_come_from_flags_env_or_file() {
    let flags = cluster(&["redis://flag-a:7000", "redis://flag-b:7001"]);
    let vars: HashMap<&str, &str> = [(
        env::REDIS_CLUSTER,
        " redis://env-a:7000 ,, redis://env-b:7001,",
    )]
    .into_iter()
    .collect();
    let env = Layer::from_env(|k| vars.get(k).map(|v| (*v).to_owned())).unwrap();
    let file =
        Layer::from_toml("redis_cluster = [\"redis://file-a:7000\", \"redis://file-b:7001\"]\n")
            .unwrap();
    let seeds = |s: Settings| s.backends.redis_cluster.unwrap().expose().to_vec();

    let s = resolve(&flags, &env, &file).unwrap();
    assert_eq!(s.backends.redis_url, None);
    assert_eq!(seeds(s), ["redis://flag-a:7000", "redis://flag-b:7001"]);
    let s = resolve(&Layer::default(), &env, &file).unwrap();
    assert_eq!(
        seeds(s),
        ["redis://env-a:7000", "redis://env-b:7001"],
        "the variable is split on commas, blanks left out"
    );
    let s = resolve(&Layer::default(), &Layer::default(), &file).unwrap();
    assert_eq!(seeds(s), ["redis://file-a:7000", "redis://file-b:7001"]);
}

#[test]
fn the_highest_source_naming_redis_decides_between_url_and_cluster() {
    let url = Layer {
        redis_url: Some("redis://env:6379".into()),
        ..Layer::default()
    };
    let s = resolve(&cluster(&["redis://flag:7000"]), &url, &Layer::default()).unwrap();
    assert_eq!(s.backends.redis_url, None);
    assert!(s.backends.redis_cluster.is_some());

    let s = resolve(&Layer::default(), &url, &cluster(&["redis://file:7000"])).unwrap();
    assert_eq!(
        s.backends.redis_url.as_ref().map(RedisUrl::expose),
        Some("redis://env:6379")
    );
    assert_eq!(s.backends.redis_cluster, None);
}

#[test]
fn url_and_cluster_in_one_source_are_refused_naming_both() {
    let both = Layer {
        redis_url: Some("redis://one:6379".into()),
        ..cluster(&["redis://a:7000"])
    };
    for (flags, env, file, first, second) in [
        (
            &both,
            &Layer::default(),
            &Layer::default(),
            "--redis-url",
            "--redis-cluster",
        ),
        (
            &Layer::default(),
            &both,
            &Layer::default(),
            env::REDIS_URL,
            env::REDIS_CLUSTER,
        ),
        (
            &Layer::default(),
            &Layer::default(),
            &both,
            "redis_url",
            "redis_cluster",
        ),
    ] {
        let err = resolve(flags, env, file).unwrap_err();
        assert_eq!(err, ConfigError::Exclusive { first, second });
        let text = err.to_string();
        assert!(text.contains(first) && text.contains(second), "{text}");
    }
}

#[test]
fn bad_cluster_urls_are_refused_by_the_redis_rules() {
    let cases: [(&[&str], lwcache_redis::ConfigError); 4] = [
        (
            &["http://a:7000"],
            lwcache_redis::ConfigError::UnsupportedScheme("http".into()),
        ),
        (
            &["redis://a:7000", "rediss://b:7001"],
            lwcache_redis::ConfigError::MixedTls,
        ),
        (
            &["redis://a:7000/2"],
            lwcache_redis::ConfigError::ClusterDatabase(2),
        ),
        (&[], lwcache_redis::ConfigError::NoClusterNodes),
    ];
    for (urls, expected) in cases {
        let err = resolve(&cluster(urls), &Layer::default(), &Layer::default()).unwrap_err();
        assert_eq!(
            err,
            ConfigError::RedisCluster {
                setting: "--redis-cluster",
                source: expected
            },
            "{urls:?}"
        );
    }
    // The adapter's rules, credentials and TLS included, are the ones
    // a single URL follows.
    let s = resolve(
        &Layer::default(),
        &Layer::default(),
        &cluster(&["rediss://user:pw@a:7000", "rediss://b:7001"]),
    )
    .unwrap();
    assert_eq!(s.backends.redis_cluster.unwrap().expose().len(), 2);
    let err = Layer::from_toml("redis_cluster = \"redis://a:7000\"\n").unwrap_err();
    assert!(
        err.contains("redis_cluster") || err.contains("sequence"),
        "{err}"
    );
}

#[test]
fn cluster_passwords_stay_out_of_debug_output() {
    let s = resolve(
        &cluster(&["redis://user:hunter2-cluster@a:7000", "redis://b:7001"]),
        &Layer::default(),
        &Layer::default(),
    )
    .unwrap();
    let shown = format!("{s:?}");
    assert!(!shown.contains("hunter2-cluster"), "{shown}");
    assert!(shown.contains("redis://user:***@a:7000"), "{shown}");
    assert_eq!(
        s.backends.redis_cluster.unwrap().expose()[0],
        "redis://user:hunter2-cluster@a:7000"
    );
}
