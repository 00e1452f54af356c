//! Workload 5, the product: a CI job's secrets in one round trip (`POST /api/ci/secrets`)
//! against GitLab's flow on a real OpenBao (one inline-auth GET per secret, as the
//! runner's `gitlab_secrets_manager` resolver does), and secrets managers provisioned
//! (GraphQL) against OpenBao doing GitLab's provisioning calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Result};
use base64::Engine;
use serde_json::{json, Value};
use strongroom_jwt::DevIssuer;

use crate::client::{Conn, Step};
use crate::servers::api_ok;

/// What the dev server's CI issuer expects (`strongroom dev ci-token`'s defaults).
const DEV_ISS: &str = "https://gitlab.dev.strongroom.invalid";
const DEV_AUD: &str = "strongroom";
/// The project both servers hold, and GitLab's namespace for it on OpenBao.
const PROJECT: &str = "bench/app";
const OPENBAO_NS: &str = "bench-app";
pub const SECRETS: usize = 10;

/// A distinct CI ID token for job `job` of `bench/app`.
pub fn job_jwt(issuer: &DevIssuer, job: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = json!({
        "iss": DEV_ISS, "aud": DEV_AUD, "sub": format!("project_path:{PROJECT}:ref_type:branch:ref:main"),
        "iat": now, "nbf": now, "exp": now + 7200, "jti": format!("pjob-{job}"),
        "namespace_id": "7", "namespace_path": "bench", "project_id": "42", "project_path": PROJECT,
        "user_id": "3", "user_login": "alice", "pipeline_id": "100", "pipeline_source": "push",
        "job_id": job.to_string(), "ref": "main", "ref_type": "branch", "ref_path": "refs/heads/main",
        "ref_protected": "true", "environment": "production", "runner_id": "9", "sha": "abc",
    });
    issuer.sign(&claims).expect("sign")
}

async fn graphql(addr: &str, query: &str) -> Result<Value> {
    let mut c = Conn::connect(addr).await?;
    let body = json!({ "query": query }).to_string();
    let r = c
        .send(
            "POST",
            "/api/graphql",
            &[("Authorization", "Bearer root")],
            body.as_bytes(),
        )
        .await?;
    let v: Value = serde_json::from_slice(&r.body)?;
    if r.status != 200 || v.get("errors").is_some() {
        bail!("graphql on {addr}: {} {v}", r.status);
    }
    Ok(v)
}

/// Strongroom: a group, a project with its secrets manager and 10 secrets, through
/// GraphQL as an operator would.
pub async fn setup_ours(addr: &str) -> Result<()> {
    graphql(
        addr,
        "mutation { groupCreate(input: {path: \"bench\"}) { errors } }",
    )
    .await?;
    graphql(
        addr,
        "mutation { projectCreate(input: {path: \"app\", namespacePath: \"bench\"}) { errors } }",
    )
    .await?;
    graphql(addr, "mutation { projectSecretsManagerInitialize(input: {projectPath: \"bench/app\"}) { errors } }").await?;
    for i in 0..SECRETS {
        let q = format!("mutation {{ projectSecretCreate(input: {{projectPath: \"bench/app\", name: \"S{i}\", secret: \"secret-{i}\", environment: \"*\", branch: \"*\"}}) {{ errors }} }}");
        graphql(addr, &q).await?;
    }
    Ok(())
}

/// OpenBao as GitLab provisions a project: a namespace, kv-v2 at `secrets/kv`, jwt at
/// `pipeline_jwt` trusting the issuer, the pipeline policy and role `all_pipelines`.
/// `ns` is the namespace's name.
async fn gitlab_provision(conn: &mut Conn, root: &str, ns: &str, issuer_pem: &str) -> Result<u32> {
    let calls: [(&str, String, Value); 7] = [
        ("POST", format!("/v1/sys/namespaces/{ns}"), json!({})),
        (
            "POST",
            format!("/v1/{ns}/sys/mounts/secrets/kv"),
            json!({"type": "kv", "options": {"version": "2"}}),
        ),
        (
            "POST",
            format!("/v1/{ns}/sys/auth/pipeline_jwt"),
            json!({"type": "jwt"}),
        ),
        (
            "POST",
            format!("/v1/{ns}/auth/pipeline_jwt/config"),
            json!({"jwt_validation_pubkeys": [issuer_pem], "bound_issuer": DEV_ISS}),
        ),
        (
            "PUT",
            format!("/v1/{ns}/sys/policies/acl/pipeline"),
            json!({"policy": "path \"secrets/kv/data/explicit/*\" { capabilities = [\"read\"] }"}),
        ),
        (
            "PUT",
            format!("/v1/{ns}/sys/policies/acl/users-roles-40"),
            json!({"policy": "path \"secrets/kv/metadata/explicit/*\" { capabilities = [\"read\", \"list\"] }\npath \"secrets/kv/data/explicit/*\" { capabilities = [\"create\", \"update\"] }"}),
        ),
        (
            "POST",
            format!("/v1/{ns}/auth/pipeline_jwt/role/all_pipelines"),
            json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": [DEV_AUD],
                   "bound_claims": {"project_path": PROJECT}, "token_policies": ["pipeline"],
                   "token_type": "batch", "token_ttl": "5m"}),
        ),
    ];
    for (m, p, b) in &calls {
        let rep = conn
            .send(m, p, &[("X-Vault-Token", root)], b.to_string().as_bytes())
            .await?;
        if !(200..300).contains(&rep.status) {
            bail!(
                "{m} {p}: {} {}",
                rep.status,
                String::from_utf8_lossy(&rep.body)
            );
        }
    }
    Ok(calls.len() as u32)
}

