//! The Neo4j server under test, found through the environment.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use lwcache_neo4j::{Neo4jConfig, Neo4jRepository};
use lwcache_testkit::memory::memory_harness;
use lwcache_testkit::{Harness, RealClock};

/// The Bolt URI of the server.
pub(crate) const URI_VAR: &str = "LWCACHE_TEST_NEO4J_URI";
/// Its user.
pub(crate) const USER_VAR: &str = "LWCACHE_TEST_NEO4J_USER";
/// Its password.
pub(crate) const PASSWORD_VAR: &str = "LWCACHE_TEST_NEO4J_PASSWORD";
/// Set to 1 (as `cargo xtask ci` does) to fail instead of skipping.
const REQUIRE_VAR: &str = "LWCACHE_REQUIRE_SERVERS";

/// Generous for a loaded 2-core machine: these tests check behaviour, not
/// speed.
pub(crate) const TEST_TIMEOUT: Duration = Duration::from_secs(20);

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The server's configuration, or `None` after saying loudly that the test
/// is skipped; panics instead when servers are required.
pub(crate) fn config() -> Option<Neo4jConfig> {
    let Some(uri) = var(URI_VAR) else {
        if var(REQUIRE_VAR).as_deref() == Some("1") {
            panic!("{REQUIRE_VAR}=1 but {URI_VAR} is not set: no Neo4j to test against");
        }
        skipped(URI_VAR);
        return None;
    };
    let config = Neo4jConfig::new(uri).with_timeouts(TEST_TIMEOUT, TEST_TIMEOUT);
    Some(match (var(USER_VAR), var(PASSWORD_VAR)) {
        (Some(user), Some(password)) => config.with_credentials(user, password),
        (None, Some(password)) => config.with_credentials("neo4j", password),
        _ => config,
    })
}

/// Says once per variable, on the process's real stderr, that tests are
/// skipped (libtest captures `eprintln!` of passing tests).
pub(crate) fn skipped(var: &str) {
    static SAID: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());
    let first = SAID
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(var.to_owned());
    if first {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: lwcache-neo4j tests that need {var}; set {var} (and {USER_VAR}, {PASSWORD_VAR}) to run them, or run `cargo xtask ci`"
        );
    }
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

/// The in-memory store in front of Neo4j: the repository conformance checks
/// and the stack checks with a real source.
pub(crate) async fn harness() -> Option<Harness> {
    let repo = repo().await?;
    Some(memory_harness(Arc::new(repo), Arc::new(RealClock)))
}

/// A plain driver connection, to look at the data with Cypher.
pub(crate) async fn graph() -> Option<neo4rs::Graph> {
    let config = config()?;
    let password = var(PASSWORD_VAR).unwrap_or_default();
    let driver = neo4rs::ConfigBuilder::default()
        .uri(config.uri())
        .user(config.user())
        .password(password)
        .build()
        .expect("driver config");
    Some(neo4rs::Graph::connect(driver).expect("driver"))
}
