//! The privacy settings: what else never reaches the cache, on top of the
//! domain's defaults.
//!
//! Every setting here can only keep more out of the cache: sensitive names,
//! prefixes and private event kinds are added to the defaults of
//! [`SensitivityPolicy::default`] and are the union of every source (a flag
//! cannot take away what the file added), and no setting removes a default.
//! An allow-list is per key kind; the highest source that gives one for a
//! kind decides that kind's list.
//!
//! | flag | variable | file key (`[privacy]`) |
//! |---|---|---|
//! | `--privacy-sensitive-names a,b` | `LWCACHE_PRIVACY_SENSITIVE_NAMES` | `sensitive_names` |
//! | `--privacy-sensitive-prefixes a_,b_` | `LWCACHE_PRIVACY_SENSITIVE_PREFIXES` | `sensitive_prefixes` |
//! | `--privacy-private-event-kinds a,b` | `LWCACHE_PRIVACY_PRIVATE_EVENT_KINDS` | `private_event_kinds` |
//! | `--privacy-allow KIND=f1,f2` (repeated) | `LWCACHE_PRIVACY_ALLOW_<KIND>` | `[privacy.allow]` `KIND = [..]` |

use std::collections::BTreeMap;

use lwcache_domain::{EventKind, KeyKind, SensitivityPolicy};
use serde::Deserialize;

use super::ConfigError;

/// The environment variables of the privacy settings.
pub mod env {
    /// Sensitive field names added to the defaults, comma-separated.
    pub const SENSITIVE_NAMES: &str = "LWCACHE_PRIVACY_SENSITIVE_NAMES";
    /// Sensitive field-name prefixes added to the defaults, comma-separated.
    pub const SENSITIVE_PREFIXES: &str = "LWCACHE_PRIVACY_SENSITIVE_PREFIXES";
    /// Event kinds left out of every cached timeline, comma-separated.
    pub const PRIVATE_EVENT_KINDS: &str = "LWCACHE_PRIVACY_PRIVATE_EVENT_KINDS";
    /// The prefix of the allow-list variables: `LWCACHE_PRIVACY_ALLOW_` and a
    /// key kind in upper case (`CHARACTER`, `LOCATION`, `OBJECT`, `STATE`,
    /// `FLAGS`, `TIMELINE`).
    pub const ALLOW_PREFIX: &str = "LWCACHE_PRIVACY_ALLOW_";
}

/// The key kinds an allow-list may be given for: every kind that holds
/// fields (not the version key).
pub const ALLOW_KINDS: [KeyKind; 6] = [
    KeyKind::State,
    KeyKind::Flags,
    KeyKind::Timeline,
    KeyKind::Character,
    KeyKind::Location,
    KeyKind::Object,
];

/// One source's privacy settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyLayer {
    /// Sensitive field names, added to the defaults.
    pub sensitive_names: Vec<String>,
    /// Sensitive field-name prefixes, added to the defaults.
    pub sensitive_prefixes: Vec<String>,
    /// Event kinds whose events are left out of every cached timeline.
    pub private_event_kinds: Vec<String>,
    /// Allow-lists by key kind (`character`, `location`, `object`,
    /// `state`, `flags`, `timeline`): only these top-level fields are
    /// cached.
    pub allow: BTreeMap<String, Vec<String>>,
}

/// Splits a comma-separated list; blank items are left out.
fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl PrivacyLayer {
    /// Reads the `LWCACHE_PRIVACY_*` variables through `get` (empty values
    /// already count as unset there).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> PrivacyLayer {
        let read = |var: &str| get(var).map(|v| list(&v)).unwrap_or_default();
        let mut allow = BTreeMap::new();
        for kind in ALLOW_KINDS {
            let var = format!("{}{}", env::ALLOW_PREFIX, kind.as_str().to_uppercase());
            if let Some(v) = get(&var) {
                allow.insert(kind.as_str().to_owned(), list(&v));
            }
        }
        PrivacyLayer {
            sensitive_names: read(env::SENSITIVE_NAMES),
            sensitive_prefixes: read(env::SENSITIVE_PREFIXES),
            private_event_kinds: read(env::PRIVATE_EVENT_KINDS),
            allow,
        }
    }
}

