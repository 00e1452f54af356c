//! The `jwt` auth method (OpenBao's vault-plugin-auth-jwt API): how a CI job proves who
//! it is with its signed ID token.
//!
//! Storage inside the mount's view: `config`, `role/<name>`. Login validates in OpenBao's
//! order — role, role type, CIDRs, signature with an allow-listed asymmetric algorithm,
//! `iss`, `sub`, `aud` (string or array; a token with `aud` against a role without
//! `bound_audiences` is refused, CVE-2024-5798), `exp`/`nbf`/`iat` with leeways, user
//! claim, bound claims — then issues a token from the role's settings.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use strongroom_jwt::{glob_match, Jwt, JwtError, KeySet};

use crate::error::{CoreError, Result};
use crate::mounts::MountEntry;
use crate::namespace::NsState;
use crate::route::{field, Field, FieldType as T, Fields};
use crate::token::{self, TokenEntry};
use crate::view::View;
use crate::{util, Active, Core, Operation, Response};

const DEFAULT_CLOCK_SKEW: i64 = 60;
/// Seconds a verified signature is remembered (cleared early on any config change).
const VERIFIED_TTL: i64 = 60;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JwtConfig {
    #[serde(default)]
    pub jwt_validation_pubkeys: Vec<String>,
    #[serde(default)]
    pub jwks_url: String,
    #[serde(default)]
    pub jwks_ca_pem: String,
    #[serde(default)]
    pub oidc_discovery_url: String,
    #[serde(default)]
    pub oidc_discovery_ca_pem: String,
    #[serde(default)]
    pub bound_issuer: String,
    #[serde(default)]
    pub jwt_supported_algs: Vec<String>,
    #[serde(default)]
    pub default_role: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JwtRole {
    pub role_type: String,
    pub user_claim: String,
    #[serde(default)]
    pub user_claim_json_pointer: bool,
    #[serde(default)]
    pub bound_audiences: Vec<String>,
    #[serde(default)]
    pub bound_subject: String,
    #[serde(default)]
    pub bound_claims: Map<String, Value>,
    #[serde(default)]
    pub bound_claims_type: String,
    #[serde(default)]
    pub claim_mappings: BTreeMap<String, String>,
    #[serde(default)]
    pub groups_claim: String,
    #[serde(flatten)]
    pub token: super::TokenSettings,
    #[serde(default)]
    pub token_policies_template_claims: bool,
    #[serde(default)]
    pub clock_skew_leeway: i64,
    #[serde(default)]
    pub expiration_leeway: i64,
    #[serde(default)]
    pub not_before_leeway: i64,
    #[serde(default)]
    pub allowed_redirect_uris: Vec<String>,
}

/// A jwt mount's caches (JWKS, verified JWTs, parsed roles, inline logins) are stale once
/// its config (`auth/<uuid>/config`) or a role (`auth/<uuid>/role/<name>`) changes.
pub(crate) fn stale_by(_key: &str, rel: &str) -> Option<crate::Stale> {
    let (_uuid, rest) = rel.strip_prefix("auth/")?.split_once('/')?;
    (rest == "config" || rest.starts_with("role/")).then_some(crate::Stale::JwtLogins)
}

fn mount_view(ns: &NsState, m: &MountEntry) -> View {
    ns.view.sub(&format!("auth/{}/", m.uuid))
}

/// The fields of `auth/<jwt>/config`.
static CONFIG_FIELDS: &[Field] = &[
    field("jwt_validation_pubkeys", T::StrList),
    field("jwks_url", T::Str),
    field("jwks_ca_pem", T::Str),
    field("oidc_discovery_url", T::Str),
    field("oidc_discovery_ca_pem", T::Str),
    field("bound_issuer", T::Str),
    field("jwt_supported_algs", T::StrList),
    field("default_role", T::Str),
];

/// The fields of `auth/<jwt>/role/<name>` (OpenBao's names and their older aliases).
static ROLE_FIELDS: &[Field] = super::token_setting_fields!(
    field("role_type", T::Str),
    field("user_claim", T::Str),
    field("user_claim_json_pointer", T::Bool),
    field("bound_audiences", T::StrList),
    field("bound_subject", T::Str),
    field("bound_claims", T::Any),
    field("bound_claims_type", T::Str),
    field("claim_mappings", T::Any),
    field("groups_claim", T::Str),
    field("token_policies_template_claims", T::Bool),
    field("clock_skew_leeway", T::Duration),
    field("expiration_leeway", T::Duration),
    field("not_before_leeway", T::Duration),
    field("allowed_redirect_uris", T::StrList),
);

impl JwtConfig {
    fn to_json(&self) -> Value {
        json!({
            "bound_issuer": self.bound_issuer,
            "default_role": self.default_role,
            "jwks_ca_pem": self.jwks_ca_pem,
            "jwks_url": self.jwks_url,
            "jwt_supported_algs": self.jwt_supported_algs,
            "jwt_validation_pubkeys": self.jwt_validation_pubkeys,
            "oidc_discovery_ca_pem": self.oidc_discovery_ca_pem,
            "oidc_discovery_url": self.oidc_discovery_url,
            "oidc_client_id": "",
            "oidc_response_mode": "",
            "oidc_response_types": [],
            "namespace_in_state": true,
            "provider_config": {},
        })
    }

    fn algs(&self) -> Vec<&str> {
        if self.jwt_supported_algs.is_empty() {
            vec!["RS256"]
        } else {
            self.jwt_supported_algs.iter().map(String::as_str).collect()
        }
    }
}

impl JwtRole {
    fn to_json(&self) -> Value {
        let mut v = json!({
            "role_type": self.role_type,
            "user_claim": self.user_claim,
            "user_claim_json_pointer": self.user_claim_json_pointer,
            "bound_audiences": self.bound_audiences,
            "bound_subject": self.bound_subject,
            "bound_claims": if self.bound_claims.is_empty() { Value::Null } else { Value::Object(self.bound_claims.clone()) },
            "bound_claims_type": self.bound_claims_type,
            "claim_mappings": if self.claim_mappings.is_empty() { Value::Null } else { json!(self.claim_mappings) },
            "groups_claim": self.groups_claim,
            "token_policies_template_claims": self.token_policies_template_claims,
            "clock_skew_leeway": self.clock_skew_leeway,
            "expiration_leeway": self.expiration_leeway,
            "not_before_leeway": self.not_before_leeway,
            "allowed_redirect_uris": self.allowed_redirect_uris,
            "oidc_scopes": Value::Null,
            "verbose_oidc_logging": false,
            "max_age": 0,
        });
        if let Value::Object(m) = &mut v {
            self.token.write_json(m);
        }
        v
    }

    fn update(&mut self, fields: &Fields<'_>) -> Result<()> {
        fields.set_str("role_type", &mut self.role_type);
        if self.role_type.is_empty() {
            self.role_type = "oidc".into();
        }
        if self.role_type != "jwt" && self.role_type != "oidc" {
            return Err(CoreError::bad(format!(
                "invalid 'role_type': {}",
                self.role_type
            )));
        }
        fields.set_str("user_claim", &mut self.user_claim);
        fields.set_bool("user_claim_json_pointer", &mut self.user_claim_json_pointer);
        fields.set_str_list("bound_audiences", &mut self.bound_audiences);
        fields.set_str("bound_subject", &mut self.bound_subject);
        if let Some(v) = fields.value("bound_claims") {
            self.bound_claims = match v {
                Value::Object(m) => m.clone(),
                Value::Null => Map::new(),
                Value::String(s) if s.is_empty() => Map::new(),
                Value::String(s) => serde_json::from_str(s)
                    .map_err(|_| CoreError::bad("bound_claims must be a map"))?,
                _ => return Err(CoreError::bad("bound_claims must be a map")),
            };
        }
        fields.set_str("bound_claims_type", &mut self.bound_claims_type);
        if self.bound_claims_type.is_empty() {
            self.bound_claims_type = "string".into();
        }
        match self.bound_claims_type.as_str() {
            "string" => {}
            "glob" => {
                for (k, v) in &self.bound_claims {
                    let ok = match v {
                        Value::String(_) => true,
                        Value::Array(a) => a.iter().all(Value::is_string),
                        _ => false,
                    };
                    if !ok {
                        return Err(CoreError::bad(format!(
                            "claim is not a string or list: {k}"
                        )));
                    }
                }
            }
            other => {
                return Err(CoreError::bad(format!(
                    "invalid 'bound_claims_type': {other}"
                )))
            }
        }
        if let Some(v) = fields.value("claim_mappings") {
            self.claim_mappings = match v {
                Value::Object(m) => m
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect(),
                Value::Null => BTreeMap::new(),
                _ => return Err(CoreError::bad("claim_mappings must be a map of strings")),
            };
            // A claim mapped onto `role` would let a token's claims rename the role its
            // token shows, as OpenBao refuses.
            if self.claim_mappings.values().any(|v| v == "role") {
                return Err(CoreError::bad(
                    "metadata key \"role\" is reserved and may not be a mapping destination",
                ));
            }
        }
        fields.set_str("groups_claim", &mut self.groups_claim);
        self.token.update(fields)?;
        fields.set_bool(
            "token_policies_template_claims",
            &mut self.token_policies_template_claims,
        );
        fields.set_duration("clock_skew_leeway", &mut self.clock_skew_leeway);
        fields.set_duration("expiration_leeway", &mut self.expiration_leeway);
        fields.set_duration("not_before_leeway", &mut self.not_before_leeway);
        fields.set_str_list("allowed_redirect_uris", &mut self.allowed_redirect_uris);
        if self.user_claim.is_empty() {
            return Err(CoreError::bad("a user claim must be defined on the role"));
        }
        if self.role_type == "oidc" && self.allowed_redirect_uris.is_empty() {
            return Err(CoreError::bad(
                "'allowed_redirect_uris' must be set if 'role_type' is 'oidc' or unspecified.",
            ));
        }
        if self.role_type == "jwt"
            && self.bound_audiences.is_empty()
            && self.bound_claims.is_empty()
            && self.bound_subject.is_empty()
        {
            return Err(CoreError::bad(
                "must have at least one bound constraint when creating/updating a role",
            ));
        }
        Ok(())
    }
}

async fn load_config(view: &View) -> Result<Option<JwtConfig>> {
    view.get_json("config").await
}

fn validate_role_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') {
        return Err(CoreError::bad(format!("invalid role name {name:?}")));
    }
    Ok(())
}

