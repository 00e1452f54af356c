//! Authorization and token cases an attacker would try, run on our server and on a real
//! OpenBao 2.7.2 started by the same test: the answer (allowed or refused) and the state
//! afterwards (a token alive or dead, a mount where it was) must match. Where we refuse
//! with another status than OpenBao's, the case says so and why.

mod common;

use common::*;
use serde_json::{json, Value};

fn call(s: &Server, token: &str, ns: &str, method: &str, path: &str, body: Value) -> HttpReply {
    let b = body.to_string();
    let headers: Vec<(&str, &str)> = if ns.is_empty() {
        Vec::new()
    } else {
        vec![("X-Vault-Namespace", ns)]
    };
    http(
        method,
        &s.url(path),
        Some(token),
        &headers,
        Some(b.as_bytes()),
    )
}

fn ok(r: HttpReply, what: &str, name: &str) -> Value {
    assert!(r.status < 300, "{name}: {what}: {} {}", r.status, r.body);
    if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    }
}

fn policy(s: &Server, ns: &str, name: &str, rules: &str) {
    ok(
        call(
            s,
            ROOT,
            ns,
            "PUT",
            &format!("sys/policies/acl/{name}"),
            json!({ "policy": rules }),
        ),
        "policy",
        s.name,
    );
}

fn token(s: &Server, ns: &str, body: Value) -> (String, String) {
    let r = ok(
        call(s, ROOT, ns, "POST", "auth/token/create", body),
        "token",
        s.name,
    );
    (
        r["auth"]["client_token"].as_str().unwrap().to_owned(),
        r["auth"]["accessor"].as_str().unwrap().to_owned(),
    )
}

fn alive(s: &Server, ns: &str, t: &str) -> bool {
    call(s, t, ns, "GET", "auth/token/lookup-self", json!({})).status == 200
}

/// Runs `case` on both servers and returns (ours, OpenBao's) results.
fn both<T>(case: impl Fn(&Server) -> T) -> (T, T) {
    let ours = strongroom_dev();
    let theirs = openbao_dev();
    (case(&ours), case(&theirs))
}

fn refused(status: u16) -> bool {
    status >= 400
}

/// A token of the root namespace whose policy there allows `a/auth/token/create` must not
/// mint a token in namespace `a` carrying `a`'s policy of the same name.
#[test]
fn a_parent_namespace_token_cannot_mint_child_admins() {
    let (ours, theirs) = both(|s| {
        ok(
            call(s, ROOT, "", "POST", "sys/namespaces/a", json!({})),
            "ns",
            s.name,
        );
        policy(
            s,
            "",
            "p1",
            r#"path "a/auth/token/create" { capabilities = ["update"] }"#,
        );
        policy(
            s,
            "a",
            "p1",
            r#"path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }"#,
        );
        let (t, _) = token(s, "", json!({ "policies": ["p1"] }));
        let r = call(
            s,
            &t,
            "",
            "POST",
            "a/auth/token/create",
            json!({ "policies": ["p1"] }),
        );
        (r.status, r.body.contains("child namespace"))
    });
    assert!(
        refused(ours.0) && refused(theirs.0),
        "ours {ours:?}, openbao {theirs:?}"
    );
    assert_eq!(ours, theirs);
}

/// A token allowed on `auth/token/*` in namespace `a` must not look up, renew or revoke a
/// token of namespace `b` by its accessor. OpenBao answers 500 (its error is not typed);
/// we answer 400 with the same message: both refuse, and the token lives on.
#[test]
fn accessor_endpoints_stay_in_their_namespace() {
    let (ours, theirs) = both(|s| {
        for n in ["a", "b"] {
            ok(
                call(
                    s,
                    ROOT,
                    "",
                    "POST",
                    &format!("sys/namespaces/{n}"),
                    json!({}),
                ),
                "ns",
                s.name,
            );
        }
        policy(
            s,
            "a",
            "all",
            r#"path "*" { capabilities = ["create", "read", "update", "delete", "list"] }"#,
        );
        let (ta, _) = token(s, "a", json!({ "policies": ["all"] }));
        let (tb, accb) = token(s, "b", json!({}));
        let mut answers = Vec::new();
        for p in ["lookup-accessor", "renew-accessor", "revoke-accessor"] {
            let r = call(
                s,
                &ta,
                "a",
                "POST",
                &format!("auth/token/{p}"),
                json!({ "accessor": accb }),
            );
            assert!(
                r.body
                    .contains("cannot lookup token in different namespace"),
                "{}: {p}: {}",
                s.name,
                r.body
            );
            answers.push(refused(r.status));
        }
        (answers, alive(s, "b", &tb))
    });
    assert_eq!(ours, (vec![true; 3], true));
    assert_eq!(ours, theirs);
}

/// A token limited to a number of uses cannot create children (who would have none).
#[test]
fn restricted_use_tokens_mint_no_children() {
    let (ours, theirs) = both(|s| {
        policy(
            s,
            "",
            "creator",
            r#"path "auth/token/create" { capabilities = ["update"] }"#,
        );
        let (t, _) = token(s, "", json!({ "num_uses": 2, "policies": ["creator"] }));
        let r = call(
            s,
            &t,
            "",
            "POST",
            "auth/token/create",
            json!({ "policies": ["creator"] }),
        );
        (
            r.status,
            r.body
                .contains("restricted use token cannot generate child tokens"),
        )
    });
    assert_eq!(ours, (400, true));
    assert_eq!(ours, theirs);
}

