//! The same mapping as `*_to_json`, written straight to JSON text: each
//! wrapper serializes a borrowed domain value, with no `serde_json::Value`
//! tree built in between. What an answer on the read path needs.

use lwcache_domain::{Document, Flags, TimelineEvent, Value};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A domain value, serialized as [`value_to_json`](crate::value_to_json)
/// maps it.
#[derive(Debug, Clone, Copy)]
pub struct ValueJson<'a>(pub &'a Value);

impl Serialize for ValueJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            // As `value_to_json`: a non-finite float is `null`.
            Value::Float(f) if f.is_finite() => s.serialize_f64(*f),
            Value::Float(_) => s.serialize_unit(),
            Value::Text(t) => s.serialize_str(t),
            Value::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&ValueJson(item))?;
                }
                seq.end()
            }
            Value::Map(map) => fields(s, map.iter().map(|(k, v)| (k.as_str(), v)), map.len()),
        }
    }
}

fn fields<'a, S: Serializer>(
    s: S,
    entries: impl Iterator<Item = (&'a str, &'a Value)>,
    len: usize,
) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(len))?;
    for (k, v) in entries {
        map.serialize_entry(k, &ValueJson(v))?;
    }
    map.end()
}

/// A document, serialized as [`document_to_json`](crate::document_to_json)
/// maps it.
#[derive(Debug, Clone, Copy)]
pub struct DocumentJson<'a>(pub &'a Document);

impl Serialize for DocumentJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let map = self.0.fields();
        fields(s, map.iter().map(|(k, v)| (k.as_str(), v)), map.len())
    }
}

/// The flags, serialized as [`flags_to_json`](crate::flags_to_json) maps
/// them.
#[derive(Debug, Clone, Copy)]
pub struct FlagsJson<'a>(pub &'a Flags);

impl Serialize for FlagsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fields(s, self.0.iter().map(|(k, v)| (k.as_str(), v)), self.0.len())
    }
}

/// Timeline events, newest first, serialized as
/// [`event_to_json`](crate::event_to_json) maps each.
#[derive(Debug, Clone, Copy)]
pub struct EventsJson<'a>(pub &'a [TimelineEvent]);

impl Serialize for EventsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for event in self.0 {
            seq.serialize_element(&EventJson(event))?;
        }
        seq.end()
    }
}

/// One timeline event.
#[derive(Debug, Clone, Copy)]
pub struct EventJson<'a>(pub &'a TimelineEvent);

impl Serialize for EventJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        // In `event_to_json`'s object's (sorted) order.
        let mut map = s.serialize_map(Some(5))?;
        map.serialize_entry("at_ms", &e.at_ms)?;
        map.serialize_entry("data", &DocumentJson(&e.data))?;
        map.serialize_entry("entity", e.entity.as_str())?;
        map.serialize_entry("kind", e.kind.as_str())?;
        map.serialize_entry("seq", &e.seq)?;
        map.end()
    }
}