/// The jwt auth method.
pub(crate) struct JwtAuth;

static PATHS: &[crate::route::PathSpec<&str>] = {
    use crate::route::PathSpec;
    use Operation::{Delete as D, List as L, Read as R, Update as W};
    &[
        PathSpec::new("login", &[W], "login")
            .unauthenticated()
            .fields(&[field("role", T::Str), field("jwt", T::Str)]),
        PathSpec::new("config", &[R, W], "config").fields(CONFIG_FIELDS),
        PathSpec::new("role/?", &[L], "role"),
        PathSpec::new("role/{name}", &[R, W, D], "role").fields(ROLE_FIELDS),
    ]
};

impl crate::auth::AuthMethod for JwtAuth {
    fn paths(&self) -> &'static [crate::route::PathSpec<&'static str>] {
        PATHS
    }
    fn login<'a>(
        &'a self,
        core: &'a Core,
        active: &'a Active,
        ns: &'a Arc<NsState>,
        mount: &'a MountEntry,
        fields: &'a Fields<'a>,
        client_ip: Option<IpAddr>,
    ) -> crate::engines::BoxFuture<'a, Result<(String, TokenEntry)>> {
        Box::pin(login(core, active, ns, mount, fields, client_ip, true))
    }
    fn inline_login<'a>(
        &'a self,
        core: &'a Core,
        active: &'a Active,
        ns: &'a Arc<NsState>,
        mount: &'a MountEntry,
        fields: &'a Fields<'a>,
        client_ip: Option<IpAddr>,
    ) -> crate::engines::BoxFuture<'a, Result<Arc<TokenEntry>>> {
        Box::pin(inline_login(core, active, ns, mount, fields, client_ip))
    }
    fn handle<'a>(
        &'a self,
        core: &'a Core,
        ns: &'a Arc<NsState>,
        mount: &'a MountEntry,
        op: Operation,
        path: &'a str,
        fields: &'a Fields<'a>,
    ) -> crate::engines::BoxFuture<'a, Result<Response>> {
        Box::pin(handle(core, ns, mount, op, path, fields))
    }
}

