//! The AppRole auth method, with OpenBao's semantics: a role has a `role_id` (public, like
//! a user name) and issues `secret_id`s (secret, like passwords) that expire after their
//! TTL, wear out after their number of uses and may be bound to networks; a login with
//! both gets the role's token. A role may drop the secret ID (`bind_secret_id = false`)
//! only if it binds the login to networks instead.
//!
//! Storage, in the mount's view: `role/<name>` (the role), `role-id/<role_id>` (its name),
//! `secret-id/<name>/<HMAC of the secret ID>` (never the secret ID itself) and
//! `accessor/<name>/<accessor>` (the HMAC, to manage a secret ID without knowing it).
//! A use is counted with a compare-and-swap, so two logins cannot spend the last use twice.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use strongroom_barrier::BarrierOp;

use crate::error::{CoreError, Result};
use crate::mounts::MountEntry;
use crate::namespace::NsState;
use crate::route::{field, Field, FieldType as T, Fields, PathSpec};
use crate::token::{self, TokenEntry};
use crate::view::{TxnError, View};
use crate::{util, Active, Core, Operation, Response};

pub(crate) struct AppRole;

use Operation::{Delete as D, List as L, Read as R, Update as W};

static ROLE_FIELDS: &[Field] = super::token_setting_fields!(
    field("bind_secret_id", T::Bool),
    field("secret_id_bound_cidrs", T::StrList),
    field("bound_cidr_list", T::StrList),
    field("secret_id_num_uses", T::Int),
    field("secret_id_ttl", T::Duration),
    field("local_secret_ids", T::Bool),
    field("role_id", T::Str),
);
static SECRET_ID_FIELDS: &[Field] = &[
    field("metadata", T::Any),
    field("cidr_list", T::StrList),
    field("token_bound_cidrs", T::StrList),
    field("ttl", T::Duration),
    field("num_uses", T::Int),
    field("secret_id", T::Str),
];

static SECRET_ID: &[Field] = &[field("secret_id", T::Str)];
static ACCESSOR: &[Field] = &[field("secret_id_accessor", T::Str)];

static PATHS: &[PathSpec<&str>] = &[
    PathSpec::new("login", &[W], "login")
        .unauthenticated()
        .fields(&[field("role_id", T::Str), field("secret_id", T::Str)]),
    PathSpec::new("role/?", &[L], "roles"),
    PathSpec::new("role/{name}", &[R, W, D], "role").fields(ROLE_FIELDS),
    PathSpec::new("role/{name}/role-id", &[R, W], "role-id").fields(&[field("role_id", T::Str)]),
    PathSpec::new("role/{name}/secret-id/?", &[W, L], "secret-id").fields(SECRET_ID_FIELDS),
    PathSpec::new("role/{name}/custom-secret-id", &[W], "custom-secret-id")
        .fields(SECRET_ID_FIELDS),
    PathSpec::new("role/{name}/secret-id/lookup", &[W], "secret-id-lookup").fields(SECRET_ID),
    PathSpec::new(
        "role/{name}/secret-id/destroy",
        &[W, D],
        "secret-id-destroy",
    )
    .fields(SECRET_ID),
    PathSpec::new(
        "role/{name}/secret-id-accessor/lookup",
        &[W],
        "accessor-lookup",
    )
    .fields(ACCESSOR),
    PathSpec::new(
        "role/{name}/secret-id-accessor/destroy",
        &[W, D],
        "accessor-destroy",
    )
    .fields(ACCESSOR),
];

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Role {
    name: String,
    role_id: String,
    bind_secret_id: bool,
    #[serde(default)]
    secret_id_bound_cidrs: Vec<String>,
    #[serde(default)]
    secret_id_num_uses: i64,
    #[serde(default)]
    secret_id_ttl: i64,
    #[serde(default)]
    local_secret_ids: bool,
    #[serde(flatten)]
    token: super::TokenSettings,
}

