//! The value's items: LEB128 lengths and integers (zig-zag for signed),
//! tagged values and sorted maps, written and read back with every length
//! checked against the input that is left.

use std::collections::BTreeMap;

use lwcache_domain::Value;

use super::{
    DecodeError, MAX_DEPTH, T_FALSE, T_FLOAT, T_INT, T_LIST, T_MAP, T_NULL, T_TEXT, T_TRUE,
};

pub(super) fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

pub(super) fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

pub(super) fn put_uvarint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

pub(super) fn put_len(out: &mut Vec<u8>, n: usize) {
    put_uvarint(out, n as u64);
}

pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

pub(super) fn put_map(out: &mut Vec<u8>, map: &BTreeMap<String, Value>) {
    put_len(out, map.len());
    for (k, v) in map {
        put_str(out, k);
        put_value(out, v);
    }
}

pub(super) fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(T_NULL),
        Value::Bool(false) => out.push(T_FALSE),
        Value::Bool(true) => out.push(T_TRUE),
        Value::Int(n) => {
            out.push(T_INT);
            put_uvarint(out, zigzag(*n));
        }
        Value::Float(f) => {
            out.push(T_FLOAT);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Text(s) => {
            out.push(T_TEXT);
            put_str(out, s);
        }
        Value::List(items) => {
            out.push(T_LIST);
            put_len(out, items.len());
            for item in items {
                put_value(out, item);
            }
        }
        Value::Map(m) => {
            out.push(T_MAP);
            put_map(out, m);
        }
    }
}

pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
    /// Items reserved ahead so far, over the whole decode ([`Reader::room`]).
    pub(super) reserved: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8], pos: usize) -> Self {
        Reader {
            buf,
            pos,
            reserved: 0,
        }
    }

    /// How many of a collection's `n` items, each at least `min_bytes`
    /// long once encoded, to reserve room for ahead.
    ///
    /// No more than the bytes left could hold; and every item takes at
    /// least one byte, so a valid entry's collections hold at most as many
    /// items, all together, as it has bytes: that is the budget of the
    /// whole decode. Without it, lists nested in lists that each claim the
    /// rest of the input as their length would each reserve that much at
    /// once, one level over the other. Past the budget a collection grows
    /// as its items arrive, which only an input that is not a valid entry
    /// reaches.
    pub(super) fn room(&mut self, n: usize, min_bytes: usize) -> usize {
        let left = (self.buf.len() - self.pos) / min_bytes.max(1);
        let room = n
            .min(left)
            .min(self.buf.len().saturating_sub(self.reserved));
        self.reserved += room;
        room
    }

    pub(super) fn invalid(&self, at: usize, what: impl ToString) -> DecodeError {
        DecodeError::Invalid {
            at,
            what: what.to_string(),
        }
    }

    pub(super) fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(DecodeError::Truncated { at: self.pos })?;
        self.pos += 1;
        Ok(b)
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(DecodeError::Truncated { at: self.buf.len() })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(super) fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                break;
            }
            n |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(self.invalid(start, "varint overflows 64 bits"))
    }

    /// A length, which can never exceed the bytes left: every item takes at
    /// least one byte. This bounds every allocation by the input's size.
    pub(super) fn len(&mut self) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.uvarint()?;
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err(DecodeError::Invalid {
                at,
                what: format!("length {n} exceeds the {left} bytes left"),
            });
        }
        Ok(n as usize)
    }

    pub(super) fn str(&mut self) -> Result<&str, DecodeError> {
        let n = self.len()?;
        let at = self.pos;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::Invalid {
            at,
            what: "text is not UTF-8".into(),
        })
    }

    pub(super) fn map(&mut self, depth: usize) -> Result<BTreeMap<String, Value>, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        let n = self.len()?;
        // Entries are encoded in key order: collected first, the map is
        // built in bulk, in one pass, rather than by one search per insert.
        let mut entries = Vec::with_capacity(self.room(n, 2));
        for _ in 0..n {
            let k = self.str()?.to_owned();
            let v = self.value(depth + 1)?;
            entries.push((k, v));
        }
        Ok(entries.into_iter().collect())
    }

    pub(super) fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        let at = self.pos;
        Ok(match self.byte()? {
            T_NULL => Value::Null,
            T_FALSE => Value::Bool(false),
            T_TRUE => Value::Bool(true),
            T_INT => Value::Int(unzigzag(self.uvarint()?)),
            T_FLOAT => {
                let mut b = [0u8; 8];
                b.copy_from_slice(self.take(8)?);
                Value::Float(f64::from_le_bytes(b))
            }
            T_TEXT => Value::Text(self.str()?.to_owned()),
            T_LIST => {
                let n = self.len()?;
                let mut items = Vec::with_capacity(self.room(n, 1));
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::List(items)
            }
            // A map is one level, as a list is: `map` counts it.
            T_MAP => Value::Map(self.map(depth)?),
            tag => return Err(DecodeError::UnknownTag { tag, at }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `levels` lists, one in the other, each claiming every byte after its
    /// own length as its item count, around `nulls` null items.
    fn nested_claims(levels: usize, nulls: usize) -> Vec<u8> {
        let mut inner = vec![T_NULL; nulls];
        for _ in 0..levels {
            let mut outer = vec![T_LIST];
            put_len(&mut outer, inner.len());
            outer.extend_from_slice(&inner);
            inner = outer;
        }
        inner
    }

    #[test]
    fn nested_lists_claiming_the_rest_reserve_no_more_than_the_input() {
        let bytes = nested_claims(60, 100_000);
        let mut r = Reader::new(&bytes, 0);
        assert!(matches!(r.value(0), Err(DecodeError::Truncated { .. })));
        assert!(
            r.reserved <= bytes.len(),
            "reserved {} items for {} bytes",
            r.reserved,
            bytes.len()
        );
    }

    #[test]
    fn a_valid_list_gets_all_its_room_at_once() {
        let mut bytes = vec![T_LIST];
        put_len(&mut bytes, 1000);
        bytes.extend(std::iter::repeat_n(T_NULL, 1000));
        let Value::List(items) = Reader::new(&bytes, 0).value(0).unwrap() else {
            panic!("not a list");
        };
        assert_eq!((items.len(), items.capacity()), (1000, 1000));
    }

    proptest! {
        #[test]
        fn no_input_reserves_more_items_than_it_has_bytes(
            bytes in prop::collection::vec(prop_oneof![Just(T_LIST), Just(T_MAP), Just(T_NULL), any::<u8>()], 0..512),
        ) {
            let mut r = Reader::new(&bytes, 0);
            let _ = r.value(0);
            prop_assert!(r.reserved <= bytes.len());
        }
    }
}
