//! The secrets manager's operations: the directory, secrets managers, secrets, grants and
//! a job's secrets. Each operation checks who asks with [`permissions::decide`] (people)
//! or [`scope::released`] (jobs), then acts through the core API.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use strongroom_core::api::{CoreApi, JwtAuthConfig, JwtRole};
use strongroom_core::CoreError;
use tokio::sync::{OnceCell, RwLock};
use zeroize::Zeroizing;

use crate::audit::{manager_event, secret_event, AuditActor, AuditEvent, AuditSink, LogSink};
use crate::directory::{AccessLevel, Directory, Group, Node, Project, User};
use crate::permissions::{self, Action, Actor, Grant, Operation, Principal};
use crate::scope::{self, Job, SecretMeta};
use crate::{now, store, Error, Result};

/// The kv-v2 mount of a secrets manager's namespace, and where secrets live in it.
pub const KV_MOUNT: &str = "secrets/kv";
pub const KV_PREFIX: &str = "explicit/";
/// The jwt auth mount and role GitLab Runner's resolvers log in with.
pub const JWT_MOUNT: &str = "pipeline_jwt";
pub const JWT_ROLE: &str = "all_pipelines";
/// The policy a project's pipelines get: read secrets, each released by its scope.
pub const PIPELINE_POLICY: &str = "pipeline";
/// The root namespace's jwt mount that checks a job's token for `POST /api/ci/secrets`.
pub const CI_MOUNT: &str = "strongroom-ci";
pub const CI_ROLE: &str = "job";

/// The instance's CI issuer: whose ID tokens name jobs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CiConfig {
    pub issuer: String,
    pub jwks_url: String,
    pub oidc_discovery_url: String,
    /// PEM public keys (dev mode: the dev issuer's).
    pub public_keys: Vec<String>,
    /// The `aud` values a job's token may carry (one of them).
    pub audiences: Vec<String>,
}

/// Per-owner secret limits (0 = unlimited).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub secrets_per_project: usize,
    pub secrets_per_group: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            secrets_per_project: 100,
            secrets_per_group: 500,
        }
    }
}

/// `ProjectSecretsManager` / `GroupSecretsManager` status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ManagerStatus {
    Provisioning,
    Active,
    Deprovisioning,
}

impl ManagerStatus {
    pub fn name(self) -> &'static str {
        match self {
            ManagerStatus::Provisioning => "PROVISIONING",
            ManagerStatus::Active => "ACTIVE",
            ManagerStatus::Deprovisioning => "DEPROVISIONING",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretsManager {
    pub node: Node,
    pub status: ManagerStatus,
    /// The namespace that holds its mounts (`sm-p12`).
    pub namespace: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pat {
    user: u64,
    name: String,
    expires_at: Option<i64>,
    revoked: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Member {
    node: Node,
    user: u64,
    level: AccessLevel,
}

#[derive(Default)]
struct State {
    dir: Directory,
    managers: HashMap<Node, SecretsManager>,
    grants: HashMap<Node, Vec<Grant>>,
    /// SHA-256 (hex) of a personal access token → its record.
    pats: HashMap<String, Pat>,
    /// Above every id in use (ids are small integers, as GitLab's).
    next_id: u64,
}

impl State {
    fn take_id(&mut self) -> u64 {
        self.next_id = self.next_id.max(1);
        let id = self.next_id;
        self.next_id += 1;
        id
    }
}

/// Create a record under a fresh id, retrying when another node took the id first.
async fn create_with_id<A: CoreApi, T: Serialize>(
    api: &A,
    st: &mut State,
    kind: &str,
    make: impl Fn(&Directory, u64) -> Result<T>,
) -> Result<T> {
    for _ in 0..8 {
        let id = st.take_id();
        let record = make(&st.dir, id)?;
        if store::create(api, &format!("{kind}/{id}"), &record).await? {
            return Ok(record);
        }
    }
    Err(Error::conflict("could not allocate an id; retry"))
}

/// What a person sends to create or update a secret. `None` leaves a field as it is on
/// update.
#[derive(Clone, Debug, Default)]
pub struct SecretInput {
    pub value: Option<Zeroizing<String>>,
    pub environment: Option<String>,
    pub branch: Option<String>,
    pub protected: Option<bool>,
    pub description: Option<String>,
    /// `Some(None)` clears the expiry.
    pub expires_at: Option<Option<i64>>,
    pub rotation_interval_days: Option<Option<u32>>,
}

/// A secret as a person sees it.
#[derive(Clone, Debug)]
pub struct SecretView {
    pub name: String,
    pub meta: SecretMeta,
    pub version: u64,
    pub metadata_version: u64,
    /// Only with READ_VALUE, and only when asked for.
    pub value: Option<Zeroizing<String>>,
}

/// One secret released to a job.
#[derive(Clone, Debug, Serialize)]
pub struct CiSecret {
    pub name: String,
    #[serde(serialize_with = "ser_secret")]
    pub value: Zeroizing<String>,
    /// The full path of the project or group that owns it.
    pub source: String,
    pub version: u64,
}

fn ser_secret<S: serde::Serializer>(
    v: &Zeroizing<String>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

/// The answer of `POST /api/ci/secrets`.
#[derive(Clone, Debug, Serialize)]
pub struct CiSecrets {
    pub secrets: Vec<CiSecret>,
    pub missing: Vec<String>,
}

/// The secrets manager service. `A` is the core it is a client of (in this process, the
/// system caller of [`strongroom_core::api::InProcess::system`]).
pub struct Manager<A: CoreApi> {
    api: A,
    ci: CiConfig,
    limits: Limits,
    state: RwLock<State>,
    audit: Arc<dyn AuditSink>,
    setup: OnceCell<()>,
    /// The stored generation the state in memory reflects (`u64::MAX`: none yet).
    generation: AtomicU64,
}

fn sha256_hex(s: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes()).as_ref())
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The system RNG failing is not recoverable; a zero id would be refused below.
    let _ = aws_lc_rs::rand::fill(&mut b);
    b
}

pub fn check_secret_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 255
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(Error::invalid(
            "name must match ^[a-zA-Z0-9_]+$ and be at most 255 characters",
        ));
    }
    Ok(())
}

fn check_scope_glob(field: &str, s: &str) -> Result<()> {
    if s.is_empty() || s.len() > 255 || s.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{field} must be 1 to 255 printable characters ('*' matches any)"
        )));
    }
    Ok(())
}

