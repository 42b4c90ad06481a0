//! Parsing and validating configurations: no server needed.

use std::time::Duration;

use lwcache_core::CacheError;
use lwcache_redis::{
    ConfigError, ConnectError, DEFAULT_CONNECT_TIMEOUT, DEFAULT_RESPONSE_TIMEOUT, Node,
    RedisConfig, RedisStore, Topology,
};

fn node(host: &str, port: u16) -> Node {
    Node {
        host: host.to_owned(),
        port,
    }
}

#[test]
fn a_plain_url_names_one_server() {
    let c = RedisConfig::from_url("redis://127.0.0.1:6380").unwrap();
    assert_eq!(c.topology, Topology::Standalone(node("127.0.0.1", 6380)));
    assert!(!c.tls);
    assert_eq!((c.username, c.password, c.database), (None, None, 0));
    assert_eq!(c.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    assert_eq!(c.response_timeout, DEFAULT_RESPONSE_TIMEOUT);
}

#[test]
fn rediss_means_tls_and_the_path_is_the_database() {
    let c = RedisConfig::from_url("rediss://cache.internal:6390/2").unwrap();
    assert!(c.tls);
    assert_eq!(
        c.topology,
        Topology::Standalone(node("cache.internal", 6390))
    );
    assert_eq!(c.database, 2);
    let c = RedisConfig::from_url("redis://localhost").unwrap();
    assert_eq!(
        c.topology,
        Topology::Standalone(node("localhost", 6379)),
        "the default port"
    );
}

#[test]
fn credentials_are_decoded_from_the_url() {
    let c = RedisConfig::from_url("redis://app:p%40ss%3Aword@host:7000/3").unwrap();
    assert_eq!(c.username.as_deref(), Some("app"));
    assert_eq!(c.password.as_deref(), Some("p@ss:word"));
    assert_eq!(c.database, 3);
    let c = RedisConfig::from_url("redis://:only-a-password@host").unwrap();
    assert_eq!(c.username, None);
    assert_eq!(c.password.as_deref(), Some("only-a-password"));
}

#[test]
fn settings_can_be_overridden() {
    let c = RedisConfig::from_url("redis://u:p@host")
        .unwrap()
        .with_credentials(Some("other".into()), "pw".into())
        .with_database(5)
        .with_connect_timeout(Duration::from_millis(300))
        .with_response_timeout(Duration::from_millis(80));
    assert_eq!(c.username.as_deref(), Some("other"));
    assert_eq!(c.password.as_deref(), Some("pw"));
    assert_eq!(c.database, 5);
    assert_eq!(c.connect_timeout, Duration::from_millis(300));
    assert_eq!(c.response_timeout, Duration::from_millis(80));
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn bad_urls_are_typed_errors() {
    let cases: &[(&str, ConfigError)] = &[
        ("", ConfigError::EmptyUrl),
        ("   ", ConfigError::EmptyUrl),
        (
            "http://host:6379",
            ConfigError::UnsupportedScheme("http".into()),
        ),
        (
            "unix:///tmp/redis.sock",
            ConfigError::UnsupportedScheme("unix".into()),
        ),
        (
            "redis://host/abc",
            ConfigError::InvalidDatabase("abc".into()),
        ),
        ("redis://host/-1", ConfigError::InvalidDatabase("-1".into())),
        (
            "redis://host:6379?protocol=resp3",
            ConfigError::UnsupportedOptions,
        ),
        ("redis://host#frag", ConfigError::UnsupportedOptions),
    ];
    for (url, want) in cases {
        assert_eq!(RedisConfig::from_url(url).as_ref(), Err(want), "{url:?}");
    }
    for url in [
        "localhost:6379",
        "redis://host:notaport",
        "redis://host:99999",
    ] {
        assert!(
            matches!(
                RedisConfig::from_url(url),
                Err(ConfigError::MalformedUrl(_))
            ),
            "{url:?}: {:?}",
            RedisConfig::from_url(url)
        );
    }
    for url in ["redis://", "redis:///0"] {
        assert!(
            matches!(
                RedisConfig::from_url(url),
                Err(ConfigError::MissingHost | ConfigError::MalformedUrl(_))
            ),
            "{url:?}: {:?}",
            RedisConfig::from_url(url)
        );
    }
}

#[test]
fn cluster_urls_must_agree() {
    let c = RedisConfig::cluster(["redis://u:p@10.0.0.1:7000", "redis://10.0.0.2:7001"]).unwrap();
    assert_eq!(
        c.topology,
        Topology::Cluster(vec![node("10.0.0.1", 7000), node("10.0.0.2", 7001)])
    );
    assert_eq!(c.username.as_deref(), Some("u"));
    let none: [&str; 0] = [];
    assert_eq!(RedisConfig::cluster(none), Err(ConfigError::NoClusterNodes));
    assert_eq!(
        RedisConfig::cluster(["redis://a:1", "rediss://b:2"]),
        Err(ConfigError::MixedTls)
    );
    assert_eq!(
        RedisConfig::cluster(["redis://a:1/1"]),
        Err(ConfigError::ClusterDatabase(1))
    );
    assert_eq!(
        RedisConfig::cluster(["redis://u:p@a:1", "redis://u:q@b:2"]),
        Err(ConfigError::ConflictingCredentials)
    );
    assert_eq!(
        RedisConfig::cluster(["redis://a:1"])
            .unwrap()
            .with_database(2)
            .validate(),
        Err(ConfigError::ClusterDatabase(2))
    );
}

#[test]
fn validation_catches_what_the_url_cannot_say() {
    let base = RedisConfig::from_url("redis://host").unwrap();
    assert_eq!(
        base.clone().with_connect_timeout(Duration::ZERO).validate(),
        Err(ConfigError::ZeroTimeout("connect"))
    );
    assert_eq!(
        base.clone()
            .with_response_timeout(Duration::ZERO)
            .validate(),
        Err(ConfigError::ZeroTimeout("response"))
    );
    assert_eq!(
        base.clone().with_ca_cert_pem(b"pem".to_vec()).validate(),
        Err(ConfigError::CaWithoutTls)
    );
    assert_eq!(
        base.clone()
            .with_client_cert_pem(b"cert".to_vec(), b"key".to_vec())
            .validate(),
        Err(ConfigError::ClientCertWithoutTls)
    );
    assert_eq!(
        base.with_database(-3).validate(),
        Err(ConfigError::InvalidDatabase("-3".into()))
    );
}

#[test]
fn a_client_certificate_needs_tls_and_is_never_printed() {
    let c = RedisConfig::from_url("rediss://127.0.0.1:1")
        .unwrap()
        .with_client_cert_pem(b"CERT-BYTES".to_vec(), b"KEY-BYTES".to_vec());
    assert_eq!(c.validate(), Ok(()));
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("KEY-BYTES") && !shown.contains("CERT-BYTES"),
        "{shown}"
    );
    let cluster = RedisConfig::cluster(["rediss://a:7000"])
        .unwrap()
        .with_client_cert_pem(b"c".to_vec(), b"k".to_vec());
    assert_eq!(cluster.validate(), Ok(()));
}

#[tokio::test]
async fn an_unreadable_client_certificate_is_an_error_not_a_panic() {
    let c = RedisConfig::from_url("rediss://127.0.0.1:1")
        .unwrap()
        .with_client_cert_pem(b"not pem".to_vec(), b"not pem".to_vec());
    let err = RedisStore::connect(&c).await.unwrap_err();
    assert!(matches!(err, ConnectError::Store(_)), "{err}");
}

#[test]
fn secrets_are_never_printed() {
    let c = RedisConfig::from_url("redis://app:hunter2@host").unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
    let e = RedisConfig::from_url("redis://app:hunter2@host/db").unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[tokio::test]
async fn connecting_with_a_bad_config_is_an_error_not_a_panic() {
    let c = RedisConfig::from_url("redis://127.0.0.1:1")
        .unwrap()
        .with_response_timeout(Duration::ZERO);
    assert!(matches!(
        RedisStore::connect(&c).await,
        Err(ConnectError::Config(ConfigError::ZeroTimeout(_)))
    ));
}

#[tokio::test]
async fn nothing_listening_is_unavailable() {
    // Bind then drop: the port is free and nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = RedisConfig::from_url(&format!("redis://127.0.0.1:{port}")).unwrap();
    match RedisStore::connect(&c).await {
        Err(ConnectError::Store(CacheError::Unavailable(_) | CacheError::Timeout(_))) => {}
        other => panic!("expected an unavailable store, got {other:?}"),
    }
}

#[tokio::test]
async fn a_silent_server_times_out_within_the_connect_timeout() {
    // Accepts connections and never answers: the handshake must not hang.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let limit = Duration::from_millis(300);
    let c = RedisConfig::from_url(&format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .with_connect_timeout(limit);
    let started = std::time::Instant::now();
    let result = RedisStore::connect(&c).await;
    assert!(
        matches!(
            result,
            Err(ConnectError::Store(
                CacheError::Timeout(_) | CacheError::Unavailable(_)
            ))
        ),
        "{result:?}"
    );
    assert!(
        started.elapsed() < limit * 4,
        "bounded: {:?}",
        started.elapsed()
    );
    server.abort();
}

/// A server that refuses the client, or no server at all: the background
/// connection's error names the server's own answer, not the connect
/// timeout that the connection's retries would otherwise run out.
#[tokio::test]
async fn a_refused_background_connection_names_the_refusal() {
    let Some(url) = crate::support::standalone_url() else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let authority = crate::support::upstream(&url);
    let cases = [
        (
            format!("redis://nobody-at-all:wrong@{authority}"),
            ["WRONGPASS", "auth"],
        ),
        (
            format!("redis://127.0.0.1:{port}"),
            ["refused", "Connection"],
        ),
    ];
    for (url, words) in cases {
        let config = RedisConfig::from_url(&url)
            .unwrap()
            .with_connect_timeout(Duration::from_secs(1));
        let store = RedisStore::connect_in_background(&config).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let error = lwcache_core::ports::CacheStore::ping(&store)
                .await
                .unwrap_err()
                .to_string();
            if error.contains("last attempt") {
                assert!(
                    words
                        .iter()
                        .any(|w| error.to_lowercase().contains(&w.to_lowercase()))
                        && !error.contains("connect timeout"),
                    "{url}: {error}"
                );
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{url}: {error}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
