//! The dependency check on small manifests, and on the real workspace.

use super::*;

const POLICY: &str = r#"
[every-crate]
dev = ["lwcache-testkit"]

[lwcache-domain]
normal = ["thiserror"]
dev = ["proptest"]

[lwcache-core]
normal = ["lwcache-domain", "tokio[sync,time,rt]"]
dev = ["tokio"]
"#;

fn inherited() -> Table {
    parse_toml(
        r#"
        thiserror = "2"
        tokio = { version = "1", default-features = false }
        tokio-full = { version = "1", package = "tokio", features = ["macros"], default-features = false }
        lwcache-testkit = { path = "crates/lwcache-testkit" }
        "#,
    )
    .unwrap()
}

fn check(manifest: &str) -> Vec<String> {
    let policy = Policy::parse(POLICY).unwrap();
    let (_, violations) = check_manifest(manifest, &inherited(), &policy).unwrap();
    violations.iter().map(ToString::to_string).collect()
}

#[test]
fn a_forbidden_dependency_is_named_with_its_crate() {
    let found = check(
        r#"
        [package]
        name = "lwcache-domain"

        [dependencies]
        thiserror.workspace = true
        tokio = { workspace = true, features = ["time"] }
        "#,
    );
    assert_eq!(
        found,
        ["lwcache-domain may not depend on tokio ([dependencies])"]
    );
}

#[test]
fn a_feature_beyond_the_allowed_ones_is_named() {
    let found = check(
        r#"
        [package]
        name = "lwcache-core"

        [dependencies]
        lwcache-domain = { path = "../lwcache-domain", default-features = false }
        tokio = { workspace = true, features = ["sync", "time", "rt", "macros"] }
        "#,
    );
    assert_eq!(
        found,
        [
            "lwcache-core may not enable tokio's feature(s) macros ([dependencies]; allowed: rt, sync, time)"
        ]
    );
}

#[test]
fn default_features_count_unless_turned_off() {
    let found = check(
        r#"
        [package]
        name = "lwcache-core"

        [dependencies]
        tokio = { version = "1", features = ["sync"] }
        "#,
    );
    assert_eq!(
        found,
        [
            "lwcache-core may not enable tokio's feature(s) default ([dependencies]; allowed: rt, sync, time)"
        ]
    );
}

#[test]
fn a_renamed_dependency_is_checked_under_its_package_name_and_features() {
    let found = check(
        r#"
        [package]
        name = "lwcache-core"

        [dependencies]
        tokio-full.workspace = true
        "#,
    );
    assert_eq!(
        found,
        [
            "lwcache-core may not enable tokio's feature(s) macros ([dependencies]; allowed: rt, sync, time)"
        ]
    );
}

#[test]
fn tests_may_use_more_than_the_code() {
    let found = check(
        r#"
        [package]
        name = "lwcache-core"

        [dependencies]
        tokio = { workspace = true, features = ["sync"] }

        [dev-dependencies]
        lwcache-testkit.workspace = true
        tokio = { workspace = true, features = ["macros", "test-util"] }
        "#,
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn the_testkit_is_refused_outside_tests() {
    let found = check(
        r#"
        [package]
        name = "lwcache-domain"

        [dependencies]
        lwcache-testkit.workspace = true

        [build-dependencies]
        proptest = "1"

        [target.'cfg(unix)'.dependencies]
        thiserror = "2"
        "#,
    );
    assert_eq!(
        found,
        [
            "lwcache-domain may not depend on lwcache-testkit ([dependencies])",
            "lwcache-domain may not depend on proptest ([build-dependencies])",
        ]
    );
}

#[test]
fn a_crate_missing_from_the_allow_list_is_refused() {
    let found = check("[package]\nname = \"lwcache-new\"\n");
    assert_eq!(found, ["lwcache-new: no entry in docs/dependencies.toml"]);
}

#[test]
fn a_malformed_entry_is_an_error() {
    let err = Policy::parse("[x]\nnormal = [\"tokio[sync\"]\n").unwrap_err();
    assert!(format!("{err:#}").contains("tokio[sync"), "{err:#}");
    let err = Policy::parse("[x]\nnormal = [\"tokio\"]\ntest = []\n").unwrap_err();
    assert!(format!("{err:#}").contains("unknown key"), "{err:#}");
}

#[test]
fn the_workspace_keeps_its_rules() {
    let root = crate::workspace_root();
    let checked = check_workspace(&root).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(checked >= 12, "only {checked} crates found");
}

#[test]
fn the_workspace_check_names_a_broken_rule() {
    // A copy of the real workspace's manifests and allow-list with one
    // forbidden dependency added to the domain.
    let root = crate::workspace_root();
    let copy = std::env::temp_dir().join(format!("lwcache-deps-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(copy.join("docs")).unwrap();
    std::fs::copy(root.join(ALLOW_LIST), copy.join(ALLOW_LIST)).unwrap();
    std::fs::copy(root.join("Cargo.toml"), copy.join("Cargo.toml")).unwrap();
    let workspace = parse_toml(&read(&root.join("Cargo.toml")).unwrap()).unwrap();
    for dir in members(&root, workspace["workspace"].as_table().unwrap()).unwrap() {
        let target = copy.join(dir.strip_prefix(&root).unwrap());
        std::fs::create_dir_all(&target).unwrap();
        let mut manifest = read(&dir.join("Cargo.toml")).unwrap();
        if dir.ends_with("lwcache-domain") {
            manifest = manifest.replace(
                "[dependencies]\n",
                "[dependencies]\nlwcache-memory.workspace = true\n",
            );
        }
        std::fs::write(target.join("Cargo.toml"), manifest).unwrap();
    }
    let err = check_workspace(&copy).unwrap_err();
    let _ = std::fs::remove_dir_all(&copy);
    let message = format!("{err:#}");
    assert!(
        message.contains("lwcache-domain may not depend on lwcache-memory ([dependencies])"),
        "{message}"
    );
}
