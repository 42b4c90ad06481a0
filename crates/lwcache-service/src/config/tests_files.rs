//! The settings' tests, continued: the policy settings, TLS and HTTPS
//! files, Neo4j's schemes and the printed configuration.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::tests::{cluster, layer};

/// Each policy setting: its environment variable, its file key, and the
/// value each gives, with the flag beating both.
const POLICY: [(&str, &str, &str); 10] = [
    (env::STATE_TTL_MS, "state_ttl_ms", "7000"),
    (env::FLAGS_TTL_MS, "flags_ttl_ms", "8000"),
    (env::ENTITY_TTL_MS, "entity_ttl_ms", "9000"),
    (env::TIMELINE_TTL_MS, "timeline_ttl_ms", "10000"),
    (env::TIMELINE_TOP_K, "timeline_top_k", "7"),
    (env::CACHE_TIMEOUT_MS, "cache_timeout_ms", "300"),
    (env::SOURCE_TIMEOUT_MS, "source_timeout_ms", "6000"),
    (env::WRITE_BEHIND_CAPACITY, "write_behind_capacity", "99"),
    (env::WARM_BUDGET_KEYS, "warm_budget_keys", "500"),
    (env::DECODE_MEMO_BYTES, "decode_memo_bytes", "65536"),
];
use super::*;
/// The policy's values as `POLICY` lists them.
fn policy_values(p: &PolicySettings) -> Vec<u64> {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap();
    vec![
        p.state_ttl.map_or(0, ms),
        p.flags_ttl.map_or(0, ms),
        p.entity_ttl.map_or(0, ms),
        ms(p.timeline_ttl),
        p.timeline_top_k as u64,
        ms(p.cache_timeout),
        ms(p.source_timeout),
        p.write_behind_capacity as u64,
        p.warm_budget.map_or(0, |n| n as u64),
        p.decode_memo_bytes as u64,
    ]
}

#[test]
fn every_policy_setting_comes_from_each_source() {
    let d = resolve(&Layer::default(), &Layer::default(), &Layer::default()).unwrap();
    assert_eq!(d.backends.policy, PolicySettings::default());
    assert_eq!(
        policy_values(&d.backends.policy),
        [
            3_600_000,
            0,
            3_600_000,
            300_000,
            20,
            250,
            5000,
            1024,
            0,
            8 << 20
        ],
        "the defaults are the library's"
    );
    let expected: Vec<u64> = POLICY.iter().map(|(_, _, v)| v.parse().unwrap()).collect();

    let vars: HashMap<&str, &str> = POLICY.iter().map(|(var, _, v)| (*var, *v)).collect();
    let env_layer = Layer::from_env(|k| vars.get(k).map(|v| (*v).to_owned())).unwrap();
    let s = resolve(&Layer::default(), &env_layer, &Layer::default()).unwrap();
    assert_eq!(
        policy_values(&s.backends.policy),
        expected,
        "the environment"
    );

    let text: String = POLICY
        .iter()
        .map(|(_, key, v)| format!("{key} = {v}\n"))
        .collect();
    let file = Layer::from_toml(&text).unwrap();
    let s = resolve(&Layer::default(), &Layer::default(), &file).unwrap();
    assert_eq!(policy_values(&s.backends.policy), expected, "the file");

    let flags = Layer {
        state_ttl_ms: Some(1),
        flags_ttl_ms: Some(2),
        entity_ttl_ms: Some(3),
        timeline_ttl_ms: Some(4),
        timeline_top_k: Some(5),
        cache_timeout_ms: Some(6),
        source_timeout_ms: Some(7),
        write_behind_capacity: Some(8),
        warm_budget_keys: Some(9),
        decode_memo_bytes: Some(10),
        ..Layer::default()
    };
    let s = resolve(&flags, &env_layer, &file).unwrap();
    assert_eq!(
        policy_values(&s.backends.policy),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        "the flags"
    );
    let mut config = lwcache_core::ManagerConfig::default();
    s.backends.policy.apply(&mut config);
    assert_eq!(config.policy.timeline_top_k, 5);
    assert_eq!(config.policy.flags.ttl, Some(Duration::from_millis(2)));
    assert_eq!(config.cache_timeout, Duration::from_millis(6));
    assert_eq!(config.write_behind_capacity, 8);
    assert_eq!(config.warm_budget, Some(9));
    assert_eq!(config.decode_memo_bytes, 10);
    config.policy.validate().unwrap();

    let zero = Layer::from_toml("state_ttl_ms = 0\nentity_ttl_ms = 0\n").unwrap();
    let p = resolve(&Layer::default(), &Layer::default(), &zero)
        .unwrap()
        .backends
        .policy;
    assert_eq!((p.state_ttl, p.entity_ttl), (None, None), "0: no TTL");
}

