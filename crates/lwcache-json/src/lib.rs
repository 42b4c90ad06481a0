//! The JSON mapping of lwcache's values: the one the service speaks over
//! HTTP, the Neo4j repository stores as property text, and the benchmarks
//! compare the cache's entry format with. Each user maps [`MappingError`]
//! into its own error type.
//!
//! - `null`, `true`/`false` and strings map to `Null`, `Bool` and `Text`;
//!   arrays to `List`; objects to `Map`.
//! - A JSON number written without a fraction or exponent that fits an
//!   `i64` is an `Int`; any other number is a `Float`. An integer beyond the
//!   `i64` range is refused rather than rounded.
//! - A document is a JSON object; its fields are values.
//! - Timeline events are `{ "seq", "entity", "kind", "at_ms", "data" }`.
//!
//! JSON cannot spell NaN or infinity, and numbers too large for an `f64`
//! are parse errors, so every `Float` read here is finite.
//!
//! Errors name where the problem is as a JSON pointer (`/a/b~1c/0`), so
//! that a client can find it in the body it sent.

use std::collections::BTreeMap;

mod write;

pub use write::{DocumentJson, EventJson, EventsJson, FlagsJson, ValueJson};

use lwcache_domain::{Document, Flags, TimelineEvent, Value};
use serde_json::{Map, Number, Value as Json};

/// Why a JSON value does not map to a domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MappingError {
    /// A document must be a JSON object.
    #[error("a document must be a JSON object, not {0}")]
    NotAnObject(&'static str),
    /// An integer does not fit in 64 signed bits.
    #[error("the number {number} at {at} is an integer outside the 64-bit signed range")]
    IntegerRange {
        /// The number as written.
        number: String,
        /// Where it is, as a JSON pointer.
        at: String,
    },
    /// A float is NaN or infinite.
    #[error("the number at {0} is not finite")]
    NonFinite(String),
}

fn kind_of(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Maps a JSON value to a domain value.
pub fn value_from_json(json: &Json) -> Result<Value, MappingError> {
    value_at(json, &mut String::new())
}

fn value_at(json: &Json, at: &mut String) -> Result<Value, MappingError> {
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => number(n, at)?,
        Json::String(s) => Value::Text(s.clone()),
        Json::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = at.len();
                at.push('/');
                at.push_str(&i.to_string());
                out.push(value_at(item, at)?);
                at.truncate(len);
            }
            Value::List(out)
        }
        Json::Object(map) => Value::Map(map_at(map, at)?),
    })
}

fn map_at(
    map: &Map<String, Json>,
    at: &mut String,
) -> Result<BTreeMap<String, Value>, MappingError> {
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let len = at.len();
        at.push('/');
        // JSON pointer escaping: `~` first, then `/`.
        at.push_str(&k.replace('~', "~0").replace('/', "~1"));
        out.insert(k.clone(), value_at(v, at)?);
        at.truncate(len);
    }
    Ok(out)
}

fn number(n: &Number, at: &str) -> Result<Value, MappingError> {
    let pointer = || {
        if at.is_empty() {
            "/".to_owned()
        } else {
            at.to_owned()
        }
    };
    if let Some(i) = n.as_i64() {
        return Ok(Value::Int(i));
    }
    if n.is_u64() {
        return Err(MappingError::IntegerRange {
            number: n.to_string(),
            at: pointer(),
        });
    }
    match n.as_f64() {
        Some(f) if f.is_finite() => Ok(Value::Float(f)),
        _ => Err(MappingError::NonFinite(pointer())),
    }
}

/// Maps a JSON object to a document.
pub fn document_from_json(json: &Json) -> Result<Document, MappingError> {
    match json {
        Json::Object(map) => Ok(Document(map_at(map, &mut String::new())?)),
        other => Err(MappingError::NotAnObject(kind_of(other))),
    }
}

/// Maps a domain value to JSON.
pub fn value_to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        // A non-finite float cannot exist past the domain's checks; should
        // one appear, `null` is the only JSON that does not lie about it.
        Value::Float(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Text(s) => Json::String(s.clone()),
        Value::List(items) => Json::Array(items.iter().map(value_to_json).collect()),
        Value::Map(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), value_to_json(v)))
                .collect(),
        ),
    }
}

/// Maps a document to a JSON object.
pub fn document_to_json(doc: &Document) -> Json {
    Json::Object(
        doc.fields()
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect(),
    )
}

