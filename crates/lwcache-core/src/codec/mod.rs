//! The entry codec: how a cached value becomes bytes, and back.
//!
//! An entry starts with a fixed header, so that a value written by another
//! format version, or bytes that are not an entry at all, are recognised and
//! treated as a miss instead of a wrong answer:
//!
//! ```text
//! b"LW"  format: u8  flags: u8  version: u64 (big endian)  value
//! ```
//!
//! `flags` bit 0 says the value was redacted. Two formats are read, so that
//! instances of two releases can share one Redis during a rolling upgrade
//! ([`Format`]); both keep the header's first 12 bytes, so the version rule
//! reads them alike. In format 1, an entry with a TTL ends with
//! a freshness trailer after its value: the byte `0xF0`, then when it was
//! written and until when it is fresh, both as i64 milliseconds since the
//! Unix epoch (big endian); the store keeps it past that, for fail-safe
//! reads ([`Freshness`]). The trailer keeps the header as it was, so every
//! store's version rule ([`replaces`], `write.lua`) reads old and new
//! entries alike; a reader that predates it sees trailing bytes and takes
//! the entry for a miss, never for a wrong value. In format 2 the stamps sit
//! in the header instead, after the version, when `flags` bit 1 is set: a
//! reader learns whether an entry is fresh without decoding its value, and
//! the value runs to the end. A negative entry (the
//! source has no such entity) is the header, the byte 6 and the entity's
//! name, at version 0: older than any write, so any put of the key replaces
//! it. The value is a compact tagged
//! binary form: one tag byte per item, LEB128 lengths and integers (zig-zag
//! for signed), little-endian IEEE 754 floats. Decoding checks every length
//! against the remaining input, bounds nesting, and reserves room ahead for
//! no more items, over the whole entry, than it has bytes: no input can
//! make it panic, or allocate more than a valid entry of its size would.

mod items;

use items::{Reader, put_len, put_map, put_str, put_uvarint, put_value, unzigzag, zigzag};
use lwcache_domain::{
    CachedValue, Document, EntityId, EventKind, FlagName, Flags, Redaction, TimelineEvent,
};

const MAGIC: &[u8; 2] = b"LW";
/// The format written unless configured otherwise ([`Format::V1`]).
pub const FORMAT: u8 = 1;
const HEADER_LEN: usize = 12;
/// Lists and maps nested in a value, each counted once: more than
/// `serde_json` parses (127, the top-level object included), so that every
/// document Neo4j's JSON text can hold, written there by any tool, is one
/// the cache can hold too.
const MAX_DEPTH: usize = 128;
const FLAG_REDACTED: u8 = 1;
/// Format 2: the freshness stamps follow the version in the header.
const FLAG_FRESH: u8 = 2;
const STAMPS_LEN: usize = 16;

/// The entry formats this release reads and may write.
///
/// A rolling upgrade to a new format takes two steps: first every instance
/// runs a release that reads both formats while still writing the old one
/// (the default); then writes switch to the new format. At no point does an
/// instance meet an entry it cannot read, so none is served as a miss or
/// deleted as garbage. A format this release does not know (a later one)
/// reads as a miss and is left in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Freshness in a trailer after the value.
    #[default]
    V1,
    /// Freshness in the header, before the value.
    V2,
}

impl Format {
    /// The format byte.
    pub fn byte(self) -> u8 {
        match self {
            Format::V1 => 1,
            Format::V2 => 2,
        }
    }

    /// The format of a format byte, if this release reads it.
    pub fn of(byte: u8) -> Option<Format> {
        match byte {
            1 => Some(Format::V1),
            2 => Some(Format::V2),
            _ => None,
        }
    }
}

const T_NULL: u8 = 0;
const T_FALSE: u8 = 1;
const T_TRUE: u8 = 2;
const T_INT: u8 = 3;
const T_FLOAT: u8 = 4;
const T_TEXT: u8 = 5;
const T_LIST: u8 = 6;
const T_MAP: u8 = 7;

const V_SNAPSHOT: u8 = 1;
const V_FLAGS: u8 = 2;
const V_ENTITY: u8 = 3;
const V_TIMELINE: u8 = 4;
const V_TOMBSTONE: u8 = 5;
const V_ABSENT: u8 = 6;
const T_FRESHNESS: u8 = 0xF0;
const TRAILER_LEN: usize = 17;
/// The shortest event: its sequence, entity, kind, time and data, each at
/// their shortest (a one-byte varint, one-character ids, an empty map).
const MIN_EVENT_BYTES: usize = 7;

