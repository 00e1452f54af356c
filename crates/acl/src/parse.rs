//! Policy text (HCL or JSON) → [`Policy`]. Both syntaxes become one JSON shape first:
//! `{"path": {"<pattern>": {"capabilities": [...], ...}}}`.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::{cap, PathRule, Permissions, Policy};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PolicyError {
    #[error("failed to parse policy: {0}")]
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
        hcl_to_json(text)?
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

fn hcl_to_json(text: &str) -> Result<Value, PolicyError> {
    let body: hcl::Body = hcl::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))?;
    let mut paths: Map<String, Value> = Map::new();
    let mut root = Map::new();
    for structure in body.into_inner() {
        match structure {
            hcl::Structure::Block(block) => {
                if block.identifier.as_str() != "path" {
                    return Err(PolicyError::Syntax(format!(
                        "unknown block {:?}; expected path",
                        block.identifier.as_str()
                    )));
                }
                let [label] = block.labels.as_slice() else {
                    return Err(PolicyError::Syntax(
                        "a path block takes exactly one label".into(),
                    ));
                };
                let path = label.as_str().to_owned();
                let mut body = Map::new();
                for s in block.body.into_inner() {
                    match s {
                        hcl::Structure::Attribute(a) => {
                            let v: hcl::Value = a.expr.into();
                            let json = serde_json::to_value(&v)
                                .map_err(|e| PolicyError::Syntax(e.to_string()))?;
                            body.insert(a.key.as_str().to_owned(), json);
                        }
                        hcl::Structure::Block(b) => {
                            return Err(PolicyError::Syntax(format!(
                                "unexpected block {:?} in path {path:?}",
                                b.identifier.as_str()
                            )))
                        }
                    }
                }
                match paths.get_mut(&path) {
                    Some(Value::Array(a)) => a.push(Value::Object(body)),
                    Some(existing) => {
                        let prev = existing.take();
                        *existing = Value::Array(vec![prev, Value::Object(body)]);
                    }
                    None => {
                        paths.insert(path, Value::Object(body));
                    }
                }
            }
            hcl::Structure::Attribute(a) => {
                if a.key.as_str() != "name" {
                    return Err(PolicyError::Syntax(format!(
                        "unknown attribute {:?}",
                        a.key.as_str()
                    )));
                }
                root.insert("name".into(), Value::Null);
            }
        }
    }
    root.insert("path".into(), Value::Object(paths));
    Ok(Value::Object(root))
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
                    let name = c.as_str().unwrap_or_default().to_lowercase();
                    let bit =
                        cap::from_name(&name).ok_or_else(|| PolicyError::InvalidCapability {
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
