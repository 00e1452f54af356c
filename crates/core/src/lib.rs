//! The Strongroom core: everything between the HTTP edge and the barrier.
//!
//! A [`Request`] (already stripped of HTTP) goes through [`Core::handle`], which
//! 1. answers the few endpoints that work while sealed (`sys/init`, `sys/seal-status`,
//!    `sys/unseal`, `sys/health`, `sys/leader`), else refuses with [`CoreError::Sealed`];
//! 2. resolves the namespace (header and path prefix), lazily loading it from storage;
//! 3. authenticates the token (hashed lookup, cached; batch tokens are decrypted);
//! 4. routes to the system backend, the token store or a mounted engine, deciding
//!    create-vs-update by existence;
//! 5. asks the ACL ([`strongroom_acl`]) — the one place that allows or denies — and only
//!    then dispatches.
//!
//! Architecture invariant: nothing here knows about HTTP; every persistent byte goes
//! through the barrier via a [`view::View`]; no handler decides access on its own.

#![forbid(unsafe_code)]

pub mod api;
mod auth;
mod codec;
pub mod cors;
mod engines;
pub mod error;
#[doc(hidden)]
pub mod fuzz_entry;
mod leases;
mod mounts;
mod namespace;
mod policy;
mod rekey;
pub mod release;
pub mod request;
mod route;
mod sys;
mod token;
mod token_role;
pub mod util;
mod view;
mod wrapping;

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use strongroom_acl::Acl;
use strongroom_barrier::seal::{SealConfig, StaticSeal};
use strongroom_barrier::{Barrier, UnsealKey};
use strongroom_storage::Storage;
use zeroize::Zeroizing;

pub use error::{CoreError, Result};
pub use request::{Auth, Body, InlineAuth, Operation, Request, Response, WrapInfo};
pub use token::TokenEntry;

use namespace::{NsState, Registry};
use strongroom_barrier::cache::Cache;

/// Server-wide settings the core needs.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    pub default_lease_ttl: i64,
    pub max_lease_ttl: i64,
    pub cluster_name: String,
    /// Mount a kv-v2 engine at `secret/` right after `sys/init` (dev mode).
    pub dev_mount_secret: bool,
    pub api_addr: Option<String>,
    /// Fetch JWKS/discovery documents over plain HTTP from loopback addresses (dev, tests).
    pub allow_loopback_http: bool,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            default_lease_ttl: 768 * 3600,
            max_lease_ttl: 768 * 3600,
            cluster_name: format!("strongroom-cluster-{}", &util::uuid4()[..8]),
            dev_mount_secret: false,
            api_addr: None,
            allow_loopback_http: false,
        }
    }
}

/// Where the unseal key comes from.
pub enum Seal {
    Shamir,
    Static(StaticSeal),
}

/// Shares typed in through `sys/unseal` so far. Zeroized when dropped or reset.
#[derive(Default)]
struct UnsealProgress {
    shares: Vec<Zeroizing<Vec<u8>>>,
    nonce: String,
}

/// State that exists only while unsealed; dropping it forgets every cached secret.
pub(crate) struct Active {
    /// HMAC key (the per-install salt) that token values are stored under.
    pub token_key: aws_lc_rs::hmac::Key,
    pub namespaces: Registry,
    pub tokens: Cache<String, Arc<TokenEntry>>,
    /// SHA-256(batch token) → its decoded entry: a job presents the same batch token on
    /// each of its requests; decrypting and parsing it once is enough (it is immutable).
    pub batch_tokens: Cache<[u8; 32], Arc<TokenEntry>>,
    pub acls: Cache<String, Arc<Acl>>,
    /// Moved by every policy change another node made (seen as an invalidation): an ACL
    /// whose policies were read before it moved is not kept (`policy::acl_for`).
    pub acl_epoch: std::sync::atomic::AtomicU64,
    pub cluster_id: String,
}

