//! `lwcache demo` and `lwcache seed` on the embedded default, and the
//! configuration file.

use std::collections::BTreeMap;

use crate::support::command;

/// The numbers after each `name ` in a line like
/// `operations: 200 (reads 181, writes 19, errors 0)`.
fn numbers(line: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let words: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '(' | ')' | ';' | ':'))
        .filter(|w| !w.is_empty())
        .collect();
    for pair in words.windows(2) {
        if let Ok(n) = pair[1].parse::<u64>() {
            out.insert(pair[0].to_owned(), n);
        }
    }
    out
}

fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{out}"))
}

#[test]
fn demo_runs_200_turns_and_its_summary_adds_up() {
    let out = command()
        .args(["demo", "--turns", "200", "--players", "4"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let ops = numbers(line(&stdout, "operations:"));
    assert_eq!(ops["operations"], 200, "{stdout}");
    assert_eq!(ops["reads"] + ops["writes"], 200, "{stdout}");
    assert_eq!(ops["errors"], 0, "{stdout}");
    assert!(ops["writes"] > 0 && ops["reads"] > 0, "{stdout}");
    let cache = numbers(line(&stdout, "cache:"));
    assert_eq!(
        cache["hits"] + cache["misses"] + cache["stale"] + cache["fallbacks"],
        ops["reads"],
        "every read is counted once: {stdout}"
    );
    assert!(cache["hits"] > 0, "warming makes hits: {stdout}");
    let warm = numbers(line(&stdout, "warm count:"));
    assert!(warm["count"] > 0, "{stdout}");
    let invalidations = numbers(line(&stdout, "invalidations:"));
    assert!(
        invalidations["invalidations"] >= ops["writes"],
        "every write has a cache step: {stdout}"
    );
    // The latency table: one row per operation, counts adding up to the turns.
    let header = stdout
        .lines()
        .position(|l| l.starts_with("operation "))
        .expect("a table");
    let mut counted = 0;
    for row in stdout.lines().skip(header + 1) {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols.len(), 5, "{row}");
        counted += cols[1].parse::<u64>().unwrap();
        let p50: f64 = cols[3].parse().unwrap();
        let p99: f64 = cols[4].parse().unwrap();
        assert!(p50 <= p99, "{row}");
    }
    assert_eq!(counted, 200, "{stdout}");
}

#[test]
fn demo_refuses_bad_options() {
    for args in [
        &["demo", "--turns", "5", "--players", "0"][..],
        &["demo", "--duration", "forever"][..],
        &["demo", "--turns", "5", "--duration", "1s"][..],
        &["demo", "--turns", "5", "--world", "no:such"][..],
    ] {
        let out = command().args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(!out.stderr.is_empty(), "{args:?} said nothing");
    }
}

#[test]
fn seed_loads_the_demo_world() {
    let out = command().args(["seed", "--size", "40"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let loaded = numbers(line(&stdout, "loaded world demo"));
    assert_eq!(loaded["repository"], 40, "{stdout}");
    assert!(loaded["version"] > 40, "{stdout}");
    assert!(stdout.contains("keeps nothing"), "{stdout}");
}

#[test]
fn the_config_file_is_read_and_unknown_keys_are_refused() {
    let dir = std::env::temp_dir().join(format!("lwcache-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "listen = \"127.0.0.1:0\"\nreddis_url = \"redis://x\"\n",
    )
    .unwrap();
    let out = command()
        .args(["seed", "--size", "8", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("reddis_url"), "{err}");

    // A file named by LWCACHE_CONFIG applies: its out-of-bounds setting
    // is what the run fails on. (Redis down is no longer an error at
    // start: the store connects in the background.)
    let file = dir.join("breaker.toml");
    std::fs::write(&file, "breaker_failures = 0\n").unwrap();
    let out = command()
        .args(["seed", "--size", "8"])
        .env("LWCACHE_CONFIG", &file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("breaker_failures"),
        "the file's setting applied: {err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
