//! Token roles (`auth/token/roles/<name>`) and the policies a token made through one gets
//! (`auth/token/create/<name>`), with OpenBao's semantics: a role with allowed or
//! disallowed policies sets the token's policies apart from its parent's (the requested
//! ones must be a subset of the allowed, none may be disallowed, globs included); a role
//! decides orphan, renewability, token type, bound CIDRs, period, explicit max TTL and a
//! cap on uses, and names itself in the token's path (`auth/token/create/<role>[/suffix]`)
//! so `sys/leases/revoke-prefix` can revoke what it issued.
//!
//! Roles are stored per namespace, behind the barrier, at `token-roles/<name>`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{CoreError, Result};
use crate::namespace::NsState;
use crate::route::{field, Field, FieldType, Fields};
use crate::util;

const PREFIX: &str = "token-roles/";

/// A token role as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct TokenRole {
    pub name: String,
    #[serde(default)]
    pub allowed_policies: Vec<String>,
    #[serde(default)]
    pub disallowed_policies: Vec<String>,
    #[serde(default)]
    pub allowed_policies_glob: Vec<String>,
    #[serde(default)]
    pub disallowed_policies_glob: Vec<String>,
    #[serde(default)]
    pub orphan: bool,
    pub renewable: bool,
    #[serde(default)]
    pub path_suffix: String,
    #[serde(default)]
    pub allowed_entity_aliases: Vec<String>,
    #[serde(default)]
    pub token_period: i64,
    #[serde(default)]
    pub token_explicit_max_ttl: i64,
    /// `service`, `batch`, `default-service` (the default), `default-batch`.
    pub token_type: String,
    #[serde(default)]
    pub token_bound_cidrs: Vec<String>,
    #[serde(default)]
    pub token_no_default_policy: bool,
    #[serde(default)]
    pub token_num_uses: i64,
}

impl TokenRole {
    fn new(name: &str) -> TokenRole {
        TokenRole {
            name: name.to_owned(),
            allowed_policies: Vec::new(),
            disallowed_policies: Vec::new(),
            allowed_policies_glob: Vec::new(),
            disallowed_policies_glob: Vec::new(),
            orphan: false,
            renewable: true,
            path_suffix: String::new(),
            allowed_entity_aliases: Vec::new(),
            token_period: 0,
            token_explicit_max_ttl: 0,
            token_type: "default-service".into(),
            token_bound_cidrs: Vec::new(),
            token_no_default_policy: false,
            token_num_uses: 0,
        }
    }

