//! Policy text (HCL or JSON) → [`Policy`]. Both syntaxes become one JSON shape first:
//! `{"path": {"<pattern>": {"capabilities": [...], ...}}}`.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::{cap, PathRule, Permissions, Policy};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PolicyError {
    #[error("{0}")]
    Syntax(String),
    #[error("invalid capability {cap:?} on path {path:?}")]
    InvalidCapability { path: String, cap: String },
    #[error("invalid policy value {value:?} on path {path:?}: use deny, read, write or sudo")]
    InvalidShorthand { path: String, value: String },
    #[error("path {path:?}: {problem}")]
    InvalidPath { path: String, problem: String },
    #[error("unsupported key {key:?} in policy on path {path:?}")]
    UnknownKey { path: String, key: String },
}

pub(crate) fn parse(name: &str, text: &str) -> Result<Policy, PolicyError> {
    let root: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))?
    } else {
        crate::hcl1::to_json(text).map_err(PolicyError::Syntax)?
    };
    let mut rules = Vec::new();
    let Some(obj) = root.as_object() else {
        return Err(PolicyError::Syntax("policy must be an object".into()));
    };
    for key in obj.keys() {
        if key != "path" && key != "name" {
            return Err(PolicyError::Syntax(format!(
                "unknown top-level key {key:?}; expected path blocks"
            )));
        }
    }
    match obj.get("path") {
        None | Some(Value::Null) => {}
        Some(Value::Object(paths)) => {
            for (path, body) in paths {
                // HCL blocks repeated with one label arrive as an array of bodies.
                let bodies: Vec<&Value> = match body {
                    Value::Array(a) => a.iter().collect(),
                    b => vec![b],
                };
                for b in bodies {
                    rules.push(parse_rule(path, b)?);
                }
            }
        }
        Some(Value::Array(items)) => {
            // JSON form `{"path": [{"secret/*": {...}}]}`
            for item in items {
                let Some(m) = item.as_object() else {
                    return Err(PolicyError::Syntax("path entries must be objects".into()));
                };
                for (path, b) in m {
                    rules.push(parse_rule(path, b)?);
                }
            }
        }
        Some(_) => {
            return Err(PolicyError::Syntax(
                "\"path\" must be a map of path blocks".into(),
            ))
        }
    }
    Ok(Policy {
        name: name.to_owned(),
        rules,
    })
}

/// Whether a TTL in a policy (`"1h30m"`, `"90s"`, `"30"`, or a number of seconds) is above
/// zero; anything else is refused, as OpenBao refuses a policy it cannot parse.
fn positive_duration(path: &str, key: &str, v: &Value) -> Result<bool, PolicyError> {
    let invalid = || PolicyError::InvalidPath {
        path: path.into(),
        problem: format!("{key} must be a duration such as \"30s\" or \"1h\""),
    };
    match v {
        Value::Number(_) | Value::String(_) => crate::duration::parse_duration(v)
            .map(|secs| secs > 0)
            .map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

fn parse_params(path: &str, v: &Value) -> Result<HashMap<String, Vec<Value>>, PolicyError> {
    // HCL may give a list of maps for a block-ish attribute; accept both.
    let mut out = HashMap::new();
    let maps: Vec<&Map<String, Value>> = match v {
        Value::Object(m) => vec![m],
        Value::Array(a) => a.iter().filter_map(Value::as_object).collect(),
        _ => {
            return Err(PolicyError::InvalidPath {
                path: path.into(),
                problem: "parameter constraints must be a map".into(),
            })
        }
    };
    for m in maps {
        for (k, vals) in m {
            let list = match vals {
                Value::Array(a) => a.clone(),
                Value::Null => Vec::new(),
                other => vec![other.clone()],
            };
            out.insert(k.to_lowercase(), list);
        }
    }
    Ok(out)
}

fn parse_rule(path: &str, body: &Value) -> Result<PathRule, PolicyError> {
    let Some(m) = body.as_object() else {
        return Err(PolicyError::InvalidPath {
            path: path.into(),
            problem: "path body must be an object".into(),
        });
    };
    let trimmed = path.trim_start_matches('/');
    if trimmed.contains("+*") {
        return Err(PolicyError::InvalidPath {
            path: path.into(),
            problem: "invalid use of wildcards ('+*' is forbidden)".into(),
        });
    }
    // OpenBao fills `{{identity.…}}` from the caller's identity entity; this server has no
    // entities, and matching the braces literally would put every caller in one folder.
    if trimmed.contains("{{") {
        return Err(PolicyError::InvalidPath {
            path: path.into(),
            problem: "templated policy paths ({{...}}) are not supported: this server has no identity entities to fill them from".into(),
        });
    }
    if let Some(i) = trimmed.find('*') {
        if i != trimmed.len() - 1 {
            return Err(PolicyError::InvalidPath {
                path: path.into(),
                problem: "'*' is only allowed at the end of a path".into(),
            });
        }
    }
    let mut perms = Permissions::default();
    for (key, v) in m {
        match key.as_str() {
            "capabilities" => {
                let caps = v.as_array().ok_or_else(|| PolicyError::InvalidPath {
                    path: path.into(),
                    problem: "capabilities must be a list".into(),
                })?;
                for c in caps {
                    // Exact names only: OpenBao refuses `READ`.
                    let name = c.as_str().unwrap_or_default();
                    let bit =
                        cap::from_name(name).ok_or_else(|| PolicyError::InvalidCapability {
                            path: path.into(),
                            cap: c
                                .as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| c.to_string()),
                        })?;
                    perms.capabilities |= bit;
                }
            }
            "policy" => {
                let s = v.as_str().unwrap_or_default();
                perms.capabilities |= match s {
                    "deny" => cap::DENY,
                    "read" => cap::READ | cap::LIST,
                    "write" => cap::READ | cap::LIST | cap::CREATE | cap::UPDATE | cap::DELETE,
                    "sudo" => {
                        cap::READ | cap::LIST | cap::CREATE | cap::UPDATE | cap::DELETE | cap::SUDO
                    }
                    other => {
                        return Err(PolicyError::InvalidShorthand {
                            path: path.into(),
                            value: other.into(),
                        })
                    }
                };
            }
            "allowed_parameters" => perms.allowed_parameters = Some(parse_params(path, v)?),
            "denied_parameters" => perms.denied_parameters = Some(parse_params(path, v)?),
            "required_parameters" => {
                perms.required_parameters = v
                    .as_array()
                    .ok_or_else(|| PolicyError::InvalidPath {
                        path: path.into(),
                        problem: "required_parameters must be a list".into(),
                    })?
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            }
            "min_wrapping_ttl" => perms.requires_wrapping = positive_duration(path, key, v)?,
            // Accepted for compatibility. No response is wrapped here, so a maximum wrapping
            // TTL is never exceeded; the others are OpenBao Enterprise's and OpenBao ignores
            // them too.
            "max_wrapping_ttl"
            | "comment"
            | "control_group"
            | "mfa_methods"
            | "pagination_limit"
            | "list_scan_response_keys_filter_path"
            | "list_scan_response_relative_paths" => {}
            other => {
                return Err(PolicyError::UnknownKey {
                    path: path.into(),
                    key: other.into(),
                })
            }
        }
    }
    if perms.capabilities & cap::DENY != 0 {
        perms = Permissions {
            capabilities: cap::DENY,
            ..Default::default()
        };
    }
    Ok(PathRule {
        path: trimmed.to_owned(),
        permissions: perms,
    })
}
