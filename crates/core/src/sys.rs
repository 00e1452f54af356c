//! The system backend (`sys/…`): lifecycle (init, seal, unseal, health), mounts, policies,
//! namespaces, capabilities, key rotation.

use std::sync::Arc;

use base64::Engine;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::error::{CoreError, Result};
use crate::namespace::NsState;
use crate::route::{field, Captures, Field, FieldType as T, Fields, PathSpec};
use crate::{
    mounts, namespace, policy, token, util, Active, Caller, Core, Operation, Request, Response,
    Seal,
};

/// What each `sys/` path is, for dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SysPath {
    Init,
    SealStatus,
    Unseal,
    Health,
    Leader,
    Mounts,
    MountTune,
    Mount,
    Auths,
    AuthTune,
    Auth,
    LegacyPolicies,
    LegacyPolicy,
    Policies,
    Policy,
    Namespaces,
    Namespace,
    CapabilitiesSelf,
    Capabilities,
    UiMounts,
    Seal,
    StepDown,
    Rotate,
    RotateConfig,
    KeyStatus,
    Remount,
    RemountStatus,
    LeaseLookup,
    LeaseList,
    LeaseRevoke,
    LeaseRevokePrefix,
    RemovedSudo,
    ConfigCors,
    RekeyInit,
    RekeyUpdate,
    RekeyBackup,
    WrappingWrap,
    WrappingUnwrap,
    WrappingLookup,
    WrappingRewrap,
}

use Operation::{Delete as D, List as L, Patch as P, Read as R, Update as W};

