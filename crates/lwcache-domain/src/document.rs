//! Documents: the values a world is made of, and what one cache entry holds.
//!
//! The domain owns its value type so that it needs no serialization library;
//! the codec that turns a [`CachedValue`] into bytes lives in `lwcache-core`.

use std::collections::BTreeMap;

use crate::id::{EntityId, FlagName, IdError, IdKind, validate};

/// One value inside a document.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// A finite floating-point number.
    Float(f64),
    /// A UTF-8 string.
    Text(String),
    /// An ordered list.
    List(Vec<Value>),
    /// A map with string keys, kept sorted.
    Map(BTreeMap<String, Value>),
}

/// A document: named fields, kept sorted by name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Document(pub BTreeMap<String, Value>);

impl Document {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a field, builder style.
    pub fn with(mut self, name: impl Into<String>, value: Value) -> Self {
        self.0.insert(name.into(), value);
        self
    }

    /// The field named `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// The fields.
    pub fn fields(&self) -> &BTreeMap<String, Value> {
        &self.0
    }

    /// Checks the document against `limits`.
    pub fn check(&self, limits: &DocumentLimits) -> Result<(), DocumentError> {
        let mut size = 0usize;
        for (k, v) in &self.0 {
            size += k.len();
            measure(v, 1, limits, &mut size)?;
        }
        if size > limits.max_bytes {
            return Err(DocumentError::TooLarge {
                size,
                limit: limits.max_bytes,
            });
        }
        Ok(())
    }
}

/// The world flags: a value for each flag name.
pub type Flags = BTreeMap<FlagName, Value>;

fn measure(
    v: &Value,
    depth: usize,
    limits: &DocumentLimits,
    size: &mut usize,
) -> Result<(), DocumentError> {
    if depth > limits.max_depth {
        return Err(DocumentError::TooDeep {
            limit: limits.max_depth,
        });
    }
    match v {
        Value::Null | Value::Bool(_) => *size += 1,
        Value::Int(_) => *size += 8,
        Value::Float(f) => {
            if !f.is_finite() {
                return Err(DocumentError::NonFinite);
            }
            *size += 8;
        }
        Value::Text(s) => *size += s.len(),
        Value::List(items) => {
            for item in items {
                measure(item, depth + 1, limits, size)?;
            }
        }
        Value::Map(map) => {
            for (k, item) in map {
                *size += k.len();
                measure(item, depth + 1, limits, size)?;
            }
        }
    }
    // Stop measuring early on huge inputs: the verdict is already known.
    if *size > limits.max_bytes.saturating_mul(2) {
        return Err(DocumentError::TooLarge {
            size: *size,
            limit: limits.max_bytes,
        });
    }
    Ok(())
}

/// Bounds on the documents the cache accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentLimits {
    /// The largest document, measured as the bytes of its names and texts
    /// plus eight for every number and one for every other scalar.
    pub max_bytes: usize,
    /// The deepest nesting of lists and maps.
    pub max_depth: usize,
}

impl Default for DocumentLimits {
    fn default() -> Self {
        Self {
            max_bytes: 256 * 1024,
            max_depth: 32,
        }
    }
}

/// Why a document was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// The document is larger than the limit.
    #[error("the document measures {size} bytes, the limit is {limit}")]
    TooLarge {
        /// Its measured size (may stop counting past twice the limit).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The document nests deeper than the limit.
    #[error("the document nests deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A float is NaN or infinite.
    #[error("the document holds a number that is NaN or infinite")]
    NonFinite,
}

/// A validated event kind, such as `player_moved`: the id rules apply.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventKind(String);

impl EventKind {
    /// Validates and wraps an event kind.
    pub fn new(input: impl Into<String>) -> Result<Self, IdError> {
        let input = input.into();
        validate(IdKind::EventKind, &input)?;
        Ok(Self(input))
    }

    /// The kind as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One event of an entity's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEvent {
    /// The world version at which the event was committed: unique inside a
    /// world, and the order of the timeline (newest has the largest).
    pub seq: u64,
    /// The entity the event is about.
    pub entity: EntityId,
    /// What kind of event it is.
    pub kind: EventKind,
    /// When it happened, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Its details.
    pub data: Document,
}

/// A value together with the world version it was read at or written as.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The world version.
    pub version: u64,
    /// The value.
    pub value: T,
}

impl<T> Versioned<T> {
    /// Pairs a value with a version.
    pub fn new(version: u64, value: T) -> Self {
        Self { version, value }
    }

    /// Maps the value, keeping the version.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Versioned<U> {
        Versioned {
            version: self.version,
            value: f(self.value),
        }
    }
}

/// What one cache key holds.
#[derive(Debug, Clone, PartialEq)]
pub enum CachedValue {
    /// The world snapshot (`lw:world:{w}:state`).
    Snapshot(Document),
    /// The world flags (`lw:world:{w}:flags`).
    Flags(Flags),
    /// The state of one entity (`...:<kind>:<id>:state`).
    Entity(Document),
    /// The newest events of one entity, newest first (`...:timeline:<id>:recent`).
    Timeline(Vec<TimelineEvent>),
}

impl CachedValue {
    /// The lower-case name of the variant, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            CachedValue::Snapshot(_) => "snapshot",
            CachedValue::Flags(_) => "flags",
            CachedValue::Entity(_) => "entity",
            CachedValue::Timeline(_) => "timeline",
        }
    }
}

/// The recent timelines of a world's entities, newest first, by entity.
pub type RecentTimelines = BTreeMap<EntityId, Vec<TimelineEvent>>;