#[test]
fn a_bad_policy_value_names_the_setting_in_every_spelling() {
    for (var, key, _) in POLICY {
        let flag = format!("--{}", key.replace('_', "-"));
        let err = Layer::from_env(|k| (k == var).then(|| "soon".to_owned())).unwrap_err();
        assert!(err.to_string().contains(var), "{err}");
        let err = Layer::from_toml(&format!("{key} = \"soon\"\n")).unwrap_err();
        assert!(err.contains(key), "{err}");

        // Out of range: too large for every setting, 0 where 0 is no
        // choice.
        let mut bad = vec![u64::MAX / 2];
        if key == "warm_budget_keys" {
            // 0 turns the budget off; one key cannot hold the flags and
            // the snapshot.
            bad.push(1);
        } else if key == "decode_memo_bytes" {
            // 0 turns the memo off: only too large is refused.
        } else if !key.starts_with("state_")
            && !key.starts_with("flags_")
            && !key.starts_with("entity_")
        {
            bad.push(0);
        }
        for value in bad {
            let file = Layer::from_toml(&format!("{key} = {value}\n")).unwrap();
            let err = resolve(&Layer::default(), &Layer::default(), &file).unwrap_err();
            let text = err.to_string();
            for name in [flag.as_str(), var, key] {
                assert!(text.contains(name), "{key} = {value}: {text}");
            }
        }
    }
}

#[test]
fn redis_tls_files_need_each_other_and_a_rediss_url() {
    let tls = |url: &str, ca: Option<&str>, cert: Option<&str>, key: Option<&str>| Layer {
        redis_url: Some(url.into()),
        redis_ca_file: ca.map(PathBuf::from),
        redis_client_cert: cert.map(PathBuf::from),
        redis_client_key: key.map(PathBuf::from),
        ..Layer::default()
    };
    let s = resolve(
        &tls("rediss://h:1", Some("/ca.pem"), Some("/c.pem"), None),
        &Layer::default(),
        &Layer::from_toml("redis_client_key = \"/k.pem\"\n").unwrap(),
    )
    .unwrap();
    assert_eq!(s.backends.redis_tls.ca_file, Some(PathBuf::from("/ca.pem")));
    assert_eq!(
        s.backends.redis_tls.client,
        Some(ClientFiles {
            cert: "/c.pem".into(),
            key: "/k.pem".into()
        }),
        "the certificate and its key may come from different sources"
    );

    let cases = [
        (
            tls("rediss://h:1", None, Some("/c.pem"), None),
            vec![
                "--redis-client-key",
                env::REDIS_CLIENT_KEY,
                "redis_client_key",
            ],
        ),
        (
            tls("rediss://h:1", None, None, Some("/k.pem")),
            vec!["--redis-client-cert", env::REDIS_CLIENT_CERT],
        ),
        (
            tls("redis://h:1", Some("/ca.pem"), None, None),
            vec!["--redis-ca-file", env::REDIS_CA_FILE, "rediss://"],
        ),
        (
            tls("redis://h:1", None, Some("/c.pem"), Some("/k.pem")),
            vec!["--redis-client-cert", "rediss://"],
        ),
        (
            Layer {
                redis_url: None,
                ..tls("x", Some("/ca.pem"), None, None)
            },
            vec!["--redis-ca-file", "no Redis"],
        ),
    ];
    for (layer, needles) in cases {
        let err = resolve(&layer, &Layer::default(), &Layer::default()).unwrap_err();
        for needle in needles {
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        }
    }
    let cluster_tls = Layer {
        redis_ca_file: Some("/ca.pem".into()),
        ..cluster(&["rediss://a:7000", "rediss://b:7001"])
    };
    assert!(resolve(&cluster_tls, &Layer::default(), &Layer::default()).is_ok());
}