/// A decoded cache entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The world version the value was read at or committed as.
    pub version: u64,
    /// Whether sensitive fields were removed before caching.
    pub redaction: Redaction,
    /// The value.
    pub value: CachedValue,
}

/// When an entry was written and until when it is fresh, in milliseconds
/// since the Unix epoch. Past `fresh_until_ms` it is served only as a
/// fail-safe answer, while the source fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// When the value was written to the cache.
    pub written_ms: i64,
    /// When it stops being fresh.
    pub fresh_until_ms: i64,
}

/// What a key holds: a value, a tombstone left by an invalidation, or a
/// negative entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Slot {
    /// A cached value.
    Value(Entry),
    /// The source answered that the entity does not exist (a negative
    /// entry, at version 0).
    Absent {
        /// The entity, as the source named it.
        entity: String,
    },
    /// The key was invalidated by the write committed as `version`: it reads
    /// as a miss, and no put older than `version` may replace it.
    Tombstone {
        /// The invalidating write's version.
        version: u64,
    },
}

/// Why bytes are not a valid entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes do not start with the entry header.
    #[error("not an lwcache entry (bad magic)")]
    BadMagic,
    /// The entry was written in a format this release does not read.
    #[error("entry format {found} is not one this release reads (1 or 2)")]
    UnsupportedFormat {
        /// The format found.
        found: u8,
    },
    /// The input ends in the middle of an item.
    #[error("entry truncated at byte {at}")]
    Truncated {
        /// Where the input ran out.
        at: usize,
    },
    /// A tag byte that the format does not define.
    #[error("unknown tag {tag} at byte {at}")]
    UnknownTag {
        /// The tag.
        tag: u8,
        /// Where.
        at: usize,
    },
    /// Text that is not UTF-8, an invalid id, a bad varint, or trailing bytes.
    #[error("invalid entry at byte {at}: {what}")]
    Invalid {
        /// Where.
        at: usize,
        /// What is wrong.
        what: String,
    },
    /// Lists and maps nest deeper than the decoder allows.
    #[error("entry nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// The bytes are a tombstone, not a value (see [`decode_slot`]).
    #[error("a tombstone of version {version}, not a value")]
    Tombstone {
        /// The invalidating write's version.
        version: u64,
    },
    /// The bytes are a negative entry, not a value (see [`decode_slot`]).
    #[error("a negative entry, not a value")]
    Absent,
}

/// Encodes an entry in format 1, without freshness.
pub fn encode(entry: &Entry) -> Vec<u8> {
    encode_as(entry, None, Format::V1)
}

/// Encodes an entry in `format`, with its freshness if given.
pub fn encode_as(entry: &Entry, freshness: Option<Freshness>, format: Format) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(MAGIC);
    out.push(format.byte());
    let mut flags = match entry.redaction {
        Redaction::Complete => 0,
        Redaction::Redacted => FLAG_REDACTED,
    };
    let stamps_in_header = format == Format::V2 && freshness.is_some();
    if stamps_in_header {
        flags |= FLAG_FRESH;
    }
    out.push(flags);
    out.extend_from_slice(&entry.version.to_be_bytes());
    if let (true, Some(f)) = (stamps_in_header, freshness) {
        out.extend_from_slice(&f.written_ms.to_be_bytes());
        out.extend_from_slice(&f.fresh_until_ms.to_be_bytes());
    }
    put_body(&mut out, &entry.value);
    if let (Format::V1, Some(f)) = (format, freshness) {
        out.push(T_FRESHNESS);
        out.extend_from_slice(&f.written_ms.to_be_bytes());
        out.extend_from_slice(&f.fresh_until_ms.to_be_bytes());
    }
    out
}

fn put_body(out: &mut Vec<u8>, value: &CachedValue) {
    match value {
        CachedValue::Snapshot(d) => {
            out.push(V_SNAPSHOT);
            put_map(out, &d.0);
        }
        CachedValue::Flags(flags) => {
            out.push(V_FLAGS);
            put_len(out, flags.len());
            for (name, v) in flags {
                put_str(out, name.as_str());
                put_value(out, v);
            }
        }
        CachedValue::Entity(d) => {
            out.push(V_ENTITY);
            put_map(out, &d.0);
        }
        CachedValue::Timeline(events) => {
            out.push(V_TIMELINE);
            put_len(out, events.len());
            for e in events {
                put_uvarint(out, e.seq);
                put_str(out, e.entity.as_str());
                put_str(out, e.kind.as_str());
                put_uvarint(out, zigzag(e.at_ms));
                put_map(out, &e.data.0);
            }
        }
    }
}

