//! KV version 2: versioned secrets with metadata, soft delete, destroy, check-and-set.
//!
//! Layout inside the mount view:
//! - `config` → [`KvConfig`],
//! - `metadata/<path>` → [`KeyMeta`] (versions' times, flags, settings) and the current
//!   version's data, so that reading the current version is one storage read,
//! - `versions/<sha256(path)>/<version>` → the data of every other version (a version moves
//!   here when a newer one is written). Records written before the current version moved
//!   into the metadata keep every version here, and are read that way until rewritten.
//!
//! Every write is one storage transaction that checks the metadata entry has not changed
//! since it was read (retrying on a concurrent write), so versions are never lost or
//! duplicated, and `cas` is exact even across nodes sharing one database.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use strongroom_barrier::secret::SecretText;
use strongroom_barrier::BarrierOp;

use crate::error::{CoreError, Result};
use crate::route::Fields;
use crate::util::{self, now_nanos, rfc3339_nanos};
use crate::view::{TxnError, View};
use crate::{Body, Operation, Response};

const DEFAULT_MAX_VERSIONS: usize = 10;
const MAX_RETRIES: usize = 64;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct KvConfig {
    #[serde(default)]
    max_versions: u32,
    #[serde(default)]
    cas_required: bool,
    #[serde(default)]
    delete_version_after: i64,
    #[serde(default)]
    metadata_cas_required: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct VersionMeta {
    created_time: i128,
    #[serde(default)]
    deletion_time: i128,
    #[serde(default)]
    destroyed: bool,
}

impl VersionMeta {
    fn is_deleted(&self, now: i128) -> bool {
        self.deletion_time != 0 && self.deletion_time <= now
    }
    fn to_json(&self) -> Value {
        json!({
            "created_time": rfc3339_nanos(self.created_time),
            "deletion_time": if self.deletion_time == 0 { String::new() } else { rfc3339_nanos(self.deletion_time) },
            "destroyed": self.destroyed,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyMeta {
    versions: BTreeMap<u64, VersionMeta>,
    current_version: u64,
    oldest_version: u64,
    #[serde(default)]
    max_versions: u32,
    #[serde(default)]
    cas_required: bool,
    #[serde(default)]
    delete_version_after: i64,
    #[serde(default)]
    custom_metadata: Option<BTreeMap<String, String>>,
    created_time: i128,
    updated_time: i128,
    #[serde(default)]
    metadata_version: u64,
    #[serde(default)]
    metadata_cas_required: bool,
    /// The current version's data. Absent in records written before it moved here, after
    /// the current version is destroyed, and for keys with no live version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    latest: Option<Latest>,
    /// The read response for `latest`, built on first use ([`KeyMeta::response_text`]).
    #[serde(skip)]
    response: ResponseText,
}

/// A read response kept with a parsed record: its text holds the secret, so it is
/// zeroized, shown redacted, and not carried into a clone (which may then change).
#[derive(Default)]
struct ResponseText(std::sync::OnceLock<std::sync::Arc<SecretText>>);

impl Clone for ResponseText {
    fn clone(&self) -> Self {
        ResponseText::default()
    }
}

impl std::fmt::Debug for ResponseText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A version's data kept inside the metadata record: its JSON text, zeroized when the
/// record (which the barrier may keep parsed in its cache) is dropped.
#[derive(Clone, Serialize, Deserialize)]
struct Latest {
    version: u64,
    #[serde(with = "zeroizing_string")]
    data: SecretText,
}

impl std::fmt::Debug for Latest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Latest")
            .field("version", &self.version)
            .field("data", &"<redacted>")
            .finish()
    }
}

mod zeroizing_string {
    use serde::{Deserialize, Deserializer, Serializer};
    use strongroom_barrier::secret::SecretText;

    pub fn serialize<S: Serializer>(v: &SecretText, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretText, D::Error> {
        String::deserialize(d).map(SecretText::new)
    }
}

impl KeyMeta {
    fn new(now: i128) -> KeyMeta {
        KeyMeta {
            versions: BTreeMap::new(),
            current_version: 0,
            oldest_version: 0,
            max_versions: 0,
            cas_required: false,
            delete_version_after: 0,
            custom_metadata: None,
            created_time: now,
            updated_time: now,
            metadata_version: 0,
            metadata_cas_required: false,
            latest: None,
            response: ResponseText::default(),
        }
    }

    /// The stored form ([`KeyMeta::encode`]). The current version's data is kept only while
    /// that version still exists and is not destroyed.
    fn stored_form(&mut self) -> Result<Vec<u8>> {
        if let Some(l) = &self.latest {
            if self.versions.get(&l.version).is_none_or(|m| m.destroyed) {
                self.latest = None;
            }
        }
        Ok(self.encode())
    }

    /// The binary record: [`META_BINARY`], then the counters as varints, a flags byte,
    /// times as 16-byte integers, each version's times and flag, the custom metadata and
    /// the current version's data as length-prefixed strings. Records written as JSON
    /// before it (which start with `{`) are still read ([`parse_meta`]).
    fn encode(&self) -> Vec<u8> {
        use crate::codec::{put_i128, put_len, put_map, put_str, put_varint, zigzag};
        // Sized up front: the buffer may hold secret data, and a reallocation would leave
        // a copy behind in freed memory.
        let custom: usize = self
            .custom_metadata
            .as_ref()
            .map_or(0, |m| m.iter().map(|(k, v)| k.len() + v.len() + 20).sum());
        let latest = self.latest.as_ref().map_or(0, |l| l.data.len() + 20);
        let mut b = Vec::with_capacity(96 + self.versions.len() * 44 + custom + latest);
        b.push(META_BINARY);
        put_varint(&mut b, self.current_version);
        put_varint(&mut b, self.oldest_version);
        put_varint(&mut b, self.metadata_version);
        put_varint(&mut b, u64::from(self.max_versions));
        put_varint(&mut b, zigzag(self.delete_version_after));
        b.push(
            u8::from(self.cas_required)
                | u8::from(self.metadata_cas_required) << 1
                | u8::from(self.custom_metadata.is_some()) << 2
                | u8::from(self.latest.is_some()) << 3,
        );
        put_i128(&mut b, self.created_time);
        put_i128(&mut b, self.updated_time);
        put_len(&mut b, self.versions.len());
        for (v, m) in &self.versions {
            put_varint(&mut b, *v);
            put_i128(&mut b, m.created_time);
            put_i128(&mut b, m.deletion_time);
            b.push(u8::from(m.destroyed));
        }
        if let Some(m) = &self.custom_metadata {
            put_map(&mut b, m);
        }
        if let Some(l) = &self.latest {
            put_varint(&mut b, l.version);
            put_str(&mut b, &l.data);
        }
        b
    }

    /// The record [`KeyMeta::encode`] wrote (without its first byte); `None` if `b` is
    /// not exactly one.
    fn decode(b: &[u8]) -> Option<KeyMeta> {
        use crate::codec::{unzigzag, Reader};
        let mut r = Reader::new(b);
        let current_version = r.varint()?;
        let oldest_version = r.varint()?;
        let metadata_version = r.varint()?;
        let max_versions = u32::try_from(r.varint()?).ok()?;
        let delete_version_after = unzigzag(r.varint()?);
        let flags = r.byte()?;
        if flags >> 4 != 0 {
            return None;
        }
        let created_time = r.i128()?;
        let updated_time = r.i128()?;
        let mut versions = BTreeMap::new();
        for _ in 0..r.len()? {
            let v = r.varint()?;
            let m = VersionMeta {
                created_time: r.i128()?,
                deletion_time: r.i128()?,
                destroyed: match r.byte()? {
                    0 => false,
                    1 => true,
                    _ => return None,
                },
            };
            versions.insert(v, m);
        }
        let custom_metadata = if flags & 4 != 0 { Some(r.map()?) } else { None };
        let latest = if flags & 8 != 0 {
            let version = r.varint()?;
            let n = r.len()?;
            let data = std::str::from_utf8(r.take(n)?).ok()?;
            Some(Latest {
                version,
                data: SecretText::new(data.to_owned()),
            })
        } else {
            None
        };
        r.is_done().then_some(KeyMeta {
            versions,
            current_version,
            oldest_version,
            max_versions,
            cas_required: flags & 1 != 0,
            delete_version_after,
            custom_metadata,
            created_time,
            updated_time,
            metadata_version,
            metadata_cas_required: flags & 2 != 0,
            latest,
            response: ResponseText::default(),
        })
    }

    /// The data of version `v` if this record holds it.
    fn inline_data(&self, v: u64) -> Result<Option<Value>> {
        match &self.latest {
            Some(l) if l.version == v => serde_json::from_str(&l.data)
                .map(Some)
                .map_err(|e| CoreError::Internal(format!("corrupt kv version data: {e}"))),
            _ => Ok(None),
        }
    }

    /// The data of a read of version `v`, `{"data":…,"metadata":…}`, as text, if this
    /// record holds that version's data: the stored JSON of the data verbatim (what
    /// parsing and serializing it again would give) and the version's metadata. Built
    /// once per parsed record, which the barrier keeps for a hot key.
    fn response_text(&self, v: u64) -> Result<Option<std::sync::Arc<SecretText>>> {
        let Some(l) = self.latest.as_ref().filter(|l| l.version == v) else {
            return Ok(None);
        };
        if let Some(t) = self.response.0.get() {
            return Ok(Some(t.clone()));
        }
        let mut text = SecretText::new(String::with_capacity(l.data.len() + 192));
        text.push_str("{\"data\":");
        text.push_str(l.data.as_str());
        text.push_str(",\"metadata\":");
        self.write_version_json(v, &mut text)?;
        text.push('}');
        let text = std::sync::Arc::new(text);
        Ok(Some(self.response.0.get_or_init(|| text).clone()))
    }

    fn to_json(&self) -> Value {
        let versions: Map<String, Value> = self
            .versions
            .iter()
            .map(|(v, m)| (v.to_string(), m.to_json()))
            .collect();
        json!({
            "cas_required": self.cas_required,
            "created_time": rfc3339_nanos(self.created_time),
            "current_version": self.current_version,
            "current_metadata_version": self.metadata_version,
            "custom_metadata": self.custom_metadata,
            "delete_version_after": util::format_duration(self.delete_version_after),
            "max_versions": self.max_versions,
            "metadata_cas_required": self.metadata_cas_required,
            "oldest_version": self.oldest_version,
            "updated_time": rfc3339_nanos(self.updated_time),
            "versions": versions,
        })
    }

    /// [`KeyMeta::version_json`] as text, written directly: the bytes serializing that
    /// value gives (its keys in order), without building it. A cold read renders this once
    /// per record it reads.
    fn write_version_json(&self, v: u64, out: &mut String) -> Result<()> {
        // Pushed piece by piece rather than with `write!`: a cold read renders this once,
        // and the formatting machinery is most of what it would cost.
        let m = self.versions.get(&v);
        out.push('{');
        if let Some(m) = m {
            out.push_str("\"created_time\":\"");
            util::push_rfc3339_nanos(out, m.created_time);
            out.push_str("\",");
        }
        out.push_str("\"custom_metadata\":");
        match &self.custom_metadata {
            None => out.push_str("null"),
            Some(c) => out.push_str(
                &serde_json::to_string(c).map_err(|e| CoreError::Internal(e.to_string()))?,
            ),
        }
        if let Some(m) = m {
            out.push_str(",\"deletion_time\":\"");
            if m.deletion_time != 0 {
                util::push_rfc3339_nanos(out, m.deletion_time);
            }
            out.push_str(if m.destroyed {
                "\",\"destroyed\":true"
            } else {
                "\",\"destroyed\":false"
            });
        }
        out.push_str(",\"version\":");
        util::push_u64(out, v);
        out.push('}');
        Ok(())
    }

    fn version_json(&self, v: u64) -> Value {
        let mut j = match self.versions.get(&v).map(VersionMeta::to_json) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        j.insert("version".into(), Value::from(v));
        let custom = match &self.custom_metadata {
            None => Value::Null,
            Some(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            ),
        };
        j.insert("custom_metadata".into(), custom);
        Value::Object(j)
    }

    /// Drop the oldest versions beyond the limit; returns the dropped version numbers.
    fn trim(&mut self, max: usize) -> Vec<u64> {
        let mut dropped = Vec::new();
        while self.versions.len() > max {
            let Some((&oldest, _)) = self.versions.iter().next() else {
                break;
            };
            self.versions.remove(&oldest);
            dropped.push(oldest);
        }
        if !dropped.is_empty() {
            self.oldest_version = self
                .versions
                .keys()
                .next()
                .copied()
                .unwrap_or(self.current_version);
        }
        dropped
    }
}

fn path_hash(path: &str) -> String {
    util::hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, path.as_bytes()).as_ref())
}

fn version_key(path: &str, v: u64) -> String {
    format!("versions/{}/{v:020}", path_hash(path))
}

fn meta_key(path: &str) -> String {
    crate::util::concat(&["metadata/", path])
}

fn validate_key(path: &str) -> Result<()> {
    if path.is_empty() {
        return Err(CoreError::bad("missing secret path"));
    }
    if path.ends_with('/')
        || path
            .split('/')
            .any(|s| s == ".." || s == "." || s.is_empty())
    {
        return Err(CoreError::bad(format!("invalid secret path {path:?}")));
    }
    Ok(())
}

async fn load_config(view: &View) -> Result<KvConfig> {
    Ok(view.get_json("config").await?.unwrap_or_default())
}

fn effective_max(cfg: &KvConfig, meta: &KeyMeta) -> usize {
    if meta.max_versions > 0 {
        meta.max_versions as usize
    } else if cfg.max_versions > 0 {
        cfg.max_versions as usize
    } else {
        DEFAULT_MAX_VERSIONS
    }
}

/// The first byte of a binary metadata record ([`KeyMeta::encode`]); a JSON one starts
/// with `{`.
const META_BINARY: u8 = 1;

/// Whether `b` reads as a metadata record (the fuzzers' entry).
pub(crate) fn parses_as_meta(b: &[u8]) -> bool {
    parse_meta(b).is_ok()
}

fn parse_meta(b: &[u8]) -> Result<KeyMeta> {
    match b.split_first() {
        Some((&META_BINARY, rest)) => KeyMeta::decode(rest)
            .ok_or_else(|| CoreError::Internal("corrupt kv metadata record".into())),
        _ => serde_json::from_slice(b)
            .map_err(|e| CoreError::Internal(format!("corrupt kv metadata: {e}"))),
    }
}

async fn read_meta(view: &View, path: &str) -> Result<Option<(KeyMeta, Vec<u8>)>> {
    match view.get_versioned(&meta_key(path)).await? {
        None => Ok(None),
        Some((plain, ver)) => Ok(Some((parse_meta(&plain)?, ver))),
    }
}

pub async fn exists(view: &View, path: &str) -> Result<Option<bool>> {
    let (head, rest) = path.split_once('/').unwrap_or((path, ""));
    match head {
        "data" | "metadata" if !rest.is_empty() => {
            Ok(Some(view.get(&meta_key(rest)).await?.is_some()))
        }
        _ => Ok(None),
    }
}

/// `options.cas`, read as OpenBao reads it (`mapstructure.WeakDecode` into an `int`, then
/// compared as `uint64`): `null` and `""` are 0, a boolean 0 or 1, a number only if integral (`1.0` is not), a
/// string parsed as Go's `ParseInt(s, 0, 64)`; anything else is "error parsing
/// check-and-set parameter". A negative value wraps, so it never matches a version and is
/// refused as a mismatch, as there.
fn cas_option(fields: &Fields<'_>) -> Result<Option<u64>> {
    let Some(opts) = fields.map("options") else {
        return Ok(None);
    };
    let Some(cas) = opts.get("cas") else {
        return Ok(None);
    };
    let parsed = match cas {
        Value::Null => Some(0),
        Value::Bool(b) => Some(i64::from(*b)),
        // a JSON number reaches OpenBao as `json.Number`: only an integer's text decodes
        Value::Number(n) => n.as_i64(),
        Value::String(s) if s.is_empty() => Some(0),
        Value::String(s) => go_parse_int(s),
        Value::Array(_) | Value::Object(_) => None,
    };
    parsed
        .map(|c| Some(c as u64))
        .ok_or_else(|| CoreError::bad("error parsing check-and-set parameter"))
}

/// Go's `strconv.ParseInt(s, 0, 64)`: an optional sign, then `0x`/`0o`/`0b` or a leading
/// `0` (octal) choose the base; no spaces.
fn go_parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, s.get(1..)?),
        Some(b'+') => (false, s.get(1..)?),
        _ => (false, s),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(r) = lower.strip_prefix("0x") {
        (16, r.to_owned())
    } else if let Some(r) = lower.strip_prefix("0o") {
        (8, r.to_owned())
    } else if let Some(r) = lower.strip_prefix("0b") {
        (2, r.to_owned())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower.get(1..)?.to_owned())
    } else {
        (10, lower)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(&body, radix).ok()?;
    i64::try_from(if neg { -magnitude } else { magnitude }).ok()
}

