//! KV version 1: one unversioned JSON object per path.

use serde_json::{json, Value};

use crate::error::{CoreError, Result};
use crate::mounts::LogicalMount;
use crate::route::Fields;
use crate::{Operation, Response};

/// Whether a secret may be stored under `path`: not the mount's root, no dot segments.
fn storable(path: &str) -> bool {
    !path.is_empty() && !path.split('/').any(|s| s == ".." || s == ".")
}

pub async fn handle(
    mount: &LogicalMount,
    op: Operation,
    path: &str,
    fields: &Fields<'_>,
) -> Result<Response> {
    let view = &mount.view;
    match op {
        Operation::List => {
            let (after, limit) = super::page_params(fields);
            let prefix = if path.is_empty() || path.ends_with('/') {
                path.to_owned()
            } else {
                format!("{path}/")
            };
            let keys = view.list(&prefix, after.as_deref(), limit).await?;
            if keys.is_empty() {
                return Err(CoreError::NotFound(String::new()));
            }
            Ok(Response::list(keys))
        }
        Operation::Read => {
            if !storable(path) {
                // Nothing is stored there: OpenBao answers a plain 404 (the mount's root too).
                return Err(CoreError::NotFound(String::new()));
            }
            match view.get_json::<Value>(path).await? {
                None => Err(CoreError::NotFound(String::new())),
                Some(v) => {
                    let ttl = if mount.default_lease_ttl > 0 {
                        mount.default_lease_ttl
                    } else {
                        768 * 3600
                    };
                    let mut r = Response::data(v);
                    r.lease_duration = ttl;
                    Ok(r)
                }
            }
        }
        Operation::Create | Operation::Update => {
            if path.is_empty() {
                return Err(CoreError::bad("missing path"));
            }
            if !storable(path) {
                return Err(CoreError::bad(format!("invalid path {path:?}")));
            }
            if path.ends_with('/') {
                return Err(CoreError::bad("cannot write to a path ending in '/'"));
            }
            let body = fields.body();
            if body.is_empty() {
                return Err(CoreError::bad("missing data fields"));
            }
            view.put_json(path, &json!(body)).await?;
            Ok(Response::none())
        }
        Operation::Delete => {
            // Nothing can be stored at the root or a dot path: deleting it is a no-op, 204.
            if storable(path) {
                view.delete(path).await?;
            }
            Ok(Response::none())
        }
        _ => Err(CoreError::UnsupportedOperation),
    }
}
