//! Response wrapping (`X-Vault-Wrap-TTL`, `sys/wrapping/*`), as OpenBao does it: the
//! response a client asked wrapped is stored, behind the barrier, under a new single-use
//! token of policy `response-wrapping` that expires after the TTL asked; the client gets
//! only `wrap_info`. Unwrapping (with the wrapping token itself, or a token of one's own
//! naming it) returns the response once and revokes the wrapping token; revoking or
//! expiring the token deletes the response with it (`token::revoke_one`).

use std::sync::Arc;

use serde_json::{json, Value};

use crate::error::{CoreError, Result};
use crate::namespace::NsState;
use crate::request::{Body, Response, WrapInfo};
use crate::token::{self, TokenEntry};
use crate::{util, Active, Core};

/// The one policy a wrapping token carries (it grants nothing: the wrapping endpoints
/// judge such a token themselves).
pub(crate) const POLICY: &str = "response-wrapping";
/// The path recorded on a wrapping token.
const TOKEN_PATH: &str = "sys/wrapping/wrap";
/// The longest a response may stay wrapped (OpenBao's default max TTL, 32 days).
const MAX_TTL: i64 = 32 * 24 * 3600;

pub(crate) fn record_key(hash: &str) -> String {
    format!("sys/wrapping/response/{hash}")
}

pub(crate) fn is_wrapping_token(e: &TokenEntry) -> bool {
    e.policies.len() == 1 && e.policies[0] == POLICY && e.path == TOKEN_PATH
}

/// What is stored for a wrapping token: the request path that made the response, and the
/// response as the client would have received it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    creation_path: String,
    response: Value,
}

/// The response's JSON envelope, as it is unwrapped later.
fn envelope(r: &Response) -> Value {
    let data = match &r.body {
        Body::Empty | Body::Raw(_) => Value::Null,
        Body::Data(v) => v.clone(),
        Body::DataText(t) => serde_json::from_str(t).unwrap_or(Value::Null),
    };
    json!({
        "request_id": util::request_id(),
        "lease_id": "",
        "lease_duration": r.lease_duration,
        "renewable": r.renewable,
        "data": data,
        "auth": r.auth,
        "warnings": if r.warnings.is_empty() { Value::Null } else { json!(r.warnings) },
        "wrap_info": Value::Null,
    })
}

/// Wrap `resp` (the answer to `path` in `ns`) for `ttl` seconds.
pub(crate) async fn wrap(
    core: &Core,
    active: &Active,
    ns: &Arc<NsState>,
    path: &str,
    resp: Response,
    ttl: i64,
) -> Result<Response> {
    let ttl = ttl.min(MAX_TTL);
    let wrapped_accessor = resp
        .auth
        .as_ref()
        .map(|a| a.accessor.clone())
        .unwrap_or_default();
    let record = Record {
        creation_path: path.to_owned(),
        response: envelope(&resp),
    };
    let (id, entry) = issue(core, active, ns, ttl).await?;
    let bytes = serde_json::to_vec(&record).map_err(|e| CoreError::Internal(e.to_string()))?;
    if let Err(e) = ns.view.put(&record_key(&entry.hash), &bytes).await {
        // no token without its response
        let _ = token::revoke_one(active, ns, &entry.hash).await;
        return Err(e);
    }
    Ok(Response {
        wrap_info: Some(WrapInfo {
            token: id,
            accessor: entry.accessor.clone(),
            ttl,
            creation_time: util::rfc3339_secs(entry.creation_time),
            creation_path: path.to_owned(),
            wrapped_accessor,
        }),
        ..Default::default()
    })
}

async fn issue(
    core: &Core,
    active: &Active,
    ns: &Arc<NsState>,
    ttl: i64,
) -> Result<(String, TokenEntry)> {
    let now = util::now_secs();
    let mut e = TokenEntry::root_policy("");
    e.policies = vec![POLICY.to_owned()];
    e.num_uses = 1;
    e.creation_time = now;
    e.ttl = ttl;
    e.explicit_max_ttl = ttl;
    e.expire_time = now + ttl;
    e.path = TOKEN_PATH.to_owned();
    e.namespace_id = ns.ns.id.clone();
    let id = token::issue(core, active, ns, &mut e, None, true).await?;
    Ok((id, e))
}

fn invalid() -> CoreError {
    CoreError::bad("wrapping token is not valid or does not exist")
}

/// The wrapping token `id` names, with its namespace and record.
async fn find(
    core: &Core,
    active: &Active,
    id: &str,
) -> Result<(Arc<TokenEntry>, Arc<NsState>, Record)> {
    let (entry, ns) = token::resolve(core, active, id)
        .await?
        .ok_or_else(invalid)?;
    if !is_wrapping_token(&entry) {
        return Err(invalid());
    }
    let record: Record = ns
        .view
        .get_json(&record_key(&entry.hash))
        .await?
        .ok_or_else(invalid)?;
    Ok((entry, ns, record))
}

/// `sys/wrapping/unwrap`: the response, once; the wrapping token is revoked. `third_party`
/// is the token named in the body when the caller authenticated with its own.
pub(crate) async fn unwrap(core: &Core, active: &Active, id: &str) -> Result<Response> {
    let (entry, ns, record) = find(core, active, id).await?;
    // Revoked first: a second unwrap racing this one finds no token.
    token::revoke_one(active, &ns, &entry.hash).await?;
    Ok(Response::raw(200, record.response))
}

/// `sys/wrapping/lookup`: what a wrapping token is, without using it.
pub(crate) async fn lookup(core: &Core, active: &Active, id: &str) -> Result<Response> {
    let (entry, _, record) = find(core, active, id).await?;
    Ok(Response::data(json!({
        "creation_path": record.creation_path,
        "creation_time": util::rfc3339_secs(entry.creation_time),
        "creation_ttl": entry.ttl,
    })))
}

/// `sys/wrapping/rewrap`: the same response under a new wrapping token with the same TTL;
/// the old one is revoked.
pub(crate) async fn rewrap(core: &Core, active: &Active, id: &str) -> Result<Response> {
    let (entry, ns, record) = find(core, active, id).await?;
    let (new_id, new) = issue(core, active, &ns, entry.ttl).await?;
    let bytes = serde_json::to_vec(&record).map_err(|e| CoreError::Internal(e.to_string()))?;
    ns.view.put(&record_key(&new.hash), &bytes).await?;
    token::revoke_one(active, &ns, &entry.hash).await?;
    Ok(Response {
        wrap_info: Some(WrapInfo {
            token: new_id,
            accessor: new.accessor.clone(),
            ttl: new.ttl,
            creation_time: util::rfc3339_secs(new.creation_time),
            creation_path: record.creation_path,
            wrapped_accessor: String::new(),
        }),
        ..Default::default()
    })
}
