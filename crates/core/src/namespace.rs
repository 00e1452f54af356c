//! Namespaces: isolated trees of mounts, policies and tokens, loaded lazily.
//!
//! Storage layout (all through the barrier):
//! - `core/ns-path/<full/path>` → [`Namespace`] record (the index by path),
//! - `core/ns-id/<id>` → the namespace's path (the index by id, for token suffixes),
//! - `namespaces/<id>/…` → everything inside the namespace (root: no prefix).
//!
//! Nothing per namespace is loaded at start. A namespace's state (its mount tables) is
//! read on first use and kept in a bounded cache; child lookups are cached per parent,
//! negatives included, so resolving `secret/data/x` costs no storage read after warm-up.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use strongroom_barrier::Barrier;

use crate::error::{CoreError, Result};
use crate::mounts::MountTable;
use crate::view::View;
use crate::{util, Operation, Response};
use strongroom_barrier::cache::Cache;

/// Names a namespace cannot take: they would shadow API paths.
const RESERVED: &[&str] = &[
    "sys",
    "auth",
    "cubbyhole",
    "identity",
    "root",
    "audit",
    "secret-manager",
];
const CHILD_CACHE_MAX: usize = 4096;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Namespace {
    pub id: String,
    /// Full path with a trailing slash (`a/b/`); empty for root.
    pub path: String,
    #[serde(default)]
    pub custom_metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub uuid: String,
}

impl Namespace {
    fn root() -> Namespace {
        Namespace {
            id: "root".into(),
            path: String::new(),
            custom_metadata: BTreeMap::new(),
            uuid: String::new(),
        }
    }
    pub fn storage_prefix(&self) -> String {
        if self.path.is_empty() {
            String::new()
        } else {
            storage_prefix_of(&self.id)
        }
    }
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "path": self.path,
            "custom_metadata": self.custom_metadata,
            "uuid": self.uuid,
            "locked": false,
            "tainted": false,
        })
    }
}

/// Where the namespace with this id keeps its entries (`root`: no prefix).
pub fn storage_prefix_of(id: &str) -> String {
    if id == "root" {
        String::new()
    } else {
        format!("namespaces/{id}/")
    }
}

/// A loaded namespace.
pub struct NsState {
    pub ns: Namespace,
    pub view: View,
    mounts: ArcSwap<MountTable>,
    auth: ArcSwap<MountTable>,
    /// child name → child id (None = known not to exist).
    children: RwLock<HashMap<String, Option<String>>>,
    /// Serializes changes to this namespace's tables.
    pub admin: tokio::sync::Mutex<()>,
}

impl NsState {
    pub fn mounts(&self) -> arc_swap::Guard<Arc<MountTable>> {
        self.mounts.load()
    }
    pub fn mounts_arc(&self) -> Arc<MountTable> {
        self.mounts.load_full()
    }
    pub fn auth_mounts_arc(&self) -> Arc<MountTable> {
        self.auth.load_full()
    }
    pub fn auth_mounts(&self) -> arc_swap::Guard<Arc<MountTable>> {
        self.auth.load()
    }
    pub fn set_mounts(&self, t: MountTable) {
        self.mounts.store(Arc::new(t));
    }
    pub fn set_auth_mounts(&self, t: MountTable) {
        self.auth.store(Arc::new(t));
    }
    pub fn is_root(&self) -> bool {
        self.ns.path.is_empty()
    }
    /// This namespace is `other` or one of its descendants.
    pub fn is_within(&self, other: &NsState) -> bool {
        self.ns.path.starts_with(&other.ns.path)
    }
    /// This namespace's path relative to an ancestor (`""` if the same).
    pub fn relative_to(&self, ancestor: &NsState) -> &str {
        &self.ns.path[ancestor.ns.path.len().min(self.ns.path.len())..]
    }
    fn forget_child(&self, name: &str) {
        self.children.write().remove(name);
    }
}

pub struct Registry {
    barrier: Arc<Barrier>,
    root: Arc<NsState>,
    loaded: Cache<String, Arc<NsState>>,
    root_view: View,
}

