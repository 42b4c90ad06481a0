//! Privacy: fields that must never reach the cache.
//!
//! A game world holds a player's personal and clinical data beside the state
//! that every turn reads. The cache keeps only the latter: before a value is
//! encoded for the cache store, [`SensitivityPolicy::redact`] removes every
//! field whose name the policy marks sensitive, at any depth. A read that
//! needs those fields is served by the source of truth.

use std::collections::{BTreeMap, BTreeSet};

use crate::document::{CachedValue, Document, Value};

/// Which field names are sensitive. Names match case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensitivityPolicy {
    names: BTreeSet<String>,
    prefixes: Vec<String>,
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
    /// A policy with the given names and prefixes.
    pub fn new<'a>(
        names: impl IntoIterator<Item = &'a str>,
        prefixes: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        Self {
            names: names.into_iter().map(str::to_ascii_lowercase).collect(),
            prefixes: prefixes.into_iter().map(str::to_ascii_lowercase).collect(),
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

    /// Whether a field of this name is sensitive.
    pub fn is_sensitive(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        self.names.contains(&lower) || self.prefixes.iter().any(|p| lower.starts_with(p))
    }

    /// The value without its sensitive fields, and whether any were removed.
    pub fn redact(&self, value: &CachedValue) -> (CachedValue, Redaction) {
        let mut removed = false;
        let out = match value {
            CachedValue::Snapshot(d) => CachedValue::Snapshot(self.redact_doc(d, &mut removed)),
            CachedValue::Entity(d) => CachedValue::Entity(self.redact_doc(d, &mut removed)),
            CachedValue::Flags(flags) => {
                let mut kept = crate::document::Flags::new();
                for (name, v) in flags {
                    if self.is_sensitive(name.as_str()) {
                        removed = true;
                    } else {
                        kept.insert(name.clone(), self.redact_value(v, &mut removed));
                    }
                }
                CachedValue::Flags(kept)
            }
            CachedValue::Timeline(events) => CachedValue::Timeline(
                events
                    .iter()
                    .map(|e| {
                        let mut e = e.clone();
                        e.data = self.redact_doc(&e.data, &mut removed);
                        e
                    })
                    .collect(),
            ),
        };
        let redaction = if removed {
            Redaction::Redacted
        } else {
            Redaction::Complete
        };
        (out, redaction)
    }

    fn redact_doc(&self, doc: &Document, removed: &mut bool) -> Document {
        Document(self.redact_map(&doc.0, removed))
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
            let (out, redaction) = policy.redact(&CachedValue::Entity(doc.clone()));
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
            let (out, _) = policy.redact(&CachedValue::Timeline(vec![event]));
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
        let (out, redaction) = policy.redact(&CachedValue::Flags(flags));
        let CachedValue::Flags(out) = out else {
            unreachable!()
        };
        assert_eq!(out.len(), 1);
        assert!(out.contains_key(&FlagName::new("door_open").unwrap()));
        assert_eq!(redaction, Redaction::Redacted);
    }
}
