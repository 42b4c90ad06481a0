//! Documents as JSON text, the form they take in Neo4j properties.
//!
//! Neo4j properties cannot hold nested maps, so each document is stored as
//! one JSON string: readable with a plain Cypher query, and decoded back to
//! the same document (integers stay integers, floats stay floats). The
//! mapping itself is `lwcache-json`'s, the one the service speaks; this
//! module only turns it into text and its errors into [`Neo4jError`].

use lwcache_domain::{Document, Value};
use lwcache_json::{
    MappingError, document_from_json, document_to_json, value_from_json, value_to_json,
};
use serde_json::Value as Json;

use crate::error::Neo4jError;

/// A document as JSON text.
pub fn encode(doc: &Document) -> String {
    document_to_json(doc).to_string()
}

/// One value as JSON text.
pub fn encode_value(value: &Value) -> String {
    value_to_json(value).to_string()
}

/// A document from JSON text written by [`encode`].
pub fn decode(text: &str) -> Result<Document, Neo4jError> {
    document_from_json(&parse(text)?).map_err(corrupt)
}

/// One value from JSON text written by [`encode_value`].
pub fn decode_value(text: &str) -> Result<Value, Neo4jError> {
    value_from_json(&parse(text)?).map_err(corrupt)
}

fn parse(text: &str) -> Result<Json, Neo4jError> {
    serde_json::from_str(text).map_err(|e| Neo4jError::Corrupt(format!("invalid JSON: {e}")))
}

fn corrupt(e: MappingError) -> Neo4jError {
    match e {
        MappingError::NotAnObject(kind) => {
            Neo4jError::Corrupt(format!("expected a JSON object, found {kind}"))
        }
        other => Neo4jError::Corrupt(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_round_trip_exactly() {
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
        let text = encode(&doc);
        assert_eq!(decode(&text).unwrap(), doc);
        assert!(text.contains("\"float\":1.0"), "{text}");
    }

    /// Whatever nesting Neo4j's JSON text can hold (serde_json parses 127
    /// levels, no more), the cache's codec holds too: a document written
    /// there by any tool is cached, not refilled on every read.
    #[test]
    fn the_deepest_document_json_parses_is_one_the_cache_holds() {
        // The top-level object, then maps and lists in turn.
        let deep = |levels: usize| {
            let (mut open, mut close) = (String::from("{\"k\":"), String::from("}"));
            for n in 1..levels {
                if n % 2 == 0 {
                    open.push_str("{\"k\":");
                    close.insert(0, '}');
                } else {
                    open.push('[');
                    close.insert(0, ']');
                }
            }
            format!("{open}1{close}")
        };
        let deepest = (1..200).take_while(|&n| decode(&deep(n)).is_ok()).last();
        assert_eq!(deepest, Some(127), "serde_json's own limit");
        let doc = decode(&deep(127)).unwrap();
        let entry = lwcache_core::codec::Entry {
            version: 1,
            redaction: lwcache_domain::Redaction::Complete,
            value: lwcache_domain::CachedValue::Entity(doc),
        };
        let bytes = lwcache_core::codec::encode(&entry);
        assert_eq!(lwcache_core::codec::decode(&bytes).unwrap(), entry);
    }

    #[test]
    fn garbage_is_a_typed_error() {
        for bad in ["", "{", "[1]", "3", "{\"a\":1e999}"] {
            assert!(
                matches!(decode(bad), Err(Neo4jError::Corrupt(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            decode_value("[1,2.5]").unwrap(),
            Value::List(vec![Value::Int(1), Value::Float(2.5)])
        );
    }
}