/// Authenticated paths of a jwt mount: `config`, `role/<name>`, `role/` (LIST).
pub async fn handle(
    core: &Core,
    ns: &Arc<NsState>,
    mount: &MountEntry,
    op: Operation,
    rest: &str,
    fields: &Fields<'_>,
) -> Result<Response> {
    let view = mount_view(ns, mount);
    let write = matches!(op, Operation::Create | Operation::Update);
    match rest.trim_end_matches('/') {
        "config" => match op {
            Operation::Read => match load_config(&view).await? {
                Some(c) => Ok(Response::data(c.to_json())),
                None => Ok(Response::none()),
            },
            _ if write => {
                // A write replaces the whole config, as in OpenBao: a field left out is
                // reset, so switching from keys to a JWKS URL is one write.
                let mut c = JwtConfig::default();
                fields.set_str_list("jwt_validation_pubkeys", &mut c.jwt_validation_pubkeys);
                fields.set_str("jwks_url", &mut c.jwks_url);
                fields.set_str("jwks_ca_pem", &mut c.jwks_ca_pem);
                fields.set_str("oidc_discovery_url", &mut c.oidc_discovery_url);
                fields.set_str("oidc_discovery_ca_pem", &mut c.oidc_discovery_ca_pem);
                fields.set_str("bound_issuer", &mut c.bound_issuer);
                fields.set_str_list("jwt_supported_algs", &mut c.jwt_supported_algs);
                fields.set_str("default_role", &mut c.default_role);
                let sources = [
                    !c.jwt_validation_pubkeys.is_empty(),
                    !c.jwks_url.is_empty(),
                    !c.oidc_discovery_url.is_empty(),
                ];
                if sources.iter().filter(|x| **x).count() != 1 {
                    return Err(CoreError::bad("exactly one of 'jwt_validation_pubkeys', 'jwks_url' or 'oidc_discovery_url' must be set"));
                }
                for a in &c.jwt_supported_algs {
                    if ![
                        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
                        "EdDSA",
                    ]
                    .contains(&a.as_str())
                    {
                        return Err(CoreError::bad(format!("invalid jwt_supported_algs: {a} (only asymmetric algorithms are accepted)")));
                    }
                }
                if !c.jwt_validation_pubkeys.is_empty() {
                    KeySet::from_pems(&c.jwt_validation_pubkeys)
                        .map_err(|e| CoreError::bad(format!("error parsing public key: {e}")))?;
                } else {
                    // Fetch now: a config that cannot fetch its keys is refused, like OpenBao.
                    core.jwks
                        .fetch_for(&c, core.cfg.allow_loopback_http)
                        .await
                        .map_err(|e| {
                            CoreError::bad(format!(
                                "error checking {}: {e}",
                                if c.jwks_url.is_empty() {
                                    "oidc_discovery_url"
                                } else {
                                    "jwks_url"
                                }
                            ))
                        })?;
                }
                view.put_json("config", &c).await?;
                core.jwks.forget(&mount.uuid);
                core.forget_jwt_logins();
                Ok(Response::none())
            }
            _ => Err(CoreError::UnsupportedOperation),
        },
        "role" if op == Operation::List => {
            let keys: Vec<String> = view.list("role/", None, None).await?;
            if keys.is_empty() {
                return Err(CoreError::NotFound(String::new()));
            }
            Ok(Response::list(keys))
        }
        r if r.starts_with("role/") => {
            let name = &r["role/".len()..];
            validate_role_name(name)?;
            let key = format!("role/{name}");
            match op {
                Operation::Read => match view.get_json::<JwtRole>(&key).await? {
                    Some(role) => Ok(Response::data(role.to_json())),
                    None => Err(CoreError::NotFound(String::new())),
                },
                _ if write => {
                    let mut role = view.get_json::<JwtRole>(&key).await?.unwrap_or_default();
                    role.update(fields)?;
                    view.put_json(&key, &role).await?;
                    core.forget_jwt_roles();
                    Ok(Response::none())
                }
                Operation::Delete => {
                    view.delete(&key).await?;
                    core.forget_jwt_roles();
                    Ok(Response::none())
                }
                _ => Err(CoreError::UnsupportedOperation),
            }
        }
        "login" => Err(CoreError::UnsupportedOperation),
        other => Err(CoreError::NotFound(format!(
            "no handler for route \"auth/{}{other}\". route entry not found.",
            mount.path
        ))),
    }
}

