//! Mount tables: which engine serves which path prefix, per namespace.
//!
//! Stored as one entry per table inside the namespace (`sys/mounts`, `sys/auth`). Engine
//! data lives under `logical/<mount uuid>/`, so disabling a mount deletes one prefix.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::engines::{self, SecretsEngine};
use crate::error::{CoreError, Result};
use crate::namespace::NsState;
use crate::route::{field, Field, FieldType, Fields};
use crate::view::View;
use crate::{util, Core, Operation, Response};

const RESERVED_MOUNTS: &[&str] = &["sys/", "auth/", "cubbyhole/", "identity/"];

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MountConfig {
    #[serde(default)]
    pub default_lease_ttl: i64,
    #[serde(default)]
    pub max_lease_ttl: i64,
    #[serde(default)]
    pub listing_visibility: String,
    #[serde(default)]
    pub audit_non_hmac_request_keys: Vec<String>,
    #[serde(default)]
    pub audit_non_hmac_response_keys: Vec<String>,
    #[serde(default)]
    pub passthrough_request_headers: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MountEntry {
    /// With a trailing slash: `secret/`.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    pub uuid: String,
    pub accessor: String,
    #[serde(default)]
    pub config: MountConfig,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub local: bool,
    #[serde(default)]
    pub seal_wrap: bool,
}

impl MountEntry {
    fn config_json(&self) -> Value {
        let mut c = json!({
            "default_lease_ttl": self.config.default_lease_ttl,
            "max_lease_ttl": self.config.max_lease_ttl,
            "force_no_cache": false,
        });
        if !self.config.listing_visibility.is_empty() {
            c["listing_visibility"] = json!(self.config.listing_visibility);
        }
        c
    }

    pub fn to_json(&self, core: &Core) -> Value {
        json!({
            "accessor": self.accessor,
            "config": self.config_json(),
            "deprecation_status": "supported",
            "description": self.description,
            "external_entropy_access": false,
            "local": self.local,
            "options": if self.options.is_empty() { Value::Null } else { json!(self.options) },
            "plugin_version": "",
            "running_plugin_version": format!("v{}+builtin.strongroom", core.version),
            "running_sha256": "",
            "seal_wrap": self.seal_wrap,
            "type": self.kind,
            "uuid": self.uuid,
        })
    }
}

/// What a request routed to a secrets engine needs of its mount
/// ([`NsState::logical`](crate::namespace::NsState::logical)).
pub struct LogicalMount {
    /// The length of the mount's path: the request path after it is the engine's.
    pub path_len: usize,
    /// What serves the mount, chosen by its type and options.
    pub engine: &'static dyn SecretsEngine,
    pub default_lease_ttl: i64,
    /// The engine's storage: `logical/<mount uuid>/` in the namespace.
    pub view: View,
}

impl LogicalMount {
    pub(crate) fn of(e: &MountEntry, ns_view: &View) -> LogicalMount {
        LogicalMount {
            path_len: e.path.len(),
            engine: engines::engine_for(&e.kind, &e.options),
            default_lease_ttl: e.config.default_lease_ttl,
            view: ns_view.logical(&e.uuid),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MountTable {
    pub entries: Vec<MountEntry>,
}

impl MountTable {
    /// Load the secrets and auth tables of a namespace (the token auth mount always exists).
    pub async fn load(view: &View) -> Result<(MountTable, MountTable)> {
        Ok((
            Self::load_secrets(view).await?,
            Self::load_auth(view).await?,
        ))
    }

    /// The secrets-engine table alone (what every logical request needs).
    pub async fn load_secrets(view: &View) -> Result<MountTable> {
        Ok(view.get_json("sys/mounts").await?.unwrap_or_default())
    }

    /// The auth table alone (loaded on the first auth request or token operation).
    pub async fn load_auth(view: &View) -> Result<MountTable> {
        let mut auth: MountTable = view.get_json("sys/auth").await?.unwrap_or_default();
        if !auth.entries.iter().any(|e| e.path == "token/") {
            auth.entries.push(token_auth_entry(view.prefix()));
        }
        Ok(auth)
    }

    /// The mount whose path is the longest prefix of `path`.
    pub fn longest_match(&self, path: &str) -> Option<&MountEntry> {
        self.longest_match_index(path).map(|i| &self.entries[i])
    }

    pub fn longest_match_index(&self, path: &str) -> Option<usize> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| path.starts_with(&e.path) || path == e.path.trim_end_matches('/'))
            .max_by_key(|(_, e)| e.path.len())
            .map(|(i, _)| i)
    }

    pub fn get(&self, path: &str) -> Option<&MountEntry> {
        self.entries.iter().find(|e| e.path == path)
    }
}

fn token_auth_entry(ns_prefix: &str) -> MountEntry {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("token-auth:{ns_prefix}").as_bytes(),
    );
    let h = hex::encode(digest.as_ref());
    MountEntry {
        path: "token/".into(),
        kind: "token".into(),
        description: "token based credentials".into(),
        uuid: format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        ),
        accessor: format!("auth_token_{}", &h[32..40]),
        config: MountConfig::default(),
        options: BTreeMap::new(),
        local: false,
        seal_wrap: false,
    }
}

