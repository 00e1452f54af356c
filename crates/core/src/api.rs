//! The typed core API: what code above the core (the secrets manager) calls to provision
//! namespaces, mount engines and auth methods, write policies and roles, and read and
//! write secrets.
//!
//! [`CoreApi`] is the interface; [`InProcess`] implements it over [`Core::handle`]: each
//! call becomes a [`Request`] carrying the caller's token, so it takes the same routing,
//! ACL (sudo included) and, as the audit log comes, the same audit as an HTTP request.
//! There is no side door into the barrier. The interface speaks in paths, names and typed
//! values, never in `Request`s, so a client of a remote OpenBao over HTTP can implement it
//! too (GitLab's own deployment shape).
//!
//! Architecture invariant: nothing here decides access or touches storage; it only builds
//! requests and reads their answers.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use strongroom_barrier::secret::SecretText;
use zeroize::Zeroizing;

use crate::{Body, Core, CoreError, Operation, Request, Response, Result};

/// A namespace path: `""` is the root, `"a/b"` a nested namespace.
pub type NsPath = str;

/// The jwt auth method's configuration (`auth/<mount>/config`): where its keys come from
/// and whose tokens it trusts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JwtAuthConfig {
    pub bound_issuer: String,
    pub jwks_url: String,
    pub oidc_discovery_url: String,
    /// PEM public keys, instead of a JWKS or discovery URL.
    pub jwt_validation_pubkeys: Vec<String>,
    pub jwt_supported_algs: Vec<String>,
}

/// A jwt role (`auth/<mount>/role/<name>`): which tokens may log in and what they get.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JwtRole {
    pub user_claim: String,
    pub bound_audiences: Vec<String>,
    /// Claim → accepted value(s); matched as globs when `bound_claims_type` is `glob`.
    pub bound_claims: Map<String, Value>,
    pub bound_claims_type: String,
    pub claim_mappings: BTreeMap<String, String>,
    pub token_policies: Vec<String>,
    /// Claims whose values fill `{{...}}` in `token_policies`.
    pub token_policies_template_claims: Vec<String>,
    /// Seconds; 0 = the mount's default.
    pub token_ttl: i64,
    pub token_max_ttl: i64,
    /// `batch` or `service`; empty = the method's default.
    pub token_type: String,
}

/// One version of a kv-v2 secret, as read. The data is kept as the JSON text the engine
/// answered, zeroized on drop; [`KvSecret::field`] takes one string out of it.
pub struct KvSecret {
    data: Arc<SecretText>,
    pub version: u64,
    pub created_time: String,
    pub custom_metadata: BTreeMap<String, String>,
}

impl std::fmt::Debug for KvSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvSecret")
            .field("data", &"<redacted>")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl KvSecret {
    /// The string field `name` of the secret's data.
    pub fn field(&self, name: &str) -> Option<Zeroizing<String>> {
        let data: Map<String, Value> = serde_json::from_str(&self.data).ok()?;
        match data.get(name)? {
            Value::String(s) => Some(Zeroizing::new(s.clone())),
            _ => None,
        }
    }
}

/// A kv-v2 key's metadata: versions and custom metadata, no secret data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvMetadata {
    pub current_version: u64,
    /// Bumped by every metadata write; what `metadata_cas` compares against.
    pub metadata_version: u64,
    pub oldest_version: u64,
    pub created_time: String,
    pub updated_time: String,
    pub custom_metadata: BTreeMap<String, String>,
    /// Every version kept: number → (created time, deleted, destroyed).
    pub versions: BTreeMap<u64, KvVersionInfo>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvVersionInfo {
    pub created_time: String,
    pub deletion_time: String,
    pub destroyed: bool,
}

/// What a jwt login established: the role's claim mappings and the policies granted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JwtLogin {
    pub metadata: BTreeMap<String, String>,
    pub policies: Vec<String>,
}

