//! The token store (`auth/token/…`).
//!
//! Service tokens are random (`s.` + 24 alphanumerics, `.<namespace id>` in a namespace);
//! only an HMAC-SHA256 of the token (keyed by a per-install salt inside the barrier) is
//! stored, at `sys/token/id/<hash>` in the token's namespace, with indexes
//! `sys/token/accessor/<hash(accessor)>` and `sys/token/parent/<parent>/<child>`.
//! Tokens that expire are also indexed by expiry across all namespaces, at
//! `core/token-expiry/<expire time, 20 digits>/<namespace id>/<hash>` in the root, written
//! in the same transaction as the entry: tidying reads only what has expired, never every
//! namespace.
//! Batch tokens (`b.` + base64url) are the entry itself, encrypted by the barrier: nothing
//! is written when one is issued, and any node holding the keyring can verify it.
//!
//! Architecture invariant: a token value is never stored, logged or put in an error.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lc_rs::hmac;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use strongroom_barrier::BarrierOp;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{CoreError, Result};
use crate::namespace::NsState;
use crate::route::{field, Field, FieldType, Fields, PathSpec};
use crate::view::TxnError;
use crate::{policy, util, Active, Auth, Caller, Core, Operation, Response};

const BATCH_AAD: &str = "strongroom/batch-token/v1";
/// First byte of a batch token's compact plaintext (`encode_batch`). Tokens issued before
/// it existed hold the entry as JSON, which starts with `{`.
const BATCH_COMPACT: u8 = 1;

/// The expiry index (root namespace, absolute keys).
const EXPIRY_PREFIX: &str = "core/token-expiry/";
/// Present once every stored token has its expiry index entry (tokens stored before the
/// index existed are indexed by the first tidy).
const EXPIRY_INDEXED: &str = "core/token-expiry-indexed";

fn expiry_key(expire_time: i64, ns_id: &str, hash: &str) -> String {
    format!("{EXPIRY_PREFIX}{expire_time:020}/{ns_id}/{hash}")
}

/// The op that indexes `e` (stored in namespace `ns_id`) by expiry, if it expires.
fn expiry_put(e: &TokenEntry, ns_id: &str) -> Option<BarrierOp> {
    (e.expire_time > 0).then(|| BarrierOp::Put(expiry_key(e.expire_time, ns_id, &e.hash), vec![]))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenEntry {
    /// HMAC of the token; empty for batch tokens.
    #[serde(default)]
    pub hash: String,
    #[serde(default)]
    pub accessor: String,
    /// Parent's hash and namespace id.
    #[serde(default)]
    pub parent: Option<(String, String)>,
    pub policies: Vec<String>,
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    pub display_name: String,
    #[serde(default)]
    pub num_uses: i64,
    pub creation_time: i64,
    /// TTL at creation (or last renewal), seconds; 0 = no expiry.
    pub ttl: i64,
    #[serde(default)]
    pub explicit_max_ttl: i64,
    /// The most seconds after its creation that renewals may extend it to: the issuing
    /// role's and mount's max TTL (0: only the server's `max_lease_ttl`). Unlike
    /// `explicit_max_ttl` it does not bind a periodic token.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_ttl: i64,
    #[serde(default)]
    pub period: i64,
    pub renewable: bool,
    /// Unix seconds; 0 = never.
    pub expire_time: i64,
    pub namespace_id: String,
    pub path: String,
    #[serde(default)]
    pub batch: bool,
    #[serde(default)]
    pub orphan: bool,
    #[serde(default)]
    pub entity_id: String,
    #[serde(default)]
    pub role: String,
    /// The token is only valid from these networks (empty: anywhere).
    #[serde(default)]
    pub bound_cidrs: Vec<String>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl TokenEntry {
    /// An orphan entry of the root namespace with the root policy, no TTL and no use
    /// limit; callers set what differs (hash, accessor, creation time, path, batch).
    pub(crate) fn root_policy(display_name: &str) -> TokenEntry {
        TokenEntry {
            hash: String::new(),
            accessor: String::new(),
            parent: None,
            policies: vec!["root".into()],
            meta: BTreeMap::new(),
            display_name: display_name.into(),
            num_uses: 0,
            creation_time: 0,
            ttl: 0,
            explicit_max_ttl: 0,
            max_ttl: 0,
            period: 0,
            renewable: false,
            expire_time: 0,
            namespace_id: "root".into(),
            path: String::new(),
            batch: false,
            orphan: true,
            entity_id: String::new(),
            role: String::new(),
            bound_cidrs: Vec::new(),
        }
    }

    /// Times are whole seconds; a token lives at least its full TTL.
    pub fn is_expired(&self, now: i64) -> bool {
        self.expire_time != 0 && now > self.expire_time
    }
    pub(crate) fn remaining(&self, now: i64) -> i64 {
        if self.expire_time == 0 {
            0
        } else {
            (self.expire_time - now).max(0)
        }
    }
    fn type_name(&self) -> &'static str {
        if self.batch {
            "batch"
        } else {
            "service"
        }
    }
    fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }
}

/// A batch token's entry in its compact form: `BATCH_COMPACT`, then every field of the
/// entry (see `codec`: strings and lists length-prefixed, numbers zigzagged varints, the
/// three flags in one byte). A fraction of the JSON's size, so the token is shorter to
/// seal, encode, send and decode.
fn encode_batch(e: &TokenEntry) -> Vec<u8> {
    use crate::codec::{put_len, put_map, put_str, put_varint, zigzag};
    let mut b = Vec::with_capacity(128);
    b.push(BATCH_COMPACT);
    put_str(&mut b, &e.hash);
    put_str(&mut b, &e.accessor);
    match &e.parent {
        Some((hash, ns)) => {
            b.push(1);
            put_str(&mut b, hash);
            put_str(&mut b, ns);
        }
        None => b.push(0),
    }
    put_len(&mut b, e.policies.len());
    for p in &e.policies {
        put_str(&mut b, p);
    }
    put_map(&mut b, &e.meta);
    put_str(&mut b, &e.display_name);
    for n in [
        e.num_uses,
        e.creation_time,
        e.ttl,
        e.explicit_max_ttl,
        e.period,
        e.expire_time,
    ] {
        put_varint(&mut b, zigzag(n));
    }
    b.push(u8::from(e.renewable) | u8::from(e.batch) << 1 | u8::from(e.orphan) << 2);
    for s in [&e.namespace_id, &e.path, &e.entity_id, &e.role] {
        put_str(&mut b, s);
    }
    put_len(&mut b, e.bound_cidrs.len());
    for c in &e.bound_cidrs {
        put_str(&mut b, c);
    }
    b
}

/// The entry a batch token's plaintext holds: the compact form, or the JSON of tokens
/// issued before it. `None` for anything else, trailing bytes included.
pub(crate) fn decode_batch(plain: &[u8]) -> Option<TokenEntry> {
    use crate::codec::{unzigzag, Reader};
    match plain.first()? {
        b'{' => return serde_json::from_slice(plain).ok(),
        &BATCH_COMPACT => {}
        _ => return None,
    }
    let mut r = Reader::new(&plain[1..]);
    let hash = r.string()?;
    let accessor = r.string()?;
    let parent = match r.byte()? {
        0 => None,
        1 => Some((r.string()?, r.string()?)),
        _ => return None,
    };
    let policies = r.list()?;
    let meta = r.map()?;
    let display_name = r.string()?;
    let mut n = [0i64; 6];
    for v in &mut n {
        *v = unzigzag(r.varint()?);
    }
    let [num_uses, creation_time, ttl, explicit_max_ttl, period, expire_time] = n;
    let flags = r.byte()?;
    if flags > 0b111 {
        return None;
    }
    let (namespace_id, path, entity_id, role) =
        (r.string()?, r.string()?, r.string()?, r.string()?);
    let bound_cidrs = r.list()?;
    r.is_done().then_some(TokenEntry {
        hash,
        accessor,
        parent,
        policies,
        meta,
        display_name,
        num_uses,
        creation_time,
        ttl,
        explicit_max_ttl,
        max_ttl: 0,
        period,
        renewable: flags & 1 != 0,
        expire_time,
        namespace_id,
        path,
        batch: flags & 2 != 0,
        orphan: flags & 4 != 0,
        entity_id,
        role,
        bound_cidrs,
    })
}

/// Digits in ASCII order, so fixed-width numbers written with them sort as numbers.
const SORTED_DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Width of the creation-time prefix (milliseconds; 62^8 ms is about 6,900 years).
const TIME_DIGITS: usize = 8;
/// Random characters after it (24 alphanumerics: 142 bits).
const RANDOM_CHARS: usize = 24;