fn versions_param(fields: &Fields<'_>) -> Result<Vec<u64>> {
    let items = fields
        .int_list("versions")
        .ok_or_else(|| CoreError::bad("no version number provided"))?;
    let out: Vec<u64> = items
        .iter()
        .map(|n| u64::try_from(*n).ok().filter(|n| *n > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| CoreError::bad("versions must be positive integers"))?;
    if out.is_empty() {
        return Err(CoreError::bad("no version number provided"));
    }
    Ok(out)
}

/// Read-modify-write of one key's metadata (and version entries) in one checked transaction.
/// `f` returns the extra ops and the response; it may be called again after a conflict.
async fn update_key<F>(view: &View, path: &str, create: bool, mut f: F) -> Result<Response>
where
    F: FnMut(&mut KeyMeta, bool) -> Result<Option<(Vec<BarrierOp>, Response)>>,
{
    for _ in 0..MAX_RETRIES {
        let current = read_meta(view, path).await?;
        let existed = current.is_some();
        let (mut meta, ver) = match current {
            Some((m, v)) => (m, Some(v)),
            None if create => (KeyMeta::new(now_nanos()), None),
            None => return Err(CoreError::NotFound(String::new())),
        };
        let Some((mut ops, resp)) = f(&mut meta, existed)? else {
            return Ok(Response::none());
        };
        let mk = meta_key(path);
        ops.insert(0, BarrierOp::Check(mk.clone(), ver));
        ops.push(BarrierOp::Put(mk, meta.stored_form()?));
        match view.transact(ops).await {
            Ok(()) => return Ok(resp),
            Err(TxnError::Conflict) => continue,
            Err(TxnError::Other(e)) => return Err(e),
        }
    }
    Err(CoreError::TooManyRequests(format!(
        "too many concurrent writes to {path:?}; retry"
    )))
}

fn merge_patch(target: &mut Value, patch: &Value) {
    if let Value::Object(p) = patch {
        if !target.is_object() {
            *target = Value::Object(Map::new());
        }
        let t = target.as_object_mut().expect("object");
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    } else {
        *target = patch.clone();
    }
}

async fn write_data(view: &View, path: &str, fields: &Fields<'_>, patch: bool) -> Result<Response> {
    validate_key(path)?;
    let body = match fields.map("data") {
        Some(m) => Value::Object(m.clone()),
        None => return Err(CoreError::bad("no data provided")),
    };
    let cas = cas_option(fields)?;
    let cfg = load_config(view).await?;
    let now_prev = if patch {
        // The base version is read inside the loop below (it may change on retry).
        None
    } else {
        Some(body.clone())
    };
    for _ in 0..MAX_RETRIES {
        let current = read_meta(view, path).await?;
        let (mut meta, ver) = match current {
            Some((m, v)) => (m, Some(v)),
            None if patch => return Err(CoreError::NotFound(String::new())),
            None => (KeyMeta::new(0), None),
        };
        let now = now_nanos();
        if meta.created_time == 0 {
            meta.created_time = now;
        }
        if (cfg.cas_required || meta.cas_required) && cas.is_none() {
            return Err(CoreError::bad(
                "check-and-set parameter required for this call",
            ));
        }
        if let Some(c) = cas {
            if c != meta.current_version {
                return Err(CoreError::bad(
                    "check-and-set parameter did not match the current version",
                ));
            }
        }
        let new_data = match &now_prev {
            Some(d) => d.clone(),
            None => {
                let cur = meta.current_version;
                let alive = meta
                    .versions
                    .get(&cur)
                    .is_some_and(|m| !m.destroyed && !m.is_deleted(now));
                if !alive {
                    return Err(CoreError::NotFound(String::new()));
                }
                let stored = match meta.inline_data(cur)? {
                    Some(d) => Some(d),
                    None => view.get_json::<Value>(&version_key(path, cur)).await?,
                };
                let Some(mut base) = stored else {
                    return Err(CoreError::NotFound(String::new()));
                };
                merge_patch(&mut base, &body);
                base
            }
        };
        let v = meta.current_version + 1;
        let deletion_time = auto_deletion(&cfg, &meta, now);
        meta.versions.insert(
            v,
            VersionMeta {
                created_time: now,
                deletion_time,
                destroyed: false,
            },
        );
        meta.current_version = v;
        meta.updated_time = now;
        let dropped = meta.trim(effective_max(&cfg, &meta));
        let mk = meta_key(path);
        let mut ops = vec![BarrierOp::Check(mk.clone(), ver)];
        // The version this one supersedes moves from the metadata record to its own key.
        if let Some(prev) = meta.latest.take() {
            if meta.versions.contains_key(&prev.version) {
                ops.push(BarrierOp::Put(
                    version_key(path, prev.version),
                    prev.data.as_bytes().to_vec(),
                ));
            }
        }
        for d in dropped {
            ops.push(BarrierOp::Delete(version_key(path, d)));
        }
        meta.latest = Some(Latest {
            version: v,
            data: SecretText::new(
                serde_json::to_string(&new_data).map_err(|e| CoreError::Internal(e.to_string()))?,
            ),
        });
        ops.push(BarrierOp::Put(mk, meta.stored_form()?));
        match view.transact(ops).await {
            Ok(()) => return Ok(Response::data(meta.version_json(v))),
            Err(TxnError::Conflict) => continue,
            Err(TxnError::Other(e)) => return Err(e),
        }
    }
    Err(CoreError::TooManyRequests(format!(
        "too many concurrent writes to {path:?}; retry"
    )))
}

/// The metadata for a read: parsed once while its entry stays cached.
async fn read_meta_shared(view: &View, path: &str) -> Result<Option<std::sync::Arc<KeyMeta>>> {
    view.get_decoded(&meta_key(path), |b| {
        parse_meta(b).map_err(|e| e.to_string())
    })
    .await
}

/// Whether a gated read (`claims`: the caller's pipeline claims in a mount that releases
/// by scope) may see the key's data. Out of scope answers as absent: a job learns
/// nothing about secrets it may not have.
fn gate_allows(meta: &KeyMeta, claims: Option<&BTreeMap<String, String>>) -> bool {
    let Some(claims) = claims else {
        return true;
    };
    let empty = BTreeMap::new();
    let scope = meta.custom_metadata.as_ref().unwrap_or(&empty);
    crate::release::released(
        scope,
        &crate::release::JobClaims::from_metadata(claims),
        util::now_secs(),
    )
}

async fn read_data(
    view: &View,
    path: &str,
    fields: &Fields<'_>,
    claims: Option<&BTreeMap<String, String>>,
) -> Result<Response> {
    if validate_key(path).is_err() {
        // No secret can be stored under such a key: OpenBao answers a plain 404.
        return Err(CoreError::NotFound(String::new()));
    }
    let Some(meta) = read_meta_shared(view, path).await? else {
        return Err(CoreError::NotFound(String::new()));
    };
    if !gate_allows(&meta, claims) {
        return Err(CoreError::NotFound(String::new()));
    }
    let version = match fields.int("version") {
        None | Some(0) => meta.current_version,
        Some(n) => u64::try_from(n)
            .map_err(|_| CoreError::bad("version must be a non-negative integer"))?,
    };
    let Some(vm) = meta.versions.get(&version) else {
        return Err(CoreError::NotFound(String::new()));
    };
    let now = now_nanos();
    if vm.destroyed || vm.is_deleted(now) {
        let mut r =
            Response::data(json!({ "data": Value::Null, "metadata": meta.version_json(version) }));
        r.status = Some(404);
        return Ok(r);
    }
    if let Some(text) = meta.response_text(version)? {
        return Ok(Response::data_text(text));
    }
    // Any other version (or any, in a record written before the current one moved into
    // it) has a key of its own.
    let d: Value = view
        .get_json(&version_key(path, version))
        .await?
        .unwrap_or(Value::Null);
    // Built by moving `d` in: `json!` would serialize (deep-copy) it.
    let mut out = Map::new();
    out.insert("data".into(), d);
    out.insert("metadata".into(), meta.version_json(version));
    Ok(Response::data(Value::Object(out)))
}

fn subkeys_of(v: &Value, depth: i64, level: i64) -> Value {
    match v {
        Value::Object(m) if depth == 0 || level < depth => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    (
                        k.clone(),
                        if x.is_object() {
                            subkeys_of(x, depth, level + 1)
                        } else {
                            Value::Null
                        },
                    )
                })
                .collect(),
        ),
        _ => Value::Null,
    }
}