/// The system backend's paths, relative to `sys/`. Sudo follows OpenBao's
/// `PathsSpecial.Root` for the paths served here (`auth/*`, `rotate`, `rotate/keyring`),
/// plus `seal` and `step-down`, which OpenBao's HTTP layer checks for sudo itself.
pub(crate) static PATHS: &[PathSpec<SysPath>] = &[
    PathSpec::new("init", &[R, W], SysPath::Init)
        .unauthenticated()
        .fields(&[
            field("secret_shares", T::Int),
            field("secret_threshold", T::Int),
            field("pgp_keys", T::StrList),
        ]),
    PathSpec::new("seal-status", &[R], SysPath::SealStatus).unauthenticated(),
    PathSpec::new("unseal", &[W], SysPath::Unseal)
        .unauthenticated()
        .fields(&[field("key", T::Str), field("reset", T::Bool)]),
    PathSpec::new("health", &[R], SysPath::Health)
        .unauthenticated()
        .fields(&[
            field("standbyok", T::Bool),
            field("activecode", T::Int),
            field("sealedcode", T::Int),
            field("uninitcode", T::Int),
        ]),
    PathSpec::new("leader", &[R], SysPath::Leader).unauthenticated(),
    // The wrapping token is the credential of an unwrap and a lookup (OpenBao lists
    // `wrapping/lookup` as unauthenticated, and judges an unwrap's token itself).
    PathSpec::new("wrapping/unwrap", &[W], SysPath::WrappingUnwrap)
        .unauthenticated()
        .fields(&[field("token", T::Str)]),
    PathSpec::new("wrapping/lookup", &[R, W], SysPath::WrappingLookup)
        .unauthenticated()
        .fields(&[field("token", T::Str)]),
    PathSpec::new("wrapping/wrap", &[W], SysPath::WrappingWrap),
    // Rekey needs a token with sudo here as well as the shares: OpenBao's unauthenticated
    // rekey let anyone start or cancel an attempt (CVE-2025-52894), and OpenBao 2.7 turns
    // it off by default (405) unless a listener sets `disable_unauthed_rekey_endpoints`.
    PathSpec::new("rekey/init", &[R, W, D], SysPath::RekeyInit)
        .sudo()
        .fields(&[
            field("secret_shares", T::Int),
            field("secret_threshold", T::Int),
            field("pgp_keys", T::StrList),
            field("backup", T::Bool),
            field("require_verification", T::Bool),
        ]),
    PathSpec::new("rekey/update", &[W], SysPath::RekeyUpdate)
        .sudo()
        .fields(&[field("key", T::Str), field("nonce", T::Str)]),
    PathSpec::new("rekey/backup", &[R, D], SysPath::RekeyBackup),
    // Leases: this server's are tokens (see `leases`). Sudo as in OpenBao's
    // `PathsSpecial.Root` (`leases/lookup/*`, `leases/revoke-prefix/*`, …).
    PathSpec::new("leases/lookup", &[W], SysPath::LeaseLookup).fields(&[field("lease_id", T::Str)]),
    PathSpec::new("leases/lookup/{prefix*}", &[L], SysPath::LeaseList).sudo(),
    PathSpec::new("leases/revoke", &[W], SysPath::LeaseRevoke)
        .fields(&[field("lease_id", T::Str), field("sync", T::Bool)]),
    PathSpec::new("leases/revoke/{id+}", &[W], SysPath::LeaseRevoke)
        .fields(&[field("lease_id", T::Str), field("sync", T::Bool)]),
    PathSpec::new(
        "leases/revoke-prefix/{prefix+}",
        &[W],
        SysPath::LeaseRevokePrefix,
    )
    .sudo()
    .fields(&[field("sync", T::Bool)]),
    PathSpec::new(
        "leases/revoke-force/{prefix+}",
        &[W],
        SysPath::LeaseRevokePrefix,
    )
    .sudo(),
    // Gone from OpenBao 2.x but still on its sudo list: a caller without sudo is refused
    // (403) before it learns they are gone (404).
    PathSpec::new("revoke-prefix/{prefix+}", &[W], SysPath::RemovedSudo).sudo(),
    PathSpec::new("revoke-force/{prefix+}", &[W], SysPath::RemovedSudo).sudo(),
    PathSpec::new("config/cors", &[R, W, D], SysPath::ConfigCors)
        .sudo()
        .fields(&[
            field("allowed_origins", T::StrList),
            field("allowed_headers", T::StrList),
            field("allow_credentials", T::Bool),
        ]),
    PathSpec::new("remount", &[W], SysPath::Remount)
        .sudo()
        .fields(&[field("from", T::Str), field("to", T::Str)]),
    PathSpec::new("remount/status/{id}", &[R], SysPath::RemountStatus),
    PathSpec::new("wrapping/rewrap", &[W], SysPath::WrappingRewrap)
        .fields(&[field("token", T::Str)]),
    PathSpec::new("mounts", &[R], SysPath::Mounts),
    PathSpec::new("mounts/{path+}/tune", &[R, W], SysPath::MountTune).fields(mounts::TUNE_FIELDS),
    PathSpec::new("mounts/{path+}", &[R, W, D], SysPath::Mount).fields(mounts::MOUNT_FIELDS),
    PathSpec::new("auth", &[R], SysPath::Auths),
    PathSpec::new("auth/{path+}/tune", &[R, W], SysPath::AuthTune)
        .sudo()
        .fields(mounts::TUNE_FIELDS),
    PathSpec::new("auth/{path+}", &[R, W, D], SysPath::Auth)
        .sudo()
        .fields(mounts::MOUNT_FIELDS),
    PathSpec::new("policy/?", &[R, L], SysPath::LegacyPolicies),
    PathSpec::new("policy/{name}", &[R, W, D], SysPath::LegacyPolicy)
        .existence_check()
        .fields(policy::POLICY_FIELDS),
    PathSpec::new("policies/acl/?", &[L], SysPath::Policies),
    PathSpec::new("policies/acl/{name}", &[R, W, D], SysPath::Policy)
        .existence_check()
        .fields(policy::POLICY_FIELDS),
    PathSpec::new("namespaces/?", &[L], SysPath::Namespaces),
    PathSpec::new("namespaces/{path+}", &[R, W, P, D], SysPath::Namespace)
        .fields(&[field("custom_metadata", T::Map)]),
    PathSpec::new("capabilities-self", &[W], SysPath::CapabilitiesSelf)
        .fields(policy::CAPABILITIES_FIELDS),
    PathSpec::new("capabilities", &[W], SysPath::Capabilities).fields(&[
        field("token", T::Str),
        field("path", T::StrList),
        field("paths", T::StrList),
    ]),
    PathSpec::new("internal/ui/mounts", &[R], SysPath::UiMounts).own_acl(),
    PathSpec::new("internal/ui/mounts/{path+}", &[R], SysPath::UiMounts).own_acl(),
    PathSpec::new("seal", &[W], SysPath::Seal).sudo(),
    PathSpec::new("step-down", &[W], SysPath::StepDown).sudo(),
    PathSpec::new("rotate", &[W], SysPath::Rotate).sudo(),
    PathSpec::new("rotate/keyring", &[W], SysPath::Rotate).sudo(),
    PathSpec::new("rotate/config", &[R, W], SysPath::RotateConfig).fields(ROTATE_CONFIG),
    PathSpec::new("rotate/keyring/config", &[R, W], SysPath::RotateConfig).fields(ROTATE_CONFIG),
    PathSpec::new("key-status", &[R], SysPath::KeyStatus),
];

