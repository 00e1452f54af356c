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

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::error::{CoreError, Result};
use crate::{util, Operation};

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
    /// The request fields the handler reads, with their types: checked once, before the
    /// handler runs (a value of the wrong type is a 400), and read typed through
    /// [`Fields`]. Fields not declared are ignored, as OpenBao ignores them.
    pub fields: &'static [Field],
    pub handler: H,
}

/// The type of a request field, converted as OpenBao's framework converts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldType {
    /// A string; a number or boolean is taken as its text.
    Str,
    /// An integer, or a string of one.
    Int,
    /// A boolean, or `"true"`/`"false"`/`"1"`/`"0"`/`"t"`/`"f"`, or 0/1.
    Bool,
    /// Seconds, or a duration string (`90s`, `1h30m`).
    Duration,
    /// A list of strings, or one string of comma-separated items.
    StrList,
    /// A list of integers (numbers or their text), or one string of comma-separated ones.
    IntList,
    /// A JSON object.
    Map,
    /// String pairs: an object, or `"k=v"` strings (one, or a list).
    KvPairs,
    /// Any JSON, interpreted by the handler ([`Fields::value`]).
    Any,
}

/// One declared request field.
#[derive(Debug)]
pub(crate) struct Field {
    pub name: &'static str,
    pub ty: FieldType,
}

/// A declared field (for tables).
pub(crate) const fn field(name: &'static str, ty: FieldType) -> Field {
    Field { name, ty }
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
            fields: &[],
            handler,
        }
    }
    pub const fn fields(mut self, fields: &'static [Field]) -> Self {
        self.fields = fields;
        self
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

/// A request's data seen through its entry's declared fields: [`Fields::check`]
/// validated every declared field present, so the getters only convert.
pub(crate) struct Fields<'a> {
    declared: &'static [Field],
    data: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// Check each declared field present in `data` converts to its type.
    pub fn check(declared: &'static [Field], data: &'a Map<String, Value>) -> Result<Fields<'a>> {
        let fields = Fields { declared, data };
        for f in declared {
            let Some(v) = fields.raw(f.name) else {
                continue;
            };
            let ok = match f.ty {
                FieldType::Str => as_str(v).is_some(),
                FieldType::Int => util::as_i64(v).is_some(),
                FieldType::Bool => util::as_bool(v).is_some(),
                FieldType::Duration => util::parse_duration(v).is_ok(),
                FieldType::StrList => util::as_string_list(v).is_some(),
                FieldType::IntList => int_list(v).is_some(),
                FieldType::Map => v.is_object(),
                FieldType::KvPairs => kv_pairs(v).is_some(),
                FieldType::Any => true,
            };
            if !ok {
                return Err(CoreError::bad(format!(
                    "Field validation failed: error converting input for field {:?}: expected {}",
                    f.name,
                    match f.ty {
                        FieldType::Str => "a string",
                        FieldType::Int => "an integer",
                        FieldType::Bool => "a boolean",
                        FieldType::Duration => "a duration such as 90s or 1h30m, or seconds",
                        FieldType::StrList => "a list of strings or a comma-separated string",
                        FieldType::IntList => "a list of integers or a comma-separated string",
                        FieldType::Map => "an object",
                        FieldType::KvPairs => "an object or k=v strings",
                        FieldType::Any => "any value",
                    }
                )));
            }
        }
        Ok(fields)
    }

    /// The field's value, `None` if absent or null. A handler reads only fields its entry
    /// declares with the type it asks for (checked in debug builds).
    fn typed(&self, name: &str, ty: FieldType) -> Option<&'a Value> {
        debug_assert!(
            self.declared.iter().any(|f| f.name == name && f.ty == ty),
            "field {name:?} is not declared as {ty:?}"
        );
        self.raw(name)
    }

    pub fn raw(&self, name: &str) -> Option<&'a Value> {
        self.data.get(name).filter(|v| !v.is_null())
    }

    pub fn str(&self, name: &str) -> Option<Cow<'a, str>> {
        self.typed(name, FieldType::Str).and_then(as_str)
    }
    pub fn int(&self, name: &str) -> Option<i64> {
        self.typed(name, FieldType::Int).and_then(util::as_i64)
    }
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.typed(name, FieldType::Bool).and_then(util::as_bool)
    }
    /// Seconds.
    pub fn duration(&self, name: &str) -> Option<i64> {
        self.typed(name, FieldType::Duration)
            .and_then(|v| util::parse_duration(v).ok())
    }
    pub fn str_list(&self, name: &str) -> Option<Vec<String>> {
        self.typed(name, FieldType::StrList)
            .and_then(util::as_string_list)
    }
    pub fn int_list(&self, name: &str) -> Option<Vec<i64>> {
        self.typed(name, FieldType::IntList).and_then(int_list)
    }
    pub fn map(&self, name: &str) -> Option<&'a Map<String, Value>> {
        self.typed(name, FieldType::Map).and_then(Value::as_object)
    }
    pub fn kv_pairs(&self, name: &str) -> Option<std::collections::BTreeMap<String, String>> {
        self.typed(name, FieldType::KvPairs).and_then(kv_pairs)
    }
    /// The field as given, null included, for a handler to which null means something
    /// (clearing a map); its type was checked like any other's.
    pub fn value(&self, name: &str) -> Option<&'a Value> {
        debug_assert!(
            self.declared.iter().any(|f| f.name == name),
            "field {name:?} is not declared"
        );
        self.data.get(name)
    }
    /// The whole request body, for a path whose body is itself the value written (a kv v1
    /// secret, as OpenBao's passthrough backend takes it): its keys are the caller's.
    pub fn body(&self) -> &'a Map<String, Value> {
        self.data
    }
    /// Replace `target` with the field's value if the request gave it (an update keeps
    /// what it does not name).
    pub fn set_str(&self, name: &str, target: &mut String) {
        if let Some(v) = self.str(name) {
            *target = v.into_owned();
        }
    }
    pub fn set_str_list(&self, name: &str, target: &mut Vec<String>) {
        if let Some(v) = self.str_list(name) {
            *target = v;
        }
    }
    pub fn set_bool(&self, name: &str, target: &mut bool) {
        if let Some(v) = self.bool(name) {
            *target = v;
        }
    }
    pub fn set_duration(&self, name: &str, target: &mut i64) {
        if let Some(v) = self.duration(name) {
            *target = v;
        }
    }
    /// Whether the request gave the field at all (null counts as not given).
    pub fn has(&self, name: &str) -> bool {
        self.raw(name).is_some()
    }
}

