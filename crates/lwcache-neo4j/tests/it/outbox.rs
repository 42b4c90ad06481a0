//! The outbox on a real Neo4j: what each write records, in its own
//! transaction; claims; settling; loads recording nothing; the claim's plan.
//!
//! The server is shared with every other test, and the replayers of other
//! processes claim and remove entries once they are a second old. So each
//! test looks only at its own fresh worlds, reads a real entry right after
//! its write, and plants the entries it needs to keep without an `at_ms`,
//! which no claim ever matches.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use lwcache_core::ports::{Claim, SourceError, WorldRepository};
use lwcache_demo::DemoSpec;
use lwcache_domain::{
    Committed, EntityId, EventKind, Mutation, NewEvent, Op, Owed, OwedId, Value, WorldId,
};
use lwcache_neo4j::{Neo4jRepository, cypher};
use lwcache_testkit::fixtures::{character, doc, flag, fresh_world};
use neo4rs::{Graph, query};

use crate::specific::create_world;
use crate::support;

/// Every entry of a world: version to keys.
async fn entries(graph: &Graph, world: &WorldId) -> BTreeMap<u64, Vec<String>> {
    let mut stream = graph
        .execute(
            query("MATCH (o:Outbox {world_id: $w}) RETURN o.version AS v, o.keys AS keys")
                .param("w", world.as_str()),
        )
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    while let Some(row) = stream.next().await.unwrap() {
        let v: i64 = row.get("v").unwrap();
        out.insert(u64::try_from(v).unwrap(), row.get("keys").unwrap());
    }
    out
}

/// The entry of one write, if any, with its `at_ms`.
async fn entry(graph: &Graph, world: &WorldId, version: u64) -> Option<(Vec<String>, i64)> {
    let mut stream = graph
        .execute(
            query(
                "MATCH (o:Outbox {world_id: $w, version: $v}) RETURN o.keys AS keys, o.at_ms AS at",
            )
            .param("w", world.as_str())
            .param("v", i64::try_from(version).unwrap()),
        )
        .await
        .unwrap();
    let row = stream.next().await.unwrap()?;
    Some((row.get("keys").unwrap(), row.get("at").unwrap()))
}

/// Creates outbox entries directly, without `at_ms`: no claim matches
/// them, so no replayer anywhere removes them.
async fn plant(graph: &Graph, world: &WorldId, versions: impl IntoIterator<Item = u64>) {
    let versions: Vec<i64> = versions
        .into_iter()
        .map(|v| i64::try_from(v).unwrap())
        .collect();
    graph
        .run(
            query("UNWIND $vs AS v CREATE (:Outbox {world_id: $w, version: v, keys: []})")
                .param("w", world.as_str())
                .param("vs", versions),
        )
        .await
        .unwrap();
}

async fn apply(repo: &Neo4jRepository, world: &WorldId, op: Op) -> Result<Committed, SourceError> {
    repo.apply(&Mutation {
        world: world.clone(),
        op,
    })
    .await
}

fn texts(owed: &Owed) -> Vec<String> {
    owed.keys.iter().map(ToString::to_string).collect()
}

/// Each kind of write records exactly its stale keys at its version, and
/// in its own transaction: when recording fails, the write is undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_records_its_stale_keys_at_its_version_in_its_transaction() {
    let Some(repo) = support::repo().await else {
        return;
    };
    let graph = support::graph().await.unwrap();
    let world = create_world(&repo).await;
    let c = character("c");
    let ops = vec![
        Op::SetFlag(flag("f"), Value::Int(1)),
        Op::CreateEntity(c.clone(), doc("hp", "10")),
        Op::AddEvent(NewEvent {
            entity: c.entity_id(),
            kind: EventKind::new("hit").unwrap(),
            at_ms: 5,
            data: doc("by", "d"),
            top_k: lwcache_domain::DEFAULT_TOP_K,
        }),
        Op::UpdateEntity(c.clone(), doc("hp", "9")),
        Op::DeleteEntity(c.clone()),
        Op::ClearFlag(flag("f")),
        Op::ReplaceSnapshot(doc("name", "Bay")),
    ];
    let mut recorded = BTreeSet::new();
    for op in ops {
        let committed = apply(&repo, &world, op).await.unwrap();
        // Read at once: a replayer elsewhere may take an entry a second old.
        let (keys, at_ms) = entry(&graph, &world, committed.version)
            .await
            .unwrap_or_else(|| panic!("no entry for {committed:?}"));
        let owed = Owed::of(&committed);
        assert_eq!(keys, texts(&owed), "{committed:?}");
        assert!(!keys.is_empty());
        assert!(at_ms > 0);
        recorded.insert(committed.version);
    }
    assert_eq!(recorded, (2..=8).collect::<BTreeSet<u64>>());

    // An entry already at the next version makes recording fail: the flag
    // the write set and the version it bumped are rolled back with it.
    plant(&graph, &world, [9]).await;
    let err = apply(&repo, &world, Op::SetFlag(flag("g"), Value::Bool(true)))
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Other(_)), "{err:?}");
    assert_eq!(repo.version(&world).await.unwrap(), 8);
    let flags = repo
        .read(&lwcache_domain::CacheKey::flags(&world), 1)
        .await
        .unwrap();
    assert_eq!(
        flags.value,
        lwcache_domain::CachedValue::Flags(Default::default())
    );
    repo.settle(&[OwedId {
        world: world.clone(),
        version: 9,
    }])
    .await
    .unwrap();
    let committed = apply(&repo, &world, Op::SetFlag(flag("g"), Value::Bool(true)))
        .await
        .unwrap();
    assert_eq!(committed.version, 9);
    let (keys, _) = entry(&graph, &world, 9).await.unwrap();
    assert_eq!(keys, texts(&Owed::of(&committed)));
}

