//! The `bao kv` and `bao secrets` commands against our server and a real OpenBao, checked on
//! their output and compared in shape.

mod common;

use common::*;
use serde_json::{json, Value};

/// Run one scripted kv session against a server; return each step's JSON output.
fn kv_session(addr: &str) -> Vec<(String, Value)> {
    let t = Some(ROOT);
    let mut out = Vec::new();
    let mut step = |name: &str, args: &[&str]| {
        out.push((name.to_owned(), bao_json(addr, t, args)));
    };
    step(
        "put",
        &[
            "kv",
            "put",
            "-mount=secret",
            "app/db",
            "user=alice",
            "pass=s3cr3t",
        ],
    );
    step("get", &["kv", "get", "-mount=secret", "app/db"]);
    step(
        "patch",
        &["kv", "patch", "-mount=secret", "app/db", "pass=rotated"],
    );
    step(
        "get-v1",
        &["kv", "get", "-mount=secret", "-version=1", "app/db"],
    );
    step(
        "put-cas",
        &["kv", "put", "-mount=secret", "-cas=2", "app/db", "user=bob"],
    );
    step("list", &["kv", "list", "-mount=secret", "app"]);
    step(
        "metadata-get",
        &["kv", "metadata", "get", "-mount=secret", "app/db"],
    );
    out
}

#[test]
fn kv_v2_commands_match_openbao() {
    let ours = strongroom_dev();
    let theirs = openbao_dev();
    let a = kv_session(&ours.addr);
    let b = kv_session(&theirs.addr);
    for ((name, x), (_, y)) in a.iter().zip(b.iter()) {
        assert_same_shape(&format!("bao kv {name}"), x, y);
    }
    // and the values are right
    let get = &a[1].1;
    assert_eq!(
        get["data"]["data"],
        json!({"user": "alice", "pass": "s3cr3t"})
    );
    assert_eq!(get["data"]["metadata"]["version"], 1);
    let patch = &a[2].1;
    assert_eq!(patch["data"]["version"], 2);
    assert_eq!(
        a[3].1["data"]["data"]["pass"], "s3cr3t",
        "old version still readable"
    );
    assert_eq!(a[4].1["data"]["version"], 3);
    assert_eq!(a[5].1, json!(["db"]));
    let meta = &a[6].1["data"];
    assert_eq!(meta["current_version"], 3);
    assert_eq!(meta["versions"].as_object().unwrap().len(), 3);
}

#[test]
fn kv_v2_delete_undelete_destroy_and_cas() {
    let s = strongroom_dev();
    let t = Some(ROOT);
    let a = &s.addr;
    bao_ok(a, t, &["kv", "put", "-mount=secret", "x", "v=1"]);
    bao_ok(a, t, &["kv", "put", "-mount=secret", "x", "v=2"]);
    // a stale cas is refused and changes nothing
    let err = bao_err(a, t, &["kv", "put", "-mount=secret", "-cas=1", "x", "v=3"]);
    assert!(
        err.contains("check-and-set parameter did not match the current version"),
        "{err}"
    );
    bao_ok(a, t, &["kv", "delete", "-mount=secret", "x"]);
    // Like OpenBao: a deleted version answers 404 with its metadata, which the CLI prints.
    let r = http("GET", &s.url("secret/data/x"), t, &[], None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["data"]["data"], Value::Null);
    assert_ne!(r.json()["data"]["metadata"]["deletion_time"], "");
    bao_ok(
        a,
        t,
        &["kv", "undelete", "-mount=secret", "-versions=2", "x"],
    );
    let v = bao_json(a, t, &["kv", "get", "-mount=secret", "x"]);
    assert_eq!(v["data"]["data"]["v"], "2");
    bao_ok(
        a,
        t,
        &["kv", "destroy", "-mount=secret", "-versions=1", "x"],
    );
    let m = bao_json(a, t, &["kv", "metadata", "get", "-mount=secret", "x"]);
    assert_eq!(m["data"]["versions"]["1"]["destroyed"], true);
    let r = http("GET", &s.url("secret/data/x?version=1"), t, &[], None);
    assert_eq!(r.status, 404, "destroyed version is gone");
    assert_eq!(r.json()["data"]["metadata"]["destroyed"], true);

    // metadata put: max_versions trims, custom metadata is stored, cas_required enforced
    bao_ok(
        a,
        t,
        &[
            "kv",
            "metadata",
            "put",
            "-mount=secret",
            "-max-versions=2",
            "-custom-metadata=owner=team-a",
            "-cas-required=true",
            "x",
        ],
    );
    let err = bao_err(a, t, &["kv", "put", "-mount=secret", "x", "v=4"]);
    assert!(err.contains("check-and-set parameter required"), "{err}");
    bao_ok(a, t, &["kv", "put", "-mount=secret", "-cas=2", "x", "v=3"]);
    let m = bao_json(a, t, &["kv", "metadata", "get", "-mount=secret", "x"]);
    assert_eq!(m["data"]["custom_metadata"], json!({"owner": "team-a"}));
    assert_eq!(
        m["data"]["versions"].as_object().unwrap().len(),
        2,
        "max_versions=2 keeps two: {m}"
    );
    assert_eq!(m["data"]["oldest_version"], 2);
    bao_ok(a, t, &["kv", "metadata", "delete", "-mount=secret", "x"]);
    assert!(!bao(a, t, &["kv", "metadata", "get", "-mount=secret", "x"])
        .status
        .success());
}