/// OpenBao's `TypeCommaIntSlice`: a list of integers, or one of comma-separated text.
fn int_list(v: &Value) -> Option<Vec<i64>> {
    match v {
        Value::Array(items) => items.iter().map(util::as_i64).collect(),
        Value::String(s) => s.split(',').map(|x| x.trim().parse().ok()).collect(),
        Value::Number(_) => util::as_i64(v).map(|n| vec![n]),
        _ => None,
    }
}

/// OpenBao's `TypeKVPairs`: an object (values as text), or `k=v` strings.
fn kv_pairs(v: &Value) -> Option<std::collections::BTreeMap<String, String>> {
    let pair = |s: &str| {
        s.split_once('=')
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
    };
    match v {
        Value::Object(m) => Some(
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        as_str(v)
                            .map(Cow::into_owned)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect(),
        ),
        Value::String(s) => pair(s).map(|p| [p].into()),
        Value::Array(items) => items.iter().map(|i| pair(i.as_str()?)).collect(),
        _ => None,
    }
}

fn as_str(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(_) | Value::Bool(_) => Some(Cow::Owned(v.to_string())),
        _ => None,
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
        for (i, f) in spec.fields.iter().enumerate() {
            assert!(
                spec.fields[..i].iter().all(|g| g.name != f.name),
                "{}: field {} declared twice",
                spec.pattern,
                f.name
            );
        }
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
    fn fields_are_checked_once_and_read_typed() {
        static DECLARED: &[Field] = &[
            field("name", FieldType::Str),
            field("n", FieldType::Int),
            field("on", FieldType::Bool),
            field("ttl", FieldType::Duration),
            field("list", FieldType::StrList),
            field("meta", FieldType::Map),
            field("pairs", FieldType::KvPairs),
        ];
        let data = serde_json::json!({
            "name": 7, "n": "12", "on": "t", "ttl": "1h30m", "list": "a, b",
            "meta": {"k": "v"}, "pairs": ["a=1", "b = 2"], "undeclared": [1, 2]
        });
        let data = data.as_object().unwrap();
        let f = Fields::check(DECLARED, data).unwrap();
        assert_eq!(f.str("name").as_deref(), Some("7"));
        assert_eq!(f.int("n"), Some(12));
        assert_eq!(f.bool("on"), Some(true));
        assert_eq!(f.duration("ttl"), Some(5400));
        assert_eq!(f.str_list("list"), Some(vec!["a".into(), "b".into()]));
        assert_eq!(f.map("meta").map(|m| m.len()), Some(1));
        assert_eq!(
            f.kv_pairs("pairs"),
            Some([("a".into(), "1".into()), ("b".into(), "2".into())].into())
        );
        for (k, bad) in [
            ("n", serde_json::json!("twelve")),
            ("on", serde_json::json!("maybe")),
            ("ttl", serde_json::json!("soon")),
            ("list", serde_json::json!({"a": 1})),
            ("meta", serde_json::json!("k=v")),
            ("name", serde_json::json!({"a": 1})),
            ("pairs", serde_json::json!("no-equals-sign")),
        ] {
            let mut d = data.clone();
            d.insert(k.into(), bad);
            let err = Fields::check(DECLARED, &d).err().unwrap().to_string();
            assert!(err.contains(&format!("{k:?}")), "{err}");
        }
        let null = serde_json::json!({"n": null});
        let f = Fields::check(DECLARED, null.as_object().unwrap()).unwrap();
        assert!(!f.has("n") && f.int("n").is_none());
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