pub struct Core {
    pub(crate) barrier: Arc<Barrier>,
    pub(crate) cfg: CoreConfig,
    pub(crate) seal: Seal,
    unseal: parking_lot::Mutex<UnsealProgress>,
    /// A `sys/rekey` attempt in progress on this node.
    pub(crate) rekey: parking_lot::Mutex<Option<rekey::Attempt>>,
    pub(crate) active: ArcSwapOption<Active>,
    lifecycle: tokio::sync::Mutex<()>,
    pub(crate) version: &'static str,
    pub(crate) jwks: auth::jwks::JwksCache,
    /// SHA-256(mount, JWT) → when its signature was verified.
    pub(crate) verified_jwts: Cache<[u8; 32], i64>,
    /// (mount uuid, role) → parsed jwt config and role.
    pub(crate) jwt_parsed: Cache<String, Arc<auth::jwt::ParsedRole>>,
    /// SHA-256(mount, role, JWT) → the token entry an inline login with it produced, and
    /// until when it may stand in for the login (see `auth::jwt::inline_login`). A job's
    /// requests come within seconds of each other: 4096 jobs in flight is plenty, and a
    /// larger bound costs peak memory under a burst of jobs.
    pub(crate) inline_logins: Cache<[u8; 32], Arc<(i64, Arc<TokenEntry>)>>,
    /// This node holds the background-work lease (always true on single-node storage).
    leader: std::sync::atomic::AtomicBool,
    /// `<random id> <api address>`: how this node names itself in leases.
    pub node_id: String,
}

/// The result of authenticating a request's token.
pub(crate) struct Caller {
    pub entry: Arc<TokenEntry>,
    /// The token as presented (returned by lookup-self as `id`). Never logged.
    pub token_id: String,
    pub acl: Arc<Acl>,
    /// The namespace the token belongs to.
    pub ns: Arc<NsState>,
}

/// Where a request goes.
pub(crate) enum Route {
    Sys(route::Matched<sys::SysPath>),
    Token(route::Matched<token::TokenPath>),
    /// A secrets engine: what the request needs of its mount, the engine's entry for
    /// the path, and the path after the mount.
    Logical(
        mounts::LogicalMount,
        &'static route::PathSpec<&'static str>,
        String,
    ),
    /// An auth method other than the token store (`auth/<path>/…`).
    Auth(AuthRoute),
}

/// A request to an auth method's mount.
pub(crate) struct AuthRoute {
    table: Arc<mounts::MountTable>,
    /// The mount's entry in `table`.
    index: usize,
    method: &'static dyn auth::AuthMethod,
    spec: &'static route::PathSpec<&'static str>,
    /// The path after the mount.
    rest: String,
}

impl AuthRoute {
    fn mount(&self) -> &mounts::MountEntry {
        &self.table.entries[self.index]
    }
}

/// The server's own secrets manager: root's ACL in the root namespace, no token, no uses
/// to count. Made only for a request carrying a [`request::SystemCaller`].
fn system_caller(active: &Active) -> Caller {
    // Built once: the same entry and ACL serve every such request.
    static ENTRY: std::sync::LazyLock<Arc<TokenEntry>> = std::sync::LazyLock::new(|| {
        Arc::new(TokenEntry {
            batch: true,
            ..TokenEntry::root_policy("system:secrets-manager")
        })
    });
    static ACL: std::sync::LazyLock<Arc<Acl>> = std::sync::LazyLock::new(|| Arc::new(Acl::root()));
    Caller {
        entry: ENTRY.clone(),
        token_id: String::new(),
        acl: ACL.clone(),
        ns: active.namespaces.root(),
    }
}

/// Whether `rel` is a mount's path without its trailing slash (`kv` for `kv/`), which
/// OpenBao's router reads as the mount's path.
async fn names_mount_without_slash(ns: &NsState, rel: &str) -> Result<bool> {
    if rel.is_empty() || rel.ends_with('/') {
        return Ok(false);
    }
    if rel == "sys" || rel == "auth/token" {
        return Ok(true);
    }
    if let Some(auth_rel) = rel.strip_prefix("auth/") {
        let table = ns.auth_mounts().await?;
        return Ok(table
            .longest_match_index(auth_rel)
            .and_then(|i| table.entries.get(i))
            .is_some_and(|e| e.path.len() > auth_rel.len()));
    }
    Ok(ns.logical(rel).is_some_and(|m| m.path_len > rel.len()))
}

impl Core {
    pub fn new(storage: Arc<dyn Storage>, cfg: CoreConfig, seal: Seal) -> Arc<Core> {
        // Storage other nodes write to cannot be cached locally without invalidation; the
        // barrier's value cache is only for storage this process owns.
        let cache = !storage.shared();
        let cfg_api_addr = cfg.api_addr.clone().unwrap_or_default();
        Arc::new(Core {
            barrier: Arc::new(Barrier::with_cache(storage, cache)),
            cfg,
            seal,
            unseal: parking_lot::Mutex::new(UnsealProgress::default()),
            rekey: parking_lot::Mutex::new(None),
            active: ArcSwapOption::empty(),
            lifecycle: tokio::sync::Mutex::new(()),
            version: env!("CARGO_PKG_VERSION"),
            jwks: auth::jwks::JwksCache::default(),
            verified_jwts: Cache::new(65_536),
            jwt_parsed: Cache::new(1_024),
            inline_logins: Cache::new(4_096),
            leader: std::sync::atomic::AtomicBool::new(false),
            node_id: format!("{} {}", &util::uuid4()[..8], cfg_api_addr),
        })
    }