impl Role {
    fn json(&self) -> Value {
        let mut v = json!({
            "bind_secret_id": self.bind_secret_id,
            "secret_id_bound_cidrs": self.secret_id_bound_cidrs,
            "secret_id_num_uses": self.secret_id_num_uses,
            "secret_id_ttl": self.secret_id_ttl,
            "local_secret_ids": self.local_secret_ids,
        });
        if let Value::Object(m) = &mut v {
            self.token.write_json(m);
        }
        v
    }
}

/// A secret ID as stored (under the HMAC of its value).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SecretId {
    accessor: String,
    #[serde(default)]
    num_uses: i64,
    #[serde(default)]
    ttl: i64,
    creation_time: i64,
    /// Unix seconds; 0 = never.
    #[serde(default)]
    expiration_time: i64,
    #[serde(default)]
    cidr_list: Vec<String>,
    #[serde(default)]
    token_bound_cidrs: Vec<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

impl SecretId {
    fn json(&self) -> Value {
        json!({
            "secret_id_accessor": self.accessor,
            "secret_id_num_uses": self.num_uses,
            "secret_id_ttl": self.ttl,
            "creation_time": util::rfc3339_secs(self.creation_time),
            "expiration_time": if self.expiration_time == 0 { "0001-01-01T00:00:00Z".to_owned() } else { util::rfc3339_secs(self.expiration_time) },
            "last_updated_time": util::rfc3339_secs(self.creation_time),
            "cidr_list": self.cidr_list,
            "token_bound_cidrs": self.token_bound_cidrs,
            "metadata": self.metadata,
        })
    }
}

fn mount_view(ns: &NsState, m: &MountEntry) -> View {
    ns.view.sub(&format!("auth/{}/", m.uuid))
}

fn valid_name(name: &str) -> Result<&str> {
    if name.is_empty()
        || name.len() > 4096
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
    {
        return Err(CoreError::bad(format!("invalid role name {name:?}")));
    }
    Ok(name)
}

fn check_cidrs(list: &[String], what: &str) -> Result<()> {
    for c in list {
        if util::parse_cidr(c).is_none() {
            return Err(CoreError::bad(format!("invalid CIDR {c:?} in {what}")));
        }
    }
    Ok(())
}

async fn load_role(view: &View, name: &str) -> Result<Option<Role>> {
    view.get_json(&format!("role/{}", valid_name(name)?.to_lowercase()))
        .await
}

async fn role_or_404(view: &View, name: &str) -> Result<Role> {
    load_role(view, name)
        .await?
        .ok_or_else(|| CoreError::bad(format!("role {name:?} does not exist")))
}

impl super::AuthMethod for AppRole {
    fn paths(&self) -> &'static [PathSpec<&'static str>] {
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
        Box::pin(async move {
            let mut entry = login(core, active, ns, mount, fields, client_ip).await?;
            let id = token::issue(core, active, ns, &mut entry, None, true).await?;
            Ok((id, entry))
        })
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
        Box::pin(async move {
            let mut entry = login(core, active, ns, mount, fields, client_ip).await?;
            token::issue(core, active, ns, &mut entry, None, false).await?;
            Ok(Arc::new(entry))
        })
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

/// Checks a login's credentials (spending a use of the secret ID) and builds its token.
async fn login(
    core: &Core,
    active: &Active,
    ns: &Arc<NsState>,
    mount: &MountEntry,
    fields: &Fields<'_>,
    client_ip: Option<IpAddr>,
) -> Result<TokenEntry> {
    let view = mount_view(ns, mount);
    let role_id = fields
        .str("role_id")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| CoreError::bad("missing role_id"))?;
    let invalid_role = || CoreError::bad("invalid role ID");
    let name: String = view
        .get(&format!("role-id/{}", token::hash_token(active, &role_id)))
        .await?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok_or_else(invalid_role)?;
    let role = load_role(&view, &name).await?.ok_or_else(invalid_role)?;
    let ip_ok = |cidrs: &[String]| {
        cidrs.is_empty() || client_ip.is_some_and(|ip| util::ip_in_cidrs(ip, cidrs))
    };
    if !ip_ok(&role.secret_id_bound_cidrs) {
        return Err(CoreError::bad(format!(
            "source address {:?} unauthorized by CIDR restrictions on the role",
            client_ip.map(|i| i.to_string()).unwrap_or_default()
        )));
    }
    let mut meta = BTreeMap::from([("role_name".to_owned(), role.name.clone())]);
    let mut token_cidrs = role.token.token_bound_cidrs.clone();
    if role.bind_secret_id {
        let secret = fields
            .str("secret_id")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| CoreError::bad("missing secret_id"))?;
        let s = spend(active, &view, &role.name, &secret).await?;
        if !ip_ok(&s.cidr_list) {
            return Err(CoreError::bad(format!(
                "source address {:?} unauthorized through CIDR restrictions on the secret ID",
                client_ip.map(|i| i.to_string()).unwrap_or_default()
            )));
        }
        if !s.token_bound_cidrs.is_empty() {
            token_cidrs = s.token_bound_cidrs.clone();
        }
        meta.extend(s.metadata);
    }
    let policies = role
        .token
        .login_policies(role.token.token_policies.clone())?;
    let params = role.token.params(&token_cidrs);
    Ok(super::login_entry(
        core,
        ns,
        mount,
        &params,
        policies,
        meta,
        "approle".to_owned(),
        role.name.clone(),
    ))
}

