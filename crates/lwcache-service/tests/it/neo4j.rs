//! The service and `lwcache seed` on a real Neo4j, when
//! `LWCACHE_TEST_NEO4J_URI` (and `_USER`, `_PASSWORD`) name one.

use crate::routes::{LIMIT, every_route, service_routes};
use crate::support::{Server, command, fresh_world, server_env};

/// `--neo4j-uri URI [--neo4j-user U] [--neo4j-password P]`, or `None`
/// after saying loudly that the test is skipped.
pub(crate) fn neo4j_args() -> Option<Vec<String>> {
    let uri = server_env("LWCACHE_TEST_NEO4J_URI")?;
    let mut args = vec!["--neo4j-uri".to_owned(), uri];
    for (var, flag) in [
        ("LWCACHE_TEST_NEO4J_USER", "--neo4j-user"),
        ("LWCACHE_TEST_NEO4J_PASSWORD", "--neo4j-password"),
    ] {
        if let Some(v) = std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
            args.push(flag.to_owned());
            args.push(v.trim().to_owned());
        }
    }
    Some(args)
}

#[tokio::test]
async fn every_route_on_neo4j() {
    let Some(mut args) = neo4j_args() else {
        return;
    };
    args.extend(["--write-mode", "invalidate", "--max-body-bytes"].map(str::to_owned));
    args.push(LIMIT.to_string());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = Server::start(&refs);
    {
        let out = s.stdout.lock().unwrap().clone();
        assert!(out.contains("source: Neo4j at"), "{out}");
        assert!(!out.contains("NOTHING PERSISTS"), "{out}");
    }
    every_route(&s).await;
    service_routes(&s).await;
    let (status, out) = s.terminate();
    assert_eq!(status.code(), Some(0), "{out}");
}

#[test]
fn seed_loads_into_neo4j_once() {
    let Some(args) = neo4j_args() else {
        return;
    };
    let world = fresh_world("seed");
    let run = || {
        command()
            .args(["seed", "--size", "16", "--world", &world])
            .args(&args)
            .output()
            .unwrap()
    };
    let first = run();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout.contains(&format!("loaded world {world} into the Neo4j")),
        "{stdout}"
    );
    let second = run();
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("already exists") && err.contains("nothing was written"),
        "{err}"
    );
}