    fn json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "allowed_policies": self.allowed_policies,
            "disallowed_policies": self.disallowed_policies,
            "allowed_policies_glob": self.allowed_policies_glob,
            "disallowed_policies_glob": self.disallowed_policies_glob,
            "orphan": self.orphan,
            "renewable": self.renewable,
            "path_suffix": self.path_suffix,
            "allowed_entity_aliases": self.allowed_entity_aliases,
            "period": self.token_period,
            "token_period": self.token_period,
            "explicit_max_ttl": self.token_explicit_max_ttl,
            "token_explicit_max_ttl": self.token_explicit_max_ttl,
            "token_type": self.token_type,
            "token_no_default_policy": self.token_no_default_policy,
            "token_num_uses": self.token_num_uses,
        });
        if !self.token_bound_cidrs.is_empty() {
            v["token_bound_cidrs"] = json!(self.token_bound_cidrs);
        }
        v
    }

    /// The token type a create through this role gets, given the one requested.
    pub fn token_type_for(&self, requested: Option<&str>) -> Result<String> {
        let requested = requested.filter(|t| !t.is_empty());
        Ok(match self.token_type.as_str() {
            "default" | "default-service" => requested.unwrap_or("service").to_owned(),
            "default-batch" => requested.unwrap_or("batch").to_owned(),
            "service" | "batch" => self.token_type.clone(),
            other => {
                return Err(CoreError::bad(format!(
                    "role being used for token creation contains invalid token type {other:?}"
                )))
            }
        })
    }

    /// Whether this role sets the token's policies itself (any allowed or disallowed list).
    pub fn governs_policies(&self) -> bool {
        !(self.allowed_policies.is_empty()
            && self.disallowed_policies.is_empty()
            && self.allowed_policies_glob.is_empty()
            && self.disallowed_policies_glob.is_empty())
    }

    /// The token's policies when [`TokenRole::governs_policies`]: OpenBao's
    /// `resolveTokenPolicies` for a role (before `no_default_policy` strips `default`).
    pub fn resolve_policies(
        &self,
        requested: &[String],
        parent: &[String],
        no_default_policy: bool,
    ) -> Result<Vec<String>> {
        let add_default = !no_default_policy
            && !self.token_no_default_policy
            && !self.disallowed_policies.iter().any(|p| p == "default")
            && !glob_contains(&self.disallowed_policies_glob, "default");
        let mut finals = if requested.is_empty() {
            Vec::new()
        } else {
            sanitize(requested, add_default)
        };
        if !self.allowed_policies.is_empty() || !self.allowed_policies_glob.is_empty() {
            let allowed = sanitize(&self.allowed_policies, add_default);
            if finals.is_empty() {
                finals = allowed;
            } else {
                let globs = sanitize(&self.allowed_policies_glob, false);
                for p in &finals {
                    if !allowed.contains(p) && !glob_contains(&globs, p) {
                        return Err(CoreError::bad(format!(
                            "token policies ({finals:?}) must be subset of the role's allowed policies ({allowed:?}) or glob policies ({globs:?})"
                        )));
                    }
                }
            }
        } else if finals.is_empty() {
            finals = sanitize(parent, add_default);
        }
        for p in &finals {
            if self.disallowed_policies.iter().any(|d| d == p)
                || glob_contains(&self.disallowed_policies_glob, p)
            {
                return Err(CoreError::bad(format!(
                    "token policy {p:?} is disallowed by this role"
                )));
            }
        }
        Ok(finals)
    }
}

/// OpenBao's `policyutil.SanitizePolicies`: trimmed, lower-cased, deduplicated, sorted,
/// `default` added when asked (and never next to `root`).
pub(crate) fn sanitize(policies: &[String], add_default: bool) -> Vec<String> {
    let mut out: Vec<String> = policies
        .iter()
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    if out.iter().any(|p| p == "root") {
        out.retain(|p| p == "root");
    } else if add_default && !out.iter().any(|p| p == "default") {
        out.push("default".into());
    }
    out.sort();
    out.dedup();
    out
}

/// OpenBao's (unanchored) `\w[\w-.]+\w` test of a path suffix: somewhere in it, a word
/// character, one or more of word characters, `-` and `.`, and a word character.
fn has_suffix_word(s: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let chars: Vec<char> = s.chars().collect();
    chars.iter().enumerate().any(|(i, &c)| {
        word(c) && {
            // the longest run after it of [\w-.], ending on a word character
            let run: Vec<char> = chars
                .iter()
                .skip(i + 1)
                .take_while(|&&d| word(d) || d == '-' || d == '.')
                .copied()
                .collect();
            run.len() >= 2 && run.iter().skip(1).any(|&d| word(d))
        }
    })
}

fn glob_contains(globs: &[String], p: &str) -> bool {
    globs.iter().any(|g| strongroom_jwt::glob_match(g, p))
}

/// The fields of `auth/token/roles/<name>`.
pub(crate) static ROLE_FIELDS: &[Field] = &[
    field("allowed_policies", FieldType::StrList),
    field("disallowed_policies", FieldType::StrList),
    field("allowed_policies_glob", FieldType::StrList),
    field("disallowed_policies_glob", FieldType::StrList),
    field("orphan", FieldType::Bool),
    field("renewable", FieldType::Bool),
    field("path_suffix", FieldType::Str),
    field("allowed_entity_aliases", FieldType::StrList),
    field("period", FieldType::Duration),
    field("token_period", FieldType::Duration),
    field("explicit_max_ttl", FieldType::Duration),
    field("token_explicit_max_ttl", FieldType::Duration),
    field("token_type", FieldType::Str),
    field("bound_cidrs", FieldType::StrList),
    field("token_bound_cidrs", FieldType::StrList),
    field("token_no_default_policy", FieldType::Bool),
    field("token_num_uses", FieldType::Int),
];

