//! Pipeline identity: JWT auth configured and used with the real `bao` CLI, compared
//! case by case with a real OpenBao; the attack corpus; glob bound claims; and replays of
//! GitLab Runner's two secret resolvers.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use common::*;
use serde_json::{json, Value};
use strongroom_jwt::{forge_hs256, forge_none, DevIssuer};

const ISS: &str = "https://gitlab.example.com";
const AUD: &str = "https://strongroom.example";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A GitLab CI ID token's claims (string-typed as GitLab sends them).
fn gitlab_claims() -> Value {
    let t = now();
    json!({
        "iss": ISS, "aud": AUD, "sub": "project_path:grp/app:ref_type:branch:ref:main",
        "iat": t, "nbf": t - 5, "exp": t + 600, "jti": "j-1",
        "namespace_id": "7", "namespace_path": "grp", "project_id": "42", "project_path": "grp/app",
        "user_id": "3", "user_login": "alice", "user_email": "alice@example.com", "user_access_level": "developer",
        "pipeline_id": "100", "pipeline_source": "push", "job_id": "1000",
        "ref": "main", "ref_type": "branch", "ref_path": "refs/heads/main", "ref_protected": "true",
        "environment": "production", "environment_protected": "true", "deployment_tier": "production",
        "runner_id": "9", "runner_environment": "self-hosted", "sha": "abc", "project_visibility": "private",
    })
}

fn with(mut c: Value, k: &str, v: Value) -> Value {
    if v.is_null() {
        c.as_object_mut().unwrap().remove(k);
    } else {
        c[k] = v;
    }
    c
}

struct Setup {
    issuer: DevIssuer,
    dir: TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = TempDir::new("jwt");
        let issuer = DevIssuer::generate().unwrap();
        std::fs::write(dir.path().join("pub.pem"), issuer.public_pem()).unwrap();
        Setup { issuer, dir }
    }

    /// Configure jwt auth on a server with the bao CLI, exactly as an operator would.
    fn configure(&self, s: &Server, role: &Value) {
        let a = &s.addr;
        let t = Some(ROOT);
        // our dev server pre-mounts auth/jwt for its dev issuer; start clean on both
        bao_ok(a, t, &["auth", "disable", "jwt"]);
        bao_ok(a, t, &["auth", "enable", "jwt"]);
        let pem = format!(
            "jwt_validation_pubkeys=@{}",
            self.dir.path().join("pub.pem").display()
        );
        bao_ok(
            a,
            t,
            &[
                "write",
                "auth/jwt/config",
                &pem,
                &format!("bound_issuer={ISS}"),
            ],
        );
        let role_file = self.dir.path().join(format!("role-{}.json", s.name));
        std::fs::write(&role_file, role.to_string()).unwrap();
        bao_ok(
            a,
            t,
            &[
                "write",
                "auth/jwt/role/ci",
                &format!("@{}", role_file.display()),
            ],
        );
        let policy = self.dir.path().join("ci.hcl");
        std::fs::write(
            &policy,
            "path \"secret/data/app/*\" {\n  capabilities = [\"read\"]\n}\n",
        )
        .unwrap();
        bao_ok(a, t, &["policy", "write", "ci", &policy.to_string_lossy()]);
    }
}

fn ci_role() -> Value {
    json!({
        "role_type": "jwt",
        "user_claim": "user_email",
        "bound_audiences": [AUD],
        "bound_claims": {"project_path": "grp/app", "ref_protected": "true"},
        "claim_mappings": {"project_path": "project_path", "environment": "environment"},
        "token_policies": ["ci"],
        "token_ttl": "10m",
    })
}

/// Configure `role` on `s`, log in as a GitLab job and return the token issued and the
/// login's answer.
fn job_token(setup: &Setup, s: &Server, role: &Value) -> (String, Value) {
    setup.configure(s, role);
    let jwt = setup.issuer.sign(&gitlab_claims()).unwrap();
    let (status, body) = login(s, "ci", &jwt);
    assert_eq!(status, 200, "{}: {body}", s.name);
    (
        body["auth"]["client_token"].as_str().unwrap().to_owned(),
        body,
    )
}

/// HTTP login; returns (status, body).
fn login(s: &Server, role: &str, jwt: &str) -> (u16, Value) {
    let body = json!({"role": role, "jwt": jwt}).to_string();
    let r = http(
        "POST",
        &s.url("auth/jwt/login"),
        None,
        &[],
        Some(body.as_bytes()),
    );
    let j = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    (r.status, j)
}

/// The table both servers must agree on: (name, token, allowed?).
fn cases(issuer: &DevIssuer) -> Vec<(&'static str, String, bool)> {
    let good = gitlab_claims();
    let t = now();
    let other = DevIssuer::generate().unwrap();
    let sign = |c: &Value| issuer.sign(c).unwrap();
    vec![
        ("valid", sign(&good), true),
        (
            "aud as array",
            sign(&with(good.clone(), "aud", json!(["x", AUD]))),
            true,
        ),
        ("alg none", forge_none(&good), false),
        (
            "HS256 with the RSA public key",
            forge_hs256(issuer.public_pem().as_bytes(), &good),
            false,
        ),
        (
            "bad signature",
            other
                .sign_with_header(&json!({"alg": "RS256", "kid": issuer.kid}), &good)
                .unwrap(),
            false,
        ),
        ("unknown key and kid", other.sign(&good).unwrap(), false),
        (
            "expired",
            sign(&with(
                with(good.clone(), "exp", json!(t - 1000)),
                "iat",
                json!(t - 2000),
            )),
            false,
        ),
        (
            "not yet valid",
            sign(&with(good.clone(), "nbf", json!(t + 1000))),
            false,
        ),
        (
            "issued in the future",
            sign(&with(
                with(good.clone(), "iat", json!(t + 1000)),
                "nbf",
                Value::Null,
            )),
            false,
        ),
        (
            "wrong iss",
            sign(&with(good.clone(), "iss", json!("https://evil.example"))),
            false,
        ),
        (
            "aud absent",
            sign(&with(good.clone(), "aud", Value::Null)),
            false,
        ),
        (
            "aud wrong string",
            sign(&with(good.clone(), "aud", json!("https://other"))),
            false,
        ),
        (
            "aud wrong array",
            sign(&with(good.clone(), "aud", json!(["a", "b"]))),
            false,
        ),
        (
            "ref_protected as a boolean",
            sign(&with(good.clone(), "ref_protected", json!(true))),
            false,
        ),
        (
            "wrong project",
            sign(&with(good.clone(), "project_path", json!("grp/other"))),
            false,
        ),
        (
            "user claim missing",
            sign(&with(good.clone(), "user_email", Value::Null)),
            false,
        ),
        ("garbage", "not.a.jwt".into(), false),
        (
            "1 MiB token",
            format!("{}.{}.{}", "a".repeat(1 << 19), "b".repeat(1 << 19), "c"),
            false,
        ),
    ]
}

