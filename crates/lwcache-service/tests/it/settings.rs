//! The policy settings through the binary: each from a flag, a variable and
//! the file, shown by `serve --print-config` with secrets masked, and bad
//! values refused by name.

use crate::support::{command, serve_refused};

/// Runs `lwcache serve --print-config ARGS` with `env`; its stdout.
fn printed(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = command()
        .args(["serve", "--print-config"])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every policy setting: the flag, the variable, the file key.
const SETTINGS: [(&str, &str, &str); 8] = [
    ("--state-ttl-ms", "LWCACHE_STATE_TTL_MS", "state_ttl_ms"),
    ("--flags-ttl-ms", "LWCACHE_FLAGS_TTL_MS", "flags_ttl_ms"),
    ("--entity-ttl-ms", "LWCACHE_ENTITY_TTL_MS", "entity_ttl_ms"),
    (
        "--timeline-ttl-ms",
        "LWCACHE_TIMELINE_TTL_MS",
        "timeline_ttl_ms",
    ),
    (
        "--timeline-top-k",
        "LWCACHE_TIMELINE_TOP_K",
        "timeline_top_k",
    ),
    (
        "--cache-timeout-ms",
        "LWCACHE_CACHE_TIMEOUT_MS",
        "cache_timeout_ms",
    ),
    (
        "--source-timeout-ms",
        "LWCACHE_SOURCE_TIMEOUT_MS",
        "source_timeout_ms",
    ),
    (
        "--write-behind-capacity",
        "LWCACHE_WRITE_BEHIND_CAPACITY",
        "write_behind_capacity",
    ),
];

#[test]
fn each_policy_setting_comes_from_a_flag_a_variable_or_the_file() {
    let dir = std::env::temp_dir().join(crate::support::fresh_world("settings"));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (flag, var, key)) in SETTINGS.into_iter().enumerate() {
        let (from_file, from_env, from_flag) = (11 + i, 22 + i, 33 + i);
        let file = dir.join(format!("{key}.toml"));
        std::fs::write(&file, format!("{key} = {from_file}\n")).unwrap();
        let file = file.to_str().unwrap();
        let line = |v: usize| format!("\n{key} = {v}\n");

        let text = printed(&["--config", file], &[]);
        assert!(text.contains(&line(from_file)), "the file: {text}");
        let text = printed(&["--config", file], &[(var, &from_env.to_string())]);
        assert!(text.contains(&line(from_env)), "the variable: {text}");
        let text = printed(
            &["--config", file, flag, &from_flag.to_string()],
            &[(var, &from_env.to_string())],
        );
        assert!(text.contains(&line(from_flag)), "the flag: {text}");

        // A bad value from each source is refused naming the setting.
        let err = serve_refused(&[], &[(var, "soon")]);
        assert!(err.contains(var), "{err}");
        let out = command()
            .args(["serve", "--print-config", flag, "soon"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{err}");
        let bad = dir.join(format!("{key}-bad.toml"));
        std::fs::write(&bad, format!("{key} = 99999999999999\n")).unwrap();
        let err = serve_refused(&["--config", bad.to_str().unwrap()], &[]);
        assert!(err.contains(key) && err.contains(flag), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_printed_configuration_masks_secrets_and_is_a_valid_file() {
    let text = printed(
        &[
            "--redis-url",
            "redis://lwcache:redis-secret@127.0.0.1:6379",
            "--neo4j-uri",
            "bolt+s://127.0.0.1:7687",
            "--neo4j-password",
            "neo4j-secret",
            "--auth-token",
            "token-secret",
        ],
        &[],
    );
    for secret in ["redis-secret", "neo4j-secret", "token-secret"] {
        assert!(!text.contains(secret), "{secret}: {text}");
    }
    assert!(
        text.contains("redis_url = \"redis://lwcache:***@127.0.0.1:6379\""),
        "{text}"
    );
    for (_, _, key) in SETTINGS {
        assert!(text.contains(&format!("\n{key} = ")), "{key}: {text}");
    }
    // What was printed is a configuration file the binary reads.
    let file = std::env::temp_dir().join(format!("{}.toml", crate::support::fresh_world("print")));
    std::fs::write(&file, &text).unwrap();
    let again = printed(&["--config", file.to_str().unwrap()], &[]);
    let _ = std::fs::remove_file(&file);
    assert_eq!(again, text, "printing the printed file gives it back");
}