async fn subkeys(
    view: &View,
    path: &str,
    fields: &Fields<'_>,
    claims: Option<&BTreeMap<String, String>>,
) -> Result<Response> {
    let mut r = read_data(view, path, fields, claims).await?;
    let depth = fields.int("depth").unwrap_or(0);
    if depth < 0 {
        return Err(CoreError::bad("depth must be a non-negative integer"));
    }
    if let Some(Value::Object(body)) = r.take_data() {
        let sub = body
            .get("data")
            .map(|d| {
                if d.is_null() {
                    Value::Null
                } else {
                    subkeys_of(d, depth, 0)
                }
            })
            .unwrap_or(Value::Null);
        r.body = Body::Data(
            json!({ "subkeys": sub, "metadata": body.get("metadata").cloned().unwrap_or(Value::Null) }),
        );
    }
    Ok(r)
}

/// A non-negative integer field that fits `T` (a count or version), or a 400 naming it.
fn count<T: TryFrom<i64>>(fields: &Fields<'_>, name: &str) -> Result<Option<T>> {
    fields
        .int(name)
        .map(|n| {
            T::try_from(n)
                .map_err(|_| CoreError::bad(format!("{name} must be a non-negative integer")))
        })
        .transpose()
}

/// The version settings a mount's config and a key's metadata share, set from the fields
/// the request gave.
fn apply_version_settings(
    fields: &Fields<'_>,
    max_versions: &mut u32,
    cas_required: &mut bool,
    metadata_cas_required: &mut bool,
    delete_version_after: &mut i64,
) -> Result<()> {
    if let Some(n) = count::<u32>(fields, "max_versions")? {
        *max_versions = n;
    }
    if let Some(b) = fields.bool("cas_required") {
        *cas_required = b;
    }
    if let Some(b) = fields.bool("metadata_cas_required") {
        *metadata_cas_required = b;
    }
    if let Some(d) = fields.duration("delete_version_after") {
        *delete_version_after = d;
    }
    Ok(())
}

