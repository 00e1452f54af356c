//! Every sudo-protected path of OpenBao that we serve (its backends' `PathsSpecial.Root`,
//! plus `sys/seal` and `sys/step-down`, and the token store's sudo-only requests), in every
//! spelling, sent to our server and to a real OpenBao 2.7.2 started by the same test, with
//! a token that has every capability but `sudo` and with one that also has `sudo`.
//!
//! The answers must match: the status of the request as sent (a path that is not clean is
//! a 307 to its clean form on both), the status once a client follows that redirect, and
//! the state afterwards where the request changes something. Above all, no case may succeed
//! on ours where OpenBao refuses it.

mod common;

use common::*;
use serde_json::{json, Value};

const EVERYTHING_BUT_SUDO: &str =
    r#"path "*" { capabilities = ["create", "read", "update", "delete", "list", "patch"] }"#;
const EVERYTHING: &str = r#"path "*" { capabilities = ["create", "read", "update", "delete", "list", "patch", "sudo"] }"#;

/// One request: method, path under `/v1/`, body (`{victim}` is replaced by a fresh token).
struct Case {
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
}

const fn case(method: &'static str, path: &'static str, body: Option<&'static str>) -> Case {
    Case { method, path, body }
}

/// The paths, in an order whose side effects are the same on both servers. `sys/seal` is
/// sent last, on its own (see the end of the test).
const CASES: &[Case] = &[
    case("POST", "sys/auth/sudotest", Some(r#"{"type":"jwt"}"#)),
    case("GET", "sys/auth/sudotest", None),
    case("GET", "sys/auth/sudotest/tune", None),
    case(
        "POST",
        "sys/auth/sudotest/tune",
        Some(r#"{"default_lease_ttl":"1h"}"#),
    ),
    case("DELETE", "sys/auth/sudotest", None),
    case("POST", "sys/rotate", Some("{}")),
    case("POST", "sys/rotate/keyring", Some("{}")),
    case("GET", "sys/rotate", None),
    case("LIST", "auth/token/accessors", None),
    case("GET", "auth/token/accessors", None),
    case(
        "POST",
        "auth/token/revoke-orphan",
        Some(r#"{"token":"{victim}"}"#),
    ),
    case(
        "POST",
        "auth/token/create",
        Some(r#"{"no_parent":true,"ttl":"1h"}"#),
    ),
    case("POST", "auth/token/create-orphan", Some(r#"{"ttl":"1h"}"#)),
    case("GET", "sys/config/cors", None),
    case(
        "PUT",
        "sys/config/cors",
        Some(r#"{"allowed_origins":["https://a.example"]}"#),
    ),
    case("DELETE", "sys/config/cors", None),
    case("POST", "sys/mounts/sudomove", Some(r#"{"type":"kv"}"#)),
    case(
        "POST",
        "sys/remount",
        Some(r#"{"from":"sudomove","to":"sudomoved"}"#),
    ),
    case("GET", "sys/rekey/backup", None),
    case("LIST", "sys/leases/lookup/auth/", None),
    case("PUT", "sys/leases/revoke-prefix/auth/nothing", Some("{}")),
    case("PUT", "sys/leases/revoke-force/auth/nothing", Some("{}")),
    case("PUT", "sys/revoke-prefix/auth/nothing", Some("{}")),
    case("POST", "sys/step-down", Some("{}")),
    case("POST", "sys/seal", Some("{}")),
];

/// Where we answer differently from OpenBao on purpose: (method, spelling, which token,
/// ours, OpenBao's), with the reason.
const DELIBERATE: &[(&str, &str, bool, u16, u16, &str)] = &[
    ("POST", "sys/step-down", false, 403, 204, STEP_DOWN),
    ("POST", "sys//step-down", false, 403, 204, STEP_DOWN),
    ("POST", "sys/./step-down", false, 403, 204, STEP_DOWN),
    ("POST", "sys/x/../step-down", false, 403, 204, STEP_DOWN),
];

/// Why `sys/step-down` needs sudo here although OpenBao `-dev` answers it without.
const STEP_DOWN: &str = "OpenBao checks sudo on step-down only when it runs in HA mode \
     (a dev server skips the check and does nothing); every Strongroom node is an active \
     node of a cluster, so the check always applies (stricter)";

/// Every spelling of `path`: exact, trailing slash, doubled slash, `./`, `x/../`, upper case.
fn spellings(path: &str) -> Vec<String> {
    let (head, tail) = path.split_once('/').unwrap();
    vec![
        path.to_owned(),
        format!("{path}/"),
        format!("{head}//{tail}"),
        format!("{head}/./{tail}"),
        format!("{head}/x/../{tail}"),
        path.to_uppercase(),
    ]
}

struct Side {
    server: Server,
    no_sudo: String,
    sudo: String,
}

/// `full_path` (from the first `/`, not cleaned) on `s`.
fn at(s: &Server, full_path: &str) -> String {
    format!("{}{full_path}", s.addr)
}

fn root_call(s: &Server, method: &str, path: &str, body: Value) -> HttpReply {
    let b = body.to_string();
    http(
        method,
        &at(s, &format!("/v1/{path}")),
        Some(ROOT),
        &[],
        Some(b.as_bytes()),
    )
}

fn token_with(s: &Server, policy: &str, rules: &str) -> String {
    let r = root_call(
        s,
        "PUT",
        &format!("sys/policies/acl/{policy}"),
        json!({ "policy": rules }),
    );
    assert!(r.status < 300, "{}: policy {policy}: {}", s.name, r.body);
    let r = root_call(
        s,
        "POST",
        "auth/token/create",
        json!({ "policies": [policy], "ttl": "2h" }),
    );
    assert_eq!(r.status, 200, "{}: token: {}", s.name, r.body);
    r.json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn side(server: Server) -> Side {
    let no_sudo = token_with(&server, "nosudo", EVERYTHING_BUT_SUDO);
    let sudo = token_with(&server, "withsudo", EVERYTHING);
    Side {
        server,
        no_sudo,
        sudo,
    }
}

fn is_alive(s: &Server, token: &str) -> bool {
    root_call(s, "POST", "auth/token/lookup", json!({ "token": token })).status == 200
}

/// What one request did: its status as sent, and, if it was redirected, the status of the
/// request to the redirect's target (method and body kept, as clients send it again).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Outcome {
    sent: u16,
    followed: Option<u16>,
}

impl Outcome {
    fn succeeded(self) -> bool {
        (200..300).contains(&self.followed.unwrap_or(self.sent))
    }
}

fn send(s: &Server, token: &str, method: &str, path: &str, body: Option<&str>) -> Outcome {
    let url = at(s, &format!("/v1/{path}"));
    let r = http(method, &url, Some(token), &[], body.map(str::as_bytes));
    let followed = (r.status == 307).then(|| {
        let loc = r
            .header("location")
            .expect("a 307 names its target")
            .to_owned();
        http(
            method,
            &at(s, &loc),
            Some(token),
            &[],
            body.map(str::as_bytes),
        )
        .status
    });
    Outcome {
        sent: r.status,
        followed,
    }
}

#[test]
fn sudo_paths_in_every_spelling_answer_as_openbao_does() {
    let ours = side(strongroom_dev());
    let theirs = side(openbao_dev());
    let mut table = Vec::new();
    let mut mismatches = Vec::new();
    let (seal, rest) = CASES.split_last().unwrap();
    let run = |c: &Case,
               spelling: &str,
               with_sudo: bool,
               table: &mut Vec<String>,
               mismatches: &mut Vec<String>| {
        let mut results = Vec::new();
        for s in [&ours, &theirs] {
            let token = if with_sudo { &s.sudo } else { &s.no_sudo };
            let victim = c.body.filter(|b| b.contains("{victim}")).map(|_| {
                let r = root_call(&s.server, "POST", "auth/token/create", json!({"ttl": "1h"}));
                r.json()["auth"]["client_token"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            });
            let body = c
                .body
                .map(|b| b.replace("{victim}", victim.as_deref().unwrap_or("")));
            let outcome = send(&s.server, token, c.method, spelling, body.as_deref());
            let victim_alive = victim.map(|v| is_alive(&s.server, &v));
            results.push((outcome, victim_alive));
        }
        let ((o, o_alive), (t, t_alive)) = (results[0], results[1]);
        let who = if with_sudo { "sudo" } else { "no sudo" };
        let line = format!(
            "{:<6} {:<34} {:<7} ours {:>3}{:<6} openbao {:>3}{}",
            c.method,
            spelling,
            who,
            o.sent,
            o.followed.map(|f| format!("→{f}")).unwrap_or_default(),
            t.sent,
            t.followed.map(|f| format!("→{f}")).unwrap_or_default(),
        );
        table.push(line.clone());
        // The property that matters most, whatever else differs.
        if o.succeeded() && !t.succeeded() {
            mismatches.push(format!("SUCCEEDED ON OURS ONLY: {line}"));
            return;
        }
        let deliberate = DELIBERATE.iter().any(|(m, p, sudo, ours_s, theirs_s, _)| {
            *m == c.method
                && *p == spelling
                && *sudo == with_sudo
                && *ours_s == o.followed.unwrap_or(o.sent)
                && *theirs_s == t.followed.unwrap_or(t.sent)
        });
        if o != t && !deliberate {
            mismatches.push(line);
        } else if o_alive != t_alive {
            mismatches.push(format!(
                "state differs (victim alive: ours {o_alive:?}, openbao {t_alive:?}): {line}"
            ));
        }
    };
    for c in rest {
        for spelling in spellings(c.path) {
            for with_sudo in [false, true] {
                run(c, &spelling, with_sudo, &mut table, &mut mismatches);
            }
        }
    }
    // `sys/seal` seals the server: every spelling without sudo (nothing may seal), every
    // spelling with sudo as sent (the redirects are not followed), then the clean path
    // with sudo, which seals both.
    for spelling in spellings(seal.path) {
        run(seal, &spelling, false, &mut table, &mut mismatches);
    }
    for s in [&ours, &theirs] {
        let st = root_call(&s.server, "GET", "sys/seal-status", json!({}));
        assert_eq!(
            st.json()["sealed"],
            false,
            "{} sealed without sudo",
            s.server.name
        );
    }
    for spelling in spellings(seal.path).iter().skip(1) {
        let o = http(
            "POST",
            &at(&ours.server, &format!("/v1/{spelling}")),
            Some(&ours.sudo),
            &[],
            Some(b"{}"),
        )
        .status;
        let t = http(
            "POST",
            &at(&theirs.server, &format!("/v1/{spelling}")),
            Some(&theirs.sudo),
            &[],
            Some(b"{}"),
        )
        .status;
        table.push(format!(
            "POST   {spelling:<34} sudo    ours {o:>3} (not followed)  openbao {t:>3}"
        ));
        if o != t {
            mismatches.push(format!("POST {spelling} with sudo: ours {o}, openbao {t}"));
        }
    }
    for s in [&ours, &theirs] {
        let r = http(
            "POST",
            &at(&s.server, "/v1/sys/seal"),
            Some(&s.sudo),
            &[],
            Some(b"{}"),
        );
        assert_eq!(
            r.status, 204,
            "{}: seal with sudo: {}",
            s.server.name, r.body
        );
        let st = root_call(&s.server, "GET", "sys/seal-status", json!({}));
        assert_eq!(st.json()["sealed"], true, "{}", s.server.name);
    }
    table.push(
        "POST   sys/seal                           sudo    ours 204 openbao 204 (both sealed)"
            .into(),
    );
    println!("{}", table.join("\n"));
    for (m, p, sudo, o, t, why) in DELIBERATE {
        println!("deliberate: {m} {p} (sudo: {sudo}) ours {o}, openbao {t}: {why}");
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ from OpenBao:\n{}",
        mismatches.len(),
        table.len(),
        mismatches.join("\n")
    );
}