/// Encodes an entry with its freshness, in format 1 (a trailer).
pub fn encode_fresh(entry: &Entry, freshness: Freshness) -> Vec<u8> {
    encode_as(entry, Some(freshness), Format::V1)
}

/// Encodes a negative entry: the source has no `entity` (as it names it).
/// Its version is 0, so that every put of the key, a create's above all,
/// replaces it.
pub fn absent(entity: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 2 + entity.len());
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.push(0);
    out.extend_from_slice(&0u64.to_be_bytes());
    out.push(V_ABSENT);
    put_str(&mut out, entity);
    out
}

/// Encodes a tombstone: the key was invalidated by the write committed as
/// `version`.
pub fn tombstone(version: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 1);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.push(0);
    out.extend_from_slice(&version.to_be_bytes());
    out.push(V_TOMBSTONE);
    out
}

/// Whether stored bytes may be replaced by a put of `new`, by the rule every
/// cache store follows: never by an older version, and at the same version
/// only by a value (so a replayed tombstone cannot hide the value its own
/// write left). Bytes that are not an entry may always be replaced; `new`
/// that is not an entry never replaces anything.
pub fn replaces(current: Option<&[u8]>, new: &[u8]) -> bool {
    let Ok(new_version) = peek_version(new) else {
        return false;
    };
    let Some(Ok(current_version)) = current.map(peek_version) else {
        return true;
    };
    current_version < new_version || (current_version == new_version && !is_tombstone(new))
}

/// Whether bytes are a tombstone.
pub fn is_tombstone(bytes: &[u8]) -> bool {
    bytes.len() == HEADER_LEN + 1 && bytes[HEADER_LEN] == V_TOMBSTONE && check_header(bytes).is_ok()
}

/// Reads only the version from an entry's (or a tombstone's) header.
pub fn peek_version(bytes: &[u8]) -> Result<u64, DecodeError> {
    check_header(bytes)?;
    Ok(read_version(bytes))
}

fn check_header(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.len() < 2 || &bytes[..2] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::Truncated { at: bytes.len() });
    }
    let known = match Format::of(bytes[2]) {
        Some(Format::V1) => FLAG_REDACTED,
        Some(Format::V2) => FLAG_REDACTED | FLAG_FRESH,
        None => return Err(DecodeError::UnsupportedFormat { found: bytes[2] }),
    };
    if bytes[3] & !known != 0 {
        return Err(DecodeError::Invalid {
            at: 3,
            what: format!("unknown flags {:#04x}", bytes[3]),
        });
    }
    Ok(())
}

fn read_version(bytes: &[u8]) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&bytes[4..12]);
    u64::from_be_bytes(v)
}

/// Decodes an entry; a tombstone is [`DecodeError::Tombstone`].
pub fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
    match decode_slot(bytes)? {
        Slot::Value(entry) => Ok(entry),
        Slot::Tombstone { version } => Err(DecodeError::Tombstone { version }),
        Slot::Absent { .. } => Err(DecodeError::Absent),
    }
}

/// Decodes what a key holds: an entry, a tombstone or a negative entry.
pub fn decode_slot(bytes: &[u8]) -> Result<Slot, DecodeError> {
    decode_fresh(bytes).map(|(slot, _)| slot)
}