/// The privacy flags, shared by every command that builds a cache manager.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PrivacyArgs {
    /// Field names never cached, at any depth, added to the built-in ones
    /// (comma-separated or repeated).
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    pub privacy_sensitive_names: Vec<String>,
    /// Field-name prefixes never cached, added to the built-in ones.
    #[arg(long, value_name = "PREFIX,...", value_delimiter = ',')]
    pub privacy_sensitive_prefixes: Vec<String>,
    /// Event kinds left out of every cached timeline (read from the source
    /// by readers that need every event).
    #[arg(long, value_name = "KIND,...", value_delimiter = ',')]
    pub privacy_private_event_kinds: Vec<String>,
    /// Cache only these top-level fields of a key kind (character,
    /// location, object, state, flags, timeline), e.g.
    /// `character=name,hp`; repeated for several kinds.
    #[arg(long, value_name = "KIND=FIELD,...")]
    pub privacy_allow: Vec<String>,
}

impl PrivacyArgs {
    /// The flags as a layer; an allow-list without `=` is an error naming
    /// the flag.
    pub fn layer(&self) -> Result<PrivacyLayer, ConfigError> {
        let mut allow = BTreeMap::new();
        for item in &self.privacy_allow {
            let Some((kind, fields)) = item.split_once('=') else {
                return Err(ConfigError::Invalid(format!(
                    "--privacy-allow {item:?}: give KIND=FIELD,..., e.g. character=name,hp"
                )));
            };
            allow.insert(kind.trim().to_ascii_lowercase(), list(fields));
        }
        let clean = |v: &[String]| -> Vec<String> { v.iter().flat_map(|s| list(s)).collect() };
        Ok(PrivacyLayer {
            sensitive_names: clean(&self.privacy_sensitive_names),
            sensitive_prefixes: clean(&self.privacy_sensitive_prefixes),
            private_event_kinds: clean(&self.privacy_private_event_kinds),
            allow,
        })
    }
}

/// How each source spells a setting, for error messages.
fn spelled(flag: &str, var: &str, key: &str) -> String {
    format!("{flag} ({var}, {key} in [privacy] of the file)")
}