fn normalize_path(p: &str) -> Result<String> {
    let p = p.trim_matches('/');
    if p.is_empty() {
        return Err(CoreError::bad("missing mount path"));
    }
    if p.contains("//") || p.split('/').any(|s| s == ".." || s == ".") {
        return Err(CoreError::bad(format!("invalid mount path {p:?}")));
    }
    Ok(format!("{p}/"))
}

fn check_conflict(table: &MountTable, path: &str) -> Result<()> {
    for e in &table.entries {
        if e.path.starts_with(path) || path.starts_with(&e.path) {
            return Err(CoreError::bad(format!(
                "path is already in use at {}",
                e.path
            )));
        }
    }
    Ok(())
}

/// A mount's `listing_visibility`: `""` (the default), `hidden` or `unauth`, as in OpenBao.
fn listing_visibility(v: &Value) -> Result<String> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) if matches!(s.as_str(), "" | "hidden" | "unauth") => Ok(s.clone()),
        Value::String(s) => Err(CoreError::bad(format!("invalid listing_visibility {s}"))),
        other => Err(CoreError::bad(format!(
            "invalid listing_visibility {other}"
        ))),
    }
}

fn config_from(data: Option<&Map<String, Value>>) -> Result<MountConfig> {
    let mut c = MountConfig::default();
    let Some(m) = data else {
        return Ok(c);
    };
    for (k, v) in m {
        match k.as_str() {
            "default_lease_ttl" => {
                c.default_lease_ttl = util::parse_duration(v).map_err(CoreError::bad)?
            }
            "max_lease_ttl" => c.max_lease_ttl = util::parse_duration(v).map_err(CoreError::bad)?,
            "listing_visibility" => c.listing_visibility = listing_visibility(v)?,
            "audit_non_hmac_request_keys" => {
                c.audit_non_hmac_request_keys = util::as_string_list(v).unwrap_or_default()
            }
            "audit_non_hmac_response_keys" => {
                c.audit_non_hmac_response_keys = util::as_string_list(v).unwrap_or_default()
            }
            "passthrough_request_headers" => {
                c.passthrough_request_headers = util::as_string_list(v).unwrap_or_default()
            }
            _ => {}
        }
    }
    Ok(c)
}

/// A mount's options as strings (a number or boolean as its text).
fn options_from(data: Option<&Map<String, Value>>) -> BTreeMap<String, String> {
    data.into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect()
}

/// The fields of `sys/mounts/<path>` and `sys/auth/<path>`.
pub(crate) static MOUNT_FIELDS: &[Field] = &[
    field("type", FieldType::Str),
    field("description", FieldType::Str),
    field("options", FieldType::Map),
    field("config", FieldType::Map),
];

/// The fields of `sys/mounts/<path>/tune` and `sys/auth/<path>/tune`.
pub(crate) static TUNE_FIELDS: &[Field] = &[
    field("default_lease_ttl", FieldType::Duration),
    field("max_lease_ttl", FieldType::Duration),
    field("description", FieldType::Str),
    field("listing_visibility", FieldType::Str),
    field("options", FieldType::Map),
];

