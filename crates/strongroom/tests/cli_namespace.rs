//! Namespaces: `bao namespace create/list/lookup`, `-namespace=` on kv, isolation of mounts,
//! policies and tokens, compared with a real OpenBao.

mod common;

use common::*;
use serde_json::{json, Value};

fn session(s: &Server) -> Vec<(String, Value)> {
    let a = &s.addr;
    let t = Some(ROOT);
    let mut out = Vec::new();
    out.push((
        "namespace create".into(),
        bao_json(a, t, &["namespace", "create", "team-a"]),
    ));
    bao_ok(a, t, &["namespace", "create", "team-b"]);
    let nested = bao_json(a, t, &["namespace", "create", "-namespace=team-a", "sub"]);
    assert_eq!(nested["path"], "team-a/sub/", "{}", s.name);
    out.push(("namespace create nested".into(), nested));
    // OpenBao lists in no particular order; compare as sets.
    let mut list: Vec<String> =
        serde_json::from_value(bao_json(a, t, &["namespace", "list"])).unwrap();
    list.sort();
    assert_eq!(list, ["team-a/", "team-b/"], "{}", s.name);
    assert_eq!(
        bao_json(a, t, &["namespace", "list", "-namespace=team-a"]),
        json!(["sub/"])
    );
    out.push((
        "namespace lookup".into(),
        bao_json(a, t, &["namespace", "lookup", "team-a"]),
    ));

    // each namespace has its own mounts
    bao_ok(
        a,
        t,
        &[
            "secrets",
            "enable",
            "-namespace=team-a",
            "-path=secret",
            "kv-v2",
        ],
    );
    bao_ok(
        a,
        t,
        &[
            "secrets",
            "enable",
            "-namespace=team-b",
            "-path=secret",
            "kv-v2",
        ],
    );
    bao_ok(
        a,
        t,
        &[
            "kv",
            "put",
            "-namespace=team-a",
            "-mount=secret",
            "db",
            "pass=a-secret",
        ],
    );
    bao_ok(
        a,
        t,
        &[
            "kv",
            "put",
            "-namespace=team-b",
            "-mount=secret",
            "db",
            "pass=b-secret",
        ],
    );
    let ga = bao_json(
        a,
        t,
        &["kv", "get", "-namespace=team-a", "-mount=secret", "db"],
    );
    assert_eq!(ga["data"]["data"]["pass"], "a-secret", "{}", s.name);
    out.push(("kv get in namespace".into(), ga));
    assert_eq!(
        bao_json(
            a,
            t,
            &["kv", "get", "-namespace=team-b", "-mount=secret", "db"]
        )["data"]["data"]["pass"],
        "b-secret"
    );
    // the path-prefix form reaches the same data
    let r = http("GET", &s.url("team-a/secret/data/db"), t, &[], None);
    assert_eq!(
        r.json()["data"]["data"]["pass"],
        "a-secret",
        "{}: {}",
        s.name,
        r.body
    );
    let r = http(
        "GET",
        &s.url("secret/data/db"),
        t,
        &[("X-Vault-Namespace", "team-b")],
        None,
    );
    assert_eq!(r.json()["data"]["data"]["pass"], "b-secret");
    // root's secret/ is a different mount
    assert!(!bao(a, t, &["kv", "get", "-mount=secret", "db"])
        .status
        .success());

    // a policy and a token inside team-a reach team-a only
    let pol = r#"{"policy": "path \"secret/data/*\" { capabilities = [\"read\"] }"}"#;
    let r = http(
        "PUT",
        &s.url("sys/policies/acl/reader"),
        t,
        &[("X-Vault-Namespace", "team-a")],
        Some(pol.as_bytes()),
    );
    assert_eq!(r.status, 204, "{}: {}", s.name, r.body);
    let tok = bao_json(
        a,
        t,
        &["token", "create", "-namespace=team-a", "-policy=reader"],
    );
    let tok = tok["auth"]["client_token"].as_str().unwrap().to_owned();
    let r = http(
        "GET",
        &s.url("secret/data/db"),
        Some(&tok),
        &[("X-Vault-Namespace", "team-a")],
        None,
    );
    assert_eq!(r.status, 200, "{}: {}", s.name, r.body);
    let r = http(
        "GET",
        &s.url("secret/data/db"),
        Some(&tok),
        &[("X-Vault-Namespace", "team-b")],
        None,
    );
    assert_eq!(
        r.status, 403,
        "{}: a team-a token cannot read team-b",
        s.name
    );
    let r = http("GET", &s.url("secret/data/db"), Some(&tok), &[], None);
    assert_eq!(r.status, 403, "{}: nor root", s.name);
    let look = bao_json(a, Some(&tok), &["token", "lookup", "-namespace=team-a"]);
    assert_eq!(look["data"]["policies"], json!(["default", "reader"]));
    // ... and the token's own lookup, renewal and revocation work without the namespace
    // (they act on the token in its namespace), while its capabilities there do not.
    let look = bao_json(a, Some(&tok), &["token", "lookup"]);
    assert_eq!(look["data"]["namespace_path"], "team-a/", "{}", s.name);
    let r = http(
        "POST",
        &s.url("auth/token/renew-self"),
        Some(&tok),
        &[],
        Some(b"{}"),
    );
    assert_eq!(r.status, 200, "{}: {}", s.name, r.body);
    let r = http(
        "POST",
        &s.url("sys/capabilities-self"),
        Some(&tok),
        &[],
        Some(br#"{"paths": ["secret/data/db"]}"#),
    );
    assert_eq!(r.status, 403, "{}: {}", s.name, r.body);
    let gone = bao_json(
        a,
        t,
        &["token", "create", "-namespace=team-a", "-policy=reader"],
    );
    let gone = gone["auth"]["client_token"].as_str().unwrap().to_owned();
    let r = http(
        "POST",
        &s.url("auth/token/revoke-self"),
        Some(&gone),
        &[],
        None,
    );
    assert_eq!(r.status, 204, "{}: {}", s.name, r.body);
    let r = http(
        "GET",
        &s.url("auth/token/lookup-self"),
        Some(&gone),
        &[("X-Vault-Namespace", "team-a")],
        None,
    );
    assert_eq!(r.status, 403, "{}: revoked: {}", s.name, r.body);

    // delete: refused while it has children, then gone with its data
    bao_ok(a, t, &["namespace", "delete", "-namespace=team-a", "sub"]);
    bao_ok(a, t, &["namespace", "delete", "team-b"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let l = bao_json(a, t, &["namespace", "list"]);
        if l == json!(["team-a/"]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}: namespace not deleted: {l}",
            s.name
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    out
}

#[test]
fn namespaces_match_openbao() {
    let ours = strongroom_dev();
    let theirs = openbao_dev();
    let a = session(&ours);
    let b = session(&theirs);
    for ((name, x), (_, y)) in a.iter().zip(b.iter()) {
        assert_same_shape(&format!("bao {name}"), x, y);
    }
}

#[test]
fn namespace_names_are_validated_and_recreated_empty() {
    let s = strongroom_dev();
    let a = &s.addr;
    let err = bao_err(a, Some(ROOT), &["namespace", "create", "sys"]);
    assert!(err.contains("reserved"), "{err}");
    let err = bao_err(a, Some(ROOT), &["namespace", "create", "bad name"]);
    assert!(err.contains("invalid namespace name"), "{err}");
    bao_ok(a, Some(ROOT), &["namespace", "create", "tmp"]);
    bao_ok(
        a,
        Some(ROOT),
        &["secrets", "enable", "-namespace=tmp", "-path=kv", "kv-v2"],
    );
    bao_ok(
        a,
        Some(ROOT),
        &["kv", "put", "-namespace=tmp", "-mount=kv", "x", "a=1"],
    );
    bao_ok(a, Some(ROOT), &["namespace", "delete", "tmp"]);
    bao_ok(a, Some(ROOT), &["namespace", "create", "tmp"]);
    let r = http(
        "GET",
        &s.url("kv/data/x"),
        Some(ROOT),
        &[("X-Vault-Namespace", "tmp")],
        None,
    );
    assert_eq!(
        r.status, 404,
        "a recreated namespace starts empty: {}",
        r.body
    );
}