/// Merges the three sources into the policy: the defaults, plus every
/// source's names, prefixes and private event kinds; each kind's
/// allow-list from the highest source that gives one. An allow-list may not
/// name a sensitive field, nor a kind without fields.
pub fn resolve(
    flags: &PrivacyLayer,
    env: &PrivacyLayer,
    file: &PrivacyLayer,
) -> Result<SensitivityPolicy, ConfigError> {
    let layers = [flags, env, file];
    let mut policy = SensitivityPolicy::default();
    for layer in layers {
        for name in &layer.sensitive_names {
            if name.trim().is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "{} holds an empty name",
                    spelled(
                        "--privacy-sensitive-names",
                        env::SENSITIVE_NAMES,
                        "sensitive_names"
                    )
                )));
            }
        }
        for prefix in &layer.sensitive_prefixes {
            if prefix.trim().is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "{} holds an empty prefix: it would match every field",
                    spelled(
                        "--privacy-sensitive-prefixes",
                        env::SENSITIVE_PREFIXES,
                        "sensitive_prefixes"
                    )
                )));
            }
        }
        for kind in &layer.private_event_kinds {
            EventKind::new(kind.trim()).map_err(|e| {
                ConfigError::Invalid(format!(
                    "{}: {kind:?} is not an event kind ({e})",
                    spelled(
                        "--privacy-private-event-kinds",
                        env::PRIVATE_EVENT_KINDS,
                        "private_event_kinds"
                    )
                ))
            })?;
        }
        policy = policy
            .with_names(layer.sensitive_names.iter().map(|s| s.trim()))
            .with_prefixes(layer.sensitive_prefixes.iter().map(|s| s.trim()))
            .with_private_events(layer.private_event_kinds.iter().map(|s| s.trim()));
    }
    // Lowest source first, so that a higher one's list for a kind replaces it.
    let mut allow: BTreeMap<KeyKind, &Vec<String>> = BTreeMap::new();
    for layer in layers.iter().rev() {
        for (name, fields) in &layer.allow {
            let Some(kind) = ALLOW_KINDS
                .into_iter()
                .find(|k| k.as_str().eq_ignore_ascii_case(name.trim()))
            else {
                return Err(ConfigError::Invalid(format!(
                    "{}: {name:?} is not a key kind with fields: use character, location, object, state, flags or timeline",
                    spelled("--privacy-allow", "LWCACHE_PRIVACY_ALLOW_<KIND>", "allow")
                )));
            };
            allow.insert(kind, fields);
        }
    }
    for (kind, fields) in allow {
        if let Some(bad) = fields
            .iter()
            .find(|f| f.trim().is_empty() || policy.is_sensitive(f.trim()))
        {
            return Err(ConfigError::Invalid(format!(
                "{}: the allow-list of {kind} names {bad:?}, which is {}",
                spelled("--privacy-allow", "LWCACHE_PRIVACY_ALLOW_<KIND>", "allow"),
                if bad.trim().is_empty() {
                    "empty"
                } else {
                    "sensitive and never cached"
                }
            )));
        }
        policy = policy.with_allow_list(kind, fields.iter().map(|s| s.trim()));
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use std::collections::HashMap;

    use super::*;

    fn layer(names: &[&str]) -> PrivacyLayer {
        PrivacyLayer {
            sensitive_names: names.iter().map(|s| (*s).to_owned()).collect(),
            ..PrivacyLayer::default()
        }
    }

    #[test]
    fn names_from_every_source_add_to_the_defaults() {
        let p = resolve(&layer(&["a_flag"]), &layer(&["b_env"]), &layer(&["c_file"])).unwrap();
        for name in ["a_flag", "B_ENV", "c_file", "diagnosis", "pii_anything"] {
            assert!(p.is_sensitive(name), "{name}");
        }
        assert!(!p.is_sensitive("hp"));
        let none = PrivacyLayer::default();
        assert_eq!(
            resolve(&none, &none, &none).unwrap(),
            SensitivityPolicy::default()
        );
    }

    #[test]
    fn the_file_table_and_the_environment_are_read() {
        let file: PrivacyLayer = toml::from_str(
            "sensitive_names = [\"trauma_history\"]\nsensitive_prefixes = [\"therapy_\"]\n\
             private_event_kinds = [\"journal_entry\"]\n[allow]\ncharacter = [\"name\", \"hp\"]\n",
        )
        .unwrap();
        let vars: HashMap<String, String> = [
            (env::SENSITIVE_NAMES, "x1, x2"),
            ("LWCACHE_PRIVACY_ALLOW_FLAGS", "door_open"),
            ("LWCACHE_PRIVACY_ALLOW_CHARACTER", "name"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let env = PrivacyLayer::from_env(|v| vars.get(v).cloned());
        let p = resolve(&PrivacyLayer::default(), &env, &file).unwrap();
        assert!(p.is_sensitive("trauma_history") && p.is_sensitive("therapy_x"));
        assert!(p.is_sensitive("x1") && p.is_sensitive("x2"));
        assert!(p.is_private_event("journal_entry"));
        let character: Vec<&str> = p
            .allow_list(KeyKind::Character)
            .unwrap()
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(
            character,
            ["name"],
            "the environment's list beats the file's"
        );
        assert!(p.allow_list(KeyKind::Flags).is_some());
        assert!(p.allow_list(KeyKind::Location).is_none());
    }

    #[test]
    fn flags_parse_kind_equals_fields() {
        let args = PrivacyArgs {
            privacy_allow: vec!["Location=name, exits".into()],
            privacy_sensitive_names: vec!["a,b".into()],
            ..PrivacyArgs::default()
        };
        let l = args.layer().unwrap();
        assert_eq!(l.allow["location"], ["name", "exits"]);
        assert_eq!(l.sensitive_names, ["a", "b"]);
        let bad = PrivacyArgs {
            privacy_allow: vec!["character".into()],
            ..PrivacyArgs::default()
        };
        assert!(
            bad.layer()
                .unwrap_err()
                .to_string()
                .contains("--privacy-allow")
        );
    }

    #[test]
    fn settings_that_would_let_data_through_are_refused() {
        let none = PrivacyLayer::default();
        let allow = |kind: &str, field: &str| PrivacyLayer {
            allow: [(kind.to_owned(), vec![field.to_owned()])].into(),
            ..PrivacyLayer::default()
        };
        for (layer, says) in [
            (allow("ver", "x"), "not a key kind"),
            (allow("character", "diagnosis"), "sensitive"),
            (allow("character", " "), "empty"),
            (
                PrivacyLayer {
                    sensitive_prefixes: vec![" ".into()],
                    ..PrivacyLayer::default()
                },
                "every field",
            ),
            (
                PrivacyLayer {
                    private_event_kinds: vec!["not a kind".into()],
                    ..PrivacyLayer::default()
                },
                "not an event kind",
            ),
        ] {
            let e = resolve(&none, &none, &layer).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
            assert!(e.contains("[privacy]"), "{e}");
        }
    }
}
