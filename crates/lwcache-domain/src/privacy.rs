//! Privacy: fields that must never reach the cache.
//!
//! A game world holds a player's personal and clinical data beside the state
//! that every turn reads. The cache keeps only the latter: before a value is
//! encoded for the cache store, [`SensitivityPolicy::redact`] removes what the
//! policy keeps out of the cache, and says whether anything was removed. A
//! read that needs every field (`Fields::All` in the core) is then served by
//! the source of truth.
//!
//! Three rules, each applied to every value of its key kind:
//!
//! - **Sensitive names** (and prefixes): a field of such a name is removed at
//!   any depth: a document's fields, maps nested in them, maps in lists, the
//!   data of timeline events, flags. The defaults
//!   ([`DEFAULT_SENSITIVE_NAMES`], [`DEFAULT_SENSITIVE_PREFIXES`]) are always
//!   there unless a library caller builds a policy from nothing
//!   ([`SensitivityPolicy::new`], [`SensitivityPolicy::none`]); the builder
//!   methods only add.
//! - **Allow-lists**, per [`KeyKind`]: for a kind with one, only the named
//!   top-level fields are cached (a document's fields, flags by name, a
//!   timeline event's data fields); the sensitive names still apply inside
//!   them and win over the allow-list.
//! - **Private event kinds**: events of these kinds are left out of every
//!   cached timeline. The timeline is cached without them and marked
//!   redacted, so that a reader that needs every event reads the source;
//!   readers of the cacheable view never see them, whether served from the
//!   cache or the source.

use std::collections::{BTreeMap, BTreeSet};

use crate::document::{CachedValue, Document, Flags, TimelineEvent, Value};
use crate::key::KeyKind;

/// What the cache may hold. Names, prefixes and event kinds match without
/// regard to ASCII letter case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensitivityPolicy {
    names: BTreeSet<String>,
    prefixes: BTreeSet<String>,
    allow: BTreeMap<KeyKind, BTreeSet<String>>,
    private_events: BTreeSet<String>,
}

/// Field names that are sensitive by default: personal data and clinical data.
pub const DEFAULT_SENSITIVE_NAMES: &[&str] = &[
    "address",
    "assessment",
    "birth_date",
    "clinical_notes",
    "crisis_plan",
    "date_of_birth",
    "diagnosis",
    "dob",
    "email",
    "emergency_contact",
    "full_name",
    "ip_address",
    "journal",
    "legal_name",
    "medication",
    "medications",
    "mood_journal",
    "password",
    "phone",
    "phone_number",
    "real_name",
    "risk_assessment",
    "session_token",
    "therapist_notes",
    "therapy_notes",
    "token",
];

/// Field-name prefixes that are sensitive by default.
pub const DEFAULT_SENSITIVE_PREFIXES: &[&str] = &["pii_", "clinical_", "private_", "secret_"];

impl Default for SensitivityPolicy {
    fn default() -> Self {
        Self::new(
            DEFAULT_SENSITIVE_NAMES.iter().copied(),
            DEFAULT_SENSITIVE_PREFIXES.iter().copied(),
        )
    }
}