    /// Forget every remembered JWT verification, parsed role and inline-login outcome:
    /// after any change to a jwt mount's config, its roles or its tuning.
    pub(crate) fn forget_jwt_logins(&self) {
        self.verified_jwts.clear();
        self.forget_jwt_roles();
    }

    /// Forget parsed roles and inline-login outcomes (a role changed; verified signatures
    /// still stand).
    pub(crate) fn forget_jwt_roles(&self) {
        self.jwt_parsed.clear();
        self.inline_logins.clear();
    }

    /// A core on memory storage with a static seal, not yet initialized (unit tests).
    #[cfg(test)]
    pub(crate) fn for_tests() -> Arc<Core> {
        Core::new(
            Arc::new(strongroom_storage::MemoryStorage::new()),
            CoreConfig::default(),
            Seal::Static(StaticSeal {
                current_key_id: "test".into(),
                current: UnsealKey::generate(),
                previous: None,
            }),
        )
    }

    /// A request with the root token (`"root"`) in namespace `ns` (`""`: root), for tests.
    #[cfg(test)]
    pub(crate) async fn root_request(
        &self,
        ns: &str,
        op: Operation,
        path: &str,
        data: serde_json::Value,
    ) -> Result<Response> {
        let mut req = Request::new(op, path).with_token("root").with_data(data);
        req.namespace = ns.into();
        self.handle(req).await
    }

    /// [`Core::root_request`] in the root namespace that must succeed, for tests.
    #[cfg(test)]
    pub(crate) async fn root_ok(
        &self,
        op: Operation,
        path: &str,
        data: serde_json::Value,
    ) -> Response {
        match self.root_request("", op, path, data).await {
            Ok(r) => r,
            Err(e) => panic!("{op:?} {path}: {e}"),
        }
    }

    pub fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    pub fn is_sealed(&self) -> bool {
        self.active.load().is_none()
    }

    pub async fn is_initialized(&self) -> Result<bool> {
        Ok(self.barrier.is_initialized().await?)
    }

    pub(crate) fn active(&self) -> Result<Arc<Active>> {
        self.active.load_full().ok_or(CoreError::Sealed)
    }

    /// Initialize: create keys, split the unseal key, create the root token.
    /// Returns (key shares, root token). With a static seal there are no shares.
    pub async fn initialize(
        &self,
        shares: u8,
        threshold: u8,
        root_token_id: Option<String>,
    ) -> Result<(Vec<Zeroizing<Vec<u8>>>, Zeroizing<String>)> {
        let _g = self.lifecycle.lock().await;
        if self.barrier.is_initialized().await? {
            return Err(CoreError::bad("Vault is already initialized"));
        }
        let (unseal_key, key_shares, seal_cfg) = match &self.seal {
            Seal::Shamir => {
                let key = UnsealKey::generate();
                let parts = strongroom_barrier::shamir::split(key.expose(), shares, threshold)
                    .map_err(|e| CoreError::bad(e.to_string()))?;
                (
                    key,
                    parts,
                    SealConfig {
                        kind: "shamir".into(),
                        secret_shares: shares,
                        secret_threshold: threshold,
                    },
                )
            }
            Seal::Static(s) => (
                UnsealKey::from_bytes(s.current.expose().to_vec()),
                Vec::new(),
                SealConfig {
                    kind: "static".into(),
                    secret_shares: 1,
                    secret_threshold: 1,
                },
            ),
        };
        self.barrier.initialize(&unseal_key).await?;
        self.barrier
            .storage()
            .put(
                strongroom_barrier::SEAL_CONFIG_PATH,
                serde_json::to_vec(&seal_cfg).expect("json"),
            )
            .await?;
        // Fresh install: salt, root namespace defaults, root token.
        let mut salt = strongroom_barrier::random_key();
        self.barrier.put("core/token-salt", &salt).await?;
        salt.iter_mut().for_each(|b| *b = 0);
        self.barrier
            .put("core/cluster-id", util::uuid4().as_bytes())
            .await?;
        self.activate().await?;
        let active = self.active()?;
        let root = active.namespaces.root();
        policy::install_defaults(&root).await?;
        if self.cfg.dev_mount_secret {
            mounts::enable_mount(
                self,
                &root,
                "secret/",
                "kv",
                "key/value secret storage",
                [("version".to_owned(), "2".to_owned())].into(),
                Default::default(),
            )
            .await?;
        }
        let root_token = token::create_root_token(self, &active, root_token_id).await?;
        token::mark_expiry_indexed(&root).await?;
        // Like OpenBao: a Shamir-sealed server starts sealed after init; the operator
        // unseals it with the shares just handed out. A static seal unseals itself.
        if matches!(self.seal, Seal::Shamir) {
            self.active.store(None);
            self.barrier.seal();
        }
        Ok((key_shares, root_token))
    }

