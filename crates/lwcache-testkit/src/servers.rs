//! Test servers found through the environment.
//!
//! Suites that need a real server read its address from an `LWCACHE_TEST_*`
//! variable. Without it they skip, loudly; with
//! `LWCACHE_REQUIRE_SERVERS=1` (as `cargo xtask ci` sets) they fail instead.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::{Mutex, PoisonError};

/// Set to 1 to fail instead of skipping when a server variable is missing.
pub const REQUIRE_VAR: &str = "LWCACHE_REQUIRE_SERVERS";

/// The trimmed value of `var`, if set and not blank.
pub fn optional_var(var: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The trimmed value of `var`, or `None` after saying loudly that `suite`'s
/// tests that need it are skipped.
///
/// # Panics
///
/// When `LWCACHE_REQUIRE_SERVERS=1` and `var` is missing: a run that
/// demands servers must not pass by skipping.
pub fn server_var(var: &str, suite: &str) -> Option<String> {
    let value = optional_var(var);
    if value.is_none() {
        assert!(
            optional_var(REQUIRE_VAR).as_deref() != Some("1"),
            "{REQUIRE_VAR}=1 but {var} is not set: no server for the {suite} tests"
        );
        skipped(var, suite);
    }
    value
}

/// Says once per variable, on the process's real stderr, that tests are
/// skipped: libtest captures `eprintln!` of passing tests, which would make
/// the skip silent.
fn skipped(var: &str, suite: &str) {
    static SAID: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let first = SAID
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(var.to_owned());
    if first {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {suite} tests that need {var}; set {var} to run them, or run `cargo xtask ci`"
        );
    }
}