/// Maps the flags to a JSON object, by flag name.
pub fn flags_to_json(flags: &Flags) -> Json {
    Json::Object(
        flags
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), value_to_json(v)))
            .collect(),
    )
}

/// Maps a timeline event to JSON.
pub fn event_to_json(event: &TimelineEvent) -> Json {
    serde_json::json!({
        "seq": event.seq,
        "entity": event.entity.as_str(),
        "kind": event.kind.as_str(),
        "at_ms": event.at_ms,
        "data": document_to_json(&event.data),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use lwcache_domain::{EntityId, EventKind, FlagName};
    use proptest::prelude::*;

    use super::*;

    fn parse(s: &str) -> Json {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn integers_and_floats_stay_apart_both_ways() {
        let doc = document_from_json(&parse(
            r#"{"i": 3, "neg": -7, "f": 3.0, "e": 1e3, "big": 9223372036854775807}"#,
        ))
        .unwrap();
        assert_eq!(doc.get("i"), Some(&Value::Int(3)));
        assert_eq!(doc.get("neg"), Some(&Value::Int(-7)));
        assert_eq!(doc.get("f"), Some(&Value::Float(3.0)));
        assert_eq!(doc.get("e"), Some(&Value::Float(1000.0)));
        assert_eq!(doc.get("big"), Some(&Value::Int(i64::MAX)));
        let back = document_to_json(&doc);
        assert_eq!(document_from_json(&back).unwrap(), doc);
        assert!(back["f"].is_f64());
        assert!(back["i"].is_i64());
    }

    #[test]
    fn nesting_maps_to_lists_and_maps() {
        let v = value_from_json(&parse(r#"{"a": [1, "x", null, {"b": true}]}"#)).unwrap();
        let Value::Map(m) = &v else {
            panic!("a map, got {v:?}")
        };
        let Some(Value::List(items)) = m.get("a") else {
            panic!("a list")
        };
        assert_eq!(items.len(), 4);
        assert_eq!(items[1], Value::Text("x".into()));
        assert_eq!(items[2], Value::Null);
        assert_eq!(
            value_to_json(&v),
            parse(r#"{"a": [1, "x", null, {"b": true}]}"#)
        );
    }

    #[test]
    fn out_of_range_integers_are_refused_with_their_place() {
        let err =
            document_from_json(&parse(r#"{"a": {"b/c": [18446744073709551615]}}"#)).unwrap_err();
        assert_eq!(
            err,
            MappingError::IntegerRange {
                number: "18446744073709551615".into(),
                at: "/a/b~1c/0".into()
            }
        );
    }

    #[test]
    fn a_document_is_an_object() {
        for (text, kind) in [("[]", "an array"), ("1", "a number"), ("\"s\"", "a string")] {
            assert_eq!(
                document_from_json(&parse(text)).unwrap_err(),
                MappingError::NotAnObject(kind)
            );
        }
        assert!(
            serde_json::from_str::<Json>("1e999").is_err(),
            "JSON has no infinity"
        );
    }

    #[test]
    fn documents_round_trip_exactly_through_text() {
        let doc = Document::new()
            .with("int", Value::Int(-3))
            .with("big", Value::Int(i64::MAX))
            .with("float", Value::Float(1.0))
            .with("pi", Value::Float(3.25))
            .with("text", Value::Text("é \"quoted\" \n".into()))
            .with("null", Value::Null)
            .with("list", Value::List(vec![Value::Bool(true), Value::Int(1)]))
            .with(
                "map",
                Value::Map([("inner".to_owned(), Value::Float(-0.5))].into()),
            );
        let text = document_to_json(&doc).to_string();
        assert!(text.contains("\"float\":1.0"), "{text}");
        assert_eq!(document_from_json(&parse(&text)).unwrap(), doc);
    }

    #[test]
    fn every_kind_of_non_object_is_named() {
        for (text, kind) in [
            ("null", "null"),
            ("true", "a boolean"),
            ("[1]", "an array"),
            ("3", "a number"),
            ("\"s\"", "a string"),
        ] {
            let err = document_from_json(&parse(text)).unwrap_err();
            assert_eq!(err, MappingError::NotAnObject(kind), "{text}");
            assert!(err.to_string().contains(kind), "{err}");
        }
    }

    #[test]
    fn an_out_of_range_integer_at_the_top_is_at_the_root() {
        let err = value_from_json(&parse("9223372036854775808")).unwrap_err();
        assert_eq!(
            err,
            MappingError::IntegerRange {
                number: "9223372036854775808".into(),
                at: "/".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "the number 9223372036854775808 at / is an integer outside the 64-bit signed range"
        );
        assert_eq!(
            value_from_json(&parse("-9223372036854775808")).unwrap(),
            Value::Int(i64::MIN)
        );
    }

    #[test]
    fn pointers_escape_tilde_before_slash_and_count_list_places() {
        let err =
            value_from_json(&parse(r#"[0, {"~/": [1, 2, 18446744073709551615]}]"#)).unwrap_err();
        assert_eq!(
            err,
            MappingError::IntegerRange {
                number: "18446744073709551615".into(),
                at: "/1/~0~1/2".into()
            }
        );
    }

    #[test]
    fn non_finite_floats_name_their_place_and_become_null_on_the_way_out() {
        assert_eq!(
            MappingError::NonFinite("/x".into()).to_string(),
            "the number at /x is not finite"
        );
        assert_eq!(value_to_json(&Value::Float(f64::NAN)), Json::Null);
        assert_eq!(value_to_json(&Value::Float(f64::INFINITY)), Json::Null);
    }

    #[test]
    fn flags_and_events_map_by_name() {
        let mut flags = Flags::new();
        flags.insert(FlagName::new("night").unwrap(), Value::Bool(true));
        assert_eq!(flags_to_json(&flags), parse(r#"{"night": true}"#));
        let event = TimelineEvent {
            seq: 7,
            entity: EntityId::new("hero").unwrap(),
            kind: EventKind::new("moved").unwrap(),
            at_ms: 1_000,
            data: Document::new().with("to", Value::Text("inn".into())),
        };
        assert_eq!(
            event_to_json(&event),
            parse(
                r#"{"seq": 7, "entity": "hero", "kind": "moved", "at_ms": 1000, "data": {"to": "inn"}}"#
            )
        );
    }

    fn values() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<f64>()
                .prop_filter("JSON has only finite numbers", |f| f.is_finite())
                .prop_map(Value::Float),
            ".*".prop_map(Value::Text),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
                prop::collection::btree_map(".*", inner, 0..6).prop_map(Value::Map),
            ]
        })
    }

    // Through `serde_json::Value`, not text: without serde_json's
    // `float_roundtrip` feature its parser may land one ulp away from the
    // float that was printed.
    proptest! {
        #[test]
        fn every_finite_value_survives_the_mapping(value in values()) {
            let back = value_from_json(&value_to_json(&value)).unwrap();
            prop_assert_eq!(back, value);
        }

        #[test]
        fn every_document_survives_the_mapping(
            fields in prop::collection::btree_map(".*", values(), 0..6)
        ) {
            let doc = Document(fields);
            prop_assert_eq!(document_from_json(&document_to_json(&doc)).unwrap(), doc);
        }

        /// The writers print exactly the text of the mapping: every value,
        /// non-finite floats included (both print `null`).
        #[test]
        fn the_writers_print_what_the_mapping_prints(
            value in values(),
            weird in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), any::<f64>()],
            fields in prop::collection::btree_map(".*", values(), 0..6),
            seq in any::<u64>(),
            at_ms in any::<i64>(),
        ) {
            let text = |j: &Json| serde_json::to_string(j).unwrap();
            prop_assert_eq!(
                serde_json::to_string(&ValueJson(&value)).unwrap(),
                text(&value_to_json(&value))
            );
            let odd = Value::List(vec![Value::Float(weird), value.clone()]);
            prop_assert_eq!(
                serde_json::to_string(&ValueJson(&odd)).unwrap(),
                text(&value_to_json(&odd))
            );
            let doc = Document(fields);
            prop_assert_eq!(
                serde_json::to_string(&DocumentJson(&doc)).unwrap(),
                text(&document_to_json(&doc))
            );
            let mut flags = Flags::new();
            flags.insert(FlagName::new("night").unwrap(), value.clone());
            flags.insert(FlagName::new("day").unwrap(), Value::Int(1));
            prop_assert_eq!(
                serde_json::to_string(&FlagsJson(&flags)).unwrap(),
                text(&flags_to_json(&flags))
            );
            let events = vec![
                TimelineEvent {
                    seq,
                    entity: EntityId::new("hero").unwrap(),
                    kind: EventKind::new("moved").unwrap(),
                    at_ms,
                    data: doc.clone(),
                };
                2
            ];
            let mapped = Json::Array(events.iter().map(event_to_json).collect());
            prop_assert_eq!(serde_json::to_string(&EventsJson(&events)).unwrap(), text(&mapped));
        }
    }
}