/// Finds the secret ID and spends one of its uses (deleting it with its last, or when it
/// has expired): a compare-and-swap, retried when another login changed it meanwhile.
async fn spend(active: &Active, view: &View, role: &str, secret: &str) -> Result<SecretId> {
    let invalid = || CoreError::bad("invalid secret id");
    let key = format!("secret-id/{role}/{}", token::hash_token(active, secret));
    for _ in 0..16 {
        let Some((plain, version)) = view.get_versioned(&key).await? else {
            return Err(invalid());
        };
        let s: SecretId =
            serde_json::from_slice(&plain).map_err(|e| CoreError::Internal(e.to_string()))?;
        let now = util::now_secs();
        let expired = s.expiration_time != 0 && now >= s.expiration_time;
        let last = s.num_uses == 1;
        let mut ops = vec![BarrierOp::Check(key.clone(), Some(version))];
        if expired || last {
            ops.push(BarrierOp::Delete(key.clone()));
            ops.push(BarrierOp::Delete(format!("accessor/{role}/{}", s.accessor)));
        } else if s.num_uses > 1 {
            let mut next = s.clone();
            next.num_uses -= 1;
            ops.push(BarrierOp::Put(key.clone(), util::json_bytes(&next)?));
        }
        if ops.len() > 1 {
            match view.transact(ops).await {
                Ok(()) => {}
                Err(TxnError::Conflict) => continue,
                Err(TxnError::Other(e)) => return Err(e),
            }
        }
        if expired {
            return Err(invalid());
        }
        return Ok(s);
    }
    Err(CoreError::Unavailable(
        "the secret ID is being used by many logins at once; retry".into(),
    ))
}