    /// Load what unsealed operation needs (salt, cluster id) and open for requests.
    async fn activate(&self) -> Result<()> {
        let salt = self
            .barrier
            .get("core/token-salt")
            .await?
            .ok_or_else(|| CoreError::Internal("token salt missing".into()))?;
        let cluster_id = self
            .barrier
            .get("core/cluster-id")
            .await?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let active = Active {
            token_key: aws_lc_rs::hmac::Key::new(
                aws_lc_rs::hmac::HMAC_SHA256,
                &Zeroizing::new(salt),
            ),
            namespaces: Registry::new(self.barrier.clone()),
            tokens: Cache::new(100_000),
            batch_tokens: Cache::new(4_096),
            acls: Cache::new(10_000),
            acl_epoch: std::sync::atomic::AtomicU64::new(0),
            cluster_id,
        };
        active.namespaces.load_root().await?;
        self.active.store(Some(Arc::new(active)));
        Ok(())
    }

    /// The stored seal configuration (shares/threshold), if initialized.
    pub async fn seal_config(&self) -> Result<Option<SealConfig>> {
        match self
            .barrier
            .storage()
            .get(strongroom_barrier::SEAL_CONFIG_PATH)
            .await?
        {
            None => Ok(None),
            Some(b) => Ok(serde_json::from_slice(&b).ok()),
        }
    }

    /// Add one Shamir share. Returns `true` once unsealed. Duplicate shares are ignored.
    pub async fn submit_unseal_share(&self, share: Zeroizing<Vec<u8>>) -> Result<bool> {
        let _g = self.lifecycle.lock().await;
        if !self.is_sealed() {
            return Ok(true);
        }
        let cfg = self
            .seal_config()
            .await?
            .ok_or_else(|| CoreError::bad("Vault is not initialized"))?;
        let keys = {
            let mut p = self.unseal.lock();
            if p.shares.is_empty() {
                p.nonce = util::uuid4();
            }
            if !p.shares.iter().any(|s| s[..] == share[..]) {
                p.shares.push(share);
            }
            if p.shares.len() < cfg.secret_threshold as usize {
                return Ok(false);
            }
            std::mem::take(&mut p.shares)
        };
        self.unseal.lock().nonce.clear();
        let key = strongroom_barrier::shamir::combine(&keys, cfg.secret_threshold)
            .map_err(|e| CoreError::bad(format!("failed to combine key shares: {e}")))?;
        match self
            .barrier
            .unseal(&UnsealKey::from_bytes(key.to_vec()))
            .await
        {
            Ok(()) => {}
            Err(strongroom_barrier::BarrierError::InvalidKey) => {
                return Err(CoreError::bad(
                    "Error unsealing: cipher: message authentication failed",
                ))
            }
            Err(e) => return Err(e.into()),
        }
        self.activate().await?;
        Ok(true)
    }

    /// Unseal with the configured static key (auto-unseal). Rewraps from the previous key.
    pub async fn auto_unseal(&self) -> Result<()> {
        let _g = self.lifecycle.lock().await;
        let Seal::Static(s) = &self.seal else {
            return Err(CoreError::bad("not an auto-unseal seal"));
        };
        if self.active.load().is_some() {
            // Unsealed meanwhile (by `sys/init` on this node): nothing to do.
            return Ok(());
        }
        let rewrapped = s.unseal(&self.barrier).await.map_err(CoreError::from)?;
        if rewrapped {
            tracing::info!(key_id = %s.current_key_id, "root key rewrapped under the current static seal key");
        }
        self.activate().await
    }

    pub fn unseal_progress(&self) -> (usize, String) {
        let p = self.unseal.lock();
        (p.shares.len(), p.nonce.clone())
    }

    pub fn reset_unseal(&self) {
        let mut p = self.unseal.lock();
        p.shares.clear();
        p.nonce.clear();
    }

    /// Drop every key and cache. Requests answer 503 until unsealed again.
    pub async fn seal(&self) {
        let _g = self.lifecycle.lock().await;
        self.active.store(None);
        self.barrier.seal();
        self.reset_unseal();
    }