pub async fn enable_mount(
    core: &Core,
    ns: &Arc<NsState>,
    path: &str,
    kind: &str,
    description: &str,
    options: BTreeMap<String, String>,
    config: MountConfig,
) -> Result<MountEntry> {
    let path = normalize_path(path)?;
    if RESERVED_MOUNTS.iter().any(|r| path.starts_with(r)) {
        return Err(CoreError::bad(format!(
            "cannot mount at reserved path {path:?}"
        )));
    }
    let (kind, options) = engines::prepare(kind, options)?;
    let _g = ns.admin().lock().await;
    let mut table = MountTable::load_secrets(&ns.view).await?;
    check_conflict(&table, &path)?;
    // A child namespace of that name takes every request under it: the mount would never
    // be reached, and one under a namespace's name catches its requests' paths.
    let first = path.split('/').next().unwrap_or_default();
    if core.active()?.namespaces.child(ns, first).await?.is_some() {
        return Err(CoreError::bad(format!(
            "path is already in use by the namespace {first}/"
        )));
    }
    let entry = MountEntry {
        path,
        accessor: format!("{kind}_{}", &util::uuid4()[..8]),
        kind,
        description: description.to_owned(),
        uuid: util::uuid4(),
        config,
        options,
        local: false,
        seal_wrap: false,
    };
    table.entries.push(entry.clone());
    ns.save_secrets_table(table).await?;
    Ok(entry)
}

async fn enable_auth(
    ns: &Arc<NsState>,
    path: &str,
    kind: &str,
    description: &str,
    config: MountConfig,
) -> Result<()> {
    let path = normalize_path(path)?;
    if crate::auth::method_for(kind).is_none() {
        return Err(CoreError::bad(format!(
            "plugin not found in the catalog: {kind}; this server's auth methods are: {}",
            crate::auth::offered().join(", ")
        )));
    }
    if path == "token/" {
        return Err(CoreError::bad("path is already in use at token/"));
    }
    let _g = ns.admin().lock().await;
    let mut table = MountTable::load_auth(&ns.view).await?;
    check_conflict(&table, &path)?;
    table.entries.push(MountEntry {
        path,
        accessor: format!("auth_{kind}_{}", &util::uuid4()[..8]),
        kind: kind.to_owned(),
        description: description.to_owned(),
        uuid: util::uuid4(),
        config,
        options: BTreeMap::new(),
        local: false,
        seal_wrap: false,
    });
    ns.view.put_json("sys/auth", &table).await?;
    ns.set_auth_mounts(table);
    Ok(())
}

async fn disable_auth(core: &Core, ns: &Arc<NsState>, path: &str) -> Result<()> {
    let path = normalize_path(path)?;
    if path == "token/" {
        return Err(CoreError::bad(
            "token credential backend cannot be disabled",
        ));
    }
    let active = core.active()?;
    // The tokens its logins issued are revoked with it, as OpenBao revokes them: disabling
    // a compromised method is the first step of an incident response. Once before the
    // mount goes (so a failure leaves the method, and the tokens, for a retry), and once
    // after, for a login that raced the first pass.
    crate::token::revoke_issued_by(core, &active, ns, &path).await?;
    let guard = ns.admin().lock().await;
    let mut table = MountTable::load_auth(&ns.view).await?;
    let Some(i) = table.entries.iter().position(|e| e.path == path) else {
        return Ok(());
    };
    let entry = table.entries.remove(i);
    ns.view.put_json("sys/auth", &table).await?;
    ns.set_auth_mounts(table);
    ns.view
        .delete_prefix(&format!("auth/{}/", entry.uuid))
        .await?;
    core.jwks.forget(&entry.uuid);
    core.forget_jwt_logins();
    drop(guard);
    crate::token::revoke_issued_by(core, &active, ns, &path).await?;
    Ok(())
}

