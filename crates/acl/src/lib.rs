//! OpenBao-compatible ACL policies: parse, merge, evaluate. Pure: no I/O, no clock.
//!
//! ```
//! use strongroom_acl::{Acl, Operation, Policy};
//! let p = Policy::parse("dev", r#"
//!     path "secret/data/*"        { capabilities = ["read", "list"] }
//!     path "secret/data/prod/*"   { capabilities = ["deny"] }
//!     path "secret/data/+/config" { capabilities = ["create", "update"] }
//! "#).unwrap();
//! let acl = Acl::new(&[p]);
//! assert!(acl.allows(Operation::Read, "secret/data/app", None));
//! assert!(!acl.allows(Operation::Read, "secret/data/prod/db", None));
//! assert!(acl.allows(Operation::Update, "secret/data/app/config", None));
//! assert_eq!(acl.capabilities("secret/data/app"), vec!["list", "read"]);
//! ```
//!
//! Semantics follow OpenBao's `vault/acl.go`: rules for the same path in several policies
//! merge (a `deny` anywhere wins and clears the rest); an exact path beats any pattern;
//! among patterns exactly one — the highest priority — decides, where priority is, in order:
//! the later first `+`/`*` position, no trailing `*`, fewer `+` segments, longer pattern,
//! lexicographically larger pattern.
//!
//! Architecture invariant: this crate is the only place that decides allow or deny; it does
//! not know about HTTP, storage or tokens.

#![forbid(unsafe_code)]

pub mod duration;
pub mod hcl1;
mod parse;

use std::cmp::Reverse;
use std::collections::HashMap;

use serde_json::{Map, Value};

pub use parse::PolicyError;

/// Capability bits.
pub mod cap {
    pub const DENY: u16 = 1 << 0;
    pub const CREATE: u16 = 1 << 1;
    pub const READ: u16 = 1 << 2;
    pub const UPDATE: u16 = 1 << 3;
    pub const DELETE: u16 = 1 << 4;
    pub const LIST: u16 = 1 << 5;
    pub const SUDO: u16 = 1 << 6;
    pub const PATCH: u16 = 1 << 7;
    pub const SCAN: u16 = 1 << 8;
    pub const SUBSCRIBE: u16 = 1 << 9;

    pub const NAMES: [(u16, &str); 10] = [
        (CREATE, "create"),
        (DELETE, "delete"),
        (DENY, "deny"),
        (LIST, "list"),
        (PATCH, "patch"),
        (READ, "read"),
        (SCAN, "scan"),
        (SUBSCRIBE, "subscribe"),
        (SUDO, "sudo"),
        (UPDATE, "update"),
    ];

    pub fn from_name(n: &str) -> Option<u16> {
        NAMES.iter().find(|(_, name)| *name == n).map(|(b, _)| *b)
    }
}

/// A request's operation, as the ACL sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Create,
    Read,
    Update,
    Patch,
    Delete,
    List,
    Scan,
}

impl Operation {
    fn required_cap(self) -> u16 {
        match self {
            Operation::Create => cap::CREATE,
            Operation::Read => cap::READ,
            Operation::Update => cap::UPDATE,
            Operation::Patch => cap::PATCH,
            Operation::Delete => cap::DELETE,
            Operation::List => cap::LIST,
            Operation::Scan => cap::SCAN,
        }
    }
    fn checks_parameters(self) -> bool {
        matches!(
            self,
            Operation::Read | Operation::Create | Operation::Update | Operation::Patch
        )
    }
}

/// Permissions attached to one path pattern.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Permissions {
    pub capabilities: u16,
    /// Lower-cased parameter name → allowed values (empty = any value).
    pub allowed_parameters: Option<HashMap<String, Vec<Value>>>,
    pub denied_parameters: Option<HashMap<String, Vec<Value>>>,
    pub required_parameters: Vec<String>,
    /// A `min_wrapping_ttl` above zero: OpenBao then answers only requests whose response
    /// is wrapped. Strongroom wraps no response, so such a rule allows nothing (it fails
    /// closed rather than dropping the constraint).
    pub requires_wrapping: bool,
}

