//! Request paths as OpenBao's HTTP server reads them, decided once, here, before routing.
//!
//! OpenBao serves `/v1/` through Go's `http.ServeMux`, which cleans the *escaped* path
//! lexically (`//`, `.` and `..` segments) and answers a path that was not clean with a
//! `307` to its clean form; it also redirects the subtree root `/v1/sys` to `/v1/sys/`.
//! A client that follows the redirect sends the clean path, which then gets every check
//! the clean path gets (sudo included). Only after that is the path percent-decoded, so an
//! escaped `%2e` or `%2F` is never cleaned: the core refuses a decoded path with `.` or
//! `..` segments ("relative paths not supported").

use std::borrow::Cow;

/// Paths the server answers with a redirect to the same path plus `/` (Go's ServeMux does
/// this for every subtree root it has a handler for; OpenBao registers `/v1/sys/`).
const SUBTREE_ROOTS: &[&str] = &["/v1/sys"];

/// Where a request for `raw` (the escaped path, as sent) must be redirected, if anywhere:
/// its clean form, or a subtree root with its slash. `None`: serve it as it is.
pub fn redirect_target(raw: &str) -> Option<String> {
    let clean = clean(raw);
    if SUBTREE_ROOTS.contains(&clean.as_ref()) {
        return Some(format!("{clean}/"));
    }
    match clean {
        Cow::Borrowed(_) => None,
        Cow::Owned(c) => Some(c),
    }
}

/// Go's `net/http.cleanPath`: rooted, with `.`, `..` and empty segments resolved
/// lexically (`..` never climbs above the root), keeping a trailing slash the input had.
/// Borrowed when the input is already clean.
pub fn clean(p: &str) -> Cow<'_, str> {
    if is_clean(p) {
        return Cow::Borrowed(p);
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(p.len() + 1);
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    // The root, or a trailing slash the input had.
    if out.is_empty() || p.ends_with('/') {
        out.push('/');
    }
    Cow::Owned(out)
}

/// Whether `clean` would give `p` back unchanged: rooted, no empty segment except a final
/// one after a trailing slash, no `.` or `..` segment.
fn is_clean(p: &str) -> bool {
    let Some(rest) = p.strip_prefix('/') else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let body = rest.strip_suffix('/').unwrap_or(rest);
    !body
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
}

