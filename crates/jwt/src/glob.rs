//! Glob matching for `bound_claims_type = "glob"`, with exactly the semantics OpenBao uses
//! (github.com/ryanuber/go-glob): `*` matches any run of characters, `/` included;
//! nothing else is special.

/// Does `subject` match `pattern`?
pub fn glob_match(pattern: &str, subject: &str) -> bool {
    if pattern.is_empty() {
        return subject.is_empty();
    }
    if pattern == "*" {
        return true;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return subject == pattern;
    }
    let leading = pattern.starts_with('*');
    let trailing = pattern.ends_with('*');
    let end = parts.len() - 1;
    let mut subj = subject;
    for (i, part) in parts.iter().enumerate().take(end) {
        let idx = subj.find(part);
        match (i, idx) {
            (0, Some(0)) => {}
            (0, _) if !leading => return false,
            (_, None) => return false,
            _ => {}
        }
        let idx = idx.unwrap_or(0);
        subj = &subj[idx + part.len()..];
    }
    trailing || subj.ends_with(parts[end])
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn table() {
        let cases = [
            ("*", "anything/at/all", true),
            ("*", "", true),
            ("", "", true),
            ("", "x", false),
            ("main", "main", true),
            ("main", "main2", false),
            ("release/*", "release/1.0", true),
            ("release/*", "release/", true),
            ("release/*", "releases/1", false),
            ("*-prod", "eu-prod", true),
            ("*-prod", "eu-prod-2", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "a-x-b-y-c", true),
            ("a*b*c", "acb", false),
            ("a*b*c", "abcx", false),
            ("*/*", "a/b", true),
            ("*/*", "ab", false),
            ("feature/*/fix", "feature/x/y/fix", true),
            ("\u{e9}t\u{e9}*", "\u{e9}t\u{e9}-2026", true),
            ("*\u{1f512}", "lock-\u{1f512}", true),
        ];
        for (p, s, want) in cases {
            assert_eq!(glob_match(p, s), want, "{p:?} vs {s:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn star_alone_and_literal_patterns(s in ".{0,20}") {
            proptest::prop_assert!(glob_match("*", &s));
            proptest::prop_assert!(glob_match(&s.replace('*', ""), &s.replace('*', "")));
            let prefixed = format!("{}*", s.replace('*', ""));
            let subject = format!("{}tail", s.replace('*', ""));
            proptest::prop_assert!(glob_match(&prefixed, &subject));
        }
    }
}