#[test]
fn bao_cli_configures_and_logs_in_and_both_servers_agree() {
    let setup = Setup::new();
    let ours = strongroom_dev();
    let theirs = openbao_dev();
    for s in [&ours, &theirs] {
        setup.configure(s, &ci_role());
        // the role reads back
        let role = bao_json(&s.addr, Some(ROOT), &["read", "auth/jwt/role/ci"]);
        assert_eq!(role["data"]["bound_audiences"], json!([AUD]), "{}", s.name);
        assert_eq!(role["data"]["user_claim"], "user_email");
    }
    // a real login with the CLI on both, compared in shape
    let token = setup.issuer.sign(&gitlab_claims()).unwrap();
    let a = bao_json(
        &ours.addr,
        None,
        &[
            "write",
            "auth/jwt/login",
            "role=ci",
            &format!("jwt={token}"),
        ],
    );
    let b = bao_json(
        &theirs.addr,
        None,
        &[
            "write",
            "auth/jwt/login",
            "role=ci",
            &format!("jwt={token}"),
        ],
    );
    assert_eq!(a["auth"]["policies"], json!(["ci", "default"]));
    assert_eq!(a["auth"]["metadata"]["project_path"], "grp/app");
    assert_eq!(a["auth"]["metadata"]["role"], "ci");
    let strip = |mut v: Value| {
        v["auth"].as_object_mut().unwrap().remove("mfa_requirement");
        v["auth"].as_object_mut().unwrap().remove("num_uses");
        v["auth"].clone()
    };
    assert_same_shape(
        "bao write auth/jwt/login (auth)",
        &strip(a.clone()),
        &strip(b),
    );
    let tok = a["auth"]["client_token"].as_str().unwrap();
    assert!(bao(&ours.addr, Some(tok), &["token", "lookup"])
        .status
        .success());

    // the table of tokens: same allow/deny on both servers
    let mut mismatches = Vec::new();
    for (name, jwt, want) in cases(&setup.issuer) {
        let (sa, ba) = (login(&ours, "ci", &jwt), login(&theirs, "ci", &jwt));
        let (ours_ok, theirs_ok) = (sa.0 == 200, ba.0 == 200);
        if ours_ok != want || theirs_ok != want {
            mismatches.push(format!(
                "{name}: want {want}, ours {} {}, openbao {} {}",
                sa.0, sa.1, ba.0, ba.1
            ));
        }
        if !want {
            assert!(
                sa.0 == 400 || sa.0 == 403,
                "{name}: refused with {} {}",
                sa.0,
                sa.1
            );
            assert!(
                sa.1.get("auth").is_none_or(Value::is_null),
                "{name}: nothing issued"
            );
        }
    }
    assert!(
        mismatches.is_empty(),
        "allow/deny differs:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn a_config_write_replaces_the_whole_config_on_both_servers() {
    let setup = Setup::new();
    let ours = strongroom_dev();
    let theirs = openbao_dev();
    let pem = setup.issuer.public_pem();
    // Both fetch their keys from our dev server's JWKS document (loopback HTTP).
    let jwks = format!("{}/.well-known/jwks.json", ours.addr);
    let mut seen = Vec::new();
    for s in [&ours, &theirs] {
        bao_ok(&s.addr, Some(ROOT), &["auth", "enable", "-path=cfg", "jwt"]);
        let write = |body: Value| {
            let r = http(
                "POST",
                &s.url("auth/cfg/config"),
                Some(ROOT),
                &[],
                Some(body.to_string().as_bytes()),
            );
            assert_eq!(r.status, 204, "{}: {body}: {}", s.name, r.body);
            let c = http("GET", &s.url("auth/cfg/config"), Some(ROOT), &[], None).json();
            let d = &c["data"];
            json!([
                d["jwt_validation_pubkeys"].as_array().map_or(0, Vec::len),
                d["jwks_url"],
                d["bound_issuer"],
                d["default_role"],
            ])
        };
        let first = write(
            json!({"jwt_validation_pubkeys": [pem], "bound_issuer": ISS, "default_role": "ci"}),
        );
        // A field left out is reset, not kept from the last write ...
        let second = write(json!({"jwt_validation_pubkeys": [pem]}));
        // ... so a config moves from keys to a JWKS URL in one write.
        let third = write(json!({"jwks_url": jwks}));
        seen.push((first, second, third));
    }
    assert_eq!(seen[0], seen[1], "ours, then OpenBao's");
    assert_eq!(seen[0].1, json!([1, "", "", ""]));
    assert_eq!(seen[0].2, json!([0, jwks, "", ""]));
}

#[test]
fn token_with_aud_against_role_without_bound_audiences_is_refused() {
    // CVE-2024-5798: a role with no bound_audiences must not accept tokens that carry `aud`.
    let setup = Setup::new();
    let ours = strongroom_dev();
    let theirs = openbao_dev();
    let role = json!({"role_type": "jwt", "user_claim": "sub", "bound_claims": {"project_path": "grp/app"}, "token_policies": ["ci"]});
    for s in [&ours, &theirs] {
        setup.configure(s, &role);
        let with_aud = setup.issuer.sign(&gitlab_claims()).unwrap();
        let without = setup
            .issuer
            .sign(&with(gitlab_claims(), "aud", Value::Null))
            .unwrap();
        let (st, body) = login(s, "ci", &with_aud);
        assert_eq!(st, 400, "{}: {body}", s.name);
        assert_eq!(login(s, "ci", &without).0, 200, "{}", s.name);
    }
}

#[test]
fn no_login_grants_the_root_policy_on_either_server() {
    let setup = Setup::new();
    let ours = strongroom_dev();
    let theirs = openbao_dev();
    let token = setup.issuer.sign(&gitlab_claims()).unwrap();
    for s in [&ours, &theirs] {
        // Named by the role, for service and batch tokens ...
        for token_type in ["service", "batch"] {
            let mut role = ci_role();
            role["token_policies"] = json!(["ci", "root"]);
            role["token_type"] = json!(token_type);
            setup.configure(s, &role);
            let (st, body) = login(s, "ci", &token);
            assert_eq!(st, 400, "{} {token_type}: {body}", s.name);
            assert_eq!(
                body,
                json!({"errors": ["auth methods cannot create root tokens"]}),
                "{}",
                s.name
            );
        }
        // ... or rendered from a claim by a templated policy (a project named "root").
        let mut role = ci_role();
        role["token_policies"] = json!(["{{ .project_path }}"]);
        role["token_policies_template_claims"] = json!(true);
        role["bound_claims"] = json!({});
        setup.configure(s, &role);
        let rooted = setup
            .issuer
            .sign(&with(gitlab_claims(), "project_path", json!("root")))
            .unwrap();
        let (st, body) = login(s, "ci", &rooted);
        assert_eq!(st, 400, "{}: {body}", s.name);
        let (st, body) = login(s, "ci", &token);
        assert_eq!(st, 200, "{}: {body}", s.name);
        assert_eq!(body["auth"]["policies"], json!(["default", "grp/app"]));
    }
}

#[test]
fn glob_bound_claims_match_openbao() {
    let setup = Setup::new();
    let ours = strongroom_dev();
    let theirs = openbao_dev();
    let table: &[(&str, &str)] = &[
        ("*", "anything"),
        ("*", ""),
        ("release/*", "release/1.2"),
        ("release/*", "releases/1"),
        ("release/*", "release/"),
        ("*-prod", "eu-prod"),
        ("*-prod", "eu-prod-2"),
        ("a*b*c", "a-b-c"),
        ("a*b*c", "abc"),
        ("a*b*c", "acb"),
        ("", ""),
        ("", "x"),
        ("main", "main"),
        ("main", "main2"),
        ("feat/*/fix", "feat/a/b/fix"),
        ("\u{e9}t\u{e9}-*", "\u{e9}t\u{e9}-2026"),
        ("*\u{1f512}", "x\u{1f512}"),
        ("*/*", "a/b"),
        ("*/*", "ab"),
    ];
    let mut mismatches = Vec::new();
    for s in [&ours, &theirs] {
        setup.configure(s, &ci_role());
    }
    for (pattern, value) in table {
        let role = json!({
            "role_type": "jwt", "user_claim": "sub", "bound_audiences": [AUD],
            "bound_claims_type": "glob", "bound_claims": {"ref": pattern}, "token_policies": ["ci"],
        });
        let jwt = setup
            .issuer
            .sign(&with(gitlab_claims(), "ref", json!(value)))
            .unwrap();
        let want = strongroom_jwt::glob_match(pattern, value);
        let mut got = Vec::new();
        for s in [&ours, &theirs] {
            let r = http(
                "POST",
                &s.url("auth/jwt/role/glob"),
                Some(ROOT),
                &[],
                Some(role.to_string().as_bytes()),
            );
            assert_eq!(r.status, 204, "{}: {}", s.name, r.body);
            got.push(login(s, "glob", &jwt).0 == 200);
        }
        if got != [want, want] {
            mismatches.push(format!(
                "{pattern:?} vs {value:?}: expected {want}, ours {}, openbao {}",
                got[0], got[1]
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "glob matching differs:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn attack_corpus_issues_nothing() {
    let setup = Setup::new();
    let s = strongroom_dev();
    let mut role = ci_role();
    role["token_type"] = json!("service");
    setup.configure(&s, &role);
    let before = http(
        "LIST",
        &s.url("auth/token/accessors"),
        Some(ROOT),
        &[],
        None,
    )
    .json()["data"]["keys"]
        .as_array()
        .unwrap()
        .len();
    for (name, jwt, want) in cases(&setup.issuer) {
        if want {
            continue;
        }
        let (st, body) = login(&s, "ci", &jwt);
        assert!(st == 400 || st == 403, "{name}: {st} {body}");
        let msg = body["errors"][0].as_str().unwrap_or_default();
        assert!(
            !msg.contains(&jwt[..jwt.len().min(40)]),
            "{name}: the error echoes the token"
        );
    }
    let after = http(
        "LIST",
        &s.url("auth/token/accessors"),
        Some(ROOT),
        &[],
        None,
    )
    .json()["data"]["keys"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "no token was stored by a refused login");
    // the dev issuer CLI: its tokens log in on the dev server's own jwt mount
    let out = std::process::Command::new(strongroom_bin())
        .args([
            "dev",
            "ci-token",
            "--project-path",
            "grp/app",
            "--ref",
            "main",
            "--protected",
            "--environment",
            "production",
        ])
        .env("STRONGROOM_DEV_ISSUER_KEY", dev_issuer_key())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tok = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let claims = strongroom_jwt::Jwt::parse(&tok).unwrap().claims().unwrap();
    for k in [
        "iss",
        "sub",
        "aud",
        "iat",
        "nbf",
        "exp",
        "jti",
        "namespace_id",
        "namespace_path",
        "project_id",
        "project_path",
        "user_id",
        "user_login",
        "user_email",
        "user_access_level",
        "pipeline_id",
        "pipeline_source",
        "job_id",
        "ref",
        "ref_type",
        "ref_path",
        "ref_protected",
        "environment",
        "environment_protected",
        "deployment_tier",
        "environment_action",
        "runner_id",
        "runner_environment",
        "sha",
        "project_visibility",
        "ci_config_ref_uri",
        "ci_config_sha",
    ] {
        assert!(claims.contains_key(k), "dev token lacks {k}");
    }
    assert_eq!(claims["ref_protected"], "true");
    assert_eq!(claims["project_id"], "1", "claims are strings");
    let dev = strongroom_dev();
    let r = http(
        "POST",
        &dev.url("auth/jwt/login"),
        None,
        &[],
        Some(json!({"role": "ci", "jwt": tok}).to_string().as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.json()["auth"]["client_token"]
            .as_str()
            .unwrap()
            .starts_with("b."),
        "dev CI logins are batch tokens"
    );
}

fn inline_headers(path: &str, params: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut h = vec![("X-Vault-Inline-Auth-Path".to_owned(), path.to_owned())];
    for (k, v) in params {
        let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(json!({"key": k, "value": v}).to_string());
        h.push((format!("X-Vault-Inline-Auth-Parameter-{k}"), enc));
    }
    h
}

#[test]
fn gitlab_runner_vault_resolver_replay() {
    let setup = Setup::new();
    let s = strongroom_dev();
    setup.configure(&s, &ci_role());
    bao_ok(
        &s.addr,
        Some(ROOT),
        &["kv", "put", "-mount=secret", "app/db", "password=s3cr3t"],
    );
    bao_ok(
        &s.addr,
        Some(ROOT),
        &["kv", "put", "-mount=secret", "other/db", "password=nope"],
    );
    let jwt = setup.issuer.sign(&gitlab_claims()).unwrap();
    let runner = [("X-Vault-Request", "true"), ("X-Vault-Namespace", "")];
    // 1. PUT auth/<path>/login {jwt, role}
    let body = json!({"jwt": jwt, "role": "ci"}).to_string();
    let r = http(
        "PUT",
        &s.url("auth/jwt/login"),
        None,
        &runner,
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // 2. GET <engine>/data/<path>, field read from data.data
    let mut headers = runner.to_vec();
    headers.push(("X-Vault-Token", &token));
    let r = http("GET", &s.url("secret/data/app/db"), None, &headers, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["data"]["password"], "s3cr3t");
    // a missing secret: 404 the runner reads as not found
    let r = http(
        "GET",
        &s.url("secret/data/app/missing"),
        None,
        &headers,
        None,
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json(), json!({"errors": []}));
    // outside the job's scope: 403
    let r = http("GET", &s.url("secret/data/other/db"), None, &headers, None);
    assert_eq!(r.status, 403);
}

#[test]
fn gitlab_secrets_manager_resolver_replay() {
    let setup = Setup::new();
    let s = strongroom_dev();
    let a = &s.addr;
    let t = Some(ROOT);
    let ns = "group_7/project_42";
    bao_ok(a, t, &["namespace", "create", "group_7"]);
    bao_ok(
        a,
        t,
        &["namespace", "create", "-namespace=group_7", "project_42"],
    );
    let n = format!("-namespace={ns}");
    bao_ok(
        a,
        t,
        &["secrets", "enable", &n, "-path=secrets/kv", "kv-v2"],
    );
    bao_ok(a, t, &["auth", "enable", &n, "-path=pipeline_jwt", "jwt"]);
    let pem = format!(
        "jwt_validation_pubkeys=@{}",
        setup.dir.path().join("pub.pem").display()
    );
    bao_ok(a, t, &["write", &n, "auth/pipeline_jwt/config", &pem]);
    // GitLab compiles scopes into policies named by the hex of the environment.
    let role = json!({
        "role_type": "jwt", "user_claim": "project_id", "bound_audiences": [AUD],
        "bound_claims": {"project_id": "42"}, "token_type": "batch",
        "token_policies_template_claims": true,
        "token_policies": ["pipelines", "pipeline_env_{{ hex .environment }}"],
    });
    let r = http(
        "POST",
        &s.url("auth/pipeline_jwt/role/all_pipelines"),
        t,
        &[("X-Vault-Namespace", ns)],
        Some(role.to_string().as_bytes()),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let prod_policy = format!("pipeline_env_{}", hex::encode("production"));
    let pol = json!({"policy": "path \"secrets/kv/data/explicit/DB_PASSWORD\" { capabilities = [\"read\"] }"}).to_string();
    let r = http(
        "PUT",
        &s.url(&format!("sys/policies/acl/{prod_policy}")),
        t,
        &[("X-Vault-Namespace", ns)],
        Some(pol.as_bytes()),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let pol =
        json!({"policy": "path \"secrets/kv/data/explicit/SHARED\" { capabilities = [\"read\"] }"})
            .to_string();
    assert_eq!(
        http(
            "PUT",
            &s.url("sys/policies/acl/pipelines"),
            t,
            &[("X-Vault-Namespace", ns)],
            Some(pol.as_bytes())
        )
        .status,
        204
    );
    bao_ok(
        a,
        t,
        &[
            "kv",
            "put",
            &n,
            "-mount=secrets/kv",
            "explicit/DB_PASSWORD",
            "value=prod-db-pass",
        ],
    );
    bao_ok(
        a,
        t,
        &[
            "kv",
            "put",
            &n,
            "-mount=secrets/kv",
            "explicit/STAGING_KEY",
            "value=staging-only",
        ],
    );
    bao_ok(
        a,
        t,
        &[
            "kv",
            "put",
            &n,
            "-mount=secrets/kv",
            "explicit/SHARED",
            "value=everyone",
        ],
    );

    let prod_jwt = setup.issuer.sign(&gitlab_claims()).unwrap();
    let get = |name: &str, jwt: &str| {
        let h = inline_headers(
            &format!("{ns}/auth/pipeline_jwt/login"),
            &[("role", "all_pipelines"), ("jwt", jwt)],
        );
        let mut hs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        hs.push(("X-Vault-Request", "true"));
        hs.push(("X-Vault-Namespace", ""));
        http(
            "GET",
            &s.url(&format!("{ns}/secrets/kv/data/explicit/{name}")),
            None,
            &hs,
            None,
        )
    };
    let r = get("DB_PASSWORD", &prod_jwt);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["data"]["value"], "prod-db-pass");
    assert_eq!(
        get("SHARED", &prod_jwt).json()["data"]["data"]["value"],
        "everyone"
    );
    // outside the job's scope: production job, staging secret
    assert_eq!(get("STAGING_KEY", &prod_jwt).status, 403);
    // a staging job cannot read the production secret
    let staging = setup
        .issuer
        .sign(&with(gitlab_claims(), "environment", json!("staging")))
        .unwrap();
    assert_eq!(get("DB_PASSWORD", &staging).status, 403);
    // a failed inline login says so
    let bad = get("DB_PASSWORD", "not.a.jwt");
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.header("x-vault-inline-auth-failed"), Some("true"));
    let wrong_project = setup
        .issuer
        .sign(&with(gitlab_claims(), "project_id", json!("43")))
        .unwrap();
    let r = get("SHARED", &wrong_project);
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-vault-inline-auth-failed"), Some("true"));
    // a token and inline auth together are refused
    let h = inline_headers(
        &format!("{ns}/auth/pipeline_jwt/login"),
        &[("role", "all_pipelines"), ("jwt", &prod_jwt)],
    );
    let mut hs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    hs.push(("X-Vault-Token", ROOT));
    let r = http(
        "GET",
        &s.url(&format!("{ns}/secrets/kv/data/explicit/SHARED")),
        None,
        &hs,
        None,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // nothing was persisted: no token in the project namespace
    let r = http(
        "LIST",
        &s.url("auth/token/accessors"),
        t,
        &[("X-Vault-Namespace", ns)],
        None,
    );
    assert_eq!(r.status, 404, "inline logins store no token: {}", r.body);
    // The job's repeated logins reuse its first one only while the role stands: a role
    // change applies to the very next request with the same JWT.
    assert_eq!(get("SHARED", &prod_jwt).status, 200);
    let narrowed = json!({"bound_claims": {"project_id": "99"}});
    let r = http(
        "POST",
        &s.url("auth/pipeline_jwt/role/all_pipelines"),
        t,
        &[("X-Vault-Namespace", ns)],
        Some(narrowed.to_string().as_bytes()),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let r = get("SHARED", &prod_jwt);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.header("x-vault-inline-auth-failed"), Some("true"));

    // An inline login is for one request: it cannot mint a token that would outlive the
    // JWT (OpenBao: 400 `parent token lookup failed`), even with a service-token role
    // whose policy allows creating tokens.
    let pol = json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }"});
    let r = http(
        "PUT",
        &s.url("sys/policies/acl/creator"),
        t,
        &[("X-Vault-Namespace", ns)],
        Some(pol.to_string().as_bytes()),
    );
    assert!(r.status < 300, "{}", r.body);
    let svc = json!({
        "role_type": "jwt", "user_claim": "project_id", "bound_audiences": [AUD],
        "token_type": "service", "token_policies": ["creator"],
    });
    let r = http(
        "POST",
        &s.url("auth/pipeline_jwt/role/svc"),
        t,
        &[("X-Vault-Namespace", ns)],
        Some(svc.to_string().as_bytes()),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let h = inline_headers(
        &format!("{ns}/auth/pipeline_jwt/login"),
        &[("role", "svc"), ("jwt", &prod_jwt)],
    );
    let hs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = http(
        "POST",
        &s.url(&format!("{ns}/auth/token/create")),
        None,
        &hs,
        Some(b"{}"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("parent token lookup failed"), "{}", r.body);
}

#[test]
fn jwks_url_and_oidc_discovery() {
    let s = strongroom_dev();
    let t = Some(ROOT);
    let dev_token = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(strongroom_bin());
        cmd.args(["dev", "ci-token", "--project-path", "grp/app"])
            .args(extra)
            .env("STRONGROOM_DEV_ISSUER_KEY", dev_issuer_key());
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let role = json!({"role_type": "jwt", "user_claim": "project_path", "bound_audiences": ["strongroom"], "token_policies": ["default"]});
    // JWKS URL (loopback HTTP is allowed in dev mode)
    bao_ok(&s.addr, t, &["auth", "enable", "-path=jwks", "jwt"]);
    let r = http(
        "POST",
        &s.url("auth/jwks/config"),
        t,
        &[],
        Some(
            json!({"jwks_url": format!("{}/.well-known/jwks.json", s.addr)})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        http(
            "POST",
            &s.url("auth/jwks/role/ci"),
            t,
            &[],
            Some(role.to_string().as_bytes())
        )
        .status,
        204
    );
    let tok = dev_token(&[]);
    let r = http(
        "POST",
        &s.url("auth/jwks/login"),
        None,
        &[],
        Some(json!({"role": "ci", "jwt": tok}).to_string().as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // a token from an unknown key (unknown kid): refreshed once, still refused
    let stranger = DevIssuer::generate().unwrap();
    let forged = stranger
        .sign(
            &strongroom_jwt::Jwt::parse(&tok)
                .unwrap()
                .claims()
                .unwrap()
                .into(),
        )
        .unwrap();
    let r = http(
        "POST",
        &s.url("auth/jwks/login"),
        None,
        &[],
        Some(json!({"role": "ci", "jwt": forged}).to_string().as_bytes()),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // the documents answer GET and HEAD only; other paths outside /v1/ are 404
    let jwks_url = format!("{}/.well-known/jwks.json", s.addr);
    let r = http("GET", &jwks_url, None, &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert!(r.json()["keys"][0]["n"].is_string(), "{}", r.body);
    assert_eq!(http("HEAD", &jwks_url, None, &[], None).status, 200);
    let r = http("POST", &jwks_url, None, &[], Some(b"{}"));
    assert_eq!(r.status, 405, "{}", r.body);
    assert_eq!(r.header("allow"), Some("GET,HEAD"));
    let r = http(
        "GET",
        &format!("{}/.well-known/nope", s.addr),
        None,
        &[],
        None,
    );
    assert_eq!(r.status, 404, "{}", r.body);
    // OIDC discovery
    bao_ok(&s.addr, t, &["auth", "enable", "-path=oidc", "jwt"]);
    let r = http(
        "POST",
        &s.url("auth/oidc/config"),
        t,
        &[],
        Some(json!({"oidc_discovery_url": s.addr}).to_string().as_bytes()),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        http(
            "POST",
            &s.url("auth/oidc/role/ci"),
            t,
            &[],
            Some(role.to_string().as_bytes())
        )
        .status,
        204
    );
    let r = http(
        "POST",
        &s.url("auth/oidc/login"),
        None,
        &[],
        Some(json!({"role": "ci", "jwt": tok}).to_string().as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // a config whose keys cannot be fetched is refused; so is plain HTTP off loopback
    for url in ["http://127.0.0.1:1/keys", "http://192.0.2.1/keys"] {
        let r = http(
            "POST",
            &s.url("auth/jwks/config"),
            t,
            &[],
            Some(json!({"jwks_url": url}).to_string().as_bytes()),
        );
        assert_eq!(r.status, 400, "{url}: {}", r.body);
    }
    // two key sources at once are refused
    let r = http(
        "POST",
        &s.url("auth/jwks/config"),
        t,
        &[],
        Some(
            json!({"jwks_url": "https://x", "jwt_validation_pubkeys": ["y"]})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(r.status, 400);
    // the earlier config still works: a failed update changed nothing
    let r = http(
        "POST",
        &s.url("auth/jwks/login"),
        None,
        &[],
        Some(json!({"role": "ci", "jwt": tok}).to_string().as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A service token from a role with `token_max_ttl` stops at it on renewal, whatever
/// increment the job asks for (OpenBao caps it and warns; we gave 30 days before).
#[test]
fn renewal_stops_at_the_roles_max_ttl_on_both_servers() {
    let setup = Setup::new();
    let ours = strongroom_dev();
    let theirs = openbao_dev();
    let role = with(
        with(
            with(ci_role(), "token_ttl", json!("2m")),
            "token_max_ttl",
            json!("5m"),
        ),
        "token_type",
        json!("service"),
    );
    let mut seen = Vec::new();
    for s in [&ours, &theirs] {
        let (token, body) = job_token(&setup, s, &role);
        assert!(
            body["auth"]["lease_duration"].as_i64().unwrap() <= 120,
            "{}",
            s.name
        );
        let r = http(
            "POST",
            &s.url("auth/token/renew-self"),
            Some(&token),
            &[],
            Some(br#"{"increment":"720h"}"#),
        );
        assert_eq!(r.status, 200, "{}: {}", s.name, r.body);
        let renewed = r.json();
        let lease = renewed["auth"]["lease_duration"].as_i64().unwrap();
        assert!(
            (290..=300).contains(&lease),
            "{}: renewed to {lease}s",
            s.name
        );
        let warned = renewed["warnings"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w.as_str().unwrap_or("").contains("max")));
        seen.push(warned);
    }
    assert_eq!(seen, [true, true], "both warn that the TTL was capped");
}

/// Leeways around `exp` and `nbf` as OpenBao applies them: with a role's leeways given as
/// 0, left out (their defaults), or -1 (off), tokens that expired (or start) some seconds
/// away are accepted or refused alike on both servers.
#[test]
fn jwt_leeways_match_openbao() {
    let setup = Setup::new();
    let ours = strongroom_dev();
    let theirs = openbao_dev();
    let leeways = [
        (
            "zero",
            json!({"clock_skew_leeway": 0, "expiration_leeway": 0, "not_before_leeway": 0}),
        ),
        ("default", json!({})),
        (
            "off",
            json!({"clock_skew_leeway": -1, "expiration_leeway": -1, "not_before_leeway": -1}),
        ),
        (
            "given",
            json!({"clock_skew_leeway": 30, "expiration_leeway": 100, "not_before_leeway": 100}),
        ),
        (
            "skew only",
            json!({"clock_skew_leeway": 100, "expiration_leeway": -1, "not_before_leeway": -1}),
        ),
    ];
    let mut table = Vec::new();
    let mut differ = Vec::new();
    for (name, l) in &leeways {
        let mut role = ci_role();
        for (k, v) in l.as_object().unwrap() {
            role[k] = v.clone();
        }
        let mut row = Vec::new();
        for s in [&ours, &theirs] {
            setup.configure(s, &role);
            let mut got = Vec::new();
            for offset in [-20i64, -45, -75, -120, -180, -240, 45, 90, 200] {
                // Negative: expired that long ago. Positive: not valid for that long yet.
                let (exp, nbf) = if offset < 0 {
                    (now() + offset, now() + offset - 600)
                } else {
                    (now() + offset + 600, now() + offset)
                };
                let claims = with(with(gitlab_claims(), "exp", json!(exp)), "nbf", json!(nbf));
                let claims = with(claims, "iat", json!(nbf.min(now())));
                let jwt = setup.issuer.sign(&claims).unwrap();
                got.push((offset, login(s, "ci", &jwt).0 == 200));
            }
            row.push(got);
        }
        table.push(format!(
            "{name}: ours {:?}\n{name}: openbao {:?}",
            row[0], row[1]
        ));
        if row[0] != row[1] {
            differ.push(name.to_string());
        }
    }
    println!("{}", table.join("\n"));
    assert!(
        differ.is_empty(),
        "leeways differ for {differ:?}:\n{}",
        table.join("\n")
    );
}

/// Disabling an auth method revokes the service tokens its logins issued, on both servers:
/// the first step of an incident response must not leave them working.
#[test]
fn disabling_an_auth_method_revokes_its_tokens_on_both_servers() {
    let setup = Setup::new();
    let ours = strongroom_dev();
    let theirs = openbao_dev();
    let role = with(ci_role(), "token_type", json!("service"));
    let mut seen = Vec::new();
    for s in [&ours, &theirs] {
        let (token, _) = job_token(&setup, s, &role);
        let alive = |t: &str| {
            http("GET", &s.url("auth/token/lookup-self"), Some(t), &[], None).status == 200
        };
        let before = alive(&token);
        bao_ok(&s.addr, Some(ROOT), &["auth", "disable", "jwt"]);
        seen.push((before, alive(&token)));
    }
    assert_eq!(seen, [(true, false), (true, false)], "ours, then OpenBao's");
}

/// An inline login is resolved in `X-Vault-Inline-Auth-Namespace` alone (absent: the
/// root), not in the request's `X-Vault-Namespace`, on both servers.
#[test]
fn inline_auth_namespace_replaces_the_request_namespace_on_both_servers() {
    let setup = Setup::new();
    let ours = strongroom_dev();
    let theirs = openbao_dev();
    let mut seen = Vec::new();
    for s in [&ours, &theirs] {
        setup.configure(s, &ci_role());
        bao_ok(&s.addr, Some(ROOT), &["namespace", "create", "a"]);
        let jwt = setup.issuer.sign(&gitlab_claims()).unwrap();
        let h = inline_headers("auth/jwt/login", &[("role", "ci"), ("jwt", &jwt)]);
        let mut hs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        hs.push(("X-Vault-Namespace", "a"));
        // The login is at the root's auth/jwt; the request runs in `a`, below the token's
        // namespace, where the job's policy grants nothing.
        let in_a = http("GET", &s.url("auth/token/lookup-self"), None, &hs, None).status;
        // Naming `a` as the login's namespace looks for auth/jwt there: none.
        let mut hs2 = hs.clone();
        hs2.push(("X-Vault-Inline-Auth-Namespace", "a"));
        let login_in_a = http("GET", &s.url("auth/token/lookup-self"), None, &hs2, None);
        seen.push((
            in_a,
            login_in_a.status >= 400,
            login_in_a
                .header("x-vault-inline-auth-failed")
                .map(str::to_owned),
        ));
    }
    assert_eq!(seen[0], seen[1], "ours, then OpenBao's");
    // The first login succeeded (the request is then judged by the ACL, not refused as a
    // failed login); the second found no auth/jwt in `a`.
    assert_eq!(seen[0].0, 403);
    assert_eq!(seen[0].2.as_deref(), Some("true"));
}

/// Claims that are not strings are judged as OpenBao judges them: the user claim must be a
/// string; a bound claim compares numbers, strings and booleans as OpenBao does, and a
/// list claim only by its elements' own types (`[42]` does not satisfy `"42"`).
#[test]
fn non_string_claims_are_judged_as_openbao_judges_them() {
    let setup = Setup::new();
    let ours = strongroom_dev();
    let theirs = openbao_dev();
    for s in [&ours, &theirs] {
        setup.configure(s, &ci_role());
    }
    // (user claim, bound claims, bound claims type, claims set on the token)
    let table: Vec<(&str, Value, &str, Value)> = vec![
        ("n", json!({}), "string", json!({"n": 42})),
        ("b", json!({}), "string", json!({"b": true})),
        ("l", json!({}), "string", json!({"l": ["alice"]})),
        ("sub", json!({"p": "42"}), "string", json!({"p": 42})),
        ("sub", json!({"p": "42"}), "string", json!({"p": [42]})),
        ("sub", json!({"p": "42"}), "string", json!({"p": ["42"]})),
        ("sub", json!({"p": "42"}), "string", json!({"p": 42.0})),
        ("sub", json!({"p": 42}), "string", json!({"p": 42})),
        ("sub", json!({"p": 42}), "string", json!({"p": "42"})),
        (
            "sub",
            json!({"p": ["41", "42"]}),
            "string",
            json!({"p": 42}),
        ),
        ("sub", json!({"p": "true"}), "string", json!({"p": true})),
        ("sub", json!({"p": true}), "string", json!({"p": true})),
        ("sub", json!({"p": true}), "string", json!({"p": "true"})),
        ("sub", json!({"p": "4*"}), "glob", json!({"p": 42})),
        ("sub", json!({"p": "4*"}), "glob", json!({"p": ["42"]})),
        ("sub", json!({"p": "4*"}), "glob", json!({"p": [42]})),
        ("sub", json!({"p": "x"}), "string", json!({"p": {"a": "x"}})),
        ("sub", json!({"p": "x"}), "string", json!({"p": null})),
    ];
    let mut rows = Vec::new();
    for (i, (user, bound, kind, set)) in table.iter().enumerate() {
        let role = json!({
            "role_type": "jwt", "user_claim": user, "bound_audiences": [AUD],
            "bound_claims_type": kind, "bound_claims": bound, "token_policies": ["ci"],
        });
        let mut claims = gitlab_claims();
        for (k, v) in set.as_object().unwrap() {
            claims[k] = v.clone();
        }
        let jwt = setup.issuer.sign(&claims).unwrap();
        let mut got = Vec::new();
        for s in [&ours, &theirs] {
            let r = http(
                "POST",
                &s.url(&format!("auth/jwt/role/t{i}")),
                Some(ROOT),
                &[],
                Some(role.to_string().as_bytes()),
            );
            got.push(if r.status >= 300 {
                format!("role refused {}", r.status)
            } else {
                login(s, &format!("t{i}"), &jwt).0.to_string()
            });
        }
        rows.push(format!(
            "{user} {bound} {kind} {set}: ours {}, OpenBao {}",
            got[0], got[1]
        ));
        if got[0] != got[1] {
            rows.last_mut().unwrap().push_str("   <-- differs");
        }
    }
    let report = rows.join("\n");
    assert!(!report.contains("differs"), "{report}");
    assert!(
        report.contains("OpenBao 200") && report.contains("OpenBao 400"),
        "{report}"
    );
}

/// An auth method moved with `sys/remount` takes its logins' tokens with it: they stop
/// working at the move, on both servers (none outlives the mount it names), and the
/// moved method logs in at its new path.
#[test]
fn tokens_of_a_moved_auth_method_stop_working() {
    let setup = Setup::new();
    for s in [strongroom_dev(), openbao_dev()] {
        let (tok, _) = job_token(&setup, &s, &ci_role());
        let r = http(
            "POST",
            &s.url("sys/remount"),
            Some(ROOT),
            &[],
            Some(br#"{"from": "auth/jwt", "to": "auth/moved"}"#),
        );
        assert_eq!(r.status, 200, "{}: {}", s.name, r.body);
        let mut status = 0;
        for _ in 0..50 {
            status = http(
                "GET",
                &s.url("auth/token/lookup-self"),
                Some(&tok),
                &[],
                None,
            )
            .status;
            if status == 403 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(
            status, 403,
            "{}: a token outlived the move of its method",
            s.name
        );
        let jwt = setup.issuer.sign(&gitlab_claims()).unwrap();
        let body = json!({"role": "ci", "jwt": jwt}).to_string();
        // (OpenBao moves in the background: its new path answers once the move is done)
        let mut r = http(
            "POST",
            &s.url("auth/moved/login"),
            None,
            &[],
            Some(body.as_bytes()),
        );
        for _ in 0..50 {
            if r.status == 200 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            r = http(
                "POST",
                &s.url("auth/moved/login"),
                None,
                &[],
                Some(body.as_bytes()),
            );
        }
        assert_eq!(r.status, 200, "{}: {}", s.name, r.body);
    }
}

/// An incident: every token a compromised auth method issued is listed, looked up and
/// revoked by prefix (`sys/leases/*`), on both servers; revoking one lease ends one token.
#[test]
fn tokens_are_leases_listed_looked_up_and_revoked_by_prefix() {
    let setup = Setup::new();
    for s in [strongroom_dev(), openbao_dev()] {
        let (a, _) = job_token(&setup, &s, &ci_role());
        let jwt = setup.issuer.sign(&gitlab_claims()).unwrap();
        let (status, body) = login(&s, "ci", &jwt);
        assert_eq!(status, 200, "{}: {body}", s.name);
        let b = body["auth"]["client_token"].as_str().unwrap().to_owned();
        let (_, body) = login(&s, "ci", &jwt);
        let c = body["auth"]["client_token"].as_str().unwrap().to_owned();
        let listed = http(
            "LIST",
            &s.url("sys/leases/lookup/auth/jwt/login/"),
            Some(ROOT),
            &[],
            None,
        );
        assert_eq!(listed.status, 200, "{}: {}", s.name, listed.body);
        let keys = listed.json()["data"]["keys"].as_array().unwrap().clone();
        assert_eq!(keys.len(), 3, "{}: {keys:?}", s.name);
        let dirs = http(
            "LIST",
            &s.url("sys/leases/lookup/auth/"),
            Some(ROOT),
            &[],
            None,
        );
        assert!(
            dirs.json()["data"]["keys"]
                .as_array()
                .unwrap()
                .contains(&json!("jwt/")),
            "{}: {}",
            s.name,
            dirs.body
        );
        let id = format!("auth/jwt/login/{}", keys[0].as_str().unwrap());
        let look = http(
            "PUT",
            &s.url("sys/leases/lookup"),
            Some(ROOT),
            &[],
            Some(json!({ "lease_id": id }).to_string().as_bytes()),
        );
        assert_eq!(look.status, 200, "{}: {}", s.name, look.body);
        let d = look.json()["data"].clone();
        assert_eq!(d["id"], id, "{}", s.name);
        assert!(d["ttl"].as_i64().unwrap() > 0, "{}: {d}", s.name);
        assert_eq!(d["renewable"], true, "{}", s.name);
        // one lease
        let r = http(
            "PUT",
            &s.url("sys/leases/revoke"),
            Some(ROOT),
            &[],
            Some(json!({ "lease_id": id }).to_string().as_bytes()),
        );
        assert_eq!(r.status, 204, "{}: {}", s.name, r.body);
        let alive = |t: &str| {
            http("GET", &s.url("auth/token/lookup-self"), Some(t), &[], None).status == 200
        };
        let mut wait = 0;
        while [&a, &b, &c].iter().filter(|t| alive(t)).count() != 2 && wait < 50 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            wait += 1;
        }
        assert_eq!(
            [&a, &b, &c].iter().filter(|t| alive(t)).count(),
            2,
            "{}",
            s.name
        );
        // the whole mount
        // (a write to a path ending in `/` is refused on both)
        let r = http(
            "PUT",
            &s.url("sys/leases/revoke-prefix/auth/jwt/"),
            Some(ROOT),
            &[],
            Some(b"{}"),
        );
        assert_eq!(r.status, 400, "{}: {}", s.name, r.body);
        bao_ok(
            &s.addr,
            Some(ROOT),
            &["lease", "revoke", "-prefix", "auth/jwt"],
        );
        let mut wait = 0;
        while [&a, &b, &c].iter().any(|t| alive(t)) && wait < 50 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            wait += 1;
        }
        assert!(
            ![&a, &b, &c].iter().any(|t| alive(t)),
            "{}: a token outlived revoke-prefix",
            s.name
        );
        let gone = http(
            "LIST",
            &s.url("sys/leases/lookup/auth/jwt/login/"),
            Some(ROOT),
            &[],
            None,
        );
        assert_eq!(gone.status, 404, "{}: {}", s.name, gone.body);
        let r = http(
            "PUT",
            &s.url("sys/leases/lookup"),
            Some(ROOT),
            &[],
            Some(json!({ "lease_id": id }).to_string().as_bytes()),
        );
        assert_eq!(r.status, 400, "{}: {}", s.name, r.body);
    }
}
