//! The logical request and response: what the HTTP edge hands the core and gets back.

use serde_json::{Map, Value};
pub use strongroom_acl::Operation;

/// A request, already stripped of HTTP. `path` has no `/v1/` and no leading slash.
/// Its `Debug` shows neither the token nor the values of `data` (secrets on a write).
#[derive(Clone, Default)]
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
    /// `X-Vault-Wrap-TTL`, in seconds: the client asks for its response wrapped. This
    /// server wraps no response, so [`crate::Core::handle`] refuses a positive one.
    pub wrap_ttl: Option<i64>,
    /// The server's own secrets manager calling through [`crate::api::InProcess::system`]:
    /// root's authority in the root namespace, with no token. Only code in the core can
    /// make one; a request from the network always has `None`.
    pub system: Option<SystemCaller>,
}

/// Proof that a request comes from inside the server (see [`Request::system`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemCaller {
    _private: (),
}

impl SystemCaller {
    pub(crate) fn new() -> SystemCaller {
        SystemCaller { _private: () }
    }
}

/// `X-Vault-Inline-Auth-*` headers, decoded. Its `Debug` shows the parameters' names only.
#[derive(Clone, Default)]
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

/// What a response carries besides `auth` and `warnings`.
#[derive(Clone, Default)]
pub enum Body {
    /// No data: with no auth and no warnings either, a 204.
    #[default]
    Empty,
    /// The envelope's `data`.
    Data(Value),
    /// The envelope's `data` as JSON text, written verbatim (a KV read writes the stored
    /// secret's JSON around its metadata without building values). Zeroized.
    DataText(std::sync::Arc<strongroom_barrier::secret::SecretText>),
    /// This JSON as the whole body, no envelope (sys/health, sys/seal-status…).
    Raw(Value),
}

/// A response. An empty body, no auth and no warnings = 204. Its `Debug` shows the names
/// in its body, not their values (a KV read's data is the secret).
#[derive(Clone, Default)]
pub struct Response {
    pub body: Body,
    pub auth: Option<Auth>,
    pub warnings: Vec<String>,
    /// Overrides the status (e.g. 404 with a body for a deleted KV version).
    pub status: Option<u16>,
    /// Copy `data`'s keys to the top level as well (legacy sys/mounts, sys/policy).
    pub legacy_top_level: bool,
    pub lease_duration: i64,
    pub renewable: bool,
    /// Set when the response was wrapped: the envelope carries only this.
    pub wrap_info: Option<WrapInfo>,
}

/// The envelope's `wrap_info`: the single-use token that unwraps a wrapped response.
/// Its `Debug` does not show the token.
#[derive(Clone, serde::Serialize)]
pub struct WrapInfo {
    pub token: String,
    pub accessor: String,
    pub ttl: i64,
    pub creation_time: String,
    pub creation_path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub wrapped_accessor: String,
}

impl std::fmt::Debug for WrapInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrapInfo")
            .field("accessor", &self.accessor)
            .field("ttl", &self.ttl)
            .field("creation_path", &self.creation_path)
            .finish_non_exhaustive()
    }
}

impl Response {
    pub fn data(v: Value) -> Self {
        Response {
            body: Body::Data(v),
            ..Default::default()
        }
    }
    pub fn none() -> Self {
        Response::default()
    }
    pub fn raw(status: u16, v: Value) -> Self {
        Response {
            body: Body::Raw(v),
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
    pub fn data_text(text: std::sync::Arc<strongroom_barrier::secret::SecretText>) -> Self {
        Response {
            body: Body::DataText(text),
            ..Default::default()
        }
    }
    pub fn is_empty(&self) -> bool {
        matches!(self.body, Body::Empty)
            && self.auth.is_none()
            && self.warnings.is_empty()
            && self.wrap_info.is_none()
    }
    /// The envelope's data as a value, whether it was built as one or written as text.
    pub fn data_value(&self) -> Option<Value> {
        match &self.body {
            Body::Data(v) => Some(v.clone()),
            Body::DataText(t) => serde_json::from_str(t).ok(),
            Body::Empty | Body::Raw(_) => None,
        }
    }
    /// The envelope's data, taken out as a value (text is parsed); the body is left empty.
    pub fn take_data(&mut self) -> Option<Value> {
        match std::mem::take(&mut self.body) {
            Body::Data(v) => Some(v),
            Body::DataText(t) => serde_json::from_str(&t).ok(),
            other => {
                self.body = other;
                None
            }
        }
    }
}

/// The top-level keys of a JSON object (or its kind), for `Debug` without the values.
struct Keys<'a>(Option<&'a Value>);

impl std::fmt::Debug for Keys<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("None"),
            Some(Value::Object(m)) => f.debug_set().entries(m.keys()).finish(),
            Some(Value::Array(a)) => write!(f, "[{} items]", a.len()),
            Some(_) => f.write_str("[value]"),
        }
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("operation", &self.operation)
            .field("path", &self.path)
            .field("data", &self.data.keys().collect::<Vec<_>>())
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("namespace", &self.namespace)
            .field("is_write", &self.is_write)
            .field("client_ip", &self.client_ip)
            .field("inline_auth", &self.inline_auth)
            .field("wrap_ttl", &self.wrap_ttl)
            .finish()
    }
}

impl std::fmt::Debug for InlineAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineAuth")
            .field("path", &self.path)
            .field("data", &self.data.keys().collect::<Vec<_>>())
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Data(v) => f.debug_tuple("Data").field(&Keys(Some(v))).finish(),
            Body::DataText(_) => f.write_str("DataText(<redacted>)"),
            Body::Raw(v) => f.debug_tuple("Raw").field(&Keys(Some(v))).finish(),
        }
    }
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("body", &self.body)
            .field("auth", &self.auth)
            .field("warnings", &self.warnings)
            .field("status", &self.status)
            .field("legacy_top_level", &self.legacy_top_level)
            .field("lease_duration", &self.lease_duration)
            .field("renewable", &self.renewable)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn debug_shows_no_token_and_no_secret_values() {
        let mut req = Request::new(Operation::Update, "secret/data/app")
            .with_token("hvs.the-token")
            .with_data(json!({"data": {"password": "hunter2"}}));
        req.inline_auth = Some(InlineAuth {
            path: "auth/jwt/login".into(),
            data: json!({"jwt": "eyJ.the-jwt"}).as_object().unwrap().clone(),
            namespace: String::new(),
        });
        let resp = Response {
            body: Body::Data(json!({"data": {"password": "hunter2"}})),
            auth: Some(Auth {
                client_token: "hvs.issued".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let text = Response::data_text(std::sync::Arc::new(
            strongroom_barrier::secret::SecretText::new(
                r#"{"data":{"password":"s3cr3t"}}"#.to_owned(),
            ),
        ));
        let shown = format!("{req:?} {resp:?} {text:?}");
        for secret in [
            "hvs.the-token",
            "hunter2",
            "eyJ.the-jwt",
            "hvs.issued",
            "s3cr3t",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        for name in ["secret/data/app", "\"data\"", "\"jwt\"", "[redacted]"] {
            assert!(shown.contains(name), "{name} missing from {shown}");
        }
    }
}