async fn handle(
    core: &Core,
    ns: &Arc<NsState>,
    mount: &MountEntry,
    op: Operation,
    rest: &str,
    fields: &Fields<'_>,
) -> Result<Response> {
    let active = core.active()?;
    let view = mount_view(ns, mount);
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        ["role"] => {
            let keys = view.list("role/", None, None).await?;
            if keys.is_empty() {
                return Err(CoreError::NotFound(String::new()));
            }
            Ok(Response::data(json!({ "keys": keys })))
        }
        ["role", name] => match op {
            Operation::Read => Ok(Response::data(
                role_or_404(&view, name)
                    .await
                    .map_err(|_| CoreError::NotFound(String::new()))?
                    .json(),
            )),
            Operation::Delete => {
                delete_role(&view, &active, name).await?;
                Ok(Response::none())
            }
            _ => {
                write_role(&view, &active, name, fields).await?;
                Ok(Response::none())
            }
        },
        ["role", name, "role-id"] => {
            let mut role = role_or_404(&view, name).await?;
            if op == Operation::Read {
                return Ok(Response::data(json!({ "role_id": role.role_id })));
            }
            let new = fields
                .str("role_id")
                .filter(|r| !r.is_empty())
                .ok_or_else(|| CoreError::bad("missing role_id"))?
                .into_owned();
            set_role_id(&view, &active, &mut role, new).await?;
            Ok(Response::none())
        }
        ["role", name, "secret-id"] if op == Operation::List => {
            let role = role_or_404(&view, name).await?;
            let keys = view
                .list(&format!("accessor/{}/", role.name), None, None)
                .await?;
            if keys.is_empty() {
                return Err(CoreError::NotFound(String::new()));
            }
            Ok(Response::data(json!({ "keys": keys })))
        }
        ["role", name, "secret-id"] => {
            let role = role_or_404(&view, name).await?;
            let secret = util::uuid4();
            issue_secret_id(&view, &active, &role, secret, fields).await
        }
        ["role", name, "custom-secret-id"] => {
            let role = role_or_404(&view, name).await?;
            let secret = fields
                .str("secret_id")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| CoreError::bad("missing secret_id"))?
                .into_owned();
            issue_secret_id(&view, &active, &role, secret, fields).await
        }
        ["role", name, "secret-id", verb @ ("lookup" | "destroy")] => {
            let role = role_or_404(&view, name).await?;
            let secret = fields
                .str("secret_id")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| CoreError::bad("missing secret_id"))?;
            let key = format!(
                "secret-id/{}/{}",
                role.name,
                token::hash_token(&active, &secret)
            );
            secret_id_verb(&view, &role, &key, verb).await
        }
        ["role", name, "secret-id-accessor", verb @ ("lookup" | "destroy")] => {
            let role = role_or_404(&view, name).await?;
            let acc = fields
                .str("secret_id_accessor")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| CoreError::bad("missing secret_id_accessor"))?;
            let hash = view
                .get(&format!("accessor/{}/{}", role.name, acc))
                .await?
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .ok_or_else(|| {
                    CoreError::bad(format!(
                        "failed to find accessor entry for secret_id_accessor: {acc:?}"
                    ))
                })?;
            let key = format!("secret-id/{}/{hash}", role.name);
            secret_id_verb(&view, &role, &key, verb).await
        }
        _ => Err(CoreError::NotFound(String::new())),
    }
}

async fn secret_id_verb(view: &View, role: &Role, key: &str, verb: &str) -> Result<Response> {
    let found: Option<SecretId> = view.get_json(key).await?;
    match (verb, found) {
        ("lookup", Some(s)) if s.expiration_time == 0 || util::now_secs() < s.expiration_time => {
            Ok(Response::data(s.json()))
        }
        ("lookup", _) => Ok(Response::none()),
        (_, Some(s)) => {
            view.transact(vec![
                BarrierOp::Delete(key.to_owned()),
                BarrierOp::Delete(format!("accessor/{}/{}", role.name, s.accessor)),
            ])
            .await?;
            Ok(Response::none())
        }
        (_, None) => Ok(Response::none()),
    }
}

