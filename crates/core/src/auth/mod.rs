//! Auth methods mounted under `auth/<path>/` (the token store, always at `auth/token/`, is
//! the core's own). Each is a module that declares its paths (a route table) and serves
//! them behind [`AuthMethod`]; [`TYPES`] names the methods the server offers. Offering a
//! new method is a new module, its table and one entry in [`TYPES`].
//!
//! Architecture invariant: a method decides who a caller is (a login's credentials), never
//! what a token may do: the ACL decides that, before [`AuthMethod::handle`] is called.

pub(crate) mod approle;
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
static TYPES: &[AuthType] = &[
    AuthType {
        names: &["jwt", "oidc"],
        method: &jwt::JwtAuth,
    },
    AuthType {
        names: &["approle"],
        method: &approle::AppRole,
    },
];

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

/// What a role of any method says about the tokens its logins get (OpenBao's
/// `tokenutil.TokenParams`).
pub(crate) struct TokenParams<'a> {
    pub ttl: i64,
    pub max_ttl: i64,
    pub explicit_max_ttl: i64,
    pub period: i64,
    pub num_uses: i64,
    /// `service`, `batch`, `default-service`, `default-batch` or empty (service).
    pub token_type: &'a str,
    pub bound_cidrs: &'a [String],
}

/// The entry of a token a login issues: its TTL from the role, within the mount's (else
/// the server's) default and max; renewals stop at that max; an orphan, as every login's
/// token is. `policies` are final (sorted, `default` added or not by the caller).
#[allow(clippy::too_many_arguments)]
pub(crate) fn login_entry(
    core: &Core,
    ns: &NsState,
    mount: &MountEntry,
    p: &TokenParams<'_>,
    policies: Vec<String>,
    meta: std::collections::BTreeMap<String, String>,
    display_name: String,
    role_name: String,
) -> TokenEntry {
    let batch = matches!(p.token_type, "batch" | "default-batch");
    let mounted_default = if mount.config.default_lease_ttl > 0 {
        mount.config.default_lease_ttl
    } else {
        core.cfg.default_lease_ttl
    };
    let mounted_max = if mount.config.max_lease_ttl > 0 {
        mount.config.max_lease_ttl
    } else {
        core.cfg.max_lease_ttl
    };
    let mut ttl = if p.period > 0 {
        p.period
    } else if p.ttl > 0 {
        p.ttl
    } else {
        mounted_default
    };
    let max = if p.max_ttl > 0 {
        p.max_ttl.min(mounted_max)
    } else {
        mounted_max
    };
    if p.period == 0 && max > 0 {
        ttl = ttl.min(max);
    }
    if p.explicit_max_ttl > 0 {
        ttl = ttl.min(p.explicit_max_ttl);
    }
    let now = crate::util::now_secs();
    TokenEntry {
        hash: String::new(),
        accessor: String::new(),
        parent: None,
        policies,
        meta,
        display_name,
        num_uses: if batch { 0 } else { p.num_uses },
        creation_time: now,
        ttl,
        explicit_max_ttl: p.explicit_max_ttl,
        // Renewals stop at the role's (or the mount's) max TTL, as in OpenBao.
        max_ttl: if batch || p.period > 0 { 0 } else { max },
        period: if batch { 0 } else { p.period },
        renewable: !batch,
        expire_time: if ttl > 0 { now + ttl } else { 0 },
        namespace_id: ns.ns.id.clone(),
        path: format!("auth/{}login", mount.path),
        batch,
        orphan: true,
        entity_id: String::new(),
        role: role_name,
        bound_cidrs: p.bound_cidrs.to_vec(),
    }
}