fn apply_metadata_fields(meta: &mut KeyMeta, fields: &Fields<'_>, patch: bool) -> Result<()> {
    apply_version_settings(
        fields,
        &mut meta.max_versions,
        &mut meta.cas_required,
        &mut meta.metadata_cas_required,
        &mut meta.delete_version_after,
    )?;
    // Null clears the custom metadata; a map replaces it (or, in a patch, merges into it).
    if let Some(v) = fields.value("custom_metadata") {
        let m = match v {
            Value::Null => None,
            Value::Object(m) => {
                if m.len() > 64 {
                    return Err(CoreError::bad("custom_metadata may hold at most 64 keys"));
                }
                let mut out: BTreeMap<String, String> = if patch {
                    meta.custom_metadata.clone().unwrap_or_default()
                } else {
                    BTreeMap::new()
                };
                for (ck, cv) in m {
                    if ck.len() > 128 {
                        return Err(CoreError::bad(
                            "custom_metadata keys must be at most 128 bytes",
                        ));
                    }
                    match cv {
                        Value::String(s) if s.len() <= 512 => {
                            out.insert(ck.clone(), s.clone());
                        }
                        Value::Null if patch => {
                            out.remove(ck);
                        }
                        _ => {
                            return Err(CoreError::bad(
                                "custom_metadata values must be strings of at most 512 bytes",
                            ))
                        }
                    }
                }
                Some(out)
            }
            _ => return Err(CoreError::bad("custom_metadata must be a map of strings")),
        };
        meta.custom_metadata = m;
    }
    Ok(())
}

