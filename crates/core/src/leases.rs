//! `sys/leases/*` for the leases this server issues: tokens (no secrets engine here hands
//! out leased secrets). A token's lease ID is its creation path and the HMAC of the token,
//! as in OpenBao (`auth/jwt/login/h…`), so an operator can look one up, revoke it, and
//! above all revoke every token a mount or a role issued (`revoke-prefix auth/jwt/`), which
//! is the first step of an incident response. `revoke-force` does the same: with no
//! backend to call on revocation, there is nothing whose failure it would skip.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::error::{CoreError, Result};
use crate::namespace::NsState;
use crate::token::{self, TokenEntry};
use crate::{util, Active, Core, Response};

fn lease_id(e: &TokenEntry) -> String {
    format!("{}/{}", e.path.trim_end_matches('/'), e.hash)
}

fn invalid() -> CoreError {
    CoreError::bad("invalid lease")
}

/// The stored token a lease ID names (its path must match too).
async fn find(active: &Active, ns: &NsState, id: &str) -> Result<Arc<TokenEntry>> {
    let (path, hash) = id.rsplit_once('/').ok_or_else(invalid)?;
    if hash.is_empty() || !hash.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
        return Err(invalid());
    }
    let e = token::load_entry(active, ns, hash)
        .await?
        .ok_or_else(invalid)?;
    if e.path.trim_end_matches('/') != path || e.is_expired(util::now_secs()) {
        return Err(invalid());
    }
    Ok(e)
}

/// `sys/leases/lookup` with `lease_id`.
pub(crate) async fn lookup(core: &Core, ns: &NsState, id: &str) -> Result<Response> {
    let active = core.active()?;
    let e = find(&active, ns, id).await?;
    let now = util::now_secs();
    Ok(Response::data(json!({
        "id": lease_id(&e),
        "issue_time": util::rfc3339_secs(e.creation_time),
        "expire_time": if e.expire_time == 0 { Value::Null } else { json!(util::rfc3339_secs(e.expire_time)) },
        "last_renewal": Value::Null,
        "renewable": e.renewable,
        "ttl": e.remaining(now),
    })))
}

/// `LIST sys/leases/lookup/<prefix>`: the next segment of every lease ID under `prefix`
/// (a folder ends with `/`), as OpenBao lists them; 404 when there is none.
pub(crate) async fn list(ns: &NsState, prefix: &str) -> Result<Response> {
    let prefix = if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    };
    let mut keys: Vec<String> = token::with_path_prefix(ns, &prefix)
        .await?
        .iter()
        .filter(|e| !e.is_expired(util::now_secs()))
        .filter_map(|e| {
            let id = lease_id(e);
            let rest = id.strip_prefix(&prefix)?.to_owned();
            Some(match rest.split_once('/') {
                Some((dir, _)) => format!("{dir}/"),
                None => rest,
            })
        })
        .collect();
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        return Err(CoreError::NotFound(String::new()));
    }
    Ok(Response::data(json!({ "keys": keys })))
}

/// `sys/leases/revoke` with `lease_id`: that token and its children.
pub(crate) async fn revoke(core: &Core, ns: &NsState, id: &str) -> Result<Response> {
    let active = core.active()?;
    let e = find(&active, ns, id).await?;
    token::revoke_tree(core, &active, &e).await?;
    Ok(Response::none())
}

/// `sys/leases/revoke-prefix/<prefix>` and `revoke-force/<prefix>`: every token whose
/// lease ID starts with `prefix`, with their children.
pub(crate) async fn revoke_prefix(
    core: &Core,
    ns: &Arc<NsState>,
    prefix: &str,
) -> Result<Response> {
    let active = core.active()?;
    let prefix = prefix.trim_start_matches('/');
    if prefix.is_empty() {
        return Err(CoreError::bad("missing prefix"));
    }
    let revoked = token::revoke_by_path_prefix(core, &active, ns, prefix).await?;
    tracing::info!(prefix, revoked, "revoked the tokens issued under a prefix");
    Ok(Response::none())
}
