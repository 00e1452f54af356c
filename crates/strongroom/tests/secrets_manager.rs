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
