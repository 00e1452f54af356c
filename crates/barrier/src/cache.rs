//! A bounded, sharded in-memory cache (used by the barrier and the core). Reads take one
//! shard's read lock, so concurrent readers on different cores do not contend on a single
//! global lock.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};

use parking_lot::RwLock;

const SHARDS: usize = 16;

pub struct Cache<K, V> {
    shards: Box<[RwLock<HashMap<K, V>>]>,
    per_shard: usize,
    hasher: RandomState,
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    /// A cache holding about `capacity` entries. A full shard drops one arbitrary entry
    /// per insert (random eviction: no bookkeeping on the read path, and no stampede of
    /// misses as a wholesale clear would cause).
    pub fn new(capacity: usize) -> Self {
        Cache {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            per_shard: (capacity / SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    fn shard<Q: Hash + ?Sized>(&self, k: &Q) -> &RwLock<HashMap<K, V>> {
        &self.shards[(self.hasher.hash_one(k) as usize) % SHARDS]
    }

    pub fn get<Q>(&self, k: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(k).read().get(k).cloned()
    }

    pub fn insert(&self, k: K, v: V) {
        let mut s = self.shard(&k).write();
        if s.len() >= self.per_shard && !s.contains_key(&k) {
            if let Some(victim) = s.keys().next().cloned() {
                s.remove(&victim);
            }
        }
        s.insert(k, v);
    }

    pub fn remove<Q>(&self, k: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(k).write().remove(k);
    }

    pub fn clear(&self) {
        for s in self.shards.iter() {
            s.write().clear();
        }
    }
}
