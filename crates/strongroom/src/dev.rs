//! The development issuer: GitLab-shaped CI ID tokens signed by a local key, so the
//! pipeline flow can be tried (and tested) without a GitLab instance.
//!
//! The key lives at `$STRONGROOM_DEV_ISSUER_KEY`, else `~/.strongroom/dev-issuer.pem`;
//! `server --dev` trusts it on `auth/jwt` (role `ci`) and serves its JWKS at
//! `/.well-known/jwks.json`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use strongroom_jwt::DevIssuer;

/// Audience the dev role expects unless `--aud` says otherwise.
pub const DEFAULT_AUD: &str = "strongroom";
pub const DEFAULT_ISSUER: &str = "https://gitlab.dev.strongroom.invalid";

pub fn issuer_key_path() -> PathBuf {
    if let Ok(p) = std::env::var("STRONGROOM_DEV_ISSUER_KEY") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    PathBuf::from(home)
        .join(".strongroom")
        .join("dev-issuer.pem")
}

/// Load the dev issuer key, creating it (0600) on first use.
pub fn load_or_create_issuer(path: &std::path::Path) -> Result<DevIssuer> {
    if let Ok(pem) = std::fs::read_to_string(path) {
        return DevIssuer::from_pem(&pem)
            .with_context(|| format!("reading dev issuer key {}", path.display()));
    }
    let issuer = DevIssuer::generate()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::write_private(path, issuer.to_pem().as_bytes())?;
    Ok(issuer)
}

#[derive(clap::Args)]
pub struct CiTokenArgs {
    /// Project path, e.g. `grp/app`.
    #[arg(long)]
    project_path: String,
    /// Git ref the job runs on.
    #[arg(long, default_value = "main")]
    r#ref: String,
    /// `branch` or `tag`.
    #[arg(long, default_value = "branch")]
    ref_type: String,
    /// The ref is protected (`ref_protected: "true"`).
    #[arg(long)]
    protected: bool,
    /// Deployment environment of the job.
    #[arg(long)]
    environment: Option<String>,
    /// The environment is protected.
    #[arg(long)]
    environment_protected: bool,
    /// Deployment tier (production, staging, testing, development, other).
    #[arg(long)]
    deployment_tier: Option<String>,
    /// Audience (`aud`); repeat for several.
    #[arg(long = "aud")]
    aud: Vec<String>,
    #[arg(long, default_value = DEFAULT_ISSUER)]
    issuer: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: i64,
    #[arg(long, default_value = "1")]
    project_id: String,
    #[arg(long, default_value = "1")]
    namespace_id: String,
    #[arg(long, default_value = "1")]
    user_id: String,
    #[arg(long, default_value = "dev")]
    user_login: String,
    #[arg(long, default_value = "dev@example.com")]
    user_email: String,
    #[arg(long, default_value = "developer")]
    user_access_level: String,
    #[arg(long, default_value = "1")]
    pipeline_id: String,
    #[arg(long, default_value = "1")]
    job_id: String,
    /// Extra or overriding claim `key=value` (string); repeatable.
    #[arg(long = "claim")]
    claims: Vec<String>,
    /// Signing key (default: the dev issuer key).
    #[arg(long)]
    key: Option<PathBuf>,
}

/// Every claim GitLab puts in a CI ID token, string-typed as GitLab sends them.
pub fn ci_claims(a: &CiTokenArgs, now: i64) -> Result<Map<String, Value>> {
    if a.ref_type != "branch" && a.ref_type != "tag" {
        bail!("--ref-type must be branch or tag");
    }
    let namespace_path = a
        .project_path
        .rsplit_once('/')
        .map(|(n, _)| n)
        .unwrap_or(&a.project_path);
    let ref_path = if a.ref_type == "tag" {
        format!("refs/tags/{}", a.r#ref)
    } else {
        format!("refs/heads/{}", a.r#ref)
    };
    let aud: Value = match a.aud.as_slice() {
        [] => json!(DEFAULT_AUD),
        [one] => json!(one),
        many => json!(many),
    };
    let mut c = json!({
        "iss": a.issuer,
        "sub": format!("project_path:{}:ref_type:{}:ref:{}", a.project_path, a.ref_type, a.r#ref),
        "aud": aud,
        "iat": now, "nbf": now - 5, "exp": now + a.ttl,
        "jti": strongroom_core::util::uuid4(),
        "namespace_id": a.namespace_id, "namespace_path": namespace_path,
        "project_id": a.project_id, "project_path": a.project_path,
        "user_id": a.user_id, "user_login": a.user_login, "user_email": a.user_email,
        "user_access_level": a.user_access_level,
        "pipeline_id": a.pipeline_id, "pipeline_source": "push", "job_id": a.job_id,
        "ref": a.r#ref, "ref_type": a.ref_type, "ref_path": ref_path,
        "ref_protected": if a.protected { "true" } else { "false" },
        "runner_id": "1", "runner_environment": "self-hosted",
        "sha": "0000000000000000000000000000000000000000",
        "project_visibility": "private",
        "ci_config_ref_uri": format!("gitlab.dev/{}//.gitlab-ci.yml@{}", a.project_path, ref_path),
        "ci_config_sha": "0000000000000000000000000000000000000000",
    });
    let m = c.as_object_mut().expect("object");
    if let Some(env) = &a.environment {
        m.insert("environment".into(), json!(env));
        m.insert(
            "environment_protected".into(),
            json!(if a.environment_protected {
                "true"
            } else {
                "false"
            }),
        );
        m.insert(
            "deployment_tier".into(),
            json!(a.deployment_tier.clone().unwrap_or_else(|| "other".into())),
        );
        m.insert("environment_action".into(), json!("start"));
    }
    for kv in &a.claims {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--claim {kv:?}: use key=value"))?;
        m.insert(k.to_owned(), json!(v));
    }
    Ok(m.clone())
}

pub fn ci_token(a: &CiTokenArgs) -> Result<String> {
    let path = a.key.clone().unwrap_or_else(issuer_key_path);
    let issuer = load_or_create_issuer(&path)?;
    let now = strongroom_core::util::now_secs();
    Ok(issuer.sign(&Value::Object(ci_claims(a, now)?))?)
}