    /// Handle one request end to end.
    pub async fn handle(&self, req: Request) -> Result<Response> {
        let path = req.path.trim_start_matches('/');
        // As OpenBao refuses them before routing: `.`/`..` segments would name another
        // path than the one the ACL checks, and a write to a "directory" has no clear target.
        if is_relative_path(path) {
            return Err(CoreError::bad("relative paths not supported"));
        }
        if path.ends_with('/') && (req.is_write || req.op() == Operation::Patch) {
            return Err(CoreError::bad("cannot write to a path ending in '/'"));
        }
        if let Some(m) = path
            .strip_prefix("sys/")
            .and_then(|rest| route::find(sys::PATHS, rest))
        {
            if m.spec.unauthenticated {
                if !m.spec.serves(req.op()) {
                    return Err(CoreError::UnsupportedOperation);
                }
                let fields = route::Fields::check(m.spec.fields, &req.data)?;
                return Box::pin(sys::unauthenticated(self, m.spec.handler, &req, &fields)).await;
            }
        }
        let active = self.active()?;
        let (ns, rel) = active.namespaces.resolve(&req.namespace, path).await?;
        // A path no mount serves (`Err`, with its 404 message) is answered once the caller
        // is known, below.
        let route = match self.route(&ns, &rel).await {
            Ok(r) => Ok(r),
            Err(CoreError::NotFound(m)) => Err(m),
            Err(e) => return Err(e),
        };
        // Logins are the one unauthenticated operation on an auth mount.
        if let Ok(Route::Auth(a)) = &route {
            if a.spec.unauthenticated && req.is_write {
                let fields = route::Fields::check(a.spec.fields, &req.data)?;
                if req.inline_auth.is_some() {
                    return Err(CoreError::bad(
                        "inline authentication cannot be used on a login request",
                    ));
                }
                let (id, entry) = a
                    .method
                    .login(self, &active, &ns, a.mount(), &fields, req.client_ip)
                    .await?;
                return Ok(Response {
                    auth: Some(token::login_auth(entry, id)),
                    ..Default::default()
                });
            }
        }
        let caller = match &req.inline_auth {
            _ if req.system.is_some() => system_caller(&active),
            // No login runs for a path nothing serves.
            Some(_) if route.is_err() => return Err(CoreError::PermissionDenied),
            Some(ia) => {
                if req.token.as_deref().is_some_and(|t| !t.is_empty()) {
                    return Err(CoreError::bad(
                        "a request cannot carry both a client token and inline authentication",
                    ));
                }
                Box::pin(self.inline_login(&active, &req, ia))
                    .await
                    .map_err(|e| CoreError::InlineAuthFailed(Box::new(e)))?
            }
            None => token::authenticate(self, &active, req.token.as_deref(), req.client_ip).await?,
        };
        let (ns, rel) = if ns.is_within(&caller.ns) {
            (ns, rel)
        } else if matches!(&route, Ok(Route::Token(m)) if m.spec.handler.is_self()) {
            // A token's own lookup, renewal and revocation work from any namespace above
            // its own, as in OpenBao: they are answered in the token's namespace.
            (caller.ns.clone(), rel)
        } else {
            return Err(CoreError::PermissionDenied);
        };
        let mut acl_path = util::concat(&[ns.relative_to(&caller.ns), &rel]);
        // A write to a mount's path without its slash (`PUT kv`) is checked as the mount's
        // path (`kv/`): OpenBao's router appends the slash while it runs the existence
        // check, before the ACL sees the path.
        if req.is_write && names_mount_without_slash(&ns, &rel).await? {
            acl_path.push('/');
        }
        let route = match route {
            Ok(r) => r,
            // 404 only to a caller allowed there, as in OpenBao. To anyone else it is 403
            // like any path they may not use, so a request without a token, or with a weak
            // one, cannot tell which mounts exist. Nothing runs, so no use is counted.
            Err(msg) => {
                let op = if req.is_write {
                    Operation::Update
                } else {
                    req.op()
                };
                return Err(
                    if caller.acl.check(op, &acl_path, Some(&req.data)).allowed {
                        CoreError::NotFound(msg)
                    } else {
                        CoreError::PermissionDenied
                    },
                );
            }
        };
        let mut op = req.op();
        if req.is_write {
            op = match self.exists(&ns, &route).await? {
                Some(false) => Operation::Create,
                _ => Operation::Update,
            };
        }
        // The path's declared needs: sudo, and a handler that answers by its own rule
        // (`sys/internal/ui/mounts` shows what the caller may reach under each mount).
        let (needs_sudo, own_acl) = match &route {
            Route::Sys(m) => (m.spec.sudo, m.spec.own_acl),
            Route::Token(m) => (m.spec.sudo, m.spec.own_acl),
            Route::Logical(_, spec, _) => (spec.sudo, spec.own_acl),
            Route::Auth(a) => (a.spec.sudo, a.spec.own_acl),
        };
        let decision = if own_acl {
            strongroom_acl::Decision {
                allowed: true,
                sudo: false,
                parameters_refused: false,
            }
        } else {
            caller.acl.check(op, &acl_path, Some(&req.data))
        };
        if !decision.allowed {
            return Err(CoreError::PermissionDenied);
        }
        if needs_sudo && !decision.sudo {
            return Err(CoreError::PermissionDenied);
        }
        let served = match &route {
            Route::Sys(m) => m.spec.serves(op),
            Route::Token(m) => m.spec.serves(op),
            Route::Logical(_, spec, _) => spec.serves(op),
            Route::Auth(a) => a.spec.serves(op),
        };
        if !served {
            return Err(CoreError::UnsupportedOperation);
        }
        // The entry's declared fields, checked before anything runs.
        let declared = match &route {
            Route::Sys(m) => m.spec.fields,
            Route::Token(m) => m.spec.fields,
            Route::Logical(_, spec, _) => spec.fields,
            Route::Auth(a) => a.spec.fields,
        };
        let fields = route::Fields::check(declared, &req.data)?;
        let last_use = if req.inline_auth.is_some() {
            false
        } else {
            token::consume_use(self, &active, &caller).await?
        };
        let result = match route {
            // The rarer branches are boxed: each would otherwise add its whole state to
            // every request's future, which a KV read allocates too.
            Route::Sys(m) => {
                Box::pin(sys::handle(
                    self,
                    &active,
                    &ns,
                    &caller,
                    op,
                    m.spec.handler,
                    &m.captures,
                    &req,
                    &fields,
                ))
                .await
            }
            Route::Token(m) => {
                Box::pin(token::handle(
                    self,
                    &active,
                    &ns,
                    &caller,
                    m.spec.handler,
                    op,
                    &m.captures,
                    decision.sudo,
                    &fields,
                ))
                .await
            }
            Route::Auth(a) => {
                a.method
                    .handle(self, &ns, a.mount(), op, &a.rest, &fields)
                    .await
            }
            Route::Logical(mount, _, rest) => {
                // What a scoped mount matches a secret's scope against: the caller's
                // pipeline claims; root (and the server's own secrets manager) is trusted.
                let claims = (!caller.acl.is_root()).then_some(&caller.entry.meta);
                mount
                    .engine
                    .handle(&mount, op, &rest, &fields, claims)
                    .await
            }
        };
        if last_use {
            Box::pin(token::revoke_tree(self, &active, &caller.entry)).await?;
        }
        // A client that asked for its response wrapped gets it only as a single-use
        // wrapping token; an answer with nothing in it (a 204) is not wrapped.
        match (result, req.wrap_ttl.filter(|t| *t > 0)) {
            (Ok(resp), Some(ttl)) if !resp.is_empty() && !matches!(resp.body, Body::Raw(_)) => {
                Box::pin(wrapping::wrap(self, &active, &ns, &rel, resp, ttl)).await
            }
            (result, _) => result,
        }
    }