/// Decodes what a key holds, with the entry's freshness if it has one.
pub fn decode_fresh(bytes: &[u8]) -> Result<(Slot, Option<Freshness>), DecodeError> {
    check_header(bytes)?;
    let version = read_version(bytes);
    // With format 2's stamps the byte after the header is a stamp's, never
    // a tombstone's tag: tombstones carry no stamps.
    if bytes[3] & FLAG_FRESH == 0 && bytes.get(HEADER_LEN) == Some(&V_TOMBSTONE) {
        if bytes.len() != HEADER_LEN + 1 {
            return Err(DecodeError::Invalid {
                at: HEADER_LEN + 1,
                what: "trailing bytes after a tombstone".to_owned(),
            });
        }
        return Ok((Slot::Tombstone { version }, None));
    }
    let redaction = if bytes[3] & FLAG_REDACTED != 0 {
        Redaction::Redacted
    } else {
        Redaction::Complete
    };
    // Format 2 with its stamps in the header: read them, and the value
    // runs to the end.
    let header_stamps = if bytes[3] & FLAG_FRESH != 0 {
        let stamps = bytes
            .get(HEADER_LEN..HEADER_LEN + STAMPS_LEN)
            .ok_or(DecodeError::Truncated { at: bytes.len() })?;
        Some(stamps_of(stamps))
    } else {
        None
    };
    let mut r = Reader::new(bytes, HEADER_LEN + header_stamps.map_or(0, |_| STAMPS_LEN));
    let value = match r.byte()? {
        V_SNAPSHOT => CachedValue::Snapshot(Document(r.map(0)?)),
        V_ENTITY => CachedValue::Entity(Document(r.map(0)?)),
        V_FLAGS => {
            let n = r.len()?;
            let mut flags = Flags::new();
            for _ in 0..n {
                let at = r.pos;
                let name = FlagName::new(r.str()?).map_err(|e| r.invalid(at, e))?;
                let value = r.value(0)?;
                flags.insert(name, value);
            }
            CachedValue::Flags(flags)
        }
        V_ABSENT => {
            let entity = r.str()?.to_owned();
            if r.pos != bytes.len() {
                return Err(r.invalid(r.pos, "trailing bytes after a negative entry"));
            }
            return Ok((Slot::Absent { entity }, None));
        }
        V_TIMELINE => {
            let n = r.len()?;
            let mut events = Vec::with_capacity(r.room(n, MIN_EVENT_BYTES));
            for _ in 0..n {
                let seq = r.uvarint()?;
                let at = r.pos;
                let entity = EntityId::new(r.str()?).map_err(|e| r.invalid(at, e))?;
                let at = r.pos;
                let kind = EventKind::new(r.str()?).map_err(|e| r.invalid(at, e))?;
                let at_ms = unzigzag(r.uvarint()?);
                let data = Document(r.map(0)?);
                events.push(TimelineEvent {
                    seq,
                    entity,
                    kind,
                    at_ms,
                    data,
                });
            }
            CachedValue::Timeline(events)
        }
        tag => {
            return Err(DecodeError::UnknownTag { tag, at: r.pos - 1 });
        }
    };
    let trailer_allowed = Format::of(bytes[2]) == Some(Format::V1);
    let freshness = match &bytes[r.pos..] {
        [] => header_stamps,
        [T_FRESHNESS, rest @ ..] if trailer_allowed && rest.len() == TRAILER_LEN - 1 => {
            Some(stamps_of(rest))
        }
        _ => {
            return Err(DecodeError::Invalid {
                at: r.pos,
                what: "trailing bytes".into(),
            });
        }
    };
    Ok((
        Slot::Value(Entry {
            version,
            redaction,
            value,
        }),
        freshness,
    ))
}