fn valid_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name.chars().any(char::is_control) {
        return Err(CoreError::bad(format!("invalid role name {name:?}")));
    }
    Ok(())
}

/// A stored role, if any.
pub(crate) async fn read(ns: &NsState, name: &str) -> Result<Option<TokenRole>> {
    valid_name(name)?;
    ns.view
        .get_json(&format!("{PREFIX}{}", name.to_lowercase()))
        .await
}

/// `GET auth/token/roles/<name>`.
pub(crate) async fn read_json(ns: &NsState, name: &str) -> Result<Value> {
    read(ns, name)
        .await?
        .map(|r| r.json())
        .ok_or_else(|| CoreError::NotFound(String::new()))
}

/// `LIST auth/token/roles`: 404 when there is none, as OpenBao answers.
pub(crate) async fn list(ns: &NsState) -> Result<Value> {
    let keys = ns.view.list(PREFIX, None, None).await?;
    if keys.is_empty() {
        return Err(CoreError::NotFound(String::new()));
    }
    Ok(json!({ "keys": keys }))
}

/// `DELETE auth/token/roles/<name>`.
pub(crate) async fn delete(ns: &NsState, name: &str) -> Result<()> {
    valid_name(name)?;
    ns.view
        .delete(&format!("{PREFIX}{}", name.to_lowercase()))
        .await
}

