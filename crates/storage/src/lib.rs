//! Ordered key-value storage: the bottom layer of Strongroom.
//!
//! Everything Strongroom persists is a byte string under a `/`-separated key. This crate
//! owns the [`Storage`] trait and its backends: [`SqliteStorage`] (embedded, durable,
//! group-committed) and [`MemoryStorage`] (tests). Backends know nothing about encryption:
//! the barrier above encrypts every value before it reaches them.
//!
//! ```
//! # tokio_test_block_on(async {
//! use strongroom_storage::{MemoryStorage, Storage, Op};
//! let store = MemoryStorage::new();
//! store.put("a/b", b"1".to_vec()).await.unwrap();
//! store.put("a/c/d", b"2".to_vec()).await.unwrap();
//! assert_eq!(store.list("a/", None, None).await.unwrap(), vec!["b", "c/"]);
//! // compare-and-swap: only succeeds when "a/b" still holds "1"
//! store.transact(vec![Op::check("a/b", Some(b"1")), Op::put("a/b", b"3")]).await.unwrap();
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```
//!
//! Architecture invariant: keys are compared bytewise; `list` returns the immediate
//! children of a prefix (a child ending in `/` has descendants), in order, exactly like
//! OpenBao's physical layer. Nothing here knows what a value means.

mod hints;
mod memory;
mod postgres;
mod sqlite;

pub use memory::MemoryStorage;
pub use postgres::{PostgresOptions, PostgresStorage};
pub use sqlite::{SqliteOptions, SqliteStorage};

use async_trait::async_trait;

/// What can go wrong below the barrier.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A [`Op::Check`] in a transaction did not hold; nothing was written.
    #[error("storage conflict on key {0:?}: the value changed concurrently")]
    Conflict(String),
    /// The backend cannot serve requests right now (disk, database down, shut down).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Any other backend failure.
    #[error("storage error: {0}")]
    Backend(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// One step of an atomic transaction.
#[derive(Debug, Clone)]
pub enum Op {
    Put(String, Vec<u8>),
    Delete(String),
    /// Delete every key starting with the prefix.
    DeletePrefix(String),
    /// Abort the whole transaction unless the key currently holds exactly this value
    /// (`None` = the key is absent).
    Check(String, Option<Vec<u8>>),
}

impl Op {
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Op {
        Op::Put(key.into(), value.into())
    }
    pub fn delete(key: impl Into<String>) -> Op {
        Op::Delete(key.into())
    }
    pub fn check(key: impl Into<String>, expect: Option<&[u8]>) -> Op {
        Op::Check(key.into(), expect.map(<[u8]>::to_vec))
    }
}

/// Run by [`Storage::transact_then`] when its transaction has committed.
pub type CommitHook = Box<dyn FnOnce() + Send>;

/// The ordered key-value store every backend implements.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Immediate children of `prefix` in key order: `"x"` for a key `prefix + "x"`,
    /// `"y/"` once for any keys under `prefix + "y/"`. `after` skips children up to and
    /// including that name; `limit` caps the count.
    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>>;

    /// Every full key and value under `prefix`, in key order, starting after `after`
    /// (a full key), at most `limit` of them. For copying, counting and recursive deletes.
    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>>;

    /// Apply all ops atomically and durably, or none if a [`Op::Check`] fails
    /// ([`StorageError::Conflict`]).
    async fn transact(&self, ops: Vec<Op>) -> Result<()>;

    /// [`Storage::transact`], running `on_commit` once the transaction is durable, in the
    /// order transactions commit: for two transactions that commit one after the other,
    /// the first one's hook has returned before the second one's starts. A cache above
    /// can then write through: what the hooks leave in it is what storage holds.
    ///
    /// A backend that cannot promise that order (the default) never runs the hook; the
    /// caller then learns from the hook's not having run that it must invalidate instead.
    async fn transact_then(&self, ops: Vec<Op>, on_commit: CommitHook) -> Result<()> {
        drop(on_commit);
        self.transact(ops).await
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.transact(vec![Op::Put(key.to_owned(), value)]).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.transact(vec![Op::Delete(key.to_owned())]).await
    }

    /// Flush and release resources; later calls fail with `Unavailable`.
    async fn close(&self) {}

    /// A short name for status output (`sqlite`, `postgresql`, `inmem`).
    fn kind(&self) -> &'static str;

    /// Other processes may write this storage too (several nodes on one database):
    /// in-memory caches above must then be invalidated by [`Storage::invalidations`].
    fn shared(&self) -> bool {
        false
    }

    /// Keys written by any node, as they commit: `k:<key>`, `p:<prefix>` for prefix
    /// deletes, or `*` after a gap in which events may have been lost. `None` for storage
    /// no one else writes.
    fn invalidations(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        None
    }

    /// Take or renew the named lease for `ttl` as `holder`; `true` if `holder` holds it
    /// now. Single-process storage: always `true`.
    async fn acquire_lease(
        &self,
        _name: &str,
        _holder: &str,
        _ttl: std::time::Duration,
    ) -> Result<bool> {
        Ok(true)
    }

    /// Who holds the named lease now, if anyone.
    async fn lease_holder(&self, _name: &str) -> Result<Option<String>> {
        Ok(None)
    }
}

/// The smallest key greater than every key starting with `prefix`, or `None` when the
/// prefix is empty or all 0xFF (no upper bound).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// One-level listing by skip-scan, shared by the database backends: one seek per child,
/// however many descendants each child has. `next(from, exclusive, end)` returns the first
/// key `>= from` (`> from` when exclusive) and `< end`.
pub(crate) async fn skip_scan<F, Fut>(
    prefix: &str,
    after: Option<&str>,
    limit: Option<usize>,
    mut next: F,
) -> Result<Vec<String>>
where
    F: FnMut(Vec<u8>, bool, Option<Vec<u8>>) -> Fut,
    Fut: std::future::Future<Output = Result<Option<Vec<u8>>>>,
{
    let end = prefix_end(prefix.as_bytes());
    let (mut cursor, mut exclusive) = match after {
        Some(a) if a.ends_with('/') => (
            prefix_end(format!("{prefix}{a}").as_bytes()).unwrap_or_default(),
            false,
        ),
        Some(a) => (format!("{prefix}{a}").into_bytes(), true),
        None => (prefix.as_bytes().to_vec(), false),
    };
    let mut out = Vec::new();
    while limit.is_none_or(|l| out.len() < l) {
        let Some(key) = next(cursor.clone(), exclusive, end.clone()).await? else {
            break;
        };
        let key =
            String::from_utf8(key).map_err(|_| StorageError::Backend("non-UTF-8 key".into()))?;
        let child = child_of(prefix, &key).to_owned();
        if child.ends_with('/') {
            match prefix_end(format!("{prefix}{child}").as_bytes()) {
                Some(n) => {
                    cursor = n;
                    exclusive = false;
                }
                None => {
                    out.push(child);
                    break;
                }
            }
        } else {
            cursor = key.into_bytes();
            exclusive = true;
        }
        out.push(child);
    }
    Ok(out)
}

/// Given a key under `prefix`, the child name `list` reports for it.
pub(crate) fn child_of<'a>(prefix: &str, key: &'a str) -> &'a str {
    let rest = &key[prefix.len()..];
    match rest.find('/') {
        Some(i) => &rest[..=i],
        None => rest,
    }
}

#[cfg(test)]
pub(crate) mod conformance {
    //! The one test suite every backend must pass.
    use super::*;

    pub async fn run(s: &dyn Storage) {
        assert_eq!(s.get("missing").await.unwrap(), None);
        s.put("a/b", b"1".to_vec()).await.unwrap();
        s.put("a/c/d", b"2".to_vec()).await.unwrap();
        s.put("a/c/e", b"3".to_vec()).await.unwrap();
        s.put("a/d", b"4".to_vec()).await.unwrap();
        s.put("a0", b"5".to_vec()).await.unwrap();
        s.put("a/\u{e9}t\u{e9}", b"6".to_vec()).await.unwrap();
        assert_eq!(s.get("a/b").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(
            s.list("a/", None, None).await.unwrap(),
            vec!["b", "c/", "d", "\u{e9}t\u{e9}"]
        );
        assert_eq!(
            s.list("a/", Some("b"), Some(2)).await.unwrap(),
            vec!["c/", "d"]
        );
        assert_eq!(
            s.list("a/", Some("c/"), None).await.unwrap(),
            vec!["d", "\u{e9}t\u{e9}"]
        );
        assert_eq!(s.list("", None, None).await.unwrap(), vec!["a/", "a0"]);
        assert_eq!(
            s.list("zzz/", None, None).await.unwrap(),
            Vec::<String>::new()
        );

        let all = s.scan("a/", None, 100).await.unwrap();
        assert_eq!(all.len(), 5);
        let page = s.scan("a/", Some("a/c/d"), 2).await.unwrap();
        assert_eq!(
            page.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            vec!["a/c/e", "a/d"]
        );

        // overwrite and delete
        s.put("a/b", b"11".to_vec()).await.unwrap();
        assert_eq!(s.get("a/b").await.unwrap().as_deref(), Some(&b"11"[..]));
        s.delete("a/b").await.unwrap();
        assert_eq!(s.get("a/b").await.unwrap(), None);
        s.delete("a/b").await.unwrap(); // deleting a missing key is fine

        // check-and-set
        let err = s
            .transact(vec![Op::check("a/d", Some(b"nope")), Op::put("a/x", b"x")])
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Conflict(_)), "{err}");
        assert_eq!(
            s.get("a/x").await.unwrap(),
            None,
            "failed transaction wrote nothing"
        );
        s.transact(vec![Op::check("a/d", Some(b"4")), Op::put("a/x", b"x")])
            .await
            .unwrap();
        s.transact(vec![Op::check("new", None), Op::put("new", b"n")])
            .await
            .unwrap();
        assert!(s
            .transact(vec![Op::check("new", None), Op::put("new", b"n")])
            .await
            .is_err());

        // prefix delete is bounded by the prefix
        s.transact(vec![Op::DeletePrefix("a/c/".into())])
            .await
            .unwrap();
        assert_eq!(
            s.list("a/", None, None).await.unwrap(),
            vec!["d", "x", "\u{e9}t\u{e9}"]
        );
        assert_eq!(s.get("a0").await.unwrap().as_deref(), Some(&b"5"[..]));

        // binary values round-trip
        let bin: Vec<u8> = (0..=255u8).collect();
        s.put("bin", bin.clone()).await.unwrap();
        assert_eq!(s.get("bin").await.unwrap(), Some(bin));
    }

    /// Many concurrent CAS increments on one key: every successful one is kept.
    pub async fn concurrent_cas(s: std::sync::Arc<dyn Storage>) {
        s.put("counter", b"0".to_vec()).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut wins = 0;
                for _ in 0..25 {
                    loop {
                        let cur = s.get("counter").await.unwrap().unwrap();
                        let n: u64 = std::str::from_utf8(&cur).unwrap().parse().unwrap();
                        let next = (n + 1).to_string().into_bytes();
                        match s
                            .transact(vec![
                                Op::Check("counter".into(), Some(cur)),
                                Op::Put("counter".into(), next),
                            ])
                            .await
                        {
                            Ok(()) => {
                                wins += 1;
                                break;
                            }
                            Err(StorageError::Conflict(_)) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                wins
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        assert_eq!(total, 200);
        assert_eq!(
            s.get("counter").await.unwrap().as_deref(),
            Some(&b"200"[..])
        );
    }
}
