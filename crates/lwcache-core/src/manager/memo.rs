//! The decode memo: each key's last entry read from the store, kept as its
//! bytes beside their decoded value. A read whose bytes equal the memo's is
//! answered with the memo's shared value instead of decoding them again.
//!
//! It changes no answer. The bytes are the whole entry (version, stamps,
//! redaction flag and value), so equal bytes decode to an equal value; the
//! store is still asked on every read, so unlike the near cache it needs no
//! invalidation feed and answers nothing the store did not just return. It
//! holds only what the store holds (redacted values), in this process, within
//! a byte budget (`ManagerConfig::decode_memo_bytes`; 0 turns it off).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, Mutex};

use lwcache_domain::{CacheKey, CachedValue, Redaction};

use super::{Inner, Read, lock};
use crate::codec::{self, Freshness, Slot};
use crate::error::Error;
use crate::near::value_bytes;
use crate::ports::{CacheStore, WorldRepository};

/// Shards of the memo: reads of different keys rarely share a lock.
const SHARDS: usize = 16;

/// A decoded value entry, shared by every read that found the same bytes.
#[derive(Debug)]
pub(super) struct Decoded {
    pub(super) version: u64,
    pub(super) redaction: Redaction,
    pub(super) value: Arc<CachedValue>,
    pub(super) freshness: Option<Freshness>,
}

/// What a key's bytes decode to, memoized when they hold a value.
pub(super) enum Decode {
    Value(Arc<Decoded>),
    /// Not a value: a tombstone or a negative entry (never memoized).
    Other(Slot),
}

struct Memo {
    key: CacheKey,
    raw: Box<[u8]>,
    decoded: Arc<Decoded>,
    weight: usize,
}

/// Each shard's map is keyed by the key's hash, taken once per read (the
/// memo's own, seeded per process); the entry holds its key, so a
/// collision reads as a miss and is replaced.
#[derive(Default)]
struct Shard {
    map: HashMap<u64, Memo, BuildHasherDefault<Prehashed>>,
    bytes: usize,
}

/// The hasher of maps keyed by a hash already taken.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; anything else still hashes.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The hash of a key, taken once per read: a multiply-rotate fold of its
/// words from a per-memo random seed, then a finalizer that spreads it over
/// all 64 bits (the shard takes the high ones, the map the low ones). Not
/// made to withstand chosen collisions, and not needed to: the map is keyed
/// by the hash, so keys that share one only take turns in the memo, each
/// read still checking the key and the bytes.
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length, so that trailing zero bytes still count.
            self.write_u64(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

pub(super) struct DecodeMemo {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    seed: u64,
}

impl DecodeMemo {
    /// A memo of at most about `budget` bytes, `None` when `budget` is 0.
    pub(super) fn new(budget: usize) -> Option<Self> {
        (budget > 0).then(|| Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: budget.div_ceil(SHARDS),
            seed: super::random_u64(),
        })
    }

    fn hash(&self, key: &CacheKey) -> u64 {
        let mut hasher = KeyHasher(self.seed);
        key.hash(&mut hasher);
        hasher.finish()
    }

    fn shard(&self, hash: u64) -> &Mutex<Shard> {
        // The high bits: the map's buckets use the low ones.
        &self.shards[((hash >> 48) as usize) % SHARDS]
    }

    /// `bytes` decoded: the memo's value when they equal its bytes for
    /// `key`, else decoded now (and memoized when they hold a value).
    pub(super) fn decode(
        &self,
        key: &CacheKey,
        bytes: &[u8],
    ) -> Result<Decode, codec::DecodeError> {
        let hash = self.hash(key);
        let shard = self.shard(hash);
        if let Some(memo) = lock(shard).map.get(&hash)
            && *memo.raw == *bytes
            && memo.key == *key
        {
            return Ok(Decode::Value(Arc::clone(&memo.decoded)));
        }
        let decoded = match decode(bytes)? {
            Decode::Value(decoded) => decoded,
            other => {
                // What the key held before is gone from the store.
                let mut shard = lock(shard);
                if shard.map.get(&hash).is_some_and(|m| m.key == *key)
                    && let Some(old) = shard.map.remove(&hash)
                {
                    shard.bytes -= old.weight;
                }
                return Ok(other);
            }
        };
        let weight =
            bytes.len() + value_bytes(&decoded.value) + 2 * key.world().as_str().len() + 96;
        if weight <= self.per_shard {
            let memo = Memo {
                key: key.clone(),
                raw: bytes.into(),
                decoded: Arc::clone(&decoded),
                weight,
            };
            let mut shard = lock(shard);
            if let Some(old) = shard.map.insert(hash, memo) {
                shard.bytes -= old.weight;
            }
            shard.bytes += weight;
            while shard.bytes > self.per_shard {
                // Any other key: the map's order is as good as random, and a
                // key read again is memoized again by its next read.
                let Some(&victim) = shard.map.keys().find(|&&h| h != hash) else {
                    break;
                };
                if let Some(old) = shard.map.remove(&victim) {
                    shard.bytes -= old.weight;
                }
            }
        }
        Ok(Decode::Value(decoded))
    }
}

impl<S, R> Inner<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    /// An entry's bytes decoded, through the decode memo when it is on.
    pub(super) fn decode(
        &self,
        key: &CacheKey,
        bytes: &[u8],
    ) -> Result<Decode, codec::DecodeError> {
        match &self.memo {
            Some(memo) => memo.decode(key, bytes),
            None => decode(bytes),
        }
    }
}

/// A read's answer made shareable.
pub(super) fn shared(
    read: Result<Read<CachedValue>, Error>,
) -> Result<Read<Arc<CachedValue>>, Error> {
    read.map(|read| read.map(Arc::new))
}