    /// Run an inline login: the token exists for this request only and is never stored.
    async fn inline_login(
        &self,
        active: &Active,
        req: &Request,
        ia: &request::InlineAuth,
    ) -> Result<Caller> {
        // The login's namespace is `X-Vault-Inline-Auth-Namespace` alone (absent: the
        // root), with the login path's own prefix, as OpenBao resolves it: the request's
        // `X-Vault-Namespace` names where the request runs, not where the caller logs in.
        let (ns, rel) = active
            .namespaces
            .resolve(
                ia.namespace.trim_matches('/'),
                ia.path.trim_start_matches('/'),
            )
            .await?;
        let not_login = || {
            CoreError::bad(format!(
                "inline auth path {:?} is not a login path",
                ia.path
            ))
        };
        let Route::Auth(a) = self.route(&ns, &rel).await.map_err(|_| not_login())? else {
            return Err(not_login());
        };
        if !a.spec.unauthenticated {
            return Err(not_login());
        }
        let fields = route::Fields::check(a.spec.fields, &ia.data)?;
        let entry = a
            .method
            .inline_login(self, active, &ns, a.mount(), &fields, req.client_ip)
            .await?;
        let acl = policy::acl_for(active, &ns, &entry.policies).await?;
        Ok(Caller {
            entry,
            token_id: String::new(),
            acl,
            ns,
        })
    }

