//! The keyspace.
//!
//! Every key of a world starts with `lw:world:{<world_id>}:`. The braces make
//! the world id the key's Redis Cluster hash tag, so all keys of one world
//! live in one slot and a server-side script may touch any of them.
//!
//! | key | what it holds |
//! | --- | --- |
//! | `lw:world:{w}:state` | the world's snapshot document |
//! | `lw:world:{w}:flags` | the world's flags |
//! | `lw:world:{w}:ver` | the world's version, as last seen by the cache |
//! | `lw:world:{w}:timeline:<entity_id>:recent` | the newest events of one entity |
//! | `lw:world:{w}:character:<id>:state` | one character's state |
//! | `lw:world:{w}:location:<id>:state` | one location's state |
//! | `lw:world:{w}:object:<id>:state` | one object's state |

use std::fmt;

use crate::id::{
    CharacterId, EntityId, EntityKind, EntityRef, IdError, LocationId, ObjectId, WorldId,
};

const PREFIX: &str = "lw:world:";

/// The kind of a key, without its ids: what metrics and policies speak of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyKind {
    /// `lw:world:{w}:state`
    State,
    /// `lw:world:{w}:flags`
    Flags,
    /// `lw:world:{w}:ver`
    Version,
    /// `lw:world:{w}:timeline:<entity_id>:recent`
    Timeline,
    /// `lw:world:{w}:character:<id>:state`
    Character,
    /// `lw:world:{w}:location:<id>:state`
    Location,
    /// `lw:world:{w}:object:<id>:state`
    Object,
}

impl KeyKind {
    /// Every kind, in a fixed order.
    pub const ALL: [KeyKind; 7] = [
        KeyKind::State,
        KeyKind::Flags,
        KeyKind::Version,
        KeyKind::Timeline,
        KeyKind::Character,
        KeyKind::Location,
        KeyKind::Object,
    ];

    /// The label used in metrics and logs: `state`, `flags`, `ver`,
    /// `timeline`, `character`, `location`, `object`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::State => "state",
            KeyKind::Flags => "flags",
            KeyKind::Version => "ver",
            KeyKind::Timeline => "timeline",
            KeyKind::Character => "character",
            KeyKind::Location => "location",
            KeyKind::Object => "object",
        }
    }

    /// The key kind that holds the state of entities of `kind`.
    pub fn of_entity(kind: EntityKind) -> KeyKind {
        match kind {
            EntityKind::Character => KeyKind::Character,
            EntityKind::Location => KeyKind::Location,
            EntityKind::Object => KeyKind::Object,
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a key points at inside its world.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyTarget {
    /// The world snapshot.
    State,
    /// The world flags.
    Flags,
    /// The world version.
    Version,
    /// The recent timeline of one entity.
    Timeline(EntityId),
    /// The state of one character, location or object.
    Entity(EntityRef),
}

/// One cache key: a world and a target inside it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey {
    world: WorldId,
    target: KeyTarget,
}

impl CacheKey {
    /// Builds a key.
    pub fn new(world: WorldId, target: KeyTarget) -> Self {
        Self { world, target }
    }

    /// `lw:world:{w}:state`
    pub fn state(world: &WorldId) -> Self {
        Self::new(world.clone(), KeyTarget::State)
    }

    /// `lw:world:{w}:flags`
    pub fn flags(world: &WorldId) -> Self {
        Self::new(world.clone(), KeyTarget::Flags)
    }

    /// `lw:world:{w}:ver`
    pub fn version(world: &WorldId) -> Self {
        Self::new(world.clone(), KeyTarget::Version)
    }

    /// `lw:world:{w}:timeline:<entity>:recent`
    pub fn timeline(world: &WorldId, entity: &EntityId) -> Self {
        Self::new(world.clone(), KeyTarget::Timeline(entity.clone()))
    }

    /// `lw:world:{w}:<kind>:<id>:state`
    pub fn entity(world: &WorldId, entity: &EntityRef) -> Self {
        Self::new(world.clone(), KeyTarget::Entity(entity.clone()))
    }

    /// The world the key belongs to.
    pub fn world(&self) -> &WorldId {
        &self.world
    }

    /// What the key points at.
    pub fn target(&self) -> &KeyTarget {
        &self.target
    }

    /// The key's kind.
    pub fn kind(&self) -> KeyKind {
        match &self.target {
            KeyTarget::State => KeyKind::State,
            KeyTarget::Flags => KeyKind::Flags,
            KeyTarget::Version => KeyKind::Version,
            KeyTarget::Timeline(_) => KeyKind::Timeline,
            KeyTarget::Entity(e) => KeyKind::of_entity(e.kind()),
        }
    }

    /// The Redis Cluster hash tag of the key: `{<world_id>}`.
    pub fn hash_tag(&self) -> String {
        hash_tag(&self.world)
    }

    /// Parses a key that [`CacheKey`]'s `Display` produced.
    pub fn parse(input: &str) -> Result<Self, KeyParseError> {
        let bad = |reason: &'static str| KeyParseError::Malformed {
            input: input.chars().take(200).collect(),
            reason,
        };
        let rest = input
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad("does not start with \"lw:world:\""))?;
        let rest = rest
            .strip_prefix('{')
            .ok_or_else(|| bad("the world id is not inside braces"))?;
        let close = rest
            .find('}')
            .ok_or_else(|| bad("the world id's brace is not closed"))?;
        let world = WorldId::new(&rest[..close]).map_err(KeyParseError::Id)?;
        let rest = rest[close + 1..]
            .strip_prefix(':')
            .ok_or_else(|| bad("no ':' after the world id"))?;
        let parts: Vec<&str> = rest.split(':').collect();
        let target = match parts.as_slice() {
            ["state"] => KeyTarget::State,
            ["flags"] => KeyTarget::Flags,
            ["ver"] => KeyTarget::Version,
            ["timeline", id, "recent"] => {
                KeyTarget::Timeline(EntityId::new(*id).map_err(KeyParseError::Id)?)
            }
            [kind, id, "state"] => {
                let kind = match *kind {
                    "character" => EntityKind::Character,
                    "location" => EntityKind::Location,
                    "object" => EntityKind::Object,
                    _ => return Err(bad("unknown entity kind")),
                };
                KeyTarget::Entity(EntityRef::parse(kind, id).map_err(KeyParseError::Id)?)
            }
            _ => return Err(bad("unknown key shape")),
        };
        Ok(Self { world, target })
    }
}