/// One `path "..." { ... }` block.
#[derive(Debug, Clone, PartialEq)]
pub struct PathRule {
    pub path: String,
    pub permissions: Permissions,
}

/// A named, parsed policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub rules: Vec<PathRule>,
}

impl Policy {
    /// Parse HCL or JSON policy text.
    pub fn parse(name: &str, text: &str) -> Result<Policy, PolicyError> {
        parse::parse(name, text)
    }
}

/// The merged rules of a token's policies, indexed for lookup.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    root: bool,
    exact: HashMap<String, Permissions>,
    /// Pattern (without the trailing `*`) → permissions, for `*`-suffixed paths with no `+`.
    prefix: HashMap<String, Permissions>,
    /// Longest key in `prefix`, to bound the lookup.
    prefix_max_len: usize,
    /// Full pattern → permissions, for patterns containing `+`.
    segment: Vec<(String, Permissions)>,
}

/// Why a request was allowed or not, with what `sys/capabilities-self` would report.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    /// The matched rule has `sudo` (or the ACL is root).
    pub sudo: bool,
    /// The matched rule had the capability, but a parameter constraint refused the data.
    pub parameters_refused: bool,
}

fn merge_params(
    dst: &mut Option<HashMap<String, Vec<Value>>>,
    src: &Option<HashMap<String, Vec<Value>>>,
) {
    let Some(src) = src else { return };
    if src.is_empty() {
        return;
    }
    let Some(d) = dst else {
        *dst = Some(src.clone());
        return;
    };
    for (k, v) in src {
        match d.get_mut(k) {
            Some(existing) if existing.is_empty() => {}
            Some(_) if v.is_empty() => {
                d.insert(k.clone(), Vec::new());
            }
            Some(existing) => {
                let mut merged = v.clone();
                merged.append(existing);
                *existing = merged;
            }
            None => {
                d.insert(k.clone(), v.clone());
            }
        }
    }
}

fn merge_into(map: &mut Permissions, new: &Permissions) {
    if map.capabilities & cap::DENY != 0 {
        return;
    }
    if new.capabilities & cap::DENY != 0 {
        *map = Permissions {
            capabilities: cap::DENY,
            ..Default::default()
        };
        return;
    }
    map.capabilities |= new.capabilities;
    merge_params(&mut map.allowed_parameters, &new.allowed_parameters);
    merge_params(&mut map.denied_parameters, &new.denied_parameters);
    for r in &new.required_parameters {
        if !map.required_parameters.contains(r) {
            map.required_parameters.push(r.clone());
        }
    }
    map.requires_wrapping |= new.requires_wrapping;
}

/// A candidate pattern match and its priority (larger wins).
struct Candidate<'a> {
    key: (usize, bool, Reverse<usize>, usize, &'a str),
    perms: &'a Permissions,
}

impl Acl {
    /// Merge `policies` into one ACL. A policy named `root` makes the ACL allow everything.
    pub fn new(policies: &[Policy]) -> Acl {
        let mut acl = Acl::default();
        for p in policies {
            if p.name == "root" {
                acl.root = true;
            }
            for rule in &p.rules {
                let path = rule.path.as_str();
                if path.contains('+') {
                    match acl.segment.iter_mut().find(|(k, _)| k == path) {
                        Some((_, perms)) => merge_into(perms, &rule.permissions),
                        None => acl
                            .segment
                            .push((path.to_owned(), rule.permissions.clone())),
                    }
                } else if let Some(pfx) = path.strip_suffix('*') {
                    let e = acl.prefix.entry(pfx.to_owned()).or_default();
                    merge_into(e, &rule.permissions);
                    acl.prefix_max_len = acl.prefix_max_len.max(pfx.len());
                } else {
                    let e = acl.exact.entry(path.to_owned()).or_default();
                    merge_into(e, &rule.permissions);
                }
            }
        }
        // `merge_into` on a default entry starts from 0 caps; fine, caps are a union.
        acl
    }

    /// An ACL that allows everything (the root policy).
    pub fn root() -> Acl {
        Acl {
            root: true,
            ..Default::default()
        }
    }

    pub fn is_root(&self) -> bool {
        self.root
    }