/// The kv custom metadata that carries a secret's [`SecretMeta`].
pub fn meta_to_kv(m: &SecretMeta) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert("environment".into(), m.environment.clone());
    if let Some(b) = &m.branch {
        out.insert("branch".into(), b.clone());
    }
    if let Some(p) = m.protected {
        out.insert("protected".into(), p.to_string());
    }
    out.insert("description".into(), m.description.clone());
    if let Some(t) = m.expires_at {
        out.insert("expires_at".into(), t.to_string());
    }
    if let Some(d) = m.rotation_interval_days {
        out.insert("rotation_interval_days".into(), d.to_string());
    }
    out.insert("value_changed_at".into(), m.value_changed_at.to_string());
    out.insert("created_at".into(), m.created_at.to_string());
    out
}

/// Read a secret's scope back. `None` (released to no one) when the environment is
/// missing or a number does not parse: a secret whose scope cannot be read is not released.
fn meta_from_kv(kv: &BTreeMap<String, String>) -> Option<SecretMeta> {
    let num = |k: &str| -> Option<Option<i64>> {
        match kv.get(k) {
            None => Some(None),
            Some(v) => v.parse().ok().map(Some),
        }
    };
    Some(SecretMeta {
        environment: kv.get("environment")?.clone(),
        branch: kv.get("branch").cloned(),
        protected: match kv.get("protected").map(String::as_str) {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => return None,
        },
        description: kv.get("description").cloned().unwrap_or_default(),
        expires_at: num("expires_at")?,
        rotation_interval_days: match num("rotation_interval_days")? {
            None => None,
            Some(d) => Some(u32::try_from(d).ok()?),
        },
        value_changed_at: num("value_changed_at")?.unwrap_or_default(),
        created_at: num("created_at")?.unwrap_or_default(),
    })
}

impl<A: CoreApi> Manager<A> {
    pub fn new(api: A, ci: CiConfig, limits: Limits) -> Manager<A> {
        Manager {
            api,
            ci,
            limits,
            state: RwLock::new(State::default()),
            audit: Arc::new(LogSink),
            setup: OnceCell::new(),
            generation: AtomicU64::new(u64::MAX),
        }
    }

    /// Send audit events to `sink` instead of the log.
    pub fn with_audit(mut self, sink: Arc<dyn AuditSink>) -> Manager<A> {
        self.audit = sink;
        self
    }

    /// Record one event (never a value).
    fn audit(
        &self,
        name: String,
        actor: AuditActor,
        target: &str,
        secret: Option<&str>,
        details: serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        self.audit.record(&AuditEvent {
            name,
            actor,
            target: target.to_owned(),
            secret: secret.map(str::to_owned),
            details,
        })
    }

    /// Mount what the manager needs on first use, then make sure the records in memory
    /// are the stored ones: every change bumps the `generation` record, so a change made
    /// on another node (PostgreSQL, many nodes) is seen by the next request here.
    async fn ready(&self) -> Result<()> {
        self.setup
            .get_or_try_init(|| async {
                store::ensure_mount(&self.api).await?;
                self.ensure_ci_mount().await
            })
            .await?;
        let stored = store::generation(&self.api).await?;
        if self.generation.load(Ordering::Acquire) == stored {
            return Ok(());
        }
        let mut st = self.state.write().await;
        // Another request may have reloaded while this one waited.
        if self.generation.load(Ordering::Acquire) == stored {
            return Ok(());
        }
        *st = self.load().await?;
        self.generation.store(stored, Ordering::Release);
        Ok(())
    }

    /// Record a change: bump the generation. When no other node changed anything since
    /// this one loaded, the state in memory (with this change) is the stored one.
    async fn changed(&self) -> Result<()> {
        let before = self.generation.load(Ordering::Acquire);
        let now_at = store::bump_generation(&self.api).await?;
        if now_at == before.wrapping_add(1) {
            self.generation.store(now_at, Ordering::Release);
        } else {
            // Someone else changed something too: reload on the next request.
            self.generation.store(u64::MAX, Ordering::Release);
        }
        Ok(())
    }

    async fn load(&self) -> Result<State> {
        let mut st = State::default();
        let mut users: Vec<(String, User)> = store::load_all(&self.api, "users").await?;
        users.sort_by_key(|(_, u)| u.id);
        for (_, u) in users {
            st.dir.insert_user(u)?;
        }
        // Parents before children: by depth of the full path.
        let mut groups: Vec<(String, Group)> = store::load_all(&self.api, "groups").await?;
        groups.sort_by_key(|(_, g)| g.full_path.matches('/').count());
        for (_, g) in groups {
            st.dir.insert_group(g);
        }
        for (_, p) in store::load_all::<_, Project>(&self.api, "projects").await? {
            st.dir.insert_project(p);
        }
        for (_, m) in store::load_all::<_, Member>(&self.api, "members").await? {
            st.dir.set_member(m.node, m.user, Some(m.level));
        }
        for (_, sm) in store::load_all::<_, SecretsManager>(&self.api, "managers").await? {
            st.managers.insert(sm.node, sm);
        }
        for (k, g) in store::load_all::<_, Vec<Grant>>(&self.api, "grants").await? {
            if let Some(node) = parse_node_key(&k) {
                st.grants.insert(node, g);
            }
        }
        for (k, p) in store::load_all::<_, Pat>(&self.api, "pats").await? {
            st.pats.insert(k, p);
        }
        let max_id = st
            .dir
            .users()
            .map(|u| u.id)
            .chain(st.dir.groups.keys().copied())
            .chain(st.dir.projects.keys().copied())
            .max()
            .unwrap_or(0);
        st.next_id = max_id + 1;
        Ok(st)
    }

    fn jwt_config(&self) -> JwtAuthConfig {
        JwtAuthConfig {
            bound_issuer: self.ci.issuer.clone(),
            jwks_url: self.ci.jwks_url.clone(),
            oidc_discovery_url: self.ci.oidc_discovery_url.clone(),
            jwt_validation_pubkeys: self.ci.public_keys.clone(),
            jwt_supported_algs: Vec::new(),
        }
    }