impl Registry {
    pub fn new(barrier: Arc<Barrier>) -> Registry {
        let root_view = View::new(barrier.clone(), "");
        let root = Arc::new(NsState {
            ns: Namespace::root(),
            view: root_view.clone(),
            mounts: ArcSwap::from_pointee(MountTable::default()),
            auth: ArcSwap::from_pointee(MountTable::default()),
            children: RwLock::new(HashMap::new()),
            admin: tokio::sync::Mutex::new(()),
        });
        Registry {
            barrier,
            root,
            loaded: Cache::new(8_192),
            root_view,
        }
    }

    /// Load the root namespace's tables (once after unseal).
    pub async fn load_root(&self) -> Result<()> {
        let (m, a) = MountTable::load(&self.root.view).await?;
        self.root.set_mounts(m);
        self.root.set_auth_mounts(a);
        Ok(())
    }

    /// Forget every loaded namespace and cached child lookup (another node changed them).
    pub fn clear_caches(&self) {
        self.loaded.clear();
        self.root.children.write().clear();
    }

    pub fn root(&self) -> Arc<NsState> {
        self.root.clone()
    }

    /// A view of the namespace with this id, without loading (or caching) it: for passes
    /// over every namespace.
    pub fn unloaded_view(&self, id: &str) -> View {
        View::new(self.barrier.clone(), storage_prefix_of(id))
    }

    async fn load(&self, ns: Namespace) -> Result<Arc<NsState>> {
        if let Some(s) = self.loaded.get(&ns.id) {
            return Ok(s);
        }
        let view = View::new(self.barrier.clone(), ns.storage_prefix());
        let (m, a) = MountTable::load(&view).await?;
        let state = Arc::new(NsState {
            ns,
            view,
            mounts: ArcSwap::from_pointee(m),
            auth: ArcSwap::from_pointee(a),
            children: RwLock::new(HashMap::new()),
            admin: tokio::sync::Mutex::new(()),
        });
        self.loaded.insert(state.ns.id.clone(), state.clone());
        Ok(state)
    }

    /// The child `name` of `parent`, if it exists.
    pub async fn child(&self, parent: &Arc<NsState>, name: &str) -> Result<Option<Arc<NsState>>> {
        if name.is_empty() {
            return Ok(None);
        }
        let cached = parent.children.read().get(name).cloned();
        let id = match cached {
            Some(None) => return Ok(None),
            Some(Some(id)) => Some(id),
            None => None,
        };
        if let Some(id) = &id {
            if let Some(s) = self.loaded.get(id) {
                return Ok(Some(s));
            }
        }
        let path = format!("{}{}", parent.ns.path, name);
        let rec: Option<Namespace> = self
            .root_view
            .get_json(&format!("core/ns-path/{path}"))
            .await?;
        {
            let mut c = parent.children.write();
            if c.len() >= CHILD_CACHE_MAX {
                if let Some(victim) = c.keys().next().cloned() {
                    c.remove(&victim);
                }
            }
            c.insert(name.to_owned(), rec.as_ref().map(|r| r.id.clone()));
        }
        match rec {
            None => Ok(None),
            Some(r) => Ok(Some(self.load(r).await?)),
        }
    }