async fn issue_secret_id(
    view: &View,
    active: &Active,
    role: &Role,
    secret: String,
    fields: &Fields<'_>,
) -> Result<Response> {
    if !role.bind_secret_id {
        return Err(CoreError::bad(
            "bind_secret_id is not set on the role: it issues no secret IDs",
        ));
    }
    let cidr_list = fields.str_list("cidr_list").unwrap_or_default();
    check_cidrs(&cidr_list, "cidr_list")?;
    // A secret ID's networks narrow the role's, never widen them.
    if !role.secret_id_bound_cidrs.is_empty() {
        for c in &cidr_list {
            if !cidr_within(c, &role.secret_id_bound_cidrs) {
                return Err(CoreError::bad(format!(
                    "failed to verify the CIDR restrictions set on the secret ID: {c:?} is not within the role's secret_id_bound_cidrs"
                )));
            }
        }
    }
    let token_bound_cidrs = fields.str_list("token_bound_cidrs").unwrap_or_default();
    check_cidrs(&token_bound_cidrs, "token_bound_cidrs")?;
    let metadata: BTreeMap<String, String> = match fields.raw("metadata") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::String(s)) if s.is_empty() => BTreeMap::new(),
        Some(Value::String(s)) => serde_json::from_str(s)
            .map_err(|e| CoreError::bad(format!("failed to parse metadata: {e}")))?,
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                )
            })
            .collect(),
        Some(_) => return Err(CoreError::bad("metadata must be a JSON object of strings")),
    };
    // The role's TTL and uses bound a secret ID's: it may ask for less, never more.
    let ttl = within_role(
        fields.duration("ttl"),
        role.secret_id_ttl,
        "ttl",
        "secret_id_ttl",
    )?;
    let num_uses = within_role(
        fields.int("num_uses"),
        role.secret_id_num_uses,
        "num_uses",
        "secret_id_num_uses",
    )?;
    let now = util::now_secs();
    let s = SecretId {
        accessor: util::uuid4(),
        num_uses,
        ttl,
        creation_time: now,
        expiration_time: if ttl > 0 { now + ttl } else { 0 },
        cidr_list,
        token_bound_cidrs,
        metadata,
    };
    let hash = token::hash_token(active, &secret);
    let key = format!("secret-id/{}/{hash}", role.name);
    // create-only: a custom secret ID already issued is refused, not overwritten
    let r = view
        .transact(vec![
            BarrierOp::Check(key.clone(), None),
            BarrierOp::Put(key, util::json_bytes(&s)?),
            BarrierOp::Put(
                format!("accessor/{}/{}", role.name, s.accessor),
                hash.into_bytes(),
            ),
        ])
        .await;
    match r {
        Ok(()) => {}
        Err(TxnError::Conflict) => return Err(CoreError::bad("secret ID already exists")),
        Err(TxnError::Other(e)) => return Err(e),
    }
    Ok(Response::data(json!({
        "secret_id": secret,
        "secret_id_accessor": s.accessor,
        "secret_id_ttl": s.ttl,
        "secret_id_num_uses": s.num_uses,
    })))
}

/// What a secret ID asks for (`asked`, 0 or absent: the role's) within the role's `bound`
/// (0: unbounded).
fn within_role(asked: Option<i64>, bound: i64, what: &str, role_key: &str) -> Result<i64> {
    match asked {
        Some(n) if n < 0 => Err(CoreError::bad(format!("{what} cannot be negative"))),
        Some(n) if n > 0 && (bound == 0 || n <= bound) => Ok(n),
        Some(n) if n > 0 => Err(CoreError::bad(format!(
            "{what} {n} is greater than the role's {role_key} of {bound}"
        ))),
        _ => Ok(bound),
    }
}

/// Whether network `c` lies within one of `outer`.
fn cidr_within(c: &str, outer: &[String]) -> bool {
    let Some((ip, bits)) = util::parse_cidr(c) else {
        return false;
    };
    outer.iter().any(|o| {
        util::parse_cidr(o).is_some_and(|(_, obits)| obits <= bits)
            && util::ip_in_cidrs(ip, std::slice::from_ref(o))
    })
}

async fn set_role_id(view: &View, active: &Active, role: &mut Role, new: String) -> Result<()> {
    let new_key = format!("role-id/{}", token::hash_token(active, &new));
    let old_key = format!("role-id/{}", token::hash_token(active, &role.role_id));
    if new_key == old_key {
        return Ok(());
    }
    role.role_id = new;
    let r = view
        .transact(vec![
            BarrierOp::Check(new_key.clone(), None),
            BarrierOp::Put(new_key, role.name.clone().into_bytes()),
            BarrierOp::Delete(old_key),
            BarrierOp::Put(format!("role/{}", role.name), util::json_bytes(role)?),
        ])
        .await;
    match r {
        Ok(()) => Ok(()),
        Err(TxnError::Conflict) => Err(CoreError::bad("role_id already in use")),
        Err(TxnError::Other(e)) => Err(e),
    }
}

