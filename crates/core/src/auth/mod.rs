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

/// A role's token settings as stored and set (OpenBao's `tokenutil.TokenParams`): the
/// same `token_*` keys, with the same older aliases, in every method's roles.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenSettings {
    #[serde(default)]
    pub token_policies: Vec<String>,
    #[serde(default)]
    pub token_ttl: i64,
    #[serde(default)]
    pub token_max_ttl: i64,
    #[serde(default)]
    pub token_explicit_max_ttl: i64,
    #[serde(default)]
    pub token_period: i64,
    #[serde(default)]
    pub token_bound_cidrs: Vec<String>,
    #[serde(default)]
    pub token_num_uses: i64,
    #[serde(default)]
    pub token_type: String,
    #[serde(default)]
    pub token_no_default_policy: bool,
}

/// The fields [`TokenSettings::update`] reads, for a role path's table (with the
/// method's own).
macro_rules! token_setting_fields {
    ($($more:expr),* $(,)?) => {
        &[
            $crate::route::field("token_policies", $crate::route::FieldType::StrList),
            $crate::route::field("policies", $crate::route::FieldType::StrList),
            $crate::route::field("token_ttl", $crate::route::FieldType::Duration),
            $crate::route::field("ttl", $crate::route::FieldType::Duration),
            $crate::route::field("token_max_ttl", $crate::route::FieldType::Duration),
            $crate::route::field("max_ttl", $crate::route::FieldType::Duration),
            $crate::route::field("token_explicit_max_ttl", $crate::route::FieldType::Duration),
            $crate::route::field("token_period", $crate::route::FieldType::Duration),
            $crate::route::field("period", $crate::route::FieldType::Duration),
            $crate::route::field("token_bound_cidrs", $crate::route::FieldType::StrList),
            $crate::route::field("bound_cidrs", $crate::route::FieldType::StrList),
            $crate::route::field("token_num_uses", $crate::route::FieldType::Int),
            $crate::route::field("num_uses", $crate::route::FieldType::Int),
            $crate::route::field("token_type", $crate::route::FieldType::Str),
            $crate::route::field("token_no_default_policy", $crate::route::FieldType::Bool),
            $($more),*
        ]
    };
}

pub(crate) use token_setting_fields;

impl TokenSettings {
    /// Applies the fields a role write gives (the older names where given instead).
    pub(crate) fn update(&mut self, fields: &Fields<'_>) -> Result<()> {
        use crate::error::CoreError;
        let either = |new: &'static str, old: &'static str| {
            if fields.has(old) {
                old
            } else {
                new
            }
        };
        fields.set_str_list(
            either("token_policies", "policies"),
            &mut self.token_policies,
        );
        fields.set_duration(either("token_ttl", "ttl"), &mut self.token_ttl);
        fields.set_duration(either("token_max_ttl", "max_ttl"), &mut self.token_max_ttl);
        fields.set_duration("token_explicit_max_ttl", &mut self.token_explicit_max_ttl);
        fields.set_duration(either("token_period", "period"), &mut self.token_period);
        fields.set_str_list(
            either("token_bound_cidrs", "bound_cidrs"),
            &mut self.token_bound_cidrs,
        );
        for c in &self.token_bound_cidrs {
            if crate::util::parse_cidr(c).is_none() {
                return Err(CoreError::bad(format!(
                    "invalid CIDR {c:?} in token_bound_cidrs"
                )));
            }
        }
        if let Some(n) = fields
            .int("token_num_uses")
            .or_else(|| fields.int("num_uses"))
        {
            if n < 0 {
                return Err(CoreError::bad(
                    "token_num_uses must be a non-negative integer",
                ));
            }
            self.token_num_uses = n;
        }
        fields.set_str("token_type", &mut self.token_type);
        if ![
            "",
            "default",
            "service",
            "batch",
            "default-service",
            "default-batch",
        ]
        .contains(&self.token_type.as_str())
        {
            return Err(CoreError::bad(format!(
                "invalid 'token_type' value {:?}",
                self.token_type
            )));
        }
        fields.set_bool("token_no_default_policy", &mut self.token_no_default_policy);
        for (k, v) in [
            ("token_ttl", self.token_ttl),
            ("token_max_ttl", self.token_max_ttl),
            ("token_explicit_max_ttl", self.token_explicit_max_ttl),
            ("token_period", self.token_period),
        ] {
            if v < 0 {
                return Err(CoreError::bad(format!("{k} cannot be negative")));
            }
        }
        if self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            return Err(CoreError::bad("ttl should not be greater than max ttl"));
        }
        Ok(())
    }

    /// Its keys in a role's JSON, under both names as OpenBao shows them.
    pub(crate) fn write_json(&self, out: &mut serde_json::Map<String, serde_json::Value>) {
        use serde_json::json;
        let token_type = if self.token_type.is_empty() {
            "default"
        } else {
            self.token_type.as_str()
        };
        for (k, v) in [
            ("token_policies", json!(self.token_policies)),
            ("policies", json!(self.token_policies)),
            ("token_ttl", json!(self.token_ttl)),
            ("ttl", json!(self.token_ttl)),
            ("token_max_ttl", json!(self.token_max_ttl)),
            ("max_ttl", json!(self.token_max_ttl)),
            ("token_explicit_max_ttl", json!(self.token_explicit_max_ttl)),
            ("token_period", json!(self.token_period)),
            ("period", json!(self.token_period)),
            ("token_bound_cidrs", json!(self.token_bound_cidrs)),
            ("bound_cidrs", json!(self.token_bound_cidrs)),
            ("token_num_uses", json!(self.token_num_uses)),
            ("num_uses", json!(self.token_num_uses)),
            ("token_type", json!(token_type)),
            (
                "token_no_default_policy",
                json!(self.token_no_default_policy),
            ),
        ] {
            out.insert(k.to_owned(), v);
        }
    }

    /// What [`login_entry`] needs, with the token's networks (the role's, or narrower).
    pub(crate) fn params<'a>(&'a self, bound_cidrs: &'a [String]) -> TokenParams<'a> {
        TokenParams {
            ttl: self.token_ttl,
            max_ttl: self.token_max_ttl,
            explicit_max_ttl: self.token_explicit_max_ttl,
            period: self.token_period,
            num_uses: self.token_num_uses,
            token_type: &self.token_type,
            bound_cidrs,
        }
    }

    /// The policies a login gets: the role's, lower-cased, `default` added unless the role
    /// says not to; never `root`.
    pub(crate) fn login_policies(&self, policies: Vec<String>) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for p in policies {
            let p = p.trim().to_lowercase();
            if !p.is_empty() && !out.contains(&p) {
                out.push(p);
            }
        }
        if !self.token_no_default_policy && !out.iter().any(|p| p == "default") {
            out.push("default".into());
        }
        out.sort();
        // No login grants the root policy, whether the role names it or a templated
        // policy renders it from a claim (a project called "root"), as in OpenBao.
        if out.iter().any(|p| p == "root") {
            return Err(crate::error::CoreError::bad(
                "auth methods cannot create root tokens",
            ));
        }
        Ok(out)
    }
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