/// `bytes` decoded without a memo.
pub(super) fn decode(bytes: &[u8]) -> Result<Decode, codec::DecodeError> {
    Ok(match codec::decode_fresh(bytes)? {
        (Slot::Value(entry), freshness) => Decode::Value(Arc::new(Decoded {
            version: entry.version,
            redaction: entry.redaction,
            value: Arc::new(entry.value),
            freshness,
        })),
        (other, _) => Decode::Other(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lwcache_domain::{Document, EntityRef, Value, WorldId};

    fn key(n: usize) -> CacheKey {
        let world = WorldId::new("memo").expect("a valid world id");
        let entity = EntityRef::parse(lwcache_domain::EntityKind::Character, &format!("c{n}"))
            .expect("a valid id");
        CacheKey::entity(&world, &entity)
    }

    #[test]
    fn key_hashes_differ_and_spread_over_the_shards() {
        let memo = DecodeMemo::new(1 << 20).expect("a memo");
        let n = 20_000;
        let mut seen = std::collections::HashSet::new();
        let mut per_shard = [0usize; SHARDS];
        for i in 0..n {
            let hash = memo.hash(&key(i));
            assert!(seen.insert(hash), "key {i} shares its hash");
            per_shard[((hash >> 48) as usize) % SHARDS] += 1;
        }
        let low: std::collections::HashSet<u64> = seen.iter().map(|h| h & 0xffff).collect();
        assert!(low.len() > 15_000, "{} distinct low 16 bits", low.len());
        let even = n / SHARDS;
        for (shard, &count) in per_shard.iter().enumerate() {
            assert!(
                count > even * 8 / 10 && count < even * 12 / 10,
                "shard {shard} holds {count} of {n}"
            );
        }
        // Another memo, another seed.
        let other = DecodeMemo::new(1 << 20).expect("a memo");
        assert_ne!(memo.hash(&key(1)), other.hash(&key(1)));
        // Trailing zero bytes count.
        let hash = |bytes: &[u8]| {
            let mut h = KeyHasher(7);
            h.write(bytes);
            h.finish()
        };
        assert_ne!(hash(b"ab"), hash(b"ab\0"));
    }

    fn entry(version: u64, text: &str) -> Vec<u8> {
        let doc = Document::new().with("text", Value::Text(text.to_owned()));
        codec::encode(&codec::Entry {
            version,
            redaction: Redaction::Complete,
            value: CachedValue::Entity(doc),
        })
    }

    fn value(d: &Decode) -> Arc<Decoded> {
        match d {
            Decode::Value(v) => Arc::clone(v),
            Decode::Other(slot) => panic!("not a value: {slot:?}"),
        }
    }

    #[test]
    fn equal_bytes_share_one_decoded_value_and_other_bytes_decode_anew() {
        let memo = DecodeMemo::new(1 << 20).expect("a budget");
        let k = key(1);
        let a = value(&memo.decode(&k, &entry(3, "old")).expect("decodes"));
        let again = value(&memo.decode(&k, &entry(3, "old")).expect("decodes"));
        assert!(
            Arc::ptr_eq(&a, &again),
            "the same bytes are not decoded twice"
        );
        let b = value(&memo.decode(&k, &entry(4, "new")).expect("decodes"));
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(b.version, 4);
        assert_eq!(b.value, decoded_value(&entry(4, "new")));
        // Same version, other bytes: still decoded from the bytes given.
        let c = value(&memo.decode(&k, &entry(4, "other")).expect("decodes"));
        assert_eq!(c.value, decoded_value(&entry(4, "other")));
    }

    fn decoded_value(bytes: &[u8]) -> Arc<CachedValue> {
        match decode(bytes).expect("decodes") {
            Decode::Value(d) => Arc::clone(&d.value),
            Decode::Other(slot) => panic!("not a value: {slot:?}"),
        }
    }

    #[test]
    fn a_tombstone_is_answered_as_such_and_forgets_the_value() {
        let memo = DecodeMemo::new(1 << 20).expect("a budget");
        let k = key(1);
        let bytes = entry(3, "v");
        let first = value(&memo.decode(&k, &bytes).expect("decodes"));
        let tomb = codec::tombstone(4);
        assert!(matches!(
            memo.decode(&k, &tomb).expect("decodes"),
            Decode::Other(Slot::Tombstone { version: 4 })
        ));
        let again = value(&memo.decode(&k, &bytes).expect("decodes"));
        assert!(
            !Arc::ptr_eq(&first, &again),
            "decoded anew after the tombstone"
        );
    }

    #[test]
    fn the_budget_bounds_what_is_kept() {
        let budget = 16 * 4096;
        let memo = DecodeMemo::new(budget).expect("a budget");
        for n in 0..2000 {
            memo.decode(&key(n), &entry(1, &"x".repeat(100)))
                .expect("decodes");
        }
        let kept: usize = memo.shards.iter().map(|s| lock(s).bytes).sum();
        let count: usize = memo.shards.iter().map(|s| lock(s).map.len()).sum();
        assert!(
            kept <= budget,
            "{kept} bytes kept over a budget of {budget}"
        );
        assert!(count > 50, "only {count} entries kept");
        assert!(count < 2000, "nothing was evicted");
        assert!(DecodeMemo::new(0).is_none(), "a budget of 0 turns it off");
    }

    #[test]
    fn bad_bytes_are_an_error_not_a_memo() {
        let memo = DecodeMemo::new(1 << 20).expect("a budget");
        assert!(memo.decode(&key(1), b"garbage").is_err());
    }
}