async fn disable_mount(ns: &Arc<NsState>, path: &str) -> Result<()> {
    let path = normalize_path(path)?;
    // The built-in paths OpenBao mounts in every namespace: unmounting one is refused
    // there, not answered "done" for a path that stays served.
    if matches!(path.as_str(), "sys/" | "identity/" | "cubbyhole/") {
        return Err(CoreError::bad(format!("cannot unmount {path:?}")));
    }
    let _g = ns.admin().lock().await;
    let mut table = MountTable::load_secrets(&ns.view).await?;
    let Some(i) = table.entries.iter().position(|e| e.path == path) else {
        return Ok(());
    };
    let entry = table.entries.remove(i);
    ns.save_secrets_table(table).await?;
    ns.view
        .delete_prefix(&format!("logical/{}/", entry.uuid))
        .await?;
    Ok(())
}

/// `sys/remount`: moves a secrets engine (`from` → `to`) or an auth method (`auth/a` →
/// `auth/b`) within the request's namespace. The mount keeps its uuid, so its data, which
/// lives under the uuid, moves with it at once; the tokens an auth method issued at its
/// old path are revoked, as OpenBao's stop working.
/// Answers a migration id, whose status `sys/remount/status/<id>` gives (always
/// `success`: the move is done when this returns).
pub(crate) async fn remount(core: &Core, ns: &Arc<NsState>, from: &str, to: &str) -> Result<Value> {
    let (from_auth, to_auth) = (from.starts_with("auth/"), to.starts_with("auth/"));
    if from_auth != to_auth {
        return Err(CoreError::bad(
            "cannot remount between an auth method and a secrets engine",
        ));
    }
    // A move into another namespace (`ns1/secret` → `ns2/secret`) names a namespace by a
    // path prefix; every mount here is moved within its own namespace.
    let active = core.active()?;
    for p in [from, to] {
        let first = p
            .trim_start_matches("auth/")
            .split('/')
            .next()
            .unwrap_or_default();
        if active.namespaces.child(ns, first).await?.is_some() {
            return Err(CoreError::bad(format!(
                "cannot remount across namespaces ({p:?} is in namespace {first}/): move a mount within its namespace"
            )));
        }
    }
    let src = normalize_path(from.strip_prefix("auth/").unwrap_or(from))?;
    let dst = normalize_path(to.strip_prefix("auth/").unwrap_or(to))?;
    if !from_auth {
        for p in [&src, &dst] {
            if RESERVED_MOUNTS.iter().any(|r| p.starts_with(r)) {
                return Err(CoreError::bad(format!("cannot remount {p:?}")));
            }
        }
    } else if src == "token/" || dst == "token/" {
        return Err(CoreError::bad("cannot remount the token auth method"));
    }
    {
        let _g = ns.admin().lock().await;
        let mut table = if from_auth {
            MountTable::load_auth(&ns.view).await?
        } else {
            MountTable::load_secrets(&ns.view).await?
        };
        let i = table
            .entries
            .iter()
            .position(|e| e.path == src)
            .ok_or_else(|| CoreError::bad(format!("no matching mount at {src:?}")))?;
        let mut entry = table.entries.remove(i);
        check_conflict(&table, &dst)?;
        entry.path = dst.clone();
        table.entries.push(entry);
        if from_auth {
            ns.view.put_json("sys/auth", &table).await?;
            ns.set_auth_mounts(table);
        } else {
            ns.save_secrets_table(table).await?;
        }
    }
    if from_auth {
        // The tokens the method issued at its old path die with the move, as OpenBao's
        // do: none outlives the mount it names.
        crate::token::revoke_issued_by(core, &active, ns, &src).await?;
        core.forget_jwt_logins();
    }
    let id = util::uuid4();
    let status = serde_json::json!({
        "source_mount": from,
        "target_mount": to,
        "status": "success",
    });
    ns.view
        .put_json(&format!("sys/remount-status/{id}"), &status)
        .await?;
    Ok(serde_json::json!({ "migration_id": id }))
}

