//! The whole stack on real servers: Redis in front of Neo4j. Activate,
//! read, write, invalidate, read again; the keys are checked in Redis with
//! plain commands and the data in Neo4j with plain Cypher.

use std::collections::BTreeSet;

use lwcache_core::{CacheManager, CacheStep, Error, Fields, Outcome, codec};

use lwcache_core::ports::{SourceError, WorldRepository};
use lwcache_demo::DemoSpec;
use lwcache_domain::{CacheKey, CachedValue, Value, WorldError, WorldId};
use lwcache_neo4j::{Neo4jConfig, Neo4jRepository};
use lwcache_redis::{RedisConfig, RedisStore};
use lwcache_testkit::servers::{optional_var, server_var};
use redis::AsyncCommands as _;

/// The servers' settings, or `None` after saying loudly why the test is
/// skipped; a failure instead when `LWCACHE_REQUIRE_SERVERS=1`.
fn servers() -> Option<(String, Neo4jConfig)> {
    let redis = server_var("LWCACHE_TEST_REDIS_URL", "lwcache-e2e Redis-over-Neo4j")?;
    let uri = server_var("LWCACHE_TEST_NEO4J_URI", "lwcache-e2e Redis-over-Neo4j")?;
    let config = Neo4jConfig::new(uri).with_credentials(
        optional_var("LWCACHE_TEST_NEO4J_USER").unwrap_or_else(|| "neo4j".to_owned()),
        optional_var("LWCACHE_TEST_NEO4J_PASSWORD").unwrap_or_default(),
    );
    Some((redis, config))
}

async fn cypher_one<T: serde::de::DeserializeOwned>(
    graph: &neo4rs::Graph,
    q: neo4rs::Query,
    field: &str,
) -> T {
    let mut rows = graph.execute(q).await.unwrap();
    let row = rows.next().await.unwrap().expect("one row");
    row.get(field).unwrap()
}