/// A new token id body or accessor: the creation time in milliseconds as `TIME_DIGITS`
/// base-62 digits, then `RANDOM_CHARS` random ones. Its storage hash keeps that prefix
/// (see `hash_token`), so tokens issued together are stored next to each other: a group
/// commit of many logins appends to a few B-tree pages at the end of the key range
/// instead of dirtying two random pages per login.
fn time_ordered_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut digits = [0u8; TIME_DIGITS];
    let mut n = ms;
    for d in digits.iter_mut().rev() {
        *d = SORTED_DIGITS[(n % 62) as usize];
        n /= 62;
    }
    let mut out = String::with_capacity(TIME_DIGITS + RANDOM_CHARS);
    out.extend(digits.iter().map(|&b| b as char));
    out.push_str(&util::random_alnum(RANDOM_CHARS));
    out
}

/// The creation-time prefix of a token id or accessor shaped like `time_ordered_id`'s
/// (after an optional `s.`/`hvs.` and before an optional `.<namespace>` suffix).
fn time_prefix(id: &str) -> Option<&str> {
    let body = id
        .strip_prefix("s.")
        .or_else(|| id.strip_prefix("hvs."))
        .unwrap_or(id);
    let body = body.split_once('.').map_or(body, |(b, _)| b);
    (body.len() == TIME_DIGITS + RANDOM_CHARS && body.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| &body[..TIME_DIGITS])
}

/// The HMAC of a token id or accessor, hex.
fn mac(active: &Active, id: &str) -> String {
    util::hex(hmac::sign(&active.token_key, id.as_bytes()).as_ref())
}

/// The stored hash of a token id or accessor: its HMAC, prefixed with its creation time
/// when it has one (`time_prefix`), which orders storage keys by creation and reveals
/// nothing the id did not already show.
pub(crate) fn hash_token(active: &Active, id: &str) -> String {
    match time_prefix(id) {
        Some(t) => format!("{t}{}", mac(active, id)),
        None => mac(active, id),
    }
}

/// The hash tokens had before ids carried their creation time: a custom id chosen
/// earlier may have the time-ordered shape and be stored under this one.
fn plain_hash(active: &Active, id: &str) -> Option<String> {
    time_prefix(id).map(|_| mac(active, id))
}

/// The namespace id a token or accessor names by its suffix (`s.xxx.<nsid>`).
fn ns_suffix(id: &str) -> &str {
    let body = id
        .strip_prefix("s.")
        .or_else(|| id.strip_prefix("hvs."))
        .unwrap_or("");
    match body.rsplit_once('.') {
        Some((_, ns)) if !ns.is_empty() => ns,
        _ => "root",
    }
}

fn with_ns_suffix(base: String, ns: &NsState) -> String {
    if ns.is_root() {
        base
    } else {
        format!("{base}.{}", ns.ns.id)
    }
}

pub(crate) async fn load_entry(
    active: &Active,
    ns: &NsState,
    hash: &str,
) -> Result<Option<Arc<TokenEntry>>> {
    if let Some(e) = active.tokens.get(hash) {
        return Ok(Some(e));
    }
    let key = format!("sys/token/id/{hash}");
    // Kept only if no write of the entry (a revocation, a use, a renewal) began since the
    // fence: such a write drops the cached entry after it commits, and an entry read
    // before it and cached after that would outlive it.
    let fence = ns.view.key_fence(&key);
    let Some(e) = ns.view.get_json::<TokenEntry>(&key).await? else {
        return Ok(None);
    };
    let e = Arc::new(e);
    if let Some(f) = fence {
        active.tokens.insert_if(hash.to_owned(), e.clone(), || {
            ns.view.key_unwritten_since(&f)
        });
    }
    Ok(Some(e))
}

/// Find a live token entry by its value: `(entry, namespace)`.
pub(crate) async fn resolve(
    core: &Core,
    active: &Active,
    id: &str,
) -> Result<Option<(Arc<TokenEntry>, Arc<NsState>)>> {
    let now = util::now_secs();
    if let Some(blob) = id.strip_prefix("b.") {
        let digest: [u8; 32] = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id.as_bytes())
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        let entry = match active.batch_tokens.get(&digest) {
            Some(e) => e,
            None => {
                let Ok(ct) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(blob) else {
                    return Ok(None);
                };
                let Ok(plain) = core.barrier.open_blob(BATCH_AAD, &ct) else {
                    return Ok(None);
                };
                let Some(entry) = decode_batch(&plain) else {
                    return Ok(None);
                };
                let entry = Arc::new(entry);
                active.batch_tokens.insert(digest, entry.clone());
                entry
            }
        };
        if entry.is_expired(now) {
            return Ok(None);
        }
        // A batch token dies with its parent.
        if let Some((ph, pns)) = &entry.parent {
            let Some(pns) = active.namespaces.by_id(pns).await? else {
                return Ok(None);
            };
            match load_entry(active, &pns, ph).await? {
                Some(p) if !p.is_expired(now) => {}
                _ => return Ok(None),
            }
        }
        let Some(ns) = active.namespaces.by_id(&entry.namespace_id).await? else {
            return Ok(None);
        };
        return Ok(Some((entry, ns)));
    }
    let Some(ns) = active.namespaces.by_id(ns_suffix(id)).await? else {
        return Ok(None);
    };
    let mut hash = hash_token(active, id);
    let mut found = load_entry(active, &ns, &hash).await?;
    if found.is_none() {
        if let Some(plain) = plain_hash(active, id) {
            found = load_entry(active, &ns, &plain).await?;
            hash = plain;
        }
    }
    let Some(entry) = found else {
        return Ok(None);
    };
    // The lookup was by hash already; compare in constant time anyway so no code path
    // ever branches on a partial match of token material.
    if !bool::from(entry.hash.as_bytes().ct_eq(hash.as_bytes())) || entry.is_expired(now) {
        return Ok(None);
    }
    Ok(Some((entry, ns)))
}

pub(crate) async fn authenticate(
    core: &Core,
    active: &Active,
    token: Option<&str>,
    client_ip: Option<std::net::IpAddr>,
) -> Result<Caller> {
    let id = token
        .filter(|t| !t.is_empty())
        .ok_or(CoreError::PermissionDenied)?;
    let (entry, ns) = resolve(core, active, id)
        .await?
        .ok_or(CoreError::PermissionDenied)?;
    if !entry.bound_cidrs.is_empty()
        && !client_ip.is_some_and(|ip| util::ip_in_cidrs(ip, &entry.bound_cidrs))
    {
        return Err(CoreError::PermissionDenied);
    }
    // Its last use was claimed by a request (which revokes it when done).
    if entry.num_uses == USES_EXHAUSTED {
        return Err(CoreError::PermissionDenied);
    }
    let acl = policy::acl_for(active, &ns, &entry.policies).await?;
    Ok(Caller {
        entry,
        token_id: id.to_owned(),
        acl,
        ns,
    })
}

/// `num_uses` of a token whose last use a request has claimed: no further use is allowed,
/// and the request that claimed it revokes the token when it is done. (0 means unlimited,
/// so an exhausted token must not be stored as 0.)
const USES_EXHAUSTED: i64 = -1;

/// Count one use of a limited-use token, atomically: each use is a checked write of the
/// decremented count, so of concurrent requests exactly as many proceed as uses remain.
/// Returns true when this was its last use (the caller revokes it after the request).
pub(crate) async fn consume_use(_core: &Core, active: &Active, caller: &Caller) -> Result<bool> {
    if caller.entry.num_uses == 0 || caller.entry.batch {
        return Ok(false);
    }
    let key = format!("sys/token/id/{}", caller.entry.hash);
    for _ in 0..16 {
        let Some((plain, ver)) = caller.ns.view.get_versioned(&key).await? else {
            return Err(CoreError::PermissionDenied);
        };
        let mut e: TokenEntry =
            serde_json::from_slice(&plain).map_err(|e| CoreError::Internal(e.to_string()))?;
        if e.num_uses <= 0 {
            return Err(CoreError::PermissionDenied);
        }
        e.num_uses = if e.num_uses == 1 {
            USES_EXHAUSTED
        } else {
            e.num_uses - 1
        };
        let last = e.num_uses == USES_EXHAUSTED;
        let bytes = serde_json::to_vec(&e).map_err(|x| CoreError::Internal(x.to_string()))?;
        match caller
            .ns
            .view
            .transact(vec![
                BarrierOp::Check(key.clone(), Some(ver)),
                BarrierOp::Put(key.clone(), bytes),
            ])
            .await
        {
            Ok(()) => {
                // Dropped, not replaced: a revocation that committed after this write
                // may have dropped it already (the next use reads it again).
                active.tokens.remove(&e.hash);
                return Ok(last);
            }
            Err(TxnError::Conflict) => continue,
            Err(TxnError::Other(e)) => return Err(e),
        }
    }
    Err(CoreError::TooManyRequests(
        "token use count is contended; retry".into(),
    ))
}

fn random_token_id() -> String {
    format!("s.{}", time_ordered_id())
}

