//! The Neo4j server under test, found through the environment.

use std::sync::Arc;
use std::time::Duration;

use lwcache_neo4j::{Neo4jConfig, Neo4jRepository};
use lwcache_testkit::servers::{optional_var, server_var};
use lwcache_testkit::{Harness, RealClock};

/// The Bolt URI of the server.
pub(crate) const URI_VAR: &str = "LWCACHE_TEST_NEO4J_URI";
/// Its user.
pub(crate) const USER_VAR: &str = "LWCACHE_TEST_NEO4J_USER";
/// Its password.
pub(crate) const PASSWORD_VAR: &str = "LWCACHE_TEST_NEO4J_PASSWORD";
/// Generous for a loaded 2-core machine: these tests check behaviour, not
/// speed.
pub(crate) const TEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The server's configuration, or `None` after saying loudly that the test
/// is skipped; panics instead when servers are required.
pub(crate) fn config() -> Option<Neo4jConfig> {
    let uri = server_var(URI_VAR, "lwcache-neo4j")?;
    let config = Neo4jConfig::new(uri).with_timeouts(TEST_TIMEOUT, TEST_TIMEOUT);
    Some(match (optional_var(USER_VAR), optional_var(PASSWORD_VAR)) {
        (Some(user), Some(password)) => config.with_credentials(user, password),
        (None, Some(password)) => config.with_credentials("neo4j", password),
        _ => config,
    })
}

/// A repository on the server under test.
pub(crate) async fn repo() -> Option<Neo4jRepository> {
    let config = config()?;
    Some(
        Neo4jRepository::connect(config)
            .await
            .expect("connect to the test Neo4j"),
    )
}

lwcache_testkit::memory_harness!();

/// The in-memory store in front of Neo4j: the repository conformance checks
/// and the stack checks with a real source. One store for every check, as
/// they share one Neo4j and so one outbox.
pub(crate) async fn harness() -> Option<Harness> {
    static STORE: std::sync::OnceLock<Arc<lwcache_memory::MemoryStore>> =
        std::sync::OnceLock::new();
    let repo = repo().await?;
    let store = STORE.get_or_init(|| Arc::new(lwcache_memory::MemoryStore::new()));
    Some(memory_harness_on(
        store.clone(),
        Arc::new(repo),
        Arc::new(RealClock),
    ))
}

/// A plain driver connection, to look at the data with Cypher.
pub(crate) async fn graph() -> Option<neo4rs::Graph> {
    let config = config()?;
    let password = optional_var(PASSWORD_VAR).unwrap_or_default();
    let driver = neo4rs::ConfigBuilder::default()
        .uri(config.uri())
        .user(config.user())
        .password(password)
        .build()
        .expect("driver config");
    Some(neo4rs::Graph::connect(driver).expect("driver"))
}

/// One operator of a profiled plan: its name, details, rows and db hits.
pub(crate) type Step = (String, String, i64, i64);

/// Runs `statement` under PROFILE through the server's test procedure and
/// returns its plan, with the plan as text for assertion messages.
pub(crate) async fn profile(
    graph: &neo4rs::Graph,
    statement: &str,
    params: std::collections::HashMap<String, neo4rs::BoltType>,
) -> (Vec<Step>, String) {
    let mut stream = graph
        .execute(
            neo4rs::query("CALL lwcache.test.profile($q, $p) YIELD operator, details, depth, rows, dbHits RETURN operator, details, depth, rows, dbHits")
                .param("q", statement)
                .param("p", params),
        )
        .await
        .unwrap();
    let mut plan = Vec::new();
    while let Some(row) = stream.next().await.unwrap() {
        let op: String = row.get("operator").unwrap();
        let details: String = row.get("details").unwrap();
        let rows: i64 = row.get("rows").unwrap();
        let hits: i64 = row.get("dbHits").unwrap();
        plan.push((op, details, rows, hits));
    }
    let shown: Vec<String> = plan
        .iter()
        .map(|(o, d, r, h)| format!("{o} [{d}] rows={r} dbHits={h}"))
        .collect();
    (plan, shown.join("\n"))
}
