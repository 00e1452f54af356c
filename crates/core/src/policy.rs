//! The ACL policy store of each namespace, and the compiled-ACL cache.
//!
//! Policies are stored as text at `sys/policy/<name>` in their namespace; an ACL is built
//! from a token's policy names on first use and cached by (namespace, names) until any
//! policy changes.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use strongroom_acl::{Acl, Policy};

use crate::error::{CoreError, Result};
use crate::namespace::NsState;
use crate::route::{field, Field, FieldType, Fields};
use crate::{Active, Operation, Response};

/// OpenBao's default policy: what every token may do to itself.
pub const DEFAULT_POLICY: &str = r#"# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to look up its resultant ACL from all policies
path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

# Allow a token to renew a lease via lease_id in the request body
path "sys/renew" {
    capabilities = ["update"]
}
path "sys/leases/renew" {
    capabilities = ["update"]
}

# Allow looking up lease properties
path "sys/leases/lookup" {
    capabilities = ["update"]
}

# Allow a token to wrap arbitrary values in a response-wrapping token
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}

# Allow general purpose tools
path "sys/tools/hash" {
    capabilities = ["update"]
}
path "sys/tools/hash/*" {
    capabilities = ["update"]
}
"#;

#[derive(Serialize, Deserialize)]
struct StoredPolicy {
    name: String,
    policy: String,
}

pub async fn install_defaults(ns: &Arc<NsState>) -> Result<()> {
    if ns.view.get("sys/policy/default").await?.is_none() {
        ns.view
            .put_json(
                "sys/policy/default",
                &StoredPolicy {
                    name: "default".into(),
                    policy: DEFAULT_POLICY.into(),
                },
            )
            .await?;
    }
    Ok(())
}

async fn read_text(ns: &NsState, name: &str) -> Result<Option<String>> {
    Ok(ns
        .view
        .get_json::<StoredPolicy>(&format!("sys/policy/{name}"))
        .await?
        .map(|p| p.policy))
}

/// The ACL for a set of policy names in a namespace (cached).
pub async fn acl_for(active: &Active, ns: &NsState, names: &[String]) -> Result<Arc<Acl>> {
    if names.iter().any(|n| n == "root") {
        return Ok(Arc::new(Acl::root()));
    }
    let mut key =
        String::with_capacity(ns.ns.id.len() + names.iter().map(|n| n.len() + 1).sum::<usize>());
    key.push_str(&ns.ns.id);
    for n in names {
        key.push('\0');
        key.push_str(n);
    }
    if let Some(a) = active.acls.get(&key) {
        return Ok(a);
    }
    let fences = fences_for(active, ns, names);
    let mut policies = Vec::with_capacity(names.len());
    for n in names {
        if let Some(text) = read_text(ns, n).await? {
            match Policy::parse(n, &text) {
                Ok(p) => policies.push(p),
                Err(e) => {
                    tracing::warn!(policy = %n, error = %e, "stored policy does not parse; ignoring it")
                }
            }
        }
    }
    let acl = Arc::new(Acl::new(&policies));
    keep(active, ns, key, &acl, fences);
    Ok(acl)
}

/// What an ACL's cache entry is fenced by: this node's writes of each of its policies
/// (`None` if one may be in flight: the ACL is then used but not kept), and the epoch that
/// other nodes' policy changes move.
struct Fences {
    keys: Option<Vec<strongroom_barrier::KeyFence>>,
    remote: u64,
}

/// Taken before the policies' texts are read.
fn fences_for(active: &Active, ns: &NsState, names: &[String]) -> Fences {
    Fences {
        remote: active.acl_epoch.load(std::sync::atomic::Ordering::SeqCst),
        keys: names
            .iter()
            .map(|n| ns.view.key_fence(&format!("sys/policy/{n}")))
            .collect(),
    }
}

/// Keep `acl` in the cache only if none of its policies was written since `fences` were
/// taken. The check runs under the cache shard's lock, and a policy write clears the
/// cache after storing: either the clear comes after this insert and removes it, or this
/// check comes after the write began and refuses. So an ACL built from a policy's old
/// text never outlives the write that replaced it.
fn keep(active: &Active, ns: &NsState, key: String, acl: &Arc<Acl>, fences: Fences) {
    let Some(keys) = fences.keys else { return };
    active.acls.insert_if(key, acl.clone(), || {
        active.acl_epoch.load(std::sync::atomic::Ordering::SeqCst) == fences.remote
            && keys.iter().all(|f| ns.view.key_unwritten_since(f))
    });
}