static ROTATE_CONFIG: &[Field] = &[
    field("max_operations", T::Int),
    field("interval", T::Duration),
    field("enabled", T::Bool),
];

fn code_param(fields: &Fields, k: &str, default: u16) -> Result<u16> {
    match fields.int(k) {
        None => Ok(default),
        Some(c) => u16::try_from(c)
            .ok()
            .filter(|c| (100..600).contains(c))
            .ok_or_else(|| CoreError::bad(format!("invalid {k}: use an HTTP status code"))),
    }
}

pub async fn seal_status(core: &Core) -> Result<Value> {
    let initialized = core.is_initialized().await?;
    let cfg = core.seal_config().await?;
    let (progress, nonce) = core.unseal_progress();
    let sealed = core.is_sealed();
    let active = core.active.load_full();
    let kind = match (&core.seal, &cfg) {
        (_, Some(c)) => c.kind.clone(),
        (Seal::Static(_), None) => "static".into(),
        (Seal::Shamir, None) => "shamir".into(),
    };
    let mut v = json!({
        "type": kind,
        "initialized": initialized,
        "sealed": sealed,
        "t": cfg.as_ref().map(|c| c.secret_threshold).unwrap_or(0),
        "n": cfg.as_ref().map(|c| c.secret_shares).unwrap_or(0),
        "progress": progress,
        "nonce": nonce,
        "version": core.version,
        "commit_date": "",
        "migration": false,
        "recovery_seal": false,
        "storage_type": core.barrier.storage().kind(),
    });
    if let Some(a) = active {
        v["cluster_name"] = json!(core.cfg.cluster_name);
        v["cluster_id"] = json!(a.cluster_id);
    }
    Ok(v)
}

pub(crate) fn decode_share(s: &str) -> Result<Zeroizing<Vec<u8>>> {
    let s = s.trim();
    if let Ok(b) = hex::decode(s) {
        return Ok(Zeroizing::new(b));
    }
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map(Zeroizing::new)
        .map_err(|_| CoreError::bad("'key' must be a valid hex or base64 string"))
}

