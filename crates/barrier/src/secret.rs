//! Buffers of secret data that are wiped when dropped, in bulk.
//!
//! `zeroize::Zeroizing<Vec<u8>>` (and `<String>`) wipes its buffer one byte at a time with
//! a volatile write per byte, where the crate's bulk wipe of a slice (a fill behind an
//! optimization barrier) is a single pass. Values and response texts on the read path are
//! dropped per request, so they use these types.
//! Like `Zeroizing`, a wipe covers the buffer as it is when dropped (its spare capacity
//! included), not copies left behind by an earlier reallocation: callers size buffers
//! before filling them.

use std::fmt;
use std::ops::{Deref, DerefMut};

use zeroize::Zeroize;

/// Wipe `v`'s contents and spare capacity, and empty it.
fn wipe(v: &mut Vec<u8>) {
    v.as_mut_slice().zeroize();
    v.spare_capacity_mut().zeroize();
    v.clear();
}

/// Secret bytes, wiped on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(v: Vec<u8>) -> SecretBytes {
        SecretBytes(v)
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(v: Vec<u8>) -> SecretBytes {
        SecretBytes(v)
    }
}

impl Deref for SecretBytes {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for SecretBytes {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Zeroize for SecretBytes {
    fn zeroize(&mut self) {
        wipe(&mut self.0);
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// Never prints the bytes.
impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes({} bytes)", self.0.len())
    }
}

/// Secret text, wiped on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretText(String);

impl SecretText {
    pub fn new(s: String) -> SecretText {
        SecretText(s)
    }
    pub fn with_capacity(n: usize) -> SecretText {
        SecretText(String::with_capacity(n))
    }
}

impl From<String> for SecretText {
    fn from(s: String) -> SecretText {
        SecretText(s)
    }
}

impl Deref for SecretText {
    type Target = String;
    fn deref(&self) -> &String {
        &self.0
    }
}

impl DerefMut for SecretText {
    fn deref_mut(&mut self) -> &mut String {
        &mut self.0
    }
}

impl Zeroize for SecretText {
    fn zeroize(&mut self) {
        // The bytes leave the `String` (no copy) and are wiped as bytes: zeroes are
        // valid UTF-8 either way, and an empty `String` is left behind.
        wipe(&mut std::mem::take(&mut self.0).into_bytes());
    }
}

impl Drop for SecretText {
    fn drop(&mut self) {
        self.zeroize();
    }
}

/// Never prints the text.
impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretText({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)] // reads the wiped buffer's spare capacity
    fn a_wipe_zeroes_contents_and_spare_capacity_and_empties() {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(b"secret value");
        // Spare capacity that once held data: written, then truncated away.
        v.extend_from_slice(&[0xAA; 20]);
        v.truncate(12);
        let mut s = SecretBytes::new(v);
        let (ptr, cap) = (s.as_ptr(), s.capacity());
        s.zeroize();
        assert!(s.is_empty());
        assert_eq!((s.as_ptr(), s.capacity()), (ptr, cap), "the same buffer");
        // SAFETY: `ptr` is `s`'s live buffer of `cap` bytes, all initialized (by the
        // writes above, then by the wipe), and nothing writes it meanwhile.
        let all = unsafe { std::slice::from_raw_parts(ptr, cap) };
        assert!(all.iter().all(|&b| b == 0), "{all:?}");

        let mut t = SecretText::with_capacity(32);
        t.push_str("hunter2");
        t.zeroize();
        assert!(t.is_empty());
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let b = SecretBytes::new(b"hunter2".to_vec());
        let t = SecretText::new("hunter2".into());
        for shown in [format!("{b:?}"), format!("{t:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("7 bytes"), "{shown}");
        }
    }
}
