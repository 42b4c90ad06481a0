//! The JSON bodies the service reads beyond plain values and documents:
//! an appended event, `{ "kind": "...", "data": {...} }`. Values,
//! documents, flags and events are mapped by `lwcache-json`, the mapping
//! the Neo4j repository and the benchmarks share.

use lwcache_domain::{Document, EventKind, IdError};
use lwcache_json::{MappingError, document_from_json};
use serde_json::Value as Json;

use crate::error::ApiError;

/// The body of `POST .../events`: what happened, and its data (empty when
/// absent or `null`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewEvent {
    /// What kind of event it is.
    pub(crate) kind: EventKind,
    /// Its data.
    pub(crate) data: Document,
}

/// Why an event body is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum EventBodyError {
    /// The body is not a JSON object.
    #[error("an event is a JSON object: {{\"kind\": \"...\", \"data\": {{...}}}}")]
    NotAnObject,
    /// The body has a field other than `kind` and `data`.
    #[error("an event has the fields kind and data, not {0:?}")]
    UnknownField(String),
    /// `kind` is there but not a string.
    #[error("the event's kind must be a string")]
    KindNotText,
    /// `kind` is missing.
    #[error("the event has no kind")]
    NoKind,
    /// `kind` is a string that is not a valid event kind.
    #[error(transparent)]
    Kind(#[from] IdError),
    /// `data` does not map to a document.
    #[error(transparent)]
    Data(#[from] MappingError),
}

/// Reads an event body; the fields are checked in the order the API
/// documents them: the shape, unknown fields, the kind, then the data.
pub(crate) fn event_from_json(json: &Json) -> Result<NewEvent, EventBodyError> {
    let Json::Object(fields) = json else {
        return Err(EventBodyError::NotAnObject);
    };
    if let Some(unknown) = fields.keys().find(|k| *k != "kind" && *k != "data") {
        return Err(EventBodyError::UnknownField(unknown.clone()));
    }
    let kind = match fields.get("kind") {
        Some(Json::String(k)) => EventKind::new(k.clone())?,
        Some(_) => return Err(EventBodyError::KindNotText),
        None => return Err(EventBodyError::NoKind),
    };
    let data = match fields.get("data") {
        None | Some(Json::Null) => Document::new(),
        Some(d) => document_from_json(d)?,
    };
    Ok(NewEvent { kind, data })
}

impl From<EventBodyError> for ApiError {
    fn from(e: EventBodyError) -> Self {
        match e {
            EventBodyError::Kind(_) => ApiError::unprocessable("invalid_event_kind", e.to_string()),
            EventBodyError::Data(m) => m.into(),
            EventBodyError::NotAnObject
            | EventBodyError::UnknownField(_)
            | EventBodyError::KindNotText
            | EventBodyError::NoKind => ApiError::unprocessable("invalid_body", e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use axum::http::StatusCode;
    use lwcache_domain::Value;

    use super::*;

    fn read(text: &str) -> Result<NewEvent, EventBodyError> {
        event_from_json(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn an_event_has_a_kind_and_maybe_data() {
        let e = read(r#"{"kind": "moved", "data": {"to": "inn"}}"#).unwrap();
        assert_eq!(e.kind.as_str(), "moved");
        assert_eq!(e.data.get("to"), Some(&Value::Text("inn".into())));
        for text in [r#"{"kind": "moved"}"#, r#"{"kind": "moved", "data": null}"#] {
            assert_eq!(read(text).unwrap().data, Document::new(), "{text}");
        }
    }

    #[test]
    fn each_refusal_has_its_code_and_message() {
        let cases = [
            ("[]", "invalid_body", "an event is a JSON object"),
            (
                r#"{"kind": "a", "extra": 1}"#,
                "invalid_body",
                "not \"extra\"",
            ),
            (r#"{"kind": 3}"#, "invalid_body", "kind must be a string"),
            (r#"{"data": {}}"#, "invalid_body", "the event has no kind"),
            (r#"{"kind": "no spaces"}"#, "invalid_event_kind", ""),
            (r#"{"kind": "a", "data": 1}"#, "invalid_value", "a number"),
            (
                r#"{"kind": "a", "data": {"n": [18446744073709551615]}}"#,
                "invalid_value",
                "at /n/0",
            ),
        ];
        for (text, code, words) in cases {
            let err = ApiError::from(read(text).unwrap_err());
            assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
            assert_eq!(err.code, code, "{text}");
            assert!(err.message.contains(words), "{text}: {}", err.message);
        }
    }
}
