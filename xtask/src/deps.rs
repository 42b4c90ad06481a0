//! `cargo xtask deps`: the dependency rules of `docs/ARCHITECTURE.md`,
//! checked. `docs/dependencies.toml` says, per workspace crate, which crates
//! it may depend on (normally, and in its tests) and, where the
//! architecture restricts them, with which features; every manifest's
//! `[dependencies]`, `[build-dependencies]` and `[dev-dependencies]` (also
//! under `[target.*]`) must stay within it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use toml::{Table, Value};

/// Where the allow-list lives, relative to the workspace root.
pub(crate) const ALLOW_LIST: &str = "docs/dependencies.toml";

/// The key of the allow-list's rules for every crate.
const EVERY_CRATE: &str = "every-crate";

/// Runs the check on the workspace at `root`; fails listing every
/// dependency the allow-list does not permit.
pub(crate) fn run(root: &Path) -> Result<()> {
    eprintln!("$ deps: every manifest against {ALLOW_LIST}");
    let checked = check_workspace(root)?;
    eprintln!("deps: {checked} crates within {ALLOW_LIST}");
    Ok(())
}

/// Checks every member of the workspace at `root`; returns how many crates
/// were checked, or an error listing every violation.
pub(crate) fn check_workspace(root: &Path) -> Result<usize> {
    let policy = Policy::parse(&read(&root.join(ALLOW_LIST))?)
        .with_context(|| format!("reading {ALLOW_LIST}"))?;
    let root_manifest = parse_toml(&read(&root.join("Cargo.toml"))?)
        .context("parsing the workspace's Cargo.toml")?;
    let workspace = root_manifest
        .get("workspace")
        .and_then(Value::as_table)
        .context("the root Cargo.toml has no [workspace]")?;
    let inherited = workspace
        .get("dependencies")
        .and_then(Value::as_table)
        .cloned()
        .unwrap_or_default();

    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    for dir in members(root, workspace)? {
        let path = dir.join("Cargo.toml");
        let manifest = read(&path)?;
        let (name, violations) = check_manifest(&manifest, &inherited, &policy)
            .with_context(|| format!("checking {}", path.display()))?;
        problems.extend(violations.iter().map(ToString::to_string));
        names.insert(name);
    }
    for listed in policy.crates.keys() {
        if !names.contains(listed) {
            problems.push(format!(
                "{listed}: listed in {ALLOW_LIST} but not a workspace crate"
            ));
        }
    }
    if !problems.is_empty() {
        bail!(
            "{} dependency rule(s) broken (see {ALLOW_LIST} and docs/ARCHITECTURE.md):\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    Ok(names.len())
}

/// Checks one manifest; `inherited` is the workspace's
/// `[workspace.dependencies]`. Returns the package's name and what it may
/// not depend on.
pub(crate) fn check_manifest(
    manifest: &str,
    inherited: &Table,
    policy: &Policy,
) -> Result<(String, Vec<Violation>)> {
    let manifest = parse_toml(manifest)?;
    let name = manifest
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .context("the manifest has no package.name")?
        .to_owned();
    let Some(rules) = policy.crates.get(&name) else {
        return Ok((
            name.clone(),
            vec![Violation {
                krate: name,
                section: Section::Normal,
                dependency: String::new(),
                problem: Problem::Unlisted,
            }],
        ));
    };
    let mut violations = Vec::new();
    for dep in dependencies(&manifest, inherited)? {
        let allowed = policy.lookup(rules, dep.section, &dep.package);
        let problem = match allowed {
            None => Some(Problem::NotAllowed),
            Some(Features::Any) => None,
            Some(Features::Only(only)) => {
                let extra: Vec<String> = dep.features.difference(only).cloned().collect();
                (!extra.is_empty()).then(|| Problem::Features {
                    extra,
                    allowed: only.iter().cloned().collect(),
                })
            }
        };
        if let Some(problem) = problem {
            violations.push(Violation {
                krate: name.clone(),
                section: dep.section,
                dependency: dep.package,
                problem,
            });
        }
    }
    Ok((name, violations))
}

/// The allow-list.
#[derive(Debug, Default)]
pub(crate) struct Policy {
    every: Rules,
    crates: BTreeMap<String, Rules>,
}

/// What one crate may depend on.
#[derive(Debug, Default)]
struct Rules {
    normal: BTreeMap<String, Features>,
    dev: BTreeMap<String, Features>,
}

/// The features a dependency may enable.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Features {
    /// Any, the default ones included.
    Any,
    /// Only these (`default` stands for the default features).
    Only(BTreeSet<String>),
}

impl Policy {
    /// Parses the allow-list: a table per crate (and `every-crate`) with
    /// `normal` and `dev` arrays of `"name"` or `"name[feature,...]"`.
    pub(crate) fn parse(text: &str) -> Result<Self> {
        let table = parse_toml(text)?;
        let mut policy = Policy::default();
        for (krate, value) in &table {
            let rules = value
                .as_table()
                .with_context(|| format!("[{krate}] must be a table"))?;
            let mut parsed = Rules::default();
            for (key, list) in rules {
                let target = match key.as_str() {
                    "normal" => &mut parsed.normal,
                    "dev" => &mut parsed.dev,
                    other => bail!("[{krate}]: unknown key {other:?} (use normal or dev)"),
                };
                let entries = list
                    .as_array()
                    .with_context(|| format!("[{krate}].{key} must be an array"))?;
                for entry in entries {
                    let entry = entry
                        .as_str()
                        .with_context(|| format!("[{krate}].{key}: entries are strings"))?;
                    let (dep, features) = parse_entry(entry)
                        .with_context(|| format!("[{krate}].{key}: {entry:?}"))?;
                    target.insert(dep, features);
                }
            }
            if krate == EVERY_CRATE {
                policy.every = parsed;
            } else {
                policy.crates.insert(krate.clone(), parsed);
            }
        }
        Ok(policy)
    }

    /// What `rules` allow for `dep` in `section`: a crate's own list first,
    /// then the one for every crate; tests may use what the code may.
    fn lookup<'a>(&'a self, rules: &'a Rules, section: Section, dep: &str) -> Option<&'a Features> {
        let lists: &[&BTreeMap<String, Features>] = match section {
            Section::Normal | Section::Build => &[&rules.normal, &self.every.normal],
            Section::Dev => &[
                &rules.dev,
                &rules.normal,
                &self.every.dev,
                &self.every.normal,
            ],
        };
        lists.iter().find_map(|list| list.get(dep))
    }
}

/// `"tokio[sync,time]"` → `("tokio", Only{sync, time})`; `"tokio"` → any.
fn parse_entry(entry: &str) -> Result<(String, Features)> {
    let entry = entry.trim();
    let Some((name, rest)) = entry.split_once('[') else {
        return Ok((valid_name(entry)?, Features::Any));
    };
    let list = rest
        .strip_suffix(']')
        .context("a feature list ends with `]`")?;
    let features = list
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect();
    Ok((valid_name(name.trim())?, Features::Only(features)))
}

fn valid_name(name: &str) -> Result<String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("{name:?} is not a crate name");
    }
    Ok(name.to_owned())
}