pub async fn setup_openbao(addr: &str, issuer: &DevIssuer) -> Result<()> {
    let mut conn = Conn::connect(addr).await?;
    gitlab_provision(&mut conn, "root", OPENBAO_NS, &issuer.public_pem()).await?;
    for i in 0..SECRETS {
        api_ok(
            addr,
            "PUT",
            &format!("/v1/{OPENBAO_NS}/secrets/kv/data/explicit/S{i}"),
            "root",
            Some(json!({"data": {"value": format!("secret-{i}")}})),
        )
        .await?;
    }
    Ok(())
}

/// One job on Strongroom: `POST /api/ci/secrets`, all 10 secrets in one answer.
pub fn ci_api_job(jwts: Arc<Vec<String>>) -> Step {
    let next = Arc::new(AtomicU64::new(0));
    Arc::new(move |_c, _i, mut conn| {
        let (jwts, next) = (jwts.clone(), next.clone());
        Box::pin(async move {
            let r: Result<u32> = async {
                let k = next.fetch_add(1, Ordering::Relaxed) as usize;
                let auth = format!("Bearer {}", jwts[k % jwts.len()]);
                let rep = conn
                    .send("POST", "/api/ci/secrets", &[("Authorization", &auth)], b"")
                    .await?;
                if rep.status != 200 {
                    bail!(
                        "ci secrets {}: {}",
                        rep.status,
                        String::from_utf8_lossy(&rep.body)
                    );
                }
                let v: Value = serde_json::from_slice(&rep.body)?;
                if v["secrets"].as_array().map(Vec::len) != Some(SECRETS) {
                    bail!("ci secrets: expected {SECRETS} secrets, got {v}");
                }
                Ok(1)
            }
            .await;
            (conn, r)
        })
    })
}

/// One job on OpenBao, GitLab's way: a GET per secret, each logging in inline.
pub fn gitlab_inline_job(jwts: Arc<Vec<String>>) -> Step {
    let enc = |k: &str, v: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(json!({"key": k, "value": v}).to_string())
    };
    let role_h = Arc::new(enc("role", "all_pipelines"));
    let jwt_h: Arc<Vec<String>> = Arc::new(jwts.iter().map(|j| enc("jwt", j)).collect());
    let next = Arc::new(AtomicU64::new(0));
    Arc::new(move |_c, _i, mut conn| {
        let (role_h, jwt_h, next) = (role_h.clone(), jwt_h.clone(), next.clone());
        Box::pin(async move {
            let r: Result<u32> = async {
                let k = next.fetch_add(1, Ordering::Relaxed) as usize;
                let jwt = &jwt_h[k % jwt_h.len()];
                for i in 0..SECRETS {
                    let h = [
                        ("X-Vault-Inline-Auth-Path", "auth/pipeline_jwt/login"),
                        ("X-Vault-Inline-Auth-Namespace", OPENBAO_NS),
                        ("X-Vault-Inline-Auth-Parameter-role", role_h.as_str()),
                        ("X-Vault-Inline-Auth-Parameter-jwt", jwt.as_str()),
                        ("X-Vault-Request", "true"),
                    ];
                    let path = format!("/v1/{OPENBAO_NS}/secrets/kv/data/explicit/S{i}");
                    let rep = conn.send("GET", &path, &h, b"").await?;
                    if rep.status != 200 {
                        bail!(
                            "inline read {}: {}",
                            rep.status,
                            String::from_utf8_lossy(&rep.body)
                        );
                    }
                }
                Ok(SECRETS as u32)
            }
            .await;
            (conn, r)
        })
    })
}

/// One provisioning on Strongroom: a project and its secrets manager, one GraphQL request
/// (the project is created too, which GitLab's Rails does outside OpenBao).
pub fn provision_ours() -> Step {
    let next = Arc::new(AtomicU64::new(0));
    Arc::new(move |_c, _i, mut conn| {
        let next = next.clone();
        Box::pin(async move {
            let r: Result<u32> = async {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let q = format!(
                    "mutation {{ p: projectCreate(input: {{path: \"p{k}\", namespacePath: \"bench\"}}) {{ errors }} \
                     s: projectSecretsManagerInitialize(input: {{projectPath: \"bench/p{k}\"}}) {{ projectSecretsManager {{ status }} errors }} }}"
                );
                let body = json!({ "query": q }).to_string();
                let rep = conn
                    .send("POST", "/api/graphql", &[("Authorization", "Bearer root")], body.as_bytes())
                    .await?;
                let v: Value = serde_json::from_slice(&rep.body)?;
                if rep.status != 200 || v["data"]["s"]["projectSecretsManager"]["status"] != "ACTIVE" {
                    bail!("provision {}: {v}", rep.status);
                }
                Ok(1)
            }
            .await;
            (conn, r)
        })
    })
}

/// One provisioning on OpenBao: GitLab's calls for a new project.
pub fn provision_openbao(issuer_pem: String) -> Step {
    let next = Arc::new(AtomicU64::new(0));
    let pem = Arc::new(issuer_pem);
    Arc::new(move |_c, _i, mut conn| {
        let (next, pem) = (next.clone(), pem.clone());
        Box::pin(async move {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let r = gitlab_provision(&mut conn, "root", &format!("p{k}"), &pem).await;
            (conn, r)
        })
    })
}