fn validate_name(raw: &str) -> Result<String> {
    let name = raw.trim().to_lowercase();
    if name.is_empty() {
        return Err(CoreError::bad("policy name must not be empty"));
    }
    if name == "root" {
        return Err(CoreError::bad("cannot update root policy"));
    }
    // The one policy every wrapping token carries: writing it would grant every wrapping
    // token in flight, so it is immutable, as in OpenBao.
    if name == crate::wrapping::POLICY {
        return Err(CoreError::bad(format!(
            "cannot update {:?} policy",
            crate::wrapping::POLICY
        )));
    }
    if name.contains('/') || name.contains("..") || name.len() > 256 {
        return Err(CoreError::bad(format!("invalid policy name {raw:?}")));
    }
    Ok(name)
}

/// Create vs update for policy writes (`create` capability for a new policy).
/// Compiled ACLs are stale once a policy (`sys/policy/<name>` in a namespace) changes.
pub(crate) fn stale_by(_key: &str, rel: &str) -> Option<crate::Stale> {
    rel.starts_with("sys/policy/").then_some(crate::Stale::Acls)
}

/// The fields of `sys/policies/acl/<name>` and `sys/policy/<name>`.
pub(crate) static POLICY_FIELDS: &[Field] = &[
    field("policy", FieldType::Str),
    field("rules", FieldType::Str),
];

/// The fields of `sys/capabilities-self`.
pub(crate) static CAPABILITIES_FIELDS: &[Field] = &[
    field("path", FieldType::StrList),
    field("paths", FieldType::StrList),
];

/// Whether the policy `name` exists (a write to it is then an update, else a create).
pub async fn exists(ns: &Arc<NsState>, name: &str) -> Result<Option<bool>> {
    if name.is_empty() {
        return Ok(None);
    }
    Ok(Some(read_text(ns, &name.to_lowercase()).await?.is_some()))
}

async fn list_names(ns: &NsState) -> Result<Vec<String>> {
    let mut names: Vec<String> = ns.view.list("sys/policy/", None, None).await?;
    names.retain(|n| !n.ends_with('/'));
    if ns.is_root() {
        names.push("root".into());
    }
    names.sort();
    Ok(names)
}

/// `sys/policy[/name]` (legacy) and `sys/policies/acl[/name]`.
pub async fn handle_sys(
    active: &Active,
    ns: &Arc<NsState>,
    legacy: bool,
    op: Operation,
    name: &str,
    fields: &Fields<'_>,
) -> Result<Response> {
    let name = name.trim_matches('/');
    if name.is_empty() {
        return match op {
            Operation::List | Operation::Read => {
                let names = list_names(ns).await?;
                if legacy {
                    let mut r = Response::data(json!({ "policies": names, "keys": names }));
                    r.legacy_top_level = true;
                    Ok(r)
                } else {
                    Ok(Response::list(names))
                }
            }
            _ => Err(CoreError::UnsupportedOperation),
        };
    }
    match op {
        Operation::Read => {
            let lname = name.to_lowercase();
            if lname == "root" {
                let body = if legacy {
                    json!({"name": "root", "rules": ""})
                } else {
                    json!({"name": "root", "policy": ""})
                };
                return Ok(Response::data(body));
            }
            match read_text(ns, &lname).await? {
                None => Err(CoreError::NotFound(String::new())),
                Some(text) => {
                    let body = if legacy {
                        json!({ "name": lname, "rules": text })
                    } else {
                        json!({ "name": lname, "policy": text })
                    };
                    let mut r = Response::data(body);
                    r.legacy_top_level = legacy;
                    Ok(r)
                }
            }
        }
        Operation::Create | Operation::Update => {
            let lname = validate_name(name)?;
            let text = fields
                .str("policy")
                .or_else(|| fields.str("rules"))
                .ok_or_else(|| CoreError::bad("'policy' parameter not supplied or empty"))?
                .into_owned();
            let text = decode_maybe_base64(&text);
            if text.trim().is_empty() {
                return Err(CoreError::bad("'policy' parameter not supplied or empty"));
            }
            Policy::parse(&lname, &text)
                .map_err(|e| CoreError::bad(format!("failed to parse policy: {e}")))?;
            ns.view
                .put_json(
                    &format!("sys/policy/{lname}"),
                    &StoredPolicy {
                        name: lname.clone(),
                        policy: text,
                    },
                )
                .await?;
            active.acls.clear();
            Ok(Response::none())
        }
        Operation::Delete => {
            let lname = name.to_lowercase();
            match lname.as_str() {
                "root" => return Err(CoreError::bad("cannot delete root policy")),
                "default" => return Err(CoreError::bad("cannot delete default policy")),
                crate::wrapping::POLICY => {
                    return Err(CoreError::bad(format!(
                        "cannot delete {:?} policy",
                        crate::wrapping::POLICY
                    )))
                }
                _ => {}
            }
            ns.view.delete(&format!("sys/policy/{lname}")).await?;
            active.acls.clear();
            Ok(Response::none())
        }
        _ => Err(CoreError::UnsupportedOperation),
    }
}