async fn write_metadata(
    view: &View,
    path: &str,
    fields: &Fields<'_>,
    patch: bool,
) -> Result<Response> {
    validate_key(path)?;
    let cfg = load_config(view).await?;
    let mcas = count::<u64>(fields, "metadata_cas")?;
    update_key(view, path, !patch, |meta, existed| {
        if (cfg.metadata_cas_required || meta.metadata_cas_required) && mcas.is_none() {
            return Err(CoreError::bad(
                "metadata check-and-set parameter required for this call",
            ));
        }
        if let Some(c) = mcas {
            let current = if existed { meta.metadata_version } else { 0 };
            if c != current {
                return Err(CoreError::bad(
                    "metadata check-and-set parameter did not match the current metadata version",
                ));
            }
        }
        apply_metadata_fields(meta, fields, patch)?;
        meta.metadata_version += 1;
        meta.updated_time = now_nanos();
        let dropped = meta.trim(effective_max(&cfg, meta));
        let ops = dropped
            .into_iter()
            .map(|d| BarrierOp::Delete(version_key(path, d)))
            .collect();
        Ok(Some((ops, Response::none())))
    })
    .await
}

/// When a version written (or undeleted) at `now` is to be deleted by itself: after the
/// key's `delete_version_after`, else the mount's; 0 (never) if neither is positive.
fn auto_deletion(cfg: &KvConfig, meta: &KeyMeta, now: i128) -> i128 {
    let dva = if meta.delete_version_after != 0 {
        meta.delete_version_after
    } else {
        cfg.delete_version_after
    };
    if dva > 0 {
        now + dva as i128 * 1_000_000_000
    } else {
        0
    }
}