/// `sys/remount/status/<id>`.
pub(crate) async fn remount_status(ns: &NsState, id: &str) -> Result<Value> {
    if id.is_empty() || id.contains('/') {
        return Err(CoreError::bad("invalid migration id"));
    }
    let info: Value = ns
        .view
        .get_json(&format!("sys/remount-status/{id}"))
        .await?
        .ok_or_else(|| CoreError::NotFound(String::new()))?;
    Ok(serde_json::json!({ "migration_id": id, "migration_info": info }))
}

fn tune_json(core: &Core, e: &MountEntry) -> Value {
    let or_default = |v: i64, d: i64| if v == 0 { d } else { v };
    json!({
        "default_lease_ttl": or_default(e.config.default_lease_ttl, core.cfg.default_lease_ttl),
        "max_lease_ttl": or_default(e.config.max_lease_ttl, core.cfg.max_lease_ttl),
        "force_no_cache": false,
        "description": e.description,
        "options": if e.options.is_empty() { Value::Null } else { json!(e.options) },
        "listing_visibility": e.config.listing_visibility,
    })
}

async fn tune(
    core: &Core,
    ns: &Arc<NsState>,
    auth: bool,
    path: &str,
    fields: &Fields<'_>,
) -> Result<()> {
    let path = normalize_path(path)?;
    let _g = ns.admin().lock().await;
    let (mut mounts, mut auths) = MountTable::load(&ns.view).await?;
    let table = if auth { &mut auths } else { &mut mounts };
    let e = table
        .entries
        .iter_mut()
        .find(|e| e.path == path)
        .ok_or_else(|| CoreError::bad(format!("cannot tune {path:?}: no mount at this path")))?;
    if let Some(t) = fields.duration("default_lease_ttl") {
        e.config.default_lease_ttl = t;
    }
    if let Some(t) = fields.duration("max_lease_ttl") {
        e.config.max_lease_ttl = t;
    }
    if let Some(d) = fields.str("description") {
        e.description = d.into_owned();
    }
    if let Some(v) = fields.str("listing_visibility") {
        e.config.listing_visibility = listing_visibility(&Value::String(v.into_owned()))?;
    }
    for (ok, ov) in options_from(fields.map("options")) {
        if ok == "version" && e.kind == "kv" {
            let cur = e
                .options
                .get("version")
                .cloned()
                .unwrap_or_else(|| "1".into());
            if ov != cur {
                return Err(CoreError::bad(format!(
                    "changing the kv version of {path:?} from {cur} to {ov} is not supported; mount a new kv-v2 engine and copy the data"
                )));
            }
        }
        e.options.insert(ok, ov);
    }
    if e.config.max_lease_ttl != 0 && e.config.default_lease_ttl > e.config.max_lease_ttl {
        return Err(CoreError::bad(
            "default_lease_ttl cannot be greater than max_lease_ttl",
        ));
    }
    if auth {
        ns.view.put_json("sys/auth", &auths).await?;
        ns.set_auth_mounts(auths);
        // Token lifetimes of jwt logins follow the mount's tuning.
        core.forget_jwt_logins();
    } else {
        ns.save_secrets_table(mounts).await?;
    }
    Ok(())
}

fn table_json(core: &Core, table: &MountTable, extra_sys: bool) -> Value {
    let mut m = Map::new();
    for e in &table.entries {
        m.insert(e.path.clone(), e.to_json(core));
    }
    if extra_sys {
        m.insert(
            "sys/".into(),
            json!({
                "accessor": "system_00000000", "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false},
                "description": "system endpoints used for control, policy and debugging", "external_entropy_access": false,
                "local": false, "options": null, "plugin_version": "", "running_plugin_version": format!("v{}+builtin.strongroom", core.version),
                "running_sha256": "", "seal_wrap": true, "type": "system", "uuid": "00000000-0000-0000-0000-000000000000"
            }),
        );
    }
    Value::Object(m)
}

