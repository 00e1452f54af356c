//! A bounded, sharded in-memory cache (used by the barrier and the core). Reads take one
//! shard's read lock, so concurrent readers on different cores do not contend on a single
//! global lock.

use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};

use hashbrown::HashTable;
use parking_lot::RwLock;

const SHARDS: usize = 16;

/// A key, its value and whether it was read since an eviction last passed over it.
struct Entry<K, V> {
    key: K,
    value: V,
    used: AtomicBool,
}

type Shard<K, V> = RwLock<HashTable<Entry<K, V>>>;

/// Each operation hashes its key once: bits 32 to 35 of the hash pick the shard, and the
/// shard's table uses the same hash, whose low bits place the entry and whose top seven
/// bits tell entries apart within a probe group. So the shard's bits overlap neither
/// (a shard would need 2^32 buckets).
pub struct Cache<K, V> {
    shards: Box<[Shard<K, V>]>,
    per_shard: usize,
    hasher: RandomState,
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    /// A cache holding about `capacity` entries. A full shard evicts one entry per insert
    /// by second chance: it walks the shard's table from its start, skips (and marks
    /// unread) entries read since they were last passed, and drops the first entry not
    /// read. So entries in use stay while entries inserted and never read again (a
    /// written key no one reads) go first, with no bookkeeping on the read path but one
    /// flag.
    pub fn new(capacity: usize) -> Self {
        Cache {
            shards: (0..SHARDS).map(|_| RwLock::new(HashTable::new())).collect(),
            per_shard: (capacity / SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    /// The hash this cache files `k` under (randomly keyed SipHash): for a caller that
    /// needs a hash of the key too, and passes it back to [`Cache::get_hashed`] and
    /// [`Cache::insert_if_hashed`] rather than hash the key again.
    pub fn hash<Q: Hash + ?Sized>(&self, k: &Q) -> u64 {
        self.hasher.hash_one(k)
    }

    fn shard_of(&self, h: u64) -> &Shard<K, V> {
        &self.shards[(h >> 32) as usize % SHARDS]
    }

    /// The key's hash and its shard.
    fn locate<Q: Hash + ?Sized>(&self, k: &Q) -> (u64, &Shard<K, V>) {
        let h = self.hash(k);
        (h, self.shard_of(h))
    }

    pub fn get<Q>(&self, k: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_hashed(self.hash(k), k)
    }

    /// [`Cache::get`] of `k`, whose [`Cache::hash`] is `h`.
    pub fn get_hashed<Q>(&self, h: u64, k: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let s = self.shard_of(h).read();
        let e = s.find(h, |e| e.key.borrow() == k)?;
        if !e.used.load(Ordering::Relaxed) {
            e.used.store(true, Ordering::Relaxed);
        }
        Some(e.value.clone())
    }

    /// Whether an insert of `k` would find room in its shard without evicting.
    pub fn has_room<Q>(&self, k: &Q) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.locate(k).1.read().len() < self.per_shard
    }

    pub fn insert(&self, k: K, v: V) {
        self.insert_if(k, v, || true);
    }

    /// Insert unless `still` says no; `still` runs under the shard's lock, so an insert
    /// or removal of the same key that follows a change `still` would see is ordered after
    /// this insert.
    pub fn insert_if(&self, k: K, v: V, still: impl FnOnce() -> bool) -> bool {
        self.insert_if_hashed(self.hash(&k), k, v, still)
    }

    /// [`Cache::insert_if`] of `k`, whose [`Cache::hash`] is `h`.
    pub fn insert_if_hashed(&self, h: u64, k: K, v: V, still: impl FnOnce() -> bool) -> bool {
        let mut s = self.shard_of(h).write();
        if !still() {
            return false;
        }
        if let Some(e) = s.find_mut(h, |e| e.key == k) {
            e.value = v;
            return true;
        }
        if s.len() >= self.per_shard {
            let victim = s
                .iter()
                .find(|e| !e.used.swap(false, Ordering::Relaxed))
                .or_else(|| s.iter().next())
                .map(|e| e.key.clone());
            // Every entry was read since the last pass, and is unmarked now: the first goes.
            // Only an eviction hashes a second key.
            if let Some(victim) = victim {
                let vh = self.hasher.hash_one(&victim);
                if let Ok(o) = s.find_entry(vh, |e| e.key == victim) {
                    o.remove();
                }
            }
        }
        let entry = Entry {
            key: k,
            value: v,
            used: AtomicBool::new(false),
        };
        s.insert_unique(h, entry, |e| self.hasher.hash_one(&e.key));
        true
    }

    /// Replace the value of `k` if it is cached and `still` holds (checked under the
    /// shard's lock, as in [`Cache::insert_if`]); an absent key stays absent.
    pub fn replace_if<Q>(&self, k: &Q, v: V, still: impl FnOnce() -> bool) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (h, shard) = self.locate(k);
        let mut s = shard.write();
        match s.find_mut(h, |e| e.key.borrow() == k) {
            Some(e) if still() => {
                e.value = v;
                true
            }
            _ => false,
        }
    }

    pub fn remove<Q>(&self, k: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (h, shard) = self.locate(k);
        if let Ok(o) = shard.write().find_entry(h, |e| e.key.borrow() == k) {
            o.remove();
        }
    }

    pub fn clear(&self) {
        for s in self.shards.iter() {
            s.write().clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_in_use_outlast_entries_never_read_again() {
        // One shard's worth: 16 entries per shard.
        let c: Cache<u32, u32> = Cache::new(16 * SHARDS);
        let hot: Vec<u32> = (0..8).collect();
        for &k in &hot {
            c.insert(k, k);
        }
        // A stream of keys written once and never read, with the hot keys read between.
        for k in 1000..5000 {
            c.insert(k, k);
            for &h in &hot {
                assert_eq!(c.get(&h), Some(h), "hot key {h} evicted at {k}");
            }
        }
        // Bounded all along.
        let total: usize = c.shards.iter().map(|s| s.read().len()).sum();
        assert!(total <= 16 * SHARDS, "{total}");
        // An overwrite keeps one entry; a replacement changes only what is there; a
        // removal drops it.
        c.insert(3, 30);
        assert_eq!(c.get(&3), Some(30));
        assert!(c.replace_if(&3, 31, || true));
        assert!(!c.replace_if(&3, 32, || false));
        assert!(!c.replace_if(&999_999, 1, || true));
        assert_eq!((c.get(&3), c.get(&999_999)), (Some(31), None));
        c.remove(&3);
        assert_eq!(c.get(&3), None);
    }
}