async fn store_entry(
    ns: &NsState,
    active: &Active,
    e: &TokenEntry,
    accessor_plain: &str,
) -> Result<()> {
    let bytes = util::json_bytes(e)?;
    let mut ops = vec![
        BarrierOp::Check(format!("sys/token/id/{}", e.hash), None),
        // A token is used right after it is issued (a CI job's reads follow its login):
        // its entry enters the value cache as it commits, so the first use reads no storage.
        BarrierOp::PutFresh(format!("sys/token/id/{}", e.hash), bytes),
        BarrierOp::Put(
            format!("sys/token/accessor/{}", hash_token(active, accessor_plain)),
            e.hash.as_bytes().to_vec(),
        ),
    ];
    if let Some((ph, pns)) = &e.parent {
        if *pns == ns.ns.id {
            ops.push(BarrierOp::Put(
                format!("sys/token/parent/{ph}/{}", e.hash),
                ns.ns.id.as_bytes().to_vec(),
            ));
        }
    }
    let mut ops: Vec<BarrierOp> = ops.into_iter().map(|op| ns.view.absolute(op)).collect();
    ops.extend(expiry_put(e, &ns.ns.id));
    ns.view.transact_absolute(ops).await.map_err(|e| match e {
        TxnError::Conflict => CoreError::bad("a token with this ID already exists"),
        TxnError::Other(e) => e,
    })?;
    if let Some((ph, pns)) = &e.parent {
        if *pns != ns.ns.id {
            if let Some(pstate) = active.namespaces.by_id(pns).await? {
                pstate
                    .view
                    .put(
                        &format!("sys/token/parent/{ph}/{}", e.hash),
                        ns.ns.id.as_bytes(),
                    )
                    .await?;
            }
        }
    }
    Ok(())
}

pub(crate) async fn create_root_token(
    core: &Core,
    active: &Active,
    id: Option<String>,
) -> Result<Zeroizing<String>> {
    let root = active.namespaces.root();
    let id = id.filter(|s| !s.is_empty()).unwrap_or_else(random_token_id);
    let accessor = time_ordered_id();
    let e = TokenEntry {
        hash: hash_token(active, &id),
        accessor: accessor.clone(),
        creation_time: util::now_secs(),
        path: "auth/token/root".into(),
        ..TokenEntry::root_policy("root")
    };
    let _ = core;
    store_entry(&root, active, &e, &accessor).await?;
    Ok(Zeroizing::new(id))
}

fn auth_json(e: &TokenEntry, id: &str, now: i64) -> Auth {
    auth_block(e.clone(), id.to_owned(), now)
}

/// The `auth` block of a response, made of `e` itself (its strings moved, not copied).
fn auth_block(e: TokenEntry, id: String, now: i64) -> Auth {
    let lease_duration = e.remaining(now);
    let token_type = e.type_name();
    Auth {
        accessor: e.accessor,
        client_token: id,
        entity_id: e.entity_id,
        identity_policies: None,
        lease_duration,
        metadata: (!e.meta.is_empty()).then_some(e.meta),
        mfa_requirement: None,
        num_uses: e.num_uses,
        orphan: e.orphan,
        token_policies: e.policies.clone(),
        policies: e.policies,
        renewable: e.renewable,
        token_type,
    }
}

fn lookup_json(e: &TokenEntry, id: &str, ns: &NsState, now: i64) -> Value {
    let mut v = json!({
        "accessor": e.accessor,
        "creation_time": e.creation_time,
        "creation_ttl": e.ttl,
        "display_name": e.display_name,
        "entity_id": e.entity_id,
        "expire_time": if e.expire_time == 0 { Value::Null } else { json!(util::rfc3339_secs(e.expire_time)) },
        "explicit_max_ttl": e.explicit_max_ttl,
        "id": id,
        "issue_time": util::rfc3339_secs(e.creation_time),
        "meta": if e.meta.is_empty() { Value::Null } else { json!(e.meta) },
        "num_uses": e.num_uses,
        "orphan": e.orphan,
        "path": e.path,
        "policies": e.policies,
        "renewable": e.renewable,
        "ttl": e.remaining(now),
        "type": e.type_name(),
    });
    if e.period > 0 {
        v["period"] = json!(e.period);
    }
    if !ns.is_root() {
        v["namespace_path"] = json!(ns.ns.path);
    }
    v
}

/// The lesser of two durations where 0 means "none".
fn lesser_nonzero(a: i64, b: i64) -> i64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (x, y) => x.min(y),
    }
}

fn parse_ttl(fields: &Fields<'_>, k: &str) -> Result<i64> {
    let t = fields.duration(k).unwrap_or(0);
    if t < 0 {
        return Err(CoreError::bad(format!("{k} must not be negative")));
    }
    Ok(t)
}

/// The fields of `auth/token/create` and `create-orphan`.
static CREATE_FIELDS: &[Field] = &[
    field("entity_alias", FieldType::Str),
    field("no_parent", FieldType::Bool),
    field("type", FieldType::Str),
    field("policies", FieldType::StrList),
    field("no_default_policy", FieldType::Bool),
    field("meta", FieldType::KvPairs),
    field("num_uses", FieldType::Int),
    field("renewable", FieldType::Bool),
    field("period", FieldType::Duration),
    field("explicit_max_ttl", FieldType::Duration),
    field("ttl", FieldType::Duration),
    field("display_name", FieldType::Str),
    field("id", FieldType::Str),
];
static TOKEN_FIELD: &[Field] = &[field("token", FieldType::Str)];
static ACCESSOR_FIELD: &[Field] = &[field("accessor", FieldType::Str)];
static RENEW_FIELDS: &[Field] = &[
    field("token", FieldType::Str),
    field("increment", FieldType::Duration),
];
static RENEW_ACCESSOR_FIELDS: &[Field] = &[
    field("accessor", FieldType::Str),
    field("increment", FieldType::Duration),
];