async fn write_role(view: &View, active: &Active, name: &str, f: &Fields<'_>) -> Result<()> {
    let name = valid_name(name)?.to_lowercase();
    let existing = load_role(view, &name).await?;
    let created = existing.is_none();
    let mut role = existing.unwrap_or_else(|| Role {
        name: name.clone(),
        role_id: util::uuid4(),
        bind_secret_id: true,
        secret_id_bound_cidrs: Vec::new(),
        secret_id_num_uses: 0,
        secret_id_ttl: 0,
        local_secret_ids: false,
        token: super::TokenSettings::default(),
    });
    f.set_bool("bind_secret_id", &mut role.bind_secret_id);
    if let Some(c) = f
        .str_list("secret_id_bound_cidrs")
        .or_else(|| f.str_list("bound_cidr_list"))
    {
        check_cidrs(&c, "secret_id_bound_cidrs")?;
        role.secret_id_bound_cidrs = c;
    }
    if let Some(n) = f.int("secret_id_num_uses") {
        if n < 0 {
            return Err(CoreError::bad("secret_id_num_uses cannot be negative"));
        }
        role.secret_id_num_uses = n;
    }
    f.set_duration("secret_id_ttl", &mut role.secret_id_ttl);
    f.set_bool("local_secret_ids", &mut role.local_secret_ids);
    role.token.update(f)?;
    if role.secret_id_ttl < 0 {
        return Err(CoreError::bad("secret_id_ttl cannot be negative"));
    }
    // A role must bind its logins to something.
    if !role.bind_secret_id
        && role.secret_id_bound_cidrs.is_empty()
        && role.token.token_bound_cidrs.is_empty()
    {
        return Err(CoreError::bad(
            "at least one constraint should be enabled on the role",
        ));
    }
    if created {
        let id = f
            .str("role_id")
            .filter(|r| !r.is_empty())
            .map(|r| r.into_owned())
            .unwrap_or_else(util::uuid4);
        role.role_id = id;
        let id_key = format!("role-id/{}", token::hash_token(active, &role.role_id));
        let r = view
            .transact(vec![
                BarrierOp::Check(format!("role/{name}"), None),
                BarrierOp::Check(id_key.clone(), None),
                BarrierOp::Put(id_key, name.clone().into_bytes()),
                BarrierOp::Put(format!("role/{name}"), util::json_bytes(&role)?),
            ])
            .await;
        return match r {
            Ok(()) => Ok(()),
            Err(TxnError::Conflict) => Err(CoreError::bad(
                "role_id already in use, or the role was created meanwhile",
            )),
            Err(TxnError::Other(e)) => Err(e),
        };
    }
    view.put_json(&format!("role/{name}"), &role).await?;
    if let Some(id) = f.str("role_id").filter(|r| !r.is_empty()) {
        set_role_id(view, active, &mut role, id.into_owned()).await?;
    }
    Ok(())
}

async fn delete_role(view: &View, active: &Active, name: &str) -> Result<()> {
    let name = valid_name(name)?.to_lowercase();
    let Some(role) = load_role(view, &name).await? else {
        return Ok(());
    };
    view.transact(vec![
        BarrierOp::Delete(format!("role/{name}")),
        BarrierOp::Delete(format!(
            "role-id/{}",
            token::hash_token(active, &role.role_id)
        )),
        BarrierOp::DeletePrefix(format!("secret-id/{name}/")),
        BarrierOp::DeletePrefix(format!("accessor/{name}/")),
    ])
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_table_is_well_formed() {
        crate::route::check_table(super::PATHS);
    }

    #[test]
    fn networks_within_networks() {
        let outer = vec!["10.0.0.0/8".to_owned()];
        assert!(super::cidr_within("10.1.0.0/16", &outer));
        assert!(super::cidr_within("10.1.2.3/32", &outer));
        assert!(!super::cidr_within("0.0.0.0/0", &outer));
        assert!(!super::cidr_within("11.0.0.0/16", &outer));
    }
}
