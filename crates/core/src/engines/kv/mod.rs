//! The key/value secrets engines. A mount's `options.version` picks [`v1`] or [`v2`].
//!
//! Architecture invariant: an engine sees only its mount's storage view and the request;
//! it never sees tokens or policies (access was decided before it is called).

mod v1;
mod v2;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{BoxFuture, EngineType, MountOptions, SecretsEngine};
use crate::error::{CoreError, Result};
use crate::mounts::LogicalMount;
use crate::route::PathSpec;
use crate::{Operation, Response};

/// `kv` mounts (`generic`, `kv-v1` and `kv-v2` are accepted as aliases when mounting).
pub(crate) static TYPE: EngineType = EngineType {
    name: "kv",
    prepare,
    select,
};

fn prepare(kind: &str, options: &mut BTreeMap<String, String>) -> Option<Result<()>> {
    let version = match kind {
        "kv" | "generic" => options
            .get("version")
            .cloned()
            .unwrap_or_else(|| "1".into()),
        "kv-v1" => "1".into(),
        "kv-v2" => "2".into(),
        _ => return None,
    };
    if version != "1" && version != "2" {
        return Some(Err(CoreError::bad(format!(
            "invalid kv version {version:?}: use 1 or 2"
        ))));
    }
    options.insert("version".into(), version);
    Some(Ok(()))
}

fn select(options: &dyn MountOptions) -> &'static dyn SecretsEngine {
    match options.option("version") {
        Some("2") => &KvV2,
        _ => &KvV1,
    }
}

use Operation::{Delete as D, List as L, Patch as P, Read as R, Update as W};

/// KV version 1: every path is a secret, or a folder to list.
struct KvV1;

static V1_PATHS: &[PathSpec<&str>] = &[PathSpec::new("{path*}", &[R, W, D, L], "secret")];

impl SecretsEngine for KvV1 {
    fn paths(&self) -> &'static [PathSpec<&'static str>] {
        V1_PATHS
    }
    fn handle<'a>(
        &'a self,
        mount: &'a LogicalMount,
        op: Operation,
        path: &'a str,
        data: &'a Map<String, Value>,
    ) -> BoxFuture<'a, Result<Response>> {
        Box::pin(v1::handle(mount, op, path, data))
    }
    fn exists<'a>(
        &'a self,
        mount: &'a LogicalMount,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Option<bool>>> {
        Box::pin(async move { Ok(Some(mount.view.get(path).await?.is_some())) })
    }
}

/// KV version 2: versioned secrets with metadata, OpenBao's paths.
struct KvV2;

static V2_PATHS: &[PathSpec<&str>] = &[
    PathSpec::new("config", &[R, W], "config"),
    PathSpec::new("data/{path*}", &[R, W, P, D], "data"),
    PathSpec::new("delete/{path*}", &[W], "delete"),
    PathSpec::new("undelete/{path*}", &[W], "undelete"),
    PathSpec::new("destroy/{path*}", &[W], "destroy"),
    PathSpec::new("metadata/{path*}", &[L, R, W, P, D], "metadata"),
    PathSpec::new("detailed-metadata/{path*}", &[L], "detailed-metadata"),
    PathSpec::new("subkeys/{path*}", &[R], "subkeys"),
];

impl SecretsEngine for KvV2 {
    fn paths(&self) -> &'static [PathSpec<&'static str>] {
        V2_PATHS
    }
    fn handle<'a>(
        &'a self,
        mount: &'a LogicalMount,
        op: Operation,
        path: &'a str,
        data: &'a Map<String, Value>,
    ) -> BoxFuture<'a, Result<Response>> {
        Box::pin(v2::handle(&mount.view, op, path, data))
    }
    fn exists<'a>(
        &'a self,
        mount: &'a LogicalMount,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Option<bool>>> {
        Box::pin(v2::exists(&mount.view, path))
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_tables_are_well_formed() {
        crate::route::check_table(super::V1_PATHS);
        crate::route::check_table(super::V2_PATHS);
    }
}
