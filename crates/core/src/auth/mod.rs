//! Auth methods mounted under `auth/<path>/` (the token store, always at `auth/token/`, is
//! the core's own). Each is a module that declares its paths (a route table) and serves
//! them behind [`AuthMethod`]; [`TYPES`] names the methods the server offers. Offering a
//! new method is a new module, its table and one entry in [`TYPES`].
//!
//! Architecture invariant: a method decides who a caller is (a login's credentials), never
//! what a token may do: the ACL decides that, before [`AuthMethod::handle`] is called.

pub(crate) mod jwks;
pub(crate) mod jwt;

use std::net::IpAddr;
use std::sync::Arc;

use crate::engines::BoxFuture;
use crate::error::Result;
use crate::mounts::MountEntry;
use crate::namespace::NsState;
use crate::route::{Fields, PathSpec};
use crate::token::TokenEntry;
use crate::{Active, Core, Operation, Response};

/// An auth method: logs callers in, and serves its own configuration paths.
pub(crate) trait AuthMethod: Send + Sync {
    /// Its paths, relative to the mount. The entry marked `unauthenticated` is the login;
    /// the core answers 404 for a path no entry declares.
    fn paths(&self) -> &'static [PathSpec<&'static str>];
    /// A login: check the credentials in `fields` and issue a token (stored, unless batch).
    #[allow(clippy::too_many_arguments)]
    fn login<'a>(
        &'a self,
        core: &'a Core,
        active: &'a Active,
        ns: &'a Arc<NsState>,
        mount: &'a MountEntry,
        fields: &'a Fields<'a>,
        client_ip: Option<IpAddr>,
    ) -> BoxFuture<'a, Result<(String, TokenEntry)>>;
    /// An inline login: the token is for this one request and never stored.
    #[allow(clippy::too_many_arguments)]
    fn inline_login<'a>(
        &'a self,
        core: &'a Core,
        active: &'a Active,
        ns: &'a Arc<NsState>,
        mount: &'a MountEntry,
        fields: &'a Fields<'a>,
        client_ip: Option<IpAddr>,
    ) -> BoxFuture<'a, Result<Arc<TokenEntry>>>;
    /// Its other paths (configuration, roles); the ACL was checked by the core.
    #[allow(clippy::too_many_arguments)]
    fn handle<'a>(
        &'a self,
        core: &'a Core,
        ns: &'a Arc<NsState>,
        mount: &'a MountEntry,
        op: Operation,
        path: &'a str,
        fields: &'a Fields<'a>,
    ) -> BoxFuture<'a, Result<Response>>;
}

/// An auth method type the server offers.
pub(crate) struct AuthType {
    /// What `sys/auth/<path>` accepts as `type` for it.
    pub names: &'static [&'static str],
    pub method: &'static dyn AuthMethod,
}

/// Every auth method type the server offers (besides the token store).
static TYPES: &[AuthType] = &[AuthType {
    names: &["jwt", "oidc"],
    method: &jwt::JwtAuth,
}];

/// The method serving mounts of type `kind`.
pub(crate) fn method_for(kind: &str) -> Option<&'static dyn AuthMethod> {
    TYPES
        .iter()
        .find(|t| t.names.contains(&kind))
        .map(|t| t.method)
}

/// The names `sys/auth/<path>` accepts, for an error that lists them.
pub(crate) fn offered() -> Vec<&'static str> {
    std::iter::once("token")
        .chain(TYPES.iter().flat_map(|t| t.names.iter().copied()))
        .collect()
}