/// The hash tag shared by every key of `world`: `{<world_id>}`.
pub fn hash_tag(world: &WorldId) -> String {
    format!("{{{world}}}")
}

/// The prefix shared by every key of `world`: `lw:world:{<world_id>}:`.
pub fn world_prefix(world: &WorldId) -> String {
    format!("{PREFIX}{{{world}}}:")
}

impl CacheKey {
    /// The key's text in pieces: the one spelling that [`fmt::Display`] and
    /// [`CacheKey::render`] both write.
    fn pieces(&self) -> [&str; 6] {
        let world = self.world.as_str();
        let [a, b, c] = match &self.target {
            KeyTarget::State => ["state", "", ""],
            KeyTarget::Flags => ["flags", "", ""],
            KeyTarget::Version => ["ver", "", ""],
            KeyTarget::Timeline(e) => ["timeline:", e.as_str(), ":recent"],
            KeyTarget::Entity(e) => [e.kind().as_str(), ":", e.id_str()],
        };
        let tail = if matches!(self.target, KeyTarget::Entity(_)) {
            ":state"
        } else {
            ""
        };
        [world, "}:", a, b, c, tail]
    }

    /// The key's text in pieces that, written one after the other, spell
    /// it: for a writer of bytes (a command's buffer) with no `String`
    /// between.
    pub fn spelling(&self) -> [&str; 8] {
        let [w, x, a, b, c, tail] = self.pieces();
        [PREFIX, "{", w, x, a, b, c, tail]
    }

    /// The key's text, as [`ToString::to_string`] gives it, built in one
    /// allocation of the exact size: every cache call names its key, and
    /// the formatting machinery costs more than the copy.
    pub fn render(&self) -> String {
        let pieces = self.pieces();
        let len = PREFIX.len() + 1 + pieces.iter().map(|p| p.len()).sum::<usize>();
        let mut out = String::with_capacity(len);
        out.push_str(PREFIX);
        out.push('{');
        for p in pieces {
            out.push_str(p);
        }
        out
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        f.write_str("{")?;
        self.pieces().iter().try_for_each(|p| f.write_str(p))
    }
}

/// Why a string is not a key of the keyspace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyParseError {
    /// The string does not have the shape of any key.
    #[error("{input:?} is not an lwcache key: {reason}")]
    Malformed {
        /// The input, cut to 200 characters.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An id inside the key is invalid.
    #[error("invalid id inside a key: {0}")]
    Id(IdError),
}

/// Convenience constructors used by tests and adapters.
impl CacheKey {
    /// The state key of a character.
    pub fn character(world: &WorldId, id: &CharacterId) -> Self {
        Self::entity(world, &EntityRef::Character(id.clone()))
    }
    /// The state key of a location.
    pub fn location(world: &WorldId, id: &LocationId) -> Self {
        Self::entity(world, &EntityRef::Location(id.clone()))
    }
    /// The state key of an object.
    pub fn object(world: &WorldId, id: &ObjectId) -> Self {
        Self::entity(world, &EntityRef::Object(id.clone()))
    }
}