#[test]
fn kv_v1_and_secrets_engines() {
    let ours = strongroom_dev();
    let theirs = openbao_dev();
    for s in [&ours, &theirs] {
        let t = Some(ROOT);
        bao_ok(
            &s.addr,
            t,
            &["secrets", "enable", "-path=kv1", "-version=1", "kv"],
        );
        bao_ok(
            &s.addr,
            t,
            &["secrets", "enable", "-version=2", "-path=kv2", "kv"],
        );
        bao_ok(&s.addr, t, &["kv", "put", "kv1/a/b", "k=v"]);
        let v = bao_json(&s.addr, t, &["kv", "get", "kv1/a/b"]);
        assert_eq!(v["data"], json!({"k": "v"}), "{}", s.name);
        assert_eq!(bao_json(&s.addr, t, &["kv", "list", "kv1/"]), json!(["a/"]));
        bao_ok(&s.addr, t, &["kv", "delete", "kv1/a/b"]);
        assert!(!bao(&s.addr, t, &["kv", "get", "kv1/a/b"]).status.success());
        let err = bao_err(&s.addr, t, &["secrets", "enable", "-path=kv2", "kv"]);
        assert!(err.contains("path is already in use"), "{}: {err}", s.name);
    }
    let a = bao_json(&ours.addr, Some(ROOT), &["secrets", "list"]);
    let b = bao_json(&theirs.addr, Some(ROOT), &["secrets", "list"]);
    assert_same_shape("bao secrets list: kv2/", &a["kv2/"], &b["kv2/"]);
    assert_eq!(a["kv2/"]["options"]["version"], "2");
    assert_eq!(a["kv1/"]["options"]["version"], "1");
    bao_ok(&ours.addr, Some(ROOT), &["secrets", "disable", "kv2"]);
    let a = bao_json(&ours.addr, Some(ROOT), &["secrets", "list"]);
    assert!(a.get("kv2/").is_none());
}