/// Percent-decode a path (not a form: `+` stays `+`). An escape that is not two hex
/// digits, a decoded control character, or bytes that are not UTF-8 are refused, as Go's
/// URL parser refuses the request line.
pub fn decode(p: &str) -> Result<Cow<'_, str>, &'static str> {
    if !p.contains('%') {
        return if p.chars().any(char::is_control) {
            Err("invalid request path: control characters are not allowed")
        } else {
            Ok(Cow::Borrowed(p))
        };
    }
    let b = p.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("invalid request path: a % escape must be followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    let s = String::from_utf8(out).map_err(|_| "invalid request path: not UTF-8 once decoded")?;
    if s.chars().any(char::is_control) {
        return Err("invalid request path: control characters are not allowed");
    }
    Ok(Cow::Owned(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference model: Go's `path.Clean` written as its documentation states the
    /// rules (repeatedly: collapse `//`, drop `/./`, drop `x/..`, drop `/..` at the root),
    /// applied to a string until nothing changes, then `cleanPath`'s trailing slash.
    fn model(p: &str) -> String {
        let rooted = if p.starts_with('/') {
            p.to_owned()
        } else {
            format!("/{p}")
        };
        let mut s = rooted.clone();
        loop {
            let before = s.clone();
            s = s.replace("//", "/");
            s = s.replace("/./", "/");
            if s.ends_with("/.") {
                s.truncate(s.len() - 1);
            }
            // One `seg/..` at a time, leftmost first, where seg is a real name.
            let parts: Vec<&str> = s.split('/').collect();
            if let Some(i) = (1..parts.len())
                .find(|&i| parts[i] == ".." && i >= 2 && !matches!(parts[i - 1], "" | "." | ".."))
            {
                let mut v: Vec<&str> = parts.clone();
                v.drain(i - 1..=i);
                s = v.join("/");
                if s.is_empty() {
                    s = "/".into();
                }
            } else if s.starts_with("/../") || s == "/.." {
                s = s.replacen("/..", "", 1);
                if s.is_empty() {
                    s = "/".into();
                }
            }
            if s == before {
                break;
            }
        }
        if s.len() > 1 && s.ends_with('/') {
            s.pop();
        }
        if rooted.ends_with('/') && s != "/" {
            s.push('/');
        }
        s
    }

    #[test]
    fn known_cases_match_openbao() {
        // What a real OpenBao 2.7.2 redirects these to (Location of its 307).
        for (raw, want) in [
            ("/v1/sys//seal", Some("/v1/sys/seal")),
            ("/v1/sys/./seal", Some("/v1/sys/seal")),
            ("/v1/sys/x/../seal", Some("/v1/sys/seal")),
            ("/v1//sys/seal-status", Some("/v1/sys/seal-status")),
            ("/v1/../v1/sys/seal-status", Some("/v1/sys/seal-status")),
            ("/v1/sys/seal-status/.", Some("/v1/sys/seal-status")),
            ("/v1/sys/seal-status/..", Some("/v1/sys/")),
            ("/v1/sys/.", Some("/v1/sys/")),
            ("/v1/sys", Some("/v1/sys/")),
            ("/v1/..", Some("/")),
            ("/v1/a/b/c/../..", Some("/v1/a")),
            ("/v1/sys/seal-status//", Some("/v1/sys/seal-status/")),
            ("/v1/sys/seal-status/./", Some("/v1/sys/seal-status/")),
            (
                "/v1/sys/.hidden/../seal-status",
                Some("/v1/sys/seal-status"),
            ),
            ("/v1/sys/...", None),
            ("/v1/sys/seal/", None),
            ("/v1/sys/%2e/seal", None),
            ("/v1/secret/data/a%20b", None),
        ] {
            assert_eq!(redirect_target(raw).as_deref(), want, "{raw}");
        }
    }

    #[test]
    fn decoding_is_strict() {
        assert_eq!(decode("a%20b/c+d").unwrap(), "a b/c+d");
        assert_eq!(decode("seal%2Fstatus").unwrap(), "seal/status");
        assert!(decode("x%zz").is_err());
        assert!(decode("x%2").is_err());
        assert!(decode("x%").is_err());
        assert!(decode("a%00b").is_err());
        assert!(decode("a%ffb").is_err());
        assert!(decode("a\u{7f}").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn clean_matches_the_reference_model(
            segs in proptest::collection::vec(
                prop_oneof![Just(""), Just("."), Just(".."), Just("a"), Just("b"), Just("..."), Just(".x"), Just("sys")],
                0..10,
            ),
            rooted in any::<bool>(),
            trailing in any::<bool>(),
        ) {
            let mut p = segs.join("/");
            if rooted { p.insert(0, '/'); }
            if trailing { p.push('/'); }
            let ours = clean(&p);
            let want = model(&p);
            prop_assert_eq!(ours.as_ref(), want.as_str(), "input {:?}", p);
            // Clean is idempotent, and borrowed exactly when nothing changed.
            let again = clean(&ours).into_owned();
            prop_assert_eq!(again.as_str(), ours.as_ref());
            prop_assert_eq!(matches!(ours, Cow::Borrowed(_)), ours.as_ref() == p);
        }

        #[test]
        fn decode_never_panics_and_inverts_encoding(s in "[ -~]{0,40}") {
            let _ = decode(&s);
            let encoded: String = s.bytes().map(|b| format!("%{b:02X}")).collect();
            let decoded = decode(&encoded).map(|d| d.into_owned());
            prop_assert_eq!(decoded, Ok(s.clone()));
        }
    }
}
