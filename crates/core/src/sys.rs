//! The system backend (`sys/…`): lifecycle (init, seal, unseal, health), mounts, policies,
//! namespaces, capabilities, key rotation.

use std::sync::Arc;

use base64::Engine;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::error::{CoreError, Result};
use crate::namespace::NsState;
use crate::{
    mounts, namespace, policy, token, util, Active, Caller, Core, Operation, Request, Response,
    Seal,
};

fn code_param(data: &Map<String, Value>, k: &str, default: u16) -> Result<u16> {
    match data.get(k) {
        None => Ok(default),
        Some(v) => util::as_i64(v)
            .filter(|c| (100..600).contains(c))
            .map(|c| c as u16)
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

fn decode_share(s: &str) -> Result<Zeroizing<Vec<u8>>> {
    let s = s.trim();
    if let Ok(b) = hex::decode(s) {
        return Ok(Zeroizing::new(b));
    }
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map(Zeroizing::new)
        .map_err(|_| CoreError::bad("'key' must be a valid hex or base64 string"))
}

/// Endpoints that work without a token, sealed or not. `None` = not one of them.
pub async fn unauthenticated(core: &Core, rest: &str, req: &Request) -> Result<Option<Response>> {
    let op = req.op();
    let write = req.is_write || matches!(op, Operation::Create | Operation::Update);
    let data = &req.data;
    match rest.trim_end_matches('/') {
        "seal-status" => Ok(Some(Response::raw(200, seal_status(core).await?))),
        "init" if !write => Ok(Some(Response::raw(
            200,
            json!({ "initialized": core.is_initialized().await? }),
        ))),
        "init" => {
            let shares = data.get("secret_shares").and_then(util::as_i64);
            let threshold = data.get("secret_threshold").and_then(util::as_i64);
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
            if data.get("pgp_keys").is_some_and(|v| !v.is_null()) {
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
            Ok(Some(Response::raw(200, body)))
        }
        "unseal" => {
            if !write {
                return Err(CoreError::UnsupportedOperation);
            }
            if data.get("reset").and_then(util::as_bool).unwrap_or(false) {
                core.reset_unseal();
                return Ok(Some(Response::raw(200, seal_status(core).await?)));
            }
            if !core.is_initialized().await? {
                return Err(CoreError::bad("Vault is not initialized"));
            }
            let key = crate::field_str(data, "key").ok_or_else(|| {
                CoreError::bad(
                    "'key' must be specified in request body as JSON, or 'reset' set to true",
                )
            })?;
            if core.is_sealed() {
                core.submit_unseal_share(decode_share(&key)?).await?;
            }
            Ok(Some(Response::raw(200, seal_status(core).await?)))
        }
        "health" => {
            let initialized = core.is_initialized().await?;
            let sealed = core.is_sealed();
            let status = if !initialized {
                code_param(data, "uninitcode", 501)?
            } else if sealed {
                code_param(data, "sealedcode", 503)?
            } else {
                code_param(data, "activecode", 200)?
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
            Ok(Some(Response::raw(status, body)))
        }
        "leader" => {
            if core.is_sealed() {
                return Err(CoreError::Sealed);
            }
            let shared = core.barrier.storage().shared();
            let leader = if shared {
                core.leader_address().await.unwrap_or_default()
            } else {
                String::new()
            };
            Ok(Some(Response::raw(
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
            )))
        }
        _ => Ok(None),
    }
}

/// Authenticated `sys/` endpoints (ACL already checked by the caller).
pub(crate) async fn handle(
    core: &Core,
    active: &Active,
    ns: &Arc<NsState>,
    caller: &Caller,
    op: Operation,
    rest: &str,
    req: &Request,
) -> Result<Response> {
    let data = &req.data;
    let write = matches!(op, Operation::Create | Operation::Update);
    let ns_rel = ns.relative_to(&caller.ns).to_owned();
    let (head, tail) = match rest.split_once('/') {
        Some((h, t)) => (h, t),
        None => (rest, ""),
    };
    match head {
        "mounts" => mounts::handle_sys(core, ns, false, op, tail, data).await,
        "auth" => mounts::handle_sys(core, ns, true, op, tail, data).await,
        "policy" => policy::handle_sys(active, ns, true, op, tail, data).await,
        "policies" => match tail.split_once('/') {
            Some(("acl", name)) => policy::handle_sys(active, ns, false, op, name, data).await,
            None if tail == "acl" => policy::handle_sys(active, ns, false, op, "", data).await,
            _ => Err(CoreError::NotFound(format!(
                "no handler for route \"sys/{rest}\". route entry not found."
            ))),
        },
        "namespaces" => {
            let r = namespace::handle_sys(&active.namespaces, ns, op, tail, data).await;
            if op == Operation::Delete {
                active.tokens.clear();
                active.acls.clear();
            }
            r
        }
        "capabilities-self" if write => policy::capabilities_response(&caller.acl, &ns_rel, data),
        "capabilities" if write => {
            let t =
                crate::field_str(data, "token").ok_or_else(|| CoreError::bad("missing token"))?;
            let other = token::authenticate(core, active, Some(&t), req.client_ip)
                .await
                .map_err(|_| CoreError::bad("invalid token"))?;
            let rel = ns.relative_to(&other.ns).to_owned();
            policy::capabilities_response(&other.acl, &rel, data)
        }
        "internal" if tail.starts_with("ui/mounts") => {
            let path = tail.strip_prefix("ui/mounts").unwrap_or_default();
            mounts::internal_ui_mounts(core, ns, &caller.acl, &ns_rel, path).await
        }
        "seal" if write && ns.is_root() => {
            core.seal().await;
            Ok(Response::none())
        }
        "step-down" if write => Ok(Response::none()),
        "rotate" if ns.is_root() => match (
            op,
            tail.trim_start_matches("keyring").trim_start_matches('/'),
        ) {
            (Operation::Create | Operation::Update, "") => {
                core.barrier.rotate().await?;
                Ok(Response::none())
            }
            (Operation::Read, "config") => {
                let c = core.barrier.rotation_config()?;
                Ok(Response::data(json!({
                    "max_operations": c.max_operations,
                    "interval": c.interval_secs,
                    "enabled": !c.disabled,
                })))
            }
            (Operation::Create | Operation::Update, "config") => {
                let mut c = core.barrier.rotation_config()?;
                if let Some(v) = data.get("max_operations") {
                    let n = util::as_i64(v).filter(|n| *n >= 0).ok_or_else(|| {
                        CoreError::bad("max_operations must be a non-negative integer")
                    })?;
                    c.max_operations = n as u64;
                }
                if let Some(v) = data.get("interval") {
                    let s = util::parse_duration(v).map_err(CoreError::bad)?;
                    if s != 0 && s < 3600 {
                        return Err(CoreError::bad(
                            "interval must be 0 (disabled) or at least 1h",
                        ));
                    }
                    c.interval_secs = s.max(0) as u64;
                }
                if let Some(v) = data.get("enabled") {
                    c.disabled = !util::as_bool(v)
                        .ok_or_else(|| CoreError::bad("enabled must be a boolean"))?;
                }
                core.barrier.set_rotation_config(c).await?;
                Ok(Response::none())
            }
            _ => Err(CoreError::UnsupportedOperation),
        },
        "key-status" if ns.is_root() && op == Operation::Read => {
            let s = core.barrier.key_status()?;
            let mut r = Response::data(json!({
                "term": s.term,
                "install_time": util::rfc3339_secs(s.install_time),
                "encryptions": s.encryptions,
            }));
            r.legacy_top_level = true;
            Ok(r)
        }
        _ => Err(CoreError::NotFound(format!(
            "no handler for route \"sys/{rest}\". route entry not found."
        ))),
    }
}