#[test]
fn https_needs_a_certificate_and_its_key() {
    let vars: HashMap<&str, &str> = [(env::TLS_CERT, "/srv/cert.pem")].into();
    let env_layer = Layer::from_env(|k| vars.get(k).map(|v| (*v).to_owned())).unwrap();
    let err = resolve(&Layer::default(), &env_layer, &Layer::default()).unwrap_err();
    for needle in ["--tls-key", env::TLS_KEY, "tls_key"] {
        assert!(err.to_string().contains(needle), "{err}");
    }
    let file = Layer::from_toml("tls_key = \"/srv/key.pem\"\n").unwrap();
    let s = resolve(&Layer::default(), &env_layer, &file).unwrap();
    assert_eq!(
        s.https,
        Some(HttpsSettings {
            cert: "/srv/cert.pem".into(),
            key: "/srv/key.pem".into()
        })
    );
    let plain = resolve(&Layer::default(), &Layer::default(), &Layer::default()).unwrap();
    assert_eq!(plain.https, None);
}

#[test]
fn neo4j_schemes_are_the_drivers_and_others_are_refused_by_name() {
    for uri in [
        "bolt://h:7687",
        "bolt+s://h:7687",
        "neo4j+s://h:7687",
        "neo4j+ssc://h:7687",
    ] {
        let layer = Layer {
            neo4j_uri: Some(uri.into()),
            ..Layer::default()
        };
        assert!(
            resolve(&layer, &Layer::default(), &Layer::default()).is_ok(),
            "{uri}"
        );
    }
    for uri in ["https://h:7473", "bolt+tls://h:7687", "h:7687"] {
        let layer = Layer {
            neo4j_uri: Some(uri.into()),
            ..Layer::default()
        };
        let err = resolve(&Layer::default(), &layer, &Layer::default()).unwrap_err();
        let text = err.to_string();
        for needle in ["--neo4j-uri", env::NEO4J_URI, "neo4j_uri", "bolt+s://"] {
            assert!(text.contains(needle), "{uri}: {text}");
        }
    }
}

#[test]
fn a_redis_url_password_stays_out_of_debug_output() {
    let s = resolve(
        &layer(
            "127.0.0.1:1",
            "redis://user:hunter2-standalone@h:6379",
            "t0ken",
        ),
        &Layer::default(),
        &Layer::default(),
    )
    .unwrap();
    let shown = format!("{s:?}");
    assert!(!shown.contains("hunter2-standalone"), "{shown}");
    assert!(shown.contains("redis://user:***@h:6379"), "{shown}");
    let layer_shown = format!(
        "{:?}",
        layer("127.0.0.1:1", "redis://:hunter2-layer@h", "t")
    );
    assert!(!layer_shown.contains("hunter2-layer"), "{layer_shown}");
}

/// A configuration with every secret and every kind of setting set.
fn everything() -> Settings {
    let file = Layer::from_toml(
        "listen = \"127.0.0.1:9000\"\n\
         redis_url = \"rediss://lwcache:redis-pw-1@cache:6380/2\"\n\
         redis_ca_file = \"/etc/lw/ca.pem\"\n\
         redis_client_cert = \"/etc/lw/client.pem\"\n\
         redis_client_key = \"/etc/lw/client-key.pem\"\n\
         neo4j_uri = \"neo4j+s://graph:7687\"\n\
         neo4j_user = \"neo4j\"\n\
         neo4j_password = \"neo4j-pw-2\"\n\
         neo4j_ca_file = \"/etc/lw/neo4j-ca.pem\"\n\
         auth_token = \"token-3\"\n\
         tls_cert = \"/etc/lw/https \\\"cert\\\".pem\"\n\
         tls_key = \"/etc/lw/https-key.pem\"\n\
         write_mode = \"invalidate\"\n\
         state_ttl_ms = 0\n\
         timeline_top_k = 12\n\
         cache_timeout_ms = 400\n\
         negative_ttl_ms = 0\n\
         breaker_failures = 3\n\
         worker_threads = 4\n\
         runtime = \"sharded\"\n\
         admin_token = \"admin-4\"\n\
         [privacy]\n\
         sensitive_names = [\"trauma_history\"]\n\
         private_event_kinds = [\"confided\"]\n\
         [privacy.allow]\n\
         character = [\"name\", \"hp\"]\n",
    )
    .unwrap();
    resolve(&Layer::default(), &Layer::default(), &file).unwrap()
}