/// Endpoints that work without a token, sealed or not (entries marked `unauthenticated`).
pub async fn unauthenticated(
    core: &Core,
    path: SysPath,
    req: &Request,
    fields: &Fields<'_>,
) -> Result<Response> {
    let op = req.op();
    let write = req.is_write || matches!(op, Operation::Create | Operation::Update);
    match path {
        SysPath::SealStatus => Ok(Response::raw(200, seal_status(core).await?)),
        SysPath::Init if !write => Ok(Response::raw(
            200,
            json!({ "initialized": core.is_initialized().await? }),
        )),
        SysPath::Init => {
            let shares = fields.int("secret_shares");
            let threshold = fields.int("secret_threshold");
            let (shares, threshold) = match (&core.seal, shares, threshold) {
                (Seal::Static(_), _, _) => (1, 1),
                (Seal::Shamir, Some(s), Some(t)) => (s, t),
                (Seal::Shamir, _, _) => {
                    return Err(CoreError::bad(
                        "secret_shares and secret_threshold are required",
                    ))
                }
            };
            if !(1..=255).contains(&shares) || !(1..=255).contains(&threshold) {
                return Err(CoreError::bad(
                    "secret_shares and secret_threshold must be between 1 and 255",
                ));
            }
            if fields.has("pgp_keys") {
                return Err(CoreError::bad(
                    "pgp_keys are not supported: distribute key shares over a secure channel",
                ));
            }
            let (keys, root) = core.initialize(shares as u8, threshold as u8, None).await?;
            let hexes: Vec<String> = keys.iter().map(hex::encode).collect();
            let b64: Vec<String> = keys
                .iter()
                .map(|k| base64::engine::general_purpose::STANDARD.encode(&k[..]))
                .collect();
            if matches!(core.seal, Seal::Static(_)) {
                core.auto_unseal().await?;
            }
            let body = json!({ "keys": hexes, "keys_base64": b64, "root_token": root.as_str(),
                               "recovery_keys": Value::Null, "recovery_keys_base64": Value::Null });
            Ok(Response::raw(200, body))
        }
        SysPath::Unseal => {
            if fields.bool("reset").unwrap_or(false) {
                core.reset_unseal();
                return Ok(Response::raw(200, seal_status(core).await?));
            }
            if !core.is_initialized().await? {
                return Err(CoreError::bad("Vault is not initialized"));
            }
            let key = fields.str("key").ok_or_else(|| {
                CoreError::bad(
                    "'key' must be specified in request body as JSON, or 'reset' set to true",
                )
            })?;
            if core.is_sealed() {
                core.submit_unseal_share(decode_share(&key)?).await?;
            }
            Ok(Response::raw(200, seal_status(core).await?))
        }
        SysPath::Health => {
            let initialized = core.is_initialized().await?;
            let sealed = core.is_sealed();
            let status = if !initialized {
                code_param(fields, "uninitcode", 501)?
            } else if sealed {
                code_param(fields, "sealedcode", 503)?
            } else {
                code_param(fields, "activecode", 200)?
            };
            let active = core.active.load_full();
            let body = json!({
                "initialized": initialized,
                "sealed": sealed,
                "standby": false,
                "performance_standby": false,
                "replication_performance_mode": "disabled",
                "replication_dr_mode": "disabled",
                "server_time_utc": util::now_secs(),
                "version": core.version,
                "enterprise": false,
                "cluster_name": core.cfg.cluster_name,
                "cluster_id": active.map(|a| a.cluster_id.clone()).unwrap_or_default(),
                "echo_duration_ms": 0,
                "clock_skew_ms": 0,
                // Every node serves reads and writes; this one also runs background work.
                "background_leader": core.is_leader(),
            });
            Ok(Response::raw(status, body))
        }
        SysPath::Leader => {
            if core.is_sealed() {
                return Err(CoreError::Sealed);
            }
            let shared = core.barrier.storage().shared();
            let leader = if shared {
                core.leader_address().await.unwrap_or_default()
            } else {
                String::new()
            };
            Ok(Response::raw(
                200,
                json!({
                    "ha_enabled": shared,
                    "is_self": shared && core.is_leader(),
                    "active_time": "0001-01-01T00:00:00Z",
                    "leader_address": leader,
                    "leader_cluster_address": "",
                    "performance_standby": false,
                    "performance_standby_last_remote_wal": 0,
                    "raft_committed_index": 0,
                    "raft_applied_index": 0,
                }),
            ))
        }
        SysPath::WrappingUnwrap => {
            let active = core.active()?;
            let named = fields.str("token").filter(|t| !t.is_empty());
            let id = match named {
                // A third party unwraps with a token of its own, which must be allowed to.
                Some(t) => {
                    let caller =
                        token::authenticate(core, &active, req.token.as_deref(), req.client_ip)
                            .await?;
                    if !caller
                        .acl
                        .check(Operation::Update, "sys/wrapping/unwrap", None)
                        .allowed
                    {
                        return Err(CoreError::PermissionDenied);
                    }
                    t.into_owned()
                }
                None => req
                    .token
                    .clone()
                    .filter(|t| !t.is_empty())
                    .ok_or(CoreError::PermissionDenied)?,
            };
            crate::wrapping::unwrap(core, &active, &id).await
        }
        SysPath::WrappingLookup => {
            let active = core.active()?;
            let id = fields
                .str("token")
                .filter(|t| !t.is_empty())
                .ok_or_else(|| CoreError::bad("missing \"token\" value in input"))?;
            crate::wrapping::lookup(core, &active, &id).await
        }
        other => Err(CoreError::Internal(format!(
            "sys path {other:?} is not an unauthenticated one"
        ))),
    }
}

