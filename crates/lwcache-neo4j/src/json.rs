//! Documents as JSON text, the form they take in Neo4j properties.
//!
//! Neo4j properties cannot hold nested maps, so each document is stored as
//! one JSON string: readable with a plain Cypher query, and decoded back to
//! exactly the same document (integers stay integers, floats stay floats).

use std::collections::BTreeMap;

use lwcache_domain::{Document, Value};
use serde_json::{Map, Number, Value as Json};

use crate::error::Neo4jError;

/// A document as JSON text.
pub fn encode(doc: &Document) -> String {
    Json::Object(fields(doc.fields())).to_string()
}

/// One value as JSON text.
pub fn encode_value(value: &Value) -> String {
    to_json(value).to_string()
}

/// A document from JSON text written by [`encode`].
pub fn decode(text: &str) -> Result<Document, Neo4jError> {
    match parse(text)? {
        Json::Object(map) => Ok(Document(map_of(map)?)),
        other => Err(Neo4jError::Corrupt(format!(
            "expected a JSON object, found {}",
            kind(&other)
        ))),
    }
}

/// One value from JSON text written by [`encode_value`].
pub fn decode_value(text: &str) -> Result<Value, Neo4jError> {
    from_json(parse(text)?)
}

fn parse(text: &str) -> Result<Json, Neo4jError> {
    serde_json::from_str(text).map_err(|e| Neo4jError::Corrupt(format!("invalid JSON: {e}")))
}

fn fields(map: &BTreeMap<String, Value>) -> Map<String, Json> {
    map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()
}

fn to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::Number((*i).into()),
        // Documents are checked finite before they are written; a
        // non-finite float would become null rather than invalid JSON.
        Value::Float(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Text(s) => Json::String(s.clone()),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(map) => Json::Object(fields(map)),
    }
}

fn from_json(json: Json) -> Result<Value, Neo4jError> {
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) if !n.is_f64() => Value::Int(i),
            _ => Value::Float(
                n.as_f64()
                    .ok_or_else(|| Neo4jError::Corrupt(format!("number {n} is out of range")))?,
            ),
        },
        Json::String(s) => Value::Text(s),
        Json::Array(items) => {
            Value::List(items.into_iter().map(from_json).collect::<Result<_, _>>()?)
        }
        Json::Object(map) => Value::Map(map_of(map)?),
    })
}

fn map_of(map: Map<String, Json>) -> Result<BTreeMap<String, Value>, Neo4jError> {
    map.into_iter()
        .map(|(k, v)| Ok((k, from_json(v)?)))
        .collect()
}

fn kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
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