/// `POST auth/token/roles/<name>`: creates it, or changes the fields given.
pub(crate) async fn write(ns: &NsState, name: &str, f: &Fields<'_>) -> Result<()> {
    valid_name(name)?;
    let name = name.to_lowercase();
    let mut role = read(ns, &name)
        .await?
        .unwrap_or_else(|| TokenRole::new(&name));
    let list = |k: &str| -> Option<Vec<String>> {
        f.str_list(k).map(|l| {
            let mut l: Vec<String> = l
                .into_iter()
                .map(|p| p.trim().to_lowercase())
                .filter(|p| !p.is_empty())
                .collect();
            l.sort();
            l.dedup();
            l
        })
    };
    if let Some(l) = list("allowed_policies") {
        role.allowed_policies = l;
    }
    if let Some(l) = list("disallowed_policies") {
        role.disallowed_policies = l;
    }
    if let Some(l) = list("allowed_policies_glob") {
        role.allowed_policies_glob = l;
    }
    if let Some(l) = list("disallowed_policies_glob") {
        role.disallowed_policies_glob = l;
    }
    if let Some(b) = f.bool("orphan") {
        role.orphan = b;
    }
    if let Some(b) = f.bool("renewable") {
        role.renewable = b;
    }
    if let Some(s) = f.str("path_suffix") {
        if s.contains("..") {
            return Err(CoreError::bad(
                "error validating path suffix: '..' is not allowed",
            ));
        }
        if !s.is_empty() && !has_suffix_word(&s) {
            return Err(CoreError::bad(
                "given role path suffix contains invalid characters; must match \\w[\\w-.]+\\w",
            ));
        }
        role.path_suffix = s.trim_matches('/').to_owned();
    }
    if let Some(l) = f.str_list("allowed_entity_aliases") {
        role.allowed_entity_aliases = l;
    }
    let seconds = |k: &str| -> Result<Option<i64>> {
        match f.duration(k) {
            Some(d) if d < 0 => Err(CoreError::bad(format!("{k} must not be negative"))),
            other => Ok(other),
        }
    };
    if let Some(p) = seconds("token_period")?.or(seconds("period")?) {
        role.token_period = p;
    }
    if let Some(m) = seconds("token_explicit_max_ttl")?.or(seconds("explicit_max_ttl")?) {
        role.token_explicit_max_ttl = m;
    }
    if let Some(t) = f.str("token_type") {
        let t = if t.is_empty() {
            "default-service".into()
        } else {
            t.into_owned()
        };
        if ![
            "service",
            "batch",
            "default",
            "default-service",
            "default-batch",
        ]
        .contains(&t.as_str())
        {
            return Err(CoreError::bad(format!("invalid 'token_type' value {t:?}")));
        }
        role.token_type = if t == "default" {
            "default-service".into()
        } else {
            t
        };
    }
    if let Some(c) = f
        .str_list("token_bound_cidrs")
        .or_else(|| f.str_list("bound_cidrs"))
    {
        for cidr in &c {
            if util::parse_cidr(cidr).is_none() {
                return Err(CoreError::bad(format!(
                    "invalid CIDR {cidr:?} in token_bound_cidrs"
                )));
            }
        }
        role.token_bound_cidrs = c;
    }
    if let Some(b) = f.bool("token_no_default_policy") {
        role.token_no_default_policy = b;
    }
    if let Some(n) = f.int("token_num_uses") {
        if n < 0 {
            return Err(CoreError::bad("token_num_uses cannot be negative"));
        }
        role.token_num_uses = n;
    }
    if role.token_type == "batch" {
        let refuse = |what: &str| {
            Err(CoreError::bad(format!(
                "'token_type' cannot be 'batch' when role is set to generate {what}"
            )))
        };
        if !role.orphan {
            return refuse("non-orphan tokens");
        }
        if role.token_period != 0 {
            return refuse("periodic tokens");
        }
        if role.renewable {
            return refuse("renewable tokens");
        }
        if role.token_explicit_max_ttl != 0 {
            return refuse("tokens with an explicit max TTL");
        }
    }
    ns.view.put_json(&format!("{PREFIX}{name}"), &role).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role() -> TokenRole {
        TokenRole::new("r")
    }

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn allowed_policies_bound_what_a_token_gets() {
        let mut r = role();
        r.allowed_policies = v(&["a", "b"]);
        // none asked: the allowed set, with default
        assert_eq!(
            r.resolve_policies(&[], &v(&["x"]), false).unwrap(),
            v(&["a", "b", "default"])
        );
        assert_eq!(
            r.resolve_policies(&v(&["A"]), &[], false).unwrap(),
            v(&["a", "default"])
        );
        assert!(r.resolve_policies(&v(&["c"]), &[], false).is_err());
        r.allowed_policies_glob = v(&["team-*"]);
        assert_eq!(
            r.resolve_policies(&v(&["team-x"]), &[], true).unwrap(),
            v(&["team-x"]),
            "no_default_policy: default is not added"
        );
    }

    #[test]
    fn disallowed_policies_refuse_and_parent_policies_fill_in() {
        let mut r = role();
        r.disallowed_policies = v(&["admin"]);
        assert_eq!(
            r.resolve_policies(&[], &v(&["dev"]), false).unwrap(),
            v(&["default", "dev"])
        );
        assert!(r.resolve_policies(&v(&["admin"]), &[], false).is_err());
        r.disallowed_policies = v(&["default"]);
        assert_eq!(
            r.resolve_policies(&v(&["dev"]), &[], false).unwrap(),
            v(&["dev"])
        );
        r.disallowed_policies_glob = v(&["sec*"]);
        assert!(r.resolve_policies(&v(&["secrets"]), &[], false).is_err());
    }

    #[test]
    fn token_types() {
        let mut r = role();
        assert_eq!(r.token_type_for(None).unwrap(), "service");
        assert_eq!(r.token_type_for(Some("batch")).unwrap(), "batch");
        r.token_type = "default-batch".into();
        assert_eq!(r.token_type_for(None).unwrap(), "batch");
        r.token_type = "service".into();
        assert_eq!(r.token_type_for(Some("batch")).unwrap(), "service");
    }
}