/// A batch token cannot be revoked (it is not stored): saying 204 while it keeps working
/// would mislead an operator revoking a leaked token.
#[test]
fn revoking_a_batch_token_is_refused_not_ignored() {
    let (ours, theirs) = both(|s| {
        policy(s, "", "r", r#"path "*" { capabilities = ["read"] }"#);
        let (t, _) = token(s, "", json!({ "type": "batch", "policies": ["r"] }));
        let by_root = call(
            s,
            ROOT,
            "",
            "POST",
            "auth/token/revoke",
            json!({ "token": t }),
        )
        .status;
        let by_self = call(s, &t, "", "POST", "auth/token/revoke-self", json!({})).status;
        (by_root, by_self, alive(s, "", &t))
    });
    assert_eq!(ours, (400, 400, true));
    assert_eq!(ours, theirs);
}

/// A namespace and a mount cannot share a name, either way round: a namespace named like
/// a mount would swallow the mount's requests.
#[test]
fn namespaces_and_mounts_do_not_share_a_name() {
    let (ours, theirs) = both(|s| {
        let ns_over_mount = call(s, ROOT, "", "POST", "sys/namespaces/secret", json!({})).status;
        let still_there = call(s, ROOT, "", "GET", "sys/mounts/secret", json!({})).status;
        ok(
            call(s, ROOT, "", "POST", "sys/namespaces/team", json!({})),
            "ns",
            s.name,
        );
        let mount_over_ns = call(
            s,
            ROOT,
            "",
            "POST",
            "sys/mounts/team",
            json!({ "type": "kv" }),
        )
        .status;
        let mount_under_ns = call(
            s,
            ROOT,
            "",
            "POST",
            "sys/mounts/team/kv",
            json!({ "type": "kv" }),
        )
        .status;
        (ns_over_mount, still_there, mount_over_ns, mount_under_ns)
    });
    assert_eq!(ours, (400, 200, 400, 400));
    assert_eq!(ours, theirs);
}

/// A token with `num_uses` = 1 used by 20 requests at once serves exactly one of them, in
/// every round, on both servers.
#[test]
fn a_single_use_token_serves_exactly_one_of_many_parallel_requests() {
    let (ours, theirs) = both(|s| {
        policy(
            s,
            "",
            "r",
            r#"path "sys/mounts" { capabilities = ["read"] }"#,
        );
        let mut served = Vec::new();
        for _ in 0..5 {
            let (t, _) = token(s, "", json!({ "num_uses": 1, "policies": ["r"] }));
            let url = s.url("sys/mounts");
            let ok: usize = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..20)
                    .map(|_| {
                        let (t, url) = (t.clone(), url.clone());
                        scope.spawn(move || http("GET", &url, Some(&t), &[], None).status)
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .filter(|st| *st == 200)
                    .count()
            });
            served.push(ok);
        }
        served
    });
    assert_eq!(ours, vec![1; 5], "ours");
    assert_eq!(ours, theirs);
}