impl SensitivityPolicy {
    /// A policy with exactly the given names and prefixes: no defaults, no
    /// allow-list, no private event kind.
    pub fn new<'a>(
        names: impl IntoIterator<Item = &'a str>,
        prefixes: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        Self {
            names: names.into_iter().map(str::to_ascii_lowercase).collect(),
            prefixes: prefixes.into_iter().map(str::to_ascii_lowercase).collect(),
            allow: BTreeMap::new(),
            private_events: BTreeSet::new(),
        }
    }

    /// A policy that marks nothing sensitive.
    pub fn none() -> Self {
        Self::new([], [])
    }

    /// Adds sensitive names, builder style.
    pub fn with_names<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.names
            .extend(names.into_iter().map(str::to_ascii_lowercase));
        self
    }

    /// Adds sensitive prefixes, builder style.
    pub fn with_prefixes<'a>(mut self, prefixes: impl IntoIterator<Item = &'a str>) -> Self {
        self.prefixes
            .extend(prefixes.into_iter().map(str::to_ascii_lowercase));
        self
    }

    /// Caches only the named top-level fields of values of `kind` (flags by
    /// name for [`KeyKind::Flags`], event data fields for
    /// [`KeyKind::Timeline`]). A second call for one kind replaces that
    /// kind's list. The version key holds no fields: a list for it changes
    /// nothing.
    pub fn with_allow_list<'a>(
        mut self,
        kind: KeyKind,
        fields: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        self.allow.insert(
            kind,
            fields.into_iter().map(str::to_ascii_lowercase).collect(),
        );
        self
    }

    /// Leaves events of these kinds out of every cached timeline, builder
    /// style.
    pub fn with_private_events<'a>(mut self, kinds: impl IntoIterator<Item = &'a str>) -> Self {
        self.private_events
            .extend(kinds.into_iter().map(str::to_ascii_lowercase));
        self
    }

    /// Whether a field of this name is sensitive.
    pub fn is_sensitive(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        self.names.contains(&lower) || self.prefixes.iter().any(|p| lower.starts_with(p.as_str()))
    }

    /// The allow-list of `kind`, if it has one, in lower case.
    pub fn allow_list(&self, kind: KeyKind) -> Option<&BTreeSet<String>> {
        self.allow.get(&kind)
    }

    /// Whether events of this kind are kept out of the cache.
    pub fn is_private_event(&self, kind: &str) -> bool {
        self.private_events.contains(&kind.to_ascii_lowercase())
    }

    /// Whether a top-level field of a value of `kind` may be cached: not
    /// sensitive, and on the kind's allow-list if it has one.
    fn keeps_top(&self, kind: KeyKind, name: &str) -> bool {
        !self.is_sensitive(name)
            && self
                .allow
                .get(&kind)
                .is_none_or(|fields| fields.contains(&name.to_ascii_lowercase()))
    }

    /// The value of a key of `kind` as it may be cached, and whether
    /// anything was removed.
    pub fn redact(&self, kind: KeyKind, value: &CachedValue) -> (CachedValue, Redaction) {
        let mut removed = false;
        let out = match value {
            CachedValue::Snapshot(d) => {
                CachedValue::Snapshot(self.redact_top(kind, d, &mut removed))
            }
            CachedValue::Entity(d) => CachedValue::Entity(self.redact_top(kind, d, &mut removed)),
            CachedValue::Flags(flags) => {
                let mut kept = Flags::new();
                for (name, v) in flags {
                    if self.keeps_top(kind, name.as_str()) {
                        kept.insert(name.clone(), self.redact_value(v, &mut removed));
                    } else {
                        removed = true;
                    }
                }
                CachedValue::Flags(kept)
            }
            CachedValue::Timeline(events) => {
                CachedValue::Timeline(self.redact_events(kind, events, &mut removed))
            }
        };
        let redaction = if removed {
            Redaction::Redacted
        } else {
            Redaction::Complete
        };
        (out, redaction)
    }

    fn redact_events(
        &self,
        kind: KeyKind,
        events: &[TimelineEvent],
        removed: &mut bool,
    ) -> Vec<TimelineEvent> {
        let mut kept = Vec::with_capacity(events.len());
        for e in events {
            if self.is_private_event(e.kind.as_str()) {
                *removed = true;
                continue;
            }
            let mut e = e.clone();
            e.data = self.redact_top(kind, &e.data, removed);
            kept.push(e);
        }
        kept
    }

    fn redact_top(&self, kind: KeyKind, doc: &Document, removed: &mut bool) -> Document {
        let mut kept = BTreeMap::new();
        for (k, v) in &doc.0 {
            if self.keeps_top(kind, k) {
                kept.insert(k.clone(), self.redact_value(v, removed));
            } else {
                *removed = true;
            }
        }
        Document(kept)
    }

    fn redact_map(
        &self,
        map: &BTreeMap<String, Value>,
        removed: &mut bool,
    ) -> BTreeMap<String, Value> {
        let mut kept = BTreeMap::new();
        for (k, v) in map {
            if self.is_sensitive(k) {
                *removed = true;
            } else {
                kept.insert(k.clone(), self.redact_value(v, removed));
            }
        }
        kept
    }

    fn redact_value(&self, value: &Value, removed: &mut bool) -> Value {
        match value {
            Value::Map(m) => Value::Map(self.redact_map(m, removed)),
            Value::List(items) => Value::List(
                items
                    .iter()
                    .map(|v| self.redact_value(v, removed))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// Whether a cached value is the whole value or lacks sensitive fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redaction {
    /// Nothing was removed: the cached value is the whole value.
    Complete,
    /// Sensitive fields were removed: a read that needs every field must go
    /// to the source of truth.
    Redacted,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::EventKind;
    use crate::document::TimelineEvent;
    use crate::id::{EntityId, FlagName};
    use proptest::prelude::*;

    /// A document strategy whose sensitive fields all hold text that
    /// contains `SECRET`, and whose other fields never do.
    fn doc_with_secrets() -> impl Strategy<Value = Document> {
        let name = prop_oneof![
            "[a-z]{1,8}".prop_map(|s| (s, false)),
            prop::sample::select(DEFAULT_SENSITIVE_NAMES).prop_map(|s| (s.to_uppercase(), true)),
            "[a-z]{1,6}".prop_map(|s| (format!("pii_{s}"), true)),
        ];
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::Int),
            "[a-z ]{0,12}".prop_map(Value::Text),
            any::<bool>().prop_map(Value::Bool),
        ];
        let value = leaf.prop_recursive(3, 24, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
                prop::collection::btree_map("[a-z]{1,6}", inner, 0..4).prop_map(Value::Map),
            ]
        });
        prop::collection::vec((name, value), 0..8).prop_map(|fields| {
            let mut doc = Document::new();
            for (i, ((n, sensitive), v)) in fields.into_iter().enumerate() {
                let v = if sensitive {
                    Value::Text(format!("SECRET-{i}"))
                } else {
                    v
                };
                doc.0.insert(n, v);
            }
            doc
        })
    }

    fn contains_secret(v: &Value) -> bool {
        match v {
            Value::Text(s) => s.contains("SECRET"),
            Value::List(items) => items.iter().any(contains_secret),
            Value::Map(m) => m.values().any(contains_secret),
            _ => false,
        }
    }

    proptest! {
        #[test]
        fn redaction_removes_every_sensitive_value(doc in doc_with_secrets()) {
            let policy = SensitivityPolicy::default();
            let had = doc.0.values().any(contains_secret);
            let (out, redaction) = policy.redact(KeyKind::Character, &CachedValue::Entity(doc.clone()));
            let CachedValue::Entity(out) = out else { unreachable!() };
            prop_assert!(!out.0.values().any(contains_secret));
            prop_assert_eq!(redaction == Redaction::Redacted, had);
            // Nothing else is removed.
            for (k, v) in &doc.0 {
                if !policy.is_sensitive(k) {
                    prop_assert!(out.0.contains_key(k));
                    if !contains_secret(v) { prop_assert_eq!(out.0.get(k), Some(v)); }
                }
            }
        }

        #[test]
        fn redaction_reaches_events_and_nested_maps(doc in doc_with_secrets()) {
            let policy = SensitivityPolicy::default();
            let nested = Document::new().with("inner", Value::List(vec![Value::Map(doc.0.clone())]));
            let event = TimelineEvent {
                seq: 1,
                entity: EntityId::new("e").unwrap(),
                kind: EventKind::new("said").unwrap(),
                at_ms: 0,
                data: nested,
            };
            let (out, _) = policy.redact(KeyKind::Timeline, &CachedValue::Timeline(vec![event]));
            let CachedValue::Timeline(events) = out else { unreachable!() };
            prop_assert!(!events[0].data.0.values().any(contains_secret));
        }
    }

    #[test]
    fn sensitive_flags_are_dropped() {
        let policy = SensitivityPolicy::default();
        let mut flags = crate::document::Flags::new();
        flags.insert(FlagName::new("door_open").unwrap(), Value::Bool(true));
        flags.insert(
            FlagName::new("pii_player_email").unwrap(),
            Value::Text("a@b".into()),
        );
        let (out, redaction) = policy.redact(KeyKind::Flags, &CachedValue::Flags(flags));
        let CachedValue::Flags(out) = out else {
            unreachable!()
        };
        assert_eq!(out.len(), 1);
        assert!(out.contains_key(&FlagName::new("door_open").unwrap()));
        assert_eq!(redaction, Redaction::Redacted);
    }

    /// Configured names start with `q`, configured prefixes with `z`; plain
    /// keys never start with either.
    fn configured() -> impl Strategy<Value = (Vec<String>, Vec<String>)> {
        (
            prop::collection::vec("q[a-z]{2,7}", 1..4),
            prop::collection::vec("z[a-z]{0,2}_", 1..3),
        )
    }

    /// A value tree whose map keys, at any depth, may be one of `names` or
    /// start with one of `prefixes` (in any letter case); everything under
    /// such a key contains `SECRET`, nothing else does.
    fn tree(names: Vec<String>, prefixes: Vec<String>) -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            3 => "[a-p]{1,6}".prop_map(|k| (k, false)),
            1 => (prop::sample::select(names), any::<bool>())
                .prop_map(|(n, up)| (if up { n.to_uppercase() } else { n }, true)),
            1 => (prop::sample::select(prefixes), "[a-z]{0,4}")
                .prop_map(|(p, rest)| (format!("{p}{rest}"), true)),
        ];
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::Int),
            "[a-p ]{0,8}".prop_map(Value::Text),
        ];
        leaf.prop_recursive(4, 48, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
                prop::collection::vec((key.clone(), inner), 0..5).prop_map(|fields| {
                    Value::Map(
                        fields
                            .into_iter()
                            .enumerate()
                            .map(|(i, ((k, secret), v))| {
                                let v = if secret {
                                    Value::List(vec![Value::Text(format!("SECRET-{i}")), v])
                                } else {
                                    v
                                };
                                (k, v)
                            })
                            .collect(),
                    )
                }),
            ]
        })
    }

    /// Whether any map key at any depth is sensitive under `policy`, or any
    /// text holds `SECRET`.
    fn leaks(policy: &SensitivityPolicy, v: &Value) -> bool {
        match v {
            Value::Text(s) => s.contains("SECRET"),
            Value::List(items) => items.iter().any(|v| leaks(policy, v)),
            Value::Map(m) => m
                .iter()
                .any(|(k, v)| policy.is_sensitive(k) || leaks(policy, v)),
            _ => false,
        }
    }

    fn doc_leaks(policy: &SensitivityPolicy, d: &Document) -> bool {
        leaks(policy, &Value::Map(d.0.clone()))
    }

    /// The document of a map value, with every key also planted at the top
    /// level and one level down.
    fn as_doc(v: Value) -> Document {
        let mut doc = Document::new();
        if let Value::Map(m) = v.clone() {
            doc.0.extend(m);
        }
        doc.0.insert("nested".into(), Value::List(vec![v]));
        doc
    }

    fn event(seq: u64, kind: &str, data: Document) -> TimelineEvent {
        TimelineEvent {
            seq,
            entity: EntityId::new("e").unwrap(),
            kind: EventKind::new(kind).unwrap(),
            at_ms: 0,
            data,
        }
    }

    fn leaks_anywhere(policy: &SensitivityPolicy, value: &CachedValue) -> bool {
        match value {
            CachedValue::Snapshot(d) | CachedValue::Entity(d) => doc_leaks(policy, d),
            CachedValue::Flags(flags) => flags
                .iter()
                .any(|(n, v)| policy.is_sensitive(n.as_str()) || leaks(policy, v)),
            CachedValue::Timeline(events) => events.iter().any(|e| doc_leaks(policy, &e.data)),
        }
    }

    proptest! {
        #[test]
        fn no_configured_name_survives_at_any_depth(
            (names, prefixes, v) in configured().prop_flat_map(|(n, p)| {
                (Just(n.clone()), Just(p.clone()), tree(n, p))
            })
        ) {
            let policy = SensitivityPolicy::default()
                .with_names(names.iter().map(String::as_str))
                .with_prefixes(prefixes.iter().map(String::as_str));
            let doc = as_doc(v);
            let had = doc_leaks(&policy, &doc);
            let mut flags = Flags::new();
            for (k, v) in &doc.0 {
                flags.insert(FlagName::new(k.as_str()).unwrap(), v.clone());
            }
            let values = [
                (KeyKind::State, CachedValue::Snapshot(doc.clone())),
                (KeyKind::Character, CachedValue::Entity(doc.clone())),
                (KeyKind::Location, CachedValue::Entity(doc.clone())),
                (KeyKind::Object, CachedValue::Entity(doc.clone())),
                (KeyKind::Flags, CachedValue::Flags(flags)),
                (KeyKind::Timeline, CachedValue::Timeline(vec![
                    event(2, "said", doc.clone()),
                    event(1, "moved", Document::new().with("inner", Value::Map(doc.0.clone()))),
                ])),
            ];
            for (kind, value) in values {
                let (out, redaction) = policy.redact(kind, &value);
                prop_assert!(!leaks_anywhere(&policy, &out), "{kind}: {out:?}");
                prop_assert_eq!(redaction == Redaction::Redacted, had, "{}", kind);
            }
            // The defaults are still there.
            prop_assert!(policy.is_sensitive("diagnosis") && policy.is_sensitive("pii_x"));
        }

        #[test]
        fn an_allow_list_keeps_only_its_fields(
            (names, prefixes, v) in configured().prop_flat_map(|(n, p)| {
                (Just(n.clone()), Just(p.clone()), tree(n, p))
            }),
            allowed in prop::collection::btree_set("[a-p]{1,2}", 0..6),
        ) {
            // The allow-list may name a sensitive field: it is removed all
            // the same.
            let mut allow: Vec<String> = allowed.into_iter().collect();
            allow.push(names[0].clone());
            let policy = SensitivityPolicy::default()
                .with_names(names.iter().map(String::as_str))
                .with_prefixes(prefixes.iter().map(String::as_str));
            let doc = as_doc(v);
            for kind in [KeyKind::State, KeyKind::Character, KeyKind::Location, KeyKind::Object, KeyKind::Timeline] {
                let policy = policy.clone().with_allow_list(kind, allow.iter().map(String::as_str));
                let value = if kind == KeyKind::Timeline {
                    CachedValue::Timeline(vec![event(1, "said", doc.clone())])
                } else if kind == KeyKind::State {
                    CachedValue::Snapshot(doc.clone())
                } else {
                    CachedValue::Entity(doc.clone())
                };
                let (out, redaction) = policy.redact(kind, &value);
                prop_assert!(!leaks_anywhere(&policy, &out));
                let kept: Vec<&Document> = match &out {
                    CachedValue::Snapshot(d) | CachedValue::Entity(d) => vec![d],
                    CachedValue::Timeline(events) => events.iter().map(|e| &e.data).collect(),
                    CachedValue::Flags(_) => vec![],
                };
                for d in kept {
                    for k in d.0.keys() {
                        prop_assert!(allow.contains(&k.to_ascii_lowercase()), "{kind}: {k} kept");
                    }
                    // Every allowed field that is not sensitive stays.
                    for (k, _) in doc.0.iter().filter(|(k, _)| allow.contains(k) && !policy.is_sensitive(k)) {
                        prop_assert!(d.0.contains_key(k));
                    }
                }
                let removed_any = doc.0.keys().any(|k| !allow.contains(k)) || doc_leaks(&policy, &doc);
                prop_assert_eq!(redaction == Redaction::Redacted, removed_any);
                // Other kinds have no allow-list.
                let other = if kind == KeyKind::Character { KeyKind::Object } else { KeyKind::Character };
                prop_assert!(policy.allow_list(other).is_none());
            }
        }

        #[test]
        fn private_events_never_stay_in_a_timeline(
            kinds in prop::collection::vec(prop::sample::select(vec!["said", "moved", "journal_entry", "Therapy"]), 0..12),
        ) {
            let policy = SensitivityPolicy::default().with_private_events(["JOURNAL_ENTRY", "therapy"]);
            let events: Vec<TimelineEvent> = kinds
                .iter()
                .enumerate()
                .map(|(i, k)| event(i as u64, k, Document::new().with("text", Value::Text(format!("{k}-{i}")))))
                .collect();
            let (out, redaction) = policy.redact(KeyKind::Timeline, &CachedValue::Timeline(events.clone()));
            let CachedValue::Timeline(out) = out else { unreachable!() };
            let public: Vec<TimelineEvent> = events
                .iter()
                .filter(|e| !matches!(e.kind.as_str(), "journal_entry" | "Therapy"))
                .cloned()
                .collect();
            prop_assert_eq!(&out, &public, "the others stay, in order, untouched");
            prop_assert_eq!(redaction == Redaction::Redacted, public.len() < events.len());
        }
    }

    #[test]
    fn an_allow_list_on_flags_keeps_only_named_flags() {
        let policy = SensitivityPolicy::default().with_allow_list(KeyKind::Flags, ["Door_Open"]);
        let mut flags = Flags::new();
        flags.insert(FlagName::new("door_open").unwrap(), Value::Bool(true));
        flags.insert(FlagName::new("mood").unwrap(), Value::Text("low".into()));
        let (out, redaction) = policy.redact(KeyKind::Flags, &CachedValue::Flags(flags));
        let CachedValue::Flags(out) = out else {
            unreachable!()
        };
        assert_eq!(
            out.keys().map(|f| f.as_str()).collect::<Vec<_>>(),
            ["door_open"]
        );
        assert_eq!(redaction, Redaction::Redacted);
    }
}