/// Authenticated `sys/` endpoints: the ACL, sudo and the operation were checked by the
/// core against the path's entry in [`PATHS`].
#[allow(clippy::too_many_arguments)]
pub(crate) async fn handle(
    core: &Core,
    active: &Active,
    ns: &Arc<NsState>,
    caller: &Caller,
    op: Operation,
    path: SysPath,
    captures: &Captures,
    req: &Request,
    fields: &Fields<'_>,
) -> Result<Response> {
    let ns_rel = ns.relative_to(&caller.ns).to_owned();
    let target = captures.get("path");
    match path {
        SysPath::Mounts => mounts::handle_sys(core, ns, false, op, "", fields).await,
        SysPath::MountTune => {
            mounts::handle_sys(core, ns, false, op, &format!("{target}/tune"), fields).await
        }
        SysPath::Mount => mounts::handle_sys(core, ns, false, op, target, fields).await,
        SysPath::Auths => mounts::handle_sys(core, ns, true, op, "", fields).await,
        SysPath::AuthTune => {
            mounts::handle_sys(core, ns, true, op, &format!("{target}/tune"), fields).await
        }
        SysPath::Auth => mounts::handle_sys(core, ns, true, op, target, fields).await,
        SysPath::LegacyPolicies => policy::handle_sys(active, ns, true, op, "", fields).await,
        SysPath::LegacyPolicy => {
            policy::handle_sys(active, ns, true, op, captures.get("name"), fields).await
        }
        SysPath::Policies => policy::handle_sys(active, ns, false, op, "", fields).await,
        SysPath::Policy => {
            policy::handle_sys(active, ns, false, op, captures.get("name"), fields).await
        }
        SysPath::Namespaces | SysPath::Namespace => {
            let r = namespace::handle_sys(&active.namespaces, ns, op, target, fields).await;
            if op == Operation::Delete {
                active.tokens.clear();
                active.acls.clear();
            }
            r
        }
        SysPath::CapabilitiesSelf => policy::capabilities_response(&caller.acl, &ns_rel, fields),
        SysPath::Capabilities => {
            let t = fields
                .str("token")
                .ok_or_else(|| CoreError::bad("missing token"))?;
            let other = token::authenticate(core, active, Some(&t), req.client_ip)
                .await
                .map_err(|_| CoreError::bad("invalid token"))?;
            let rel = ns.relative_to(&other.ns).to_owned();
            policy::capabilities_response(&other.acl, &rel, fields)
        }
        SysPath::UiMounts => {
            mounts::internal_ui_mounts(core, ns, &caller.acl, &ns_rel, target).await
        }
        SysPath::Seal if ns.is_root() => {
            core.seal().await;
            Ok(Response::none())
        }
        SysPath::StepDown => Ok(Response::none()),
        SysPath::Rotate if ns.is_root() => {
            core.barrier.rotate().await?;
            Ok(Response::none())
        }
        SysPath::RotateConfig if ns.is_root() && op == Operation::Read => {
            let c = core.barrier.rotation_config()?;
            Ok(Response::data(json!({
                "max_operations": c.max_operations,
                "interval": c.interval_secs,
                "enabled": !c.disabled,
            })))
        }
        SysPath::RotateConfig if ns.is_root() => {
            let mut c = core.barrier.rotation_config()?;
            if let Some(n) = fields.int("max_operations") {
                c.max_operations = u64::try_from(n)
                    .map_err(|_| CoreError::bad("max_operations must be a non-negative integer"))?;
            }
            if let Some(s) = fields.duration("interval") {
                if s != 0 && s < 3600 {
                    return Err(CoreError::bad(
                        "interval must be 0 (disabled) or at least 1h",
                    ));
                }
                c.interval_secs = s.max(0) as u64;
            }
            if let Some(enabled) = fields.bool("enabled") {
                c.disabled = !enabled;
            }
            core.barrier.set_rotation_config(c).await?;
            Ok(Response::none())
        }
        SysPath::KeyStatus if ns.is_root() => {
            let s = core.barrier.key_status()?;
            let mut r = Response::data(json!({
                "term": s.term,
                "install_time": util::rfc3339_secs(s.install_time),
                "encryptions": s.encryptions,
            }));
            r.legacy_top_level = true;
            Ok(r)
        }
        // Root-namespace paths asked in a child namespace, as OpenBao answers them.
        SysPath::Seal | SysPath::Rotate | SysPath::RotateConfig | SysPath::KeyStatus => {
            Err(CoreError::NotFound(format!(
                "no handler for route \"sys/{}\". route entry not found.",
                req.path.rsplit_once("sys/").map_or("", |(_, r)| r)
            )))
        }
        SysPath::RekeyInit => match op {
            Operation::Delete => crate::rekey::cancel(core).await,
            Operation::Read => crate::rekey::read(core).await,
            _ => crate::rekey::start(core, fields).await,
        },
        SysPath::RekeyUpdate => crate::rekey::update(core, fields).await,
        SysPath::RekeyBackup => match op {
            Operation::Delete => Ok(Response::none()),
            _ => crate::rekey::backup(),
        },
        SysPath::RemovedSudo => Err(CoreError::NotFound(format!(
            "no handler for route \"sys/{}\". route entry not found.",
            req.path.rsplit_once("sys/").map_or("", |(_, r)| r)
        ))),
        SysPath::LeaseLookup => {
            let id = fields
                .str("lease_id")
                .filter(|i| !i.is_empty())
                .ok_or_else(|| CoreError::bad("missing param lease_id"))?;
            crate::leases::lookup(core, ns, &id).await
        }
        SysPath::LeaseList => crate::leases::list(ns, captures.get("prefix")).await,
        SysPath::LeaseRevoke => {
            let id = match fields.str("lease_id").filter(|i| !i.is_empty()) {
                Some(i) => i.into_owned(),
                None if !captures.get("id").is_empty() => captures.get("id").to_owned(),
                None => return Err(CoreError::bad("missing param lease_id")),
            };
            crate::leases::revoke(core, ns, &id).await
        }
        SysPath::LeaseRevokePrefix => {
            crate::leases::revoke_prefix(core, ns, captures.get("prefix")).await
        }
        // One CORS configuration for the server, as in OpenBao: root namespace only.
        SysPath::ConfigCors if !ns.is_root() => Err(CoreError::NotFound(String::new())),
        SysPath::ConfigCors => match op {
            Operation::Read => crate::cors::read(core).await,
            Operation::Delete => crate::cors::delete(core).await,
            _ => crate::cors::write(core, fields).await,
        },
        SysPath::Remount => {
            let from = fields.str("from").unwrap_or_default();
            let to = fields.str("to").unwrap_or_default();
            if from.is_empty() || to.is_empty() {
                return Err(CoreError::bad("both 'from' and 'to' are required"));
            }
            // The id is repeated at the top level, as OpenBao's legacy envelope does.
            let mut r = Response::data(mounts::remount(core, ns, &from, &to).await?)
                .with_warning("Mount move is complete; sys/remount/status gives it under the returned migration_id");
            r.legacy_top_level = true;
            Ok(r)
        }
        SysPath::RemountStatus => Ok(Response::data(
            mounts::remount_status(ns, captures.get("id")).await?,
        )),
        SysPath::WrappingWrap => {
            if req.wrap_ttl.is_none_or(|t| t <= 0) {
                return Err(CoreError::bad(
                    "endpoint requires response wrapping to be used",
                ));
            }
            Ok(Response::data(Value::Object(req.data.clone())))
        }
        SysPath::WrappingRewrap => {
            let id = fields
                .str("token")
                .filter(|t| !t.is_empty())
                .ok_or_else(|| CoreError::bad("missing \"token\" value in input"))?;
            crate::wrapping::rewrap(core, active, &id).await
        }
        SysPath::Init
        | SysPath::SealStatus
        | SysPath::Unseal
        | SysPath::Health
        | SysPath::Leader
        | SysPath::WrappingUnwrap
        | SysPath::WrappingLookup => unauthenticated(core, path, req, fields).await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_table_is_well_formed() {
        crate::route::check_table(super::PATHS);
    }
}
