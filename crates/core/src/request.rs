//! The logical request and response: what the HTTP edge hands the core and gets back.

use serde_json::{Map, Value};
pub use strongroom_acl::Operation;

/// A request, already stripped of HTTP. `path` has no `/v1/` and no leading slash.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub operation: Option<Operation>,
    pub path: String,
    pub data: Map<String, Value>,
    /// The client token (`X-Vault-Token` or `Authorization: Bearer`). Never logged.
    pub token: Option<String>,
    /// `X-Vault-Namespace`, as given (empty or `root` = root).
    pub namespace: String,
    /// The HTTP method was PUT/POST (create-vs-update is decided by existence).
    pub is_write: bool,
    pub client_ip: Option<std::net::IpAddr>,
    /// OpenBao 2.4+ inline authentication: log in for this request only.
    pub inline_auth: Option<InlineAuth>,
}

/// `X-Vault-Inline-Auth-*` headers, decoded.
#[derive(Debug, Clone, Default)]
pub struct InlineAuth {
    /// The login path, e.g. `auth/jwt/login` or `<ns>/auth/pipeline_jwt/login`.
    pub path: String,
    /// Login parameters (`role`, `jwt`, …). Never logged.
    pub data: Map<String, Value>,
    /// Namespace of the login, relative to the request's.
    pub namespace: String,
}

impl Request {
    pub fn new(op: Operation, path: impl Into<String>) -> Self {
        Request {
            operation: Some(op),
            path: path.into(),
            ..Default::default()
        }
    }
    pub fn with_token(mut self, t: impl Into<String>) -> Self {
        self.token = Some(t.into());
        self
    }
    pub fn with_data(mut self, d: Value) -> Self {
        if let Value::Object(m) = d {
            self.data = m;
        }
        self
    }
    pub fn op(&self) -> Operation {
        self.operation.unwrap_or(Operation::Read)
    }
}

/// The `auth` block of a login or token-creation response. Typed rather than a JSON value:
/// built and serialized once per login without a map of owned keys, and its `Debug` never
/// shows the token. Fields in OpenBao's (alphabetical) order.
#[derive(Clone, Default, serde::Serialize)]
pub struct Auth {
    pub accessor: String,
    pub client_token: String,
    pub entity_id: String,
    /// Always null: no identity-derived policies.
    pub identity_policies: Option<()>,
    pub lease_duration: i64,
    /// Null when the token has no metadata.
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
    pub mfa_requirement: Option<()>,
    pub num_uses: i64,
    pub orphan: bool,
    pub policies: Vec<String>,
    pub renewable: bool,
    pub token_policies: Vec<String>,
    pub token_type: &'static str,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("accessor", &self.accessor)
            .field("client_token", &"[redacted]")
            .field("policies", &self.policies)
            .field("token_type", &self.token_type)
            .finish_non_exhaustive()
    }
}

/// A response. `None` data and no auth and no warnings = 204.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub data: Option<Value>,
    pub auth: Option<Auth>,
    pub warnings: Vec<String>,
    /// Overrides the status (e.g. 404 with a body for a deleted KV version).
    pub status: Option<u16>,
    /// Answer with this JSON as the whole body, no envelope (sys/health, sys/seal-status…).
    pub raw: Option<Value>,
    /// Copy `data`'s keys to the top level as well (legacy sys/mounts, sys/policy).
    pub legacy_top_level: bool,
    pub lease_duration: i64,
    pub renewable: bool,
}

impl Response {
    pub fn data(v: Value) -> Self {
        Response {
            data: Some(v),
            ..Default::default()
        }
    }
    pub fn none() -> Self {
        Response::default()
    }
    pub fn raw(status: u16, v: Value) -> Self {
        Response {
            raw: Some(v),
            status: Some(status),
            ..Default::default()
        }
    }
    pub fn list(keys: Vec<String>) -> Self {
        Response::data(serde_json::json!({ "keys": keys }))
    }
    pub fn with_warning(mut self, w: impl Into<String>) -> Self {
        self.warnings.push(w.into());
        self
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_none() && self.auth.is_none() && self.warnings.is_empty() && self.raw.is_none()
    }
}
