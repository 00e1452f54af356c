//! Secrets engines. Each is a module that declares its paths (a route table) and serves
//! them behind [`SecretsEngine`]; [`TYPES`] names the mount types the server offers and
//! picks the engine that serves a mount. Offering a new engine is a new module, its table
//! and one entry in [`TYPES`]: the core routes, checks and dispatches through the trait.
//!
//! Architecture invariant: an engine sees only its mount (storage view and settings) and
//! the request; it never sees tokens or policies (access was decided before it is called).

pub(crate) mod kv;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use crate::error::{CoreError, Result};
use crate::mounts::LogicalMount;
use crate::route::{Fields, PathSpec};
use crate::{Operation, Response};

/// A boxed future: what a trait object's async method returns.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A secrets engine: serves the requests under each of its mounts.
pub(crate) trait SecretsEngine: Send + Sync {
    /// Its paths, relative to the mount. The core answers 404 for a path no entry
    /// declares and 405 for an operation the entry does not serve, before [`handle`].
    ///
    /// [`handle`]: SecretsEngine::handle
    fn paths(&self) -> &'static [PathSpec<&'static str>];
    /// Serve `op` on `path` (the request path after the mount's), with the request's
    /// fields as its entry declares them. `claims` are the caller's pipeline claims (its
    /// token's metadata), `None` for a trusted caller (root): a mount that releases by
    /// scope matches them with [`crate::release::released`].
    fn handle<'a>(
        &'a self,
        mount: &'a LogicalMount,
        op: Operation,
        path: &'a str,
        fields: &'a Fields<'a>,
        claims: Option<&'a BTreeMap<String, String>>,
    ) -> BoxFuture<'a, Result<Response>>;
    /// Whether what a write to `path` targets exists (`Some(false)`: the write is a
    /// create); `None` when the engine does not tell creates from updates.
    fn exists<'a>(
        &'a self,
        mount: &'a LogicalMount,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Option<bool>>>;
}

/// A mount's options, however its mount table holds them.
pub(crate) trait MountOptions {
    fn option(&self, key: &str) -> Option<&str>;
}

impl MountOptions for BTreeMap<String, String> {
    fn option(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// A mount type the server offers.
pub(crate) struct EngineType {
    /// The name stored in the mount table (`type` in `sys/mounts`).
    pub name: &'static str,
    /// Whether `sys/mounts/<path>` asking for `type` means this engine (aliases
    /// included): `None` if not; else the options made what is stored, or `Err` for
    /// options the engine cannot serve.
    pub prepare: fn(&str, &mut BTreeMap<String, String>) -> Option<Result<()>>,
    /// The engine that serves a mount of this type with these options.
    pub select: fn(&dyn MountOptions) -> &'static dyn SecretsEngine,
}

/// Every mount type the server offers.
static TYPES: &[&EngineType] = &[&kv::TYPE];

/// The stored type and options of a new mount asked for as `kind` with `options`.
pub(crate) fn prepare(
    kind: &str,
    mut options: BTreeMap<String, String>,
) -> Result<(String, BTreeMap<String, String>)> {
    for t in TYPES {
        if let Some(prepared) = (t.prepare)(kind, &mut options) {
            return prepared.map(|()| (t.name.to_owned(), options));
        }
    }
    let offered: Vec<&str> = TYPES.iter().map(|t| t.name).collect();
    Err(CoreError::bad(format!(
        "plugin not found in the catalog: {kind}; this server's secrets engines are: {}",
        offered.join(", ")
    )))
}

/// The engine serving a mount stored with `kind` and `options`.
pub(crate) fn engine_for(kind: &str, options: &dyn MountOptions) -> &'static dyn SecretsEngine {
    TYPES
        .iter()
        .find(|t| t.name == kind)
        .map_or(&Unavailable, |t| (t.select)(options))
}

/// What serves a mount whose stored type this server does not offer (written by another
/// build): every request is refused, saying why.
struct Unavailable;

impl SecretsEngine for Unavailable {
    fn paths(&self) -> &'static [PathSpec<&'static str>] {
        static ANY: &[PathSpec<&str>] = &[PathSpec::new(
            "{path*}",
            &[
                Operation::Read,
                Operation::List,
                Operation::Update,
                Operation::Patch,
                Operation::Delete,
            ],
            "",
        )];
        ANY
    }
    fn handle<'a>(
        &'a self,
        _: &'a LogicalMount,
        _: Operation,
        _: &'a str,
        _: &'a Fields<'a>,
        _: Option<&'a BTreeMap<String, String>>,
    ) -> BoxFuture<'a, Result<Response>> {
        Box::pin(async {
            Err(CoreError::bad(
                "this mount's secrets engine type is not offered by this server",
            ))
        })
    }
    fn exists<'a>(
        &'a self,
        _: &'a LogicalMount,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Option<bool>>> {
        Box::pin(async { Ok(None) })
    }
}
