//! Route tables: a backend declares each of its paths once, as data, in the spirit of
//! OpenBao's `framework.Path`.
//!
//! An entry names its pattern, the operations its handler serves, whether it needs `sudo`
//! on top of the operation's capability (OpenBao's `PathsSpecial.Root`), whether it is
//! served without a token, whether a write first asks if the target exists (create vs
//! update), and the handler. [`crate::Core::handle`] matches a request against its
//! backend's table once; the ACL's sudo rule, the existence check, the 405 for an
//! operation the entry does not serve and the dispatch all come from that one entry, and
//! a path no entry matches is a 404 before any handler runs. Patterns are anchored at
//! both ends: `sys/seal/` is not `sys/seal`.
//!
//! Pattern syntax: literal text; `{name}`, one non-empty segment (no `/`); `{name+}`, one
//! or more characters, `/` included, and `{name*}`, zero or more (OpenBao's `.+` and
//! `MatchAllRegex`; either is followed only by literal text, which must then end the
//! path); and a final `/?`, an optional trailing slash.

use crate::Operation;

/// One path of a backend.
#[derive(Debug)]
pub(crate) struct PathSpec<H: 'static> {
    pub pattern: &'static str,
    /// What the handler serves. `Update` stands for both writes (create and update).
    pub ops: &'static [Operation],
    /// Needs the `sudo` capability as well as the operation's.
    pub sudo: bool,
    /// Served before authentication, without a token (sealed or not).
    pub unauthenticated: bool,
    /// A write asks the handler whether the target exists, to be a create or an update.
    pub existence_check: bool,
    /// The handler answers by the caller's ACL itself (it shows only what the caller may
    /// reach) instead of the core checking the path.
    pub own_acl: bool,
    pub handler: H,
}

impl<H> PathSpec<H> {
    /// An authenticated path that needs only its operation's capability.
    pub const fn new(pattern: &'static str, ops: &'static [Operation], handler: H) -> Self {
        PathSpec {
            pattern,
            ops,
            sudo: false,
            unauthenticated: false,
            existence_check: false,
            own_acl: false,
            handler,
        }
    }
    pub const fn sudo(mut self) -> Self {
        self.sudo = true;
        self
    }
    pub const fn unauthenticated(mut self) -> Self {
        self.unauthenticated = true;
        self
    }
    pub const fn existence_check(mut self) -> Self {
        self.existence_check = true;
        self
    }
    pub const fn own_acl(mut self) -> Self {
        self.own_acl = true;
        self
    }

    /// Whether the entry serves `op` (a create or an update counts as a write).
    pub fn serves(&self, op: Operation) -> bool {
        let op = match op {
            Operation::Create => Operation::Update,
            other => other,
        };
        self.ops.contains(&op)
    }
}

/// The values a matched pattern captured, by name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Captures(Vec<(&'static str, String)>);

impl Captures {
    /// The captured value of `name`; empty if the pattern has no such capture.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// A request's entry in its backend's table.
#[derive(Debug)]
pub(crate) struct Matched<H: 'static> {
    pub spec: &'static PathSpec<H>,
    pub captures: Captures,
}

/// The first entry of `table` whose pattern matches all of `path`.
pub(crate) fn find<H>(table: &'static [PathSpec<H>], path: &str) -> Option<Matched<H>> {
    table
        .iter()
        .find_map(|spec| matches(spec.pattern, path).map(|captures| Matched { spec, captures }))
}

/// [`find`] without the captures: what an engine that parses its own path needs (nothing
/// is allocated, so a KV read pays only a few comparisons for it).
pub(crate) fn find_spec<H>(
    table: &'static [PathSpec<H>],
    path: &str,
) -> Option<&'static PathSpec<H>> {
    table
        .iter()
        .find(|spec| matches_with(spec.pattern, path, &mut Sink::Discard))
}

/// Whether `pattern` matches all of `path`, with what it captured.
pub(crate) fn matches(pattern: &'static str, path: &str) -> Option<Captures> {
    let mut caps = Sink::Keep(Vec::new());
    match (matches_with(pattern, path, &mut caps), caps) {
        (true, Sink::Keep(v)) => Some(Captures(v)),
        _ => None,
    }
}

