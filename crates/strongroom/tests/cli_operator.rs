//! `bao operator init/unseal/seal` and `bao status` on a production-mode server (Shamir
//! seal), compared with a real OpenBao started from a config file.

mod common;

use common::*;
use serde_json::Value;

fn our_server(dir: &TempDir) -> Server {
    let cfg = dir.path().join("strongroom.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage.sqlite]\npath = \"{}\"\n\n[[listener]]\naddress = \"127.0.0.1:0\"\ntls_disable = true\n",
            dir.path().join("data/strongroom.db").display()
        ),
    )
    .unwrap();
    strongroom_config(&cfg)
}

fn openbao_server(dir: &TempDir) -> Server {
    let port = free_port();
    let cfg = dir.path().join("openbao.hcl");
    std::fs::write(
        &cfg,
        format!("storage \"inmem\" {{}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\ndisable_mlock = true\n"),
    )
    .unwrap();
    openbao_config(&cfg, port)
}

/// init 5/3, unseal step by step, status, seal; return the outputs to compare.
fn lifecycle(s: &Server) -> Vec<(String, Value)> {
    let a = &s.addr;
    let mut out = Vec::new();
    let st = bao(a, None, &["status", "-format=json"]);
    assert_eq!(
        st.status.code(),
        Some(2),
        "{}: status of an uninitialized server exits 2",
        s.name
    );
    let init = bao_json(
        a,
        None,
        &["operator", "init", "-key-shares=5", "-key-threshold=3"],
    );
    out.push(("init".into(), init.clone()));
    let keys: Vec<String> = init["unseal_keys_b64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let root = init["root_token"].as_str().unwrap().to_owned();
    assert_eq!(keys.len(), 5);
    assert_eq!(init["unseal_keys_hex"].as_array().unwrap().len(), 5);

    // sealed: everything but the seal endpoints answers 503
    let r = http("GET", &s.url("secret/data/x"), Some(&root), &[], None);
    assert_eq!(r.status, 503, "{}: {}", s.name, r.body);

    let u1 = bao_json(a, None, &["operator", "unseal", &keys[0]]);
    assert_eq!(u1["progress"], 1);
    assert_eq!(u1["sealed"], true);
    // a duplicate share does not advance progress
    let dup = bao_json(a, None, &["operator", "unseal", &keys[0]]);
    assert_eq!(dup["progress"], 1, "{}: duplicate share ignored", s.name);
    // reset clears progress
    let reset = bao_json(a, None, &["operator", "unseal", "-reset"]);
    assert_eq!(reset["progress"], 0);
    bao_json(a, None, &["operator", "unseal", &keys[4]]);
    bao_json(a, None, &["operator", "unseal", &keys[2]]);
    let done = bao_json(a, None, &["operator", "unseal", &keys[1]]);
    assert_eq!(
        done["sealed"], false,
        "{}: three distinct shares unseal",
        s.name
    );
    out.push(("unseal".into(), done));
    let status = bao_json(a, None, &["status"]);
    assert_eq!(status["sealed"], false);
    assert_eq!(status["t"], 3);
    assert_eq!(status["n"], 5);
    out.push(("status".into(), status));

    bao_ok(
        a,
        Some(&root),
        &["secrets", "enable", "-path=secret", "kv-v2"],
    );
    bao_ok(a, Some(&root), &["kv", "put", "-mount=secret", "k", "v=1"]);
    bao_ok(a, Some(&root), &["operator", "seal"]);
    let sealed = bao(a, None, &["status", "-format=json"]);
    assert_eq!(
        sealed.status.code(),
        Some(2),
        "{}: sealed status exits 2",
        s.name
    );
    let sealed: Value = serde_json::from_slice(&sealed.stdout).unwrap();
    assert_eq!(sealed["sealed"], true);
    out.push(("status-sealed".into(), sealed));
    let r = http("GET", &s.url("secret/data/k"), Some(&root), &[], None);
    assert_eq!(r.status, 503, "{}", s.name);
    let h = http("GET", &s.url("sys/health"), None, &[], None);
    assert_eq!(h.status, 503);
    let h = http("GET", &s.url("sys/health?sealedcode=299"), None, &[], None);
    assert_eq!(h.status, 299, "{}: sealedcode parameter", s.name);

    for k in &keys[..3] {
        bao_json(a, None, &["operator", "unseal", k]);
    }
    let v = bao_json(a, Some(&root), &["kv", "get", "-mount=secret", "k"]);
    assert_eq!(
        v["data"]["data"]["v"], "1",
        "{}: data survives seal/unseal",
        s.name
    );
    let h = http("GET", &s.url("sys/health"), None, &[], None);
    assert_eq!(h.status, 200);
    out
}

#[test]
fn operator_lifecycle_matches_openbao() {
    let d1 = TempDir::new("op-ours");
    let d2 = TempDir::new("op-bao");
    let ours = our_server(&d1);
    let theirs = openbao_server(&d2);
    let a = lifecycle(&ours);
    let b = lifecycle(&theirs);
    for ((name, x), (_, y)) in a.iter().zip(b.iter()) {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                // build metadata OpenBao has and we do not claim
                for k in [
                    "build_date",
                    "commit_date",
                    "ha_enabled",
                    "raft_committed_index",
                    "raft_applied_index",
                    "active_time",
                    "leader_address",
                    "leader_cluster_address",
                    "is_self",
                    "performance_standby",
                    "performance_standby_last_remote_wal",
                    "removed_from_cluster",
                    "hcp_link_status",
                    "hcp_link_resource_ID",
                    "warnings",
                ] {
                    o.remove(k);
                }
            }
            v
        };
        assert_same_shape(&format!("bao {name}"), &strip(x), &strip(y));
    }
}

