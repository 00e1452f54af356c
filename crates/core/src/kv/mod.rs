//! The key/value secrets engines. A mount's `options.version` picks [`v1`] or [`v2`].
//!
//! Architecture invariant: an engine sees only its mount's storage view and the request;
//! it never sees tokens or policies (access was decided before it is called).

mod v1;
mod v2;

use serde_json::{Map, Value};

use crate::error::Result;
use crate::mounts::LogicalMount;
use crate::{Operation, Response};

pub async fn handle(
    mount: &LogicalMount,
    op: Operation,
    path: &str,
    data: &Map<String, Value>,
) -> Result<Response> {
    match mount.kv_version {
        2 => v2::handle(&mount.view, op, path, data).await,
        _ => v1::handle(mount, op, path, data).await,
    }
}

/// Whether the item a write targets exists (decides `create` vs `update`).
pub async fn exists(mount: &LogicalMount, path: &str) -> Result<Option<bool>> {
    match mount.kv_version {
        2 => v2::exists(&mount.view, path).await,
        _ => Ok(Some(mount.view.get(path).await?.is_some())),
    }
}

/// `after` and `limit` of a paginated LIST.
pub(crate) fn page_params(data: &Map<String, Value>) -> Result<(Option<String>, Option<usize>)> {
    let after = crate::field_str(data, "after")
        .map(|s| s.into_owned())
        .filter(|s| !s.is_empty());
    let limit = match data.get("limit") {
        None => None,
        Some(v) => {
            let n = crate::util::as_i64(v)
                .ok_or_else(|| crate::CoreError::bad("limit must be an integer"))?;
            if n <= 0 {
                None
            } else {
                Some(n as usize)
            }
        }
    };
    Ok((after, limit))
}
