//! The HTTP contract (ARCHITECTURE.md, "Compatibility contracts"): envelope, status codes,
//! verbs, bodies, limits.

mod common;

use common::*;
use serde_json::json;

#[test]
fn envelope_statuses_and_verbs() {
    let s = strongroom_dev();
    let t = Some(ROOT);
    // write: 200 with data (kv v2), 204 with nil (kv v1 / sys)
    let w = http(
        "PUT",
        &s.url("secret/data/a"),
        t,
        &[("X-Vault-Request", "true")],
        Some(br#"{"data": {"k": "v"}}"#),
    );
    assert_eq!(w.status, 200);
    assert_eq!(w.content_type.as_deref(), Some("application/json"));
    let env = w.json();
    for k in [
        "request_id",
        "lease_id",
        "renewable",
        "lease_duration",
        "data",
        "wrap_info",
        "warnings",
        "auth",
    ] {
        assert!(env.get(k).is_some(), "envelope lacks {k}: {env}");
    }
    assert_eq!(env["request_id"].as_str().unwrap().len(), 36);
    let nil = http(
        "POST",
        &s.url("sys/policies/acl/p"),
        t,
        &[],
        Some(br#"{"policy": "path \"a\" { capabilities = [\"read\"] }"}"#),
    );
    assert_eq!(nil.status, 204);
    assert!(nil.body.is_empty());

    // LIST and GET ?list=true are the same
    let l1 = http("LIST", &s.url("secret/metadata/"), t, &[], None);
    let l2 = http("GET", &s.url("secret/metadata?list=true"), t, &[], None);
    assert_eq!(l1.status, 200);
    assert_eq!(l1.json()["data"], l2.json()["data"]);
    assert_eq!(l1.json()["data"]["keys"], json!(["a"]));

    // form bodies
    let f = http(
        "POST",
        &s.url("sys/policies/acl/f"),
        t,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(b"policy=path+%22b%22+%7B+capabilities+%3D+%5B%22read%22%5D+%7D"),
    );
    assert_eq!(f.status, 204, "{}", f.body);
    assert!(
        http("GET", &s.url("sys/policies/acl/f"), t, &[], None).json()["data"]["policy"]
            .as_str()
            .unwrap()
            .contains("\"b\"")
    );
    // ... but a JSON body under the form type (what `curl -d '{...}'` sends) is JSON, as in
    // OpenBao: the type is a form's only if the body does not start like JSON.
    for (i, ctype) in [
        "application/x-www-form-urlencoded",
        "Application/X-WWW-Form-Urlencoded; charset=utf-8",
    ]
    .into_iter()
    .enumerate()
    {
        let j = http(
            "POST",
            &s.url(&format!("sys/policies/acl/fj{i}")),
            t,
            &[("Content-Type", ctype)],
            Some(b" \n{\"policy\": \"path \\\"c\\\" { capabilities = [\\\"read\\\"] }\"}"),
        );
        assert_eq!(j.status, 204, "{ctype}: {}", j.body);
        assert!(http(
            "GET",
            &s.url(&format!("sys/policies/acl/fj{i}")),
            t,
            &[],
            None
        )
        .json()["data"]["policy"]
            .as_str()
            .unwrap()
            .contains("\"c\""));
    }

    // Authorization: Bearer works like X-Vault-Token
    let b = http(
        "GET",
        &s.url("auth/token/lookup-self"),
        None,
        &[("Authorization", "Bearer root")],
        None,
    );
    assert_eq!(b.status, 200);

    // errors: 400, 403, 404, 405 with {"errors": [...]}
    let bad = http("PUT", &s.url("secret/data/a"), t, &[], Some(b"{not json"));
    assert_eq!(bad.status, 400);
    assert!(bad.json()["errors"].is_array());
    let denied = http("GET", &s.url("secret/data/a"), Some("s.nope"), &[], None);
    assert_eq!(denied.status, 403);
    assert_eq!(denied.json(), json!({"errors": ["permission denied"]}));
    let missing_token = http("GET", &s.url("secret/data/a"), None, &[], None);
    assert_eq!(missing_token.status, 403);
    let nf = http("GET", &s.url("secret/data/missing"), t, &[], None);
    assert_eq!(nf.status, 404);
    assert_eq!(nf.json(), json!({"errors": []}));
    let no_route = http("GET", &s.url("nomount/x"), t, &[], None);
    assert_eq!(no_route.status, 404);
    assert!(no_route.body.contains("no handler for route"));
    let m = http("OPTIONS", &s.url("secret/data/a"), t, &[], None);
    assert_eq!(m.status, 405);
    let m = http(
        "PATCH",
        &s.url("secret/config"),
        t,
        &[("Content-Type", "application/merge-patch+json")],
        Some(b"{}"),
    );
    assert_eq!(m.status, 405);
    let outside = http("GET", &format!("{}/nothing", s.addr), None, &[], None);
    assert_eq!(outside.status, 404);

    // PATCH is a JSON merge patch
    let p = http(
        "PATCH",
        &s.url("secret/data/a"),
        t,
        &[("Content-Type", "application/merge-patch+json")],
        Some(br#"{"data": {"k": null, "n": "1"}}"#),
    );
    assert_eq!(p.status, 200, "{}", p.body);
    let g = http("GET", &s.url("secret/data/a"), t, &[], None);
    assert_eq!(g.json()["data"]["data"], json!({"n": "1"}));

    // create needs `create`, update needs `update`
    let pol = br#"{"policy": "path \"secret/data/*\" { capabilities = [\"update\", \"read\"] }"}"#;
    assert_eq!(
        http("PUT", &s.url("sys/policies/acl/upd"), t, &[], Some(pol)).status,
        204
    );
    let tok = http(
        "POST",
        &s.url("auth/token/create"),
        t,
        &[],
        Some(br#"{"policies": ["upd"]}"#),
    )
    .json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        http(
            "PUT",
            &s.url("secret/data/a"),
            Some(&tok),
            &[],
            Some(br#"{"data": {"x": "1"}}"#)
        )
        .status,
        200,
        "update of an existing secret"
    );
    assert_eq!(
        http(
            "PUT",
            &s.url("secret/data/new"),
            Some(&tok),
            &[],
            Some(br#"{"data": {"x": "1"}}"#)
        )
        .status,
        403,
        "create refused"
    );

    // bad input changes nothing
    let before = http("GET", &s.url("secret/data/a"), t, &[], None).json()["data"]["metadata"]
        ["version"]
        .clone();
    assert_eq!(
        http(
            "PUT",
            &s.url("secret/data/a"),
            t,
            &[],
            Some(br#"{"data": "not an object"}"#)
        )
        .status,
        400
    );
    assert_eq!(
        http(
            "PUT",
            &s.url("secret/data/a"),
            t,
            &[],
            Some(br#"{"data": {"x": 1}, "options": {"cas": "x"}}"#)
        )
        .status,
        400
    );
    assert_eq!(
        http("GET", &s.url("secret/data/a"), t, &[], None).json()["data"]["metadata"]["version"],
        before
    );

    // health: HEAD works and standby/uninit parameters are accepted
    let h = http("HEAD", &s.url("sys/health"), None, &[], None);
    assert_eq!(h.status, 200);
    let h = http("GET", &s.url("sys/health?activecode=201"), None, &[], None);
    assert_eq!(h.status, 201);
    assert_eq!(h.json()["sealed"], false);
    let l = http("GET", &s.url("sys/leader"), None, &[], None);
    assert_eq!(l.status, 200);
    assert_eq!(l.json()["ha_enabled"], false);
}

#[test]
fn a_path_no_mount_serves_is_403_unless_the_caller_may_use_it_on_both_servers() {
    let ours = strongroom_dev();
    let theirs = openbao_dev();
    for s in [&ours, &theirs] {
        let t = Some(ROOT);
        let policy = json!({"policy": "path \"secret/data/allowed\" { capabilities = [\"read\"] }\npath \"gone/*\" { capabilities = [\"read\", \"update\"] }"});
        let r = http(
            "POST",
            &s.url("sys/policies/acl/narrow"),
            t,
            &[],
            Some(policy.to_string().as_bytes()),
        );
        assert_eq!(r.status, 204, "{}: {}", s.name, r.body);
        let narrow = http(
            "POST",
            &s.url("auth/token/create"),
            t,
            &[],
            Some(br#"{"policies": ["narrow"]}"#),
        )
        .json()["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let status = |method: &str, path: &str, token: Option<&str>| {
            let body: Option<&[u8]> = (method != "GET").then_some(b"{}");
            http(method, &s.url(path), token, &[], body).status
        };
        // No mount at nomount/ or auth/nope/: without a token, or with one not allowed
        // there, the answer does not tell.
        for token in [None, Some(narrow.as_str())] {
            assert_eq!(status("GET", "nomount/x", token), 403, "{}", s.name);
            assert_eq!(status("POST", "nomount/x", token), 403, "{}", s.name);
            assert_eq!(status("POST", "auth/nope/login", token), 403, "{}", s.name);
        }
        // Allowed there (by policy, or as root): 404.
        assert_eq!(status("GET", "gone/x", Some(&narrow)), 404, "{}", s.name);
        assert_eq!(status("POST", "gone/x", Some(&narrow)), 404, "{}", s.name);
        assert_eq!(status("GET", "nomount/x", t), 404, "{}", s.name);
    }
}

/// Requests that OpenBao refuses are refused here too, with the same status, and change
/// nothing: each pair was found by sending the same request to both servers.
#[test]
fn malformed_or_unsupported_requests_are_refused_as_in_openbao() {
    let ours = strongroom_dev();
    let theirs = openbao_dev();
    for s in [&ours, &theirs] {
        let t = Some(ROOT);
        let n = s.name;
        let call = |method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>| {
            http(method, &s.url(path), t, headers, body)
        };
        let json_type = [("Content-Type", "application/json")];
        let merge_type = [("Content-Type", "application/merge-patch+json")];
        let w = call(
            "PUT",
            "secret/data/v",
            &json_type,
            Some(br#"{"data":{"a":"1"}}"#),
        );
        assert_eq!(w.status, 200, "{n}: {}", w.body);
        let current = || call("GET", "secret/data/v", &[], None).json()["data"]["data"].clone();

        // kv-v2 lists keys under `metadata/` only: a rule on `data/*` does not list them.
        let r = call("LIST", "secret/data/", &[], None);
        assert_eq!(r.status, 405, "{n}: {}", r.body);
        assert!(!r.body.contains("\"v\""), "{n}: {}", r.body);
        assert_eq!(
            call("LIST", "secret/metadata/", &[], None).status,
            200,
            "{n}"
        );

        // A subkeys depth that is not an integer.
        for q in ["depth=abc", "depth=1.5"] {
            let r = call("GET", &format!("secret/subkeys/v?{q}"), &[], None);
            assert_eq!(r.status, 400, "{n} {q}: {}", r.body);
        }

        // PATCH is a JSON merge patch or nothing.
        let p = call(
            "PATCH",
            "secret/data/v",
            &json_type,
            Some(br#"{"data":{"a":"2"}}"#),
        );
        assert_eq!(p.status, 415, "{n}: {}", p.body);
        assert!(
            p.body.contains("application/merge-patch+json"),
            "{n}: {}",
            p.body
        );
        assert_eq!(current(), json!({"a": "1"}), "{n}");
        let text_type = [("Content-Type", "text/plain")];
        let p = call(
            "PATCH",
            "secret/metadata/v",
            &text_type,
            Some(br#"{"max_versions":3}"#),
        );
        assert_eq!(p.status, 415, "{n}: {}", p.body);
        // No type at all: not a media type to compare, a bad request.
        let p = call(
            "PATCH",
            "secret/metadata/v",
            &[],
            Some(br#"{"max_versions":3}"#),
        );
        assert_eq!(p.status, 400, "{n}: {}", p.body);
        let p = call(
            "PATCH",
            "secret/data/v",
            &merge_type,
            Some(br#"{"data":{"a":"2"}}"#),
        );
        assert_eq!(p.status, 200, "{n}: {}", p.body);
        assert_eq!(current(), json!({"a": "2"}), "{n}");

        // Token store: an orphaning revocation of a token that does not exist, and an
        // entity alias without a token role.
        let r = call(
            "POST",
            "auth/token/revoke-orphan",
            &[],
            Some(br#"{"token":"s.nope"}"#),
        );
        assert_eq!(r.status, 400, "{n}: {}", r.body);
        assert!(
            r.body.contains("token to revoke not found"),
            "{n}: {}",
            r.body
        );
        let r = call(
            "POST",
            "auth/token/create",
            &[],
            Some(br#"{"entity_alias":"ci"}"#),
        );
        assert_eq!(r.status, 400, "{n}: {}", r.body);

        // The built-in mounts cannot be unmounted.
        for m in ["sys", "identity", "cubbyhole"] {
            let r = call("DELETE", &format!("sys/mounts/{m}"), &[], None);
            assert_eq!(r.status, 400, "{n} {m}: {}", r.body);
            assert!(r.body.contains("cannot unmount"), "{n} {m}: {}", r.body);
        }

        // listing_visibility is "", "hidden" or "unauth".
        let r = call(
            "POST",
            "sys/mounts/lv",
            &[],
            Some(br#"{"type":"kv","config":{"listing_visibility":"bogus"}}"#),
        );
        assert_eq!(r.status, 400, "{n}: {}", r.body);
        assert_eq!(
            call("GET", "sys/mounts/lv", &[], None).status,
            400,
            "{n}: not mounted"
        );
        let r = call("POST", "sys/mounts/lv", &[], Some(br#"{"type":"kv"}"#));
        assert_eq!(r.status, 204, "{n}: {}", r.body);
        let tune = |v: &str| {
            let body = format!(r#"{{"listing_visibility":"{v}"}}"#);
            call("POST", "sys/mounts/lv/tune", &[], Some(body.as_bytes())).status
        };
        assert_eq!(tune("bogus"), 400, "{n}");
        assert_eq!(tune("hidden"), 204, "{n}");
    }
}

#[test]
fn request_size_limit_gives_413_and_sealed_gives_503() {
    let dir = TempDir::new("limits");
    let cfg = dir.path().join("s.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage.sqlite]\npath = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:0\"\ntls_disable = true\n[limits]\nmax_request_size = 2048\n",
            dir.path().join("db").display()
        ),
    )
    .unwrap();
    let s = strongroom_config(&cfg);
    let init = http(
        "PUT",
        &s.url("sys/init"),
        None,
        &[],
        Some(br#"{"secret_shares": 1, "secret_threshold": 1}"#),
    )
    .json();
    let key = init["keys"][0].as_str().unwrap().to_owned();
    let root = init["root_token"].as_str().unwrap().to_owned();
    // sealed after init: 503 everywhere but the seal endpoints
    for path in [
        "secret/data/x",
        "sys/mounts",
        "auth/token/lookup-self",
        "sys/policies/acl",
    ] {
        let r = http("GET", &s.url(path), Some(&root), &[], None);
        assert_eq!(r.status, 503, "{path}: {}", r.body);
        assert_eq!(r.json()["errors"][0], "Vault is sealed");
    }
    assert_eq!(
        http("GET", &s.url("sys/seal-status"), None, &[], None).status,
        200
    );
    let u = http(
        "PUT",
        &s.url("sys/unseal"),
        None,
        &[],
        Some(format!("{{\"key\": \"{key}\"}}").as_bytes()),
    );
    assert_eq!(u.json()["sealed"], false);
    let big = format!("{{\"policy\": \"{}\"}}", "#".repeat(4096));
    let r = http(
        "PUT",
        &s.url("sys/policies/acl/big"),
        Some(&root),
        &[],
        Some(big.as_bytes()),
    );
    assert_eq!(r.status, 413);
    assert!(r.json()["errors"][0]
        .as_str()
        .unwrap()
        .contains("too large"));
    // a second init is refused
    let again = http(
        "PUT",
        &s.url("sys/init"),
        None,
        &[],
        Some(br#"{"secret_shares": 1, "secret_threshold": 1}"#),
    );
    assert_eq!(again.status, 400);
}

#[test]
fn config_errors_name_the_key_and_exit_nonzero() {
    let dir = TempDir::new("cfgerr");
    let cases = [
        ("a.toml", "[storage.sqlite]\npath='x'\n[[listener]]\naddress='127.0.0.1:0'\n", "listener[0]"),
        ("b.toml", "nonsense = 1\n[storage.sqlite]\npath='x'\n", "nonsense"),
        ("c.hcl", "storage \"consul\" {\n}\nlistener \"tcp\" {\n tls_disable = true\n}\n", "consul"),
        ("d.toml", "[storage.sqlite]\npath='x'\n[[listener]]\naddress='127.0.0.1:0'\ntls_disable=true\n[seal]\ntype='static'\ncurrent_key_id='k'\ncurrent_key='file:///does/not/exist'\n", "seal.current_key"),
    ];
    for (name, text, expect) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let o = std::process::Command::new(strongroom_bin())
            .args(["server", "--config"])
            .arg(&p)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{name} should fail");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(expect),
            "{name}: error should name {expect:?}: {err}"
        );
    }
}

#[test]
fn openbao_config_file_runs_with_static_seal_and_restarts() {
    let dir = TempDir::new("baocfg");
    let key = dir.path().join("unseal.key");
    std::fs::write(
        &key,
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    let port = free_port();
    let cfg = dir.path().join("openbao.hcl");
    std::fs::write(
        &cfg,
        format!(
            "ui = true\nstorage \"raft\" {{\n  path = \"{}\"\n  node_id = \"n1\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\nseal \"static\" {{\n  current_key_id = \"k1\"\n  current_key = \"file://{}\"\n}}\n",
            dir.path().join("raft").display(),
            key.display()
        ),
    )
    .unwrap();
    let mut s = strongroom_config(&cfg);
    assert!(
        s.logs().contains("`ui` is ignored") || s.logs().contains("ui"),
        "notes printed: {}",
        s.logs()
    );
    let init = http("PUT", &s.url("sys/init"), None, &[], Some(b"{}"));
    assert_eq!(init.status, 200, "{}", init.body);
    let root = init.json()["root_token"].as_str().unwrap().to_owned();
    let st = http("GET", &s.url("sys/seal-status"), None, &[], None).json();
    assert_eq!(st["type"], "static");
    assert_eq!(st["sealed"], false, "static seal unseals itself");
    assert_eq!(
        http(
            "POST",
            &s.url("sys/mounts/kv"),
            Some(&root),
            &[],
            Some(br#"{"type": "kv-v2"}"#)
        )
        .status,
        204
    );
    assert_eq!(
        http(
            "POST",
            &s.url("kv/data/a"),
            Some(&root),
            &[],
            Some(br#"{"data": {"x": "1"}}"#)
        )
        .status,
        200
    );
    assert!(s.stop().success(), "clean exit on SIGTERM");
    // restart: unseals by itself, data intact
    let s = strongroom_config(&cfg);
    let r = http("GET", &s.url("kv/data/a"), Some(&root), &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["data"]["x"], "1");
}

#[test]
fn tls_listener_serves_the_bao_cli() {
    let dir = TempDir::new("tls");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let o = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args([
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is needed to make a test certificate");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cfg = dir.path().join("s.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage.sqlite]\npath = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:0\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
            dir.path().join("db").display(),
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(strongroom_bin());
    cmd.args(["server", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let addr = loop {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut reader, &mut line).unwrap() > 0,
            "server exited"
        );
        if let Some(a) = line.trim().strip_prefix("Api Address:") {
            break a.trim().to_owned();
        }
    };
    assert!(addr.starts_with("https://"), "{addr}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        let o = std::process::Command::new(bao_bin())
            .env("BAO_ADDR", &addr)
            .env("BAO_CACERT", &cert)
            .args(["status", "-format=json"])
            .output()
            .unwrap();
        if o.status.code() == Some(2) || o.status.success() {
            break serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "bao status over TLS failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(status["initialized"], false);
    // plain HTTP to a TLS port is not served
    let plain = addr.replace("https://", "http://");
    assert!(
        try_http("GET", &format!("{plain}/v1/sys/health"), None, &[], None)
            .map(|r| r.status >= 400)
            .unwrap_or(true)
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// The server opts out of transparent huge pages before its first allocation, so idle
/// memory does not depend on the host's THP mode (`always` would back the allocator's
/// arenas 2 MiB at a time).
#[cfg(target_os = "linux")]
#[test]
fn the_server_runs_without_transparent_huge_pages() {
    let s = strongroom_dev();
    let pid = s.child.as_ref().expect("running").id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let thp = status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .expect("the kernel reports THP_enabled")
        .trim();
    assert_eq!(thp, "0", "THP_enabled for the server process");
}

/// One HTTP/1.1 response read off `s`: the head, then as many body bytes as it announces.
fn read_one_response(s: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= p + 4 + len {
                return String::from_utf8_lossy(&buf).into_owned();
            }
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed mid-response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// On SIGTERM the server stops accepting, finishes the request it is reading (here one
/// whose body is still arriving) and answers it with `Connection: close`, closes idle
/// keep-alive connections at once, and exits cleanly.
#[test]
fn shutdown_finishes_in_flight_requests_and_closes_idle_connections() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let mut s = strongroom_dev();
    let host = s.addr.trim_start_matches("http://").to_owned();
    let mut idle = TcpStream::connect(&host).unwrap();
    idle.write_all(format!("GET /v1/sys/health HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .unwrap();
    let first = read_one_response(&mut idle);
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");

    let body = br#"{"data": {"k": "written after SIGTERM"}}"#;
    let mut busy = TcpStream::connect(&host).unwrap();
    busy.write_all(
        format!(
            "PUT /v1/secret/data/in-flight HTTP/1.1\r\nHost: {host}\r\nX-Vault-Token: {ROOT}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    busy.write_all(&body[..10]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    s.term();
    std::thread::sleep(std::time::Duration::from_millis(300));

    busy.write_all(&body[10..]).unwrap();
    let mut answer = String::new();
    busy.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    busy.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(answer.contains("\"version\":1"), "{answer}");

    idle.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "the idle connection got {rest:?}");

    let status = s.wait_exit();
    assert!(status.success(), "{status:?}\n{}", s.logs());
    assert!(TcpStream::connect(&host).is_err(), "still accepting");
}

/// Paths are percent-decoded once, at the edge, after cleaning: a key with a space is
/// stored and listed as the client named it (hvac sends `team%20a`), so a policy rule on
/// `team a/` governs it; an escaped `.` segment is refused, never cleaned.
#[test]
fn escaped_paths_are_decoded_once_as_in_openbao() {
    let ours = strongroom_dev();
    let theirs = openbao_dev();
    for s in [&ours, &theirs] {
        let n = s.name;
        let t = Some(ROOT);
        let w = http(
            "PUT",
            &s.url("secret/data/team%20a/db"),
            t,
            &[],
            Some(br#"{"data":{"k":"v"}}"#),
        );
        assert_eq!(w.status, 200, "{n}: {}", w.body);
        let l = http("LIST", &s.url("secret/metadata/"), t, &[], None);
        assert_eq!(l.json()["data"]["keys"], json!(["team a/"]), "{n}");
        let r = http("GET", &s.url("secret/data/team a/db"), t, &[], None);
        assert_eq!(
            r.status, 400,
            "{n}: a raw space is not a valid request line"
        );
        let r = http("GET", &s.url("secret/data/team%20a%2Fdb"), t, &[], None);
        assert_eq!(r.json()["data"]["data"], json!({"k": "v"}), "{n}");

        // A policy that denies `team a/*` denies what the encoded path names.
        let policy = r#"path "secret/data/*" { capabilities = ["read"] }
path "secret/data/team a/*" { capabilities = ["deny"] }"#;
        let p = http(
            "PUT",
            &s.url("sys/policies/acl/team"),
            t,
            &[],
            Some(json!({ "policy": policy }).to_string().as_bytes()),
        );
        assert!(p.status < 300, "{n}: {}", p.body);
        let c = http(
            "POST",
            &s.url("auth/token/create"),
            t,
            &[],
            Some(br#"{"policies":["team"]}"#),
        );
        let tok = c.json()["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = http(
            "GET",
            &s.url("secret/data/team%20a/db"),
            Some(&tok),
            &[],
            None,
        );
        assert_eq!(r.status, 403, "{n}: {}", r.body);

        let r = http("GET", &s.url("sys/%2e/seal-status"), t, &[], None);
        assert_eq!(r.status, 400, "{n}: {}", r.body);
        assert!(
            r.body.contains("relative paths not supported"),
            "{n}: {}",
            r.body
        );
        let r = http("GET", &s.url("sys/seal-status%zz"), t, &[], None);
        assert_eq!(r.status, 400, "{n}: {}", r.body);
    }
}

/// A route's declared fields are converted as OpenBao's framework converts them: a value
/// of the wrong type is a 400 naming the field, before anything runs; the forms OpenBao
/// accepts (numbers and booleans as strings, durations, `k=v` pairs) are accepted.
#[test]
fn declared_fields_are_validated_as_in_openbao() {
    let ours = strongroom_dev();
    let theirs = openbao_dev();
    for s in [&ours, &theirs] {
        let n = s.name;
        let create = |body: &str| {
            http(
                "POST",
                &s.url("auth/token/create"),
                Some(ROOT),
                &[],
                Some(body.as_bytes()),
            )
        };
        for (body, field) in [
            (r#"{"renewable":"maybe"}"#, "renewable"),
            (r#"{"num_uses":"x"}"#, "num_uses"),
            (r#"{"policies":{"a":1}}"#, "policies"),
        ] {
            let r = create(body);
            assert_eq!(r.status, 400, "{n}: {body}: {}", r.body);
            assert!(r.body.contains(field), "{n}: {body}: {}", r.body);
        }
        assert_eq!(create(r#"{"ttl":"soon"}"#).status, 400, "{n}");
        let ok = create(r#"{"num_uses":"2","ttl":"1h30m","renewable":"f","meta":"team=a"}"#);
        assert_eq!(ok.status, 200, "{n}: {}", ok.body);
        let tok = ok.json()["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let look = http(
            "POST",
            &s.url("auth/token/lookup"),
            Some(ROOT),
            &[],
            Some(json!({ "token": tok }).to_string().as_bytes()),
        )
        .json();
        assert_eq!(look["data"]["num_uses"], 2, "{n}");
        assert_eq!(look["data"]["renewable"], false, "{n}");
        assert_eq!(look["data"]["meta"], json!({"team": "a"}), "{n}");
        let r = http(
            "POST",
            &s.url("sys/rotate/config"),
            Some(ROOT),
            &[],
            Some(br#"{"enabled":"nope"}"#),
        );
        assert_eq!(r.status, 400, "{n}: {}", r.body);
        assert!(r.body.contains("enabled"), "{n}: {}", r.body);
    }
}