/// Smaller differences an attacker or a client hits, each answered as OpenBao answers.
#[test]
fn low_severity_cases_answer_as_openbao_does() {
    let (ours, theirs) = both(|s| {
        let put_policy = |rules: &str| {
            call(
                s,
                ROOT,
                "",
                "PUT",
                "sys/policies/acl/w",
                json!({ "policy": rules }),
            )
            .status
        };
        // `+*` is not a wildcard OpenBao accepts.
        let plus_star = put_policy(r#"path "secret/+*" { capabilities = ["read"] }"#);
        // A claim may not be mapped onto the role's name.
        ok(
            call(s, ROOT, "", "POST", "sys/auth/jm", json!({ "type": "jwt" })),
            "jwt",
            s.name,
        );
        let role = json!({
            "role_type": "jwt", "user_claim": "sub", "bound_audiences": ["x"],
            "claim_mappings": { "foo": "role" },
        });
        let mapping = call(s, ROOT, "", "PUT", "auth/jm/role/r", role).status;
        // Query parameters on a write are not written.
        ok(
            call(
                s,
                ROOT,
                "",
                "POST",
                "sys/mounts/kv1",
                json!({ "type": "kv" }),
            ),
            "kv1",
            s.name,
        );
        let w = http(
            "PUT",
            &s.url("kv1/q?b=2"),
            Some(ROOT),
            &[],
            Some(br#"{"a":"1"}"#),
        );
        assert!(w.status < 300, "{}: {}", s.name, w.body);
        let written = call(s, ROOT, "", "GET", "kv1/q", json!({})).json()["data"].clone();
        // An empty X-Vault-Token gives way to Authorization: Bearer.
        let bearer = http(
            "GET",
            &s.url("sys/mounts"),
            None,
            &[
                ("X-Vault-Token", ""),
                ("Authorization", &format!("Bearer {ROOT}")),
            ],
            None,
        )
        .status;
        (plus_star, mapping, written, bearer)
    });
    assert_eq!(ours, (400, 400, json!({"a": "1"}), 200));
    assert_eq!(ours, theirs);
}

/// Deliberately stricter than OpenBao: a templated policy path (`{{identity...}}`) is
/// refused. OpenBao fills it from the caller's identity entity; this server has none, and
/// matching the braces literally would put every caller in one shared folder.
#[test]
fn templated_policies_are_refused_not_matched_literally() {
    let s = strongroom_dev();
    let rules =
        r#"path "secret/data/users/{{identity.entity.name}}/*" { capabilities = ["read"] }"#;
    let r = call(
        &s,
        ROOT,
        "",
        "PUT",
        "sys/policies/acl/t",
        json!({ "policy": rules }),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("templated policy paths"), "{}", r.body);
}

/// A child token dies with its parent, even after a renewal asked for more time: on both
/// servers it is gone once the parent expired.
#[test]
fn a_child_renewed_past_its_parents_expiry_dies_with_it() {
    let (ours, theirs) = both(|s| {
        policy(
            s,
            "",
            "kids",
            r#"path "auth/token/*" { capabilities = ["create", "read", "update"] }"#,
        );
        let (parent, _) = token(s, "", json!({ "ttl": "4s", "policies": ["kids"] }));
        let child = call(
            s,
            &parent,
            "",
            "POST",
            "auth/token/create",
            json!({ "policies": ["kids"] }),
        );
        let child = ok(child, "child", s.name)["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = call(
            s,
            &child,
            "",
            "POST",
            "auth/token/renew-self",
            json!({ "increment": "1h" }),
        );
        assert!(r.status < 300, "{}: {}", s.name, r.body);
        std::thread::sleep(std::time::Duration::from_secs(7));
        (alive(s, "", &parent), alive(s, "", &child))
    });
    assert_eq!(ours, (false, false));
    assert_eq!(ours, theirs);
}

/// Parameter constraints decide as OpenBao's do: an array is one value compared whole, a
/// number in a policy never equals a number or string sent, a required name is looked up
/// lower-cased as sent, and a request with no data passes allowed and denied lists.
#[test]
fn parameter_constraints_are_as_strict_as_openbao() {
    let cases: &[(&str, Value)] = &[
        (
            r#"allowed_parameters = { "color" = ["red", "bl*"] }"#,
            json!({"color": "blue"}),
        ),
        (
            r#"allowed_parameters = { "color" = ["red", "bl*"] }"#,
            json!({"color": ["red", "blue"]}),
        ),
        (
            r#"allowed_parameters = { "color" = ["red", "bl*"] }"#,
            json!({"color": ["red"]}),
        ),
        (
            r#"allowed_parameters = { "list" = [["a", "b"]] }"#,
            json!({"list": ["a", "b"]}),
        ),
        (r#"allowed_parameters = { "n" = [7] }"#, json!({"n": 7})),
        (r#"allowed_parameters = { "n" = [7] }"#, json!({"n": "7"})),
        (r#"allowed_parameters = { "n" = ["7"] }"#, json!({"n": 7})),
        (r#"denied_parameters = { "n" = [7] }"#, json!({"n": 7})),
        (
            r#"allowed_parameters = { "flag" = [true] }"#,
            json!({"flag": true}),
        ),
        (
            r#"allowed_parameters = { "flag" = [true] }"#,
            json!({"flag": "true"}),
        ),
        (
            r#"required_parameters = ["reason"]"#,
            json!({"reason": "x"}),
        ),
        (
            r#"required_parameters = ["reason"]"#,
            json!({"Reason": "x"}),
        ),
        (
            r#"required_parameters = ["Reason"]"#,
            json!({"reason": "x"}),
        ),
        (
            r#"allowed_parameters = { "Color" = [] }"#,
            json!({"COLOR": "x"}),
        ),
        (r#"denied_parameters = { "*" = [] }"#, json!({})),
        (r#"denied_parameters = { "*" = [] }"#, json!({"a": "1"})),
        (r#"allowed_parameters = { "a" = [] }"#, json!({})),
    ];
    let (ours, theirs) = both(|s| {
        ok(
            call(
                s,
                ROOT,
                "",
                "POST",
                "sys/mounts/kv1",
                json!({ "type": "kv" }),
            ),
            "kv1",
            s.name,
        );
        cases
            .iter()
            .enumerate()
            .map(|(i, (constraint, body))| {
                let name = format!("pc{i}");
                policy(
                    s,
                    "",
                    &name,
                    &format!(
                        "path \"kv1/p{i}\" {{\n capabilities = [\"create\", \"update\"]\n {constraint}\n}}"
                    ),
                );
                let (t, _) = token(s, "", json!({ "policies": [name] }));
                let st = call(s, &t, "", "PUT", &format!("kv1/p{i}"), body.clone()).status;
                (*constraint, body.to_string(), st)
            })
            .collect::<Vec<_>>()
    });
    assert_eq!(
        ours, theirs,
        "(constraint, body, status): ours, then OpenBao"
    );
    // Not vacuous: both refusals and writes are in the table.
    assert!(ours.iter().any(|c| c.2 == 403) && ours.iter().any(|c| c.2 == 204));
}

/// A LIST or `sys/capabilities` on `x/` falls back to the rules for `x`: an exact `secret`
/// rule governs `secret/`, a `+` rule governs `x-y/`.
#[test]
fn listing_a_folder_is_governed_as_openbao_governs_it() {
    let (ours, theirs) = both(|s| {
        ok(
            call(
                s,
                ROOT,
                "",
                "POST",
                "sys/mounts/kv1",
                json!({ "type": "kv" }),
            ),
            "kv1",
            s.name,
        );
        ok(
            call(s, ROOT, "", "PUT", "kv1/x-y/a", json!({ "k": "v" })),
            "seed",
            s.name,
        );
        policy(
            s,
            "",
            "lf",
            r#"path "kv1/+" { capabilities = ["list"] }
               path "kv1" { capabilities = ["read", "list"] }"#,
        );
        let (t, _) = token(s, "", json!({ "policies": ["lf"] }));
        let caps = call(
            s,
            ROOT,
            "",
            "POST",
            "sys/capabilities",
            json!({ "token": t, "paths": ["kv1/", "kv1/x-y/", "kv1/x-y/a/"] }),
        )
        .json()["data"]
            .clone();
        let list = call(s, &t, "", "LIST", "kv1/x-y/", json!({})).status;
        let list_root = call(s, &t, "", "LIST", "kv1/", json!({})).status;
        (
            caps["kv1/"].clone(),
            caps["kv1/x-y/"].clone(),
            caps["kv1/x-y/a/"].clone(),
            list,
            list_root,
        )
    });
    assert_eq!(
        ours,
        (
            json!(["list", "read"]),
            json!(["list"]),
            json!(["deny"]),
            200,
            200
        )
    );
    assert_eq!(ours, theirs);
}

/// Deliberately stricter than OpenBao: a kv v2 key ending in `/` names no secret. OpenBao
/// maps `metadata/x/` onto `x`'s metadata: a policy granting `kv2/metadata/x/*` (meant for
/// the keys under `x/`) then deletes `x` with all its versions, and reads its metadata; a
/// read of `data/x/` fails with a 500. We refuse the delete (400, nothing changes) and
/// answer the reads 404. Both servers let the requests through the same ACL.
#[test]
fn a_kv_v2_key_ending_in_a_slash_names_no_secret() {
    let (ours, theirs) = both(|s| {
        ok(
            call(
                s,
                ROOT,
                "",
                "POST",
                "sys/mounts/kv2",
                json!({ "type": "kv", "options": { "version": "2" } }),
            ),
            "kv2",
            s.name,
        );
        for k in ["x", "x/y"] {
            ok(
                call(
                    s,
                    ROOT,
                    "",
                    "PUT",
                    &format!("kv2/data/{k}"),
                    json!({ "data": { "k": "v" } }),
                ),
                "seed",
                s.name,
            );
        }
        policy(
            s,
            "",
            "under",
            r#"path "kv2/metadata/x/*" { capabilities = ["read", "delete", "list"] }
               path "kv2/data/x/*" { capabilities = ["read", "delete"] }"#,
        );
        let (t, _) = token(s, "", json!({ "policies": ["under"] }));
        let read_meta = call(s, &t, "", "GET", "kv2/metadata/x/", json!({})).status;
        let read_data = call(s, &t, "", "GET", "kv2/data/x/", json!({})).status;
        let delete = call(s, &t, "", "DELETE", "kv2/metadata/x/", json!({})).status;
        let x_alive = call(s, ROOT, "", "GET", "kv2/data/x", json!({})).status == 200;
        (read_meta, read_data, delete, x_alive)
    });
    assert_eq!(ours, (404, 404, 400, true), "ours");
    assert_eq!(theirs, (200, 500, 204, false), "OpenBao 2.7.2");
}

/// Policy text is read as OpenBao reads it (HCL version 1): the same texts are accepted and
/// refused, and an accepted one grants the same capabilities. Deliberately stricter: a
/// block with two labels (`path "a" "b"`), which OpenBao reads as `path "a"` dropping
/// `"b"` without a word, is refused.
#[test]
fn policy_syntax_is_read_as_openbao_reads_it() {
    let cases: &[&str] = &[
        r#"path "a" { capabilities = ["read"] required_parameters = ["x"] }"#,
        r#"path "a" { capabilities = ["read"], required_parameters = ["x"] }"#,
        "path \"a\" {\n capabilities = [\"update\"]\n allowed_parameters = { \"p\" = [] \"q\" = [] }\n}",
        "path \"a\" {\n capabilities = [\"update\"]\n allowed_parameters { \"p\" = [] }\n}",
        r#"path "a" = { capabilities = ["read"] }"#,
        r#"path "a" { capabilities = ["read",] }"#,
        r#"path "a" { capabilities = ["read" "list"] }"#,
        r#"path "a" { capabilities = "read" }"#,
        "path \"a\" {\n capabilities = [\"update\"]\n allowed_parameters = { p = [\"x\"], q = [] }\n}",
        "# c\n// d\n/* e */ path \"a\" { capabilities = [\"read\"] }",
        "name = \"x\"\npath \"a\" { capabilities = [\"read\"] }",
        "path \"a\" { capabilities = [\"read\"] }\npath \"a\" { capabilities = [\"list\"] }",
        r#"path "a" { capabilities = ["read"] comment = "hi" }"#,
        r#"path "a" { capabilities = ["read"] max_wrapping_ttl = 30 }"#,
        r#"path "a" { capabilities = ["read"]; }"#,
        r#"path "a" { capabilities = ['read'] }"#,
        "path \"a\" {\n capabilities = <<EOT\nread\nEOT\n}",
        r#"path a { capabilities = ["read"] }"#,
        r#"path "a" { capabilities = ["read"] } junk"#,
        r#"path "a" { capabilities = ["read"] "#,
        r#"path "a" { "capabilities" = ["read"] }"#,
        r#"path "a" { capabilities = ["READ"] }"#,
        r#"path "a" { capabilities = ["read"] capabilities = ["list"] }"#,
        "path \"b/*\" {\n capabilities = [\"update\"]\n allowed_parameters = { \"p\" = [\"a\\\"b\", \"\\u00e9\"] }\n}",
        r#"path "a" { policy = "read" }"#,
        r#"path "a" {}"#,
        r#"path "a" { capabilities = [] }"#,
        r#"path = { "a" = { capabilities = ["read"] } }"#,
        "path \"a\" { capabilities = [\"read\"] }\nfoo \"b\" {}",
        "path \"a\" {\n capabilities = [\"update\"]\n allowed_parameters = {\n  \"p\" = [1, 2.5, true, \"s\"]\n }\n}",
        r#"path "a" { capabilities = ["read"] x = 1 }"#,
        "path \"a\" {\n capabilities = [\"read\"]\n required_parameters = \"x\"\n}",
        r#"path "c/+/d" { capabilities = ["list", "sudo"] } path "c/*" { capabilities = ["deny"] }"#,
    ];
    let deliberate = r#"path "a" "b" { capabilities = ["read"] }"#;
    let run = |s: &Server, text: &str, i: usize| {
        let name = format!("syn{i}");
        let st = call(
            s,
            ROOT,
            "",
            "PUT",
            &format!("sys/policies/acl/{name}"),
            json!({ "policy": text }),
        )
        .status;
        if st >= 300 {
            return (st, Value::Null);
        }
        let (t, _) = token(s, "", json!({ "policies": [name] }));
        let caps = call(
            s,
            ROOT,
            "",
            "POST",
            "sys/capabilities",
            json!({ "token": t, "paths": ["a", "b", "b/x", "c/x/d", "c/x"] }),
        )
        .json()["data"]
            .clone();
        (st, caps)
    };
    let (ours, theirs) = both(|s| {
        let table: Vec<_> = cases
            .iter()
            .enumerate()
            .map(|(i, c)| (*c, run(s, c, i)))
            .collect();
        (table, run(s, deliberate, 99).0)
    });
    for ((text, a), (_, b)) in ours.0.iter().zip(&theirs.0) {
        assert_eq!(a, b, "{text:?}: (status, capabilities), ours then OpenBao");
    }
    assert!(ours.0.iter().any(|c| c.1 .0 == 204) && ours.0.iter().any(|c| c.1 .0 == 400));
    assert_eq!((ours.1, theirs.1), (400, 204), "two labels: ours refuses");
}

/// kv-v2's `options.cas` in every spelling a client sends, on a secret at version 1: the
/// status, the error and the version afterwards are OpenBao's (which decodes it weakly:
/// `null` and `""` are 0, `true` is 1, `"0x1"` is 1, a negative never matches).
#[test]
fn kv_v2_check_and_set_values_are_read_as_openbao_reads_them() {
    let cases = [
        json!(1),
        json!(0),
        json!(2),
        json!(-1),
        json!(1.0),
        json!(1.9),
        json!("1"),
        json!("0x1"),
        json!("01"),
        json!(" 1"),
        json!("abc"),
        json!(""),
        json!(null),
        json!(true),
        json!(false),
        json!([1]),
        json!({"v": 1}),
        json!("-1"),
        json!("99999999999999999999"),
    ];
    let (ours, theirs) = both(|s| {
        cases
            .iter()
            .enumerate()
            .map(|(i, cas)| {
                let path = format!("secret/data/cas{i}");
                ok(
                    call(s, ROOT, "", "POST", &path, json!({"data": {"v": 0}})),
                    "seed",
                    s.name,
                );
                let r = call(
                    s,
                    ROOT,
                    "",
                    "POST",
                    &path,
                    json!({"options": {"cas": cas}, "data": {"v": 1}}),
                );
                let errors = if r.status >= 400 {
                    r.json()["errors"].clone()
                } else {
                    Value::Null
                };
                let version = call(s, ROOT, "", "GET", &path, json!({})).json()["data"]["metadata"]
                    ["version"]
                    .clone();
                (cas.to_string(), r.status, errors, version)
            })
            .collect::<Vec<_>>()
    });
    for (o, t) in ours.iter().zip(&theirs) {
        assert_eq!(o, t, "cas {}: ours, then OpenBao's", o.0);
    }
}

/// Token roles: what a token made through a role gets (policies, path, orphan-ness,
/// renewability, type, uses, period), and what a role refuses, compared with OpenBao on
/// the same roles and requests.
#[test]
fn token_roles_issue_what_openbao_issues() {
    let roles: &[(&str, Value)] = &[
        ("plain", json!({})),
        ("allowed", json!({"allowed_policies": ["a", "b"]})),
        (
            "allowed-glob",
            json!({"allowed_policies": ["a"], "allowed_policies_glob": ["team-*"]}),
        ),
        (
            "disallowed",
            json!({"disallowed_policies": ["admin", "default"]}),
        ),
        (
            "orphan",
            json!({"orphan": true, "renewable": false, "path_suffix": "rev2"}),
        ),
        (
            "batch",
            json!({"token_type": "batch", "allowed_policies": ["a"], "orphan": true, "renewable": false}),
        ),
        ("batch-bad", json!({"orphan": true})),
        (
            "capped",
            json!({"token_num_uses": 3, "token_period": "1h", "token_explicit_max_ttl": "2h"}),
        ),
        (
            "no-default",
            json!({"allowed_policies": ["a"], "token_no_default_policy": true}),
        ),
    ];
    let requests: &[(&str, Value)] = &[
        ("plain", json!({})),
        ("plain", json!({"policies": ["a"]})),
        ("allowed", json!({})),
        ("allowed", json!({"policies": ["a"]})),
        ("allowed", json!({"policies": ["c"]})),
        ("allowed-glob", json!({"policies": ["team-x", "a"]})),
        ("allowed-glob", json!({"policies": ["other"]})),
        ("disallowed", json!({"policies": ["admin"]})),
        ("disallowed", json!({"policies": ["dev"]})),
        ("disallowed", json!({})),
        ("orphan", json!({"policies": ["a"], "no_parent": false})),
        ("batch", json!({})),
        ("batch", json!({"type": "service"})),
        ("capped", json!({"num_uses": 5, "policies": ["a"]})),
        ("capped", json!({"num_uses": 2, "policies": ["a"]})),
        ("no-default", json!({})),
        ("missing", json!({})),
    ];
    let (ours, theirs) = both(|s| {
        for (name, body) in roles {
            ok(
                call(
                    s,
                    ROOT,
                    "",
                    "POST",
                    &format!("auth/token/roles/{name}"),
                    body.clone(),
                ),
                "role",
                s.name,
            );
        }
        let listed =
            call(s, ROOT, "", "LIST", "auth/token/roles", json!({})).json()["data"]["keys"].clone();
        let read = call(
            s,
            ROOT,
            "",
            "GET",
            "auth/token/roles/allowed-glob",
            json!({}),
        )
        .json()["data"]
            .clone();
        let mut out = vec![
            json!(listed),
            json!([
                read["allowed_policies"],
                read["allowed_policies_glob"],
                read["orphan"],
                read["token_type"]
            ]),
        ];
        for (role, body) in requests {
            let r = call(
                s,
                ROOT,
                "",
                "POST",
                &format!("auth/token/create/{role}"),
                body.clone(),
            );
            if r.status >= 400 {
                out.push(json!({"status": r.status}));
                continue;
            }
            let auth = r.json()["auth"].clone();
            let tok = auth["client_token"].as_str().unwrap().to_owned();
            let look = call(
                s,
                ROOT,
                "",
                "POST",
                "auth/token/lookup",
                json!({"token": tok}),
            )
            .json()["data"]
                .clone();
            out.push(json!({
                "status": r.status,
                "policies": auth["policies"],
                "orphan": auth["orphan"],
                "renewable": auth["renewable"],
                "type": auth["token_type"],
                "path": look["path"],
                "num_uses": look["num_uses"],
                "period": look["period"],
                "explicit_max_ttl": look["explicit_max_ttl"],
            }));
        }
        ok(
            call(s, ROOT, "", "DELETE", "auth/token/roles/plain", json!({})),
            "delete",
            s.name,
        );
        out.push(json!(
            call(s, ROOT, "", "GET", "auth/token/roles/plain", json!({})).status
        ));
        out
    });
    for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(o, t, "case {i}: ours, then OpenBao's");
    }
}

/// `sys/remount`: a secrets engine moves with its data, an auth method moves, and the
/// moves OpenBao refuses are refused, on both servers.
#[test]
fn remount_moves_mounts_as_openbao_does() {
    let (ours, theirs) = both(|s| {
        let mut out = Vec::new();
        ok(
            call(
                s,
                ROOT,
                "",
                "POST",
                "sys/mounts/src",
                json!({"type": "kv", "options": {"version": "2"}}),
            ),
            "mount",
            s.name,
        );
        ok(
            call(
                s,
                ROOT,
                "",
                "POST",
                "src/data/k",
                json!({"data": {"v": "1"}}),
            ),
            "write",
            s.name,
        );
        let r = call(
            s,
            ROOT,
            "",
            "POST",
            "sys/remount",
            json!({"from": "src", "to": "dst"}),
        );
        out.push(json!(r.status));
        let id = r.json()["migration_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        // the move may be asynchronous: wait for its status
        let mut status = Value::Null;
        for _ in 0..50 {
            let st = call(
                s,
                ROOT,
                "",
                "GET",
                &format!("sys/remount/status/{id}"),
                json!({}),
            );
            status = st.json()["data"]["migration_info"]["status"].clone();
            if status == "success" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        out.push(status);
        out.push(call(s, ROOT, "", "GET", "dst/data/k", json!({})).json()["data"]["data"].clone());
        out.push(json!(
            call(s, ROOT, "", "GET", "src/data/k", json!({})).status
        ));
        let mounts = call(s, ROOT, "", "GET", "sys/mounts", json!({})).json()["data"].clone();
        out.push(json!([
            mounts.get("src/").is_some(),
            mounts.get("dst/").is_some()
        ]));
        // refused: onto an existing mount, from nothing, auth to secrets, reserved paths
        for (from, to) in [
            ("dst", "secret"),
            ("nothing", "x"),
            ("auth/token", "auth/t2"),
            ("dst", "sys/x"),
            ("dst", "auth/x"),
        ] {
            let r = call(
                s,
                ROOT,
                "",
                "POST",
                "sys/remount",
                json!({"from": from, "to": to}),
            );
            out.push(json!([from, to, r.status >= 400]));
        }
        ok(
            call(s, ROOT, "", "POST", "sys/auth/j1", json!({"type": "jwt"})),
            "auth",
            s.name,
        );
        let r = call(
            s,
            ROOT,
            "",
            "POST",
            "sys/remount",
            json!({"from": "auth/j1", "to": "auth/j2"}),
        );
        out.push(json!(r.status));
        std::thread::sleep(std::time::Duration::from_millis(300));
        let auths = call(s, ROOT, "", "GET", "sys/auth", json!({})).json()["data"].clone();
        out.push(json!([
            auths.get("j1/").is_some(),
            auths.get("j2/").is_some()
        ]));
        out
    });
    for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(o, t, "step {i}: ours, then OpenBao's");
    }
}

/// AppRole on both servers: role and secret IDs, a login per use until the uses are spent,
/// a secret ID past its TTL, CIDR bindings on the secret ID and on the role, a role
/// without a secret ID bound to networks, lookup and destroy by accessor, and the token a
/// login gets.
#[test]
fn approle_logins_are_judged_as_openbao_judges_them() {
    let (ours, theirs) = both(|s| {
        let mut out: Vec<Value> = Vec::new();
        let role_id_of = |role: &str| {
            call(
                s,
                ROOT,
                "",
                "GET",
                &format!("auth/approle/role/{role}/role-id"),
                json!({}),
            )
            .json()["data"]["role_id"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        ok(
            call(
                s,
                ROOT,
                "",
                "POST",
                "sys/auth/approle",
                json!({"type": "approle"}),
            ),
            "enable",
            s.name,
        );
        ok(
            call(
                s,
                ROOT,
                "",
                "POST",
                "auth/approle/role/app",
                json!({
                    "token_policies": ["app", "ops"], "token_ttl": "10m", "secret_id_num_uses": 5,
                }),
            ),
            "role",
            s.name,
        );
        let role =
            call(s, ROOT, "", "GET", "auth/approle/role/app", json!({})).json()["data"].clone();
        out.push(json!([
            role["token_policies"],
            role["token_ttl"],
            role["secret_id_num_uses"],
            role["bind_secret_id"]
        ]));
        let role_id = role_id_of("app");
        let login = |sid: &str| {
            let r = call(
                s,
                "",
                "",
                "POST",
                "auth/approle/login",
                json!({"role_id": role_id, "secret_id": sid}),
            );
            if r.status == 200 {
                let a = r.json()["auth"].clone();
                json!([
                    200,
                    a["policies"],
                    a["metadata"],
                    a["lease_duration"],
                    a["token_type"]
                ])
            } else {
                json!([r.status])
            }
        };
        let new_sid = |body: Value| {
            let r = call(s, ROOT, "", "POST", "auth/approle/role/app/secret-id", body);
            (r.status, r.json()["data"].clone())
        };
        // two uses, then spent
        let (st, sid) = new_sid(json!({"num_uses": 2, "metadata": "{\"team\": \"a\"}"}));
        out.push(json!([st, sid["secret_id_num_uses"], sid["secret_id_ttl"]]));
        let sid_value = sid["secret_id"].as_str().unwrap().to_owned();
        for _ in 0..3 {
            out.push(login(&sid_value));
        }
        // more uses than the role allows, a negative TTL
        out.push(json!(new_sid(json!({"num_uses": 9})).0 >= 400));
        // wrong role id, missing secret id
        let r = call(
            s,
            "",
            "",
            "POST",
            "auth/approle/login",
            json!({"role_id": "nope", "secret_id": sid_value}),
        );
        out.push(json!(r.status));
        let r = call(
            s,
            "",
            "",
            "POST",
            "auth/approle/login",
            json!({"role_id": role_id}),
        );
        out.push(json!(r.status));
        // a secret ID past its TTL
        let (_, short) = new_sid(json!({"ttl": "1s"}));
        std::thread::sleep(std::time::Duration::from_millis(2100));
        out.push(login(short["secret_id"].as_str().unwrap()));
        // bound to a network the client is not in
        let (_, far) = new_sid(json!({"cidr_list": ["10.0.0.0/8"]}));
        out.push(login(far["secret_id"].as_str().unwrap()));
        let (_, near) = new_sid(json!({"cidr_list": ["127.0.0.0/8"]}));
        out.push(login(near["secret_id"].as_str().unwrap()));
        // lookup and destroy by accessor
        let (_, kept) = new_sid(json!({}));
        let acc = kept["secret_id_accessor"].as_str().unwrap().to_owned();
        let look = call(
            s,
            ROOT,
            "",
            "POST",
            "auth/approle/role/app/secret-id-accessor/lookup",
            json!({"secret_id_accessor": acc}),
        );
        out.push(json!([
            look.status,
            look.json()["data"]["secret_id_num_uses"],
            look.json()["data"]["cidr_list"]
        ]));
        let d = call(
            s,
            ROOT,
            "",
            "POST",
            "auth/approle/role/app/secret-id-accessor/destroy",
            json!({"secret_id_accessor": acc}),
        );
        out.push(json!(d.status));
        out.push(login(kept["secret_id"].as_str().unwrap()));
        // no secret ID: refused without networks, allowed with the client's
        // (refused by both; OpenBao answers this client error with a 500, we with a 400)
        let r = call(
            s,
            ROOT,
            "",
            "POST",
            "auth/approle/role/open",
            json!({"bind_secret_id": false}),
        );
        out.push(json!(r.status >= 400));
        let r = call(
            s,
            ROOT,
            "",
            "POST",
            "auth/approle/role/local",
            json!({"bind_secret_id": false, "secret_id_bound_cidrs": ["127.0.0.0/8"], "token_policies": ["x"]}),
        );
        out.push(json!(r.status));
        let local_id = role_id_of("local");
        let r = call(
            s,
            "",
            "",
            "POST",
            "auth/approle/login",
            json!({"role_id": local_id}),
        );
        out.push(json!([r.status, r.json()["auth"]["policies"]]));
        let r = call(
            s,
            ROOT,
            "",
            "POST",
            "auth/approle/role/far",
            json!({"bind_secret_id": false, "secret_id_bound_cidrs": ["10.0.0.0/8"]}),
        );
        out.push(json!(r.status));
        let far_id = role_id_of("far");
        let r = call(
            s,
            "",
            "",
            "POST",
            "auth/approle/login",
            json!({"role_id": far_id}),
        );
        out.push(json!(r.status));
        // a custom role id; the role listing; deleting the role ends its logins
        let r = call(
            s,
            ROOT,
            "",
            "POST",
            "auth/approle/role/app/role-id",
            json!({"role_id": "my-app"}),
        );
        out.push(json!(r.status));
        let (_, sid2) = new_sid(json!({}));
        let r = call(
            s,
            "",
            "",
            "POST",
            "auth/approle/login",
            json!({"role_id": "my-app", "secret_id": sid2["secret_id"]}),
        );
        out.push(json!(r.status));
        out.push(
            call(s, ROOT, "", "LIST", "auth/approle/role", json!({})).json()["data"]["keys"]
                .clone(),
        );
        ok(
            call(s, ROOT, "", "DELETE", "auth/approle/role/app", json!({})),
            "delete",
            s.name,
        );
        let r = call(
            s,
            "",
            "",
            "POST",
            "auth/approle/login",
            json!({"role_id": "my-app", "secret_id": sid2["secret_id"]}),
        );
        out.push(json!(r.status));
        out
    });
    for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(o, t, "step {i}: ours, then OpenBao's");
    }
    assert_eq!(ours.len(), theirs.len());
}

/// CORS (`sys/config/cors`) on both servers: off by default; when on, an allowed origin
/// gets its headers, another origin is refused, a preflight is answered, a method the API
/// does not have is refused; the configuration reads back the same; off again.
#[test]
fn cors_answers_as_openbao_does() {
    let (ours, theirs) = both(|s| {
        let mut out: Vec<Value> = Vec::new();
        let ask = |method: &str, origin: &str, extra: &[(&str, &str)]| {
            let mut h = vec![("Origin", origin)];
            h.extend_from_slice(extra);
            let r = http(method, &s.url("sys/mounts"), Some(ROOT), &h, None);
            json!([
                r.status,
                r.header("access-control-allow-origin"),
                r.header("vary"),
                r.header("access-control-allow-methods"),
                r.header("access-control-allow-headers").map(|h| {
                    let mut v: Vec<&str> = h.split(',').collect();
                    v.sort();
                    v.join(",")
                }),
                r.header("access-control-max-age"),
                if r.status == 403 {
                    r.json()
                } else {
                    Value::Null
                },
            ])
        };
        out.push(ask("GET", "https://a.example", &[]));
        // refused on both (OpenBao answers these client errors with a 500, we with a 400)
        let r = call(
            s,
            ROOT,
            "",
            "PUT",
            "sys/config/cors",
            json!({"allowed_origins": ["*", "https://a.example"]}),
        );
        out.push(json!(r.status >= 400));
        let r = call(
            s,
            ROOT,
            "",
            "PUT",
            "sys/config/cors",
            json!({"allowed_origins": []}),
        );
        out.push(json!(r.status >= 400));
        ok(
            call(
                s,
                ROOT,
                "",
                "PUT",
                "sys/config/cors",
                json!({"allowed_origins": ["https://a.example"], "allowed_headers": ["X-Custom"]}),
            ),
            "cors",
            s.name,
        );
        let cfg = call(s, ROOT, "", "GET", "sys/config/cors", json!({})).json()["data"].clone();
        let mut headers: Vec<String> =
            serde_json::from_value(cfg["allowed_headers"].clone()).unwrap_or_default();
        headers.sort();
        out.push(json!([cfg["enabled"], cfg["allowed_origins"], headers]));
        out.push(ask("GET", "https://a.example", &[]));
        out.push(ask("GET", "https://evil.example", &[]));
        out.push(ask(
            "OPTIONS",
            "https://a.example",
            &[("Access-Control-Request-Method", "PUT")],
        ));
        out.push(ask(
            "OPTIONS",
            "https://a.example",
            &[("Access-Control-Request-Method", "TRACE")],
        ));
        out.push(ask(
            "OPTIONS",
            "https://evil.example",
            &[("Access-Control-Request-Method", "GET")],
        ));
        ok(
            call(
                s,
                ROOT,
                "",
                "PUT",
                "sys/config/cors",
                json!({"allowed_origins": "*"}),
            ),
            "any",
            s.name,
        );
        out.push(ask("GET", "https://any.example", &[]));
        ok(
            call(s, ROOT, "", "DELETE", "sys/config/cors", json!({})),
            "off",
            s.name,
        );
        out.push(call(s, ROOT, "", "GET", "sys/config/cors", json!({})).json()["data"].clone());
        out.push(ask("GET", "https://evil.example", &[]));
        out
    });
    for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(o, t, "step {i}: ours, then OpenBao's");
    }
}

/// The wrapping tokens' policy cannot be written, deleted or given to a token: a policy
/// written under that name would grant every wrapping token in flight.
#[test]
fn the_response_wrapping_policy_is_the_servers_alone() {
    let (ours, theirs) = both(|s| {
        let write = call(
            s,
            ROOT,
            "",
            "PUT",
            "sys/policies/acl/response-wrapping",
            json!({"policy": "path \"*\" { capabilities = [\"sudo\", \"read\"] }"}),
        );
        let delete = call(
            s,
            ROOT,
            "",
            "DELETE",
            "sys/policies/acl/response-wrapping",
            json!({}),
        );
        let assign = call(
            s,
            ROOT,
            "",
            "POST",
            "auth/token/create",
            json!({"policies": ["response-wrapping"]}),
        );
        vec![
            write.status >= 400,
            delete.status >= 400,
            assign.status >= 400,
        ]
    });
    assert_eq!(ours, vec![true, true, true]);
    assert_eq!(ours, theirs);
}
