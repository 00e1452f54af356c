//! Row hints: where each key's row is, kept in memory for the SQLite backend's point reads.
//!
//! A point read by key descends two B-trees: the key index, to find the row's id, then the
//! table, to find the row. With a million keys the key index's leaves do not fit SQLite's
//! page cache, so a read of a key not read lately costs two or three page reads. With the
//! row id known, a read descends only the table, whose interior pages stay cached: about one
//! page read.
//!
//! The hints are an open-addressing table of 64-bit words, each a key's 32-bit tag (the top
//! half of a keyed hash of the key) and its row id. 8 bytes per slot, a built table filled to
//! between 37 % and 75 %, rebuilt at 85 %: 9 to 22 bytes per key. Readers use it without a
//! lock.
//!
//! Invariant: **a hint is only a guess.** A read that follows one checks the row's key
//! (`WHERE id = ? AND key = ?`) and falls back to the key index when the row is gone or holds
//! another key. So a hint is never removed, fenced or made consistent with a write: a stale or
//! colliding hint costs one more lookup and is then replaced. Hints of deleted keys stay until
//! the table is rebuilt from the database, which happens when it fills up.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

/// A key's tag: the top 32 bits of its keyed hash. A key's home slot is the tag's top bits;
/// a word holds the whole tag, so keys sharing a home slot are told apart.
pub(crate) type Tag = u32;

/// How far a lookup or insert walks from a key's home slot before giving up.
const MAX_PROBE: usize = 32;
/// The smallest table: 4096 slots, 32 KiB.
const MIN_BITS: u32 = 12;
/// The largest: 2^28 slots, 2 GiB, for about 200 million keys. Beyond it new keys go unhinted.
const MAX_BITS: u32 = 28;

struct Table {
    slots: Box<[AtomicU64]>,
    bits: u32,
    /// Slots in use (hints of live and of deleted keys alike).
    used: AtomicUsize,
}

impl Table {
    fn new(bits: u32) -> Table {
        Table {
            slots: (0..1usize << bits).map(|_| AtomicU64::new(0)).collect(),
            bits,
            used: AtomicUsize::new(0),
        }
    }

    /// The smallest table that holds `n` hints at most 75 % full.
    fn for_count(n: usize) -> Table {
        let mut bits = MIN_BITS;
        while bits < MAX_BITS && n * 4 > (3usize << bits) {
            bits += 1;
        }
        Table::new(bits)
    }

    /// Past this many slots in use a rebuild is due (85 %).
    fn limit(&self) -> usize {
        (self.slots.len() / 20) * 17
    }

    fn home(&self, tag: Tag) -> usize {
        (tag >> (32 - self.bits)) as usize
    }