async fn redis_keys(
    conn: &mut redis::aio::MultiplexedConnection,
    world: &WorldId,
) -> BTreeSet<String> {
    let pattern = format!("{}*", lwcache_domain::key::world_prefix(world));
    let mut keys = BTreeSet::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_neo4j_activate_read_write_invalidate_read() {
    let Some((redis_url, neo4j_config)) = servers() else {
        return;
    };
    let repo = Neo4jRepository::connect(neo4j_config.clone())
        .await
        .unwrap();
    let store = RedisStore::connect(&RedisConfig::from_url(&redis_url).unwrap())
        .await
        .unwrap();
    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let driver = neo4rs::ConfigBuilder::default()
        .uri(neo4j_config.uri())
        .user(neo4j_config.user())
        .password(optional_var("LWCACHE_TEST_NEO4J_PASSWORD").unwrap_or_default())
        .build()
        .unwrap();
    let graph = neo4rs::Graph::connect(driver).unwrap();

    // A demo world of 40 entities and 200 events, loaded into Neo4j.
    let spec = DemoSpec::sized(40, 5);
    let seed = spec.seed();
    let world = lwcache_testkit::fixtures::fresh_world();
    let loaded = repo.load(&world, &seed).await.unwrap();
    let manager = CacheManager::builder(store, repo).build().unwrap();

    // Activate: every key of the world is in Redis, and nothing else.
    let report = manager.activate(&world).await.unwrap();
    assert_eq!(report.version, loaded);
    // Activation fills; only commits raise the world's version key.
    let mut expected: BTreeSet<String> = [CacheKey::state(&world), CacheKey::flags(&world)]
        .iter()
        .map(ToString::to_string)
        .collect();
    for entity in spec.entity_refs() {
        expected.insert(CacheKey::entity(&world, &entity).to_string());
        expected.insert(CacheKey::timeline(&world, &entity.entity_id()).to_string());
    }
    assert_eq!(redis_keys(&mut conn, &world).await, expected);
    let ver: Option<String> = conn
        .get(CacheKey::version(&world).to_string())
        .await
        .unwrap();
    assert_eq!(
        ver, None,
        "loaded at version {loaded}, nothing committed through the cache"
    );

    // Read: a hit, equal to what Neo4j holds.
    let npc = spec.character(spec.players);
    let read = manager
        .entity(&world, &npc, Fields::Cacheable)
        .await
        .unwrap();
    assert_eq!(read.outcome, Outcome::Hit);
    let stored: String = cypher_one(
        &graph,
        neo4rs::query("MATCH (e:Entity:Character {world_id: $w, id: $id}) RETURN e.state AS s")
            .param("w", world.as_str())
            .param("id", npc.id_str()),
        "s",
    )
    .await;
    assert_eq!(lwcache_neo4j::json::decode(&stored).unwrap(), read.value);

    // Write through: Neo4j and Redis both hold the new state at the new version.
    let new_state = read
        .value
        .clone()
        .with("mood", Value::Text("elated".into()));
    let written = manager
        .put_entity(&world, npc.clone(), new_state.clone())
        .await
        .unwrap();
    assert_eq!(written.cache, CacheStep::Applied);
    let version = written.committed.version;
    assert_eq!(version, loaded + 1);
    let stored: String = cypher_one(
        &graph,
        neo4rs::query("MATCH (e:Entity {world_id: $w, id: $id}) RETURN e.state AS s")
            .param("w", world.as_str())
            .param("id", npc.id_str()),
        "s",
    )
    .await;
    assert_eq!(lwcache_neo4j::json::decode(&stored).unwrap(), new_state);
    let bytes: Vec<u8> = conn
        .get(CacheKey::entity(&world, &npc).to_string())
        .await
        .unwrap();
    let entry = codec::decode(&bytes).unwrap();
    assert_eq!(entry.version, version);
    assert_eq!(entry.value, CachedValue::Entity(new_state.clone()));
    let again = manager
        .entity(&world, &npc, Fields::Cacheable)
        .await
        .unwrap();
    assert_eq!((again.outcome, again.value), (Outcome::Hit, new_state));

    // A flag: in Neo4j as JSON text, and read back through the cache.
    let flag = lwcache_testkit::fixtures::flag("storm_active");
    manager
        .set_flag(&world, flag.clone(), Value::Bool(true))
        .await
        .unwrap();
    let value: String = cypher_one(
        &graph,
        neo4rs::query(
            "MATCH (:World {id: $w})-[:HAS_FLAG]->(f:Flag {name: $n}) RETURN f.value AS v",
        )
        .param("w", world.as_str())
        .param("n", flag.as_str()),
        "v",
    )
    .await;
    assert_eq!(value, "true");
    assert_eq!(
        manager.flag(&world, &flag).await.unwrap().value,
        Some(Value::Bool(true))
    );

    // An event (write-behind for the recent timeline): in Neo4j at once, in
    // the cache once the queue settles.
    let kind = lwcache_testkit::fixtures::event_kind("spoke");
    let added = manager
        .add_event(
            &world,
            npc.entity_id(),
            kind.clone(),
            lwcache_testkit::fixtures::doc("line", "hello"),
        )
        .await
        .unwrap();
    let count: i64 = cypher_one(
        &graph,
        neo4rs::query(
            "MATCH (:Entity {world_id: $w, id: $id})-[:HAS_EVENT]->(v:Event) RETURN count(v) AS n",
        )
        .param("w", world.as_str())
        .param("id", npc.id_str()),
        "n",
    )
    .await;
    assert_eq!(count, 6);
    manager.settle().await;
    let recent = manager.recent(&world, &npc.entity_id(), 3).await.unwrap();
    assert_eq!(recent.value[0].seq, added.committed.version);
    assert_eq!(recent.value[0].kind, kind);

    // Invalidate by deleting: gone from Redis and from Neo4j; reading it
    // again is a typed error.
    manager.delete_entity(&world, npc.clone()).await.unwrap();
    let left_in_redis: Option<Vec<u8>> = conn
        .get(CacheKey::entity(&world, &npc).to_string())
        .await
        .unwrap();
    assert!(
        left_in_redis.as_deref().is_some_and(codec::is_tombstone),
        "the entity's key holds a tombstone, not its state"
    );
    let left: i64 = cypher_one(
        &graph,
        neo4rs::query("MATCH (e:Entity {world_id: $w, id: $id}) RETURN count(e) AS n")
            .param("w", world.as_str())
            .param("id", npc.id_str()),
        "n",
    )
    .await;
    assert_eq!(left, 0);
    let err = manager
        .entity(&world, &npc, Fields::Cacheable)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Source(SourceError::Rejected(WorldError::UnknownEntity { .. }))
        ),
        "{err:?}"
    );

    // Versions agree: Neo4j's world node, Redis's ver key.
    let neo4j_version: i64 = cypher_one(
        &graph,
        neo4rs::query("MATCH (w:World {id: $w}) RETURN w.version AS v").param("w", world.as_str()),
        "v",
    )
    .await;
    let ver: String = conn
        .get(CacheKey::version(&world).to_string())
        .await
        .unwrap();
    assert_eq!(ver, neo4j_version.to_string());
    manager.shutdown().await;
}
