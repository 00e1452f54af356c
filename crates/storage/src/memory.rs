//! In-memory backend: a `BTreeMap` behind a lock. For tests and `inmem` storage.

use std::collections::BTreeMap;
use std::ops::Bound;

use async_trait::async_trait;
use parking_lot::RwLock;

use crate::{child_of, CommitHook, Op, Result, Storage, StorageError};

#[derive(Default)]
pub struct MemoryStorage {
    map: RwLock<BTreeMap<String, Vec<u8>>>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.map.read().get(key).cloned())
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>> {
        let map = self.map.read();
        let mut out: Vec<String> = Vec::new();
        let start = match after {
            Some(a) => Bound::Excluded(format!("{prefix}{a}")),
            None => Bound::Included(prefix.to_owned()),
        };
        for (k, _) in map.range::<String, _>((start, Bound::Unbounded)) {
            if !k.starts_with(prefix) {
                break;
            }
            let child = child_of(prefix, k);
            if let Some(a) = after {
                if child <= a || (a.ends_with('/') && child == a) {
                    continue;
                }
            }
            if out.last().map(String::as_str) != Some(child) {
                if limit.is_some_and(|l| out.len() >= l) {
                    break;
                }
                out.push(child.to_owned());
            }
        }
        Ok(out)
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let map = self.map.read();
        let start = match after {
            Some(a) => Bound::Excluded(a.to_owned()),
            None => Bound::Included(prefix.to_owned()),
        };
        Ok(map
            .range::<String, _>((start, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn transact(&self, ops: Vec<Op>) -> Result<()> {
        self.apply(ops, None)
    }

    async fn transact_then(&self, ops: Vec<Op>, on_commit: CommitHook) -> Result<()> {
        self.apply(ops, Some(on_commit))
    }

    fn kind(&self) -> &'static str {
        "inmem"
    }
}

impl MemoryStorage {
    /// Apply `ops` under the map's lock; `on_commit` runs before it is released, so hooks
    /// run in the order transactions apply.
    fn apply(&self, ops: Vec<Op>, on_commit: Option<CommitHook>) -> Result<()> {
        let mut map = self.map.write();
        for op in &ops {
            if let Op::Check(k, expect) = op {
                if map.get(k) != expect.as_ref() {
                    return Err(StorageError::Conflict(k.clone()));
                }
            }
        }
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    map.insert(k, v);
                }
                Op::Delete(k) => {
                    map.remove(&k);
                }
                Op::DeletePrefix(p) => {
                    let keys: Vec<String> = map
                        .range::<String, _>((Bound::Included(p.clone()), Bound::Unbounded))
                        .take_while(|(k, _)| k.starts_with(&p))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in keys {
                        map.remove(&k);
                    }
                }
                Op::Check(..) => {}
            }
        }
        if let Some(hook) = on_commit {
            hook();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance() {
        crate::conformance::run(&MemoryStorage::new()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_cas() {
        crate::conformance::concurrent_cas(std::sync::Arc::new(MemoryStorage::new())).await;
    }
}