/// A claim by name, or by JSON pointer when the name starts with `/`.
fn claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    let Some(ptr) = name.strip_prefix('/') else {
        return claims.get(name);
    };
    let mut segs = ptr.split('/').map(unescape_pointer_segment);
    let mut cur = claims.get(&segs.next()?)?;
    for s in segs {
        cur = match cur {
            Value::Object(m) => m.get(&s)?,
            Value::Array(a) => a.get(s.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn claim_as_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn normalize_list(v: &Value) -> Option<Vec<&Value>> {
    match v {
        Value::Array(a) => Some(a.iter().collect()),
        Value::String(_) | Value::Bool(_) | Value::Number(_) => Some(vec![v]),
        _ => None,
    }
}

/// OpenBao's `validateBoundClaims`.
fn check_bound_claims(
    role: &JwtRole,
    claims: &Map<String, Value>,
) -> std::result::Result<(), String> {
    let glob = role.bound_claims_type == "glob";
    for (name, expected) in &role.bound_claims {
        let actual = claim(claims, name)
            .filter(|v| !v.is_null())
            .ok_or_else(|| format!("claim {name:?} is missing"))?;
        let acts = normalize_list(actual)
            .ok_or_else(|| format!("received claim is not a string or list: {name}"))?;
        let exps = normalize_list(expected)
            .ok_or_else(|| format!("bound claim is not a string or list: {name}"))?;
        let found = exps.iter().any(|e| {
            acts.iter().any(|a| match (glob, e, a) {
                (true, Value::String(p), Value::String(s)) => glob_match(p, s),
                (true, _, _) => false,
                (false, e, a) => e == a,
            })
        });
        if !found {
            return Err(format!(
                "claim {name:?} does not match any associated bound claim values"
            ));
        }
    }
    Ok(())
}

fn num_claim(claims: &Map<String, Value>, k: &str) -> std::result::Result<Option<i64>, String> {
    match claims.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))),
        Some(_) => Err(format!("invalid {k} claim")),
    }
}

