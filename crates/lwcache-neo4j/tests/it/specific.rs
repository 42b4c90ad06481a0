//! What only a real Neo4j shows.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use lwcache_core::ports::{SourceError, WorldRepository};
use lwcache_demo::DemoSpec;
use lwcache_domain::{
    CacheKey, CachedValue, Document, DocumentError, DocumentLimits, Mutation, Op, Value, WorldError,
};
use lwcache_neo4j::{Neo4jConfig, Neo4jError, Neo4jRepository, cypher};
use lwcache_testkit::fixtures::{character, doc, flag, fresh_world};
use neo4rs::query;

use crate::support::{self, TEST_TIMEOUT};

pub(crate) async fn create_world(repo: &Neo4jRepository) -> lwcache_domain::WorldId {
    let world = fresh_world();
    repo.apply(&Mutation {
        world: world.clone(),
        op: Op::ReplaceSnapshot(doc("name", "Harbor")),
    })
    .await
    .unwrap();
    world
}

/// Eight tasks writing to one world at once, each through its own
/// connection pool, get every version exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_writers_get_consecutive_versions() {
    let Some(repo) = support::repo().await else {
        return;
    };
    let world = create_world(&repo).await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        // Separate repositories: separate pools, as separate processes would.
        let repo = support::repo().await.unwrap();
        let world = world.clone();
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for i in 0..25 {
                let op = match i % 3 {
                    0 => Op::SetFlag(flag(&format!("f{t}")), Value::Int(i)),
                    1 => Op::PutEntity(character(&format!("c{t}")), doc("i", &i.to_string())),
                    _ => Op::ReplaceSnapshot(doc("by", &t.to_string())),
                };
                let c = repo
                    .apply(&Mutation {
                        world: world.clone(),
                        op,
                    })
                    .await
                    .unwrap();
                versions.push(c.version);
            }
            versions
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let versions = task.await.unwrap();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        all.extend(versions);
    }
    all.sort_unstable();
    let expected: Vec<u64> = (2..=201).collect();
    assert_eq!(all, expected, "every version from 2 to 201 exactly once");
    assert_eq!(repo.version(&world).await.unwrap(), 201);
}

/// The recent timeline of an entity in a world of 100,000 events is read
/// through a seek on the timeline index that touches only that entity's
/// events: no label scan, no scan or sort of the world's events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_timelines_are_served_by_the_index_at_100k_events() {
    let Some(repo) = support::repo().await else {
        return;
    };
    let graph = support::graph().await.unwrap();
    let spec = DemoSpec::sized(1_000, 100);
    let seed = spec.seed();
    assert_eq!(seed.events.len(), 100_000);
    let world = fresh_world();
    let version = repo.load(&world, &seed).await.unwrap();
    assert_eq!(version, seed.len() as u64);

    let mut stream = graph
        .execute(
            query("MATCH (v:Event {world_id: $w}) RETURN count(v) AS n").param("w", world.as_str()),
        )
        .await
        .unwrap();
    let n: i64 = stream.next().await.unwrap().unwrap().get("n").unwrap();
    assert_eq!(n, 100_000);

    let entity = spec.character(3).entity_id();
    let k = 20i64;
    let params: std::collections::HashMap<String, neo4rs::BoltType> = [
        ("w".to_owned(), world.as_str().into()),
        ("id".to_owned(), entity.as_str().into()),
        ("k".to_owned(), k.into()),
    ]
    .into();
    let (plan, shown) = support::profile(&graph, cypher::RECENT, params).await;
    let seek = plan
        .iter()
        .find(|(o, d, _, _)| {
            o.contains("NodeIndexSeek") && d.contains("Event(world_id, entity_id, seq)")
        })
        .unwrap_or_else(|| panic!("no seek on the timeline index:\n{shown}"));
    let own = seed.events.iter().filter(|e| e.entity == entity).count() as i64;
    assert_eq!(own, 100);
    assert!(
        seek.2 <= own,
        "the seek reads only the entity's own {own} events, not the world's:\n{shown}"
    );
    for (op, ..) in &plan {
        assert!(
            !op.contains("LabelScan") && !op.contains("AllNodesScan"),
            "{op} in the plan:\n{shown}"
        );
    }
    let total_hits: i64 = plan.iter().map(|p| p.3).sum();
    assert!(
        total_hits < 1_000,
        "{total_hits} db hits for a top-{k} read:\n{shown}"
    );

    // And the rows are the newest first.
    let read = repo
        .read(&CacheKey::timeline(&world, &entity), k as usize)
        .await
        .unwrap();
    let CachedValue::Timeline(events) = read.value else {
        panic!("a timeline")
    };
    assert_eq!(events.len(), k as usize);
    assert!(events.windows(2).all(|w| w[0].seq > w[1].seq));
    let newest = seed
        .events
        .iter()
        .rposition(|e| e.entity == entity)
        .unwrap();
    assert_eq!(events[0].at_ms, seed.events[newest].at_ms);
}