#[allow(clippy::too_many_arguments)]
async fn create(
    core: &Core,
    active: &Active,
    ns: &Arc<NsState>,
    caller: &Caller,
    orphan_endpoint: bool,
    sudo: bool,
    fields: &Fields<'_>,
    role: Option<crate::token_role::TokenRole>,
) -> Result<Response> {
    let parent = &caller.entry;
    if parent.batch {
        return Err(CoreError::bad("batch tokens cannot create more tokens"));
    }
    // A login made for one request (inline auth) has no stored token to be a parent: a
    // child would outlive the JWT that let the caller in.
    if caller.token_id.is_empty() {
        return Err(CoreError::bad(
            "parent token lookup failed: a token cannot be created with inline authentication",
        ));
    }
    // A token limited to some uses would otherwise hand out unlimited ones.
    if parent.num_uses > 0 {
        return Err(CoreError::bad(
            "restricted use token cannot generate child tokens",
        ));
    }
    // A token from a parent namespace reaches a child namespace's token store only with
    // its own policies' say-so; issuing there directly would grant the child's policies
    // of the same name.
    if ns.ns.id != caller.ns.ns.id && !sudo {
        return Err(CoreError::bad(
            "root or sudo privileges required to directly generate a token in a child namespace",
        ));
    }
    // An entity alias names an identity for the token; OpenBao takes one only through a
    // token role that allows it, and this server keeps no identity entities: refused,
    // not ignored.
    if let Some(alias) = fields.str("entity_alias").filter(|a| !a.is_empty()) {
        let Some(r) = &role else {
            return Err(CoreError::bad(
                "'entity_alias' is only allowed in combination with token role",
            ));
        };
        if !r
            .allowed_entity_aliases
            .iter()
            .any(|a| strongroom_jwt::glob_match(a, &alias))
        {
            return Err(CoreError::bad("invalid 'entity_alias' value"));
        }
        return Err(CoreError::bad(
            "'entity_alias' cannot be honoured: this server keeps no identity entities",
        ));
    }
    let parent_is_root = parent.is_root();
    // A role decides orphan-ness itself (`no_parent` is not read through a role).
    let orphan = match &role {
        Some(r) => r.orphan,
        None => orphan_endpoint || fields.bool("no_parent").unwrap_or(false),
    };
    let requested_type = match &role {
        Some(r) => Some(r.token_type_for(fields.str("type").as_deref())?),
        None => fields.str("type").map(|t| t.into_owned()),
    };
    let batch = match requested_type.as_deref() {
        None | Some("") | Some("service") | Some("default") => false,
        Some("batch") => true,
        Some(other) => {
            return Err(CoreError::bad(format!(
                "invalid token type {other:?}: use service or batch"
            )))
        }
    };
    let mut policies: Vec<String> = fields.str_list("policies").unwrap_or_default();
    for p in policies.iter_mut() {
        *p = p.trim().to_lowercase();
    }
    policies.retain(|p| !p.is_empty());
    let no_default = fields.bool("no_default_policy").unwrap_or(false)
        || role.as_ref().is_some_and(|r| r.token_no_default_policy);
    if let Some(r) = role.as_ref().filter(|r| r.governs_policies()) {
        // The role sets the policies, apart from the parent's.
        policies = r.resolve_policies(&policies, &parent.policies, no_default)?;
    } else if policies.is_empty() {
        policies = parent.policies.clone();
    } else if !parent_is_root {
        let allowed: Vec<&String> = parent.policies.iter().collect();
        for p in &policies {
            if p != "default" && !allowed.contains(&p) {
                return Err(CoreError::bad(format!("child policies must be subset of parent: {p:?} is not in the caller's policies")));
            }
        }
    }
    // Only the server gives a token the wrapping policy, as in OpenBao.
    if policies.iter().any(|p| p == crate::wrapping::POLICY) {
        return Err(CoreError::bad(format!(
            "cannot assign policy {:?}",
            crate::wrapping::POLICY
        )));
    }
    if policies.iter().any(|p| p == "root") && !parent_is_root {
        return Err(CoreError::bad(
            "root tokens may not be created by a non-root token",
        ));
    }
    let role_governs = role.as_ref().is_some_and(|r| r.governs_policies());
    if !no_default
        && !role_governs
        && !policies.iter().any(|p| p == "root")
        && !policies.iter().any(|p| p == "default")
    {
        policies.push("default".into());
    }
    if no_default {
        policies.retain(|p| p != "default");
    }
    policies.sort();
    policies.dedup();

    let mut meta = BTreeMap::new();
    meta.extend(fields.kv_pairs("meta").unwrap_or_default());
    let mut num_uses = fields.int("num_uses").unwrap_or(0);
    if num_uses < 0 {
        return Err(CoreError::bad("number of uses cannot be negative"));
    }
    let mut renewable = fields.bool("renewable").unwrap_or(true) && !batch;
    let mut period = parse_ttl(fields, "period")?;
    let mut explicit_max_ttl = parse_ttl(fields, "explicit_max_ttl")?;
    // The token records the period and explicit max TTL asked for; its TTL (here) and its
    // renewals (in `renew`) also apply its role's, the lesser of each, as in OpenBao.
    let (requested_period, requested_max) = (period, explicit_max_ttl);
    if let Some(r) = &role {
        renewable &= r.renewable;
        // 0 is unlimited: the role's cap applies to an unlimited or larger request
        if r.token_num_uses > 0 && (num_uses == 0 || r.token_num_uses < num_uses) {
            num_uses = r.token_num_uses;
        }
        if !batch {
            period = lesser_nonzero(period, r.token_period);
            explicit_max_ttl = lesser_nonzero(explicit_max_ttl, r.token_explicit_max_ttl);
        }
    }
    let mut ttl = parse_ttl(fields, "ttl")?;
    // A batch token cannot be revoked on its own (it is not stored), so it never carries
    // root, as in OpenBao.
    if batch && policies.iter().any(|p| p == "root") {
        return Err(CoreError::bad("batch tokens cannot be root tokens"));
    }
    if batch && (period > 0 || num_uses > 0) {
        return Err(CoreError::bad(
            "batch tokens cannot be periodic or have a limited number of uses",
        ));
    }
    let is_root_token = policies.len() == 1 && policies[0] == "root";
    if period > 0 {
        ttl = period;
    } else if ttl == 0 && !is_root_token {
        let mount = ns.auth_mounts().await?;
        let d = mount
            .get("token/")
            .map(|m| m.config.default_lease_ttl)
            .unwrap_or(0);
        ttl = if d > 0 { d } else { core.cfg.default_lease_ttl };
    }
    if explicit_max_ttl > 0 && (ttl == 0 || ttl > explicit_max_ttl) {
        ttl = explicit_max_ttl;
    }
    let mut warnings = Vec::new();
    if period == 0 && core.cfg.max_lease_ttl > 0 && ttl > core.cfg.max_lease_ttl {
        warnings.push(format!(
            "TTL of {} exceeded the effective max_ttl of {}; TTL value is capped accordingly",
            util::format_duration(ttl),
            util::format_duration(core.cfg.max_lease_ttl)
        ));
        ttl = core.cfg.max_lease_ttl;
    }
    let now = util::now_secs();
    let mut expire_time = if ttl > 0 { now + ttl } else { 0 };
    if !orphan && parent.expire_time != 0 && (expire_time == 0 || expire_time > parent.expire_time)
    {
        expire_time = parent.expire_time;
        ttl = (expire_time - now).max(0);
    }
    // A token that never expires (a root token) is not advertised as renewable, as
    // renewing it is refused; and an expiring one cannot mint one that never expires.
    let mut bound_cidrs = role
        .as_ref()
        .map(|r| r.token_bound_cidrs.clone())
        .unwrap_or_default();
    if ttl == 0 {
        if parent.ttl != 0 {
            return Err(CoreError::bad(
                "expiring root tokens cannot create non-expiring root tokens",
            ));
        }
        renewable = false;
        bound_cidrs.clear();
    }
    let display_name = match fields.str("display_name") {
        Some(n) if !n.is_empty() => {
            let clean: String = n
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect();
            format!("token-{clean}")
        }
        _ => "token".into(),
    };
    let custom_id = fields
        .str("id")
        .map(|s| s.into_owned())
        .filter(|s| !s.is_empty());
    if custom_id.is_some() && !parent_is_root {
        return Err(CoreError::bad(
            "root or sudo privileges required to specify token id",
        ));
    }
    let parent_ref = if orphan {
        None
    } else {
        Some((parent.hash.clone(), caller.ns.ns.id.clone()))
    };
    let mut entry = TokenEntry {
        hash: String::new(),
        accessor: String::new(),
        parent: parent_ref,
        policies,
        meta,
        display_name,
        num_uses,
        creation_time: now,
        ttl,
        explicit_max_ttl: requested_max,
        max_ttl: 0,
        period: requested_period,
        renewable,
        expire_time,
        namespace_id: ns.ns.id.clone(),
        path: match &role {
            Some(r) if r.path_suffix.is_empty() => format!("auth/token/create/{}", r.name),
            Some(r) => format!("auth/token/create/{}/{}", r.name, r.path_suffix),
            None if orphan_endpoint => "auth/token/create-orphan".into(),
            None => "auth/token/create".into(),
        },
        batch,
        orphan,
        entity_id: String::new(),
        role: role.as_ref().map(|r| r.name.clone()).unwrap_or_default(),
        bound_cidrs,
    };
    let id = issue(core, active, ns, &mut entry, custom_id, true).await?;
    let mut r = Response {
        auth: Some(auth_json(&entry, &id, now)),
        ..Default::default()
    };
    r.warnings = warnings;
    Ok(r)
}

/// Give `entry` its identity: a sealed blob for a batch token; otherwise a random (or
/// custom) id, accessor and hash, stored when `persist` (inline-auth logins are not).
pub(crate) async fn issue(
    core: &Core,
    active: &Active,
    ns: &NsState,
    entry: &mut TokenEntry,
    custom_id: Option<String>,
    persist: bool,
) -> Result<String> {
    if !persist {
        // Inline auth: the token lives for one request and is never shown; it needs no
        // identity beyond the entry itself.
        return Ok(String::new());
    }
    if entry.batch {
        let plain = strongroom_barrier::secret::SecretBytes::new(encode_batch(entry));
        let ct = core.barrier.seal_blob(BATCH_AAD, &plain)?;
        return Ok(format!(
            "b.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ct)
        ));
    }
    let id = with_ns_suffix(custom_id.unwrap_or_else(random_token_id), ns);
    let accessor = with_ns_suffix(time_ordered_id(), ns);
    entry.hash = hash_token(active, &id);
    entry.accessor = accessor.clone();
    if persist {
        store_entry(ns, active, entry, &accessor).await?;
    }
    Ok(id)
}

/// The `auth` block of a login's response, made of the entry it issued (moved, not
/// copied: the login has no other use for it).
pub(crate) fn login_auth(e: TokenEntry, id: String) -> Auth {
    auth_block(e, id, util::now_secs())
}

/// Revoke a token and every descendant.
pub(crate) async fn revoke_tree(core: &Core, active: &Active, entry: &TokenEntry) -> Result<()> {
    if entry.batch || entry.hash.is_empty() {
        return Ok(());
    }
    let Some(ns) = active.namespaces.by_id(&entry.namespace_id).await? else {
        return Ok(());
    };
    // Depth-first over the parent index; bounded by the number of descendants.
    let mut stack = vec![(entry.hash.clone(), ns)];
    let mut order = Vec::new();
    while let Some((hash, ns)) = stack.pop() {
        let prefix = format!("sys/token/parent/{hash}/");
        for child in ns.view.list(&prefix, None, None).await? {
            let child_ns_id = ns
                .view
                .get(&format!("{prefix}{child}"))
                .await?
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            if let Some(cns) = active
                .namespaces
                .by_id(child_ns_id.as_deref().unwrap_or("root"))
                .await?
            {
                stack.push((child, cns));
            }
        }
        order.push((hash, ns));
    }
    for (hash, ns) in order.into_iter().rev() {
        revoke_one(active, &ns, &hash).await?;
    }
    let _ = core;
    Ok(())
}

