//! Validated identifiers.
//!
//! Every id that reaches a cache key passes through [`validate`], so an id can
//! never forge another key: the characters that structure a key (`:`, `{`,
//! `}`) and anything invisible are outside the safe set.

use std::fmt;

/// The longest id, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// What an id names; used in errors so that they say which input was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// A world.
    World,
    /// A character.
    Character,
    /// A location.
    Location,
    /// An object.
    Object,
    /// Any entity of a world (the subject of a timeline).
    Entity,
    /// A world flag's name.
    Flag,
    /// A timeline event's kind.
    EventKind,
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdKind::World => "world id",
            IdKind::Character => "character id",
            IdKind::Location => "location id",
            IdKind::Object => "object id",
            IdKind::Entity => "entity id",
            IdKind::Flag => "flag name",
            IdKind::EventKind => "event kind",
        })
    }
}

/// Why an id was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id was the empty string.
    #[error("{kind} is empty")]
    Empty {
        /// What the id was meant to name.
        kind: IdKind,
    },
    /// The id is longer than [`MAX_ID_LEN`] bytes.
    #[error("{kind} is {len} bytes long, the limit is {MAX_ID_LEN}")]
    TooLong {
        /// What the id was meant to name.
        kind: IdKind,
        /// Its length in bytes.
        len: usize,
    },
    /// The id holds a character outside the safe set.
    #[error(
        "{kind} {input:?} has the character {ch:?} at byte {at}; ids may hold only ASCII letters, digits, '-', '_' and '.'"
    )]
    InvalidChar {
        /// What the id was meant to name.
        kind: IdKind,
        /// The input, cut to [`MAX_ID_LEN`] bytes at a character boundary.
        input: String,
        /// The first offending character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
}

/// Whether `c` belongs to the safe set: ASCII letters, digits, `-`, `_` and `.`.
pub fn is_safe_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Checks `input` against the id rules.
pub fn validate(kind: IdKind, input: &str) -> Result<(), IdError> {
    if input.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if let Some((at, ch)) = input.char_indices().find(|&(_, c)| !is_safe_char(c)) {
        return Err(IdError::InvalidChar {
            kind,
            input: truncate(input, MAX_ID_LEN).to_owned(),
            ch,
            at,
        });
    }
    if input.len() > MAX_ID_LEN {
        return Err(IdError::TooLong {
            kind,
            len: input.len(),
        });
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $kind:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// What this id names.
            pub const KIND: IdKind = $kind;

            /// Validates `input` and wraps it.
            pub fn new(input: impl Into<String>) -> Result<Self, IdError> {
                let input = input.into();
                validate(Self::KIND, &input)?;
                Ok(Self(input))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }
    };
}

id_type!(
    /// The id of a world; every key of a world carries it as its hash tag.
    WorldId,
    IdKind::World
);
id_type!(
    /// The id of a character in a world.
    CharacterId,
    IdKind::Character
);
id_type!(
    /// The id of a location in a world.
    LocationId,
    IdKind::Location
);
id_type!(
    /// The id of an object in a world.
    ObjectId,
    IdKind::Object
);
id_type!(
    /// The id of any entity of a world, as a timeline names its subject.
    ///
    /// Characters, locations and objects share one namespace of entity ids
    /// inside a world, because the timeline key does not say the kind.
    EntityId,
    IdKind::Entity
);
id_type!(
    /// The name of a world flag.
    FlagName,
    IdKind::Flag
);

/// The three kinds of entity a world holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityKind {
    /// A character: a player's avatar or a non-player character.
    Character,
    /// A location.
    Location,
    /// An object.
    Object,
}

impl EntityKind {
    /// Every kind, in a fixed order.
    pub const ALL: [EntityKind; 3] = [
        EntityKind::Character,
        EntityKind::Location,
        EntityKind::Object,
    ];