    /// The permissions of the single rule that governs `path`, if any.
    pub fn matching(&self, path: &str, op: Option<Operation>) -> Option<&Permissions> {
        if let Some(p) = self.exact.get(path) {
            return Some(p);
        }
        let listing = matches!(op, Some(Operation::List | Operation::Scan));
        let trimmed = path.strip_suffix('/').filter(|_| listing);
        if let Some(p) = trimmed.and_then(|t| self.exact.get(t)) {
            return Some(p);
        }
        // A listing of `a/` falls back to the patterns that govern `a` (OpenBao's
        // `AllowOperation`): `+` covers `x-y/` this way, as one segment.
        self.best_pattern(path)
            .or_else(|| trimmed.and_then(|t| self.best_pattern(t)))
    }

    fn best_pattern(&self, path: &str) -> Option<&Permissions> {
        let mut best: Option<Candidate<'_>> = None;
        fn consider<'a>(best: &mut Option<Candidate<'a>>, c: Candidate<'a>) {
            if best.as_ref().is_none_or(|b| c.key > b.key) {
                *best = Some(c);
            }
        }
        if !self.prefix.is_empty() {
            let upto = self.prefix_max_len.min(path.len());
            for end in (0..=upto).rev() {
                if !path.is_char_boundary(end) {
                    continue;
                }
                if let Some((k, perms)) = self.prefix.get_key_value(&path[..end]) {
                    consider(
                        &mut best,
                        Candidate {
                            key: (k.len(), false, Reverse(0), k.len(), k.as_str()),
                            perms,
                        },
                    );
                    break;
                }
            }
        }
        if !self.segment.is_empty() {
            let parts: Vec<&str> = path.split('/').collect();
            'rules: for (full, perms) in &self.segment {
                let first_wc = full.find('+').unwrap_or(full.len());
                let (pattern, is_prefix) = match full.strip_suffix('*') {
                    Some(p) => (p, true),
                    None => (full.as_str(), false),
                };
                let pat_parts: Vec<&str> = pattern.split('/').collect();
                if parts.len() < pat_parts.len() || (!is_prefix && parts.len() != pat_parts.len()) {
                    continue;
                }
                let mut wildcards = 0;
                for (i, pp) in pat_parts.iter().enumerate() {
                    let last_prefix =
                        is_prefix && i == pat_parts.len() - 1 && parts[i].starts_with(pp);
                    if *pp == "+" {
                        wildcards += 1;
                    } else if *pp != parts[i] && !last_prefix {
                        continue 'rules;
                    }
                }
                consider(
                    &mut best,
                    Candidate {
                        key: (
                            first_wc,
                            !is_prefix,
                            Reverse(wildcards),
                            pattern.len(),
                            pattern,
                        ),
                        perms,
                    },
                );
            }
        }
        best.map(|c| c.perms)
    }

    /// Decide a request. `data` is the request body/query, checked against parameter rules.
    pub fn check(&self, op: Operation, path: &str, data: Option<&Map<String, Value>>) -> Decision {
        if self.root {
            return Decision {
                allowed: true,
                sudo: true,
                parameters_refused: false,
            };
        }
        let denied = Decision {
            allowed: false,
            sudo: false,
            parameters_refused: false,
        };
        let Some(perms) = self.matching(path, Some(op)) else {
            return denied;
        };
        let caps = perms.capabilities;
        if caps & cap::DENY != 0 || caps & op.required_cap() == 0 || perms.requires_wrapping {
            return denied;
        }
        let sudo = caps & cap::SUDO != 0;
        if op.checks_parameters() && !parameters_allowed(perms, data) {
            return Decision {
                allowed: false,
                sudo,
                parameters_refused: true,
            };
        }
        Decision {
            allowed: true,
            sudo,
            parameters_refused: false,
        }
    }

    pub fn allows(&self, op: Operation, path: &str, data: Option<&Map<String, Value>>) -> bool {
        self.check(op, path, data).allowed
    }

    /// Whether any rule grants something at or below `prefix` (or above it, by a glob):
    /// the check OpenBao applies before telling a client which engine serves a mount.
    pub fn any_access_under(&self, prefix: &str) -> bool {
        if self.root {
            return true;
        }
        let grants = |p: &Permissions| p.capabilities != 0 && p.capabilities & cap::DENY == 0;
        self.exact
            .iter()
            .any(|(k, p)| k.starts_with(prefix) && grants(p))
            || self.prefix.iter().any(|(k, p)| {
                (k.starts_with(prefix) || prefix.starts_with(k.as_str())) && grants(p)
            })
            || self.segment.iter().any(|(k, p)| {
                grants(p)
                    && k.trim_end_matches('*')
                        .split('/')
                        .zip(prefix.trim_end_matches('/').split('/'))
                        .all(|(pat, seg)| {
                            pat == "+" || pat == seg || seg.starts_with(pat) || pat.starts_with(seg)
                        })
            })
    }

    /// Capability names on `path`, sorted, as `sys/capabilities-self` reports them:
    /// `["root"]` for root, `["deny"]` when nothing is granted.
    pub fn capabilities(&self, path: &str) -> Vec<&'static str> {
        if self.root {
            return vec!["root"];
        }
        // OpenBao evaluates capabilities as a LIST, so `secret/` is governed by a
        // `secret` rule and `x-y/` by a `+` rule.
        let caps = self
            .matching(path, Some(Operation::List))
            .map(|p| p.capabilities)
            .unwrap_or(0);
        if caps == 0 || caps & cap::DENY != 0 {
            return vec!["deny"];
        }
        cap::NAMES
            .iter()
            .filter(|(b, _)| caps & b != 0)
            .map(|(_, n)| *n)
            .collect()
    }
}