    async fn route(&self, ns: &Arc<NsState>, rel: &str) -> Result<Route> {
        let no_handler = || {
            CoreError::NotFound(format!(
                "no handler for route \"{rel}\". route entry not found."
            ))
        };
        // `sys/` and `auth/token/` are always there: a path their tables do not declare is
        // a 404, never another mount's.
        if let Some(rest) = rel.strip_prefix("sys/") {
            return route::find(sys::PATHS, rest)
                .map(Route::Sys)
                .ok_or_else(no_handler);
        }
        if rel == "sys" || rel == "auth/token" {
            return Err(no_handler());
        }
        if let Some(rest) = rel.strip_prefix("auth/token/") {
            return route::find(token::PATHS, rest)
                .map(Route::Token)
                .ok_or_else(no_handler);
        }
        if let Some(auth_rel) = rel.strip_prefix("auth/") {
            let table = ns.auth_mounts().await?;
            if let Some(index) = table.longest_match_index(auth_rel) {
                let entry = &table.entries[index];
                let method = auth::method_for(&entry.kind).ok_or_else(no_handler)?;
                let rest = auth_rel.get(entry.path.len()..).unwrap_or_default();
                let spec = route::find_spec(method.paths(), rest).ok_or_else(no_handler)?;
                let rest = rest.to_owned();
                return Ok(Route::Auth(AuthRoute {
                    table,
                    index,
                    method,
                    spec,
                    rest,
                }));
            }
        }
        if let Some(mount) = ns.logical(rel) {
            // Empty when `rel` is the mount's path without its slash.
            let rest = rel.get(mount.path_len..).unwrap_or_default();
            let spec = route::find_spec(mount.engine.paths(), rest).ok_or_else(no_handler)?;
            let rest = rest.to_owned();
            return Ok(Route::Logical(mount, spec, rest));
        }
        Err(no_handler())
    }

    async fn exists(&self, ns: &Arc<NsState>, route: &Route) -> Result<Option<bool>> {
        match route {
            Route::Logical(mount, _, rest) => mount.engine.exists(mount, rest).await,
            Route::Sys(m) if m.spec.existence_check => {
                policy::exists(ns, m.captures.get("name")).await
            }
            Route::Sys(_) | Route::Token(_) | Route::Auth(..) => Ok(None),
        }
    }

    /// Whether this node runs background work now.
    pub fn is_leader(&self) -> bool {
        self.leader.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One round of leader election: take or renew the background lease. Returns whether
    /// this node holds it.
    pub async fn elect(&self, ttl: std::time::Duration) -> bool {
        let held = self
            .barrier
            .storage()
            .acquire_lease("background", &self.node_id, ttl)
            .await
            .unwrap_or(false);
        self.leader
            .store(held, std::sync::atomic::Ordering::Relaxed);
        held
    }

    /// The address of the node holding the background lease, if known.
    pub async fn leader_address(&self) -> Option<String> {
        let h = self
            .barrier
            .storage()
            .lease_holder("background")
            .await
            .ok()??;
        h.split_once(' ').map(|(_, a)| a.to_owned())
    }

    /// Follow other nodes' writes and drop what they make stale (shared storage only).
    pub fn watch_invalidations(self: &Arc<Self>) {
        let Some(mut rx) = self.barrier.storage().invalidations() else {
            return;
        };
        let core = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let ev = match rx.recv().await {
                    Ok(ev) => ev,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => "*".to_owned(),
                    Err(_) => return,
                };
                let Some(core) = core.upgrade() else { return };
                core.invalidate(&ev).await;
            }
        });
    }

    /// Drop cached state a write to `event` (`k:<key>`, `p:<prefix>` or `*`) affects.
    /// A key is mapped to the caches it stales by the modules that keep them
    /// ([`Stale::of_key`]); a prefix or `*` (a lagging listener) stales everything.
    pub async fn invalidate(&self, event: &str) {
        let Ok(active) = self.active() else { return };
        let stale = match event.strip_prefix("k:") {
            Some(key) => Stale::of_key(key),
            None => Stale::everything(),
        };
        for s in stale {
            match s {
                Stale::Token(hash) => active.tokens.remove(&hash),
                Stale::Tokens => active.tokens.clear(),
                Stale::Acls => {
                    active
                        .acl_epoch
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    active.acls.clear();
                }
                Stale::Namespaces => {
                    active.namespaces.clear_caches();
                    if let Err(e) = active.namespaces.load_root().await {
                        tracing::warn!(error = %e, "reloading root mount tables failed");
                    }
                }
                Stale::JwtLogins => {
                    self.jwks.clear();
                    self.forget_jwt_logins();
                }
                Stale::Keyring => {
                    if let Err(e) = self.barrier.reload_keyring().await {
                        tracing::warn!(error = %e, "reloading the keyring failed");
                    }
                }
            }
        }
    }

    /// Background maintenance: expired tokens, keyring rotation by config.
    /// Safe to call from a timer; does nothing while sealed.
    pub async fn tick(&self) -> Result<()> {
        let Ok(active) = self.active() else {
            return Ok(());
        };
        if let Err(e) = self.barrier.rotate_if_due().await {
            tracing::warn!(error = %e, "automatic key rotation failed");
        }
        token::tidy(self, &active).await
    }
}

