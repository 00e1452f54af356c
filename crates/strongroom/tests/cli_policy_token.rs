//! `bao policy …` and `bao token …` against our server and a real OpenBao.

mod common;

use common::*;
use serde_json::{json, Value};

const APP_POLICY: &str = r#"
path "secret/data/app/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/app/*" {
  capabilities = ["list", "read"]
}
path "secret/data/app/prod/*" {
  capabilities = ["deny"]
}
path "auth/token/create" {
  capabilities = ["create", "update"]
}
"#;

fn write_policy_file(dir: &TempDir) -> String {
    let p = dir.path().join("app.hcl");
    std::fs::write(&p, APP_POLICY).unwrap();
    p.to_string_lossy().into_owned()
}

/// Policy and token commands; returns outputs to compare in shape.
fn session(s: &Server, policy_file: &str) -> Vec<(String, Value)> {
    let a = &s.addr;
    let t = Some(ROOT);
    let mut out = Vec::new();
    bao_ok(a, t, &["policy", "write", "app", policy_file]);
    let list = bao_json(a, t, &["policy", "list"]);
    assert_eq!(list, json!(["app", "default", "root"]), "{}", s.name);
    let read = bao_ok(a, t, &["policy", "read", "app"]);
    assert!(
        read.contains("secret/data/app/prod/*"),
        "{}: {read}",
        s.name
    );
    let err = bao_err(a, t, &["policy", "write", "RoOt", policy_file]);
    assert!(err.contains("root"), "{}: {err}", s.name);
    let err = bao_err(a, t, &["policy", "delete", "default"]);
    assert!(
        err.contains("cannot delete default policy"),
        "{}: {err}",
        s.name
    );

    let created = bao_json(
        a,
        t,
        &[
            "token",
            "create",
            "-policy=app",
            "-ttl=1h",
            "-display-name=ci",
            "-metadata=team=a",
        ],
    );
    out.push(("token create".into(), created.clone()));
    let tok = created["auth"]["client_token"].as_str().unwrap().to_owned();
    assert_eq!(
        created["auth"]["policies"],
        json!(["app", "default"]),
        "{}",
        s.name
    );
    assert!(created["auth"]["lease_duration"].as_i64().unwrap() > 3500);

    let look = bao_json(a, t, &["token", "lookup", &tok]);
    assert_eq!(look["data"]["display_name"], "token-ci", "{}", s.name);
    assert_eq!(look["data"]["meta"], json!({"team": "a"}));
    out.push(("token lookup".into(), look.clone()));
    let me = bao_json(a, Some(&tok), &["token", "lookup"]);
    assert_eq!(me["data"]["policies"], json!(["app", "default"]));

    // the policy decides
    bao_ok(
        a,
        Some(&tok),
        &["kv", "put", "-mount=secret", "app/web", "k=v"],
    );
    assert_eq!(
        bao_json(a, Some(&tok), &["kv", "get", "-mount=secret", "app/web"])["data"]["data"]["k"],
        "v"
    );
    let err = bao_err(
        a,
        Some(&tok),
        &["kv", "put", "-mount=secret", "app/prod/db", "k=v"],
    );
    assert!(
        err.contains("permission denied") || err.contains("403"),
        "{}: {err}",
        s.name
    );
    let err = bao_err(
        a,
        Some(&tok),
        &["kv", "put", "-mount=secret", "other", "k=v"],
    );
    assert!(
        err.contains("403") || err.contains("permission denied"),
        "{}: {err}",
        s.name
    );
    let caps = bao_ok(
        a,
        Some(&tok),
        &["token", "capabilities", "secret/data/app/x"],
    );
    assert_eq!(caps.trim(), "create, read, update", "{}", s.name);
    let caps = bao_ok(
        a,
        Some(&tok),
        &["token", "capabilities", "secret/data/app/prod/x"],
    );
    assert_eq!(caps.trim(), "deny", "{}", s.name);
    // Several paths: one list each, and no "capabilities" key (OpenBao adds it for one path).
    let body = json!({"paths": ["secret/data/app/x", "secret/data/app/prod/x"]}).to_string();
    let r = http(
        "POST",
        &s.url("sys/capabilities-self"),
        Some(&tok),
        &[],
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}: {}", s.name, r.body);
    let data = r.json()["data"].clone();
    assert_eq!(
        data,
        json!({"secret/data/app/x": ["create", "read", "update"], "secret/data/app/prod/x": ["deny"]}),
        "{}",
        s.name
    );
    // Root's answer to one request: its status and JSON body.
    let answer = |method: &str, path: &str, body: &str| {
        let r = http(method, &s.url(path), t, &[], Some(body.as_bytes()));
        (
            r.status,
            serde_json::from_str::<Value>(&r.body).unwrap_or(Value::Null),
        )
    };
    // A batch token never carries root: asked for, or inherited from a root parent.
    let refused = (
        400,
        json!({"errors": ["batch tokens cannot be root tokens"]}),
    );
    for body in [
        r#"{"type": "batch", "policies": ["root"]}"#,
        r#"{"type": "batch"}"#,
    ] {
        let got = answer("POST", "auth/token/create", body);
        assert_eq!(got, refused, "{}: {body}", s.name);
    }
    // Renewing a token that does not exist: 400 "token not found"; revoking an accessor that
    // does not exist: 200 with a warning.
    let got = answer("POST", "auth/token/renew", r#"{"token": "s.doesnotexist"}"#);
    let want = (400, json!({"errors": ["token not found"]}));
    assert_eq!(got, want, "{}", s.name);
    let (status, body) = answer(
        "POST",
        "auth/token/revoke-accessor",
        r#"{"accessor": "doesnotexist"}"#,
    );
    assert_eq!(status, 200, "{}: {body}", s.name);
    let warned = json!(["No token found with this accessor"]);
    assert_eq!(body["warnings"], warned, "{}", s.name);
    // A list names a directory, with or without its trailing slash, so a rule on its
    // children's glob allows it; a rule that needs a wrapped response allows nothing here
    // (nor in OpenBao without wrapping).
    let narrow = r#"{"policy": "path \"secret/metadata/*\" {\n  capabilities = [\"list\"]\n}\npath \"secret/data/wrapped\" {\n  capabilities = [\"read\"]\n  min_wrapping_ttl = \"1s\"\n}"}"#;
    let (status, body) = answer("PUT", "sys/policies/acl/narrow", narrow);
    assert_eq!(status, 204, "{}: {body}", s.name);
    let nt = bao_json(a, t, &["token", "create", "-policy=narrow"])["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in ["secret/metadata", "secret/metadata/"] {
        let r = http("LIST", &s.url(path), Some(&nt), &[], None);
        assert_eq!(r.status, 200, "{}: LIST {path}: {}", s.name, r.body);
    }
    let r = http("GET", &s.url("secret/data/wrapped"), Some(&nt), &[], None);
    assert_eq!(r.status, 403, "{}: {}", s.name, r.body);
    bao_ok(a, t, &["policy", "delete", "narrow"]);
    // A lookup of a token that does not exist: 403 "bad token".
    let got = answer(
        "POST",
        "auth/token/lookup",
        r#"{"token": "s.doesnotexist"}"#,
    );
    assert_eq!(got, (403, json!({"errors": ["bad token"]})), "{}", s.name);

    let renewed = bao_json(a, t, &["token", "renew", "-increment=2h", &tok]);
    assert!(
        renewed["auth"]["lease_duration"].as_i64().unwrap() > 7000,
        "{}: {renewed}",
        s.name
    );
    out.push(("token renew".into(), renewed));

    // children die with their parent
    let child = bao_json(a, Some(&tok), &["token", "create", "-policy=app"]);
    let child_tok = child["auth"]["client_token"].as_str().unwrap().to_owned();
    let err = bao_err(a, Some(&tok), &["token", "create", "-policy=root"]);
    assert!(
        err.contains("subset") || err.contains("root"),
        "{}: {err}",
        s.name
    );
    bao_ok(a, t, &["token", "revoke", &tok]);
    assert!(
        !bao(a, Some(&child_tok), &["token", "lookup"])
            .status
            .success(),
        "{}: child revoked with parent",
        s.name
    );
    assert!(!bao(a, Some(&tok), &["token", "lookup"]).status.success());

    // orphans survive; accessors work
    let parent = bao_json(a, t, &["token", "create", "-policy=app"]);
    let ptok = parent["auth"]["client_token"].as_str().unwrap().to_owned();
    let orphan = bao_json(a, t, &["token", "create", "-policy=app", "-orphan"]);
    let otok = orphan["auth"]["client_token"].as_str().unwrap().to_owned();
    let acc = parent["auth"]["accessor"].as_str().unwrap().to_owned();
    let by_acc = bao_json(a, t, &["token", "lookup", "-accessor", &acc]);
    assert_eq!(
        by_acc["data"]["id"], "",
        "{}: lookup by accessor hides the token",
        s.name
    );
    bao_ok(a, t, &["token", "revoke", "-accessor", &acc]);
    assert!(!bao(a, Some(&ptok), &["token", "lookup"]).status.success());
    assert!(bao(a, Some(&otok), &["token", "lookup"]).status.success());

    // limited uses
    let once = bao_json(a, t, &["token", "create", "-policy=app", "-use-limit=2"]);
    let once_tok = once["auth"]["client_token"].as_str().unwrap().to_owned();
    // (raw HTTP: the kv CLI's preflight request would spend a use too)
    let url = s.url("secret/data/app/web");
    assert_eq!(http("GET", &url, Some(&once_tok), &[], None).status, 200);
    assert_eq!(http("GET", &url, Some(&once_tok), &[], None).status, 200);
    assert_eq!(
        http("GET", &url, Some(&once_tok), &[], None).status,
        403,
        "{}: use limit",
        s.name
    );

    bao_ok(a, t, &["policy", "delete", "app"]);
    assert_eq!(
        bao_json(a, t, &["policy", "list"]),
        json!(["default", "root"])
    );
    out
}

#[test]
fn policy_and_token_commands_match_openbao() {
    let dir = TempDir::new("policy");
    let f = write_policy_file(&dir);
    let ours = strongroom_dev();
    let theirs = openbao_dev();
    let a = session(&ours, &f);
    let b = session(&theirs, &f);
    for ((name, x), (_, y)) in a.iter().zip(b.iter()) {
        assert_same_shape(&format!("bao {name}"), x, y);
    }
}

#[test]
fn token_expiry_batch_tokens_and_explicit_max_ttl() {
    let s = strongroom_dev();
    let a = &s.addr;
    let short = bao_json(a, Some(ROOT), &["token", "create", "-ttl=2s"]);
    let st = short["auth"]["client_token"].as_str().unwrap().to_owned();
    bao_ok(a, Some(&st), &["token", "lookup"]);
    std::thread::sleep(std::time::Duration::from_millis(3200));
    assert!(
        !bao(a, Some(&st), &["token", "lookup"]).status.success(),
        "expired token refused"
    );

    let batch = bao_json(
        a,
        Some(ROOT),
        &[
            "token",
            "create",
            "-type=batch",
            "-policy=default",
            "-ttl=10m",
        ],
    );
    let bt = batch["auth"]["client_token"].as_str().unwrap().to_owned();
    assert!(bt.starts_with("b."));
    let look = bao_json(a, Some(&bt), &["token", "lookup"]);
    assert_eq!(look["data"]["type"], "batch");
    assert_eq!(look["data"]["renewable"], false);
    let err = bao_err(a, Some(&bt), &["token", "create"]);
    assert!(err.contains("permission denied"), "{err}");
    // a tampered batch token is just invalid
    let mut tampered = bt.clone().into_bytes();
    let i = tampered.len() - 5;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let r = http(
        "GET",
        &s.url("auth/token/lookup-self"),
        Some(std::str::from_utf8(&tampered).unwrap()),
        &[],
        None,
    );
    assert_eq!(r.status, 403);

    let capped = bao_json(
        a,
        Some(ROOT),
        &["token", "create", "-explicit-max-ttl=1m", "-ttl=1h"],
    );
    assert!(capped["auth"]["lease_duration"].as_i64().unwrap() <= 60);
    let ct = capped["auth"]["client_token"].as_str().unwrap().to_owned();
    let r = bao_json(a, Some(ROOT), &["token", "renew", "-increment=1h", &ct]);
    assert!(
        r["auth"]["lease_duration"].as_i64().unwrap() <= 60,
        "renew capped by explicit max: {r}"
    );

    // JSON policy bodies and parameter constraints through the API
    let body = json!({"policy": "{\"path\": {\"secret/data/cfg\": {\"capabilities\": [\"create\",\"update\"], \"allowed_parameters\": {\"data\": []}, \"denied_parameters\": {\"options\": []}}}}"});
    let r = http(
        "PUT",
        &s.url("sys/policies/acl/cfg"),
        Some(ROOT),
        &[],
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let r = http("GET", &s.url("sys/policies/acl/cfg"), Some(ROOT), &[], None);
    assert_eq!(r.json()["data"]["name"], "cfg");
    let t = bao_json(a, Some(ROOT), &["token", "create", "-policy=cfg"])["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = http(
        "POST",
        &s.url("secret/data/cfg"),
        Some(&t),
        &[],
        Some(br#"{"data": {"a": "b"}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http(
        "POST",
        &s.url("secret/data/cfg"),
        Some(&t),
        &[],
        Some(br#"{"data": {"a": "b"}, "options": {"cas": 1}}"#),
    );
    assert_eq!(r.status, 403, "denied parameter: {}", r.body);
    let r = http(
        "PUT",
        &s.url("sys/policies/acl/bad"),
        Some(ROOT),
        &[],
        Some(br#"{"policy": "path \"x\" { capabilities = [\"fly\"] }"}"#),
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("fly"), "{}", r.body);
}
