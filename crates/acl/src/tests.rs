use super::*;
use proptest::prelude::*;
use serde_json::json;

fn acl(text: &str) -> Acl {
    Acl::new(&[Policy::parse("t", text).unwrap()])
}

fn data(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn exact_beats_glob_and_deny_wins_on_merge() {
    let a = Acl::new(&[
        Policy::parse("a", "path \"secret/*\" { capabilities = [\"read\"] }\npath \"secret/x\" { capabilities = [\"update\"] }").unwrap(),
        Policy::parse("b", "path \"secret/x\" { capabilities = [\"read\"] }\npath \"secret/y\" { capabilities = [\"deny\"] }").unwrap(),
        Policy::parse("c", r#"path "secret/y" { capabilities = ["read", "update"] }"#).unwrap(),
    ]);
    assert!(a.allows(Operation::Update, "secret/x", None));
    assert!(
        a.allows(Operation::Read, "secret/x", None),
        "capabilities merge across policies"
    );
    assert!(!a.allows(Operation::Read, "secret/y", None), "deny wins");
    assert!(a.allows(Operation::Read, "secret/z", None));
    assert!(!a.allows(Operation::Update, "secret/z", None));
    assert_eq!(a.capabilities("secret/y"), vec!["deny"]);
    assert_eq!(a.capabilities("other"), vec!["deny"]);
}

#[test]
fn priority_rules_from_openbao_docs() {
    // Example from OpenBao's policy docs: "secret/+/*" vs "secret/foo/*"
    let a = acl(r#"
        path "secret/*"      { capabilities = ["create"] }
        path "secret/foo/*"  { capabilities = ["update"] }
        path "secret/+/bar"  { capabilities = ["read"] }
        path "secret/+/*"    { capabilities = ["list"] }
        path "+/foo/bar"     { capabilities = ["delete"] }
    "#);
    // first wildcard later wins: "secret/foo/*" (glob at 11) beats "secret/+/bar" (+ at 7)
    assert!(a.allows(Operation::Update, "secret/foo/bar", None));
    assert!(!a.allows(Operation::Read, "secret/foo/bar", None));
    // same first + position: no trailing * beats trailing *
    assert!(a.allows(Operation::Read, "secret/zip/bar", None));
    // "secret/*" (glob at 7) vs "secret/+/*" (+ at 7, both prefixes): fewer `+` wins
    assert!(a.allows(Operation::Create, "secret/zip/baz", None));
    assert!(!a.allows(Operation::List, "secret/zip/baz", None));
    assert!(a.allows(Operation::Delete, "other/foo/bar", None));
}

#[test]
fn plus_matches_one_segment_only() {
    let a = acl(r#"path "kv/+/config" { capabilities = ["read"] }"#);
    assert!(a.allows(Operation::Read, "kv/a/config", None));
    assert!(!a.allows(Operation::Read, "kv/a/b/config", None));
    assert!(!a.allows(Operation::Read, "kv/a/config/x", None));
    let a = acl(r#"path "kv/+/conf*" { capabilities = ["read"] }"#);
    assert!(a.allows(Operation::Read, "kv/a/configuration/x", None));
    assert!(!a.allows(Operation::Read, "kv/a/other", None));
}

#[test]
fn list_on_trailing_slash_uses_exact_rule() {
    let a = acl(r#"path "secret/metadata/app" { capabilities = ["list"] }"#);
    assert!(a.allows(Operation::List, "secret/metadata/app/", None));
    assert!(!a.allows(Operation::Read, "secret/metadata/app/", None));
}

#[test]
fn a_rule_requiring_wrapped_responses_allows_nothing_here() {
    // No response is wrapped in Strongroom, so min_wrapping_ttl fails closed (OpenBao
    // refuses such a request unless it asks for wrapping); max_wrapping_ttl alone is never
    // exceeded.
    let a = Acl::new(&[
        Policy::parse("w", "path \"s/min\" {\n  capabilities = [\"read\"]\n  min_wrapping_ttl = \"1s\"\n}\npath \"s/max\" {\n  capabilities = [\"read\"]\n  max_wrapping_ttl = \"1h\"\n}\npath \"s/zero\" {\n  capabilities = [\"read\"]\n  min_wrapping_ttl = 0\n}").unwrap(),
        // Merged with another policy's plain rule on the same path: still required.
        Policy::parse("plain", r#"path "s/min" { capabilities = ["read", "update"] }"#).unwrap(),
    ]);
    assert!(!a.allows(Operation::Read, "s/min", None));
    assert!(!a.allows(Operation::Update, "s/min", None));
    assert!(a.allows(Operation::Read, "s/max", None));
    assert!(a.allows(Operation::Read, "s/zero", None));
    // The one duration syntax of the server: compound durations too.
    let compound = "path \"s\" {\n  capabilities = [\"read\"]\n  min_wrapping_ttl = \"1h30m\"\n}";
    let a = Acl::new(&[Policy::parse("c", compound).unwrap()]);
    assert!(!a.allows(Operation::Read, "s", None));
    for bad in ["\"soon\"", "\"1 fortnight\"", "true"] {
        let text =
            format!("path \"s\" {{\n  capabilities = [\"read\"]\n  min_wrapping_ttl = {bad}\n}}");
        assert!(Policy::parse("bad", &text).is_err(), "{bad}");
    }
}

#[test]
fn parameter_constraints() {
    let a = acl(r#"
        path "p/allowed" {
          capabilities = ["create", "update"]
          allowed_parameters = { "color" = ["red", "bl*"], "size" = [] }
        }
        path "p/star" {
          capabilities = ["update"]
          allowed_parameters = { "*" = [], "color" = ["red"] }
        }
        path "p/denied" {
          capabilities = ["update"]
          denied_parameters = { "admin" = [] , "level" = ["9*"] }
        }
        path "p/required" {
          capabilities = ["update"]
          required_parameters = ["reason"]
        }
        path "p/allowed-num" {
          capabilities = ["update"]
          allowed_parameters = { "n" = [7] }
        }
        path "p/denied-num" {
          capabilities = ["update"]
          denied_parameters = { "n" = [7] }
        }
        path "p/deny-all" {
          capabilities = ["update"]
          denied_parameters = { "*" = [] }
        }
    "#);
    let up = |p: &str, d: Value| a.allows(Operation::Update, p, Some(&data(d)));
    assert!(up("p/allowed", json!({"color": "red", "size": 3})));
    assert!(up("p/allowed", json!({"color": "blue"})));
    assert!(!up("p/allowed", json!({"color": "green"})));
    assert!(!up("p/allowed", json!({"shape": "round"})));
    // An array is one value, compared whole (OpenBao does not check it element-wise).
    assert!(!up("p/allowed", json!({"color": ["red", "blue"]})));
    // A number never equals a policy value, not even the same number or its string.
    assert!(up("p/denied-num", json!({"n": 7})));
    assert!(!up("p/allowed-num", json!({"n": "7"})));
    assert!(!up("p/allowed-num", json!({"n": 7})));
    assert!(up("p/star", json!({"anything": 1, "color": "red"})));
    assert!(!up("p/star", json!({"color": "blue"})));
    assert!(up("p/denied", json!({"level": "1"})));
    assert!(!up("p/denied", json!({"level": "99"})));
    assert!(!up("p/denied", json!({"admin": false})));
    assert!(up("p/required", json!({"reason": "x"})));
    assert!(!up("p/required", json!({})));
    // The required name is looked up lower-cased, as sent: `Reason` is not `reason`.
    assert!(!up("p/required", json!({"Reason": "x"})));
    // With no data at all, allowed and denied lists have nothing to refuse.
    assert!(up("p/deny-all", json!({})));
    assert!(!up("p/deny-all", json!({"a": 1})));
    assert!(
        a.check(Operation::Update, "p/allowed", Some(&data(json!({"x": 1}))))
            .parameters_refused
    );
    // delete/list do not check parameters
    let a = acl("path \"x\" {\n capabilities = [\"delete\"]\n required_parameters = [\"r\"]\n}");
    assert!(a.allows(Operation::Delete, "x", None));
}

#[test]
fn json_policies_and_errors() {
    let p = Policy::parse(
        "j",
        r#"{"path": {"secret/*": {"capabilities": ["read", "list"]}}}"#,
    )
    .unwrap();
    assert_eq!(p.rules.len(), 1);
    assert_eq!(p.rules[0].permissions.capabilities, cap::READ | cap::LIST);
    assert!(matches!(
        Policy::parse("x", r#"path "a" { capabilities = ["fly"] }"#),
        Err(PolicyError::InvalidCapability { .. })
    ));
    assert!(matches!(
        Policy::parse("x", r#"path "a*b" { capabilities = ["read"] }"#),
        Err(PolicyError::InvalidPath { .. })
    ));
    assert!(matches!(
        Policy::parse("x", "path {"),
        Err(PolicyError::Syntax(_))
    ));
    let legacy = Policy::parse("l", r#"path "a/*" { policy = "write" }"#).unwrap();
    assert!(Acl::new(&[legacy]).allows(Operation::Delete, "a/b", None));
}

#[test]
fn root_allows_everything() {
    let a = Acl::root();
    assert!(a.allows(Operation::Delete, "sys/anything", None));
    assert_eq!(a.capabilities("x"), vec!["root"]);
}

/// (first wildcard position, no trailing `*`, fewer `+`, length, pattern): larger wins.
type Priority = (usize, bool, Reverse<usize>, usize, String);

/// Brute-force reference: score every pattern against the path exactly as acl.go does.
fn reference(rules: &[(String, u16)], path: &str) -> Option<u16> {
    if let Some((_, c)) = rules
        .iter()
        .rev()
        .find(|(p, _)| !p.contains('+') && !p.ends_with('*') && p == path)
    {
        return Some(*c);
    }
    let parts: Vec<&str> = path.split('/').collect();
    let mut best: Option<(Priority, u16)> = None;
    for (p, c) in rules {
        let is_prefix = p.ends_with('*');
        let pat = p.trim_end_matches('*');
        let matched = if !p.contains('+') {
            is_prefix && path.starts_with(pat)
        } else {
            let pp: Vec<&str> = pat.split('/').collect();
            parts.len() >= pp.len()
                && (is_prefix || parts.len() == pp.len())
                && pp.iter().enumerate().all(|(i, s)| {
                    *s == "+"
                        || *s == parts[i]
                        || (is_prefix && i == pp.len() - 1 && parts[i].starts_with(s))
                })
        };
        if !matched {
            continue;
        }
        let first = p.find('+').unwrap_or(pat.len());
        let key = (
            first,
            !is_prefix,
            Reverse(pat.matches('+').count()),
            pat.len(),
            pat.to_owned(),
        );
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, *c));
        }
    }
    best.map(|(_, c)| c)
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("ab".to_string()),
        Just("+".to_string())
    ]
}

fn pattern() -> impl Strategy<Value = String> {
    (prop::collection::vec(segment(), 1..4), any::<bool>()).prop_map(|(segs, glob)| {
        let mut p = segs.join("/");
        if glob {
            p.push('*');
        }
        p
    })
}

fn concrete_path() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![Just("a"), Just("b"), Just("ab"), Just("abc"), Just("")],
        1..5,
    )
    .prop_map(|s| s.join("/"))
}

proptest! {
    /// The indexed lookup picks the same rule as a brute-force scan of every pattern.
    #[test]
    fn matcher_agrees_with_reference(patterns in prop::collection::vec(pattern(), 1..8), path in concrete_path()) {
        // distinct capability per distinct pattern so we can tell which rule decided
        let mut uniq: Vec<String> = Vec::new();
        for p in patterns { if !uniq.contains(&p) { uniq.push(p); } }
        let names = [cap::CREATE, cap::READ, cap::UPDATE, cap::DELETE, cap::LIST, cap::PATCH, cap::SCAN, cap::SUDO];
        let rules: Vec<(String, u16)> = uniq.iter().cloned().zip(names).collect();
        let policy = Policy { name: "p".into(), rules: rules.iter().map(|(p, c)| PathRule {
            path: p.clone(), permissions: Permissions { capabilities: *c, ..Default::default() } }).collect() };
        let acl = Acl::new(&[policy]);
        let got = acl.matching(&path, None).map(|p| p.capabilities);
        prop_assert_eq!(got, reference(&rules, &path));
    }

    /// An exact rule for a path decides it, whatever patterns also match.
    #[test]
    fn exact_rule_always_decides(patterns in prop::collection::vec(pattern(), 0..6), path in concrete_path()) {
        let mut rules: Vec<PathRule> = patterns.into_iter().map(|p| PathRule { path: p, permissions: Permissions { capabilities: cap::READ, ..Default::default() } }).collect();
        rules.push(PathRule { path: path.clone(), permissions: Permissions { capabilities: cap::DENY, ..Default::default() } });
        let acl = Acl::new(&[Policy { name: "p".into(), rules }]);
        prop_assert!(!acl.allows(Operation::Read, &path, None));
    }

    /// Parsing never panics on arbitrary input.
    #[test]
    fn parse_never_panics(s in ".{0,200}") {
        let _ = Policy::parse("fuzz", &s);
    }
}