#[test]
fn key_rotation_and_status() {
    let s = strongroom_dev();
    let a = &s.addr;
    let st = bao_json(a, Some(ROOT), &["operator", "key-status"]);
    assert_eq!(st["term"], 1);
    bao_ok(
        a,
        Some(ROOT),
        &["kv", "put", "-mount=secret", "before", "v=1"],
    );
    bao_ok(a, Some(ROOT), &["operator", "rotate"]);
    let st = bao_json(a, Some(ROOT), &["operator", "key-status"]);
    assert_eq!(st["term"], 2);
    bao_ok(
        a,
        Some(ROOT),
        &["kv", "put", "-mount=secret", "after", "v=2"],
    );
    assert_eq!(
        bao_json(a, Some(ROOT), &["kv", "get", "-mount=secret", "before"])["data"]["data"]["v"],
        "1"
    );
    let r = http(
        "POST",
        &s.url("sys/rotate/config"),
        Some(ROOT),
        &[],
        Some(br#"{"max_operations": 1000000, "interval": "24h"}"#),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let r = http("GET", &s.url("sys/rotate/config"), Some(ROOT), &[], None);
    assert_eq!(r.json()["data"]["max_operations"], 1000000);
    assert_eq!(r.json()["data"]["interval"], 86400);
    let r = http(
        "POST",
        &s.url("sys/rotate/config"),
        Some(ROOT),
        &[],
        Some(br#"{"interval": "5m"}"#),
    );
    assert_eq!(r.status, 400, "too-short interval refused");
}

/// `bao status` as JSON, whatever its exit code (2 when sealed).
fn status_json(addr: &str) -> Value {
    let o = bao(addr, None, &["status", "-format=json"]);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("bao status: {e}: {o:?}"))
}

/// `bao operator rekey` on both servers (OpenBao with its listener's rekey endpoints
/// re-enabled; ours asks for a sudo token as well): init 3/2, rekey to 5/3 with two old shares, seal,
/// and the new shares (three of them) unseal while the old ones no longer do; the rekey
/// outputs have the same shape. A wrong nonce, a cancelled attempt and PGP keys are refused.
#[test]
fn operator_rekey_matches_openbao() {
    fn run(s: &Server) -> Vec<(String, Value)> {
        let a = &s.addr;
        let mut out = Vec::new();
        let init = bao_json(
            a,
            None,
            &["operator", "init", "-key-shares=3", "-key-threshold=2"],
        );
        let old: Vec<String> = init["unseal_keys_b64"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        let root = init["root_token"].as_str().unwrap().to_owned();
        for k in &old[..2] {
            bao_ok(a, None, &["operator", "unseal", k]);
        }
        let t = Some(root.as_str());
        let started = bao_json(
            a,
            t,
            &[
                "operator",
                "rekey",
                "-init",
                "-key-shares=5",
                "-key-threshold=3",
                "-format=json",
            ],
        );
        out.push(("init".into(), shape(&started)));
        let nonce = started["nonce"].as_str().unwrap().to_owned();
        let status = bao_json(a, t, &["operator", "rekey", "-status", "-format=json"]);
        out.push(("status".into(), shape(&status)));
        assert_eq!(status["started"], true, "{}", s.name);
        assert_eq!(status["required"], 2, "{}", s.name);
        // a wrong nonce is refused
        let err = bao_err(a, t, &["operator", "rekey", "-nonce=nope", &old[0]]);
        assert!(err.contains("nonce"), "{}: {err}", s.name);
        let first = bao_json(
            a,
            t,
            &[
                "operator",
                "rekey",
                &format!("-nonce={nonce}"),
                "-format=json",
                &old[0],
            ],
        );
        assert_ne!(first["complete"], true, "{}: {first}", s.name);
        out.push(("first".into(), shape(&first)));
        let done = bao_json(
            a,
            t,
            &[
                "operator",
                "rekey",
                &format!("-nonce={nonce}"),
                "-format=json",
                &old[1],
            ],
        );
        out.push(("done".into(), shape(&done)));
        let new: Vec<String> = done["keys_base64"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(new.len(), 5, "{}: {done}", s.name);
        bao_ok(a, t, &["operator", "seal"]);
        let st = status_json(a);
        assert_eq!(
            (st["t"].clone(), st["n"].clone()),
            (3.into(), 5.into()),
            "{}: {st}",
            s.name
        );
        // the old shares no longer unseal
        for k in &old[..2] {
            let _ = bao(a, None, &["operator", "unseal", k]);
        }
        let st = status_json(a);
        assert_eq!(st["sealed"], true, "{}: old shares unsealed: {st}", s.name);
        bao_ok(a, None, &["operator", "unseal", "-reset"]);
        for k in &new[..3] {
            let _ = bao(a, None, &["operator", "unseal", k]);
        }
        let st = status_json(a);
        assert_eq!(
            st["sealed"], false,
            "{}: new shares did not unseal: {st}",
            s.name
        );
        // cancel, and a backup that does not exist
        bao_ok(
            a,
            t,
            &[
                "operator",
                "rekey",
                "-init",
                "-key-shares=1",
                "-key-threshold=1",
            ],
        );
        bao_ok(a, t, &["operator", "rekey", "-cancel"]);
        let st = bao_json(a, t, &["operator", "rekey", "-status", "-format=json"]);
        assert_eq!(st["started"], false, "{}", s.name);
        let r = http("GET", &s.url("sys/rekey/backup"), t, &[], None);
        assert_eq!(r.status, 400, "{}: {}", s.name, r.body);
        out
    }
    let (d1, d2) = (TempDir::new("rekey-ours"), TempDir::new("rekey-bao"));
    let ours = run(&our_server(&d1));
    // OpenBao 2.7 serves rekey only on a listener that re-enables it
    let port = free_port();
    let cfg = d2.path().join("openbao.hcl");
    std::fs::write(
        &cfg,
        format!("storage \"inmem\" {{}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n  disable_unauthed_rekey_endpoints = false\n}}\ndisable_mlock = true\n"),
    )
    .unwrap();
    let theirs = run(&openbao_config(&cfg, port));
    assert_eq!(ours.len(), theirs.len());
    for ((what, o), (_, t)) in ours.iter().zip(&theirs) {
        assert_same_shape(what, o, t);
    }
}

/// A server with a static (auto-unseal) seal has no shares to rekey: refused with a reason
/// that says where its key is rotated, and nothing changes.
#[test]
fn rekey_with_a_static_seal_is_refused_clearly() {
    let dir = TempDir::new("rekey-static");
    let db = dir.path().join("db");
    let cfg = static_seal_config(
        &dir,
        "s",
        &format!("[storage.sqlite]\npath = \"{}\"", db.display()),
        "",
    );
    let s = strongroom_config(&cfg);
    let init = http("PUT", &s.url("sys/init"), None, &[], Some(b"{}")).json();
    let root = init["root_token"].as_str().unwrap().to_owned();
    let err = bao_err(
        &s.addr,
        Some(&root),
        &[
            "operator",
            "rekey",
            "-init",
            "-key-shares=3",
            "-key-threshold=2",
        ],
    );
    assert!(err.contains("static key"), "{err}");
    let st = http("GET", &s.url("sys/rekey/init"), Some(&root), &[], None);
    assert_eq!(st.status, 400, "{}", st.body);
}
