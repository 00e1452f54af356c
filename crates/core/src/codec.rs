//! Binary encoding primitives for the compact forms: the namespace records kept in
//! memory ([`crate::namespace`]) and the kv-v2 metadata records in storage
//! ([`crate::kv`]). Numbers are LEB128 varints (signed ones zigzagged), strings and
//! collections are length-prefixed. A [`Reader`] returns `None` on input that ends early
//! or does not decode; callers check [`Reader::is_done`] to refuse trailing bytes.

use std::collections::BTreeMap;

pub fn put_varint(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push(v as u8 | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

pub fn put_len(b: &mut Vec<u8>, n: usize) {
    put_varint(b, n as u64);
}

/// A 128-bit integer, 16 bytes little-endian.
pub fn put_i128(b: &mut Vec<u8>, v: i128) {
    b.extend_from_slice(&v.to_le_bytes());
}

pub fn put_str(b: &mut Vec<u8>, s: &str) {
    put_len(b, s.len());
    b.extend_from_slice(s.as_bytes());
}

pub fn put_map(b: &mut Vec<u8>, m: &BTreeMap<String, String>) {
    put_len(b, m.len());
    for (k, v) in m {
        put_str(b, k);
        put_str(b, v);
    }
}

pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

#[derive(Clone, Copy)]
pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader(bytes)
    }
    /// Every byte was read.
    pub fn is_done(&self) -> bool {
        self.0.is_empty()
    }
    /// How many bytes are not read yet.
    pub fn remaining(&self) -> usize {
        self.0.len()
    }
    /// The bytes not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.0
    }
    /// A 128-bit integer, 16 bytes little-endian.
    pub fn i128(&mut self) -> Option<i128> {
        Some(i128::from_le_bytes(self.take(16)?.try_into().ok()?))
    }
    pub fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    pub fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }
    pub fn len(&mut self) -> Option<usize> {
        usize::try_from(self.varint()?).ok()
    }
    pub fn string(&mut self) -> Option<String> {
        self.str().map(str::to_owned)
    }
    /// A string, borrowed from the input.
    pub fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }
    /// A string's bytes, borrowed from the input and not checked as UTF-8.
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }
    pub fn map(&mut self) -> Option<BTreeMap<String, String>> {
        let mut m = BTreeMap::new();
        for _ in 0..self.len()? {
            let k = self.string()?;
            m.insert(k, self.string()?);
        }
        Some(m)
    }
    pub fn list(&mut self) -> Option<Vec<String>> {
        let n = self.len()?;
        let mut v = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            v.push(self.string()?);
        }
        Some(v)
    }
}
