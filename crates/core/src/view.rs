//! A storage view: the barrier seen through a key prefix. Each namespace and each mount
//! gets one, so an engine cannot read outside its own subtree.

use std::sync::Arc;

use strongroom_barrier::{Barrier, BarrierOp};

use crate::error::Result;

#[derive(Clone)]
pub struct View {
    barrier: Arc<Barrier>,
    prefix: String,
}

impl View {
    pub fn new(barrier: Arc<Barrier>, prefix: impl Into<String>) -> View {
        View {
            barrier,
            prefix: prefix.into(),
        }
    }

    pub fn sub(&self, prefix: &str) -> View {
        View {
            barrier: self.barrier.clone(),
            prefix: crate::util::concat(&[&self.prefix, prefix]),
        }
    }

    /// The view of the secrets engine mounted with `uuid` (`logical/<uuid>/`).
    pub fn logical(&self, uuid: &str) -> View {
        View {
            barrier: self.barrier.clone(),
            prefix: crate::util::concat(&[&self.prefix, "logical/", uuid, "/"]),
        }
    }

    /// A view of the whole barrier (no prefix).
    pub fn root(&self) -> View {
        View::new(self.barrier.clone(), "")
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// [`Barrier::key_fence`] of `k` in this view.
    pub fn key_fence(&self, k: &str) -> Option<strongroom_barrier::KeyFence> {
        self.barrier.key_fence(&self.key(k))
    }

    /// [`Barrier::key_unwritten_since`].
    pub fn key_unwritten_since(&self, fence: &strongroom_barrier::KeyFence) -> bool {
        self.barrier.key_unwritten_since(fence)
    }

    fn key(&self, k: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + k.len());
        key.push_str(&self.prefix);
        key.push_str(k);
        key
    }

    /// `op` with its key made absolute (this view's prefix added), for a transaction that
    /// also touches keys outside the view ([`View::transact_absolute`]).
    pub fn absolute(&self, op: BarrierOp) -> BarrierOp {
        match op {
            BarrierOp::Put(k, v) => BarrierOp::Put(self.key(&k), v),
            BarrierOp::PutFresh(k, v) => BarrierOp::PutFresh(self.key(&k), v),
            BarrierOp::Delete(k) => BarrierOp::Delete(self.key(&k)),
            BarrierOp::DeletePrefix(k) => BarrierOp::DeletePrefix(self.key(&k)),
            BarrierOp::Check(k, v) => BarrierOp::Check(self.key(&k), v),
        }
    }

    pub async fn get(&self, k: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.barrier.get(&self.key(k)).await?)
    }

    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, k: &str) -> Result<Option<T>> {
        let key = self.key(k);
        match self
            .barrier
            .get_with(&key, |b| serde_json::from_slice::<T>(b))
            .await?
        {
            None => Ok(None),
            Some(r) => r
                .map(Some)
                .map_err(|e| crate::CoreError::Internal(format!("corrupt entry at {key}: {e}"))),
        }
    }

    /// An entry as `decode` parses it, parsed once while it stays cached (see
    /// `Barrier::get_decoded`); secret data in it must be zeroized on drop.
    pub async fn get_decoded<T: Send + Sync + 'static>(
        &self,
        k: &str,
        decode: impl FnOnce(&[u8]) -> std::result::Result<T, String>,
    ) -> Result<Option<Arc<T>>> {
        Ok(self.barrier.get_decoded(&self.key(k), decode).await?)
    }

    /// Value and version token (the stored ciphertext) for check-and-set.
    pub async fn get_versioned(&self, k: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        Ok(self.barrier.get_versioned(&self.key(k)).await?)
    }

    pub async fn put(&self, k: &str, v: &[u8]) -> Result<()> {
        Ok(self.barrier.put(&self.key(k), v).await?)
    }

    pub async fn put_json<T: serde::Serialize>(&self, k: &str, v: &T) -> Result<()> {
        let bytes = serde_json::to_vec(v).map_err(|e| crate::CoreError::Internal(e.to_string()))?;
        self.put(k, &bytes).await
    }

    pub async fn delete(&self, k: &str) -> Result<()> {
        Ok(self.barrier.delete(&self.key(k)).await?)
    }

    pub async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>> {
        Ok(self.barrier.list(&self.key(prefix), after, limit).await?)
    }

    /// Decrypted entries under `prefix`, keys relative to this view.
    pub async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let after = after.map(|a| self.key(a));
        let n = self.prefix.len();
        Ok(self
            .barrier
            .scan(&self.key(prefix), after.as_deref(), limit)
            .await?
            .into_iter()
            .map(|(k, v)| (k[n..].to_owned(), v))
            .collect())
    }

    /// Atomic ops with keys relative to this view.
    pub async fn transact(&self, ops: Vec<BarrierOp>) -> Result<(), TxnError> {
        let ops = ops.into_iter().map(|op| self.absolute(op)).collect();
        self.transact_absolute(ops).await
    }

    /// Atomic ops whose keys are already absolute (see [`View::absolute`]).
    pub async fn transact_absolute(&self, ops: Vec<BarrierOp>) -> Result<(), TxnError> {
        match self.barrier.transact(ops).await {
            Ok(()) => Ok(()),
            Err(strongroom_barrier::BarrierError::Storage(
                strongroom_storage::StorageError::Conflict(_),
            )) => Err(TxnError::Conflict),
            Err(e) => Err(TxnError::Other(e.into())),
        }
    }

    pub async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        match self
            .transact(vec![BarrierOp::DeletePrefix(prefix.to_owned())])
            .await
        {
            Ok(()) => Ok(()),
            Err(TxnError::Conflict) => Err(crate::CoreError::Internal(
                "conflict on prefix delete".into(),
            )),
            Err(TxnError::Other(e)) => Err(e),
        }
    }
}

/// A transaction failed: a check did not hold (retry), or something else went wrong.
#[derive(Debug)]
pub enum TxnError {
    Conflict,
    Other(crate::CoreError),
}

impl From<TxnError> for crate::CoreError {
    fn from(e: TxnError) -> Self {
        match e {
            TxnError::Conflict => {
                crate::CoreError::Internal("storage conflict persisted after retries".into())
            }
            TxnError::Other(e) => e,
        }
    }
}