fn parameters_allowed(perms: &Permissions, data: Option<&Map<String, Value>>) -> bool {
    let empty = Map::new();
    let data = data.unwrap_or(&empty);
    // OpenBao looks each required name up lower-cased, as the key is sent: a request
    // key `Foo` does not satisfy `required_parameters = ["foo"]`.
    if perms
        .required_parameters
        .iter()
        .any(|r| !data.contains_key(&r.to_lowercase()))
    {
        return false;
    }
    // No data: nothing for the allowed or denied lists to refuse.
    if data.is_empty() {
        return true;
    }
    if let Some(denied) = perms.denied_parameters.as_ref().filter(|d| !d.is_empty()) {
        if denied.contains_key("*") {
            return false;
        }
        for (k, v) in data {
            if let Some(values) = denied.get(&k.to_lowercase()) {
                if value_in_list(v, values) {
                    return false;
                }
            }
        }
    }
    let Some(allowed) = perms.allowed_parameters.as_ref().filter(|a| !a.is_empty()) else {
        return true;
    };
    let allow_all = allowed.contains_key("*");
    if allowed.len() == 1 && allow_all {
        return true;
    }
    for (k, v) in data {
        match allowed.get(&k.to_lowercase()) {
            None if !allow_all => return false,
            Some(values) if !value_in_list(v, values) => return false,
            _ => {}
        }
    }
    true
}

/// OpenBao's `valueInParameterList`: an empty list admits anything; otherwise the value
/// must be one of the list's entries, compared whole (an array is not checked element by
/// element). A string entry matches a string value by `*` prefix/suffix glob; any other
/// pair must be equal as Go's `reflect.DeepEqual` sees a JSON request against HCL policy
/// values, where a number never equals a number (a `json.Number` against an `int`) nor a
/// string.
fn value_in_list(v: &Value, list: &[Value]) -> bool {
    list.is_empty()
        || list.iter().any(|item| match (item, v) {
            (Value::String(pat), Value::String(s)) => glob_match(pat, s),
            (a, b) => go_deep_equal(a, b),
        })
}

fn go_deep_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| go_deep_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| go_deep_equal(p, q)))
        }
        _ => false,
    }
}

/// `strutil.GlobbedStringsMatch`: `*` only at the start and/or end.
fn glob_match(pattern: &str, s: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let (pre, rest) = match pattern.strip_prefix('*') {
        Some(r) => (true, r),
        None => (false, pattern),
    };
    let (suf, core) = match rest.strip_suffix('*') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    match (pre, suf) {
        (true, true) => s.contains(core),
        (true, false) => s.ends_with(core),
        (false, true) => s.starts_with(core),
        (false, false) => s == core,
    }
}

#[cfg(test)]
mod tests;