    /// Walk `path` (`a/b`) from `from`.
    pub async fn lookup(&self, from: &Arc<NsState>, path: &str) -> Result<Option<Arc<NsState>>> {
        let mut ns = from.clone();
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            match self.child(&ns, seg).await? {
                Some(c) => ns = c,
                None => return Ok(None),
            }
        }
        Ok(Some(ns))
    }

    pub async fn by_id(&self, id: &str) -> Result<Option<Arc<NsState>>> {
        if id == "root" || id.is_empty() {
            return Ok(Some(self.root()));
        }
        if let Some(s) = self.loaded.get(id) {
            return Ok(Some(s));
        }
        let Some(path) = self.root_view.get(&format!("core/ns-id/{id}")).await? else {
            return Ok(None);
        };
        let path = String::from_utf8_lossy(&path).into_owned();
        let root = self.root();
        self.lookup(&root, &path).await
    }

    /// Split a request into its namespace and the path inside it: the `X-Vault-Namespace`
    /// header first, then any leading path segments that name child namespaces.
    pub async fn resolve(&self, header: &str, path: &str) -> Result<(Arc<NsState>, String)> {
        let header = header.trim_matches('/');
        let mut ns = self.root();
        if !header.is_empty() && header != "root" {
            let header = header.strip_prefix("root/").unwrap_or(header);
            ns = self
                .lookup(&ns, header)
                .await?
                .ok_or_else(|| CoreError::NotFound(format!("namespace not found: {header}")))?;
        }
        let mut rest = path;
        while let Some((seg, after)) = rest.split_once('/') {
            if RESERVED.contains(&seg) {
                break;
            }
            match self.child(&ns, seg).await? {
                Some(c) => {
                    ns = c;
                    rest = after;
                }
                None => break,
            }
        }
        Ok((ns, rest.to_owned()))
    }

    pub async fn create(
        &self,
        parent: &Arc<NsState>,
        name: &str,
        meta: BTreeMap<String, String>,
    ) -> Result<Namespace> {
        validate_name(name)?;
        let _g = parent.admin.lock().await;
        let path = format!("{}{}/", parent.ns.path, name);
        let key = format!("core/ns-path/{}", path.trim_end_matches('/'));
        if let Some(existing) = self.root_view.get_json::<Namespace>(&key).await? {
            return Ok(existing);
        }
        let mut id = util::random_alnum(6);
        while self
            .root_view
            .get(&format!("core/ns-id/{id}"))
            .await?
            .is_some()
        {
            id = util::random_alnum(6);
        }
        let ns = Namespace {
            id: id.clone(),
            path: path.clone(),
            custom_metadata: meta,
            uuid: util::uuid4(),
        };
        let rec = serde_json::to_vec(&ns).map_err(|e| CoreError::Internal(e.to_string()))?;
        self.root_view
            .transact(vec![
                strongroom_barrier::BarrierOp::Put(key, rec),
                strongroom_barrier::BarrierOp::Put(
                    format!("core/ns-id/{id}"),
                    path.trim_end_matches('/').as_bytes().to_vec(),
                ),
            ])
            .await?;
        parent.forget_child(name);
        let state = self.load(ns.clone()).await?;
        crate::policy::install_defaults(&state).await?;
        Ok(ns)
    }

    pub async fn update_metadata(
        &self,
        ns: &Namespace,
        meta: BTreeMap<String, String>,
    ) -> Result<Namespace> {
        let mut updated = ns.clone();
        updated.custom_metadata = meta;
        self.root_view
            .put_json(
                &format!("core/ns-path/{}", ns.path.trim_end_matches('/')),
                &updated,
            )
            .await?;
        self.loaded.remove(&ns.id);
        Ok(updated)
    }

    /// Immediate children of `parent`.
    pub async fn list_children(&self, parent: &Arc<NsState>) -> Result<Vec<Namespace>> {
        let prefix = format!("core/ns-path/{}", parent.ns.path);
        let mut out = Vec::new();
        for name in self.root_view.list(&prefix, None, None).await? {
            if name.ends_with('/') {
                continue;
            }
            if let Some(ns) = self
                .root_view
                .get_json::<Namespace>(&format!("{prefix}{name}"))
                .await?
            {
                out.push(ns);
            }
        }
        Ok(out)
    }

    pub async fn delete(&self, parent: &Arc<NsState>, name: &str) -> Result<bool> {
        let Some(child) = self.child(parent, name).await? else {
            return Ok(false);
        };
        let _g = parent.admin.lock().await;
        if !self.list_children(&child).await?.is_empty() {
            return Err(CoreError::bad(format!(
                "cannot delete namespace {:?}: it has child namespaces; delete those first",
                child.ns.path
            )));
        }
        let key = format!("core/ns-path/{}", child.ns.path.trim_end_matches('/'));
        self.root_view
            .transact(vec![
                strongroom_barrier::BarrierOp::DeletePrefix(child.ns.storage_prefix()),
                strongroom_barrier::BarrierOp::Delete(key),
                strongroom_barrier::BarrierOp::Delete(format!("core/ns-id/{}", child.ns.id)),
            ])
            .await?;
        parent.forget_child(name);
        self.loaded.remove(&child.ns.id);
        Ok(true)
    }
}