/// What the core offers code above it. Every call is authorized as the implementation's
/// caller (a token), exactly as the same request over HTTP would be.
pub trait CoreApi: Send + Sync {
    /// Create the namespace `name` under `parent`. Creating one that exists succeeds.
    fn create_namespace(
        &self,
        parent: &NsPath,
        name: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Delete the namespace `name` under `parent` and everything in it.
    fn delete_namespace(
        &self,
        parent: &NsPath,
        name: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Mount a secrets engine of `kind` (`kv`) at `path`, with its options (`version`).
    fn enable_secrets_engine(
        &self,
        ns: &NsPath,
        path: &str,
        kind: &str,
        options: BTreeMap<String, String>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Enable an auth method of `kind` (`jwt`) at `auth/<path>`.
    fn enable_auth_method(
        &self,
        ns: &NsPath,
        path: &str,
        kind: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Write the ACL policy `name` (HCL or JSON text).
    fn write_policy(
        &self,
        ns: &NsPath,
        name: &str,
        text: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    fn delete_policy(&self, ns: &NsPath, name: &str) -> impl Future<Output = Result<()>> + Send;
    fn write_jwt_config(
        &self,
        ns: &NsPath,
        mount: &str,
        config: &JwtAuthConfig,
    ) -> impl Future<Output = Result<()>> + Send;
    fn write_jwt_role(
        &self,
        ns: &NsPath,
        mount: &str,
        name: &str,
        role: &JwtRole,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Write a new version of a kv-v2 secret; `cas` = the version it must replace (0: it
    /// must not exist). Returns the new version.
    fn kv_put(
        &self,
        ns: &NsPath,
        mount: &str,
        key: &str,
        data: Map<String, Value>,
        cas: Option<u64>,
    ) -> impl Future<Output = Result<u64>> + Send;
    /// A version of a kv-v2 secret (`None`: the current one); `Ok(None)` if there is no
    /// such secret or version, or it is deleted.
    fn kv_get(
        &self,
        ns: &NsPath,
        mount: &str,
        key: &str,
        version: Option<u64>,
    ) -> impl Future<Output = Result<Option<KvSecret>>> + Send;
    fn kv_metadata(
        &self,
        ns: &NsPath,
        mount: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<KvMetadata>>> + Send;
    /// Replace a key's custom metadata; `metadata_cas` = the version of the metadata it
    /// must replace.
    fn kv_put_metadata(
        &self,
        ns: &NsPath,
        mount: &str,
        key: &str,
        custom_metadata: &BTreeMap<String, String>,
        metadata_cas: Option<u64>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Delete a key, its metadata and every version.
    fn kv_delete_all(
        &self,
        ns: &NsPath,
        mount: &str,
        key: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Log in to the jwt auth method at `auth/<mount>` with `role` and a signed JWT: the
    /// method's own checks (signature, issuer, audience, times, bound claims) decide. The
    /// token issued is dropped; what the login says about the caller is returned.
    fn jwt_login(
        &self,
        ns: &NsPath,
        mount: &str,
        role: &str,
        jwt: &str,
    ) -> impl Future<Output = Result<JwtLogin>> + Send;
    /// Who holds `token`: its namespace path (`""` = root) and policies; `None` if it is
    /// not a live token.
    fn token_policies(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<Option<(String, Vec<String>)>>> + Send;
    /// The keys directly under `prefix` (sub-folders end in `/`).
    fn kv_list(
        &self,
        ns: &NsPath,
        mount: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;
}

/// [`CoreApi`] in this process: requests to [`Core::handle`] with one token.
pub struct InProcess {
    core: Arc<Core>,
    token: Zeroizing<String>,
    system: bool,
}

impl InProcess {
    /// Act as the holder of `token` (its policies decide what each call may do).
    pub fn new(core: Arc<Core>, token: Zeroizing<String>) -> InProcess {
        InProcess {
            core,
            token,
            system: false,
        }
    }

    /// Act as the server's own secrets manager: root's authority in the root namespace,
    /// with no token to store or leak. Every call still takes the request pipeline
    /// (routing, field checks, and the audit log as it comes).
    pub fn system(core: Arc<Core>) -> InProcess {
        InProcess {
            core,
            token: Zeroizing::new(String::new()),
            system: true,
        }
    }

    async fn call(
        &self,
        ns: &NsPath,
        op: Operation,
        path: String,
        data: Value,
    ) -> Result<Response> {
        let mut req = Request::new(op, path).with_data(data);
        if self.system {
            req.system = Some(crate::request::SystemCaller::new());
        } else {
            req.token = Some(self.token.as_str().to_owned());
        }
        req.namespace = ns.to_owned();
        // A write is a create or an update by the target's existence, as a PUT is.
        req.is_write = op == Operation::Update;
        self.core.handle(req).await
    }

    /// A write whose answer carries nothing the caller needs.
    async fn write(&self, ns: &NsPath, path: String, body: Value) -> Result<()> {
        self.call(ns, Operation::Update, path, body).await.map(drop)
    }

    /// A read whose "nothing there" (404, or a 404-status body) is `None`.
    async fn read(&self, ns: &NsPath, path: String) -> Result<Option<Response>> {
        match self.call(ns, Operation::Read, path, json!({})).await {
            Ok(r) if r.status == Some(404) => Ok(None),
            Ok(r) => Ok(Some(r)),
            Err(CoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn mount_path(mount: &str) -> &str {
    mount.trim_matches('/')
}

fn str_field(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn version_of(v: &Value) -> u64 {
    v.get("version").and_then(Value::as_u64).unwrap_or_default()
}

impl CoreApi for InProcess {
    async fn create_namespace(&self, parent: &NsPath, name: &str) -> Result<()> {
        self.write(parent, format!("sys/namespaces/{name}"), json!({}))
            .await
    }

    async fn delete_namespace(&self, parent: &NsPath, name: &str) -> Result<()> {
        self.call(
            parent,
            Operation::Delete,
            format!("sys/namespaces/{name}"),
            json!({}),
        )
        .await
        .map(drop)
    }

    async fn enable_secrets_engine(
        &self,
        ns: &NsPath,
        path: &str,
        kind: &str,
        options: BTreeMap<String, String>,
    ) -> Result<()> {
        let body = json!({ "type": kind, "options": options });
        self.write(ns, format!("sys/mounts/{}", mount_path(path)), body)
            .await
    }

    async fn enable_auth_method(&self, ns: &NsPath, path: &str, kind: &str) -> Result<()> {
        let body = json!({ "type": kind });
        self.write(ns, format!("sys/auth/{}", mount_path(path)), body)
            .await
    }

    async fn write_policy(&self, ns: &NsPath, name: &str, text: &str) -> Result<()> {
        let body = json!({ "policy": text });
        self.write(ns, format!("sys/policies/acl/{name}"), body)
            .await
    }

    async fn delete_policy(&self, ns: &NsPath, name: &str) -> Result<()> {
        self.call(
            ns,
            Operation::Delete,
            format!("sys/policies/acl/{name}"),
            json!({}),
        )
        .await
        .map(drop)
    }

    async fn write_jwt_config(&self, ns: &NsPath, mount: &str, c: &JwtAuthConfig) -> Result<()> {
        let mut body = Map::new();
        for (k, v) in [
            ("bound_issuer", &c.bound_issuer),
            ("jwks_url", &c.jwks_url),
            ("oidc_discovery_url", &c.oidc_discovery_url),
        ] {
            if !v.is_empty() {
                body.insert(k.into(), json!(v));
            }
        }
        if !c.jwt_validation_pubkeys.is_empty() {
            body.insert(
                "jwt_validation_pubkeys".into(),
                json!(c.jwt_validation_pubkeys),
            );
        }
        if !c.jwt_supported_algs.is_empty() {
            body.insert("jwt_supported_algs".into(), json!(c.jwt_supported_algs));
        }
        let path = format!("auth/{}/config", mount_path(mount));
        self.write(ns, path, Value::Object(body)).await
    }

    async fn write_jwt_role(
        &self,
        ns: &NsPath,
        mount: &str,
        name: &str,
        r: &JwtRole,
    ) -> Result<()> {
        let mut body = json!({
            "role_type": "jwt",
            "user_claim": r.user_claim,
            "bound_audiences": r.bound_audiences,
            "bound_claims": r.bound_claims,
            "claim_mappings": r.claim_mappings,
            "token_policies": r.token_policies,
            "token_ttl": r.token_ttl,
            "token_max_ttl": r.token_max_ttl,
        });
        if !r.bound_claims_type.is_empty() {
            body["bound_claims_type"] = json!(r.bound_claims_type);
        }
        if !r.token_policies_template_claims.is_empty() {
            body["token_policies_template_claims"] = json!(r.token_policies_template_claims);
        }
        if !r.token_type.is_empty() {
            body["token_type"] = json!(r.token_type);
        }
        let path = format!("auth/{}/role/{name}", mount_path(mount));
        self.write(ns, path, body).await
    }

    async fn kv_put(
        &self,
        ns: &NsPath,
        mount: &str,
        key: &str,
        data: Map<String, Value>,
        cas: Option<u64>,
    ) -> Result<u64> {
        let mut body = json!({ "data": data });
        if let Some(cas) = cas {
            body["options"] = json!({ "cas": cas });
        }
        let path = format!("{}/data/{key}", mount_path(mount));
        let r = self.call(ns, Operation::Update, path, body).await?;
        Ok(r.data_value().as_ref().map(version_of).unwrap_or_default())
    }

    async fn kv_get(
        &self,
        ns: &NsPath,
        mount: &str,
        key: &str,
        version: Option<u64>,
    ) -> Result<Option<KvSecret>> {
        let path = format!("{}/data/{key}", mount_path(mount));
        // `?version=` over HTTP: the edge puts query parameters in the data.
        let data = match version {
            Some(v) => json!({ "version": v }),
            None => json!({}),
        };
        let r = match self.call(ns, Operation::Read, path, data).await {
            Ok(r) if r.status == Some(404) => return Ok(None),
            Ok(r) => r,
            Err(CoreError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let body = r.data_value().unwrap_or(Value::Null);
        let meta = body.get("metadata").cloned().unwrap_or(Value::Null);
        let data = match &r.body {
            // Re-serialize only the `data` member; the engine's text is the whole body.
            Body::DataText(_) | Body::Data(_) => match body.get("data") {
                Some(Value::Null) | None => return Ok(None),
                Some(d) => Arc::new(SecretText::new(d.to_string())),
            },
            Body::Empty | Body::Raw(_) => return Ok(None),
        };
        Ok(Some(KvSecret {
            data,
            version: version_of(&meta),
            created_time: str_field(&meta, "created_time"),
            custom_metadata: string_map(meta.get("custom_metadata")),
        }))
    }

    async fn kv_metadata(&self, ns: &NsPath, mount: &str, key: &str) -> Result<Option<KvMetadata>> {
        let path = format!("{}/metadata/{key}", mount_path(mount));
        let Some(r) = self.read(ns, path).await? else {
            return Ok(None);
        };
        let m = r.data_value().unwrap_or(Value::Null);
        let versions = m
            .get("versions")
            .and_then(Value::as_object)
            .map(|vs| {
                vs.iter()
                    .filter_map(|(n, v)| {
                        Some((
                            n.parse().ok()?,
                            KvVersionInfo {
                                created_time: str_field(v, "created_time"),
                                deletion_time: str_field(v, "deletion_time"),
                                destroyed: v
                                    .get("destroyed")
                                    .and_then(Value::as_bool)
                                    .unwrap_or(false),
                            },
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let num = |k: &str| m.get(k).and_then(Value::as_u64).unwrap_or_default();
        Ok(Some(KvMetadata {
            current_version: num("current_version"),
            metadata_version: num("current_metadata_version"),
            oldest_version: num("oldest_version"),
            created_time: str_field(&m, "created_time"),
            updated_time: str_field(&m, "updated_time"),
            custom_metadata: string_map(m.get("custom_metadata")),
            versions,
        }))
    }

    async fn kv_put_metadata(
        &self,
        ns: &NsPath,
        mount: &str,
        key: &str,
        custom_metadata: &BTreeMap<String, String>,
        metadata_cas: Option<u64>,
    ) -> Result<()> {
        let mut body = json!({ "custom_metadata": custom_metadata });
        if let Some(c) = metadata_cas {
            body["metadata_cas"] = json!(c);
        }
        let path = format!("{}/metadata/{key}", mount_path(mount));
        self.write(ns, path, body).await
    }

    async fn kv_delete_all(&self, ns: &NsPath, mount: &str, key: &str) -> Result<()> {
        let path = format!("{}/metadata/{key}", mount_path(mount));
        self.call(ns, Operation::Delete, path, json!({}))
            .await
            .map(drop)
    }

    async fn jwt_login(&self, ns: &NsPath, mount: &str, role: &str, jwt: &str) -> Result<JwtLogin> {
        let path = format!("auth/{}/login", mount_path(mount));
        let mut req =
            Request::new(Operation::Update, path).with_data(json!({ "role": role, "jwt": jwt }));
        req.namespace = ns.to_owned();
        req.is_write = true;
        let r = self.core.handle(req).await?;
        let auth = r
            .auth
            .ok_or_else(|| CoreError::Internal("a login answered without auth".into()))?;
        Ok(JwtLogin {
            metadata: auth.metadata.unwrap_or_default(),
            policies: auth.policies,
        })
    }

    async fn token_policies(&self, token: &str) -> Result<Option<(String, Vec<String>)>> {
        let mut req = Request::new(Operation::Read, "auth/token/lookup-self");
        req.token = Some(token.to_owned());
        let r = match self.core.handle(req).await {
            Ok(r) => r,
            Err(
                CoreError::PermissionDenied | CoreError::InvalidToken(_) | CoreError::Forbidden(_),
            ) => return Ok(None),
            Err(e) => return Err(e),
        };
        let d = r.data_value().unwrap_or(Value::Null);
        let policies = d
            .get("policies")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let ns = d
            .get("namespace_path")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned();
        Ok(Some((ns, policies)))
    }

    async fn kv_list(&self, ns: &NsPath, mount: &str, prefix: &str) -> Result<Vec<String>> {
        let path = format!(
            "{}/metadata/{}",
            mount_path(mount),
            prefix.trim_end_matches('/')
        );
        let path = format!("{}/", path.trim_end_matches('/'));
        match self.call(ns, Operation::List, path, json!({})).await {
            Ok(r) => Ok(r
                .data_value()
                .and_then(|d| d.get("keys").cloned())
                .and_then(|k| serde_json::from_value(k).ok())
                .unwrap_or_default()),
            Err(CoreError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn unsealed() -> Arc<Core> {
        let core = Core::for_tests();
        core.initialize(1, 1, Some("root".into())).await.unwrap();
        core
    }

    /// What GitLab's provisioning does for a project, through the typed API, then a secret
    /// written and read back, and the same secret seen over the request path.
    #[tokio::test]
    async fn provisions_a_project_namespace_and_round_trips_a_secret() {
        let core = unsealed().await;
        let api = InProcess::new(core.clone(), Zeroizing::new("root".into()));
        api.create_namespace("", "grp").await.unwrap();
        api.create_namespace("grp", "proj").await.unwrap();
        let ns = "grp/proj";
        let kv2 = BTreeMap::from([("version".to_owned(), "2".to_owned())]);
        api.enable_secrets_engine(ns, "secrets/kv", "kv", kv2)
            .await
            .unwrap();
        api.enable_auth_method(ns, "pipeline_jwt", "jwt")
            .await
            .unwrap();
        api.write_jwt_config(
            ns,
            "pipeline_jwt",
            &JwtAuthConfig {
                // A key rather than a JWKS URL: a test reaches nothing beyond loopback.
                jwt_validation_pubkeys: vec![strongroom_jwt::DevIssuer::generate()
                    .unwrap()
                    .public_pem()],
                bound_issuer: "https://gitlab.example.com".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        api.write_policy(
            ns,
            "pipelines",
            r#"path "secrets/kv/data/explicit/*" { capabilities = ["read"] }"#,
        )
        .await
        .unwrap();
        api.write_jwt_role(
            ns,
            "pipeline_jwt",
            "all_pipelines",
            &JwtRole {
                user_claim: "project_id".into(),
                bound_audiences: vec!["https://strongroom.example.com".into()],
                token_policies: vec!["pipelines".into()],
                token_type: "batch".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();

        let data: Map<String, Value> = json!({"value": "hunter2"}).as_object().unwrap().clone();
        let v1 = api
            .kv_put(ns, "secrets/kv", "explicit/DB", data.clone(), Some(0))
            .await
            .unwrap();
        assert_eq!(v1, 1);
        // A stale check-and-set is refused.
        assert!(api
            .kv_put(ns, "secrets/kv", "explicit/DB", data, Some(0))
            .await
            .is_err());
        let got = api
            .kv_get(ns, "secrets/kv", "explicit/DB", None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.field("value").unwrap().as_str(), "hunter2");
        assert_eq!(got.version, 1);
        assert!(!format!("{got:?}").contains("hunter2"));
        assert_eq!(
            api.kv_list(ns, "secrets/kv", "explicit/").await.unwrap(),
            vec!["DB"]
        );
        let meta = BTreeMap::from([("environment".to_owned(), "production".to_owned())]);
        api.kv_put_metadata(ns, "secrets/kv", "explicit/DB", &meta, None)
            .await
            .unwrap();
        let m = api
            .kv_metadata(ns, "secrets/kv", "explicit/DB")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.custom_metadata, meta);
        assert_eq!(m.current_version, 1);

        // The same secret through the request path, as `/v1/grp/proj/secrets/kv/...`.
        let r = core
            .root_request(
                "",
                Operation::Read,
                "grp/proj/secrets/kv/data/explicit/DB",
                json!({}),
            )
            .await
            .unwrap();
        assert_eq!(r.data_value().unwrap()["data"]["value"], "hunter2");

        api.kv_delete_all(ns, "secrets/kv", "explicit/DB")
            .await
            .unwrap();
        assert!(api
            .kv_get(ns, "secrets/kv", "explicit/DB", None)
            .await
            .unwrap()
            .is_none());
        assert!(api
            .kv_metadata(ns, "secrets/kv", "explicit/DB")
            .await
            .unwrap()
            .is_none());
        api.delete_namespace("grp", "proj").await.unwrap();
    }

    /// The API has no side door: a caller gets what its token's policies allow, sudo
    /// included, as over HTTP.
    #[tokio::test]
    async fn every_call_is_authorized_like_a_request() {
        let core = unsealed().await;
        let root = InProcess::new(core.clone(), Zeroizing::new("root".into()));
        root.write_policy(
            "",
            "kv-only",
            r#"path "secret/*" { capabilities = ["create", "read", "update", "list"] }
path "sys/auth/*" { capabilities = ["create", "update"] }"#,
        )
        .await
        .unwrap();
        let kv2 = BTreeMap::from([("version".to_owned(), "2".to_owned())]);
        root.enable_secrets_engine("", "secret", "kv", kv2)
            .await
            .unwrap();
        let created = core
            .root_request(
                "",
                Operation::Update,
                "auth/token/create",
                json!({"policies": ["kv-only"]}),
            )
            .await
            .unwrap();
        let token = created.auth.unwrap().client_token;
        let limited = InProcess::new(core.clone(), Zeroizing::new(token));
        let data: Map<String, Value> = json!({"value": "v"}).as_object().unwrap().clone();
        assert_eq!(
            limited.kv_put("", "secret", "a", data, None).await.unwrap(),
            1
        );
        assert!(matches!(
            limited.create_namespace("", "x").await,
            Err(CoreError::PermissionDenied)
        ));
        assert!(matches!(
            limited
                .write_policy("", "mine", r#"path "*" { capabilities = ["sudo"] }"#)
                .await,
            Err(CoreError::PermissionDenied)
        ));
        // `sys/auth/*` needs sudo as well as update.
        assert!(matches!(
            limited.enable_auth_method("", "jwt2", "jwt").await,
            Err(CoreError::PermissionDenied)
        ));
        let nobody = InProcess::new(core, Zeroizing::new("not-a-token".into()));
        assert!(nobody.kv_get("", "secret", "a", None).await.is_err());
    }
}