/// A refused write, and a write to an unknown world, record nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_records_nothing() {
    let Some(repo) = support::repo().await else {
        return;
    };
    let graph = support::graph().await.unwrap();
    let world = create_world(&repo).await;
    assert!(entry(&graph, &world, 1).await.is_some());
    let refused = [
        Op::UpdateEntity(character("ghost"), doc("a", "b")),
        Op::DeleteEntity(character("ghost")),
        Op::AddEvent(NewEvent {
            entity: EntityId::new("ghost").unwrap(),
            kind: EventKind::new("hit").unwrap(),
            at_ms: 1,
            data: doc("a", "b"),
            top_k: lwcache_domain::DEFAULT_TOP_K,
        }),
    ];
    for op in refused {
        let err = apply(&repo, &world, op).await.unwrap_err();
        assert!(matches!(err, SourceError::Rejected(_)), "{err:?}");
    }
    assert_eq!(repo.version(&world).await.unwrap(), 1);
    let left: Vec<u64> = entries(&graph, &world).await.into_keys().collect();
    assert!(left.iter().all(|v| *v == 1), "{left:?}");

    let unknown = fresh_world();
    apply(&repo, &unknown, Op::SetFlag(flag("f"), Value::Int(1)))
        .await
        .unwrap_err();
    assert!(entries(&graph, &unknown).await.is_empty());
}

fn claim(owner: &str, min_age: Duration, lease: Duration) -> Claim {
    Claim {
        owner: owner.to_owned(),
        world: None,
        // Everything on the shared server, so that nobody's crowds ours out.
        limit: 1_000_000,
        min_age,
        lease,
    }
}

fn ours(claimed: Vec<Owed>, world: &WorldId) -> BTreeMap<u64, Owed> {
    claimed
        .into_iter()
        .filter(|o| &o.world == world)
        .map(|o| (o.version, o))
        .collect()
}

/// A claim takes only entries old enough, not those another owner holds a
/// live claim on; its owner may claim them again, and anyone may once the
/// claim lapses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_respect_min_age_and_live_claims_of_others() {
    let Some(repo) = support::repo().await else {
        return;
    };
    let world = create_world(&repo).await;
    let mut expected = BTreeMap::new();
    for i in 0..3 {
        let committed = apply(&repo, &world, Op::SetFlag(flag("f"), Value::Int(i)))
            .await
            .unwrap();
        expected.insert(committed.version, Owed::of(&committed));
    }
    // Ours are younger than a second from here on, so no other process's
    // replayer takes them before this test has claimed them.
    let a = format!("test-a-{world}");
    let b = format!("test-b-{world}");
    let short = Duration::from_millis(250);
    let hour = Duration::from_secs(3600);

    let old_only = ours(repo.owed(&claim(&a, hour, short)).await.unwrap(), &world);
    assert!(old_only.is_empty(), "{old_only:?}");

    let mut all = ours(
        repo.owed(&claim(&a, Duration::ZERO, short)).await.unwrap(),
        &world,
    );
    let first = all.remove(&1).expect("the world's creation is owed");
    assert_eq!(first.keys, vec![lwcache_domain::CacheKey::state(&world)]);
    assert_eq!(all, expected);

    let other = ours(
        repo.owed(&claim(&b, Duration::ZERO, short)).await.unwrap(),
        &world,
    );
    assert!(other.is_empty(), "{other:?}");
    let again = ours(
        repo.owed(&claim(&a, Duration::ZERO, short)).await.unwrap(),
        &world,
    );
    assert_eq!(again.len(), 4, "{again:?}");

    tokio::time::sleep(short + Duration::from_millis(50)).await;
    let lapsed = ours(
        repo.owed(&claim(&b, Duration::ZERO, Duration::from_secs(1)))
            .await
            .unwrap(),
        &world,
    );
    assert_eq!(lapsed.len(), 4, "{lapsed:?}");
    let ids: Vec<OwedId> = lapsed.values().map(Owed::id).collect();
    repo.settle(&ids).await.unwrap();
}