fn validate_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 128
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        || name.starts_with('.')
    {
        return Err(CoreError::bad(format!(
            "invalid namespace name {name:?}: use letters, digits, '-', '_' and '.', at most 128 characters"
        )));
    }
    if RESERVED.contains(&name) {
        return Err(CoreError::bad(format!(
            "{name:?} is a reserved path and cannot be a namespace name"
        )));
    }
    Ok(())
}

fn parse_meta(data: &Map<String, Value>) -> Result<Option<BTreeMap<String, String>>> {
    match data.get("custom_metadata") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(CoreError::bad("custom_metadata values must be strings")),
            })
            .collect::<Result<_>>()
            .map(Some),
        Some(_) => Err(CoreError::bad("custom_metadata must be a map of strings")),
    }
}

/// `sys/namespaces[/<path>]` in the namespace `ns`.
pub async fn handle_sys(
    registry: &Registry,
    ns: &Arc<NsState>,
    op: Operation,
    rest: &str,
    data: &Map<String, Value>,
) -> Result<Response> {
    let rest = rest.trim_matches('/');
    if rest.is_empty() {
        return match op {
            Operation::List | Operation::Read => {
                let children = registry.list_children(ns).await?;
                if children.is_empty() {
                    return Err(CoreError::NotFound(String::new()));
                }
                let mut key_info = Map::new();
                let mut keys = Vec::new();
                for c in children {
                    let rel = c.path[ns.ns.path.len()..].to_owned();
                    key_info.insert(rel.clone(), c.to_json());
                    keys.push(rel);
                }
                Ok(Response::data(
                    json!({ "keys": keys, "key_info": key_info }),
                ))
            }
            _ => Err(CoreError::UnsupportedOperation),
        };
    }
    let (parent_path, name) = match rest.rsplit_once('/') {
        Some((p, n)) => (p, n),
        None => ("", rest),
    };
    let parent = registry.lookup(ns, parent_path).await?.ok_or_else(|| {
        CoreError::bad(format!("parent namespace {parent_path:?} does not exist"))
    })?;
    let relative = |n: &Namespace| n.to_json();
    match op {
        Operation::Read => match registry.child(&parent, name).await? {
            Some(c) => Ok(Response::data(relative(&c.ns))),
            None => Err(CoreError::NotFound(String::new())),
        },
        Operation::Create | Operation::Update => {
            let meta = parse_meta(data)?.unwrap_or_default();
            if let Some(existing) = registry.child(&parent, name).await? {
                if !meta.is_empty() && meta != existing.ns.custom_metadata {
                    let n = registry.update_metadata(&existing.ns, meta).await?;
                    return Ok(Response::data(relative(&n)));
                }
                return Ok(Response::data(relative(&existing.ns)));
            }
            let n = registry.create(&parent, name, meta).await?;
            Ok(Response::data(relative(&n)))
        }
        Operation::Patch => {
            let existing = registry
                .child(&parent, name)
                .await?
                .ok_or_else(|| CoreError::NotFound(String::new()))?;
            let mut meta = existing.ns.custom_metadata.clone();
            if let Some(Value::Object(m)) = data.get("custom_metadata") {
                for (k, v) in m {
                    match v {
                        Value::Null => {
                            meta.remove(k);
                        }
                        Value::String(s) => {
                            meta.insert(k.clone(), s.clone());
                        }
                        _ => return Err(CoreError::bad("custom_metadata values must be strings")),
                    }
                }
            }
            let n = registry.update_metadata(&existing.ns, meta).await?;
            Ok(Response::data(relative(&n)))
        }
        Operation::Delete => {
            // Deletion is synchronous here; the status keeps OpenBao's response shape.
            let status = if registry.delete(&parent, name).await? {
                "in-progress"
            } else {
                "not-found"
            };
            Ok(Response::data(json!({ "status": status })))
        }
        _ => Err(CoreError::UnsupportedOperation),
    }
}