#[test]
fn kv_list_pagination_and_subkeys() {
    let s = strongroom_dev();
    let t = Some(ROOT);
    for i in 0..5 {
        bao_ok(
            &s.addr,
            t,
            &["kv", "put", "-mount=secret", &format!("p/k{i}"), "a=1"],
        );
    }
    bao_ok(
        &s.addr,
        t,
        &["kv", "put", "-mount=secret", "p/sub/deep", "a=1"],
    );
    let r = http(
        "LIST",
        &s.url("secret/metadata/p?after=k1&limit=2"),
        t,
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["keys"], json!(["k2", "k3"]));
    let r = http("GET", &s.url("secret/metadata/p?list=true"), t, &[], None);
    assert_eq!(
        r.json()["data"]["keys"],
        json!(["k0", "k1", "k2", "k3", "k4", "sub/"])
    );
    let r = http("LIST", &s.url("secret/detailed-metadata/p"), t, &[], None);
    assert_eq!(r.json()["data"]["key_info"]["k0"]["current_version"], 1);
    let body = br#"{"data": {"a": {"b": 1, "c": {"d": 2}}, "e": 3}}"#;
    assert_eq!(
        http("POST", &s.url("secret/data/nested"), t, &[], Some(body)).status,
        200
    );
    let r = http("GET", &s.url("secret/subkeys/nested"), t, &[], None);
    assert_eq!(
        r.json()["data"]["subkeys"],
        json!({"a": {"b": null, "c": {"d": null}}, "e": null})
    );
    let r = http("GET", &s.url("secret/subkeys/nested?depth=1"), t, &[], None);
    assert_eq!(r.json()["data"]["subkeys"], json!({"a": null, "e": null}));
}