/// OpenBao accepts base64-encoded policy text too.
fn decode_maybe_base64(text: &str) -> String {
    use base64::Engine;
    let t = text.trim();
    if t.contains('"') || t.contains('{') || t.contains(' ') {
        return text.to_owned();
    }
    match base64::engine::general_purpose::STANDARD.decode(t) {
        Ok(b) => String::from_utf8(b).unwrap_or_else(|_| text.to_owned()),
        Err(_) => text.to_owned(),
    }
}

/// The body of `sys/capabilities*`: `{"<path>": [...], ...}`, and for a single path also
/// `"capabilities"` with the same list (OpenBao keeps that key for older clients, and only
/// for one path).
pub fn capabilities_response(acl: &Acl, ns_rel: &str, fields: &Fields<'_>) -> Result<Response> {
    let paths: Vec<String> = fields
        .str_list("paths")
        .or_else(|| fields.str_list("path"))
        .ok_or_else(|| CoreError::bad("'path' or 'paths' is required"))?;
    if paths.is_empty() {
        return Err(CoreError::bad("'path' or 'paths' is required"));
    }
    let mut out = Map::new();
    for p in &paths {
        let caps = acl.capabilities(&format!("{ns_rel}{}", p.trim_start_matches('/')));
        out.insert(p.clone(), json!(caps));
    }
    if let [only] = paths.as_slice() {
        out.insert("capabilities".into(), out[only].clone());
    }
    Ok(Response::data(Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Core;
    use serde_json::json;

    /// The race a stale ACL came from: a request reads a policy's old text, the policy is
    /// rewritten (stored, then the cache cleared), and only then does the request put the
    /// ACL it built into the cache. The fence refuses that insert.
    #[tokio::test]
    async fn an_acl_built_before_a_policy_write_is_not_kept_after_it() {
        let core = Core::for_tests();
        core.initialize(1, 1, Some("root".into())).await.unwrap();
        let write = |rules: &'static str| {
            let core = core.clone();
            async move {
                let body = json!({ "policy": rules });
                core.root_request("", Operation::Update, "sys/policies/acl/p", body)
                    .await
                    .unwrap();
            }
        };
        write(r#"path "secret/*" { capabilities = ["read"] }"#).await;
        let active = core.active().unwrap();
        let ns = active.namespaces.root();
        let names = vec!["p".to_owned()];
        let key = format!("{}\0p", ns.ns.id);

        // A request takes its fences and reads the old text ...
        let fences = fences_for(&active, &ns, &names);
        assert!(fences.keys.is_some());
        let old = Policy::parse("p", &read_text(&ns, "p").await.unwrap().unwrap()).unwrap();
        let stale = Arc::new(Acl::new(&[old]));
        // ... the policy becomes a deny (stored, then the cache cleared) ...
        write(r#"path "secret/*" { capabilities = ["deny"] }"#).await;
        // ... and the request tries to keep what it built.
        keep(&active, &ns, key.clone(), &stale, fences);
        assert!(active.acls.get(&key).is_none(), "a stale ACL was kept");
        // The next request builds and keeps the new one.
        let fresh = acl_for(&active, &ns, &names).await.unwrap();
        assert!(!fresh.allows(Operation::Read, "secret/x", None));
        assert!(active.acls.get(&key).is_some());
        // With no write in between, an ACL is kept.
        let fences = fences_for(&active, &ns, &names);
        active.acls.clear();
        keep(&active, &ns, key.clone(), &fresh, fences);
        assert!(active.acls.get(&key).is_some());
        // Another node's policy change arrives as an invalidation: what was read before
        // it is not kept either.
        let fences = fences_for(&active, &ns, &names);
        core.invalidate("k:sys/policy/p").await;
        keep(&active, &ns, key.clone(), &fresh, fences);
        assert!(active.acls.get(&key).is_none());
    }
}
