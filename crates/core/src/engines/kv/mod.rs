//! The key/value secrets engines. A mount's `options.version` picks [`v1`] or [`v2`].
//!
//! Architecture invariant: an engine sees only its mount's storage view and the request;
//! it never sees tokens or policies (access was decided before it is called).

mod v1;
pub(crate) mod v2;

use std::collections::BTreeMap;

use super::{BoxFuture, EngineType, MountOptions, SecretsEngine};
use crate::error::{CoreError, Result};
use crate::mounts::LogicalMount;
use crate::route::{field, Field, FieldType as T, Fields, PathSpec};
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
    if let Some(r) = options.get(RELEASE_OPTION) {
        if r != RELEASE_BY_SCOPE || version != "2" {
            return Some(Err(CoreError::bad(format!(
                "invalid option {RELEASE_OPTION}={r:?}: only {RELEASE_BY_SCOPE:?}, on kv version 2"
            ))));
        }
    }
    options.insert("version".into(), version);
    Some(Ok(()))
}

fn select(options: &dyn MountOptions) -> &'static dyn SecretsEngine {
    match options.option("version") {
        Some("2") if options.option(RELEASE_OPTION) == Some(RELEASE_BY_SCOPE) => &KV_V2_SCOPED,
        Some("2") => &KV_V2,
        _ => &KvV1,
    }
}

use Operation::{Delete as D, List as L, Patch as P, Read as R, Update as W};

/// KV version 1: every path is a secret, or a folder to list.
struct KvV1;

static PAGE: &[Field] = &[field("after", T::Str), field("limit", T::Int)];

/// A v1 write's body is the secret itself (any keys); a LIST pages.
static V1_PATHS: &[PathSpec<&str>] =
    &[PathSpec::new("{path*}", &[R, W, D, L], "secret").fields(PAGE)];

impl SecretsEngine for KvV1 {
    fn paths(&self) -> &'static [PathSpec<&'static str>] {
        V1_PATHS
    }
    fn handle<'a>(
        &'a self,
        mount: &'a LogicalMount,
        op: Operation,
        path: &'a str,
        fields: &'a Fields<'a>,
        _: Option<&'a BTreeMap<String, String>>,
    ) -> BoxFuture<'a, Result<Response>> {
        Box::pin(v1::handle(mount, op, path, fields))
    }
    fn exists<'a>(
        &'a self,
        mount: &'a LogicalMount,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Option<bool>>> {
        Box::pin(async move { Ok(Some(mount.view.get(path).await?.is_some())) })
    }
}

/// KV version 2: versioned secrets with metadata, OpenBao's paths. A mount with the
/// option `release = "pipeline-scope"` (a secrets manager's `secrets/kv`) releases a
/// secret's data to a caller only when [`crate::release::released`] says its scope (the
/// key's custom metadata) admits the caller's pipeline claims.
struct KvV2 {
    scoped: bool,
}

static KV_V2: KvV2 = KvV2 { scoped: false };
static KV_V2_SCOPED: KvV2 = KvV2 { scoped: true };

/// The option that makes a kv-v2 mount release by scope, and its one value.
pub(crate) const RELEASE_OPTION: &str = "release";
pub(crate) const RELEASE_BY_SCOPE: &str = "pipeline-scope";

static V2_PATHS: &[PathSpec<&str>] = &[
    PathSpec::new("config", &[R, W], "config").fields(&[
        field("max_versions", T::Int),
        field("cas_required", T::Bool),
        field("metadata_cas_required", T::Bool),
        field("delete_version_after", T::Duration),
    ]),
    PathSpec::new("data/{path*}", &[R, W, P, D], "data").fields(&[
        field("data", T::Map),
        field("options", T::Map),
        field("version", T::Int),
    ]),
    PathSpec::new("delete/{path*}", &[W], "delete").fields(VERSIONS),
    PathSpec::new("undelete/{path*}", &[W], "undelete").fields(VERSIONS),
    PathSpec::new("destroy/{path*}", &[W], "destroy").fields(VERSIONS),
    PathSpec::new("metadata/{path*}", &[L, R, W, P, D], "metadata").fields(&[
        field("after", T::Str),
        field("limit", T::Int),
        field("max_versions", T::Int),
        field("cas_required", T::Bool),
        field("metadata_cas_required", T::Bool),
        field("delete_version_after", T::Duration),
        field("custom_metadata", T::Map),
        field("metadata_cas", T::Int),
    ]),
    PathSpec::new("detailed-metadata/{path*}", &[L], "detailed-metadata").fields(PAGE),
    PathSpec::new("subkeys/{path*}", &[R], "subkeys")
        .fields(&[field("version", T::Int), field("depth", T::Int)]),
];

static VERSIONS: &[Field] = &[field("versions", T::IntList)];

impl SecretsEngine for KvV2 {
    fn paths(&self) -> &'static [PathSpec<&'static str>] {
        V2_PATHS
    }
    fn handle<'a>(
        &'a self,
        mount: &'a LogicalMount,
        op: Operation,
        path: &'a str,
        fields: &'a Fields<'a>,
        claims: Option<&'a BTreeMap<String, String>>,
    ) -> BoxFuture<'a, Result<Response>> {
        // Only a mount that releases by scope gates its reads on the caller's claims.
        let gate = if self.scoped { claims } else { None };
        Box::pin(v2::handle(&mount.view, op, path, fields, gate))
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
pub(crate) fn page_params(fields: &Fields<'_>) -> (Option<String>, Option<usize>) {
    let after = fields
        .str("after")
        .map(|s| s.into_owned())
        .filter(|s| !s.is_empty());
    let limit = fields
        .int("limit")
        .filter(|n| *n > 0)
        .and_then(|n| usize::try_from(n).ok());
    (after, limit)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_tables_are_well_formed() {
        crate::route::check_table(super::V1_PATHS);
        crate::route::check_table(super::V2_PATHS);
    }
}