    /// The claims a job's login records (GitLab's names, kept as token metadata).
    fn job_claim_mappings() -> BTreeMap<String, String> {
        [
            "project_path",
            "project_id",
            "ref",
            "ref_type",
            "ref_protected",
            "environment",
        ]
        .into_iter()
        .map(|c| (c.to_owned(), c.to_owned()))
        .collect()
    }

    async fn ensure_ci_mount(&self) -> Result<()> {
        if self.ci.issuer.is_empty() {
            return Ok(());
        }
        // Mounted before (an earlier start, or another node): the config is rewritten.
        ignore_exists(self.api.enable_auth_method("", CI_MOUNT, "jwt").await)?;
        self.api
            .write_jwt_config("", CI_MOUNT, &self.jwt_config())
            .await?;
        let role = JwtRole {
            user_claim: "sub".into(),
            bound_audiences: self.ci.audiences.clone(),
            claim_mappings: Self::job_claim_mappings(),
            token_type: "batch".into(),
            token_ttl: 60,
            ..Default::default()
        };
        self.api
            .write_jwt_role("", CI_MOUNT, CI_ROLE, &role)
            .await?;
        Ok(())
    }

    // ---------------------------------------------------------------- people

    /// Who holds `bearer`: a personal access token's user, or the root token (an admin).
    pub async fn authenticate(&self, bearer: &str) -> Result<Actor> {
        self.ready().await?;
        if bearer.is_empty() {
            return Err(Error::Unauthenticated("a token is required".into()));
        }
        {
            let st = self.state.read().await;
            if let Some(p) = st.pats.get(&sha256_hex(bearer)) {
                if p.revoked || p.expires_at.is_some_and(|t| now() >= t) {
                    return Err(Error::Unauthenticated(
                        "the token has expired or was revoked".into(),
                    ));
                }
                return Ok(Actor::User(p.user));
            }
        }
        match self.api.token_policies(bearer).await {
            Ok(Some((ns, policies))) if ns.is_empty() && policies.iter().any(|p| p == "root") => {
                Ok(Actor::Root)
            }
            Ok(_) => Err(Error::Unauthenticated(
                "only a personal access token or the root token may use this API".into(),
            )),
            Err(_) => Err(Error::Unauthenticated("invalid token".into())),
        }
    }

    fn is_admin(st: &State, actor: Actor) -> bool {
        match actor {
            Actor::Root => true,
            Actor::User(u) => st.dir.user(u).is_some_and(|u| u.admin),
        }
    }