/// The schema step can run again, from several repositories at once, and
/// leaves exactly the constraints and index of the model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_step_is_idempotent() {
    let Some(repo) = support::repo().await else {
        return;
    };
    let graph = support::graph().await.unwrap();
    let again = futures_join(repo.clone()).await;
    assert!(again.iter().all(Result::is_ok), "{again:?}");
    let mut names = BTreeSet::new();
    for statement in [
        "SHOW CONSTRAINTS YIELD name RETURN name",
        "SHOW INDEXES YIELD name, state WHERE state = 'ONLINE' RETURN name",
    ] {
        let mut stream = graph.execute(query(statement)).await.unwrap();
        while let Some(row) = stream.next().await.unwrap() {
            let name: String = row.get("name").unwrap();
            if name.starts_with("lw_") {
                names.insert(name);
            }
        }
    }
    let expected: BTreeSet<String> = [
        "lw_world_id",
        "lw_entity_key",
        "lw_flag_key",
        "lw_event_key",
        "lw_event_timeline",
        "lw_outbox_key",
        "lw_outbox_age",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(names, expected);
}

async fn futures_join(repo: Neo4jRepository) -> Vec<Result<(), Neo4jError>> {
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move { repo.ensure_schema().await }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Oversize and non-finite documents and unknown worlds are refused with
/// typed errors, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_typed_errors_and_writes_nothing() {
    let Some(config) = support::config() else {
        return;
    };
    let limits = DocumentLimits {
        max_bytes: 64,
        max_depth: 4,
    };
    let repo = Neo4jRepository::connect(config.with_limits(limits))
        .await
        .unwrap();
    let world = create_world(&repo).await;
    let big = doc("text", &"x".repeat(100));
    let err = repo
        .apply(&Mutation {
            world: world.clone(),
            op: Op::PutEntity(character("c"), big),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SourceError::Rejected(WorldError::Document(DocumentError::TooLarge { .. }))
        ),
        "{err:?}"
    );
    let nan = Document::new().with("x", Value::Float(f64::NAN));
    let err = repo
        .apply(&Mutation {
            world: world.clone(),
            op: Op::ReplaceSnapshot(nan),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SourceError::Rejected(WorldError::Document(DocumentError::NonFinite))
        ),
        "{err:?}"
    );
    assert_eq!(
        repo.version(&world).await.unwrap(),
        1,
        "nothing was written"
    );
    assert!(matches!(
        repo.read(&CacheKey::entity(&world, &character("c")), 20)
            .await,
        Err(SourceError::Rejected(WorldError::UnknownEntity { .. }))
    ));
    let unknown = fresh_world();
    let err = repo
        .apply(&Mutation {
            world: unknown.clone(),
            op: Op::SetFlag(flag("f"), Value::Bool(true)),
        })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SourceError::Rejected(WorldError::UnknownWorld(unknown))
    );
}

/// A port nothing listens on is a typed error, and so is a server that
/// accepts connections but never answers: both within the configured
/// timeout, never a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_silent_servers_fail_within_the_timeout() {
    let timeout = Duration::from_millis(700);
    // Refused: a port that was free a moment ago.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config =
        Neo4jConfig::new(format!("bolt://127.0.0.1:{port}")).with_timeouts(timeout, timeout);
    let outcome = tokio::time::timeout(timeout * 10, Neo4jRepository::connect(config)).await;
    let err = outcome.expect("connect returned").unwrap_err();
    assert!(
        matches!(err, Neo4jError::Unreachable { .. } | Neo4jError::Timeout(_)),
        "{err:?}"
    );
    assert!(matches!(
        SourceError::from(err),
        SourceError::Unavailable(_) | SourceError::Timeout(_)
    ));

    // Silent: accepts, reads, never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let config = Neo4jConfig::new(format!("bolt://{addr}")).with_timeouts(timeout, timeout);
    let outcome = tokio::time::timeout(timeout * 10, Neo4jRepository::connect(config)).await;
    let err = outcome.expect("connect returned").unwrap_err();
    assert!(
        matches!(err, Neo4jError::Timeout(_) | Neo4jError::Unreachable { .. }),
        "{err:?}"
    );
    hold.abort();
}

/// Wrong credentials are refused with a typed error naming the user; the
/// right ones work over `bolt://` and `neo4j://` alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_uri_schemes_work_from_config() {
    let Some(config) = support::config() else {
        return;
    };
    let wrong = config
        .clone()
        .with_credentials(config.user(), "not-the-password");
    let err = Neo4jRepository::connect(wrong).await.unwrap_err();
    assert!(
        matches!(&err, Neo4jError::Unauthorized { user, .. } if user == config.user()),
        "{err:?}"
    );
    assert!(!err.to_string().contains("not-the-password"));

    let routed_uri = config.uri().replacen("bolt://", "neo4j://", 1);
    assert!(routed_uri.starts_with("neo4j://"));
    let password =
        lwcache_testkit::servers::optional_var(support::PASSWORD_VAR).unwrap_or_default();
    let routed = Neo4jConfig::new(routed_uri)
        .with_credentials(config.user(), password)
        .with_timeouts(TEST_TIMEOUT, TEST_TIMEOUT);
    let repo = Arc::new(Neo4jRepository::connect(routed).await.unwrap());
    let world = create_world(&repo).await;
    assert_eq!(repo.version(&world).await.unwrap(), 1);
    repo.ping().await.unwrap();
}
