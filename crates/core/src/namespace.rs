//! Namespaces: isolated trees of mounts, policies and tokens, loaded lazily.
//!
//! Storage layout (all through the barrier):
//! - `core/ns-path/<full/path>` → [`Namespace`] record (the index by path), with a copy of
//!   the namespace's secrets-engine table written in the same transaction as the table,
//! - `core/ns-id/<id>` → the namespace's path (the index by id, for token suffixes),
//! - `namespaces/<id>/…` → everything inside the namespace (root: no prefix).
//!
//! Nothing per namespace is loaded at start. A namespace's state (its secrets-engine
//! table) is read on first use and kept in a bounded cache; its auth table is read only
//! when an auth request or token operation needs it. Child lookups are cached per parent,
//! negatives included, and a namespace whose record says it never had children answers
//! "no such child" without a storage read. Loading a namespace costs one read (its record
//! carries its mount table), and none once it was resolved before: [`Records`] keeps every
//! resolved record in a compact form (~90 B for a project namespace, against ~2 KB for a
//! loaded [`NsState`]), so with 100k project namespaces a cold KV read is one storage
//! lookup (the secret), not two.

pub(crate) mod compact;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use strongroom_barrier::Barrier;

use crate::error::{CoreError, Result};
use crate::mounts::MountTable;
use crate::route::Fields;
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
/// Loaded namespaces kept (each ~2 KB with its mount table).
const LOADED_MAX: usize = 8_192;
/// Once the loaded cache is full, one load in this many is kept in it. A namespace in use
/// gets in after a few loads; reads spread over more namespaces than it holds no longer
/// replace an entry (and drop the one it pushed out) on every load, for a hit rate no
/// better than the cache's share of the namespaces either way.
const ADMIT_ONE_IN: u32 = 8;
/// Namespace records kept in compact form (~200 B each with the map's own overhead).
const RECORDS_MAX: usize = 262_144;

/// The second tier below the loaded namespaces: every namespace record read, by path,
/// in [`compact`] form, so a namespace that left the loaded cache loads again without a
/// storage read. Every write of a record forgets its entry after the write; a read only
/// remembers what it read if no write began meanwhile (the barrier's write fence), so a
/// stale record is never served.
pub struct Records {
    cache: Cache<Box<str>, Arc<[u8]>>,
}

/// The loaded namespaces by id, and a count of the changes of their tables and records. A
/// state is kept only if no change was counted since its record was read, and a change
/// drops the state kept, after the change is stored: so a state built from a record read
/// before a change (by a request racing it, through an instance evicted meanwhile) is
/// never served after it.
struct Loaded {
    cache: Cache<String, Arc<NsState>>,
    changes: std::sync::atomic::AtomicU64,
    /// Set once a [`Loaded::keep`] found the state's shard full, cleared when a change
    /// drops states: while set, a load that [`ADMIT_ONE_IN`] turns away costs no lookup
    /// (a cold read over more namespaces than the cache holds made one per read).
    full: AtomicBool,
}

impl Loaded {
    fn new(capacity: usize) -> Arc<Loaded> {
        Arc::new(Loaded {
            cache: Cache::new(capacity),
            changes: 0.into(),
            full: AtomicBool::new(false),
        })
    }
    /// Taken before a namespace's record is read, for [`Loaded::keep`].
    fn generation(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }
    /// Keep `state`, whose record was read after `generation` was taken, unless a change
    /// was counted since. Once the cache is full (once a shard was found full, until a
    /// change drops states), only one call in [`ADMIT_ONE_IN`] keeps.
    fn keep(&self, state: &Arc<NsState>, generation: u64) -> bool {
        thread_local! {
            static LOADS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
        }
        let id = &state.ns.id;
        // Stored only as it changes: a flag every cold read wrote would move its cache
        // line between the cores on each.
        let full = self.full.load(Ordering::Relaxed)
            || (!self.cache.has_room(id) && {
                self.full.store(true, Ordering::Relaxed);
                true
            });
        if full {
            let n = LOADS.with(|c| {
                let n = c.get().wrapping_add(1);
                c.set(n);
                n
            });
            if !n.is_multiple_of(ADMIT_ONE_IN) {
                return false;
            }
        }
        self.cache.insert_if(id.clone(), state.clone(), || {
            self.changes.load(Ordering::Acquire) == generation
        })
    }
    /// After a change of the namespace `id`'s tables or record is stored.
    fn changed(&self, id: &str) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.cache.remove(id);
        self.full.store(false, Ordering::Relaxed);
    }
    /// After changes of any namespaces (made by another node): drop every state kept.
    fn changed_all(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.cache.clear();
        self.full.store(false, Ordering::Relaxed);
    }
}

impl Shared {
    fn new(loaded: &Arc<Loaded>) -> Arc<Shared> {
        Arc::new(Shared {
            admin_locks: AdminLocks::default(),
            records: Records::new(),
            loaded: Arc::downgrade(loaded),
        })
    }
}