    pub async fn directory(&self) -> Result<tokio::sync::RwLockReadGuard<'_, Directory>> {
        self.ready().await?;
        Ok(tokio::sync::RwLockReadGuard::map(
            self.state.read().await,
            |s| &s.dir,
        ))
    }

    pub async fn user_create(
        &self,
        actor: Actor,
        username: &str,
        name: &str,
        admin: bool,
    ) -> Result<User> {
        self.ready().await?;
        let mut st = self.state.write().await;
        if !Self::is_admin(&st, actor) {
            return Err(Error::Forbidden);
        }
        let make = |id| User {
            id,
            username: username.to_owned(),
            name: if name.is_empty() { username } else { name }.to_owned(),
            admin,
        };
        // Checked before anything is written.
        st.dir.check_new_user(&make(u64::MAX))?;
        let u = create_with_id(&self.api, &mut st, "users", |_, id| Ok(make(id))).await?;
        st.dir.insert_user(u.clone())?;
        self.changed().await?;
        Ok(u)
    }

    /// A new personal access token for `username`, shown once. Admins create them for
    /// anyone; a user for themselves.
    pub async fn pat_create(
        &self,
        actor: Actor,
        username: &str,
        name: &str,
        expires_at: Option<i64>,
    ) -> Result<Zeroizing<String>> {
        self.ready().await?;
        let mut st = self.state.write().await;
        let user = st
            .dir
            .user_by_name(username)
            .ok_or_else(|| Error::not_found(format!("user {username:?} does not exist")))?
            .id;
        if !Self::is_admin(&st, actor) && actor != Actor::User(user) {
            return Err(Error::Forbidden);
        }
        if name.is_empty() || name.len() > 255 {
            return Err(Error::invalid(
                "a token needs a name of at most 255 characters",
            ));
        }
        if expires_at.is_some_and(|t| t <= now()) {
            return Err(Error::invalid("expiresAt must be in the future"));
        }
        let token = Zeroizing::new(format!("srpat-{}", hex::encode(random_bytes::<24>())));
        let hash = sha256_hex(&token);
        let pat = Pat {
            user,
            name: name.to_owned(),
            expires_at,
            revoked: false,
        };
        store::put(&self.api, &format!("pats/{hash}"), &pat).await?;
        st.pats.insert(hash, pat);
        self.changed().await?;
        Ok(token)
    }

    /// Revoke `username`'s tokens named `name`: they stop working at once, on every node.
    /// Admins revoke anyone's; a user their own. Returns how many were revoked.
    pub async fn pat_revoke(&self, actor: Actor, username: &str, name: &str) -> Result<usize> {
        self.ready().await?;
        let mut st = self.state.write().await;
        let user = st
            .dir
            .user_by_name(username)
            .ok_or_else(|| Error::not_found(format!("user {username:?} does not exist")))?
            .id;
        if !Self::is_admin(&st, actor) && actor != Actor::User(user) {
            return Err(Error::Forbidden);
        }
        let hits: Vec<(String, Pat)> = st
            .pats
            .iter()
            .filter(|(_, p)| p.user == user && p.name == name && !p.revoked)
            .map(|(h, p)| (h.clone(), p.clone()))
            .collect();
        for (h, mut pat) in hits.iter().cloned() {
            pat.revoked = true;
            store::put(&self.api, &format!("pats/{h}"), &pat).await?;
            st.pats.insert(h, pat);
        }
        if hits.is_empty() {
            return Err(Error::not_found(format!(
                "{username:?} has no live token named {name:?}"
            )));
        }
        self.changed().await?;
        Ok(hits.len())
    }

    pub async fn group_create(
        &self,
        actor: Actor,
        path: &str,
        name: &str,
        parent_path: Option<&str>,
    ) -> Result<Group> {
        self.ready().await?;
        let mut st = self.state.write().await;
        let parent = parent_path.filter(|p| !p.is_empty());
        let allowed = Self::is_admin(&st, actor)
            || match (actor, parent.and_then(|p| st.dir.node_by_path(p))) {
                (Actor::User(u), Some(n)) => {
                    st.dir.effective_level(u, n) == Some(AccessLevel::Owner)
                }
                _ => false,
            };
        if !allowed {
            return Err(Error::Forbidden);
        }
        // Checked before anything is written.
        st.dir.new_group(0, path, name, parent)?;
        let g = create_with_id(&self.api, &mut st, "groups", |dir, id| {
            dir.new_group(id, path, name, parent)
        })
        .await?;
        st.dir.insert_group(g.clone());
        if let Actor::User(u) = actor {
            self.put_member(&mut st, Node::Group(g.id), u, Some(AccessLevel::Owner))
                .await?;
        }
        self.changed().await?;
        Ok(g)
    }

    pub async fn project_create(
        &self,
        actor: Actor,
        path: &str,
        namespace_path: &str,
        name: &str,
        ci_project_id: Option<String>,
    ) -> Result<Project> {
        self.ready().await?;
        let mut st = self.state.write().await;
        let allowed = Self::is_admin(&st, actor)
            || match (actor, st.dir.node_by_path(namespace_path)) {
                (Actor::User(u), Some(n)) => {
                    st.dir.effective_level(u, n) >= Some(AccessLevel::Maintainer)
                }
                _ => false,
            };
        if !allowed {
            return Err(Error::Forbidden);
        }
        st.dir
            .new_project(0, path, name, namespace_path, ci_project_id.clone())?;
        let p = create_with_id(&self.api, &mut st, "projects", |dir, id| {
            dir.new_project(id, path, name, namespace_path, ci_project_id.clone())
        })
        .await?;
        st.dir.insert_project(p.clone());
        if let Actor::User(u) = actor {
            self.put_member(&mut st, Node::Project(p.id), u, Some(AccessLevel::Owner))
                .await?;
        }
        // The groups above with a secrets manager now admit this project's jobs.
        for gid in st.dir.ancestors(Node::Project(p.id)) {
            let node = Node::Group(gid);
            let active = st
                .managers
                .get(&node)
                .filter(|m| m.status == ManagerStatus::Active);
            if let (Some(sm), false) = (active, self.ci.issuer.is_empty()) {
                let role = self.runner_role(&st.dir, node);
                self.api
                    .write_jwt_role(&sm.namespace, JWT_MOUNT, JWT_ROLE, &role)
                    .await?;
            }
        }
        self.changed().await?;
        Ok(p)
    }

    async fn put_member(
        &self,
        st: &mut State,
        node: Node,
        user: u64,
        level: Option<AccessLevel>,
    ) -> Result<()> {
        let key = format!("members/{}/{user}", node.key());
        match level {
            Some(level) => store::put(&self.api, &key, &Member { node, user, level }).await?,
            None => store::delete(&self.api, &key).await?,
        }
        st.dir.set_member(node, user, level);
        Ok(())
    }

    /// Add, change (`level`) or remove (`None`) a member of the group or project at
    /// `path`. Owners manage any level; Maintainers up to Maintainer.
    pub async fn member_set(
        &self,
        actor: Actor,
        path: &str,
        username: &str,
        level: Option<AccessLevel>,
    ) -> Result<()> {
        self.ready().await?;
        let mut st = self.state.write().await;
        let node = st
            .dir
            .node_by_path(path)
            .ok_or_else(|| Error::not_found(format!("{path:?} does not exist")))?;
        let user = st
            .dir
            .user_by_name(username)
            .ok_or_else(|| Error::not_found(format!("user {username:?} does not exist")))?
            .id;
        let actor_level = match actor {
            _ if Self::is_admin(&st, actor) => Some(AccessLevel::Owner),
            Actor::User(u) => st.dir.effective_level(u, node),
            Actor::Root => Some(AccessLevel::Owner),
        };
        let current = st.dir.direct_level(user, node);
        let touches_owner =
            level == Some(AccessLevel::Owner) || current == Some(AccessLevel::Owner);
        let allowed = match actor_level {
            Some(AccessLevel::Owner) => true,
            Some(AccessLevel::Maintainer) => !touches_owner,
            _ => false,
        };
        if !allowed {
            return Err(Error::Forbidden);
        }
        self.put_member(&mut st, node, user, level).await?;
        self.changed().await
    }

    // ---------------------------------------------------------------- secrets managers

    fn manager_namespace(node: Node) -> String {
        format!("sm-{}", node.key())
    }

    pub async fn secrets_manager(&self, path: &str) -> Result<(Node, Option<SecretsManager>)> {
        self.ready().await?;
        let st = self.state.read().await;
        let node = st
            .dir
            .node_by_path(path)
            .ok_or_else(|| Error::not_found(format!("{path:?} does not exist")))?;
        Ok((node, st.managers.get(&node).cloned()))
    }

    /// Provision the secrets manager of the project or group at `path`: its namespace, the
    /// kv-v2 mount, the jwt mount trusting the instance's CI issuer and the role runners log
    /// in with. Owners only.
    pub async fn initialize(&self, actor: Actor, path: &str) -> Result<SecretsManager> {
        self.ready().await?;
        let mut st = self.state.write().await;
        let node = self.node_for(&st, path)?;
        if !permissions::decide(
            &st.dir,
            &[],
            actor,
            node,
            Operation::ManageSecretsManager,
            now(),
        ) {
            return Err(Error::Forbidden);
        }
        if let Some(sm) = st.managers.get(&node) {
            if sm.status != ManagerStatus::Provisioning {
                return Err(Error::conflict(format!(
                    "the secrets manager of {path:?} is {}",
                    sm.status.name()
                )));
            }
        }
        let mut sm = SecretsManager {
            node,
            status: ManagerStatus::Provisioning,
            namespace: Self::manager_namespace(node),
        };
        let key = format!("managers/{}", node.key());
        store::put(&self.api, &key, &sm).await?;
        st.managers.insert(node, sm.clone());
        let ns = sm.namespace.as_str();
        self.api.create_namespace("", ns).await?;
        let kv2 = [
            ("version".to_owned(), "2".to_owned()),
            // Reads by pipelines are released by each secret's scope.
            ("release".to_owned(), "pipeline-scope".to_owned()),
        ]
        .into();
        ignore_exists(
            self.api
                .enable_secrets_engine(ns, KV_MOUNT, "kv", kv2)
                .await,
        )?;
        let policy =
            format!("path \"{KV_MOUNT}/data/{KV_PREFIX}*\" {{\n  capabilities = [\"read\"]\n}}\n");
        self.api.write_policy(ns, PIPELINE_POLICY, &policy).await?;
        ignore_exists(self.api.enable_auth_method(ns, JWT_MOUNT, "jwt").await)?;
        if !self.ci.issuer.is_empty() {
            self.api
                .write_jwt_config(ns, JWT_MOUNT, &self.jwt_config())
                .await?;
            let role = self.runner_role(&st.dir, node);
            self.api
                .write_jwt_role(ns, JWT_MOUNT, JWT_ROLE, &role)
                .await?;
        }
        sm.status = ManagerStatus::Active;
        store::put(&self.api, &key, &sm).await?;
        st.managers.insert(node, sm.clone());
        self.changed().await?;
        self.audit(
            manager_event("initialize", node, "secrets_manager"),
            who(actor),
            path,
            None,
            details(&[]),
        )?;
        Ok(sm)
    }

    /// The role GitLab Runner's resolvers log in with: bound to the project (its path,
    /// and GitLab's project id when pinned), or for a group to the projects under it,
    /// recording the claims the kv engine's scope check reads, granting the pipeline
    /// policy. A group's role is rewritten whenever a project is created under it.
    fn runner_role(&self, dir: &Directory, node: Node) -> JwtRole {
        let mut bound = serde_json::Map::new();
        let glob = match node {
            Node::Project(id) => {
                if let Some(p) = dir.project(id) {
                    bound.insert("project_path".into(), p.full_path.clone().into());
                    if let Some(c) = &p.ci_project_id {
                        bound.insert("project_id".into(), c.clone().into());
                    }
                }
                "string"
            }
            Node::Group(id) => {
                // The projects of the directory under the group, by exact path (a glob
                // would admit any path under it). GitLab's project id is bound too when
                // every one of them pins it; otherwise the pinned ones are left out here
                // (their jobs get the group's secrets from `POST /api/ci/secrets`, which
                // checks each project's id), since a path list and an id list cannot be
                // paired.
                let under: Vec<&Project> = dir
                    .projects
                    .values()
                    .filter(|p| dir.is_within(Node::Project(p.id), id))
                    .collect();
                let all_pinned =
                    !under.is_empty() && under.iter().all(|p| p.ci_project_id.is_some());
                let listed: Vec<&Project> = under
                    .into_iter()
                    .filter(|p| all_pinned || p.ci_project_id.is_none())
                    .collect();
                let paths: Vec<serde_json::Value> =
                    listed.iter().map(|p| p.full_path.clone().into()).collect();
                bound.insert("project_path".into(), paths.into());
                if all_pinned {
                    let ids: Vec<serde_json::Value> = listed
                        .iter()
                        .filter_map(|p| p.ci_project_id.clone().map(Into::into))
                        .collect();
                    bound.insert("project_id".into(), ids.into());
                }
                "string"
            }
        };
        let token_policies = vec![PIPELINE_POLICY.to_owned()];
        JwtRole {
            user_claim: "sub".into(),
            bound_audiences: self.ci.audiences.clone(),
            bound_claims: bound,
            bound_claims_type: glob.into(),
            claim_mappings: Self::job_claim_mappings(),
            token_policies,
            token_type: "batch".into(),
            token_ttl: 300,
            ..Default::default()
        }
    }

    /// Destroy the secrets manager of `path` and every secret in it. Owners only.
    pub async fn deprovision(&self, actor: Actor, path: &str) -> Result<()> {
        self.ready().await?;
        let mut st = self.state.write().await;
        let node = self.node_for(&st, path)?;
        if !permissions::decide(
            &st.dir,
            &[],
            actor,
            node,
            Operation::ManageSecretsManager,
            now(),
        ) {
            return Err(Error::Forbidden);
        }
        let Some(mut sm) = st.managers.get(&node).cloned() else {
            return Err(Error::not_found(format!("{path:?} has no secrets manager")));
        };
        let key = format!("managers/{}", node.key());
        sm.status = ManagerStatus::Deprovisioning;
        store::put(&self.api, &key, &sm).await?;
        st.managers.insert(node, sm.clone());
        match self.api.delete_namespace("", &sm.namespace).await {
            Ok(()) | Err(CoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        store::delete(&self.api, &key).await?;
        store::delete(&self.api, &format!("grants/{}", node.key())).await?;
        st.managers.remove(&node);
        st.grants.remove(&node);
        self.changed().await?;
        self.audit(
            manager_event("deprovision", node, "secrets_manager"),
            who(actor),
            path,
            None,
            details(&[]),
        )
    }

    fn node_for(&self, st: &State, path: &str) -> Result<Node> {
        st.dir
            .node_by_path(path)
            .ok_or_else(|| Error::not_found(format!("{path:?} does not exist")))
    }

    /// The active secrets manager of `path`, after checking `op` for `actor`.
    async fn authorized(
        &self,
        actor: Actor,
        path: &str,
        op: Operation,
    ) -> Result<(Node, SecretsManager)> {
        self.ready().await?;
        let st = self.state.read().await;
        let node = self.node_for(&st, path)?;
        let grants = st.grants.get(&node).map(Vec::as_slice).unwrap_or_default();
        if !permissions::decide(&st.dir, grants, actor, node, op, now()) {
            return Err(Error::Forbidden);
        }
        match st.managers.get(&node) {
            Some(sm) if sm.status == ManagerStatus::Active => Ok((node, sm.clone())),
            _ => Err(Error::invalid(format!(
                "the secrets manager of {path:?} is not active"
            ))),
        }
    }

    // ---------------------------------------------------------------- secrets

    fn validate(&self, node: Node, name: &str, input: &SecretInput) -> Result<()> {
        check_secret_name(name)?;
        if let Some(v) = &input.value {
            if v.is_empty() || v.len() > 10_000 {
                return Err(Error::invalid("value must be 1 to 10,000 bytes"));
            }
        }
        if let Some(e) = &input.environment {
            check_scope_glob("environment", e)?;
        }
        if let Some(b) = &input.branch {
            check_scope_glob("branch", b)?;
        }
        if input
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 200)
        {
            return Err(Error::invalid("description must be at most 200 characters"));
        }
        if let Some(Some(d)) = input.rotation_interval_days {
            if !(7..=36_500).contains(&d) {
                return Err(Error::invalid(
                    "rotationIntervalDays must be between 7 and 36500",
                ));
            }
        }
        match node {
            Node::Project(_) if input.protected.is_some() => Err(Error::invalid(
                "project secrets are scoped by branch, not protected",
            )),
            Node::Group(_) if input.branch.is_some() => Err(Error::invalid(
                "group secrets are scoped by protected, not branch",
            )),
            _ => Ok(()),
        }
    }

    pub async fn secret_create(
        &self,
        actor: Actor,
        path: &str,
        name: &str,
        input: SecretInput,
    ) -> Result<SecretView> {
        let (node, sm) = self.authorized(actor, path, Operation::Create).await?;
        self.validate(node, name, &input)?;
        let value = input
            .value
            .clone()
            .ok_or_else(|| Error::invalid("a secret needs a value"))?;
        let ns = sm.namespace.as_str();
        let key = format!("{KV_PREFIX}{name}");
        let limit = match node {
            Node::Project(_) => self.limits.secrets_per_project,
            Node::Group(_) => self.limits.secrets_per_group,
        };
        let existing = self
            .api
            .kv_list(ns, KV_MOUNT, KV_PREFIX)
            .await
            .unwrap_or_default();
        if existing.iter().any(|k| k == name) {
            return Err(Error::conflict(format!("a secret named {name} exists")));
        }
        if limit > 0 && existing.len() >= limit {
            return Err(Error::invalid(format!(
                "this secrets manager holds at most {limit} secrets"
            )));
        }
        let t = now();
        let meta = SecretMeta {
            environment: input.environment.unwrap_or_else(|| "*".into()),
            branch: match node {
                Node::Project(_) => Some(input.branch.unwrap_or_else(|| "*".into())),
                Node::Group(_) => None,
            },
            protected: match node {
                Node::Group(_) => Some(input.protected.unwrap_or(false)),
                Node::Project(_) => None,
            },
            description: input.description.unwrap_or_default(),
            expires_at: input.expires_at.flatten(),
            rotation_interval_days: input.rotation_interval_days.flatten(),
            value_changed_at: t,
            created_at: t,
        };
        // The scope is written before the value: a value never exists without one.
        self.api
            .kv_put_metadata(ns, KV_MOUNT, &key, &meta_to_kv(&meta), Some(0))
            .await
            .map_err(cas_conflict)?;
        let mut data = serde_json::Map::new();
        data.insert("value".into(), serde_json::Value::String(value.to_string()));
        let version = self
            .api
            .kv_put(ns, KV_MOUNT, &key, data, Some(0))
            .await
            .map_err(cas_conflict)?;
        self.audit(
            secret_event("create", node),
            who(actor),
            path,
            Some(name),
            details(&[("version", version.into())]),
        )?;
        Ok(SecretView {
            name: name.to_owned(),
            meta,
            version,
            metadata_version: 1,
            value: None,
        })
    }

    /// Update a secret's value and/or scope. `metadata_cas` must name the metadata version
    /// the caller read, when given: a stale one is refused.
    pub async fn secret_update(
        &self,
        actor: Actor,
        path: &str,
        name: &str,
        input: SecretInput,
        metadata_cas: Option<u64>,
    ) -> Result<SecretView> {
        let (node, sm) = self.authorized(actor, path, Operation::Update).await?;
        self.validate(node, name, &input)?;
        let ns = sm.namespace.as_str();
        let key = format!("{KV_PREFIX}{name}");
        let md = self
            .api
            .kv_metadata(ns, KV_MOUNT, &key)
            .await?
            .ok_or_else(|| Error::not_found(format!("secret {name} does not exist")))?;
        if metadata_cas.is_some_and(|c| c != md.metadata_version) {
            return Err(Error::conflict(format!(
                "metadataCas {} is stale: the secret's metadata is at version {}",
                metadata_cas.unwrap_or_default(),
                md.metadata_version
            )));
        }
        let mut meta = meta_from_kv(&md.custom_metadata).unwrap_or_default();
        if let Some(e) = input.environment {
            meta.environment = e;
        }
        if let Some(b) = input.branch {
            meta.branch = Some(b);
        }
        if let Some(p) = input.protected {
            meta.protected = Some(p);
        }
        if let Some(d) = input.description {
            meta.description = d;
        }
        if let Some(e) = input.expires_at {
            meta.expires_at = e;
        }
        if let Some(r) = input.rotation_interval_days {
            meta.rotation_interval_days = r;
        }
        if input.value.is_some() {
            meta.value_changed_at = now();
        }
        self.api
            .kv_put_metadata(
                ns,
                KV_MOUNT,
                &key,
                &meta_to_kv(&meta),
                Some(md.metadata_version),
            )
            .await
            .map_err(cas_conflict)?;
        let mut version = md.current_version;
        if let Some(v) = input.value {
            let mut data = serde_json::Map::new();
            data.insert("value".into(), serde_json::Value::String(v.to_string()));
            version = self
                .api
                .kv_put(ns, KV_MOUNT, &key, data, Some(md.current_version))
                .await
                .map_err(cas_conflict)?;
        }
        self.audit(
            secret_event("update", node),
            who(actor),
            path,
            Some(name),
            details(&[("version", version.into())]),
        )?;
        Ok(SecretView {
            name: name.to_owned(),
            meta,
            version,
            metadata_version: md.metadata_version + 1,
            value: None,
        })
    }

    pub async fn secret_delete(&self, actor: Actor, path: &str, name: &str) -> Result<()> {
        let (node, sm) = self.authorized(actor, path, Operation::Delete).await?;
        check_secret_name(name)?;
        let key = format!("{KV_PREFIX}{name}");
        if self
            .api
            .kv_metadata(&sm.namespace, KV_MOUNT, &key)
            .await?
            .is_none()
        {
            return Err(Error::not_found(format!("secret {name} does not exist")));
        }
        self.api
            .kv_delete_all(&sm.namespace, KV_MOUNT, &key)
            .await?;
        self.audit(
            secret_event("delete", node),
            who(actor),
            path,
            Some(name),
            details(&[]),
        )
    }

    /// One secret; its value (current, or `version`) only when `with_value` and the caller
    /// holds READ_VALUE.
    pub async fn secret_get(
        &self,
        actor: Actor,
        path: &str,
        name: &str,
        with_value: bool,
        version: Option<u64>,
    ) -> Result<SecretView> {
        let op = if with_value {
            Operation::ReadValue
        } else {
            Operation::ReadMetadata
        };
        let (node, sm) = self.authorized(actor, path, op).await?;
        check_secret_name(name)?;
        let key = format!("{KV_PREFIX}{name}");
        let md = self
            .api
            .kv_metadata(&sm.namespace, KV_MOUNT, &key)
            .await?
            .ok_or_else(|| Error::not_found(format!("secret {name} does not exist")))?;
        let value = if with_value {
            let s = self
                .api
                .kv_get(&sm.namespace, KV_MOUNT, &key, version)
                .await?
                .ok_or_else(|| Error::not_found(format!("secret {name} has no such version")))?;
            // Recorded before the value leaves.
            self.audit(
                secret_event("read", node),
                who(actor),
                path,
                Some(name),
                details(&[("version", s.version.into())]),
            )?;
            s.field("value")
        } else {
            None
        };
        Ok(SecretView {
            name: name.to_owned(),
            meta: meta_from_kv(&md.custom_metadata).unwrap_or_default(),
            version: md.current_version,
            metadata_version: md.metadata_version,
            value,
        })
    }

    pub async fn secret_list(&self, actor: Actor, path: &str) -> Result<Vec<SecretView>> {
        let (_, sm) = self
            .authorized(actor, path, Operation::ReadMetadata)
            .await?;
        let mut out = Vec::new();
        for name in self
            .api
            .kv_list(&sm.namespace, KV_MOUNT, KV_PREFIX)
            .await
            .unwrap_or_default()
        {
            if name.ends_with('/') {
                continue;
            }
            let key = format!("{KV_PREFIX}{name}");
            if let Some(md) = self.api.kv_metadata(&sm.namespace, KV_MOUNT, &key).await? {
                out.push(SecretView {
                    name,
                    meta: meta_from_kv(&md.custom_metadata).unwrap_or_default(),
                    version: md.current_version,
                    metadata_version: md.metadata_version,
                    value: None,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// A secret's versions: number, created (RFC 3339), deleted or destroyed.
    pub async fn secret_versions(
        &self,
        actor: Actor,
        path: &str,
        name: &str,
    ) -> Result<Vec<(u64, String, bool)>> {
        let (_, sm) = self
            .authorized(actor, path, Operation::ReadMetadata)
            .await?;
        check_secret_name(name)?;
        let key = format!("{KV_PREFIX}{name}");
        let md = self
            .api
            .kv_metadata(&sm.namespace, KV_MOUNT, &key)
            .await?
            .ok_or_else(|| Error::not_found(format!("secret {name} does not exist")))?;
        Ok(md
            .versions
            .into_iter()
            .rev()
            .map(|(n, v)| {
                (
                    n,
                    v.created_time,
                    v.destroyed || !v.deletion_time.is_empty(),
                )
            })
            .collect())
    }

    /// The actions `actor` holds on the secrets manager of `path` now.
    pub async fn my_actions(&self, actor: Actor, path: &str) -> Result<Vec<Action>> {
        self.ready().await?;
        let st = self.state.read().await;
        let node = self.node_for(&st, path)?;
        let grants = st.grants.get(&node).map(Vec::as_slice).unwrap_or_default();
        Ok(permissions::actions(&st.dir, grants, actor, node, now()))
    }

    /// Write an old version's value as the new current version (a WRITE).
    pub async fn secret_rollback(
        &self,
        actor: Actor,
        path: &str,
        name: &str,
        version: u64,
    ) -> Result<SecretView> {
        let (_, sm) = self.authorized(actor, path, Operation::Rollback).await?;
        check_secret_name(name)?;
        let key = format!("{KV_PREFIX}{name}");
        let old = self
            .api
            .kv_get(&sm.namespace, KV_MOUNT, &key, Some(version))
            .await?
            .ok_or_else(|| Error::not_found(format!("secret {name} has no version {version}")))?;
        let value = old.field("value").ok_or_else(|| {
            Error::not_found(format!("secret {name} version {version} has no value"))
        })?;
        let input = SecretInput {
            value: Some(value),
            ..Default::default()
        };
        // The update re-checks WRITE for the same caller.
        self.secret_update(actor, path, name, input, None).await
    }

    // ---------------------------------------------------------------- grants

    pub async fn permissions(&self, actor: Actor, path: &str) -> Result<Vec<Grant>> {
        self.ready().await?;
        let st = self.state.read().await;
        let node = self.node_for(&st, path)?;
        if !permissions::decide(&st.dir, &[], actor, node, Operation::ViewPermissions, now()) {
            return Err(Error::Forbidden);
        }
        Ok(st.grants.get(&node).cloned().unwrap_or_default())
    }

    /// Set (replace) or, with no actions, remove the grant of `principal`. Owners only.
    pub async fn permission_set(
        &self,
        actor: Actor,
        path: &str,
        principal: Principal,
        actions: Vec<Action>,
        expired_at: Option<i64>,
    ) -> Result<Vec<Grant>> {
        self.ready().await?;
        let mut st = self.state.write().await;
        let node = self.node_for(&st, path)?;
        if !permissions::decide(
            &st.dir,
            &[],
            actor,
            node,
            Operation::ManagePermissions,
            now(),
        ) {
            return Err(Error::Forbidden);
        }
        if !st.managers.contains_key(&node) {
            return Err(Error::invalid(format!("{path:?} has no secrets manager")));
        }
        match principal {
            Principal::User(u)
                if !actions.is_empty()
                    && st.dir.effective_level(u, node) < Some(AccessLevel::Reporter) =>
            {
                return Err(Error::invalid(
                    "a user principal must be a member of at least Reporter",
                ));
            }
            Principal::Group(g) if st.dir.group(g).is_none() => {
                return Err(Error::not_found("no such group"));
            }
            _ => {}
        }
        if expired_at.is_some_and(|t| t <= now()) && !actions.is_empty() {
            return Err(Error::invalid("expiredAt must be in the future"));
        }
        let mut grants = st.grants.get(&node).cloned().unwrap_or_default();
        grants.retain(|g| g.principal != principal);
        if !actions.is_empty() {
            let mut actions = actions.clone();
            actions.sort();
            actions.dedup();
            grants.push(Grant {
                principal,
                actions,
                expired_at,
            });
        }
        store::put(&self.api, &format!("grants/{}", node.key()), &grants).await?;
        st.grants.insert(node, grants.clone());
        self.changed().await?;
        let verb = if actions.is_empty() {
            "delete"
        } else {
            "update"
        };
        let principal_json = match principal {
            Principal::User(id) => serde_json::json!({ "type": "USER", "id": id }),
            Principal::Role(l) => serde_json::json!({ "type": "ROLE", "id": l.value() }),
            Principal::Group(id) => serde_json::json!({ "type": "GROUP", "id": id }),
        };
        let names: Vec<&str> = actions.iter().map(|a| a.name()).collect();
        self.audit(
            manager_event(verb, node, "secrets_permission"),
            who(actor),
            path,
            None,
            details(&[
                ("principal", principal_json),
                ("actions", names.into()),
                ("expired_at", expired_at.into()),
            ]),
        )?;
        Ok(grants)
    }

    // ---------------------------------------------------------------- jobs

    /// Every secret the job holding `jwt` may see, or those of `names`: the project's
    /// and its ancestor groups' (the project wins a clash, then the nearest group), sorted
    /// by name. `missing` lists requested names it may not see, without saying whether
    /// they exist.
    pub async fn ci_secrets(&self, jwt: &str, names: Option<&[String]>) -> Result<CiSecrets> {
        self.ready().await?;
        if self.ci.issuer.is_empty() {
            return Err(Error::Unauthenticated("no CI issuer is configured".into()));
        }
        let login = self
            .api
            .jwt_login("", CI_MOUNT, CI_ROLE, jwt)
            .await
            .map_err(|_| Error::Unauthenticated("invalid CI job token".into()))?;
        let claim = |k: &str| login.metadata.get(k).cloned().unwrap_or_default();
        let job = Job {
            project_path: claim("project_path"),
            project_id: claim("project_id"),
            git_ref: claim("ref"),
            ref_type: claim("ref_type"),
            ref_protected: claim("ref_protected"),
            environment: claim("environment"),
        };
        let t = now();
        // The directory is read under its lock for the whole resolution (never cloned):
        // a change waits for the jobs in flight.
        let st = self.state.read().await;
        let owners = {
            let Some(project) = scope::job_project(&st.dir, &job) else {
                return Ok(CiSecrets {
                    secrets: Vec::new(),
                    missing: names.map(<[String]>::to_vec).unwrap_or_default(),
                });
            };
            let owners: Vec<(Node, SecretsManager, String)> =
                std::iter::once(Node::Project(project))
                    .chain(
                        st.dir
                            .ancestors(Node::Project(project))
                            .into_iter()
                            .map(Node::Group),
                    )
                    .filter_map(|n| {
                        let sm = st
                            .managers
                            .get(&n)
                            .filter(|m| m.status == ManagerStatus::Active)?;
                        Some((n, sm.clone(), st.dir.full_path(n)?.to_owned()))
                    })
                    .collect();
            owners.into_iter().map(|o| (o, project)).collect::<Vec<_>>()
        };
        let dir = &st.dir;
        let wanted: Option<std::collections::BTreeSet<&str>> =
            names.map(|n| n.iter().map(String::as_str).collect());
        let mut out: BTreeMap<String, CiSecret> = BTreeMap::new();
        for ((node, sm, source), project) in owners {
            let keys = self
                .api
                .kv_list(&sm.namespace, KV_MOUNT, KV_PREFIX)
                .await
                .unwrap_or_default();
            for name in keys {
                if name.ends_with('/') || out.contains_key(&name) {
                    continue;
                }
                if wanted.as_ref().is_some_and(|w| !w.contains(name.as_str())) {
                    continue;
                }
                let key = format!("{KV_PREFIX}{name}");
                // One read: the current version carries the key's custom metadata (the
                // scope), checked before anything of the value is used.
                let Some(s) = self.api.kv_get(&sm.namespace, KV_MOUNT, &key, None).await? else {
                    continue;
                };
                if !scope::released(dir, node, &s.custom_metadata, &job, project, t) {
                    continue;
                }
                let Some(value) = s.field("value") else {
                    continue;
                };
                // Recorded before the value leaves.
                self.audit(
                    secret_event("read", node),
                    AuditActor::Job {
                        project_path: job.project_path.clone(),
                        git_ref: job.git_ref.clone(),
                    },
                    &source,
                    Some(&name),
                    details(&[("version", s.version.into())]),
                )?;
                out.insert(
                    name.clone(),
                    CiSecret {
                        name,
                        value,
                        source: source.clone(),
                        version: s.version,
                    },
                );
            }
        }
        let missing = names
            .map(|n| {
                let mut m: Vec<String> = n
                    .iter()
                    .filter(|x| !out.contains_key(*x))
                    .cloned()
                    .collect();
                m.sort();
                m.dedup();
                m
            })
            .unwrap_or_default();
        Ok(CiSecrets {
            secrets: out.into_values().collect(),
            missing,
        })
    }
}

fn who(actor: Actor) -> AuditActor {
    match actor {
        Actor::User(id) => AuditActor::User { id },
        Actor::Root => AuditActor::Root,
    }
}

fn details(pairs: &[(&str, serde_json::Value)]) -> serde_json::Map<String, serde_json::Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn parse_node_key(k: &str) -> Option<Node> {
    let (kind, id) = k.split_at_checked(1)?;
    let id = id.parse().ok()?;
    match kind {
        "g" => Some(Node::Group(id)),
        "p" => Some(Node::Project(id)),
        _ => None,
    }
}

/// A mount or method that is already there is what provisioning wants.
fn ignore_exists(r: std::result::Result<(), CoreError>) -> Result<()> {
    match r {
        Err(CoreError::BadRequest(m))
            if m.contains("already in use") || m.contains("existing mount") =>
        {
            Ok(())
        }
        other => other.map_err(Error::from),
    }
}

/// A lost compare-and-set is a conflict the caller can retry.
fn cas_conflict(e: CoreError) -> Error {
    match e {
        CoreError::BadRequest(m) if m.contains("check-and-set") || m.contains("cas") => {
            Error::conflict("the secret changed since it was read; read it again and retry")
        }
        other => other.into(),
    }
}