/// Settling 100 ids removes exactly those entries, in one statement;
/// ids without an entry are ignored, and other worlds' entries stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_removes_exactly_the_named_entries() {
    let Some(repo) = support::repo().await else {
        return;
    };
    let graph = support::graph().await.unwrap();
    let world = fresh_world();
    let neighbour = fresh_world();
    plant(&graph, &world, 1..=101).await;
    plant(&graph, &neighbour, [5, 50]).await;
    let mut done: Vec<OwedId> = (1..=100)
        .map(|version| OwedId {
            world: world.clone(),
            version,
        })
        .collect();
    done.push(OwedId {
        world: world.clone(),
        version: 500,
    });
    repo.settle(&done).await.unwrap();
    let left: Vec<u64> = entries(&graph, &world).await.into_keys().collect();
    assert_eq!(left, vec![101]);
    let theirs: Vec<u64> = entries(&graph, &neighbour).await.into_keys().collect();
    assert_eq!(theirs, vec![5, 50]);
    repo.settle(&[]).await.unwrap();

    let mut rest: Vec<OwedId> = vec![OwedId {
        world: world.clone(),
        version: 101,
    }];
    rest.extend([5, 50].map(|version| OwedId {
        world: neighbour.clone(),
        version,
    }));
    repo.settle(&rest).await.unwrap();
    assert!(entries(&graph, &world).await.is_empty());
    assert!(entries(&graph, &neighbour).await.is_empty());
}

/// A bulk load bypasses the cache, so it records no entry; the first write
/// after it records one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_records_nothing() {
    let Some(repo) = support::repo().await else {
        return;
    };
    let graph = support::graph().await.unwrap();
    let world = fresh_world();
    let seed = DemoSpec::sized(5, 3).seed();
    let version = repo.load(&world, &seed).await.unwrap();
    assert!(version > 1);
    assert!(entries(&graph, &world).await.is_empty());
    let committed = apply(&repo, &world, Op::SetFlag(flag("after"), Value::Int(1)))
        .await
        .unwrap();
    assert_eq!(committed.version, version + 1);
    assert!(entry(&graph, &world, version + 1).await.is_some());
}

/// The claim's search for old entries is a range seek on the `at_ms`
/// index, never a label scan. The profiling procedure runs read-only, so
/// it profiles the claim up to its `SET`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_seeks_the_age_index() {
    let Some(_repo) = support::repo().await else {
        return;
    };
    let graph = support::graph().await.unwrap();
    let (select, _) = cypher::CLAIM_OWED
        .split_once("\nSET ")
        .expect("the claim sets its claim");
    let read_only = format!("{select}\nRETURN o.world_id AS world_id, o.version AS version");
    let params: std::collections::HashMap<String, neo4rs::BoltType> = [
        ("owner".to_owned(), "test-plan".into()),
        ("world".to_owned(), "".into()),
        ("min_age_ms".to_owned(), 1_000i64.into()),
        ("lease_ms".to_owned(), 1_000i64.into()),
        ("limit".to_owned(), 100i64.into()),
    ]
    .into();
    let (plan, shown) = support::profile(&graph, &read_only, params).await;
    println!("claim plan:\n{shown}");
    // A seek or, when the planner finds the index small, an ordered scan of
    // it that the LIMIT stops early: either way the age index, in its order.
    assert!(
        plan.iter().any(|(o, d, ..)| {
            (o.contains("NodeIndexSeek") || o.contains("NodeIndexScan"))
                && d.contains("Outbox(at_ms)")
        }),
        "the claim does not read the age index:\n{shown}"
    );
    for (op, ..) in &plan {
        assert!(
            !op.contains("LabelScan")
                && !op.contains("AllNodesScan")
                && !op.starts_with("Sort")
                && !op.starts_with("Top"),
            "{op} in the plan:\n{shown}"
        );
    }
}
