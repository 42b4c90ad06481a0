//! The bodies of single-key reads, rendered to JSON text once per shared
//! value and thread.
//!
//! A read answers a shared, immutable value: the decode memo and the near
//! cache hand every read that found the same entry the same `Arc`. So the
//! text of a body is a function of that allocation, and a thread keeps the
//! last body it rendered for each of a few hundred of them, found by
//! address. A slot holds a `Weak` of the value it was rendered from: that
//! keeps the allocation's address from being reused while the slot holds
//! it (the value itself is still dropped with its last `Arc`), so an equal
//! address is the same value and the body it keeps is that value's text.
//! Nothing is answered that the read did not return; only the rendering is
//! skipped.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use lwcache_domain::{CachedValue, TimelineEvent};
use lwcache_json::{DocumentJson, EventsJson, FlagsJson};

use crate::error::ApiError;

/// How many bodies a thread keeps (a power of two: a slot is picked by
/// the address's bits).
const SLOTS: usize = 512;

/// Bodies larger than this are rendered on every read, not kept: a
/// thread keeps at most `SLOTS` of these, so about 8 MiB.
const MAX_KEPT: usize = 16 * 1024;

struct Kept {
    value: Weak<CachedValue>,
    body: Bytes,
}

thread_local! {
    static KEPT: RefCell<Vec<Option<Kept>>> =
        RefCell::new((0..SLOTS).map(|_| None).collect());
}

/// The slot of a value's address: its bits above the allocation's
/// alignment, folded.
fn slot_of(value: *const CachedValue) -> usize {
    let at = value as usize >> 4;
    (at ^ (at >> 9)) & (SLOTS - 1)
}

/// The JSON text of `value`, as the single-key routes answer it.
fn render(value: &CachedValue) -> serde_json::Result<Vec<u8>> {
    match value {
        CachedValue::Snapshot(doc) | CachedValue::Entity(doc) => {
            serde_json::to_vec(&DocumentJson(doc))
        }
        CachedValue::Flags(flags) => serde_json::to_vec(&FlagsJson(flags)),
        CachedValue::Timeline(events) => serde_json::to_vec(&EventsJson(events)),
    }
}

/// The body of the first events of a timeline (fewer than the cached
/// list): rendered for this read alone.
pub(super) fn events_body(events: &[TimelineEvent]) -> Result<Bytes, ApiError> {
    serde_json::to_vec(&EventsJson(events))
        .map(Bytes::from)
        .map_err(|e| unrenderable("timeline", &e))
}

fn unrenderable(kind: &str, e: &serde_json::Error) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "render_failed",
        format!("the {kind} read could not be written as JSON: {e}"),
    )
}

/// The body of `value`: the one this thread rendered for the same shared
/// value, else rendered now (and kept if small enough).
pub(super) fn body(value: &Arc<CachedValue>) -> Result<Bytes, ApiError> {
    let at = slot_of(Arc::as_ptr(value));
    let kept = KEPT.with_borrow(|slots| match &slots[at] {
        Some(kept) if std::ptr::eq(kept.value.as_ptr(), Arc::as_ptr(value)) => {
            Some(kept.body.clone())
        }
        _ => None,
    });
    if let Some(body) = kept {
        return Ok(body);
    }
    let body = Bytes::from(render(value).map_err(|e| unrenderable(value.name(), &e))?);
    if body.len() <= MAX_KEPT {
        KEPT.with_borrow_mut(|slots| {
            slots[at] = Some(Kept {
                value: Arc::downgrade(value),
                body: body.clone(),
            });
        });
    }
    Ok(body)
}

/// A 200 answer with `body` as its JSON text.
pub(super) fn json_response(body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use lwcache_domain::{Document, FlagName, Flags, Value};

    use super::*;

    fn entity(name: &str) -> Arc<CachedValue> {
        Arc::new(CachedValue::Entity(
            Document::new().with("name", Value::Text(name.into())),
        ))
    }

    #[test]
    fn a_shared_value_is_rendered_once_and_answered_as_rendered() {
        let ada = entity("Ada");
        let first = body(&ada).unwrap();
        assert_eq!(&first[..], br#"{"name":"Ada"}"#);
        let again = body(&Arc::clone(&ada)).unwrap();
        // The same bytes, not a second rendering of them.
        assert_eq!(first.as_ptr(), again.as_ptr());
    }

    #[test]
    fn an_equal_value_in_another_allocation_is_rendered_for_itself() {
        let ada = entity("Ada");
        let first = body(&ada).unwrap();
        let other = entity("Ada");
        let second = body(&other).unwrap();
        assert_eq!(first, second);
        assert_ne!(first.as_ptr(), second.as_ptr());
    }

    #[test]
    fn a_new_value_at_a_freed_address_is_never_answered_the_old_text() {
        // Values dropped and made again: each body is its own value's,
        // whatever the allocator hands out.
        for i in 0..2000 {
            let name = format!("name-{i}");
            let value = entity(&name);
            let text = body(&value).unwrap();
            assert_eq!(&text[..], format!(r#"{{"name":"{name}"}}"#).as_bytes());
        }
    }

    #[test]
    fn every_kind_renders_as_its_route_answers_it() {
        let mut flags = Flags::new();
        flags.insert(FlagName::new("gate").unwrap(), Value::Bool(true));
        let flags = Arc::new(CachedValue::Flags(flags));
        assert_eq!(&body(&flags).unwrap()[..], br#"{"gate":true}"#);
        let big = entity(&"x".repeat(MAX_KEPT));
        let text = body(&big).unwrap();
        assert_eq!(text.len(), MAX_KEPT + r#"{"name":""}"#.len());
        // Too large to keep: rendered again, equal.
        assert_ne!(body(&big).unwrap().as_ptr(), text.as_ptr());
    }
}
