//! `ServerProbe` on the real servers: the standalone server, every master
//! of the Cluster, and a user whose ACL may not run `CONFIG`.

use lwcache_redis::{Eviction, RedisConfig, ServerProbe};

use crate::support::{ACL_VAR, TLS_CA_VAR, TLS_VAR, cluster_urls, server_env, standalone_url};

#[tokio::test]
async fn the_standalone_server_names_its_policy_and_memory() {
    let Some(url) = standalone_url() else { return };
    let probe = ServerProbe::new(&RedisConfig::from_url(&url).unwrap());
    let nodes = probe.memory().await.unwrap();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let n = &nodes[0];
    assert!(n.policy.is_some(), "{n:?}");
    assert_eq!(n.config_refused, None, "{n:?}");
    assert!(n.used_memory.is_some_and(|u| u > 0), "{n:?}");
    assert!(n.maxmemory.is_some(), "{n:?}");
    assert_ne!(n.eviction(), Eviction::NotVisible);
    // Asked again on the connection it kept.
    assert_eq!(probe.memory().await.unwrap().len(), 1);
}

#[tokio::test]
async fn every_cluster_master_answers() {
    let Some(urls) = cluster_urls() else { return };
    let probe = ServerProbe::new(&RedisConfig::cluster(&urls).unwrap());
    let nodes = probe.memory().await.unwrap();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    let mut names: Vec<&str> = nodes.iter().map(|n| n.node.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 3, "one answer per master: {nodes:?}");
    assert!(nodes.iter().all(|n| n.policy.is_some()), "{nodes:?}");
}

#[tokio::test]
async fn a_restricted_user_is_refused_config_without_an_error() {
    let Some(url) = server_env(ACL_VAR) else {
        return;
    };
    let probe = ServerProbe::new(&RedisConfig::from_url(&url).unwrap());
    let nodes = probe.memory().await.expect("a refusal is no failure");
    assert!(nodes[0].config_refused.is_some(), "{nodes:?}");
}

#[tokio::test]
async fn over_tls_with_the_private_ca() {
    let (Some(url), Some(ca)) = (server_env(TLS_VAR), server_env(TLS_CA_VAR)) else {
        return;
    };
    let config = RedisConfig::from_url(&url)
        .unwrap()
        .with_ca_cert_pem(std::fs::read(ca).unwrap());
    let nodes = ServerProbe::new(&config).memory().await.unwrap();
    assert!(nodes[0].policy.is_some(), "{nodes:?}");
}

#[tokio::test]
async fn an_unreachable_server_is_an_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = RedisConfig::from_url(&format!("redis://127.0.0.1:{port}")).unwrap();
    assert!(ServerProbe::new(&config).memory().await.is_err());
}