pub(crate) async fn revoke_one(active: &Active, ns: &NsState, hash: &str) -> Result<()> {
    let key = format!("sys/token/id/{hash}");
    let Some(e) = ns.view.get_json::<TokenEntry>(&key).await? else {
        active.tokens.remove(hash);
        return Ok(());
    };
    let mut ops = vec![
        BarrierOp::Delete(key),
        BarrierOp::Delete(format!(
            "sys/token/accessor/{}",
            hash_token(active, &e.accessor)
        )),
        BarrierOp::DeletePrefix(format!("sys/token/parent/{hash}/")),
    ];
    if let Some((ph, pns)) = &e.parent {
        if *pns == ns.ns.id {
            ops.push(BarrierOp::Delete(format!("sys/token/parent/{ph}/{hash}")));
        }
    }
    if crate::wrapping::is_wrapping_token(&e) {
        // the response it wraps goes with it (unwrapped, revoked or expired)
        ops.push(BarrierOp::Delete(crate::wrapping::record_key(hash)));
    }
    let mut ops: Vec<BarrierOp> = ops.into_iter().map(|op| ns.view.absolute(op)).collect();
    if e.expire_time > 0 {
        ops.push(BarrierOp::Delete(expiry_key(
            e.expire_time,
            &ns.ns.id,
            hash,
        )));
    }
    ns.view.transact_absolute(ops).await?;
    active.tokens.remove(hash);
    Ok(())
}

/// Revoke only this token; its children become orphans.
async fn revoke_orphan(active: &Active, ns: &NsState, entry: &TokenEntry) -> Result<()> {
    let prefix = format!("sys/token/parent/{}/", entry.hash);
    for child in ns.view.list(&prefix, None, None).await? {
        let cns_id = ns
            .view
            .get(&format!("{prefix}{child}"))
            .await?
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        if let Some(cns) = active
            .namespaces
            .by_id(cns_id.as_deref().unwrap_or("root"))
            .await?
        {
            let key = format!("sys/token/id/{child}");
            if let Some(mut c) = cns.view.get_json::<TokenEntry>(&key).await? {
                c.parent = None;
                c.orphan = true;
                cns.view.put_json(&key, &c).await?;
                active.tokens.remove(&child);
            }
        }
    }
    revoke_one(active, ns, &entry.hash).await
}

async fn by_accessor(
    active: &Active,
    ns: &Arc<NsState>,
    accessor: &str,
) -> Result<Option<(Arc<TokenEntry>, Arc<NsState>)>> {
    let target_ns = match ns_suffix(&format!("s.{accessor}")) {
        "root" => active.namespaces.root(),
        id => match active.namespaces.by_id(id).await? {
            Some(n) => n,
            None => return Ok(None),
        },
    };
    // An accessor names a token in the request's namespace only: a caller allowed on
    // `auth/token/*` in one namespace must not look up, renew or revoke another's tokens
    // (the accessor's suffix says where its token lives). OpenBao refuses it too.
    if target_ns.ns.id != ns.ns.id {
        return Err(CoreError::bad("cannot lookup token in different namespace"));
    }
    let Some(hash) = target_ns
        .view
        .get(&format!(
            "sys/token/accessor/{}",
            hash_token(active, accessor)
        ))
        .await?
    else {
        return Ok(None);
    };
    let hash = String::from_utf8_lossy(&hash).into_owned();
    let entry = load_entry(active, &target_ns, &hash).await?;
    Ok(entry
        .filter(|e| !e.is_expired(util::now_secs()))
        .map(|e| (e, target_ns)))
}

async fn renew(
    core: &Core,
    active: &Active,
    ns: &NsState,
    entry: &TokenEntry,
    id: &str,
    fields: &Fields<'_>,
) -> Result<Response> {
    let now = util::now_secs();
    if entry.batch {
        return Err(CoreError::bad("batch tokens cannot be renewed"));
    }
    if entry.expire_time == 0 {
        // Never expires (root token): nothing to extend.
        return Ok(Response {
            auth: Some(auth_json(entry, id, now)),
            ..Default::default()
        });
    }
    if !entry.renewable {
        return Err(CoreError::bad("lease is not renewable"));
    }
    let increment = parse_ttl(fields, "increment")?;
    let mut e = entry.clone();
    // A token made through a role renews by its role's period and explicit max TTL too.
    // (`role` also names the auth role of a login's token: only the token store's own
    // roles issue under `auth/token/create/`.)
    let (period, explicit_max_ttl) =
        if e.role.is_empty() || !e.path.starts_with("auth/token/create/") {
            (e.period, e.explicit_max_ttl)
        } else {
            let role = crate::token_role::read(ns, &e.role).await?.ok_or_else(|| {
                CoreError::bad(format!(
                    "original token role ({}) could not be found, not renewing",
                    e.role
                ))
            })?;
            (
                lesser_nonzero(e.period, role.token_period),
                lesser_nonzero(e.explicit_max_ttl, role.token_explicit_max_ttl),
            )
        };
    let mut ttl = if period > 0 {
        period
    } else if increment > 0 {
        increment
    } else if e.ttl > 0 {
        e.ttl
    } else {
        core.cfg.default_lease_ttl
    };
    let mut warnings = Vec::new();
    if explicit_max_ttl > 0 {
        let hard = e.creation_time + explicit_max_ttl;
        if now + ttl > hard {
            ttl = (hard - now).max(0);
            warnings.push("TTL of the token is capped by its explicit max TTL".to_owned());
        }
    }
    // The role's or mount's max TTL where the token has one, else the server's.
    let max = match (e.max_ttl, core.cfg.max_lease_ttl) {
        (0, server) => server,
        (own, 0) => own,
        (own, server) => own.min(server),
    };
    if period == 0 && max > 0 {
        let hard = e.creation_time + max;
        if now + ttl > hard {
            let asked = ttl;
            ttl = (hard - now).max(0);
            warnings.push(format!(
                "TTL of \"{}\" exceeded the effective max_ttl of \"{}\"; TTL value is capped accordingly",
                util::format_duration(asked),
                util::format_duration(ttl)
            ));
        }
    }
    // A child dies with its parent: it is not renewed past the parent's expiry, so it
    // stops at that moment by its own expiry rather than at the next tidy.
    if let Some((parent_hash, parent_ns)) = &e.parent {
        if let Some(pns) = active.namespaces.by_id(parent_ns).await? {
            if let Some(parent) = load_entry(active, &pns, parent_hash).await? {
                if parent.expire_time != 0 && now + ttl > parent.expire_time {
                    ttl = (parent.expire_time - now).max(0);
                    warnings.push("TTL of the token is capped by its parent's expiry".to_owned());
                }
            }
        }
    }
    let old_expiry = expiry_key(e.expire_time, &ns.ns.id, &e.hash);
    e.expire_time = now + ttl;
    let bytes = serde_json::to_vec(&e).map_err(|x| CoreError::Internal(x.to_string()))?;
    let mut ops = vec![
        ns.view
            .absolute(BarrierOp::Put(format!("sys/token/id/{}", e.hash), bytes)),
        BarrierOp::Delete(old_expiry),
    ];
    ops.extend(expiry_put(&e, &ns.ns.id));
    ns.view.transact_absolute(ops).await?;
    // Dropped, not replaced: see `consume_use`.
    active.tokens.remove(&e.hash);
    let mut r = Response {
        auth: Some(auth_json(&e, id, now)),
        ..Default::default()
    };
    r.warnings = warnings;
    Ok(r)
}

fn token_param<'a>(fields: &Fields<'a>) -> Result<std::borrow::Cow<'a, str>> {
    fields
        .str("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| CoreError::bad("missing token"))
}

/// The token caches a write of `rel` (a key in its namespace) stales.
pub(crate) fn stale_by(_key: &str, rel: &str) -> Option<crate::Stale> {
    let rest = rel.strip_prefix("sys/token/")?;
    Some(match rest.strip_prefix("id/") {
        Some(hash) => crate::Stale::Token(hash.to_owned()),
        None => crate::Stale::Tokens,
    })
}

/// A batch token is not stored, so nothing can revoke it before it expires: say so rather
/// than answer 204 for a token that keeps working, as OpenBao does.
fn refuse_batch_revocation(e: &TokenEntry) -> Result<()> {
    if e.batch {
        return Err(CoreError::bad("batch tokens cannot be revoked"));
    }
    Ok(())
}

/// What each token-store path is, for dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenPath {
    Create,
    CreateRole,
    Role,
    CreateOrphan,
    LookupSelf,
    Lookup,
    LookupAccessor,
    RenewSelf,
    Renew,
    RenewAccessor,
    RevokeSelf,
    Revoke,
    RevokeOrphan,
    RevokeAccessor,
    Accessors,
    Roles,
    Tidy,
}