enum VersionAction {
    Delete,
    Undelete,
    Destroy,
}

async fn version_action(
    view: &View,
    path: &str,
    versions: Vec<u64>,
    action: VersionAction,
) -> Result<Response> {
    validate_key(path)?;
    let cfg = match action {
        VersionAction::Undelete => Some(load_config(view).await?),
        _ => None,
    };
    let r = update_key(view, path, false, |meta, _| {
        let now = now_nanos();
        // An undeleted version is deleted again by itself after `delete_version_after`,
        // counted from the undelete, as in OpenBao.
        let rearm = cfg.as_ref().map_or(0, |c| auto_deletion(c, meta, now));
        let mut ops = Vec::new();
        let mut changed = false;
        for v in &versions {
            let Some(vm) = meta.versions.get_mut(v) else {
                continue;
            };
            match action {
                VersionAction::Delete if !vm.destroyed && !vm.is_deleted(now) => {
                    vm.deletion_time = now;
                    changed = true;
                }
                VersionAction::Undelete if !vm.destroyed && vm.deletion_time != 0 => {
                    vm.deletion_time = rearm;
                    changed = true;
                }
                VersionAction::Destroy if !vm.destroyed => {
                    vm.destroyed = true;
                    ops.push(BarrierOp::Delete(version_key(path, *v)));
                    changed = true;
                }
                _ => {}
            }
        }
        if !changed {
            return Ok(None);
        }
        Ok(Some((ops, Response::none())))
    })
    .await;
    match r {
        Err(CoreError::NotFound(_)) => Ok(Response::none()),
        other => other,
    }
}

async fn delete_all(view: &View, path: &str) -> Result<Response> {
    // The mount's root holds no secret: nothing to delete (OpenBao: 204).
    if path.is_empty() {
        return Ok(Response::none());
    }
    // Deliberately stricter than OpenBao, which deletes `x` for `x/`: a policy granting
    // `metadata/x/*` must not delete `x`.
    validate_key(path)?;
    let Some((meta, ver)) = read_meta(view, path).await? else {
        return Ok(Response::none());
    };
    let mk = meta_key(path);
    let mut ops = vec![
        BarrierOp::Check(mk.clone(), Some(ver)),
        BarrierOp::Delete(mk),
    ];
    ops.push(BarrierOp::DeletePrefix(format!(
        "versions/{}/",
        path_hash(path)
    )));
    let _ = meta;
    match view.transact(ops).await {
        Ok(()) | Err(TxnError::Conflict) => Ok(Response::none()),
        Err(TxnError::Other(e)) => Err(e),
    }
}

async fn list_metadata(
    view: &View,
    path: &str,
    fields: &Fields<'_>,
    detailed: bool,
) -> Result<Response> {
    let (after, limit) = super::page_params(fields);
    let prefix = if path.is_empty() || path.ends_with('/') {
        format!("metadata/{path}")
    } else {
        format!("metadata/{path}/")
    };
    let keys = view.list(&prefix, after.as_deref(), limit).await?;
    if keys.is_empty() {
        return Err(CoreError::NotFound(String::new()));
    }
    if !detailed {
        return Ok(Response::list(keys));
    }
    let mut info = Map::new();
    for k in &keys {
        if k.ends_with('/') {
            continue;
        }
        if let Some(m) = view.get(&format!("{prefix}{k}")).await? {
            info.insert(k.clone(), parse_meta(&m)?.to_json());
        }
    }
    Ok(Response::data(json!({ "keys": keys, "key_info": info })))
}

async fn config(view: &View, op: Operation, fields: &Fields<'_>) -> Result<Response> {
    match op {
        Operation::Read => {
            let c = load_config(view).await?;
            Ok(Response::data(json!({
                "cas_required": c.cas_required,
                "delete_version_after": util::format_duration(c.delete_version_after),
                "max_versions": c.max_versions,
                "metadata_cas_required": c.metadata_cas_required,
            })))
        }
        Operation::Create | Operation::Update => {
            let mut c = load_config(view).await?;
            apply_version_settings(
                fields,
                &mut c.max_versions,
                &mut c.cas_required,
                &mut c.metadata_cas_required,
                &mut c.delete_version_after,
            )?;
            view.put_json("config", &c).await?;
            Ok(Response::none())
        }
        _ => Err(CoreError::UnsupportedOperation),
    }
}