impl Records {
    fn new() -> Records {
        Records {
            cache: Cache::new(RECORDS_MAX),
        }
    }
    /// The namespace at `path`, if remembered: decoded but for its secrets-engine table,
    /// which stays in the record, if the record has one.
    fn get(&self, path: &str) -> Option<(Namespace, Option<CompactTable>)> {
        let record = self.cache.get(path)?;
        let (ns, at) = compact::decode_head(&record, path)?;
        Some((ns, at.map(|at| CompactTable { record, at })))
    }
    /// The whole record remembered for `path`, table included.
    #[cfg(test)]
    fn decoded(&self, path: &str) -> Option<Namespace> {
        compact::decode(&self.cache.get(path)?, path)
    }
    /// Remember `rec`, read from storage after the barrier's `fence` was taken.
    fn remember(&self, barrier: &Barrier, fence: Option<u64>, rec: &Namespace) {
        let Some(fence) = fence else { return };
        let key: Box<str> = rec.path.as_str().into();
        self.cache.insert(key, compact::encode(rec).into());
        if !barrier.unwritten_since(fence) {
            self.cache.remove(rec.path.as_str());
        }
    }
    /// After a write of the record of the namespace at `path` (`a/b/`).
    fn forget(&self, path: &str) {
        self.cache.remove(path);
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Namespace {
    pub id: String,
    /// Full path with a trailing slash (`a/b/`); empty for root.
    pub path: String,
    #[serde(default)]
    pub custom_metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub uuid: String,
    /// Whether a child namespace was ever created here: `Some(false)` lets a lookup of a
    /// child answer "none" without reading storage. Absent in records written before the
    /// flag existed, which are treated as "may have children".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_children: Option<bool>,
    /// The secrets-engine table, as stored under `sys/mounts` (which stays authoritative),
    /// so that loading the namespace is one read. Absent in records written before the
    /// copy existed: those load the table from `sys/mounts`. Never kept in a loaded
    /// [`NsState`]'s `ns`, whose table is [`NsState::mounts`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mounts: Option<MountTable>,
}

impl Namespace {
    fn root() -> Namespace {
        Namespace {
            id: "root".into(),
            path: String::new(),
            custom_metadata: BTreeMap::new(),
            uuid: String::new(),
            has_children: None,
            mounts: None,
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

/// Loaded namespaces are stale once a namespace record (`core/ns-…`) or a mount table
/// (`sys/mounts`, `sys/auth` in a namespace) changes.
pub(crate) fn stale_by(key: &str, rel: &str) -> Option<crate::Stale> {
    (key.starts_with("core/ns-") || rel == "sys/mounts" || rel == "sys/auth")
        .then_some(crate::Stale::Namespaces)
}

/// Where the namespace with this id keeps its entries (`root`: no prefix).
pub fn storage_prefix_of(id: &str) -> String {
    if id == "root" {
        return String::new();
    }
    util::concat(&["namespaces/", id, "/"])
}

/// A loaded namespace.
pub struct NsState {
    pub ns: Namespace,
    pub view: View,
    /// The secrets-engine table ([`Mounts`]).
    mounts: Mounts,
    /// Read on first use ([`NsState::auth_mounts`]): a KV read never needs it. A lock, not
    /// an `ArcSwapOption`: only auth requests and token operations read it, and dropping an
    /// `ArcSwap` settles its debts with every thread, which a cold KV read would pay for a
    /// state it builds and drops.
    auth: RwLock<Option<Arc<MountTable>>>,
    /// child name → child id (None = known not to exist).
    children: RwLock<HashMap<String, Option<String>>>,
    /// False while this namespace is known never to have had a child; set (in memory
    /// first, then in its stored record) before a child is created.
    may_have_children: AtomicBool,
    /// Serializes changes to this namespace's tables ([`NsState::admin`]); taken on first
    /// use, so a namespace loaded only to be read never touches the shared map.
    admin: std::sync::OnceLock<Arc<tokio::sync::Mutex<()>>>,
    /// What every state of the registry refers back to. One `Arc` for all of it: a cold
    /// read builds and drops a state, and each shared counter it clones is one both cores
    /// write.
    shared: Arc<Shared>,
}

/// A namespace's secrets-engine table as its state holds it. The root's state lives as
/// long as the registry, so a change replaces its table in place. Any other namespace's
/// state is dropped from the loaded cache by a change and built again by the next request,
/// so its table is fixed: a state a cold read builds and drops then holds no `ArcSwap`,
/// whose drop settles debts with every thread that ever loaded one.
///
/// A state built from the registry's compact record of the namespace keeps the table in
/// that record's bytes (shared with the record, not copied): a request routes by reading
/// it in place ([`NsState::logical`]), and it is decoded only when a caller asks for the
/// whole table ([`NsState::mounts`]). A cold read then builds no `MountTable` at all.
enum Mounts {
    Live(ArcSwap<MountTable>),
    Fixed(Arc<MountTable>),
    Compact(CompactTable, std::sync::OnceLock<Arc<MountTable>>),
}

/// A secrets-engine table inside a compact record of [`Records`] (which only
/// [`compact::encode`] writes).
struct CompactTable {
    record: Arc<[u8]>,
    /// Where the table starts.
    at: usize,
}

impl CompactTable {
    fn bytes(&self) -> &[u8] {
        &self.record[self.at..]
    }
}

/// The parts of the [`Registry`] its namespaces' states refer back to.
struct Shared {
    /// Namespace id → its admin lock, while some `NsState` of it holds the lock.
    admin_locks: AdminLocks,
    /// The registry's compact records, which a change of a namespace's record updates.
    records: Records,
    /// The registry's loaded namespaces, which a change of a namespace's tables updates
    /// (weak: the cache holds the states).
    loaded: std::sync::Weak<Loaded>,
}

type AdminLocks = parking_lot::Mutex<HashMap<String, std::sync::Weak<tokio::sync::Mutex<()>>>>;

impl NsState {
    /// The lock that serializes changes to this namespace's tables. Every `NsState` of
    /// the namespace alive at once shares it: without that, a namespace evicted from the
    /// loaded cache while a request still held it would load again with a lock of its
    /// own, and two changes of its tables could interleave.
    pub fn admin(&self) -> &tokio::sync::Mutex<()> {
        self.admin.get_or_init(|| {
            let mut locks = self.shared.admin_locks.lock();
            if let Some(lock) = locks.get(&self.ns.id).and_then(std::sync::Weak::upgrade) {
                return lock;
            }
            // Forget the locks no one holds any more, once they outnumber the loaded cache.
            if locks.len() >= 2 * LOADED_MAX {
                locks.retain(|_, w| w.strong_count() > 0);
            }
            let lock = Arc::new(tokio::sync::Mutex::new(()));
            locks.insert(self.ns.id.clone(), Arc::downgrade(&lock));
            lock
        })
    }
    pub fn mounts(&self) -> Arc<MountTable> {
        match &self.mounts {
            Mounts::Live(m) => m.load_full(),
            Mounts::Fixed(m) => m.clone(),
            // Bytes `compact::encode` wrote always decode.
            Mounts::Compact(table, decoded) => decoded
                .get_or_init(|| Arc::new(compact::decode_table(table.bytes()).unwrap_or_default()))
                .clone(),
        }
    }
    /// The secrets engine that serves `rel` (a path in this namespace): the mount whose
    /// path is its longest prefix ([`MountTable::longest_match_index`]).
    pub fn logical(&self, rel: &str) -> Option<crate::mounts::LogicalMount> {
        use crate::mounts::LogicalMount;
        let of_table = |t: &MountTable| {
            let i = t.longest_match_index(rel)?;
            Some(LogicalMount::of(&t.entries[i], &self.view))
        };
        match &self.mounts {
            Mounts::Live(m) => of_table(&m.load()),
            Mounts::Fixed(m) => of_table(m),
            Mounts::Compact(table, _) => {
                let m = compact::find_mount(table.bytes(), rel)?;
                Some(LogicalMount {
                    path_len: m.path.len(),
                    engine: m.engine(),
                    default_lease_ttl: m.default_lease_ttl,
                    view: m.with_uuid(|uuid| self.view.logical(uuid)),
                })
            }
        }
    }
    /// The auth table, read from storage on first use.
    pub async fn auth_mounts(&self) -> Result<Arc<MountTable>> {
        if let Some(t) = self.auth.read().clone() {
            return Ok(t);
        }
        let read = Arc::new(MountTable::load_auth(&self.view).await?);
        // A change made meanwhile (under `admin`) stored a newer table: keep that one.
        Ok(self.auth.write().get_or_insert(read).clone())
    }
    /// Make `t`, just stored, the root's table. Another namespace's state keeps the table
    /// it was built with: the change dropped it from the loaded cache, so the next request
    /// builds a state with `t`.
    fn set_mounts(&self, t: MountTable) {
        if let Mounts::Live(m) = &self.mounts {
            m.store(Arc::new(t));
        }
    }
    /// Store `table` as this namespace's secrets-engine table and make it current: its
    /// `sys/mounts` key and, outside root, the copy in the namespace's record, in one
    /// transaction. The caller holds `admin`, as every change to the record does.
    pub async fn save_secrets_table(&self, table: MountTable) -> Result<()> {
        let mut ops = vec![self.view.absolute(strongroom_barrier::BarrierOp::Put(
            "sys/mounts".into(),
            util::json_bytes(&table)?,
        ))];
        if !self.is_root() {
            let root = self.view.root();
            let key = record_key(&self.ns.path);
            let mut rec = read_record(&root, &key)
                .await?
                .ok_or_else(|| CoreError::NotFound(format!("namespace {:?}", self.ns.path)))?;
            rec.mounts = Some(table.clone());
            ops.push(strongroom_barrier::BarrierOp::Put(key, record_bytes(&rec)));
        }
        self.view.transact_absolute(ops).await?;
        self.shared.records.forget(&self.ns.path);
        self.changed();
        self.set_mounts(table);
        Ok(())
    }
    /// Make `t`, just stored, this namespace's auth table.
    pub fn set_auth_mounts(&self, t: MountTable) {
        self.changed();
        *self.auth.write() = Some(Arc::new(t));
    }
    /// After a change of this namespace's tables is stored: another state of it that the
    /// registry keeps (loaded while this one was evicted) is dropped, so it loads afresh.
    fn changed(&self) {
        if let Some(loaded) = self.shared.loaded.upgrade() {
            loaded.changed(&self.ns.id);
        }
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
    loaded: Arc<Loaded>,
    shared: Arc<Shared>,
    root_view: View,
}

impl Registry {
    pub fn new(barrier: Arc<Barrier>) -> Registry {
        let root_view = View::new(barrier.clone(), "");
        let loaded = Loaded::new(LOADED_MAX);
        let shared = Shared::new(&loaded);
        let root = Arc::new(NsState {
            ns: Namespace::root(),
            view: root_view.clone(),
            mounts: Mounts::Live(ArcSwap::from_pointee(MountTable::default())),
            auth: RwLock::new(None),
            children: RwLock::new(HashMap::new()),
            may_have_children: AtomicBool::new(true),
            admin: std::sync::OnceLock::new(),
            shared: shared.clone(),
        });
        Registry {
            barrier,
            root,
            loaded,
            shared,
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
        self.loaded.changed_all();
        self.shared.records.cache.clear();
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

    /// The state of `ns`, whose record was read after `generation` was taken, and whether
    /// the loaded cache holds it. `compact`: the secrets-engine table in the compact record
    /// `ns` was decoded from (then `ns.mounts` is `None`).
    async fn load(
        &self,
        mut ns: Namespace,
        compact: Option<CompactTable>,
        generation: u64,
    ) -> Result<(Arc<NsState>, bool)> {
        if let Some(s) = self.loaded.cache.get(&ns.id) {
            return Ok((s, true));
        }
        let view = View::new(self.barrier.clone(), ns.storage_prefix());
        let mounts = match (compact, ns.mounts.take()) {
            (Some(table), _) => Mounts::Compact(table, std::sync::OnceLock::new()),
            (None, Some(m)) => Mounts::Fixed(Arc::new(m)),
            (None, None) => Mounts::Fixed(Arc::new(MountTable::load_secrets(&view).await?)),
        };
        let state = Arc::new(NsState {
            may_have_children: AtomicBool::new(ns.has_children != Some(false)),
            ns,
            view,
            mounts,
            auth: RwLock::new(None),
            children: RwLock::new(HashMap::new()),
            admin: std::sync::OnceLock::new(),
            shared: self.shared.clone(),
        });
        let kept = self.loaded.keep(&state, generation);
        Ok((state, kept))
    }

    /// The child `name` of `parent`, if it exists.
    pub async fn child(&self, parent: &Arc<NsState>, name: &str) -> Result<Option<Arc<NsState>>> {
        if name.is_empty() || !parent.may_have_children.load(Ordering::Acquire) {
            return Ok(None);
        }
        let cached = parent.children.read().get(name).cloned();
        let id = match cached {
            Some(None) => return Ok(None),
            Some(Some(id)) => Some(id),
            None => None,
        };
        if let Some(id) = &id {
            if let Some(s) = self.loaded.cache.get(id) {
                return Ok(Some(s));
            }
        }
        let generation = self.loaded.generation();
        let path = util::concat(&[&parent.ns.path, name, "/"]);
        let rec = match self.shared.records.get(&path) {
            Some(rec) => Some(rec),
            None => {
                let fence = self.barrier.write_fence();
                let rec = read_record(&self.root_view, &record_key(&path)).await?;
                if let Some(r) = &rec {
                    self.shared.records.remember(&self.barrier, fence, r);
                }
                rec.map(|r| (r, None))
            }
        };
        let (state, kept) = match rec {
            None => (None, false),
            Some((r, compact)) => {
                let (s, kept) = self.load(r, compact, generation).await?;
                (Some(s), kept)
            }
        };
        // Remember the answer: "none", or the child's id while the loaded cache keeps it
        // (a state it does not keep loads again from the compact record either way).
        let known = match &state {
            None => Some(None),
            Some(s) if kept && id.is_none() => Some(Some(s.ns.id.clone())),
            Some(_) => None,
        };
        if let Some(known) = known {
            let mut c = parent.children.write();
            if c.len() >= CHILD_CACHE_MAX {
                if let Some(victim) = c.keys().next().cloned() {
                    c.remove(&victim);
                }
            }
            c.insert(name.to_owned(), known);
        }
        Ok(state)
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
        if let Some(s) = self.loaded.cache.get(id) {
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
        let _g = parent.admin().lock().await;
        let path = format!("{}{}/", parent.ns.path, name);
        let key = record_key(&path);
        if let Some(existing) = read_record(&self.root_view, &key).await? {
            return Ok(existing);
        }
        // `<name>/…` would route into the namespace and away from a mount already there
        // (checked under the lock that mounting takes too).
        let mounts = MountTable::load_secrets(&parent.view).await?;
        if let Some(m) = mounts.entries.iter().find(|m| {
            m.path
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('/'))
        }) {
            return Err(CoreError::bad(format!(
                "new namespace conflicts with existing mount: {}",
                m.path
            )));
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
            has_children: Some(false),
            // A new namespace has no secrets engines yet.
            mounts: Some(MountTable::default()),
        };
        let mut ops = vec![
            strongroom_barrier::BarrierOp::Put(key, record_bytes(&ns)),
            strongroom_barrier::BarrierOp::Put(
                format!("core/ns-id/{id}"),
                path.trim_end_matches('/').as_bytes().to_vec(),
            ),
        ];
        // Before the child exists, its parent stops answering "no children" from memory;
        // the parent's stored record says so in the same transaction as the child.
        parent.may_have_children.store(true, Ordering::Release);
        if !parent.is_root() {
            let parent_key = record_key(&parent.ns.path);
            let mut rec = read_record(&self.root_view, &parent_key)
                .await?
                .ok_or_else(|| CoreError::NotFound(format!("namespace {:?}", parent.ns.path)))?;
            if rec.has_children != Some(true) {
                rec.has_children = Some(true);
                ops.push(strongroom_barrier::BarrierOp::Put(
                    parent_key,
                    record_bytes(&rec),
                ));
            }
        }
        self.root_view.transact(ops).await?;
        self.shared.records.forget(&parent.ns.path);
        self.shared.records.forget(&path);
        if !parent.is_root() {
            // Its `has_children` changed: a state of it loaded meanwhile must not answer
            // "no such child" from memory.
            self.loaded.changed(&parent.ns.id);
        }
        let generation = self.loaded.generation();
        parent.forget_child(name);
        let (state, _) = self.load(ns.clone(), None, generation).await?;
        crate::policy::install_defaults(&state).await?;
        Ok(ns)
    }

    /// Replace a namespace's custom metadata. Holds the namespace's `admin` lock, as a
    /// child's creation does, and rewrites the stored record (whose `has_children` flag
    /// that creation may have set since this state was loaded).
    pub async fn update_metadata(
        &self,
        state: &Arc<NsState>,
        meta: BTreeMap<String, String>,
    ) -> Result<Namespace> {
        let _g = state.admin().lock().await;
        let key = record_key(&state.ns.path);
        let mut updated = read_record(&self.root_view, &key)
            .await?
            .ok_or_else(|| CoreError::NotFound(String::new()))?;
        updated.custom_metadata = meta;
        self.root_view.put(&key, &record_bytes(&updated)).await?;
        self.shared.records.forget(&state.ns.path);
        self.loaded.changed(&state.ns.id);
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
            if let Some(ns) = read_record(&self.root_view, &format!("{prefix}{name}")).await? {
                out.push(ns);
            }
        }
        Ok(out)
    }

    pub async fn delete(&self, parent: &Arc<NsState>, name: &str) -> Result<bool> {
        let Some(child) = self.child(parent, name).await? else {
            return Ok(false);
        };
        let _g = parent.admin().lock().await;
        if !self.list_children(&child).await?.is_empty() {
            return Err(CoreError::bad(format!(
                "cannot delete namespace {:?}: it has child namespaces; delete those first",
                child.ns.path
            )));
        }
        let key = record_key(&child.ns.path);
        self.root_view
            .transact(vec![
                strongroom_barrier::BarrierOp::DeletePrefix(child.ns.storage_prefix()),
                strongroom_barrier::BarrierOp::Delete(key),
                strongroom_barrier::BarrierOp::Delete(format!("core/ns-id/{}", child.ns.id)),
            ])
            .await?;
        self.shared.records.forget(&child.ns.path);
        parent.forget_child(name);
        self.loaded.changed(&child.ns.id);
        Ok(true)
    }
}

/// Where the record of the namespace at `path` (`a/b/` or `a/b`) is stored.
fn record_key(path: &str) -> String {
    format!("core/ns-path/{}", path.trim_end_matches('/'))
}

/// The first byte of a namespace record stored in binary form ([`record_bytes`]). One
/// written as JSON (by earlier builds) starts with `{`, is still read, and is stored
/// binary the next time the namespace's record is written.
const RECORD_BINARY: u8 = 1;

/// A namespace record as stored: [`RECORD_BINARY`], the path, then the [`compact`] form
/// (under 200 B for a project namespace with one mount, against ~500 B of JSON).
fn record_bytes(ns: &Namespace) -> Vec<u8> {
    let body = compact::encode(ns);
    let mut b = Vec::with_capacity(body.len() + ns.path.len() + 2);
    b.push(RECORD_BINARY);
    crate::codec::put_str(&mut b, &ns.path);
    b.extend_from_slice(&body);
    b
}

pub(crate) fn parse_record(b: &[u8]) -> Result<Namespace> {
    match b.split_first() {
        Some((&RECORD_BINARY, rest)) => {
            let mut r = crate::codec::Reader::new(rest);
            r.string()
                .and_then(|path| compact::decode(r.rest(), &path))
                .ok_or_else(|| CoreError::Internal("corrupt namespace record".into()))
        }
        _ => serde_json::from_slice(b)
            .map_err(|e| CoreError::Internal(format!("corrupt namespace record: {e}"))),
    }
}

/// The namespace record stored at `key` (binary or JSON).
async fn read_record(view: &View, key: &str) -> Result<Option<Namespace>> {
    view.get(key).await?.map(|b| parse_record(&b)).transpose()
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

fn parse_meta(fields: &Fields<'_>) -> Result<Option<BTreeMap<String, String>>> {
    let Some(m) = fields.map("custom_metadata") else {
        return Ok(None);
    };
    m.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(CoreError::bad("custom_metadata values must be strings")),
        })
        .collect::<Result<_>>()
        .map(Some)
}

/// `sys/namespaces[/<path>]` in the namespace `ns`.
pub async fn handle_sys(
    registry: &Registry,
    ns: &Arc<NsState>,
    op: Operation,
    rest: &str,
    fields: &Fields<'_>,
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
            let meta = parse_meta(fields)?.unwrap_or_default();
            if let Some(existing) = registry.child(&parent, name).await? {
                if !meta.is_empty() && meta != existing.ns.custom_metadata {
                    let n = registry.update_metadata(&existing, meta).await?;
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
            if let Some(m) = fields.map("custom_metadata") {
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
            let n = registry.update_metadata(&existing, meta).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Core;
    use serde_json::json;

    async fn stored(core: &Core, path: &str) -> Namespace {
        let raw = core.barrier.get(&record_key(path)).await.unwrap().unwrap();
        parse_record(&raw).unwrap()
    }

    /// Rewrite a namespace's stored record without `field`, as an older release wrote it.
    async fn store_without(core: &Core, path: &str, field: &str) {
        let mut old = serde_json::to_value(stored(core, path).await).unwrap();
        old.as_object_mut().unwrap().remove(field);
        core.barrier
            .put(&record_key(path), &serde_json::to_vec(&old).unwrap())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_namespace_without_children_answers_child_lookups_from_its_record() {
        let core = Core::for_tests();
        core.initialize(1, 1, Some("root".into())).await.unwrap();
        core.root_request("", Operation::Update, "sys/namespaces/team", json!({}))
            .await
            .unwrap();
        assert_eq!(stored(&core, "team").await.has_children, Some(false));

        let active = core.active().unwrap();
        let reg = &active.namespaces;
        let team = reg.lookup(&reg.root(), "team").await.unwrap().unwrap();
        assert!(!team.may_have_children.load(Ordering::Acquire));
        assert!(reg.child(&team, "sub").await.unwrap().is_none());

        // A child created while the parent is loaded is found through the loaded state…
        core.root_request("", Operation::Update, "sys/namespaces/team/sub", json!({}))
            .await
            .unwrap();
        assert!(reg.child(&team, "sub").await.unwrap().is_some());
        assert_eq!(stored(&core, "team").await.has_children, Some(true));
        // …and a metadata update of the parent keeps the flag.
        core.root_request(
            "",
            Operation::Update,
            "sys/namespaces/team",
            json!({"custom_metadata": {"owner": "ci"}}),
        )
        .await
        .unwrap();
        let rec = stored(&core, "team").await;
        assert_eq!(rec.has_children, Some(true));
        assert_eq!(
            rec.custom_metadata.get("owner").map(String::as_str),
            Some("ci")
        );

        // A registry that reads the records afresh finds the child.
        let fresh = Registry::new(core.barrier.clone());
        assert!(fresh
            .lookup(&fresh.root(), "team/sub")
            .await
            .unwrap()
            .is_some());

        // A record written before the flag existed may have children.
        store_without(&core, "team", "has_children").await;
        let fresh = Registry::new(core.barrier.clone());
        let team = fresh.lookup(&fresh.root(), "team").await.unwrap().unwrap();
        assert_eq!(team.ns.has_children, None);
        assert!(fresh.child(&team, "sub").await.unwrap().is_some());

        // The auth table is read on first use and includes the token method.
        assert!(team.auth.read().is_none());
        assert!(team.auth_mounts().await.unwrap().get("token/").is_some());
    }

    #[tokio::test]
    async fn a_namespace_record_carries_its_mount_table() {
        let core = Core::for_tests();
        core.initialize(1, 1, Some("root".into())).await.unwrap();
        core.root_request("", Operation::Update, "sys/namespaces/p1", json!({}))
            .await
            .unwrap();
        assert_eq!(
            stored(&core, "p1").await.mounts,
            Some(MountTable::default())
        );
        let sys_mounts = || async {
            let raw = core
                .barrier
                .get(&format!(
                    "{}sys/mounts",
                    stored(&core, "p1").await.storage_prefix()
                ))
                .await
                .unwrap()
                .unwrap();
            serde_json::from_slice::<MountTable>(&raw).unwrap()
        };
        // Every change of the table writes the copy with it: enable, tune, disable.
        let kv2 = json!({"type": "kv", "options": {"version": "2"}});
        core.root_request("", Operation::Update, "p1/sys/mounts/secret", kv2.clone())
            .await
            .unwrap();
        core.root_request("", Operation::Update, "p1/sys/mounts/other", kv2)
            .await
            .unwrap();
        core.root_request(
            "",
            Operation::Update,
            "p1/sys/mounts/secret/tune",
            json!({"description": "tuned"}),
        )
        .await
        .unwrap();
        core.root_request("", Operation::Delete, "p1/sys/mounts/other", json!({}))
            .await
            .unwrap();
        let copy = stored(&core, "p1").await.mounts.unwrap();
        assert_eq!(copy, sys_mounts().await);
        assert_eq!(copy.entries.len(), 1);
        assert_eq!(copy.get("secret/").unwrap().description, "tuned");
        // A metadata update keeps it.
        core.root_request(
            "",
            Operation::Update,
            "sys/namespaces/p1",
            json!({"custom_metadata": {"team": "a"}}),
        )
        .await
        .unwrap();
        assert_eq!(stored(&core, "p1").await.mounts, Some(copy.clone()));

        // A fresh registry loads the table from the record and keeps no second copy.
        let fresh = Registry::new(core.barrier.clone());
        let p1 = fresh.lookup(&fresh.root(), "p1").await.unwrap().unwrap();
        assert_eq!(*p1.mounts(), copy);
        assert!(p1.ns.mounts.is_none());

        // A record written before the copy existed loads the table from `sys/mounts`.
        store_without(&core, "p1", "mounts").await;
        let fresh = Registry::new(core.barrier.clone());
        let p1 = fresh.lookup(&fresh.root(), "p1").await.unwrap().unwrap();
        assert_eq!(*p1.mounts(), copy);
    }

    #[tokio::test]
    async fn records_are_stored_binary_and_json_ones_still_read() {
        let core = Core::for_tests();
        core.initialize(1, 1, Some("root".into())).await.unwrap();
        let req = |path: &'static str, body: Value| core.root_ok(Operation::Update, path, body);
        req(
            "sys/namespaces/p1",
            json!({"custom_metadata": {"team": "a"}}),
        )
        .await;
        req(
            "p1/sys/mounts/secret",
            json!({"type": "kv", "options": {"version": "2"}}),
        )
        .await;
        let raw = core.barrier.get(&record_key("p1")).await.unwrap().unwrap();
        assert_eq!(raw[0], RECORD_BINARY);
        let rec = parse_record(&raw).unwrap();
        assert_eq!(rec.path, "p1/");
        assert_eq!(
            rec.custom_metadata.get("team").map(String::as_str),
            Some("a")
        );
        assert_eq!(rec.has_children, Some(false));
        assert!(rec.mounts.as_ref().unwrap().get("secret/").is_some());
        assert!(raw.len() < 200, "{} bytes", raw.len());
        // Every truncation, and a trailing byte, is refused (an error, not a panic).
        for n in 0..raw.len() {
            assert!(parse_record(&raw[..n]).is_err(), "{n} bytes");
        }
        assert!(parse_record(&[&raw[..], &[0]].concat()).is_err());

        // A JSON record, as written before, reads the same and loads the same...
        core.barrier
            .put(&record_key("p1"), &serde_json::to_vec(&rec).unwrap())
            .await
            .unwrap();
        assert_eq!(stored(&core, "p1").await, rec);
        let fresh = Registry::new(core.barrier.clone());
        let p1 = fresh.lookup(&fresh.root(), "p1").await.unwrap().unwrap();
        assert_eq!(*p1.mounts(), rec.mounts.clone().unwrap());
        assert_eq!(p1.ns.custom_metadata, rec.custom_metadata);
        // ...and is stored binary with the record's next write.
        req(
            "sys/namespaces/p1",
            json!({"custom_metadata": {"team": "b"}}),
        )
        .await;
        let raw = core.barrier.get(&record_key("p1")).await.unwrap().unwrap();
        assert_eq!(raw[0], RECORD_BINARY);
        assert_eq!(stored(&core, "p1").await.mounts, rec.mounts);
    }

    #[tokio::test]
    async fn a_change_made_through_an_evicted_state_reaches_the_state_loaded_meanwhile() {
        let core = Core::for_tests();
        core.initialize(1, 1, Some("root".into())).await.unwrap();
        core.root_ok(Operation::Update, "sys/namespaces/p1", json!({}))
            .await;
        let active = core.active().unwrap();
        let reg = &active.namespaces;
        let lookup = || async { reg.lookup(&reg.root(), "p1").await.unwrap().unwrap() };
        // A request holds p1's state while the loaded cache evicts it, and another request
        // loads p1 again meanwhile: the cache now keeps that second state.
        let held = lookup().await;
        reg.loaded.cache.clear();
        reg.root.children.write().clear();
        let meanwhile = lookup().await;
        assert!(!Arc::ptr_eq(&held, &meanwhile));
        assert!(Arc::ptr_eq(&lookup().await, &meanwhile));
        let before = read_record(&reg.root_view, &record_key("p1/"))
            .await
            .unwrap()
            .unwrap();
        let generation = reg.loaded.generation();

        // The first request changes p1's secrets-engine table through the state it holds.
        let mut table = (*held.mounts()).clone();
        table.entries.push(crate::mounts::MountEntry {
            path: "secret/".into(),
            kind: "kv".into(),
            uuid: util::uuid4(),
            accessor: "kv_1234".into(),
            description: String::new(),
            config: Default::default(),
            options: BTreeMap::from([("version".into(), "2".into())]),
            local: false,
            seal_wrap: false,
        });
        held.save_secrets_table(table).await.unwrap();
        // The state loaded meanwhile is not served again: the next lookup loads the change.
        let after = lookup().await;
        assert!(!Arc::ptr_eq(&after, &meanwhile));
        assert!(after.mounts().get("secret/").is_some());
        // A state built from the record as it was before the change is not kept.
        reg.loaded.cache.clear();
        let (stale, kept) = reg.load(before, None, generation).await.unwrap();
        assert!(!kept);
        assert!(stale.mounts().get("secret/").is_none());
        assert!(lookup().await.mounts().get("secret/").is_some());

        // The same for the auth table.
        let meanwhile = lookup().await;
        let auth = (*held.auth_mounts().await.unwrap()).clone();
        let mut auth2 = auth.clone();
        auth2.entries.retain(|e| e.path == "token/");
        held.set_auth_mounts(auth2);
        assert!(!Arc::ptr_eq(&lookup().await, &meanwhile));
    }

    #[tokio::test]
    async fn a_full_loaded_cache_keeps_one_load_in_eight() {
        let core = Core::for_tests();
        core.initialize(1, 1, Some("root".into())).await.unwrap();
        for i in 0..40 {
            core.root_ok(
                Operation::Update,
                &format!("sys/namespaces/n{i}"),
                json!({}),
            )
            .await;
        }
        let mut reg = Registry::new(core.barrier.clone());
        // One entry per shard: the cache is full after a few loads.
        reg.loaded = Loaded::new(16);
        reg.shared = Shared::new(&reg.loaded);
        let record = |i: usize| {
            let view = reg.root_view.clone();
            async move {
                read_record(&view, &record_key(&format!("n{i}/")))
                    .await
                    .unwrap()
                    .unwrap()
            }
        };
        // Namespaces loaded once each: past the free slots, about one in eight is kept.
        let mut kept = 0;
        for i in 0..40 {
            let generation = reg.loaded.generation();
            let (state, k) = reg.load(record(i).await, None, generation).await.unwrap();
            assert_eq!(k, reg.loaded.cache.get(&state.ns.id).is_some());
            kept += usize::from(k);
        }
        assert!(kept <= 16 + 40 / ADMIT_ONE_IN as usize, "{kept} kept");
        // Loaded alone, a namespace gets in within eight loads; then the cache serves it.
        let mut loads = 0;
        loop {
            loads += 1;
            let generation = reg.loaded.generation();
            let (_, k) = reg.load(record(39).await, None, generation).await.unwrap();
            if k {
                break;
            }
            assert!(loads < ADMIT_ONE_IN, "not kept after {loads} loads");
        }
        let generation = reg.loaded.generation();
        let (first, _) = reg.load(record(39).await, None, generation).await.unwrap();
        let (second, k) = reg.load(record(39).await, None, generation).await.unwrap();
        assert!(k && Arc::ptr_eq(&first, &second));
    }

    #[tokio::test]
    async fn a_namespace_that_left_the_loaded_cache_loads_again_from_its_compact_record() {
        let core = Core::for_tests();
        core.initialize(1, 1, Some("root".into())).await.unwrap();
        let req = |path: &'static str, body: Value| core.root_ok(Operation::Update, path, body);
        req("sys/namespaces/p1", json!({})).await;
        req(
            "p1/sys/mounts/secret",
            json!({"type": "kv", "options": {"version": "2"}}),
        )
        .await;
        let active = core.active().unwrap();
        let reg = &active.namespaces;
        // What a fresh lookup finds, as the loaded cache would hold it after an eviction.
        let reload = || async {
            reg.loaded.cache.clear();
            reg.root.children.write().clear();
            reg.lookup(&reg.root(), "p1").await.unwrap()
        };
        let p1 = reload().await.unwrap();
        // A reload while the evicted state is still held shares its admin lock.
        let held = reload().await.unwrap();
        assert!(!Arc::ptr_eq(&p1, &held));
        assert!(std::ptr::eq(p1.admin(), held.admin()));
        drop(held);
        let mut rec = stored(&core, "p1").await;
        rec.path = "p1/".into();
        assert_eq!(reg.shared.records.decoded("p1/"), Some(rec.clone()));

        // The compact record is consulted before storage: a marked copy is what loads.
        let mut marked = rec.clone();
        marked
            .custom_metadata
            .insert("from".into(), "compact".into());
        reg.shared
            .records
            .cache
            .insert("p1/".into(), compact::encode(&marked).into());
        let again = reload().await.unwrap();
        assert!(!Arc::ptr_eq(&p1, &again));
        assert_eq!(again.ns.custom_metadata, marked.custom_metadata);
        assert_eq!(*again.mounts(), rec.mounts.clone().unwrap());
        // Built from the compact record, it routes in the record as the table does.
        assert!(matches!(again.mounts, Mounts::Compact(..)));
        let table = rec.mounts.clone().unwrap();
        let secret = table.get("secret/").unwrap();
        let routed = again.logical("secret/data/app").unwrap();
        assert_eq!(routed.path_len, "secret/".len());
        let engine = crate::engines::engine_for(&secret.kind, &secret.options);
        assert!(std::ptr::addr_eq(routed.engine, engine));
        assert_eq!(
            routed.view.prefix(),
            again.view.logical(&secret.uuid).prefix()
        );
        assert!(again.logical("nothing/here").is_none());
        reg.shared.records.forget("p1/");

        // Every change of the record forgets the compact copy, so the next load sees it:
        // a tuned mount,
        req("p1/sys/mounts/secret/tune", json!({"description": "tuned"})).await;
        assert_eq!(reg.shared.records.decoded("p1/"), None);
        let p1 = reload().await.unwrap();
        assert_eq!(p1.mounts().get("secret/").unwrap().description, "tuned");
        // new metadata,
        req(
            "sys/namespaces/p1",
            json!({"custom_metadata": {"team": "a"}}),
        )
        .await;
        let p1 = reload().await.unwrap();
        assert_eq!(
            p1.ns.custom_metadata.get("team").map(String::as_str),
            Some("a")
        );
        // a first child (the parent's record then says it has children),
        assert!(reg.shared.records.decoded("p1/").is_some());
        req("sys/namespaces/p1/sub", json!({})).await;
        let p1 = reload().await.unwrap();
        assert_eq!(p1.ns.has_children, Some(true));
        assert!(reg.lookup(&p1, "sub").await.unwrap().is_some());
        // and a deletion.
        core.root_ok(Operation::Delete, "sys/namespaces/p1/sub", json!({}))
            .await;
        reload().await.unwrap();
        assert!(reg.shared.records.decoded("p1/sub/").is_none());
        let p1 = reload().await.unwrap();
        assert!(reg.lookup(&p1, "sub").await.unwrap().is_none());
    }
}