impl TokenPath {
    /// A token's own lookup, renewal and revocation: they also work from a namespace above
    /// the token's own (answered in the token's namespace), as in OpenBao.
    pub(crate) fn is_self(self) -> bool {
        matches!(
            self,
            TokenPath::LookupSelf | TokenPath::RenewSelf | TokenPath::RevokeSelf
        )
    }
}

/// The token store's paths, relative to `auth/token/`. Sudo follows OpenBao's
/// `PathsSpecial.Root` (`accessors*`); `create` with `no_parent` and `revoke-orphan` ask
/// for sudo in their handlers, as OpenBao's do (a 400 that says so).
pub(crate) static PATHS: &[PathSpec<TokenPath>] = {
    use Operation::{Delete as D, List as L, Read as R, Update as W};
    &[
        PathSpec::new("create", &[W], TokenPath::Create).fields(CREATE_FIELDS),
        PathSpec::new("create-orphan", &[W], TokenPath::CreateOrphan).fields(CREATE_FIELDS),
        PathSpec::new("create/{role}", &[W], TokenPath::CreateRole).fields(CREATE_FIELDS),
        PathSpec::new("lookup-self", &[R, W], TokenPath::LookupSelf),
        PathSpec::new("lookup", &[R, W], TokenPath::Lookup).fields(TOKEN_FIELD),
        PathSpec::new("lookup-accessor", &[W], TokenPath::LookupAccessor).fields(ACCESSOR_FIELD),
        PathSpec::new("renew-self", &[W], TokenPath::RenewSelf).fields(RENEW_FIELDS),
        PathSpec::new("renew", &[W], TokenPath::Renew).fields(RENEW_FIELDS),
        PathSpec::new("renew-accessor", &[W], TokenPath::RenewAccessor)
            .fields(RENEW_ACCESSOR_FIELDS),
        PathSpec::new("revoke-self", &[W], TokenPath::RevokeSelf),
        PathSpec::new("revoke", &[W], TokenPath::Revoke).fields(TOKEN_FIELD),
        PathSpec::new("revoke-orphan", &[W], TokenPath::RevokeOrphan).fields(TOKEN_FIELD),
        PathSpec::new("revoke-accessor", &[W], TokenPath::RevokeAccessor).fields(ACCESSOR_FIELD),
        PathSpec::new("accessors/?", &[L], TokenPath::Accessors).sudo(),
        PathSpec::new("roles/?", &[L], TokenPath::Roles),
        PathSpec::new("roles/{role}", &[R, W, D], TokenPath::Role)
            .fields(crate::token_role::ROLE_FIELDS),
        PathSpec::new("tidy", &[W], TokenPath::Tidy),
    ]
};

/// `auth/token/<path>`: the ACL, sudo and the operation were checked by the core against
/// the path's entry in [`PATHS`]; `sudo` says whether the caller holds it there.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn handle(
    core: &Core,
    active: &Active,
    ns: &Arc<NsState>,
    caller: &Caller,
    path: TokenPath,
    op: Operation,
    captures: &crate::route::Captures,
    sudo: bool,
    fields: &Fields<'_>,
) -> Result<Response> {
    let now = util::now_secs();
    match path {
        TokenPath::CreateRole => {
            let name = captures.get("role");
            let role = crate::token_role::read(ns, name)
                .await?
                .ok_or_else(|| CoreError::bad(format!("unknown role {name}")))?;
            create(core, active, ns, caller, false, sudo, fields, Some(role)).await
        }
        TokenPath::Role => {
            let name = captures.get("role");
            match op {
                Operation::Read => Ok(Response::data(
                    crate::token_role::read_json(ns, name).await?,
                )),
                Operation::Delete => {
                    crate::token_role::delete(ns, name).await?;
                    Ok(Response::none())
                }
                _ => {
                    crate::token_role::write(ns, name, fields).await?;
                    Ok(Response::none())
                }
            }
        }
        TokenPath::Create => {
            if fields.bool("no_parent").unwrap_or(false) && !sudo {
                return Err(CoreError::bad(
                    "root or sudo privileges required to create orphan token",
                ));
            }
            create(core, active, ns, caller, false, sudo, fields, None).await
        }
        TokenPath::CreateOrphan => create(core, active, ns, caller, true, sudo, fields, None).await,
        TokenPath::LookupSelf => Ok(Response::data(lookup_json(
            &caller.entry,
            &caller.token_id,
            &caller.ns,
            now,
        ))),
        TokenPath::Lookup => {
            let id = token_param(fields)?;
            let (e, ens) = resolve(core, active, &id)
                .await?
                // 403, as OpenBao answers a lookup of a token that does not exist.
                .ok_or_else(|| CoreError::Forbidden("bad token".into()))?;
            Ok(Response::data(lookup_json(&e, &id, &ens, now)))
        }
        TokenPath::LookupAccessor => {
            let acc = fields
                .str("accessor")
                .ok_or_else(|| CoreError::bad("missing accessor"))?;
            let (e, ens) = by_accessor(active, ns, &acc)
                .await?
                .ok_or_else(|| CoreError::bad("invalid accessor"))?;
            Ok(Response::data(lookup_json(&e, "", &ens, now)))
        }
        TokenPath::RenewSelf => {
            renew(
                core,
                active,
                &caller.ns,
                &caller.entry,
                &caller.token_id,
                fields,
            )
            .await
        }
        TokenPath::Renew => {
            let id = token_param(fields)?;
            let (e, ens) = resolve(core, active, &id)
                .await?
                .ok_or_else(|| CoreError::bad("token not found"))?;
            renew(core, active, &ens, &e, &id, fields).await
        }
        TokenPath::RenewAccessor => {
            let acc = fields
                .str("accessor")
                .ok_or_else(|| CoreError::bad("missing accessor"))?;
            let (e, ens) = by_accessor(active, ns, &acc)
                .await?
                .ok_or_else(|| CoreError::bad("invalid accessor"))?;
            let mut r = renew(core, active, &ens, &e, "", fields).await?;
            if let Some(a) = r.auth.as_mut() {
                a.client_token.clear();
            }
            Ok(r)
        }
        TokenPath::RevokeSelf => {
            refuse_batch_revocation(&caller.entry)?;
            revoke_tree(core, active, &caller.entry).await?;
            Ok(Response::none())
        }
        TokenPath::Revoke => {
            let id = token_param(fields)?;
            if let Some((e, _)) = resolve(core, active, &id).await? {
                refuse_batch_revocation(&e)?;
                revoke_tree(core, active, &e).await?;
            }
            Ok(Response::none())
        }
        TokenPath::RevokeOrphan => {
            if !sudo {
                return Err(CoreError::bad(
                    "root or sudo privileges required to revoke and orphan",
                ));
            }
            let id = token_param(fields)?;
            // Unlike `revoke`, OpenBao says when there is nothing to revoke here.
            let (e, ens) = resolve(core, active, &id)
                .await?
                .ok_or_else(|| CoreError::bad("token to revoke not found"))?;
            revoke_orphan(active, &ens, &e).await?;
            Ok(Response::none())
        }
        TokenPath::RevokeAccessor => {
            let acc = fields
                .str("accessor")
                .ok_or_else(|| CoreError::bad("missing accessor"))?;
            match by_accessor(active, ns, &acc).await? {
                Some((e, _)) => {
                    revoke_tree(core, active, &e).await?;
                    Ok(Response::none())
                }
                // Nothing to revoke is not an error; OpenBao says so in a warning.
                None => Ok(Response {
                    warnings: vec!["No token found with this accessor".into()],
                    ..Default::default()
                }),
            }
        }
        TokenPath::Accessors => {
            let mut keys = Vec::new();
            for (_, v) in ns.view.scan("sys/token/id/", None, usize::MAX).await? {
                if let Ok(e) = serde_json::from_slice::<TokenEntry>(&v) {
                    keys.push(e.accessor);
                }
            }
            if keys.is_empty() {
                return Err(CoreError::NotFound(String::new()));
            }
            keys.sort();
            Ok(Response::list(keys))
        }
        TokenPath::Roles => Ok(Response::data(crate::token_role::list(ns).await?)),
        TokenPath::Tidy => {
            tidy(core, active).await?;
            Ok(Response::none().with_warning("Tidy operation successfully completed."))
        }
    }
}