fn leeway(v: i64, default: i64) -> i64 {
    match v {
        0 => default,
        x if x < 0 => 0,
        x => x,
    }
}

/// Validate standard claims in cap/jwt's order. Errors become "error validating token: …".
fn check_standard_claims(
    cfg: &JwtConfig,
    role: &JwtRole,
    claims: &Map<String, Value>,
    now: i64,
) -> std::result::Result<(), String> {
    let s = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or("");
    if !cfg.bound_issuer.is_empty() && s("iss") != cfg.bound_issuer {
        return Err("invalid issuer (iss) claim".into());
    }
    if !role.bound_subject.is_empty() && s("sub") != role.bound_subject {
        return Err("invalid subject (sub) claim".into());
    }
    let aud: Vec<&str> = match claims.get("aud") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        Some(_) => return Err("invalid audience (aud) claim".into()),
    };
    if role.bound_audiences.is_empty() {
        if !aud.is_empty() {
            return Err("audience claim found in JWT but no audiences bound to the role".into());
        }
    } else if !aud
        .iter()
        .any(|a| role.bound_audiences.iter().any(|b| b == a))
    {
        return Err(
            "invalid audience (aud) claim: audience claim does not match any expected audience"
                .into(),
        );
    }
    let exp = num_claim(claims, "exp")?;
    let nbf = num_claim(claims, "nbf")?;
    let iat = num_claim(claims, "iat")?;
    if exp.is_none() && nbf.is_none() && iat.is_none() {
        return Err("no exp, iat, or nbf claims found in token".into());
    }
    // OpenBao 2.7.2 widens `exp` and `nbf` by the clock-skew leeway alone (0: its
    // default, -1: none); a role's `expiration_leeway` and `not_before_leeway` are kept
    // and shown but widen nothing (measured side by side: `jwt_leeways_match_openbao`).
    let skew = leeway(role.clock_skew_leeway, DEFAULT_CLOCK_SKEW);
    if let Some(exp) = exp {
        if now > exp + skew {
            return Err("token is expired (exp)".into());
        }
    }
    if let Some(nbf) = nbf {
        if now + skew < nbf {
            return Err("token not yet valid (nbf)".into());
        }
    }
    if let Some(iat) = iat {
        if now + skew < iat {
            return Err("token issued in the future (iat)".into());
        }
    }
    Ok(())
}

/// `{{ .claim }}`, `{{ hex .claim }}`, `{{ .claim | hex }}` in policy names.
fn render_template(t: &str, claims: &Map<String, Value>) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = t;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").ok_or("unterminated template")? + start;
        let expr = rest[start + 2..end].trim();
        let (func, field) = if let Some((f, arg)) = expr.split_once(' ') {
            if f.starts_with('.') {
                // `.claim | hex`
                let (field, pipe) = expr.split_once('|').ok_or("invalid template expression")?;
                (Some(pipe.trim()), field.trim())
            } else {
                (Some(f.trim()), arg.trim())
            }
        } else {
            (None, expr)
        };
        let name = field
            .strip_prefix('.')
            .ok_or_else(|| format!("invalid template field {field:?}"))?;
        let v = claims
            .get(name)
            .and_then(claim_as_string)
            .ok_or_else(|| format!("claim {name:?} referenced by a policy template is missing"))?;
        match func {
            None => out.push_str(&v),
            Some("hex") => out.push_str(&hex::encode(v.as_bytes())),
            Some("lower") => out.push_str(&v.to_lowercase()),
            Some(other) => return Err(format!("unsupported template function {other:?}")),
        }
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A mount's config and one role, parsed; cached per (mount, role) because every login
/// (and, with inline auth, every request of a job) needs them. Any config or role write —
/// here or, through invalidation, on another node — drops the whole cache.
pub(crate) struct ParsedRole {
    cfg: JwtConfig,
    role: JwtRole,
    name: String,
    /// The user claim as a name or, with `user_claim_json_pointer`, a JSON pointer.
    user_claim: String,
    /// The top-level claims a login with this role reads (standard claims, user claim,
    /// bound claims, claim mappings), so a login parses only those of the token's
    /// claims; `None` when policy templates may name any claim.
    reads: Option<Vec<String>>,
}