pub async fn handle(
    view: &View,
    op: Operation,
    path: &str,
    fields: &Fields<'_>,
    claims: Option<&BTreeMap<String, String>>,
) -> Result<Response> {
    let (head, rest) = path.split_once('/').unwrap_or((path, ""));
    let write = matches!(op, Operation::Create | Operation::Update);
    match (head, op) {
        ("config", _) if rest.is_empty() => config(view, op, fields).await,
        ("data", Operation::Read) => read_data(view, rest, fields, claims).await,
        ("data", _) if write => write_data(view, rest, fields, false).await,
        ("data", Operation::Patch) => write_data(view, rest, fields, true).await,
        ("data", Operation::Delete) => {
            if rest.is_empty() {
                return Ok(Response::none());
            }
            // As for `metadata/x/`: OpenBao deletes `x` for `x/`, we refuse.
            validate_key(rest)?;
            let cur = read_meta(view, rest)
                .await?
                .map(|(m, _)| m.current_version)
                .unwrap_or(0);
            if cur == 0 {
                return Ok(Response::none());
            }
            version_action(view, rest, vec![cur], VersionAction::Delete).await
        }
        ("delete", _) if write => {
            version_action(view, rest, versions_param(fields)?, VersionAction::Delete).await
        }
        ("undelete", _) if write => {
            version_action(view, rest, versions_param(fields)?, VersionAction::Undelete).await
        }
        ("destroy", _) if write => {
            version_action(view, rest, versions_param(fields)?, VersionAction::Destroy).await
        }
        ("metadata", Operation::List) => list_metadata(view, rest, fields, false).await,
        ("metadata", Operation::Read) => {
            if validate_key(rest).is_err() {
                return Err(CoreError::NotFound(String::new()));
            }
            match read_meta_shared(view, rest).await? {
                Some(m) => Ok(Response::data(m.to_json())),
                None => Err(CoreError::NotFound(String::new())),
            }
        }
        ("metadata", _) if write => write_metadata(view, rest, fields, false).await,
        ("metadata", Operation::Patch) => write_metadata(view, rest, fields, true).await,
        ("metadata", Operation::Delete) => delete_all(view, rest).await,
        ("detailed-metadata", Operation::List) => list_metadata(view, rest, fields, true).await,
        ("subkeys", Operation::Read) => subkeys(view, rest, fields, claims).await,
        (
            "config" | "data" | "delete" | "undelete" | "destroy" | "metadata"
            | "detailed-metadata" | "subkeys",
            _,
        ) => Err(CoreError::UnsupportedOperation),
        _ => Err(CoreError::NotFound(format!(
            "no handler for route \"{path}\". route entry not found."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Core;

    async fn read(core: &Core, version: u64) -> Value {
        let r = core
            .root_request(
                "",
                Operation::Read,
                "secret/data/app",
                json!({"version": version}),
            )
            .await
            .unwrap();
        r.data_value().unwrap()["data"].clone()
    }

    #[tokio::test]
    async fn a_read_of_the_current_version_is_the_stored_text_of_what_a_value_would_give() {
        let core = Core::for_tests();
        core.initialize(1, 1, Some("root".into())).await.unwrap();
        let data = json!({"z": "1", "a": [1, 2.5, -3e-7, true, null], "u": "é\"\\\n✓/",
                          "n": {"big": 12345678901234567890u64}});
        let kv2 = json!({"type": "kv", "options": {"version": "2"}});
        core.root_ok(Operation::Update, "sys/mounts/secret", kv2)
            .await;
        core.root_ok(Operation::Update, "secret/data/app", json!({"data": data}))
            .await;
        let get = || core.root_ok(Operation::Read, "secret/data/app", json!({}));
        let (first, second, third) = (get().await, get().await, get().await);
        let Body::DataText(text) = second.body.clone() else {
            panic!("the current version is answered as text")
        };
        let value = second.data_value().unwrap();
        assert_eq!(value["data"], data);
        assert_eq!(value["metadata"]["version"], 1);
        // Byte for byte what serializing the value-built data gives.
        assert_eq!(serde_json::to_string(&value).unwrap(), text.as_str());
        let Body::DataText(first) = first.body else {
            panic!("text")
        };
        assert_eq!(first.as_str(), text.as_str());
        // Built once per cached record, and a change of the record gives a new one.
        let Body::DataText(third) = third.body else {
            panic!("text")
        };
        assert!(std::sync::Arc::ptr_eq(&text, &third));
        let team = json!({"custom_metadata": {"team": "a"}});
        core.root_ok(Operation::Update, "secret/metadata/app", team)
            .await;
        let changed = get().await.data_value().unwrap();
        assert_eq!(changed["metadata"]["custom_metadata"], json!({"team": "a"}));
        assert_eq!(changed["data"], data);
    }

    /// Everything a record holds, as the API shows it, with its current data.
    fn shown(m: &KeyMeta) -> (Value, Option<(u64, String)>) {
        let latest = m.latest.as_ref().map(|l| (l.version, l.data.to_string()));
        (m.to_json(), latest)
    }

    #[test]
    fn version_metadata_text_is_what_serializing_its_value_gives() {
        let mut m = KeyMeta::new(1_700_000_000_123_456_789);
        for v in 3..=6u64 {
            let vm = VersionMeta {
                created_time: i128::from(v) * 1_000_000_007 + 1_700_000_000_000_000_000,
                deletion_time: match v {
                    3 => 0,
                    4 => -1,
                    _ => i128::from(v) << 60,
                },
                destroyed: v == 5,
            };
            m.versions.insert(v, vm);
        }
        let custom = [
            None,
            Some(BTreeMap::new()),
            Some(BTreeMap::from([
                ("team".into(), "é\"✓\n\u{1}".into()),
                (String::new(), "x".repeat(300)),
            ])),
        ];
        for c in custom {
            m.custom_metadata = c;
            // 2 and 7 have no version record (trimmed, or never written).
            for v in 2..=7u64 {
                let mut text = String::new();
                m.write_version_json(v, &mut text).unwrap();
                let want = serde_json::to_string(&m.version_json(v)).unwrap();
                assert_eq!(text, want, "version {v}");
            }
        }
    }

    #[test]
    fn metadata_records_are_stored_binary_and_json_ones_still_read() {
        let mut m = KeyMeta::new(1_700_000_000_123_456_789);
        for v in 3..=12u64 {
            let destroyed = v == 4;
            let deletion_time = if v == 5 { -1 } else { i128::from(v) << 70 };
            let created_time = i128::from(v) * 1_000_000_007;
            let vm = VersionMeta {
                created_time,
                deletion_time,
                destroyed,
            };
            m.versions.insert(v, vm);
        }
        m.current_version = 12;
        m.oldest_version = 3;
        m.max_versions = u32::MAX;
        m.cas_required = true;
        m.delete_version_after = -7;
        m.metadata_version = 1 << 40;
        m.custom_metadata = Some(BTreeMap::from([
            ("team".into(), "é\"✓".into()),
            (String::new(), "x".repeat(300)),
        ]));
        m.latest = Some(Latest {
            version: 12,
            data: SecretText::new(r#"{"k":"v\n","n":[1,2.5]}"#.into()),
        });
        let bare = KeyMeta::new(0);
        for meta in [&m, &bare] {
            let bytes = meta.clone().stored_form().unwrap();
            assert_eq!(bytes[0], META_BINARY);
            assert_eq!(shown(&parse_meta(&bytes).unwrap()), shown(meta));
            // Records written as JSON by earlier versions read the same.
            let json = util::json_bytes(meta).unwrap();
            assert_eq!(shown(&parse_meta(&json).unwrap()), shown(meta));
            // Anything but exactly one record is refused, not misread.
            for cut in 1..bytes.len() {
                assert!(parse_meta(&bytes[..cut]).is_err(), "cut at {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(parse_meta(&longer).is_err());
            // An unknown flag too: the flags byte follows the five varints.
            let varint_len = |v: u64| {
                let mut b = Vec::new();
                crate::codec::put_varint(&mut b, v);
                b.len()
            };
            let at = 1 + [
                meta.current_version,
                meta.oldest_version,
                meta.metadata_version,
                u64::from(meta.max_versions),
                crate::codec::zigzag(meta.delete_version_after),
            ]
            .map(varint_len)
            .iter()
            .sum::<usize>();
            let mut flags = bytes.clone();
            flags[at] |= 0x10;
            assert!(parse_meta(&flags).is_err());
        }
        // The stored record drops the data of a destroyed current version.
        let mut gone = m.clone();
        gone.versions.get_mut(&12).unwrap().destroyed = true;
        let bytes = gone.stored_form().unwrap();
        assert!(parse_meta(&bytes).unwrap().latest.is_none());
    }

    #[tokio::test]
    async fn the_current_version_lives_in_the_metadata_record() {
        let core = Core::for_tests();
        core.initialize(1, 1, Some("root".into())).await.unwrap();
        core.root_request(
            "",
            Operation::Update,
            "sys/mounts/secret",
            json!({"type": "kv", "options": {"version": "2"}}),
        )
        .await
        .unwrap();
        let mount = core
            .active()
            .unwrap()
            .namespaces
            .root()
            .mounts()
            .get("secret/")
            .unwrap()
            .uuid
            .clone();
        let view = View::new(core.barrier.clone(), format!("logical/{mount}/"));
        for n in 1..=3 {
            let d = json!({"data": {"n": n.to_string()}});
            core.root_request("", Operation::Update, "secret/data/app", d)
                .await
                .unwrap();
        }
        let raw = view.get(&meta_key("app")).await.unwrap().unwrap();
        let meta = parse_meta(&raw).unwrap();
        assert_eq!(meta.latest.as_ref().map(|l| l.version), Some(3));
        assert!(
            !format!("{meta:?}").contains("\"n\""),
            "Debug shows no data"
        );
        // Superseded versions moved to their own keys; the current one has none.
        assert!(view.get(&version_key("app", 2)).await.unwrap().is_some());
        assert!(view.get(&version_key("app", 3)).await.unwrap().is_none());
        for n in 1..=3 {
            assert_eq!(read(&core, n).await, json!({"n": n.to_string()}));
        }
        core.root_request(
            "",
            Operation::Patch,
            "secret/data/app",
            json!({"data": {"m": "x"}}),
        )
        .await
        .unwrap();
        assert_eq!(read(&core, 4).await, json!({"n": "3", "m": "x"}));
        assert_eq!(read(&core, 3).await, json!({"n": "3"}));

        // Destroying the current version removes its data from the record.
        core.root_request(
            "",
            Operation::Update,
            "secret/destroy/app",
            json!({"versions": [4]}),
        )
        .await
        .unwrap();
        let raw = view.get(&meta_key("app")).await.unwrap().unwrap();
        assert!(parse_meta(&raw).unwrap().latest.is_none());
        assert_eq!(raw.first(), Some(&META_BINARY));
        assert!(!String::from_utf8_lossy(&raw).contains("\"m\""));
        let r = core
            .root_request("", Operation::Read, "secret/data/app", json!({}))
            .await
            .unwrap();
        assert_eq!(r.status, Some(404));

        // A record written before the current version moved in is read from its key, and
        // the next write moves to the new layout without losing a version.
        let mut old = KeyMeta::new(now_nanos());
        old.versions.insert(
            1,
            VersionMeta {
                created_time: 1,
                deletion_time: 0,
                destroyed: false,
            },
        );
        old.current_version = 1;
        old.oldest_version = 1;
        view.put(&meta_key("legacy"), &util::json_bytes(&old).unwrap())
            .await
            .unwrap();
        view.put(&version_key("legacy", 1), br#"{"old":"1"}"#)
            .await
            .unwrap();
        let r = core
            .root_request("", Operation::Read, "secret/data/legacy", json!({}))
            .await
            .unwrap();
        assert_eq!(r.data_value().unwrap()["data"], json!({"old": "1"}));
        core.root_request(
            "",
            Operation::Patch,
            "secret/data/legacy",
            json!({"data": {"new": "2"}}),
        )
        .await
        .unwrap();
        let r = core
            .root_request("", Operation::Read, "secret/data/legacy", json!({}))
            .await
            .unwrap();
        assert_eq!(
            r.data_value().unwrap()["data"],
            json!({"old": "1", "new": "2"})
        );
        let r = core
            .root_request(
                "",
                Operation::Read,
                "secret/data/legacy",
                json!({"version": 1}),
            )
            .await
            .unwrap();
        assert_eq!(r.data_value().unwrap()["data"], json!({"old": "1"}));
    }
}