/// Revoke expired tokens (and their children) in every namespace: reads the expiry index
/// up to now, so the cost is the number of expired tokens, not of namespaces.
pub(crate) async fn tidy(core: &Core, active: &Active) -> Result<()> {
    let root = active.namespaces.root();
    if root.view.get(EXPIRY_INDEXED).await?.is_none() {
        backfill_expiry_index(active).await?;
    }
    let now = util::now_secs();
    // `is_expired` is `now > expire_time`: every key below this one has expired.
    let end = format!("{EXPIRY_PREFIX}{now:020}/");
    let mut after: Option<String> = None;
    loop {
        let page = key_page(&root.view, EXPIRY_PREFIX, after.as_deref(), 256).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.clone());
        for key in page.iter().take_while(|k| k.as_str() < end.as_str()) {
            let mut parts = key[EXPIRY_PREFIX.len()..].splitn(3, '/');
            let (_, ns_id, hash) = (parts.next(), parts.next(), parts.next());
            let (Some(ns_id), Some(hash)) = (ns_id, hash) else {
                root.view.delete(key).await?;
                continue;
            };
            let entry = match active.namespaces.by_id(ns_id).await? {
                Some(ns) => ns
                    .view
                    .get_json::<TokenEntry>(&format!("sys/token/id/{hash}"))
                    .await?
                    .filter(|e| expiry_key(e.expire_time, ns_id, hash) == *key),
                None => None,
            };
            match entry {
                Some(e) if e.is_expired(now) => revoke_tree(core, active, &e).await?,
                Some(_) => {}
                // The token or its namespace is gone, or it was renewed: a stale entry.
                None => root.view.delete(key).await?,
            }
        }
        if last.as_str() >= end.as_str() {
            break;
        }
    }
    Ok(())
}

/// A fresh install has nothing to backfill.
pub(crate) async fn mark_expiry_indexed(root: &NsState) -> Result<()> {
    root.view.put(EXPIRY_INDEXED, b"1").await
}

/// Index by expiry the tokens stored before the index existed: one pass over every
/// namespace, a page at a time (no namespace is loaded or cached), then the marker.
async fn backfill_expiry_index(active: &Active) -> Result<()> {
    let root = active.namespaces.root();
    index_tokens_of(active, &root.view, "root").await?;
    let mut after: Option<String> = None;
    loop {
        let page = key_page(&root.view, "core/ns-id/", after.as_deref(), 512).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.clone());
        for key in &page {
            let ns_id = &key["core/ns-id/".len()..];
            index_tokens_of(active, &active.namespaces.unloaded_view(ns_id), ns_id).await?;
        }
    }
    root.view.put(EXPIRY_INDEXED, b"1").await
}

/// Revoke every stored token of namespace `ns` that a login at the auth mount `mount_path`
/// (`jwt/`) issued, with its children: what disabling a compromised method must do.
/// Batch tokens are not stored and end at their expiry.
pub(crate) async fn revoke_issued_by(
    core: &Core,
    active: &Active,
    ns: &NsState,
    mount_path: &str,
) -> Result<usize> {
    revoke_by_path_prefix(core, active, ns, &format!("auth/{mount_path}")).await
}

/// Whether a token of creation path `path` (its lease ID is `path/<hash>`) lies under
/// `prefix`.
fn under(path: &str, prefix: &str) -> bool {
    path.starts_with(prefix)
        || prefix
            .strip_suffix('/')
            .is_some_and(|p| path.trim_end_matches('/') == p)
}

/// Every stored token of `ns` whose creation path lies under `prefix`.
pub(crate) async fn with_path_prefix(ns: &NsState, prefix: &str) -> Result<Vec<TokenEntry>> {
    let mut after: Option<String> = None;
    let mut out = Vec::new();
    loop {
        let page = ns.view.scan("sys/token/id/", after.as_deref(), 512).await?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        out.extend(
            page.iter()
                .filter_map(|(_, v)| serde_json::from_slice::<TokenEntry>(v).ok())
                .filter(|e| under(&e.path, prefix)),
        );
    }
    Ok(out)
}

/// Revoke (with their children) the tokens of `ns` whose creation path starts with
/// `prefix`; how many.
pub(crate) async fn revoke_by_path_prefix(
    core: &Core,
    active: &Active,
    ns: &NsState,
    prefix: &str,
) -> Result<usize> {
    let mut after: Option<String> = None;
    let mut revoked = 0;
    loop {
        let page = ns.view.scan("sys/token/id/", after.as_deref(), 512).await?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (_, v) in &page {
            let Ok(e) = serde_json::from_slice::<TokenEntry>(v) else {
                continue;
            };
            if under(&e.path, prefix) {
                revoke_tree(core, active, &e).await?;
                revoked += 1;
            }
        }
    }
    Ok(revoked)
}

/// Add the expiry index entry of every expiring token stored in `view` (namespace `ns_id`).
async fn index_tokens_of(active: &Active, view: &crate::view::View, ns_id: &str) -> Result<()> {
    let root = active.namespaces.root();
    let mut after: Option<String> = None;
    loop {
        let page = view.scan("sys/token/id/", after.as_deref(), 512).await?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        let ops: Vec<BarrierOp> = page
            .iter()
            .filter_map(|(_, v)| serde_json::from_slice::<TokenEntry>(v).ok())
            .filter_map(|e| expiry_put(&e, ns_id))
            .collect();
        if !ops.is_empty() {
            root.view.transact_absolute(ops).await?;
        }
    }
    Ok(())
}

