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
    non_blank(std::env::var(var).ok())
}

fn non_blank(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
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
        let required = optional_var(REQUIRE_VAR).as_deref() == Some("1");
        if let Some(notice) = skip_notice(required, var, suite) {
            // On the process's real stderr: libtest captures `eprintln!` of
            // passing tests, which would make the skip silent.
            let _ = writeln!(std::io::stderr(), "{notice}");
        }
    }
    value
}

/// What to say when `var` is missing: a notice the first time per variable
/// in this process, nothing after; a panic when servers are required.
fn skip_notice(required: bool, var: &str, suite: &str) -> Option<String> {
    assert!(
        !required,
        "{REQUIRE_VAR}=1 but {var} is not set: no server for the {suite} tests"
    );
    static SAID: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let first = SAID
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(var.to_owned());
    first.then(|| {
        format!(
            "SKIPPED: {suite} tests that need {var}; set {var} to run them, or run `cargo xtask ci`"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_values_count_as_unset_and_values_are_trimmed() {
        assert_eq!(non_blank(None), None);
        assert_eq!(non_blank(Some("  \t".into())), None);
        assert_eq!(
            non_blank(Some(" redis://127.0.0.1:1 \n".into())).as_deref(),
            Some("redis://127.0.0.1:1")
        );
    }

    #[test]
    fn a_skip_is_announced_once_per_variable() {
        let notice = skip_notice(false, "LWCACHE_TEST_UNIT_A", "unit").expect("a first notice");
        assert!(notice.starts_with("SKIPPED: unit tests"), "{notice}");
        assert!(notice.contains("LWCACHE_TEST_UNIT_A"), "{notice}");
        assert_eq!(skip_notice(false, "LWCACHE_TEST_UNIT_A", "unit"), None);
        assert!(skip_notice(false, "LWCACHE_TEST_UNIT_B", "unit").is_some());
    }

    #[test]
    #[should_panic(expected = "LWCACHE_REQUIRE_SERVERS=1 but LWCACHE_TEST_UNIT_C is not set")]
    fn a_missing_variable_fails_when_servers_are_required() {
        skip_notice(true, "LWCACHE_TEST_UNIT_C", "unit");
    }
}