/// Where a match puts what it captures.
enum Sink {
    Keep(Vec<(&'static str, String)>),
    Discard,
}

impl Sink {
    fn push(&mut self, name: &'static str, value: &str) {
        if let Sink::Keep(v) = self {
            v.push((name, value.to_owned()));
        }
    }
    fn len(&self) -> usize {
        match self {
            Sink::Keep(v) => v.len(),
            Sink::Discard => 0,
        }
    }
    fn truncate(&mut self, n: usize) {
        if let Sink::Keep(v) = self {
            v.truncate(n);
        }
    }
}

fn matches_with(pattern: &'static str, path: &str, caps: &mut Sink) -> bool {
    if let Some(main) = pattern.strip_suffix("/?") {
        if match_from(main, path, caps) {
            return true;
        }
        caps.truncate(0);
        return path
            .strip_suffix('/')
            .is_some_and(|trimmed| match_from(main, trimmed, caps));
    }
    match_from(pattern, path, caps)
}

fn match_from(pat: &'static str, path: &str, caps: &mut Sink) -> bool {
    let Some(open) = pat.find('{') else {
        return pat == path;
    };
    let Some(literal_rest) = path.strip_prefix(&pat[..open]) else {
        return false;
    };
    let after_open = &pat[open + 1..];
    let Some(close) = after_open.find('}') else {
        // A malformed pattern matches nothing (the table test catches it).
        return false;
    };
    let (name, pat_rest) = (&after_open[..close], &after_open[close + 1..]);
    let any = name.strip_suffix('*').map(|n| (n, 0));
    if let Some((name, min)) = any.or_else(|| name.strip_suffix('+').map(|n| (n, 1))) {
        // Characters, `/` included, then the rest of the pattern, which is literal text.
        if pat_rest.contains('{') {
            return false;
        }
        let Some(value) = literal_rest.strip_suffix(pat_rest) else {
            return false;
        };
        if value.len() < min {
            return false;
        }
        caps.push(name, value);
        return true;
    }
    let end = literal_rest.find('/').unwrap_or(literal_rest.len());
    if end == 0 {
        return false;
    }
    let before = caps.len();
    caps.push(name, &literal_rest[..end]);
    if match_from(pat_rest, &literal_rest[end..], caps) {
        return true;
    }
    caps.truncate(before);
    false
}

/// Checks every table's patterns are well formed: braces closed, names non-empty, a `*`
/// or `+` capture followed only by literal text. Run by each backend's unit test.
#[cfg(test)]
pub(crate) fn check_table<H>(table: &'static [PathSpec<H>]) {
    for spec in table {
        let p = spec.pattern.strip_suffix("/?").unwrap_or(spec.pattern);
        let mut rest = p;
        let mut starred = false;
        while let Some(open) = rest.find('{') {
            assert!(
                !starred,
                "{}: a {{x*}} capture must be the last",
                spec.pattern
            );
            let close = rest[open..]
                .find('}')
                .unwrap_or_else(|| panic!("{}: unclosed brace", spec.pattern));
            let name = &rest[open + 1..open + close];
            assert!(
                !name.trim_end_matches(['*', '+']).is_empty(),
                "{}: empty name",
                spec.pattern
            );
            starred = name.ends_with(['*', '+']);
            rest = &rest[open + close + 1..];
        }
        assert!(!spec.ops.is_empty(), "{}: serves nothing", spec.pattern);
        assert!(
            !spec.ops.contains(&Operation::Create),
            "{}: declare writes as Update",
            spec.pattern
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(pattern: &'static str, path: &str) -> Option<Vec<(String, String)>> {
        matches(pattern, path).map(|c| {
            c.0.into_iter()
                .map(|(n, v)| (n.to_owned(), v))
                .collect::<Vec<_>>()
        })
    }

    #[test]
    fn literal_patterns_are_anchored_at_both_ends() {
        assert!(matches("seal", "seal").is_some());
        assert!(matches("seal", "seal/").is_none());
        assert!(matches("seal", "/seal").is_none());
        assert!(matches("seal", "SEAL").is_none());
        assert!(matches("seal", "seal-status").is_none());
        assert!(matches("rotate/keyring", "rotate/keyring/").is_none());
    }

    #[test]
    fn optional_trailing_slash() {
        assert!(matches("policies/acl/?", "policies/acl").is_some());
        assert!(matches("policies/acl/?", "policies/acl/").is_some());
        assert!(matches("policies/acl/?", "policies/acl//").is_none());
        assert!(matches("policies/acl/?", "policies/acl/x").is_none());
    }

    #[test]
    fn segment_and_rest_captures() {
        let one = |k: &str, v: &str| Some(vec![(k.to_owned(), v.to_owned())]);
        assert_eq!(
            caps("policies/acl/{name}", "policies/acl/dev"),
            one("name", "dev")
        );
        assert_eq!(caps("policies/acl/{name}", "policies/acl/"), None);
        assert_eq!(caps("policies/acl/{name}", "policies/acl/a/b"), None);
        assert_eq!(caps("auth/{path+}", "auth/a/b/"), one("path", "a/b/"));
        assert_eq!(caps("auth/{path+}", "auth/"), None);
        assert_eq!(caps("data/{path*}", "data/"), one("path", ""));
        assert_eq!(caps("data/{path*}", "data/a/b"), one("path", "a/b"));
        assert_eq!(caps("data/{path*}", "data"), None);
        assert_eq!(
            caps("auth/{path+}/tune", "auth/jwt/tune"),
            one("path", "jwt")
        );
        assert_eq!(
            caps("auth/{path+}/tune", "auth/a/tune/tune"),
            one("path", "a/tune")
        );
        assert_eq!(caps("auth/{path+}/tune", "auth//tune"), None);
        assert_eq!(
            caps("a/{x}/b/{y}", "a/1/b/2"),
            Some(vec![("x".into(), "1".into()), ("y".into(), "2".into())])
        );
    }

    #[test]
    fn find_takes_the_first_matching_entry() {
        static TABLE: &[PathSpec<u8>] = &[
            PathSpec::new("mounts/{path+}/tune", &[Operation::Read], 1).sudo(),
            PathSpec::new("mounts/{path+}", &[Operation::Read], 2),
            PathSpec::new("mounts", &[Operation::Read], 3),
        ];
        check_table(TABLE);
        assert_eq!(
            find(TABLE, "mounts/a/tune").map(|m| m.spec.handler),
            Some(1)
        );
        assert_eq!(find(TABLE, "mounts/a").map(|m| m.spec.handler), Some(2));
        assert_eq!(find(TABLE, "mounts").map(|m| m.spec.handler), Some(3));
        assert!(find(TABLE, "mountsx").is_none());
        assert_eq!(
            find_spec(TABLE, "mounts/a/tune").map(|s| s.handler),
            Some(1)
        );
        assert!(find_spec(TABLE, "mounts/").is_none());
        assert_eq!(
            find_spec(TABLE, "mounts/a/tune").map(|s| s.handler),
            Some(1)
        );
        assert!(find_spec(TABLE, "mounts/").is_none());
        assert!(TABLE[0].serves(Operation::Read) && !TABLE[0].serves(Operation::Delete));
    }
}