/// A cache that a write committed by another node may have made stale, named by the
/// module that keeps it. Each module says which of its storage keys stale what
/// (`token::stale_by`, `policy::stale_by`, `namespace::stale_by`, `auth::jwt::stale_by`);
/// a key no module claims (a secret's) stales nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stale {
    /// One token's parsed entry, by its stored hash.
    Token(String),
    Tokens,
    /// Compiled ACLs.
    Acls,
    /// Loaded namespaces and their mount tables.
    Namespaces,
    /// JWKS documents, verified JWTs, parsed jwt roles and inline logins.
    JwtLogins,
    /// The barrier's keyring.
    Keyring,
}

impl Stale {
    fn everything() -> Vec<Stale> {
        vec![
            Stale::Tokens,
            Stale::Acls,
            Stale::Namespaces,
            Stale::JwtLogins,
            Stale::Keyring,
        ]
    }

    /// The caches a write of the storage key `key` stales.
    fn of_key(key: &str) -> Vec<Stale> {
        if key == strongroom_barrier::KEYRING_PATH {
            return vec![Stale::Keyring];
        }
        // The key inside its namespace: `namespaces/<id>/` is a child namespace's prefix.
        let rel = key
            .strip_prefix("namespaces/")
            .and_then(|r| r.split_once('/'))
            .map_or(key, |(_, rel)| rel);
        let owners: [fn(&str, &str) -> Option<Stale>; 4] = [
            token::stale_by,
            policy::stale_by,
            namespace::stale_by,
            auth::jwt::stale_by,
        ];
        owners.iter().filter_map(|f| f(key, rel)).collect()
    }
}

/// OpenBao's `IsRelativePath`: a `.` or `..` segment anywhere. (`//` is allowed: the edge
/// redirects an uncleaned path, and a decoded `%2F%2F` names a key with an empty segment.)
fn is_relative_path(path: &str) -> bool {
    path.split('/').any(|seg| seg == "." || seg == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_storage_key_stales_only_what_its_owner_caches() {
        let u = "0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b";
        for (key, want) in [
            ("sys/token/id/h1", vec![Stale::Token("h1".into())]),
            (
                "namespaces/ab/sys/token/id/h2",
                vec![Stale::Token("h2".into())],
            ),
            ("sys/token/accessor/a1", vec![Stale::Tokens]),
            ("sys/policy/dev", vec![Stale::Acls]),
            ("namespaces/ab/sys/policy/dev", vec![Stale::Acls]),
            ("sys/mounts", vec![Stale::Namespaces]),
            ("namespaces/ab/sys/auth", vec![Stale::Namespaces]),
            ("core/ns-path/team", vec![Stale::Namespaces]),
            (&format!("auth/{u}/config"), vec![Stale::JwtLogins]),
            (
                &format!("namespaces/ab/auth/{u}/role/ci"),
                vec![Stale::JwtLogins],
            ),
            (strongroom_barrier::KEYRING_PATH, vec![Stale::Keyring]),
            // A secret named `app/config` or `role/x` is a secret, nothing else.
            (&format!("logical/{u}/metadata/app/config"), vec![]),
            (&format!("logical/{u}/meta/role/x"), vec![]),
            (&format!("namespaces/ab/logical/{u}/config"), vec![]),
            (&format!("logical/{u}/sys/policy/x"), vec![]),
            (&format!("auth/{u}/other"), vec![]),
        ] {
            assert_eq!(Stale::of_key(key), want, "{key}");
        }
    }

    /// Every request allocates its future: the rarer branches are boxed so that a KV read
    /// does not carry the state of every handler.
    #[test]
    fn a_request_future_stays_small() {
        let core = Core::for_tests();
        let fut = core.handle(Request::new(Operation::Read, "secret/data/x"));
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 4096, "Core::handle's future is {size} bytes");
    }
}