    /// The lower-case name used in keys, routes and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Character => "character",
            EntityKind::Location => "location",
            EntityKind::Object => "object",
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reference to one entity of a world: its kind and its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityRef {
    /// A character.
    Character(CharacterId),
    /// A location.
    Location(LocationId),
    /// An object.
    Object(ObjectId),
}

impl EntityRef {
    /// Builds a reference from a kind and an already validated entity id.
    pub fn new(kind: EntityKind, id: EntityId) -> Self {
        // The id types share one validation, so re-wrapping cannot fail.
        match kind {
            EntityKind::Character => EntityRef::Character(CharacterId(id.0)),
            EntityKind::Location => EntityRef::Location(LocationId(id.0)),
            EntityKind::Object => EntityRef::Object(ObjectId(id.0)),
        }
    }

    /// Validates `id` and builds a reference of the given kind.
    pub fn parse(kind: EntityKind, id: &str) -> Result<Self, IdError> {
        let kind_id = match kind {
            EntityKind::Character => IdKind::Character,
            EntityKind::Location => IdKind::Location,
            EntityKind::Object => IdKind::Object,
        };
        validate(kind_id, id)?;
        Ok(Self::new(kind, EntityId(id.to_owned())))
    }

    /// The entity's kind.
    pub fn kind(&self) -> EntityKind {
        match self {
            EntityRef::Character(_) => EntityKind::Character,
            EntityRef::Location(_) => EntityKind::Location,
            EntityRef::Object(_) => EntityKind::Object,
        }
    }

    /// The id as a string slice.
    pub fn id_str(&self) -> &str {
        match self {
            EntityRef::Character(id) => id.as_str(),
            EntityRef::Location(id) => id.as_str(),
            EntityRef::Object(id) => id.as_str(),
        }
    }

    /// The entity id under which its timeline is kept.
    pub fn entity_id(&self) -> EntityId {
        EntityId(self.id_str().to_owned())
    }
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.id_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_key_structure_characters() {
        for bad in ["a:b", "{a", "a}", "a b", "a\tb", "a\nb", "é", "a\u{0}"] {
            assert!(WorldId::new(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn errors_name_the_input_and_the_kind() {
        let err = CharacterId::new("bad:id").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("character id"), "{text}");
        assert!(text.contains("bad:id"), "{text}");
        assert!(text.contains("':'"), "{text}");
        assert_eq!(
            WorldId::new("").unwrap_err(),
            IdError::Empty {
                kind: IdKind::World
            }
        );
        assert_eq!(
            ObjectId::new("x".repeat(129)).unwrap_err(),
            IdError::TooLong {
                kind: IdKind::Object,
                len: 129
            }
        );
        assert!(ObjectId::new("x".repeat(128)).is_ok());
    }

    proptest! {
        #[test]
        fn safe_ids_round_trip(s in "[A-Za-z0-9._-]{1,128}") {
            let id = WorldId::new(s.clone()).unwrap();
            prop_assert_eq!(id.as_str(), s.as_str());
        }

        #[test]
        fn accepted_ids_hold_only_safe_chars(s in any::<String>()) {
            match EntityId::new(s.clone()) {
                Ok(_) => {
                    prop_assert!(!s.is_empty() && s.len() <= MAX_ID_LEN);
                    prop_assert!(s.chars().all(is_safe_char));
                }
                Err(IdError::Empty { .. }) => prop_assert!(s.is_empty()),
                Err(IdError::TooLong { len, .. }) => prop_assert!(len > MAX_ID_LEN),
                Err(IdError::InvalidChar { ch, at, .. }) => {
                    prop_assert!(!is_safe_char(ch));
                    prop_assert_eq!(s[at..].chars().next(), Some(ch));
                }
            }
        }

        #[test]
        fn entity_refs_keep_kind_and_id(s in "[A-Za-z0-9._-]{1,40}", k in 0usize..3) {
            let kind = EntityKind::ALL[k];
            let r = EntityRef::parse(kind, &s).unwrap();
            prop_assert_eq!(r.kind(), kind);
            prop_assert_eq!(r.id_str(), s.as_str());
            let entity = r.entity_id();
            prop_assert_eq!(entity.as_str(), s.as_str());
        }
    }
}