/// Which table of a manifest a dependency comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Normal,
    Build,
    Dev,
}

impl Section {
    const ALL: [(Section, &'static str); 3] = [
        (Section::Normal, "dependencies"),
        (Section::Build, "build-dependencies"),
        (Section::Dev, "dev-dependencies"),
    ];

    fn table(self) -> &'static str {
        match self {
            Section::Normal => "dependencies",
            Section::Build => "build-dependencies",
            Section::Dev => "dev-dependencies",
        }
    }
}

/// One dependency as cargo resolves its declaration: the package's real
/// name and every feature it enables (`default` included unless turned off).
#[derive(Debug)]
struct Dependency {
    section: Section,
    package: String,
    features: BTreeSet<String>,
}

/// Every dependency a manifest declares, `[target.*]` tables included.
fn dependencies(manifest: &Table, inherited: &Table) -> Result<Vec<Dependency>> {
    let mut scopes = vec![manifest];
    if let Some(targets) = manifest.get("target").and_then(Value::as_table) {
        scopes.extend(targets.values().filter_map(Value::as_table));
    }
    let mut deps = Vec::new();
    for scope in scopes {
        for (section, key) in Section::ALL {
            let Some(table) = scope.get(key).and_then(Value::as_table) else {
                continue;
            };
            for (name, spec) in table {
                deps.push(
                    resolve(section, name, spec, inherited)
                        .with_context(|| format!("[{key}] {name}"))?,
                );
            }
        }
    }
    Ok(deps)
}