#[cfg(test)]
pub(crate) mod strategies {
    //! proptest strategies for ids and keys, shared by the domain's tests.
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn id_string() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._-]{1,24}"
    }

    pub(crate) fn world_id() -> impl Strategy<Value = WorldId> {
        id_string().prop_map(|s| WorldId::new(s).unwrap())
    }

    pub(crate) fn entity_ref() -> impl Strategy<Value = EntityRef> {
        (0usize..3, id_string())
            .prop_map(|(k, s)| EntityRef::parse(EntityKind::ALL[k], &s).unwrap())
    }

    pub(crate) fn target() -> impl Strategy<Value = KeyTarget> {
        prop_oneof![
            Just(KeyTarget::State),
            Just(KeyTarget::Flags),
            Just(KeyTarget::Version),
            id_string().prop_map(|s| KeyTarget::Timeline(EntityId::new(s).unwrap())),
            entity_ref().prop_map(KeyTarget::Entity),
        ]
    }

    pub(crate) fn key() -> impl Strategy<Value = CacheKey> {
        (world_id(), target()).prop_map(|(w, t)| CacheKey::new(w, t))
    }
}

#[cfg(test)]
mod tests {
    use super::strategies::*;
    use super::*;
    use proptest::prelude::*;

    fn w(s: &str) -> WorldId {
        WorldId::new(s).unwrap()
    }

    #[test]
    fn formats_exactly_as_the_spec_writes() {
        let world = w("w1");
        let cases = [
            (CacheKey::state(&world), "lw:world:{w1}:state"),
            (CacheKey::flags(&world), "lw:world:{w1}:flags"),
            (CacheKey::version(&world), "lw:world:{w1}:ver"),
            (
                CacheKey::timeline(&world, &EntityId::new("e7").unwrap()),
                "lw:world:{w1}:timeline:e7:recent",
            ),
            (
                CacheKey::character(&world, &CharacterId::new("c1").unwrap()),
                "lw:world:{w1}:character:c1:state",
            ),
            (
                CacheKey::location(&world, &LocationId::new("l1").unwrap()),
                "lw:world:{w1}:location:l1:state",
            ),
            (
                CacheKey::object(&world, &ObjectId::new("o1").unwrap()),
                "lw:world:{w1}:object:o1:state",
            ),
        ];
        for (key, text) in cases {
            assert_eq!(key.to_string(), text);
            assert_eq!(CacheKey::parse(text).unwrap(), key);
        }
    }

    #[test]
    fn parse_names_the_problem() {
        let err = CacheKey::parse("lw:world:{w1}:weather").unwrap_err();
        assert!(err.to_string().contains("unknown key shape"), "{err}");
        let err = CacheKey::parse("lw:world:{w:1}:state").unwrap_err();
        assert!(matches!(err, KeyParseError::Id(_)), "{err}");
    }

    proptest! {
        #[test]
        fn parse_inverts_format(key in key()) {
            prop_assert_eq!(CacheKey::parse(&key.to_string()).unwrap(), key);
        }

        #[test]
        fn render_spells_what_display_writes(key in key()) {
            let rendered = key.render();
            prop_assert_eq!(&rendered, &key.to_string());
            prop_assert_eq!(key.spelling().concat(), rendered);
        }

        #[test]
        fn distinct_keys_format_distinctly(a in key(), b in key()) {
            prop_assume!(a != b);
            prop_assert_ne!(a.to_string(), b.to_string());
        }

        #[test]
        fn keys_of_one_world_share_the_hash_tag(world in world_id(), t1 in target(), t2 in target()) {
            let a = CacheKey::new(world.clone(), t1).to_string();
            let b = CacheKey::new(world.clone(), t2).to_string();
            // Redis hashes the text between the first '{' and the next '}'.
            let tag = |s: &str| {
                let open = s.find('{').unwrap();
                let close = open + s[open..].find('}').unwrap();
                s[open + 1..close].to_owned()
            };
            prop_assert_eq!(tag(&a), world.as_str());
            prop_assert_eq!(tag(&b), world.as_str());
            prop_assert!(a.starts_with(&world_prefix(&world)));
        }

        #[test]
        fn parse_accepts_only_what_format_produces(s in "(lw:world:)?[{}]?[a-z0-9:{}._-]{0,40}") {
            if let Ok(key) = CacheKey::parse(&s) {
                prop_assert_eq!(key.to_string(), s);
            }
        }

        #[test]
        fn parse_accepts_only_what_format_produces_on_near_misses(key in key(), cut in 0usize..64, insert in "[:{}a ]") {
            // Mutate a valid key by inserting one structural character.
            let mut s = key.to_string();
            let at = cut.min(s.len());
            s.insert_str(at, &insert);
            if let Ok(parsed) = CacheKey::parse(&s) {
                prop_assert_eq!(parsed.to_string(), s);
            }
        }
    }
}
