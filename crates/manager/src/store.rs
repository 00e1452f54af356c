//! Where the secrets manager keeps its own records (users, groups, projects, memberships,
//! access tokens, secrets managers, grants): one JSON record per entity in a kv-v2 mount of
//! the root namespace, written and read through the core like any secret. There is no
//! second database, and nothing bypasses the barrier.
//!
//! Invariant: a record's key names its kind and id (`users/12`); a record that does not
//! parse is an error, never skipped silently.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use strongroom_core::api::CoreApi;
use strongroom_core::CoreError;

use crate::{Error, Result};

/// The mount, in the root namespace, that holds the records.
pub const MOUNT: &str = "strongroom-manager";

pub async fn ensure_mount<A: CoreApi>(api: &A) -> Result<()> {
    let options = [("version".to_owned(), "2".to_owned())].into();
    match api.enable_secrets_engine("", MOUNT, "kv", options).await {
        Ok(()) => Ok(()),
        // Mounted before (an earlier start, or another node).
        Err(CoreError::BadRequest(m)) if m.contains("already in use") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub async fn put<A: CoreApi, T: Serialize>(api: &A, key: &str, record: &T) -> Result<()> {
    let text = serde_json::to_string(record).map_err(|e| Error::invalid(e.to_string()))?;
    let mut data = Map::new();
    data.insert("record".into(), Value::String(text));
    api.kv_put("", MOUNT, key, data, None).await?;
    Ok(())
}

/// Write a new record that must not exist yet: two nodes picking the same id cannot both
/// succeed. `Ok(false)` when the key is taken.
pub async fn create<A: CoreApi, T: Serialize>(api: &A, key: &str, record: &T) -> Result<bool> {
    let text = serde_json::to_string(record).map_err(|e| Error::invalid(e.to_string()))?;
    let mut data = Map::new();
    data.insert("record".into(), Value::String(text));
    match api.kv_put("", MOUNT, key, data, Some(0)).await {
        Ok(_) => Ok(true),
        Err(CoreError::BadRequest(m)) if m.contains("check-and-set") => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub async fn delete<A: CoreApi>(api: &A, key: &str) -> Result<()> {
    api.kv_delete_all("", MOUNT, key).await?;
    Ok(())
}

/// Every record under `prefix/`, with the rest of its key.
pub async fn load_all<A: CoreApi, T: DeserializeOwned>(
    api: &A,
    prefix: &str,
) -> Result<Vec<(String, T)>> {
    let mut out = Vec::new();
    let mut todo = vec![format!("{prefix}/")];
    while let Some(dir) = todo.pop() {
        for k in api.kv_list("", MOUNT, &dir).await.unwrap_or_default() {
            let key = format!("{dir}{k}");
            if key.ends_with('/') {
                todo.push(key);
                continue;
            }
            let Some(secret) = api.kv_get("", MOUNT, &key, None).await? else {
                continue;
            };
            let text = secret.field("record").ok_or_else(|| {
                Error::Core(strongroom_core::CoreError::Internal(format!(
                    "record {key} has no data"
                )))
            })?;
            let value: T = serde_json::from_str(&text).map_err(|e| {
                Error::Core(strongroom_core::CoreError::Internal(format!(
                    "record {key} does not parse: {e}"
                )))
            })?;
            // `key` was built as `{prefix}/…` above.
            let rest = key.get(prefix.len() + 1..).unwrap_or_default();
            out.push((rest.to_owned(), value));
        }
    }
    Ok(out)
}

/// The generation record's version: bumped by every change to the records (0: none yet).
pub async fn generation<A: CoreApi>(api: &A) -> Result<u64> {
    Ok(api
        .kv_metadata("", MOUNT, "generation")
        .await?
        .map(|m| m.current_version)
        .unwrap_or(0))
}

/// Bump the generation; returns the new one.
pub async fn bump_generation<A: CoreApi>(api: &A) -> Result<u64> {
    let mut data = Map::new();
    data.insert("changed".into(), Value::Bool(true));
    Ok(api.kv_put("", MOUNT, "generation", data, None).await?)
}