/// One declaration, with what it inherits from `[workspace.dependencies]`.
fn resolve(section: Section, name: &str, spec: &Value, inherited: &Table) -> Result<Dependency> {
    let mut package = name.to_owned();
    let mut features = BTreeSet::new();
    let mut default = true;
    match spec {
        Value::String(_) => {}
        Value::Table(spec) => {
            let mut own_default = spec
                .get("default-features")
                .or_else(|| spec.get("default_features"))
                .and_then(Value::as_bool);
            if spec.get("workspace").and_then(Value::as_bool) == Some(true) {
                let base = inherited
                    .get(name)
                    .with_context(|| format!("{name} is not in [workspace.dependencies]"))?;
                if let Value::Table(base) = base {
                    package = base
                        .get("package")
                        .and_then(Value::as_str)
                        .unwrap_or(name)
                        .to_owned();
                    features.extend(string_list(base.get("features")));
                    // A member cannot turn off defaults the workspace keeps.
                    let base_default = base
                        .get("default-features")
                        .or_else(|| base.get("default_features"))
                        .and_then(Value::as_bool)
                        .unwrap_or(true);
                    own_default = Some(base_default || own_default == Some(true));
                } else {
                    // A bare version keeps the default features on.
                    own_default = Some(true);
                }
            }
            if let Some(renamed) = spec.get("package").and_then(Value::as_str) {
                renamed.clone_into(&mut package);
            }
            features.extend(string_list(spec.get("features")));
            default = own_default.unwrap_or(true);
        }
        other => bail!("unexpected declaration {other:?}"),
    }
    if default {
        features.insert("default".to_owned());
    }
    Ok(Dependency {
        section,
        package,
        features,
    })
}

fn string_list(value: Option<&Value>) -> impl Iterator<Item = String> + '_ {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
}

/// A dependency the allow-list does not permit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// The crate whose manifest declares it.
    pub(crate) krate: String,
    /// Where.
    pub(crate) section: Section,
    /// The dependency (its package name).
    pub(crate) dependency: String,
    /// What is wrong with it.
    pub(crate) problem: Problem,
}

/// Why a dependency breaks the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    /// The crate has no entry in the allow-list.
    Unlisted,
    /// The allow-list does not let the crate depend on it here.
    NotAllowed,
    /// Allowed, but only with fewer features.
    Features {
        extra: Vec<String>,
        allowed: Vec<String>,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (krate, dep, table) = (&self.krate, &self.dependency, self.section.table());
        match &self.problem {
            Problem::Unlisted => write!(f, "{krate}: no entry in {ALLOW_LIST}"),
            Problem::NotAllowed => write!(f, "{krate} may not depend on {dep} ([{table}])"),
            Problem::Features { extra, allowed } => write!(
                f,
                "{krate} may not enable {dep}'s feature(s) {} ([{table}]; allowed: {})",
                extra.join(", "),
                allowed.join(", ")
            ),
        }
    }
}

/// The member directories: `members` entries, a trailing `/*` expanded to
/// every subdirectory holding a Cargo.toml.
fn members(root: &Path, workspace: &Table) -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for member in string_list(workspace.get("members")) {
        if let Some(parent) = member.strip_suffix("/*") {
            let parent = root.join(parent);
            let entries = std::fs::read_dir(&parent)
                .with_context(|| format!("listing {}", parent.display()))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("Cargo.toml").is_file())
                .collect();
            found.sort();
            dirs.extend(found);
        } else if member.contains('*') {
            bail!("workspace member pattern {member:?}: only a trailing /* is understood");
        } else {
            dirs.push(root.join(member));
        }
    }
    Ok(dirs)
}

fn parse_toml(text: &str) -> Result<Table> {
    text.parse::<Table>().map_err(anyhow::Error::from)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
#[path = "deps_tests.rs"]
mod tests;