/// A JSON pointer segment with `~1` and `~0` unescaped.
fn unescape_pointer_segment(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

/// The top-level claim a name or JSON pointer (`/a/b`) starts from.
fn top_level(name: &str) -> String {
    match name.strip_prefix('/') {
        Some(ptr) => unescape_pointer_segment(ptr.split('/').next().unwrap_or("")),
        None => name.to_owned(),
    }
}

impl ParsedRole {
    fn new(cfg: JwtConfig, role: JwtRole, name: String) -> ParsedRole {
        let user_claim = if role.user_claim_json_pointer && !role.user_claim.starts_with('/') {
            format!("/{}", role.user_claim)
        } else {
            role.user_claim.clone()
        };
        let reads = (!role.token_policies_template_claims).then(|| {
            let mut v: Vec<String> = STANDARD_CLAIMS.iter().map(|s| (*s).to_owned()).collect();
            v.push(top_level(&user_claim));
            v.extend(role.bound_claims.keys().map(|k| top_level(k)));
            v.extend(role.claim_mappings.keys().map(|k| top_level(k)));
            v.sort();
            v.dedup();
            v
        });
        ParsedRole {
            cfg,
            role,
            name,
            user_claim,
            reads,
        }
    }

    /// The claims of `jwt` this role's checks and mappings read.
    fn claims(&self, jwt: &Jwt) -> std::result::Result<Map<String, Value>, JwtError> {
        match &self.reads {
            Some(names) => jwt.claims_named(names.iter().map(String::as_str)),
            None => jwt.claims(),
        }
    }
}

/// The registered claims `check_standard_claims` reads.
const STANDARD_CLAIMS: &[&str] = &["aud", "exp", "iat", "iss", "nbf", "sub"];

async fn load_parsed(
    core: &Core,
    view: &View,
    mount: &MountEntry,
    requested: Option<&str>,
) -> Result<Arc<ParsedRole>> {
    let key = format!("{}\u{0}{}", mount.uuid, requested.unwrap_or(""));
    if let Some(p) = core.jwt_parsed.get(&key) {
        return Ok(p);
    }
    let cfg = load_config(view)
        .await?
        .ok_or_else(|| CoreError::bad("could not load configuration"))?;
    let role_name = requested
        .map(str::to_owned)
        .unwrap_or_else(|| cfg.default_role.clone());
    if role_name.is_empty() {
        return Err(CoreError::bad("missing role"));
    }
    let role: JwtRole = view
        .get_json(&format!("role/{role_name}"))
        .await?
        .ok_or_else(|| CoreError::bad(format!("role {role_name:?} could not be found")))?;
    let p = Arc::new(ParsedRole::new(cfg, role, role_name));
    core.jwt_parsed.insert(key, p.clone());
    Ok(p)
}

/// `auth/<mount>/login`: validate the JWT and issue a token. `persist = false` for inline
/// auth (the token lives for one request and is never stored).
pub async fn login(
    core: &Core,
    active: &Active,
    ns: &Arc<NsState>,
    mount: &MountEntry,
    fields: &Fields<'_>,
    client_ip: Option<IpAddr>,
    persist: bool,
) -> Result<(String, TokenEntry)> {
    let (id, entry, _) = login_checked(core, active, ns, mount, fields, client_ip, persist).await?;
    Ok((id, entry))
}

/// An inline login (the token exists for one request). A job presents the same JWT with
/// each of its requests: the entry its first login produced stands in for the next ones
/// while the JWT is unexpired, for at most `VERIFIED_TTL`, and until the mount's config,
/// roles or tuning change. What is remembered is keyed by SHA-256 of the mount, the role
/// asked for and the whole JWT, so only the very same token and role reuse it; the role's
/// CIDR binding is checked on every request.
pub async fn inline_login(
    core: &Core,
    active: &Active,
    ns: &Arc<NsState>,
    mount: &MountEntry,
    fields: &Fields<'_>,
    client_ip: Option<IpAddr>,
) -> Result<Arc<TokenEntry>> {
    let role = fields.str("role").unwrap_or_default();
    let raw = fields.str("jwt").unwrap_or_default();
    let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in [
        mount.uuid.as_bytes(),
        b"\0",
        role.as_bytes(),
        b"\0",
        raw.as_bytes(),
    ] {
        h.update(part);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(h.finish().as_ref());
    let now = util::now_secs();
    if let Some(hit) = core.inline_logins.get(&key) {
        let (valid_until, entry) = &*hit;
        if now < *valid_until
            && (entry.bound_cidrs.is_empty()
                || client_ip.is_some_and(|ip| util::ip_in_cidrs(ip, &entry.bound_cidrs)))
        {
            return Ok(entry.clone());
        }
    }
    let (_, entry, exp) = login_checked(core, active, ns, mount, fields, client_ip, false).await?;
    let entry = Arc::new(entry);
    let mut valid_until = now + VERIFIED_TTL;
    if let Some(exp) = exp {
        valid_until = valid_until.min(exp);
    }
    if entry.expire_time > 0 {
        valid_until = valid_until.min(entry.expire_time);
    }
    if valid_until > now {
        core.inline_logins
            .insert(key, Arc::new((valid_until, entry.clone())));
    }
    Ok(entry)
}

/// A login; also returns the JWT's `exp` claim.
async fn login_checked(
    core: &Core,
    active: &Active,
    ns: &Arc<NsState>,
    mount: &MountEntry,
    fields: &Fields<'_>,
    client_ip: Option<IpAddr>,
    persist: bool,
) -> Result<(String, TokenEntry, Option<i64>)> {
    let view = mount_view(ns, mount);
    let requested = fields
        .str("role")
        .map(|s| s.into_owned())
        .filter(|s| !s.is_empty());
    let parsed = load_parsed(core, &view, mount, requested.as_deref()).await?;
    let (cfg, role, role_name) = (&parsed.cfg, &parsed.role, parsed.name.clone());
    if role.role_type == "oidc" {
        return Err(CoreError::bad("role with oidc role_type is not allowed"));
    }
    if !role.token.token_bound_cidrs.is_empty()
        && !client_ip.is_some_and(|ip| util::ip_in_cidrs(ip, &role.token.token_bound_cidrs))
    {
        return Err(CoreError::PermissionDenied);
    }
    let raw = fields
        .str("jwt")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| CoreError::bad("missing token"))?;
    let jwt =
        Jwt::parse(&raw).map_err(|e| CoreError::bad(format!("error validating token: {e}")))?;
    // A job's token is presented once per secret with inline auth: remember signatures
    // already verified (briefly, per mount), so RSA runs once per job, not per request.
    // A stored login is made once per job, so it neither consults nor fills the cache.
    let cache_key = (!persist).then(|| {
        let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for part in [mount.uuid.as_bytes(), b"\0", raw.as_bytes()] {
            h.update(part);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(h.finish().as_ref());
        key
    });
    let now_s = util::now_secs();
    let verified_recently = cache_key.is_some_and(|k| {
        core.verified_jwts
            .get(&k)
            .is_some_and(|at| now_s - at < VERIFIED_TTL)
    });
    if !verified_recently {
        let keys = if cfg.jwt_validation_pubkeys.is_empty() {
            core.jwks.keys_for(&mount.uuid, cfg, jwt.kid(), core.cfg.allow_loopback_http).await.map_err(|e| {
                tracing::warn!(mount = %mount.path, error = %e, "fetching JWT signing keys failed");
                CoreError::bad("error validating token: could not fetch the issuer's signing keys")
            })?
        } else {
            core.jwks
                .pem_keys(&mount.uuid, &cfg.jwt_validation_pubkeys)
                .map_err(|e| CoreError::Internal(e.to_string()))?
        };
        jwt.verify(&keys, &cfg.algs())
            .map_err(|e| CoreError::bad(format!("error validating token: {e}")))?;
        if let Some(k) = cache_key {
            core.verified_jwts.insert(k, now_s);
        }
    }
    let claims = &parsed
        .claims(&jwt)
        .map_err(|e| CoreError::bad(format!("error validating token: {e}")))?;
    let exp = num_claim(claims, "exp").ok().flatten();
    check_standard_claims(cfg, role, claims, util::now_secs())
        .map_err(|e| CoreError::bad(format!("error validating token: {e}")))?;
    let user = claim(claims, &parsed.user_claim)
        .ok_or_else(|| CoreError::bad(format!("claim {:?} not found in token", role.user_claim)))?;
    // A string only, as OpenBao takes it: a number or boolean user claim is refused.
    let user = user.as_str().map(str::to_owned).ok_or_else(|| {
        CoreError::bad(format!(
            "claim {:?} could not be converted to string",
            role.user_claim
        ))
    })?;
    check_bound_claims(role, claims)
        .map_err(|e| CoreError::bad(format!("error validating claims: {e}")))?;

    let mut meta = BTreeMap::new();
    meta.insert("role".to_owned(), role_name.clone());
    for (c, m) in &role.claim_mappings {
        if let Some(v) = claim(claims, c).and_then(claim_as_string) {
            meta.insert(m.clone(), v);
        }
    }
    let policies = if role.token_policies_template_claims {
        role.token
            .token_policies
            .iter()
            .map(|p| {
                render_template(p, claims)
                    .map_err(|e| CoreError::bad(format!("error rendering policy templates: {e}")))
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        role.token.token_policies.clone()
    };
    let policies = role.token.login_policies(policies)?;

    let display_name = format!(
        "{}{}",
        mount.path.trim_end_matches('/').replace('/', "-"),
        if user.is_empty() {
            String::new()
        } else {
            format!("-{user}")
        }
    );
    let params = role.token.params(&role.token.token_bound_cidrs);
    let mut entry = super::login_entry(
        core,
        ns,
        mount,
        &params,
        policies,
        meta,
        display_name,
        role_name,
    );
    let id = token::issue(core, active, ns, &mut entry, None, persist).await?;
    Ok((id, entry, exp))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_table_is_well_formed() {
        crate::route::check_table(super::PATHS);
    }

    use super::*;

    #[test]
    fn templates() {
        let c = json!({"project_id": "42", "environment": "prod/eu", "n": 7})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(
            render_template("project_{{ .project_id }}", &c).unwrap(),
            "project_42"
        );
        assert_eq!(
            render_template("env_{{ hex .environment }}", &c).unwrap(),
            format!("env_{}", hex::encode("prod/eu"))
        );
        assert_eq!(
            render_template("env_{{ .environment | hex }}", &c).unwrap(),
            format!("env_{}", hex::encode("prod/eu"))
        );
        assert_eq!(render_template("n{{.n}}", &c).unwrap(), "n7");
        assert!(render_template("{{ .missing }}", &c).is_err());
        assert_eq!(render_template("literal", &c).unwrap(), "literal");
    }

    #[test]
    fn bound_claims_string_vs_bool() {
        let mut role = JwtRole {
            bound_claims_type: "string".into(),
            ..Default::default()
        };
        role.bound_claims
            .insert("ref_protected".into(), json!("true"));
        let ok = json!({"ref_protected": "true"})
            .as_object()
            .unwrap()
            .clone();
        let bad = json!({"ref_protected": true}).as_object().unwrap().clone();
        assert!(check_bound_claims(&role, &ok).is_ok());
        assert!(check_bound_claims(&role, &bad).is_err());
        role.bound_claims.insert("groups".into(), json!(["a", "b"]));
        let list = json!({"ref_protected": "true", "groups": ["x", "b"]})
            .as_object()
            .unwrap()
            .clone();
        assert!(check_bound_claims(&role, &list).is_ok());
    }

    #[test]
    fn json_pointer_claims() {
        let c = json!({"a": {"b/c": {"d": "x"}}})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(claim(&c, "/a/b~1c/d"), Some(&json!("x")));
        assert_eq!(claim(&c, "/a/missing"), None);
    }

    #[test]
    fn a_login_parses_only_the_claims_its_role_reads() {
        let mut role = JwtRole {
            user_claim: "a~1b/c".into(),
            user_claim_json_pointer: true,
            ..Default::default()
        };
        role.bound_claims.insert("/n/x".into(), json!("1"));
        role.bound_claims.insert("project_id".into(), json!("42"));
        role.claim_mappings.insert("ref".into(), "git_ref".into());
        let p = ParsedRole::new(JwtConfig::default(), role.clone(), "r".into());
        assert_eq!(p.user_claim, "/a~1b/c");
        let reads = p.reads.as_ref().unwrap();
        for name in [
            "a/b",
            "n",
            "project_id",
            "ref",
            "exp",
            "aud",
            "iss",
            "nbf",
            "iat",
            "sub",
        ] {
            assert!(reads.iter().any(|r| r == name), "{name} in {reads:?}");
        }
        let payload = json!({"a/b": {"c": "u"}, "n": {"x": "1"}, "project_id": "42",
            "ref": "main", "exp": 1, "unread": "big", "namespace_path": "g"});
        let enc = |v: &Value| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let jwt = Jwt::parse(&format!(
            "{}.{}.c2ln",
            enc(&json!({"alg": "RS256"})),
            enc(&payload)
        ))
        .unwrap();
        let claims = p.claims(&jwt).unwrap();
        assert_eq!(claim(&claims, &p.user_claim), Some(&json!("u")));
        assert!(check_bound_claims(&p.role, &claims).is_ok());
        assert_eq!(claims.len(), 5, "{claims:?}");
        role.token_policies_template_claims = true;
        let all = ParsedRole::new(JwtConfig::default(), role, "r".into());
        assert!(all.reads.is_none());
        assert_eq!(Value::Object(all.claims(&jwt).unwrap()), payload);
    }
}