#[test]
fn an_undeleted_version_is_deleted_again_after_delete_version_after_on_both_servers() {
    let ours = strongroom_dev();
    let theirs = openbao_dev();
    for s in [&ours, &theirs] {
        let (a, t) = (&s.addr, Some(ROOT));
        bao_ok(a, t, &["kv", "put", "-mount=secret", "auto", "v=1"]);
        bao_ok(
            a,
            t,
            &[
                "kv",
                "metadata",
                "put",
                "-mount=secret",
                "-delete-version-after=1h",
                "auto",
            ],
        );
        bao_ok(a, t, &["kv", "delete", "-mount=secret", "auto"]);
        bao_ok(
            a,
            t,
            &["kv", "undelete", "-mount=secret", "-versions=1", "auto"],
        );
        // Readable again, and set to be deleted by itself an hour from the undelete.
        let v = bao_json(a, t, &["kv", "get", "-mount=secret", "auto"]);
        assert_eq!(v["data"]["data"]["v"], "1", "{}", s.name);
        let m = bao_json(a, t, &["kv", "metadata", "get", "-mount=secret", "auto"]);
        let when = m["data"]["versions"]["1"]["deletion_time"]
            .as_str()
            .unwrap()
            .to_owned();
        let created = m["data"]["versions"]["1"]["created_time"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(!when.is_empty(), "{}: {m}", s.name);
        // RFC 3339 in UTC: about an hour after the version was written (the undelete came
        // a moment later), counted in seconds of the day.
        let secs = |ts: &str| -> i64 {
            let p = |r: std::ops::Range<usize>| ts[r].parse::<i64>().unwrap();
            p(11..13) * 3600 + p(14..16) * 60 + p(17..19)
        };
        let after = (secs(&when) - secs(&created)).rem_euclid(86_400);
        assert!(
            (3600..3600 + 120).contains(&after),
            "{}: created {created}, deleted at {when}",
            s.name
        );
    }
}

/// A client that asks for its response wrapped (`-wrap-ttl`, `X-Vault-Wrap-TTL`) never gets
/// the secret in clear: both servers answer with a single-use wrapping token only, which
/// `bao unwrap` opens once; a second unwrap, or one after the TTL, is refused; lookup
/// tells the creation path and TTL without using the token; rewrap gives a new token.
#[test]
fn a_request_asking_for_a_wrapped_response_never_gets_the_secret_in_clear_on_either_server() {
    let ours = strongroom_dev();
    let theirs = openbao_dev();
    const VALUE: &str = "wrapped-value-7f3a";
    for s in [&ours, &theirs] {
        let (a, t) = (&s.addr, Some(ROOT));
        bao_ok(
            a,
            t,
            &["kv", "put", "-mount=secret", "w", &format!("v={VALUE}")],
        );
        let get = bao(
            a,
            t,
            &[
                "kv",
                "get",
                "-wrap-ttl=5m",
                "-format=json",
                "-mount=secret",
                "w",
            ],
        );
        let (out, err) = (
            String::from_utf8_lossy(&get.stdout),
            String::from_utf8_lossy(&get.stderr),
        );
        assert!(get.status.success(), "{}: {err}", s.name);
        assert!(
            !out.contains(VALUE) && !err.contains(VALUE),
            "{}: {out} {err}",
            s.name
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        assert!(v["data"].is_null(), "{v}");
        assert_eq!(v["wrap_info"]["ttl"], 300, "{}: {v}", s.name);
        assert_eq!(
            v["wrap_info"]["creation_path"], "secret/data/w",
            "{}: {v}",
            s.name
        );
        let wrapping = v["wrap_info"]["token"].as_str().unwrap().to_owned();
        // lookup (no token needed) does not use it
        let look = http(
            "POST",
            &s.url("sys/wrapping/lookup"),
            None,
            &[],
            Some(json!({ "token": wrapping }).to_string().as_bytes()),
        );
        assert_eq!(look.status, 200, "{}: {}", s.name, look.body);
        assert_eq!(look.json()["data"]["creation_ttl"], 300, "{}", look.body);
        // rewrap: a new token; the old one is dead
        let rewrap = http(
            "POST",
            &s.url("sys/wrapping/rewrap"),
            t,
            &[],
            Some(json!({ "token": wrapping }).to_string().as_bytes()),
        );
        assert_eq!(rewrap.status, 200, "{}: {}", s.name, rewrap.body);
        let wrapping2 = rewrap.json()["wrap_info"]["token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_ne!(wrapping2, wrapping);
        let unwrap = |tok: &str| bao(a, Some(tok), &["unwrap", "-format=json"]);
        assert!(
            !unwrap(&wrapping).status.success(),
            "{}: the old token",
            s.name
        );
        let opened = unwrap(&wrapping2);
        assert!(
            opened.status.success(),
            "{}",
            String::from_utf8_lossy(&opened.stderr)
        );
        let opened: Value = serde_json::from_slice(&opened.stdout).unwrap();
        assert_eq!(opened["data"]["data"]["v"], VALUE, "{}: {opened}", s.name);
        // once only
        assert!(
            !unwrap(&wrapping2).status.success(),
            "{}: unwrapped twice",
            s.name
        );

        let read = || {
            let r = http("GET", &s.url("secret/data/w"), t, &[], None);
            assert_eq!(r.status, 200, "{}: {}", s.name, r.body);
            r.json()["data"]["data"]["v"].as_str().unwrap().to_owned()
        };
        let body = br#"{"data":{"v":"changed"}}"#;
        let put = |ttl: &str| {
            http(
                "PUT",
                &s.url("secret/data/w"),
                t,
                &[("X-Vault-Wrap-TTL", ttl)],
                Some(body),
            )
        };
        // A wrap TTL that is not a duration, or a negative one: 400 on both, nothing written.
        for bad in ["soon", "-5m"] {
            let r = put(bad);
            assert_eq!(r.status, 400, "{} {bad}: {}", s.name, r.body);
            assert_eq!(read(), VALUE, "{} {bad}", s.name);
        }
        let put = put("300");
        assert!(!put.body.contains(VALUE), "{}: {}", s.name, put.body);
        assert_eq!(put.status, 200, "{}", put.body);
        assert!(put.json()["wrap_info"]["token"].is_string(), "{}", put.body);
        assert_eq!(read(), "changed");
        // a wrapping token expires with its TTL
        let short = http(
            "GET",
            &s.url("secret/data/w"),
            t,
            &[("X-Vault-Wrap-TTL", "1")],
            None,
        );
        let short = short.json()["wrap_info"]["token"]
            .as_str()
            .unwrap()
            .to_owned();
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert!(
            !unwrap(&short).status.success(),
            "{}: unwrapped after its TTL",
            s.name
        );
        // A zero TTL asks for no wrapping: both answer in clear.
        let r = http(
            "GET",
            &s.url("secret/data/w"),
            t,
            &[("X-Vault-Wrap-TTL", "0")],
            None,
        );
        assert_eq!(r.status, 200, "{}: {}", s.name, r.body);
        assert!(
            r.json()["data"]["data"]["v"].is_string(),
            "{}: {}",
            s.name,
            r.body
        );
    }
}