/// `sys/mounts…` and `sys/auth…`.
pub async fn handle_sys(
    core: &Core,
    ns: &Arc<NsState>,
    auth: bool,
    op: Operation,
    rest: &str,
    fields: &Fields<'_>,
) -> Result<Response> {
    let rest = rest.trim_start_matches('/');
    if rest.is_empty() {
        return match op {
            Operation::Read => {
                let table = if auth {
                    ns.auth_mounts().await?.as_ref().clone()
                } else {
                    ns.mounts().as_ref().clone()
                };
                let mut r = Response::data(table_json(core, &table, !auth));
                r.legacy_top_level = true;
                Ok(r)
            }
            _ => Err(CoreError::UnsupportedOperation),
        };
    }
    if let Some(path) = rest.strip_suffix("/tune") {
        return match op {
            Operation::Read => {
                let p = normalize_path(path)?;
                let table = if auth {
                    ns.auth_mounts().await?
                } else {
                    ns.mounts()
                };
                let e = table.get(&p).ok_or_else(|| {
                    CoreError::bad(format!("cannot fetch sysview for path {p:?}"))
                })?;
                let mut r = Response::data(tune_json(core, e));
                r.legacy_top_level = true;
                Ok(r)
            }
            Operation::Create | Operation::Update => {
                tune(core, ns, auth, path, fields).await?;
                Ok(Response::none())
            }
            _ => Err(CoreError::UnsupportedOperation),
        };
    }
    match op {
        Operation::Create | Operation::Update => {
            let kind = fields
                .str("type")
                .ok_or_else(|| CoreError::bad("missing engine type"))?;
            let description = fields.str("description").unwrap_or_default();
            let options = options_from(fields.map("options"));
            let config = config_from(fields.map("config"))?;
            if auth {
                enable_auth(ns, rest, &kind, &description, config).await?;
                return Ok(Response::none());
            }
            enable_mount(core, ns, rest, &kind, &description, options, config).await?;
            Ok(Response::none())
        }
        Operation::Delete => {
            if auth {
                disable_auth(core, ns, rest).await?;
                return Ok(Response::none());
            }
            disable_mount(ns, rest).await?;
            Ok(Response::none())
        }
        Operation::Read => {
            let p = normalize_path(rest)?;
            let table = if auth {
                ns.auth_mounts().await?
            } else {
                ns.mounts()
            };
            match table.get(&p) {
                Some(e) => Ok(Response::data(e.to_json(core))),
                None => Err(CoreError::bad(format!("no mount at {p:?}"))),
            }
        }
        _ => Err(CoreError::UnsupportedOperation),
    }
}

/// `sys/internal/ui/mounts[/<path>]`: the mount serving a path, for clients that need to
/// know the engine version (the `bao kv` commands). Access: any capability under the mount.
pub async fn internal_ui_mounts(
    core: &Core,
    ns: &Arc<NsState>,
    acl: &strongroom_acl::Acl,
    ns_rel: &str,
    path: &str,
) -> Result<Response> {
    let path = path.trim_start_matches('/');
    if path.is_empty() {
        let mounts = ns.mounts();
        let auths = ns.auth_mounts().await?;
        let mut secret = Map::new();
        for e in &mounts.entries {
            if acl.any_access_under(&format!("{ns_rel}{}", e.path)) {
                secret.insert(e.path.clone(), e.to_json(core));
            }
        }
        let mut auth = Map::new();
        for e in &auths.entries {
            if acl.any_access_under(&format!("{ns_rel}auth/{}", e.path)) {
                auth.insert(e.path.clone(), e.to_json(core));
            }
        }
        return Ok(Response::data(json!({ "secret": secret, "auth": auth })));
    }
    let (entry, full) = if let Some(auth_path) = path.strip_prefix("auth/") {
        let t = ns.auth_mounts().await?;
        (t.longest_match(auth_path).cloned(), true)
    } else {
        (ns.mounts().longest_match(path).cloned(), false)
    };
    let Some(e) = entry else {
        return Err(CoreError::PermissionDenied);
    };
    let mount_path = if full {
        format!("auth/{}", e.path)
    } else {
        e.path.clone()
    };
    if !acl.any_access_under(&format!("{ns_rel}{mount_path}")) {
        return Err(CoreError::PermissionDenied);
    }
    let mut j = e.to_json(core);
    j["path"] = Value::String(mount_path);
    Ok(Response::data(j))
}
