//! The secrets manager end to end, against the dev server started as a process: users, a
//! group tree and a project created through GraphQL, scoped secrets written by a
//! Maintainer and refused to a Developer, READ_VALUE granted and revoked, and CI jobs with
//! tokens from `strongroom dev ci-token` fetching their secrets through
//! `POST /api/ci/secrets`, each getting exactly what its scope allows.

mod common;

use common::*;
use serde_json::{json, Value};

fn gql(s: &Server, token: &str, query: &str, variables: Value) -> Value {
    let body = json!({ "query": query, "variables": variables }).to_string();
    let r = http(
        "POST",
        &format!("{}/api/graphql", s.addr),
        None,
        &[("Authorization", &format!("Bearer {token}"))],
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// A mutation that must succeed: no top-level error, an empty `errors` in its payload.
fn ok(s: &Server, token: &str, query: &str, variables: Value) -> Value {
    let v = gql(s, token, query, variables);
    assert!(v.get("errors").is_none(), "{query}: {v}");
    let payload = v["data"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert_eq!(payload["errors"], json!([]), "{query}: {v}");
    payload
}

fn refused(s: &Server, token: &str, query: &str, variables: Value) {
    let v = gql(s, token, query, variables);
    let msg = v["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("permission"),
        "{query}: expected a refusal, got {v}"
    );
}

fn ci_token(args: &[&str]) -> String {
    let out = std::process::Command::new(strongroom_bin())
        .args(["dev", "ci-token"])
        .args(args)
        .env("STRONGROOM_DEV_ISSUER_KEY", dev_issuer_key())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn ci_secrets(s: &Server, jwt: &str, body: Option<Value>) -> (u16, Value) {
    let b = body.map(|b| b.to_string());
    let r = http(
        "POST",
        &format!("{}/api/ci/secrets", s.addr),
        None,
        &[("Authorization", &format!("Bearer {jwt}"))],
        b.as_ref().map(|b| b.as_bytes()),
    );
    let v = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

fn names(v: &Value) -> Vec<String> {
    v["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}={}@{}",
                s["name"].as_str().unwrap(),
                s["value"].as_str().unwrap(),
                s["source"].as_str().unwrap()
            )
        })
        .collect()
}

const USER: &str =
    "mutation($u: String!) { userCreate(input: {username: $u}) { user { id username } errors } }";
const PAT: &str = "mutation($u: String!) { personalAccessTokenCreate(input: {username: $u, name: \"t\"}) { token errors } }";
const MEMBER: &str = "mutation($p: String!, $u: String!, $l: AccessLevelEnum!) { memberAdd(input: {path: $p, username: $u, accessLevel: $l}) { errors } }";
const CREATE: &str = "mutation($n: String!, $v: String!, $e: String!, $b: String!) {
  projectSecretCreate(input: {projectPath: \"grp/sub/app\", name: $n, secret: $v, environment: $e, branch: $b, description: \"d\"}) {
    projectSecret { name environment branch version metadataVersion } errors } }";
const READ_VALUE: &str =
    "query { projectSecret(projectPath: \"grp/sub/app\", name: \"DB_PASSWORD\") { name value } }";

#[test]
fn people_build_a_project_and_jobs_get_exactly_their_secrets() {
    let s = strongroom_dev();
    // Without a token, nothing.
    let r = http(
        "POST",
        &format!("{}/api/graphql", s.addr),
        None,
        &[],
        Some(b"{\"query\":\"{ currentUser { id } }\"}"),
    );
    assert_eq!(r.status, 401);

    for u in ["alice", "bob"] {
        ok(&s, ROOT, USER, json!({ "u": u }));
    }
    let alice = ok(&s, ROOT, PAT, json!({ "u": "alice" }))["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = ok(&s, ROOT, PAT, json!({ "u": "bob" }))["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = gql(&s, &alice, "{ currentUser { username } }", json!({}));
    assert_eq!(me["data"]["currentUser"]["username"], "alice");

    ok(
        &s,
        ROOT,
        "mutation { groupCreate(input: {path: \"grp\"}) { group { fullPath } errors } }",
        json!({}),
    );
    ok(&s, ROOT, "mutation { groupCreate(input: {path: \"sub\", parentPath: \"grp\"}) { group { fullPath } errors } }", json!({}));
    let p = ok(&s, ROOT, "mutation { projectCreate(input: {path: \"app\", namespacePath: \"grp/sub\"}) { project { id fullPath } errors } }", json!({}));
    assert_eq!(p["project"]["fullPath"], "grp/sub/app");
    assert!(p["project"]["id"]
        .as_str()
        .unwrap()
        .starts_with("gid://strongroom/Project/"));
    ok(
        &s,
        ROOT,
        MEMBER,
        json!({ "p": "grp", "u": "alice", "l": "MAINTAINER" }),
    );
    ok(
        &s,
        ROOT,
        MEMBER,
        json!({ "p": "grp/sub/app", "u": "bob", "l": "DEVELOPER" }),
    );

    // Owners (here the root token) initialize; a Maintainer may not.
    refused(&s, &alice, "mutation { projectSecretsManagerInitialize(input: {projectPath: \"grp/sub/app\"}) { errors } }", json!({}));
    let sm = ok(&s, ROOT, "mutation { projectSecretsManagerInitialize(input: {projectPath: \"grp/sub/app\"}) { projectSecretsManager { status namespacePath } errors } }", json!({}));
    assert_eq!(sm["projectSecretsManager"]["status"], "ACTIVE");
    ok(
        &s,
        ROOT,
        "mutation { groupSecretsManagerInitialize(input: {groupPath: \"grp\"}) { errors } }",
        json!({}),
    );

    // A Maintainer writes scoped secrets; a Developer is refused.
    ok(
        &s,
        &alice,
        CREATE,
        json!({ "n": "DB_PASSWORD", "v": "p1", "e": "production", "b": "main" }),
    );
    ok(
        &s,
        &alice,
        CREATE,
        json!({ "n": "REVIEW_TOKEN", "v": "r1", "e": "review/*", "b": "*" }),
    );
    ok(
        &s,
        &alice,
        CREATE,
        json!({ "n": "ANY", "v": "a1", "e": "*", "b": "*" }),
    );
    ok(&s, ROOT, "mutation { groupSecretCreate(input: {groupPath: \"grp\", name: \"SHARED\", secret: \"g1\", environment: \"*\", protected: true}) { errors } }", json!({}));
    refused(
        &s,
        &bob,
        CREATE,
        json!({ "n": "X", "v": "x", "e": "*", "b": "*" }),
    );
    let bad = ok_or_errors(
        &s,
        &alice,
        CREATE,
        json!({ "n": "bad-name", "v": "x", "e": "*", "b": "*" }),
    );
    assert!(
        bad[0].as_str().unwrap().contains("^[a-zA-Z0-9_]+$"),
        "{bad:?}"
    );

    let list = gql(&s, &alice, "query { projectSecrets(projectPath: \"grp/sub/app\") { count nodes { name environment branch } } }", json!({}));
    assert_eq!(list["data"]["projectSecrets"]["count"], 3, "{list}");

    // Values only with READ_VALUE: granted to bob, then revoked.
    refused(&s, &bob, READ_VALUE, json!({}));
    let users = gql(&s, &bob, "{ currentUser { id } }", json!({}));
    let bob_id: i64 = users["data"]["currentUser"]["id"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    ok(&s, ROOT, "mutation($id: Int!) { projectSecretsPermissionUpdate(input: {projectPath: \"grp/sub/app\", principal: {id: $id, type: USER}, actions: [READ_VALUE]}) { secretsPermission { actions } errors } }", json!({ "id": bob_id }));
    let v = gql(&s, &bob, READ_VALUE, json!({}));
    assert_eq!(v["data"]["projectSecret"]["value"], "p1", "{v}");
    ok(&s, ROOT, "mutation($id: Int!) { projectSecretsPermissionDelete(input: {projectPath: \"grp/sub/app\", principal: {id: $id, type: USER}}) { errors } }", json!({ "id": bob_id }));
    refused(&s, &bob, READ_VALUE, json!({}));

    // Jobs, with tokens from `strongroom dev ci-token`.
    let prod = ci_token(&[
        "--project-path",
        "grp/sub/app",
        "--ref",
        "main",
        "--protected",
        "--environment",
        "production",
    ]);
    let (st, v) = ci_secrets(&s, &prod, None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        names(&v),
        [
            "ANY=a1@grp/sub/app",
            "DB_PASSWORD=p1@grp/sub/app",
            "SHARED=g1@grp"
        ]
    );
    let review = ci_token(&[
        "--project-path",
        "grp/sub/app",
        "--ref",
        "feat",
        "--environment",
        "review/feat",
    ]);
    let (_, v) = ci_secrets(
        &s,
        &review,
        Some(json!({ "names": ["DB_PASSWORD", "REVIEW_TOKEN", "NOPE"] })),
    );
    assert_eq!(names(&v), ["REVIEW_TOKEN=r1@grp/sub/app"]);
    assert_eq!(v["missing"], json!(["DB_PASSWORD", "NOPE"]));
    let other = ci_token(&[
        "--project-path",
        "other/app",
        "--ref",
        "main",
        "--protected",
    ]);
    let (st, v) = ci_secrets(&s, &other, None);
    assert_eq!((st, v["secrets"].clone()), (200, json!([])));
    let (st, _) = ci_secrets(&s, "not-a-jwt", None);
    assert_eq!(st, 401);

    // Limits: a query asking for too much is refused before anything runs; GraphiQL's
    // introspection (deeply nested `ofType`) still works.
    let wide: String = (0..1_100)
        .map(|i| format!("a{i}: currentUser {{ id }} "))
        .collect();
    let v = gql(&s, ROOT, &format!("{{ {wide} }}"), json!({}));
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("omplex"),
        "{v}"
    );
    let intro = "{ __schema { types { name fields { name type { name kind ofType { name kind ofType { name kind ofType { name kind ofType { name kind ofType { name kind ofType { name kind } } } } } } } } } } }";
    let v = gql(&s, ROOT, intro, json!({}));
    assert!(v.get("errors").is_none(), "introspection: {v}");

    // Probing tells nothing: a path that does not exist and one that exists but is not
    // the caller's to change get the same answer.
    let probe = |path: &str| {
        let v = gql(
            &s,
            &bob,
            MEMBER,
            json!({ "p": path, "u": "alice", "l": "OWNER" }),
        );
        v["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let (missing, existing) = (probe("no/such/project"), probe("grp"));
    assert!(missing.contains("permission"), "{missing}");
    assert_eq!(missing, existing);

    // A revoked token stops working at once.
    let r = ok(&s, &bob, "mutation { personalAccessTokenRevoke(input: {username: \"bob\", name: \"t\"}) { revoked errors } }", json!({}));
    assert_eq!(r["revoked"], 1);
    let r = http(
        "POST",
        &format!("{}/api/graphql", s.addr),
        None,
        &[("Authorization", &format!("Bearer {bob}"))],
        Some(b"{\"query\":\"{ currentUser { id } }\"}"),
    );
    assert_eq!(r.status, 401, "{}", r.body);
}

/// A mutation whose payload carries input errors; returns them.
fn ok_or_errors(s: &Server, token: &str, query: &str, variables: Value) -> Vec<Value> {
    let v = gql(s, token, query, variables);
    assert!(v.get("errors").is_none(), "{query}: {v}");
    let payload = v["data"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    payload["errors"].as_array().unwrap().clone()
}

/// `*` matches any run of characters; written here independently of the server's.
fn glob(p: &str, s: &str) -> bool {
    match p.split_once('*') {
        None => p == s,
        Some((head, rest)) => {
            s.starts_with(head)
                && (0..=s.len() - head.len())
                    .any(|i| s.is_char_boundary(head.len() + i) && glob(rest, &s[head.len() + i..]))
        }
    }
}

struct JobSpec {
    name: &'static str,
    project: &'static str,
    git_ref: &'static str,
    tag: bool,
    protected: bool,
    env: Option<&'static str>,
}

/// The rules, restated: a project secret needs the job's project, the environment glob
/// (a job without one matches only `*`) and the branch glob (tags match only `*`); a
/// group secret needs a project in the group's subtree, the environment, and a protected
/// ref when it is protected.
fn expected(
    job: &JobSpec,
    project_secrets: &[(&str, &str, &str)],
    group_secrets: &[(&str, &str, bool)],
) -> Vec<String> {
    let env_ok = |e: &str| e == "*" || job.env.is_some_and(|j| glob(e, j));
    let mut out = std::collections::BTreeMap::new();
    // The projects of our directory in `grp`'s subtree: a path under `grp/` that names no
    // project of ours gets nothing.
    if ["grp/sub/app", "grp/other"].contains(&job.project) {
        for (n, e, p) in group_secrets {
            if env_ok(e) && (!p || job.protected) {
                out.insert(n.to_string(), format!("{n}@grp"));
            }
        }
    }
    if job.project == "grp/sub/app" {
        for (n, e, b) in project_secrets {
            let branch_ok = *b == "*" || (!job.tag && glob(b, job.git_ref));
            if env_ok(e) && branch_ok {
                out.insert(n.to_string(), format!("{n}@grp/sub/app"));
            }
        }
    }
    out.into_values().collect()
}

fn inline_headers(ns: &str, jwt: &str) -> Vec<(String, String)> {
    use base64::Engine;
    let enc = |k: &str, v: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(json!({"key": k, "value": v}).to_string())
    };
    vec![
        (
            "X-Vault-Inline-Auth-Path".into(),
            "auth/pipeline_jwt/login".into(),
        ),
        ("X-Vault-Inline-Auth-Namespace".into(), ns.into()),
        (
            "X-Vault-Inline-Auth-Parameter-role".into(),
            enc("role", "all_pipelines"),
        ),
        ("X-Vault-Inline-Auth-Parameter-jwt".into(), enc("jwt", jwt)),
    ]
}

/// The group's secrets a job may have, by the rules (not deduplicated against the
/// project's: on `/v1` each namespace answers for its own).
fn expected_group_only(job: &JobSpec, group_secrets: &[(&str, &str, bool)]) -> Vec<String> {
    let env_ok = |e: &str| e == "*" || job.env.is_some_and(|j| glob(e, j));
    if !["grp/sub/app", "grp/other"].contains(&job.project) {
        return Vec::new();
    }
    group_secrets
        .iter()
        .filter(|(_, e, p)| env_ok(e) && (!p || job.protected))
        .map(|(n, _, _)| format!("{n}@grp"))
        .collect()
}

/// Both runner flows against one secrets manager's namespace: what each read, sorted
/// (`None` for the classic flow when the login is refused, as it must be exactly when
/// the job's project is not `admitted`).
fn v1_flows(
    s: &Server,
    ns: &str,
    names: &[&str],
    source: &str,
    jwt: &str,
    admitted: bool,
    job: &str,
) -> (Option<Vec<String>>, Vec<String>) {
    let login = http(
        "PUT",
        &s.url(&format!("{ns}/auth/pipeline_jwt/login")),
        None,
        &[],
        Some(
            json!({"role": "all_pipelines", "jwt": jwt})
                .to_string()
                .as_bytes(),
        ),
    );
    let token = if admitted {
        assert_eq!(login.status, 200, "{job} in {source}: {}", login.body);
        Some(
            login.json()["auth"]["client_token"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    } else {
        assert_eq!(
            login.status, 400,
            "{job} may not log in to {source}: {}",
            login.body
        );
        None
    };
    let mut classic = Vec::new();
    let mut inline = Vec::new();
    for n in names {
        let path = s.url(&format!("{ns}/secrets/kv/data/explicit/{n}"));
        if let Some(t) = &token {
            let r = http("GET", &path, Some(t), &[], None);
            match r.status {
                200 => {
                    assert_eq!(r.json()["data"]["data"]["value"], *n);
                    classic.push(format!("{n}@{source}"));
                }
                404 => {}
                other => panic!("{job}: GET {n} in {source}: {other} {}", r.body),
            }
        }
        let h = inline_headers(ns, jwt);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let r = http("GET", &path, None, &h, None);
        match r.status {
            200 => {
                assert_eq!(r.json()["data"]["data"]["value"], *n);
                inline.push(format!("{n}@{source}"));
            }
            404 => {}
            // A job whose project is not admitted: its login fails, and says so.
            400 if r.header("X-Vault-Inline-Auth-Failed") == Some("true") => {
                assert!(!admitted, "{job}: {}", r.body);
            }
            other => panic!("{job}: inline GET {n} in {source}: {other} {}", r.body),
        }
    }
    classic.sort();
    inline.sort();
    (token.map(|_| classic), inline)
}

/// Scoped secrets × jobs (branch or tag, protected or not, with and without an
/// environment, another project, a subgroup's project, a project outside the group):
/// exactly the expected set through `POST /api/ci/secrets`, GitLab Runner's classic
/// `vault` flow (login, then one GET per secret) and its inline-auth flow (one GET per
/// secret), in the project's namespace and in the group's.
#[test]
fn every_job_gets_exactly_its_scoped_secrets_through_all_three_paths() {
    let s = strongroom_dev();
    for q in [
        "mutation { groupCreate(input: {path: \"grp\"}) { errors } }",
        "mutation { groupCreate(input: {path: \"sub\", parentPath: \"grp\"}) { errors } }",
        "mutation { groupCreate(input: {path: \"outside\"}) { errors } }",
        "mutation { projectCreate(input: {path: \"app\", namespacePath: \"grp/sub\"}) { errors } }",
        "mutation { projectCreate(input: {path: \"other\", namespacePath: \"grp\"}) { errors } }",
        "mutation { projectCreate(input: {path: \"ext\", namespacePath: \"outside\"}) { errors } }",
        "mutation { projectSecretsManagerInitialize(input: {projectPath: \"grp/sub/app\"}) { errors } }",
        "mutation { projectSecretsManagerInitialize(input: {projectPath: \"outside/ext\"}) { errors } }",
        "mutation { groupSecretsManagerInitialize(input: {groupPath: \"grp\"}) { errors } }",
    ] {
        ok(&s, ROOT, q, json!({}));
    }
    let project_secrets: &[(&str, &str, &str)] = &[
        ("ANY", "*", "*"),
        ("PROD_MAIN", "production", "main"),
        ("PROD_ANY", "production", "*"),
        ("REVIEW", "review/*", "*"),
        ("FEATURE", "*", "feat-*"),
        ("SUFFIX", "*-prod", "*"),
        ("STAGING", "staging", "main"),
    ];
    let group_secrets: &[(&str, &str, bool)] = &[
        ("G_ANY", "*", false),
        ("G_PROTECTED", "*", true),
        ("G_PROD", "production", false),
        ("ANY", "*", false),
    ];
    for (n, e, b) in project_secrets {
        ok(&s, ROOT, "mutation($n: String!, $e: String!, $b: String!) { projectSecretCreate(input: {projectPath: \"grp/sub/app\", name: $n, secret: $n, environment: $e, branch: $b}) { errors } }", json!({"n": n, "e": e, "b": b}));
    }
    for (n, e, p) in group_secrets {
        ok(&s, ROOT, "mutation($n: String!, $e: String!, $p: Boolean!) { groupSecretCreate(input: {groupPath: \"grp\", name: $n, secret: $n, environment: $e, protected: $p}) { errors } }", json!({"n": n, "e": e, "p": p}));
    }
    ok(&s, ROOT, "mutation { projectSecretCreate(input: {projectPath: \"outside/ext\", name: \"EXT\", secret: \"EXT\", environment: \"*\", branch: \"*\"}) { errors } }", json!({}));
    let ns = gql(
        &s,
        ROOT,
        "{ projectSecretsManager(projectPath: \"grp/sub/app\") { namespacePath } }",
        json!({}),
    )["data"]["projectSecretsManager"]["namespacePath"]
        .as_str()
        .unwrap()
        .to_owned();

    let jobs = [
        JobSpec {
            name: "main, protected, production",
            project: "grp/sub/app",
            git_ref: "main",
            tag: false,
            protected: true,
            env: Some("production"),
        },
        JobSpec {
            name: "main, protected, no environment",
            project: "grp/sub/app",
            git_ref: "main",
            tag: false,
            protected: true,
            env: None,
        },
        JobSpec {
            name: "feature branch, review env",
            project: "grp/sub/app",
            git_ref: "feat-login",
            tag: false,
            protected: false,
            env: Some("review/feat-login"),
        },
        JobSpec {
            name: "feature branch, eu-prod",
            project: "grp/sub/app",
            git_ref: "feat-x",
            tag: false,
            protected: false,
            env: Some("eu-prod"),
        },
        JobSpec {
            name: "tag, protected, production",
            project: "grp/sub/app",
            git_ref: "main",
            tag: true,
            protected: true,
            env: Some("production"),
        },
        JobSpec {
            name: "main, unprotected, staging",
            project: "grp/sub/app",
            git_ref: "main",
            tag: false,
            protected: false,
            env: Some("staging"),
        },
        JobSpec {
            name: "group's other project",
            project: "grp/other",
            git_ref: "main",
            tag: false,
            protected: true,
            env: Some("production"),
        },
        JobSpec {
            name: "project outside the group",
            project: "outside/ext-nope",
            git_ref: "main",
            tag: false,
            protected: true,
            env: Some("production"),
        },
        JobSpec {
            name: "unknown project",
            project: "grp/ghost",
            git_ref: "main",
            tag: false,
            protected: true,
            env: None,
        },
    ];
    let all_names: Vec<&str> = project_secrets.iter().map(|p| p.0).collect();
    let group_names: Vec<&str> = group_secrets.iter().map(|p| p.0).collect();
    let group_ns = gql(
        &s,
        ROOT,
        "{ groupSecretsManager(groupPath: \"grp\") { namespacePath } }",
        json!({}),
    )["data"]["groupSecretsManager"]["namespacePath"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut checked = 0;
    for job in &jobs {
        let mut args = vec![
            "--project-path",
            job.project,
            "--ref",
            job.git_ref,
            "--ref-type",
            if job.tag { "tag" } else { "branch" },
        ];
        if job.protected {
            args.push("--protected");
        }
        if let Some(e) = job.env {
            args.extend(["--environment", e]);
        }
        let jwt = ci_token(&args);

        // 1. One round trip.
        let (st, v) = ci_secrets(&s, &jwt, None);
        assert_eq!(st, 200, "{}: {v}", job.name);
        let got: Vec<String> = v["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                format!(
                    "{}@{}",
                    x["name"].as_str().unwrap(),
                    x["source"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            got,
            expected(job, project_secrets, group_secrets),
            "/api/ci/secrets, {}",
            job.name
        );
        for x in v["secrets"].as_array().unwrap() {
            assert_eq!(
                x["value"], x["name"],
                "{}: the value is the secret's",
                job.name
            );
        }

        // 2 and 3. GitLab Runner's resolvers on `/v1`, against the project's namespace and
        // the group's: the classic `vault` flow (log in, then read each secret) and the
        // `gitlab_secrets_manager` flow (inline auth on each GET).
        for (ns, names, source, admitted) in [
            (&ns, &all_names, "grp/sub/app", job.project == "grp/sub/app"),
            (
                &group_ns,
                &group_names,
                "grp",
                ["grp/sub/app", "grp/other"].contains(&job.project),
            ),
        ] {
            let want: Vec<String> = expected(job, project_secrets, group_secrets)
                .into_iter()
                .filter(|x| x.ends_with(&format!("@{source}")))
                .collect();
            // `ANY` exists in both: the project's wins in one round trip, each is its own
            // namespace's here.
            let want: Vec<String> = if source == "grp" {
                let mut w = expected_group_only(job, group_secrets);
                w.sort();
                w
            } else {
                want
            };
            let (classic, inline) = v1_flows(&s, ns, names, source, &jwt, admitted, job.name);
            if let Some(classic) = classic {
                assert_eq!(
                    classic, want,
                    "classic runner flow in {source}'s namespace, {}",
                    job.name
                );
            }
            assert_eq!(
                inline, want,
                "inline-auth flow in {source}'s namespace, {}",
                job.name
            );
            checked += names.len();
        }
    }
    // The secret of a project outside the group reached no one above.
    assert_eq!(checked, jobs.len() * (all_names.len() + group_names.len()));
}