/// One page of the keys under `prefix` in `view`, in order.
async fn key_page(
    view: &crate::view::View,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>> {
    Ok(view
        .scan(prefix, after, limit)
        .await?
        .into_iter()
        .map(|(k, _)| k)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Create a token in namespace `ns`; returns (token, its hash).
    async fn token(core: &Core, ns: &str, ttl: &str) -> String {
        let r = core
            .root_request(
                ns,
                Operation::Update,
                "auth/token/create",
                json!({"ttl": ttl}),
            )
            .await
            .unwrap();
        r.auth.unwrap().client_token
    }

    async fn lookup_ok(core: &Core, ns: &str, t: &str) -> bool {
        core.root_request(
            ns,
            Operation::Update,
            "auth/token/lookup",
            json!({"token": t}),
        )
        .await
        .is_ok()
    }

    async fn index_len(core: &Core) -> usize {
        core.barrier
            .scan(EXPIRY_PREFIX, None, usize::MAX)
            .await
            .unwrap()
            .len()
    }

    /// Stored token entries in every namespace (an expired token fails lookup whether or
    /// not it was revoked; this shows it is gone).
    async fn stored_tokens(core: &Core) -> usize {
        let mut n = 0;
        for prefix in ["sys/token/id/", "namespaces/"] {
            n += core
                .barrier
                .storage()
                .scan(prefix, None, usize::MAX)
                .await
                .unwrap()
                .iter()
                .filter(|(k, _)| k.contains("sys/token/id/"))
                .count();
        }
        n
    }

    #[tokio::test]
    async fn a_chosen_token_id_that_exists_is_refused_and_the_first_token_stays() {
        let core = Core::for_tests();
        core.initialize(1, 1, Some("root".into())).await.unwrap();
        let create = || {
            core.root_request(
                "",
                Operation::Update,
                "auth/token/create",
                json!({"id": "chosen-1", "policies": ["default"]}),
            )
        };
        let first = create().await.unwrap();
        let first_accessor = json!(first.auth.unwrap().accessor);
        match create().await {
            Err(CoreError::BadRequest(m)) => assert!(m.contains("already exists"), "{m}"),
            Err(e) => panic!("expected a 400, got {}", e.status()),
            Ok(_) => panic!("a second token with the same id was created"),
        }
        let r = core
            .root_request(
                "",
                Operation::Update,
                "auth/token/lookup",
                json!({"token": "chosen-1"}),
            )
            .await
            .unwrap();
        assert_eq!(r.data_value().unwrap()["accessor"], first_accessor);
        // Generated ids keep working beside it.
        let a = token(&core, "", "1h").await;
        let b = token(&core, "", "1h").await;
        assert_ne!(a, b);
        assert!(lookup_ok(&core, "", &a).await && lookup_ok(&core, "", &b).await);
    }

    #[tokio::test]
    async fn generated_tokens_and_accessors_are_stored_in_creation_order() {
        let core = Core::for_tests();
        core.initialize(1, 1, Some("root".into())).await.unwrap();
        let mut made = Vec::new();
        for _ in 0..3 {
            let r = core
                .root_request("", Operation::Update, "auth/token/create", json!({}))
                .await
                .unwrap();
            let auth = r.auth.unwrap();
            made.push((auth.client_token, auth.accessor));
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        let active = core.active().unwrap();
        let keys = |prefix: &'static str| {
            let core = &core;
            async move {
                core.barrier
                    .scan(prefix, None, usize::MAX)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect::<Vec<_>>()
            }
        };
        let ids = keys("sys/token/id/").await;
        let accessors = keys("sys/token/accessor/").await;
        // The root token ("root") has a plain hash; the three new ones follow in order.
        let ordered = |keys: &[String], of: &dyn Fn(&(String, String)) -> String| {
            made.iter()
                .map(|m| keys.iter().position(|k| k.ends_with(&of(m))).unwrap())
                .collect::<Vec<_>>()
        };
        let by_id = ordered(&ids, &|(t, _)| hash_token(&active, t));
        let by_accessor = ordered(&accessors, &|(_, a)| hash_token(&active, a));
        assert!(by_id.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(by_accessor.windows(2).all(|w| w[0] < w[1]), "{accessors:?}");
        for (t, a) in &made {
            assert!(
                time_prefix(t).is_some() && time_prefix(a).is_some(),
                "{t} {a}"
            );
            assert!(hash_token(&active, t).starts_with(time_prefix(t).unwrap()));
            assert!(lookup_ok(&core, "", t).await);
            core.root_request(
                "",
                Operation::Update,
                "auth/token/lookup-accessor",
                json!({"accessor": a}),
            )
            .await
            .unwrap();
        }
        // A token whose chosen id has the time-ordered shape, stored before ids carried
        // their time (under the plain hash), still resolves.
        let custom = "s.0123456789ABCDEFGHIJKLMNOPQRSTUV";
        core.root_request(
            "",
            Operation::Update,
            "auth/token/create",
            json!({"id": custom}),
        )
        .await
        .unwrap();
        let new_key = format!("sys/token/id/{}", hash_token(&active, custom));
        let plain = plain_hash(&active, custom).unwrap();
        let mut entry: TokenEntry =
            serde_json::from_slice(&core.barrier.get(&new_key).await.unwrap().unwrap()).unwrap();
        entry.hash = plain.clone();
        core.barrier.delete(&new_key).await.unwrap();
        core.barrier
            .put(
                &format!("sys/token/id/{plain}"),
                &serde_json::to_vec(&entry).unwrap(),
            )
            .await
            .unwrap();
        active.tokens.clear();
        assert!(lookup_ok(&core, "", custom).await);
        assert!(!lookup_ok(&core, "", "s.0123456789ABCDEFGHIJKLMNOPQRSTUW").await);
    }

    #[tokio::test]
    async fn tidy_revokes_expired_tokens_in_every_namespace_through_the_expiry_index() {
        let core = Core::for_tests();
        core.initialize(1, 1, Some("root".into())).await.unwrap();
        core.root_request("", Operation::Update, "sys/namespaces/team", json!({}))
            .await
            .unwrap();
        let short_root = token(&core, "", "1s").await;
        let short_ns = token(&core, "team", "1s").await;
        let long_ns = token(&core, "team", "1h").await;
        // The root token never expires: only the three above are indexed.
        assert_eq!(index_len(&core).await, 3);
        assert_eq!(stored_tokens(&core).await, 4);

        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let active = core.active().unwrap();
        tidy(&core, &active).await.unwrap();
        assert!(!lookup_ok(&core, "", &short_root).await);
        assert!(!lookup_ok(&core, "team", &short_ns).await);
        assert!(lookup_ok(&core, "team", &long_ns).await);
        assert_eq!(
            index_len(&core).await,
            1,
            "revocation removes index entries"
        );
        assert_eq!(
            stored_tokens(&core).await,
            2,
            "root token and the 1h one remain"
        );

        // Data written before the index existed: the first tidy indexes it.
        let expired = token(&core, "team", "1s").await;
        core.barrier
            .transact(vec![
                BarrierOp::DeletePrefix(EXPIRY_PREFIX.into()),
                BarrierOp::Delete(EXPIRY_INDEXED.into()),
            ])
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        tidy(&core, &active).await.unwrap();
        assert!(!lookup_ok(&core, "team", &expired).await);
        assert!(lookup_ok(&core, "team", &long_ns).await);
        assert_eq!(stored_tokens(&core).await, 2);
        assert_eq!(index_len(&core).await, 1);
        assert!(core.barrier.get(EXPIRY_INDEXED).await.unwrap().is_some());

        // Renewal moves the entry; the old one does not make tidy revoke the token.
        core.root_request(
            "team",
            Operation::Update,
            "auth/token/renew",
            json!({"token": long_ns, "increment": "2h"}),
        )
        .await
        .unwrap();
        assert_eq!(index_len(&core).await, 1);
        tidy(&core, &active).await.unwrap();
        assert!(lookup_ok(&core, "team", &long_ns).await);
    }

    fn full_entry() -> TokenEntry {
        TokenEntry {
            hash: String::new(),
            accessor: String::new(),
            parent: Some(("0123abc".into(), "ns7".into())),
            policies: vec!["default".into(), "project-42-read".into()],
            meta: BTreeMap::from([
                ("role".into(), "ci".into()),
                ("project_path".into(), "group/ünïcode".into()),
            ]),
            display_name: "jwt-gitlab-user".into(),
            num_uses: 0,
            creation_time: 1_764_300_000,
            ttl: 3_600,
            explicit_max_ttl: -1,
            max_ttl: 0,
            period: i64::MAX,
            renewable: false,
            expire_time: 1_764_303_600,
            namespace_id: "ns7".into(),
            path: "auth/jwt/login".into(),
            batch: true,
            orphan: true,
            entity_id: String::new(),
            role: "ci".into(),
            bound_cidrs: vec!["10.0.0.0/8".into(), "::1/128".into()],
        }
    }

    #[test]
    fn a_batch_entry_round_trips_through_its_compact_form_and_nothing_else_decodes() {
        let e = full_entry();
        let b = encode_batch(&e);
        assert_eq!(decode_batch(&b), Some(e.clone()));
        let json = util::json_bytes(&e).unwrap();
        assert!(
            b.len() * 2 < json.len(),
            "{} vs {} bytes",
            b.len(),
            json.len()
        );
        // Tokens issued before the compact form hold the entry as JSON.
        assert_eq!(decode_batch(&json), Some(e.clone()));
        for n in 0..b.len() {
            assert_eq!(decode_batch(&b[..n]), None, "truncated to {n} bytes");
        }
        let mut longer = b.clone();
        longer.push(0);
        assert_eq!(decode_batch(&longer), None, "a trailing byte");
        let mut other = b.clone();
        other[0] = 2;
        assert_eq!(decode_batch(&other), None, "an unknown format");
        // The flags byte comes before the four strings and the CIDR list that end the
        // encoding; flags beyond the three known are refused.
        let mut tail = Vec::new();
        for s in [&e.namespace_id, &e.path, &e.entity_id, &e.role] {
            crate::codec::put_str(&mut tail, s);
        }
        crate::codec::put_len(&mut tail, e.bound_cidrs.len());
        for c in &e.bound_cidrs {
            crate::codec::put_str(&mut tail, c);
        }
        assert!(b.ends_with(&tail));
        let flags = b.len() - tail.len() - 1;
        assert_eq!(b[flags], 0b110);
        let mut bad = b.clone();
        bad[flags] = 0b1110;
        assert_eq!(decode_batch(&bad), None, "an unknown flag");
        let mut none = e.clone();
        (none.parent, none.renewable, none.batch) = (None, true, false);
        assert_eq!(decode_batch(&encode_batch(&none)), Some(none));
    }

    #[test]
    fn a_logins_auth_block_moved_out_of_its_entry_is_the_one_built_from_a_copy() {
        for e in [
            full_entry(),
            TokenEntry {
                meta: BTreeMap::new(),
                expire_time: 0,
                batch: false,
                accessor: "acc".into(),
                ..full_entry()
            },
        ] {
            let now = util::now_secs();
            let copied = serde_json::to_value(auth_json(&e, "b.tok", now)).unwrap();
            let moved = serde_json::to_value(login_auth(e, "b.tok".into())).unwrap();
            assert_eq!(moved, copied);
        }
    }

    #[tokio::test]
    async fn a_batch_token_issued_as_json_before_the_compact_form_still_authenticates() {
        let core = Core::for_tests();
        core.initialize(1, 1, Some("root".into())).await.unwrap();
        let issued = core
            .root_request(
                "",
                Operation::Update,
                "auth/token/create",
                json!({"type": "batch", "policies": ["team-a"], "ttl": "1h"}),
            )
            .await
            .unwrap()
            .auth
            .unwrap()
            .client_token;
        let active = core.active().unwrap();
        let (entry, _) = resolve(&core, &active, &issued).await.unwrap().unwrap();
        assert!(entry.batch);
        assert_eq!(entry.policies, ["default", "team-a"]);
        // The same entry sealed as the JSON batch tokens used to hold.
        let old = core
            .barrier
            .seal_blob(BATCH_AAD, &util::json_bytes(&*entry).unwrap())
            .unwrap();
        let old = format!(
            "b.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(old)
        );
        assert!(
            issued.len() < old.len() / 2,
            "{} vs {}",
            issued.len(),
            old.len()
        );
        let (from_old, _) = resolve(&core, &active, &old).await.unwrap().unwrap();
        assert_eq!(from_old, entry);
        assert!(lookup_ok(&core, "", &old).await && lookup_ok(&core, "", &issued).await);
        // Sealed garbage is no token.
        let junk = core.barrier.seal_blob(BATCH_AAD, b"\x01junk").unwrap();
        let junk = format!(
            "b.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(junk)
        );
        assert!(resolve(&core, &active, &junk).await.unwrap().is_none());
    }
}