#[test]
fn the_printed_configuration_masks_secrets_and_reads_back() {
    let s = everything();
    assert_eq!(s.runtime, RuntimeThreads::Sharded(4));
    let text = print::to_toml(&s);
    assert!(text.contains("runtime = \"sharded\""), "{text}");
    for secret in ["redis-pw-1", "neo4j-pw-2", "token-3", "admin-4"] {
        assert!(!text.contains(secret), "{secret} in\n{text}");
    }
    assert!(
        text.contains("redis_url = \"rediss://lwcache:***@cache:6380/2\""),
        "{text}"
    );
    let back = Layer::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let again = resolve(&Layer::default(), &Layer::default(), &back).unwrap();
    // Everything but the secrets reads back as it was.
    let mut expected = s.clone();
    expected.backends.redis_url = Some("rediss://lwcache:***@cache:6380/2".into());
    expected.auth_token = Some(Secret::new(print::MASK));
    expected.admin_token = Some(Secret::new(print::MASK));
    if let Some(n) = &mut expected.backends.neo4j {
        n.password = Some(Secret::new(print::MASK));
    }
    assert_eq!(again, expected, "{text}");

    let d = resolve(&Layer::default(), &Layer::default(), &Layer::default()).unwrap();
    let text = print::to_toml(&d);
    let back = Layer::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        resolve(&Layer::default(), &Layer::default(), &back).unwrap(),
        d,
        "the defaults read back as themselves:\n{text}"
    );
}

#[test]
fn the_printed_cluster_masks_every_password() {
    let s = resolve(
        &cluster(&["rediss://u:cluster-pw@a:7000", "rediss://b:7001"]),
        &Layer::default(),
        &Layer::default(),
    )
    .unwrap();
    let text = print::to_toml(&s);
    assert!(!text.contains("cluster-pw"), "{text}");
    assert!(
        text.contains("redis_cluster = [\"rediss://u:***@a:7000\", \"rediss://b:7001\"]"),
        "{text}"
    );
    assert!(Layer::from_toml(&text).is_ok(), "{text}");
}

#[test]
fn a_neo4j_ca_file_needs_a_verifying_tls_scheme() {
    let vars: HashMap<&str, &str> = [
        (env::NEO4J_URI, "neo4j+s://graph:7687"),
        (env::NEO4J_CA_FILE, "/etc/ca.pem"),
    ]
    .into();
    let env_layer = Layer::from_env(|k| vars.get(k).map(|v| (*v).to_owned())).unwrap();
    let s = resolve(&Layer::default(), &env_layer, &Layer::default()).unwrap();
    assert_eq!(
        s.backends.neo4j.unwrap().ca_file,
        Some(PathBuf::from("/etc/ca.pem"))
    );
    for uri in [
        Some("bolt://graph:7687"),
        Some("bolt+ssc://graph:7687"),
        None,
    ] {
        let flags = Layer {
            neo4j_uri: uri.map(str::to_owned),
            neo4j_ca_file: Some("/etc/ca.pem".into()),
            ..Layer::default()
        };
        let err = resolve(&flags, &Layer::default(), &Layer::default()).unwrap_err();
        for name in ["--neo4j-ca-file", env::NEO4J_CA_FILE, "neo4j_ca_file"] {
            assert!(err.to_string().contains(name), "{uri:?}: {err}");
        }
    }
}