/// Two big-endian i64 millisecond stamps: written, fresh until.
fn stamps_of(bytes: &[u8]) -> Freshness {
    let stamp = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        i64::from_be_bytes(b)
    };
    Freshness {
        written_ms: stamp(0),
        fresh_until_ms: stamp(8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lwcache_domain::Value;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            (-1e12f64..1e12).prop_map(Value::Float),
            ".{0,12}".prop_map(Value::Text),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::List),
                prop::collection::btree_map(".{0,6}", inner, 0..5).prop_map(Value::Map),
            ]
        })
    }

    fn doc() -> impl Strategy<Value = Document> {
        prop::collection::btree_map(".{0,8}", value(), 0..6).prop_map(Document)
    }

    fn cached() -> impl Strategy<Value = CachedValue> {
        let event = (
            any::<u64>(),
            "[a-z0-9]{1,8}",
            "[a-z_]{1,8}",
            any::<i64>(),
            doc(),
        )
            .prop_map(|(seq, e, k, at_ms, data)| TimelineEvent {
                seq,
                entity: EntityId::new(e).unwrap(),
                kind: EventKind::new(k).unwrap(),
                at_ms,
                data,
            });
        prop_oneof![
            doc().prop_map(CachedValue::Snapshot),
            doc().prop_map(CachedValue::Entity),
            prop::collection::btree_map("[a-z_]{1,8}", value(), 0..5).prop_map(|m| {
                CachedValue::Flags(
                    m.into_iter()
                        .map(|(k, v)| (FlagName::new(k).unwrap(), v))
                        .collect(),
                )
            }),
            prop::collection::vec(event, 0..4).prop_map(CachedValue::Timeline),
        ]
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(value in cached(), version in any::<u64>(), redacted in any::<bool>()) {
            let entry = Entry {
                version,
                redaction: if redacted { Redaction::Redacted } else { Redaction::Complete },
                value,
            };
            let bytes = encode(&entry);
            prop_assert_eq!(peek_version(&bytes).unwrap(), version);
            prop_assert_eq!(decode(&bytes).unwrap(), entry);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn corrupted_entries_never_panic(value in cached(), at in any::<prop::sample::Index>(), b in any::<u8>()) {
            let mut bytes = encode(&Entry { version: 1, redaction: Redaction::Complete, value });
            let i = at.index(bytes.len());
            bytes[i] = b;
            let _ = decode(&bytes);
            bytes.truncate(i);
            prop_assert!(decode(&bytes).is_err());
        }
    }

    proptest! {
        #[test]
        fn tombstones_round_trip_and_order_with_entries(version in any::<u64>(), value in cached()) {
            let t = tombstone(version);
            prop_assert_eq!(peek_version(&t).unwrap(), version);
            prop_assert_eq!(decode_slot(&t).unwrap(), Slot::Tombstone { version });
            prop_assert_eq!(decode(&t), Err(DecodeError::Tombstone { version }));
            // Stores compare the header's big-endian version bytes as they
            // are: their order is the versions' order.
            let e = encode(&Entry { version: version / 2, redaction: Redaction::Complete, value });
            prop_assert_eq!(e[4..12].cmp(&t[4..12]), (version / 2).cmp(&version));
        }
    }

    /// A document whose top-level map holds `levels` more, one in the other
    /// (lists and maps in turn): with 127, one more level in all than
    /// serde_json parses.
    fn nested(levels: usize) -> CachedValue {
        let mut v = Value::Int(1);
        for n in 0..levels {
            v = if n % 2 == 0 {
                Value::Map([("k".to_owned(), v)].into())
            } else {
                Value::List(vec![v])
            };
        }
        CachedValue::Entity(Document([("top".to_owned(), v)].into()))
    }

    #[test]
    fn every_depth_json_parses_is_cached_and_deeper_is_refused() {
        let entry = |value| Entry {
            version: 3,
            redaction: Redaction::Complete,
            value,
        };
        let deepest = entry(nested(127));
        assert_eq!(decode(&encode(&deepest)).unwrap(), deepest);
        assert_eq!(
            decode(&encode(&entry(nested(200)))),
            Err(DecodeError::TooDeep)
        );
    }

    #[test]
    fn puts_replace_by_version_and_tombstones_never_at_their_own() {
        let value = |v| {
            encode(&Entry {
                version: v,
                redaction: Redaction::Complete,
                value: CachedValue::Entity(Document::new()),
            })
        };
        assert!(replaces(None, &value(1)));
        assert!(replaces(Some(b"not an entry"), &tombstone(1)));
        assert!(!replaces(None, b"not an entry"));
        assert!(replaces(Some(&value(1)), &value(2)));
        assert!(!replaces(Some(&value(2)), &value(1)));
        assert!(replaces(Some(&value(2)), &value(2)), "a repeated put lands");
        assert!(
            replaces(Some(&tombstone(2)), &value(2)),
            "the write's value over its replayed tombstone"
        );
        assert!(
            !replaces(Some(&value(2)), &tombstone(2)),
            "a replayed tombstone keeps its write's value"
        );
        assert!(!replaces(Some(&tombstone(2)), &tombstone(2)));
        assert!(replaces(Some(&value(2)), &tombstone(3)));
        assert!(!replaces(Some(&tombstone(3)), &value(2)));
    }

    proptest! {
        #[test]
        fn freshness_round_trips_and_keeps_the_version_rule(
            value in cached(),
            version in any::<u64>(),
            written_ms in any::<i64>(),
            fresh_until_ms in any::<i64>(),
        ) {
            let entry = Entry { version, redaction: Redaction::Complete, value };
            let f = Freshness { written_ms, fresh_until_ms };
            let bytes = encode_fresh(&entry, f);
            prop_assert_eq!(decode_fresh(&bytes).unwrap(), (Slot::Value(entry.clone()), Some(f)));
            prop_assert_eq!(decode_fresh(&encode(&entry)).unwrap(), (Slot::Value(entry), None));
            prop_assert_eq!(peek_version(&bytes).unwrap(), version);
            prop_assert!(!is_tombstone(&bytes));
        }
    }

    #[test]
    fn negative_entries_are_replaced_by_any_put() {
        let a = absent("character c9");
        assert_eq!(
            decode_slot(&a).unwrap(),
            Slot::Absent {
                entity: "character c9".into()
            }
        );
        assert_eq!(decode(&a), Err(DecodeError::Absent));
        assert!(!is_tombstone(&a));
        let value = encode(&Entry {
            version: 1,
            redaction: Redaction::Complete,
            value: CachedValue::Entity(Document::new()),
        });
        assert!(replaces(Some(&a), &value), "a create's put");
        assert!(replaces(Some(&a), &tombstone(1)), "a create's invalidation");
        assert!(!replaces(Some(&value), &a), "never over a value");
        assert!(!replaces(Some(&tombstone(1)), &a), "never over a tombstone");
        let mut long = a.clone();
        long.push(0);
        assert!(decode_slot(&long).is_err());
    }

    #[test]
    fn a_tombstone_with_trailing_bytes_is_invalid() {
        let mut t = tombstone(4);
        t.push(0);
        assert!(matches!(decode_slot(&t), Err(DecodeError::Invalid { .. })));
    }

    proptest! {
        #[test]
        fn both_formats_decode_to_the_same_entry_and_order_alike(
            value in cached(),
            version in any::<u64>(),
            other in any::<u64>(),
            redacted in any::<bool>(),
            written in any::<i64>(),
            until in any::<i64>(),
        ) {
            let entry = Entry {
                version,
                redaction: if redacted { Redaction::Redacted } else { Redaction::Complete },
                value,
            };
            let fresh = Freshness { written_ms: written, fresh_until_ms: until };
            for freshness in [None, Some(fresh)] {
                let v1 = encode_as(&entry, freshness, Format::V1);
                let v2 = encode_as(&entry, freshness, Format::V2);
                prop_assert_eq!(v2[2], 2);
                let (slot1, f1) = decode_fresh(&v1).unwrap();
                let (slot2, f2) = decode_fresh(&v2).unwrap();
                prop_assert_eq!(&slot1, &Slot::Value(entry.clone()));
                prop_assert_eq!(slot2, slot1);
                prop_assert_eq!(f1, freshness);
                prop_assert_eq!(f2, freshness);
                // The version rule reads the two formats alike, both ways.
                let t = tombstone(other);
                for (a, b) in [(&v1, &v2), (&v2, &v1)] {
                    prop_assert_eq!(replaces(Some(a), b), replaces(Some(a), &v1));
                    prop_assert_eq!(replaces(Some(&t), b), replaces(Some(&t), &v1));
                    prop_assert_eq!(replaces(Some(b), &t), replaces(Some(&v1), &t));
                }
            }
        }
    }

    #[test]
    fn a_format_2_entry_takes_no_trailer_and_a_format_3_one_is_unknown() {
        let entry = Entry {
            version: 3,
            redaction: Redaction::Complete,
            value: CachedValue::Flags(Flags::new()),
        };
        let stamps = Freshness {
            written_ms: 1,
            fresh_until_ms: 2,
        };
        let mut v2 = encode_as(&entry, Some(stamps), Format::V2);
        // A format-1 trailer after a format-2 value is garbage.
        let mut trailer = vec![T_FRESHNESS];
        trailer.extend_from_slice(&[0; TRAILER_LEN - 1]);
        let mut with_trailer = encode_as(&entry, None, Format::V2);
        with_trailer.extend_from_slice(&trailer);
        assert!(matches!(
            decode_fresh(&with_trailer),
            Err(DecodeError::Invalid { .. })
        ));
        // The header's stamps cut short.
        assert!(matches!(
            decode_fresh(&v2[..HEADER_LEN + 4]),
            Err(DecodeError::Truncated { .. })
        ));
        v2[2] = 3;
        assert_eq!(
            decode_fresh(&v2),
            Err(DecodeError::UnsupportedFormat { found: 3 })
        );
        // Flag bit 1 means nothing in format 1.
        let mut v1 = encode(&entry);
        v1[3] = FLAG_FRESH;
        assert!(matches!(
            decode_fresh(&v1),
            Err(DecodeError::Invalid { at: 3, .. })
        ));
    }

    #[test]
    fn other_formats_are_recognised() {
        let mut bytes = encode(&Entry {
            version: 3,
            redaction: Redaction::Complete,
            value: CachedValue::Entity(Document::new()),
        });
        bytes[2] = 0;
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::UnsupportedFormat { found: 0 })
        );
        assert_eq!(decode(b"{\"json\":1}"), Err(DecodeError::BadMagic));
    }
}