    fn find(&self, tag: Tag) -> Option<i64> {
        let mask = self.slots.len() - 1;
        let mut i = self.home(tag);
        for _ in 0..MAX_PROBE {
            let e = self.slots[i].load(Ordering::Relaxed);
            if e == 0 {
                return None;
            }
            if (e >> 32) as Tag == tag {
                return Some((e & 0xFFFF_FFFF) as i64);
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Store `word` (tag and row id) in the slot holding its tag, or in a free one.
    fn insert(&self, word: u64) -> Insert {
        let tag = (word >> 32) as Tag;
        let mask = self.slots.len() - 1;
        let mut i = self.home(tag);
        for _ in 0..MAX_PROBE {
            let mut e = self.slots[i].load(Ordering::Relaxed);
            if e == 0 {
                if self.used.load(Ordering::Relaxed) >= self.limit() {
                    return Insert::Full;
                }
                match self.slots[i].compare_exchange(0, word, Ordering::Relaxed, Ordering::Relaxed)
                {
                    Ok(_) => {
                        self.used.fetch_add(1, Ordering::Relaxed);
                        return Insert::Done;
                    }
                    Err(now) => e = now,
                }
            }
            if (e >> 32) as Tag == tag {
                // Two writers of one tag race harmlessly: either id is checked when used.
                if e != word {
                    self.slots[i].store(word, Ordering::Relaxed);
                }
                return Insert::Done;
            }
            i = (i + 1) & mask;
        }
        Insert::Dropped
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Insert {
    Done,
    /// Too many slots near the key's home are taken; the hint is not kept.
    Dropped,
    /// The table is full enough to be rebuilt; the hint is not kept.
    Full,
}

pub(crate) struct RowHints {
    hasher: RandomState,
    table: ArcSwap<Table>,
    /// Whether a rebuild from the database is under way (at most one at a time).
    rebuilding: AtomicBool,
    /// Tables installed by [`RowHints::install`] so far.
    builds: AtomicU64,
}

impl RowHints {
    pub(crate) fn new() -> RowHints {
        RowHints {
            hasher: RandomState::new(),
            table: ArcSwap::from_pointee(Table::new(MIN_BITS)),
            rebuilding: AtomicBool::new(false),
            builds: AtomicU64::new(0),
        }
    }

    pub(crate) fn tag(&self, key: &[u8]) -> Tag {
        (self.hasher.hash_one(key) >> 32) as Tag
    }

    /// The row id last recorded for a key with this tag, if any: to be checked, not trusted.
    pub(crate) fn find(&self, tag: Tag) -> Option<i64> {
        self.table.load().find(tag)
    }

    /// Remember that the key with this tag is in row `id`. Returns [`Insert::Full`] when the
    /// table should be rebuilt ([`RowHints::start_rebuild`]).
    pub(crate) fn record(&self, tag: Tag, id: i64) -> Insert {
        match RowHints::word(tag, id) {
            Some(w) => self.table.load().insert(w),
            None => Insert::Dropped,
        }
    }

    /// Claim the one rebuild allowed at a time; false if one is under way.
    pub(crate) fn start_rebuild(&self) -> bool {
        !self.rebuilding.swap(true, Ordering::AcqRel)
    }

    /// Give up a claimed rebuild (it failed); a later one may start.
    pub(crate) fn abandon_rebuild(&self) {
        self.rebuilding.store(false, Ordering::Release);
    }

    /// The table word for a hint, for [`RowHints::install`]; row ids that do not fit 32
    /// bits (or are not positive) go unhinted.
    pub(crate) fn word(tag: Tag, id: i64) -> Option<u64> {
        let id = u32::try_from(id).ok().filter(|&i| i != 0)?;
        Some((u64::from(tag) << 32) | u64::from(id))
    }

    /// Replace the table by one holding exactly `words` ([`RowHints::word`]), as a rebuild
    /// read them from the database, and release the rebuild's claim. Hints recorded meanwhile
    /// in the old table are lost; reads record them again. Returns the new table's size in
    /// bytes.
    pub(crate) fn install(&self, words: &[u64]) -> usize {
        let t = Table::for_count(words.len());
        for &w in words {
            t.insert(w);
        }
        let bytes = t.slots.len() * 8;
        self.table.store(Arc::new(t));
        self.builds.fetch_add(1, Ordering::Release);
        self.rebuilding.store(false, Ordering::Release);
        bytes
    }

    /// How many tables were installed: 1 once the build at open is done.
    #[cfg(test)]
    pub(crate) fn builds(&self) -> u64 {
        self.builds.load(Ordering::Acquire)
    }

    /// Bytes the table takes.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.table.load().slots.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_finds_and_overwrites() {
        let h = RowHints::new();
        let (a, b) = (h.tag(b"a"), h.tag(b"b"));
        assert_eq!(h.find(a), None);
        assert_eq!(h.record(a, 7), Insert::Done);
        assert_eq!(h.record(b, 9), Insert::Done);
        assert_eq!((h.find(a), h.find(b)), (Some(7), Some(9)));
        assert_eq!(h.record(a, 11), Insert::Done);
        assert_eq!(h.find(a), Some(11));
        // ids that do not fit the word are not kept
        assert_eq!(h.record(a, 0), Insert::Dropped);
        assert_eq!(h.record(a, 1 << 32), Insert::Dropped);
        assert_eq!(h.record(a, -3), Insert::Dropped);
        assert_eq!(h.find(a), Some(11));
    }

    #[test]
    fn tags_sharing_a_home_slot_probe_past_each_other() {
        let t = Table::new(MIN_BITS);
        // same top 12 bits (same home slot), different tags
        let tags: Vec<Tag> = (0..20).map(|i| 0xABC0_0000 | i).collect();
        for (i, &tag) in tags.iter().enumerate() {
            assert_eq!(
                t.insert(RowHints::word(tag, i as i64 + 1).unwrap()),
                Insert::Done
            );
        }
        for (i, &tag) in tags.iter().enumerate() {
            assert_eq!(t.find(tag), Some(i as i64 + 1));
        }
        assert_eq!(t.find(0xABC0_0FFF), None);
        // past MAX_PROBE taken slots a hint is dropped, not misfiled
        let more: Vec<Tag> = (20..40).map(|i| 0xABC0_0000 | i).collect();
        let dropped = more
            .iter()
            .filter(|&&tag| t.insert(RowHints::word(tag, 5).unwrap()) == Insert::Dropped)
            .count();
        assert_eq!(dropped, 40 - MAX_PROBE);
    }

    #[test]
    fn a_full_table_asks_for_a_rebuild_and_a_rebuild_sizes_to_the_keys() {
        let h = RowHints::new();
        let mut full_at = None;
        for i in 0..10_000u32 {
            let tag = h.tag(&i.to_le_bytes());
            if h.record(tag, i64::from(i) + 1) == Insert::Full {
                full_at = Some(i);
                break;
            }
        }
        let full_at = full_at.expect("the table fills up") as usize;
        // at 85 % of the slots in use (a few records shared a tag or probed too far)
        let limit = (1 << MIN_BITS) / 20 * 17;
        assert_eq!(h.table.load().used.load(Ordering::Relaxed), limit);
        assert!((limit..limit + 100).contains(&full_at), "{full_at}");
        assert!(h.start_rebuild());
        assert!(!h.start_rebuild(), "one rebuild at a time");
        let words: Vec<u64> = (0..10_000u32)
            .filter_map(|i| RowHints::word(h.tag(&i.to_le_bytes()), i64::from(i) + 1))
            .collect();
        h.install(&words);
        assert_eq!(h.builds(), 1);
        // 10,000 hints at most 75 % full: 2^14 slots
        assert_eq!(h.bytes(), 8 << 14);
        let found = (0..10_000u32)
            .filter(|&i| h.find(h.tag(&i.to_le_bytes())) == Some(i64::from(i) + 1))
            .count();
        // every hint but those whose tag another key shares, or that probed too far
        assert!(found >= 9_990, "{found}");
        assert!(h.start_rebuild(), "install released the claim");
    }
}
