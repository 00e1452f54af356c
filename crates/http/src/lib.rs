//! The HTTP edge: OpenBao's `/v1` API in, [`strongroom_core::Request`] to the core,
//! the OpenBao envelope out.
//!
//! Served by hyper's HTTP/1.1 server directly ([`serve`]): [`App::call`] takes each
//! request apart once, without a router or extractors, and translates every `/v1/...`
//! request: method → operation (`LIST` and
//! `GET ?list=true` → list; PUT/POST → write, create-vs-update decided by the core),
//! JSON or form body plus query → data, `X-Vault-Token`/`Authorization: Bearer` → token,
//! `X-Vault-Namespace` → namespace. Errors map to statuses once, in [`error_response`].
//!
//! Architecture invariant: handlers hold no policy and touch no storage; they translate
//! and call [`strongroom_core::Core::handle`], nothing else.

#![forbid(unsafe_code)]

mod api;
pub mod path;
mod serve;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{json, Map, Value};
use strongroom_core::api::InProcess;
use strongroom_core::{Body, Core, CoreError, InlineAuth, Operation, Request, Response};
use strongroom_manager::Manager;

pub use serve::{serve, Listener};
pub use tls::{load_tls_config, TlsListener};

/// What every handler answers.
pub type HttpResponse = hyper::Response<Full<Bytes>>;

/// Limits applied at the edge. Each is a config key under `[limits]`; README's "Limits"
/// table gives them with the answer a client gets past each.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// Largest accepted request body, bytes (OpenBao's default is 32 MiB): 413 past it.
    pub max_request_size: usize,
    /// Requests taking longer (body upload included) are answered 503 and their work dropped.
    pub request_timeout: Duration,
    /// Largest request head (request line and headers), bytes: 431 past it.
    pub max_header_size: usize,
    /// A request head not complete within this is dropped with its connection, so
    /// half-sent requests cannot pile up (OpenBao's `http_read_header_timeout`, 10 s).
    pub read_header_timeout: Duration,
    /// A keep-alive connection idle this long is closed (OpenBao's `http_idle_timeout`).
    pub idle_timeout: Duration,
    /// Connections served at once per listener; past it, accepting pauses (new clients
    /// wait in the kernel's backlog) until one closes.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_request_size: 32 * 1024 * 1024,
            request_timeout: Duration::from_secs(90),
            max_header_size: 64 * 1024,
            read_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_connections: 4096,
        }
    }
}

/// What a listener serves: `/v1/...` to the core, plus any fixed JSON documents (the dev
/// server's OIDC discovery and JWKS). Cloning it is one reference count.
#[derive(Clone)]
pub struct App(Arc<AppState>);

struct AppState {
    core: Arc<Core>,
    /// The secrets manager behind `/api/...`; `None` serves only `/v1`.
    manager: Option<Arc<Manager<InProcess>>>,
    graphql: Option<strongroom_graphql::ApiSchema>,
    limits: HttpLimits,
    /// `(path, JSON body)` answered to GET outside `/v1/`.
    documents: Vec<(String, Bytes)>,
}

impl App {
    pub(crate) fn limits(&self) -> &HttpLimits {
        &self.0.limits
    }

    pub fn new(core: Arc<Core>, limits: HttpLimits) -> App {
        App(Arc::new(AppState {
            core,
            manager: None,
            graphql: None,
            limits,
            documents: Vec::new(),
        }))
    }

    /// Also answer GET `path` with `json`. For building the app, before it serves.
    /// Serve the secrets manager's endpoints (`POST /api/ci/secrets`).
    pub fn with_manager(mut self, manager: Arc<Manager<InProcess>>) -> App {
        let st = Arc::get_mut(&mut self.0).expect("the manager is set before serving");
        st.graphql = Some(strongroom_graphql::schema(manager.clone()));
        st.manager = Some(manager);
        self
    }

    pub fn with_document(mut self, path: &str, json: String) -> App {
        let st = Arc::get_mut(&mut self.0).expect("documents are added before serving");
        st.documents.push((path.to_owned(), Bytes::from(json)));
        self
    }

    /// Answer one request from `peer`.
    pub async fn call(&self, req: hyper::Request<Incoming>, peer: SocketAddr) -> HttpResponse {
        // A browser's request carries an `Origin`: the core says what CORS allows it.
        let Some(origin) = req
            .headers()
            .get(hyper::header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .filter(|o| !o.is_empty())
        else {
            return self.serve(req, peer).await;
        };
        let preflight = (req.method() == Method::OPTIONS).then(|| {
            req.headers()
                .get(hyper::header::ACCESS_CONTROL_REQUEST_METHOD)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        });
        use strongroom_core::cors::CorsAnswer;
        match self.0.core.cors_answer(origin, preflight).await {
            CorsAnswer::PassThrough => self.serve(req, peer).await,
            CorsAnswer::OriginNotAllowed => json_response(
                StatusCode::FORBIDDEN,
                &strongroom_core::cors::origin_not_allowed(),
            ),
            CorsAnswer::MethodNotAllowed => {
                let mut r = HttpResponse::new(Full::default());
                *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                r
            }
            CorsAnswer::Allow {
                origin,
                credentials,
                preflight,
            } => {
                let mut r = match &preflight {
                    // a preflight is answered 200 with an empty body, as OpenBao does
                    Some(_) => HttpResponse::new(Full::default()),
                    None => self.serve(req, peer).await,
                };
                let h = r.headers_mut();
                let value = |s: &str| HeaderValue::from_str(s).ok();
                if let Some(v) = value(&origin) {
                    h.insert(hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
                }
                h.insert(hyper::header::VARY, HeaderValue::from_static("Origin"));
                if credentials {
                    h.insert(
                        hyper::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                        HeaderValue::from_static("true"),
                    );
                }
                if let Some((methods, headers)) = preflight {
                    if let Some(v) = value(&methods) {
                        h.insert(hyper::header::ACCESS_CONTROL_ALLOW_METHODS, v);
                    }
                    if let Some(v) = value(&headers) {
                        h.insert(hyper::header::ACCESS_CONTROL_ALLOW_HEADERS, v);
                    }
                    h.insert(
                        hyper::header::ACCESS_CONTROL_MAX_AGE,
                        HeaderValue::from_static("300"),
                    );
                }
                r
            }
        }
    }

    async fn serve(&self, req: hyper::Request<Incoming>, peer: SocketAddr) -> HttpResponse {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path();
        // A request target starting `//` is read by Go as an authority and a path outside
        // `/v1/`: OpenBao answers it 404, and so do we, without cleaning it.
        if !path.starts_with("//") {
            if let Some(target) = path::redirect_target(path) {
                return redirect(target, parts.uri.query());
            }
        }
        if path == "/api/graphql" {
            let st = &*self.0;
            return match tokio::time::timeout(
                st.limits.request_timeout,
                api::graphql(st, &parts.method, &parts.headers, body),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => error_response(&CoreError::Unavailable("request timed out".into())),
            };
        }
        if path == "/api/ci/secrets" {
            let st = &*self.0;
            return match tokio::time::timeout(
                st.limits.request_timeout,
                api::ci_secrets(st, &parts.method, &parts.headers, body),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => error_response(&CoreError::Unavailable("request timed out".into())),
            };
        }
        if path.len() <= "/v1/".len() || !path.starts_with("/v1/") {
            return self.document(&parts.method, path);
        }
        let head = parts.method == Method::HEAD;
        let st = &*self.0;
        let mut resp = match tokio::time::timeout(
            st.limits.request_timeout,
            handle(st, peer, &parts.method, &parts.uri, &parts.headers, body),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => error_response(&CoreError::Unavailable("request timed out".into())),
        };
        if head {
            *resp.body_mut() = Full::default();
        }
        resp
    }

    /// A request outside `/v1/`: one of the fixed documents, else 404.
    fn document(&self, method: &Method, path: &str) -> HttpResponse {
        let Some((_, body)) = self.0.documents.iter().find(|(p, _)| p == path) else {
            return json_response(StatusCode::NOT_FOUND, &json!({ "errors": [] }));
        };
        match *method {
            Method::GET => with_json_headers(StatusCode::OK, body.clone()),
            Method::HEAD => with_json_headers(StatusCode::OK, Bytes::new()),
            _ => {
                let mut r = json_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &json!({ "errors": ["method not allowed"] }),
                );
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET,HEAD"));
                r
            }
        }
    }
}

/// `307` to the clean form of the request's path, the query kept, as OpenBao answers a path
/// that is not clean (see [`path`]). The method and body are kept by clients that follow.
fn redirect(mut target: String, query: Option<&str>) -> HttpResponse {
    if let Some(q) = query {
        target.push('?');
        target.push_str(q);
    }
    let mut r = HttpResponse::new(Full::default());
    *r.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    match HeaderValue::from_str(&target) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
            r
        }
        Err(_) => error_response(&CoreError::bad("invalid request path")),
    }
}

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> HttpResponse {
    let mut bytes = Vec::with_capacity(512);
    if serde_json::to_writer(&mut bytes, body).is_err() {
        bytes = b"{}".to_vec();
    }
    with_json_headers(status, Bytes::from(bytes))
}

fn with_json_headers(status: StatusCode, body: Bytes) -> HttpResponse {
    let mut r = HttpResponse::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Map a core error to OpenBao's status and body.
pub fn error_response(e: &CoreError) -> HttpResponse {
    if let CoreError::InlineAuthFailed(inner) = e {
        let mut r = error_response(inner);
        r.headers_mut().insert(
            "x-vault-inline-auth-failed",
            HeaderValue::from_static("true"),
        );
        return r;
    }
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let errors: Vec<String> = match e {
        CoreError::NotFound(m) if m.is_empty() => Vec::new(),
        CoreError::PermissionDenied | CoreError::InvalidToken(_) => {
            vec!["permission denied".into()]
        }
        CoreError::Internal(m) => {
            tracing::error!(error = %m, "internal error");
            vec!["internal error".into()]
        }
        other => vec![other.to_string()],
    };
    json_response(status, &json!({ "errors": errors }))
}

/// `X-Vault-Inline-Auth-*` → [`InlineAuth`]; `Ok(None)` when absent.
fn inline_auth(headers: &HeaderMap) -> Result<Option<InlineAuth>, CoreError> {
    use base64::Engine;
    let Some(path) = header_str(headers, "x-vault-inline-auth-path") else {
        if headers
            .keys()
            .any(|k| k.as_str().starts_with("x-vault-inline-auth-"))
        {
            return Err(CoreError::bad(
                "inline authentication headers given without X-Vault-Inline-Auth-Path",
            ));
        }
        return Ok(None);
    };
    match header_str(headers, "x-vault-inline-auth-operation").unwrap_or("update") {
        "" | "update" | "create" | "write" => {}
        other => {
            return Err(CoreError::bad(format!(
                "unsupported inline auth operation {other:?}: logins are updates"
            )))
        }
    }
    let mut data = Map::new();
    for (name, value) in headers {
        if !name.as_str().starts_with("x-vault-inline-auth-parameter-") {
            continue;
        }
        let raw = value
            .to_str()
            .map_err(|_| CoreError::bad("inline auth parameter is not ASCII"))?
            .trim();
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw.trim_end_matches('='))
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(raw))
            .map_err(|_| {
                CoreError::bad(format!(
                    "inline auth parameter {} is not base64url",
                    name.as_str()
                ))
            })?;
        let kv: Value = serde_json::from_slice(&decoded).map_err(|_| {
            CoreError::bad(format!(
                "inline auth parameter {} is not JSON {{\"key\", \"value\"}}",
                name.as_str()
            ))
        })?;
        let key = kv.get("key").and_then(Value::as_str).ok_or_else(|| {
            CoreError::bad(format!(
                "inline auth parameter {} lacks a key",
                name.as_str()
            ))
        })?;
        data.insert(
            key.to_owned(),
            kv.get("value").cloned().unwrap_or(Value::Null),
        );
    }
    Ok(Some(InlineAuth {
        path: path.to_owned(),
        data,
        namespace: header_str(headers, "x-vault-inline-auth-namespace")
            .unwrap_or("")
            .to_owned(),
    }))
}

fn operation(method: &Method, query: &Map<String, Value>) -> Option<(Operation, bool)> {
    let list = query
        .get("list")
        .and_then(|v| v.as_str())
        .is_some_and(|s| s == "true" || s == "1");
    match method.as_str() {
        "GET" | "HEAD" if list => Some((Operation::List, false)),
        "GET" | "HEAD" => Some((Operation::Read, false)),
        "LIST" => Some((Operation::List, false)),
        "POST" | "PUT" => Some((Operation::Update, true)),
        "PATCH" => Some((Operation::Patch, false)),
        "DELETE" => Some((Operation::Delete, false)),
        _ => None,
    }
}

fn parse_query(uri: &Uri) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(q) = uri.query() {
        for (k, v) in form_pairs(q.as_bytes()) {
            m.insert(k, Value::String(v));
        }
    }
    m
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, CoreError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    if is_form(content_type(headers), body) {
        return Ok(form_pairs(body)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(CoreError::bad(
            "invalid request body: expected a JSON object",
        )),
        Err(e) => Err(CoreError::bad(format!("failed to parse JSON input: {e}"))),
    }
}

/// The request's `Content-Type` as given (`""` if none or not text).
fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A content type's media type, without its parameters.
fn media_type(ctype: &str) -> &str {
    ctype.split(';').next().unwrap_or("").trim()
}

/// OpenBao takes a PATCH only as a JSON merge patch (RFC 7396), and says so: the answer to
/// any other body type (415), or to none (400).
fn refuse_non_merge_patch(headers: &HeaderMap) -> Option<HttpResponse> {
    let ctype = content_type(headers);
    let media = media_type(ctype);
    if media.is_empty() {
        return Some(error_response(&CoreError::bad(
            "PATCH requires Content-Type of application/merge-patch+json, none provided",
        )));
    }
    (!media.eq_ignore_ascii_case("application/merge-patch+json")).then(|| {
        json_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &json!({ "errors": [format!("PATCH requires Content-Type of application/merge-patch+json, provided {ctype}")] }),
        )
    })
}

/// Whether a body is a form, as OpenBao decides: its media type is
/// `application/x-www-form-urlencoded` (any case, parameters ignored) *and* it does not look
/// like JSON (its first byte that is not JSON whitespace is neither `{` nor `[`). So a JSON
/// body sent with the form type, as `curl -d '{...}'` sends it, is read as JSON.
fn is_form(ctype: &str, body: &[u8]) -> bool {
    if !media_type(ctype).eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return false;
    }
    !matches!(
        body.iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')),
        Some(b'{' | b'[')
    )
}

/// `X-Vault-Wrap-TTL` in seconds (a number or a duration such as `5m`), as OpenBao parses
/// it; the core decides what a request asking for wrapping gets.
fn wrap_ttl(headers: &HeaderMap) -> Result<Option<i64>, CoreError> {
    let Some(v) = headers.get("x-vault-wrap-ttl") else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| CoreError::bad("X-Vault-Wrap-TTL is not a duration"))?;
    let secs = strongroom_core::util::parse_duration_str(v).map_err(CoreError::bad)?;
    if secs < 0 {
        return Err(CoreError::bad("requested wrap ttl cannot be negative"));
    }
    Ok(Some(secs))
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

pub(crate) fn token_from(headers: &HeaderMap) -> Option<String> {
    // An empty `X-Vault-Token` gives way to `Authorization: Bearer`, as in OpenBao.
    if let Some(t) = header_str(headers, "x-vault-token").filter(|t| !t.trim().is_empty()) {
        return Some(t.trim().to_owned());
    }
    header_str(headers, "authorization")
        .and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned())
}

async fn handle(
    st: &AppState,
    peer: SocketAddr,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Incoming,
) -> HttpResponse {
    let query = parse_query(uri);
    let Some((op, is_write)) = operation(method, &query) else {
        return error_response(&CoreError::UnsupportedOperation);
    };
    let bytes = match Limited::new(body, st.limits.max_request_size)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({ "errors": [format!("request body too large: the limit is {} bytes", st.limits.max_request_size)] }),
            )
        }
        Err(_) => {
            return error_response(&CoreError::bad("failed to read the request body"));
        }
    };
    if op == Operation::Patch {
        if let Some(refused) = refuse_non_merge_patch(headers) {
            return refused;
        }
    }
    let mut data = match parse_body(headers, &bytes) {
        Ok(d) => d,
        Err(e) => return error_response(&e),
    };
    // Query parameters are data for reads, lists and deletes; a write's data is its body
    // alone, as in OpenBao (a `?b=2` on a kv write is not written).
    if !is_write && op != Operation::Patch {
        for (k, v) in query {
            if k != "list" || op != Operation::List {
                data.entry(k).or_insert(v);
            }
        }
    }
    let mut path = match path::decode(uri.path().strip_prefix("/v1/").unwrap_or("")) {
        Ok(p) => p.into_owned(),
        Err(e) => return error_response(&CoreError::bad(e)),
    };
    // A list names a directory: OpenBao adds the trailing slash before routing and the ACL
    // check, so `LIST secret/metadata` is allowed by a rule on `secret/metadata/*`.
    if op == Operation::List && !path.ends_with('/') {
        path.push('/');
    }
    let inline = match inline_auth(headers) {
        Ok(i) => i,
        Err(e) => return error_response(&CoreError::InlineAuthFailed(Box::new(e))),
    };
    let wrap_ttl = match wrap_ttl(headers) {
        Ok(t) => t,
        Err(e) => return error_response(&e),
    };
    let req = Request {
        inline_auth: inline,
        operation: Some(op),
        path,
        data,
        token: token_from(headers),
        namespace: header_str(headers, "x-vault-namespace")
            .unwrap_or("")
            .to_owned(),
        is_write,
        client_ip: Some(peer.ip()),
        wrap_ttl,
        system: None,
    };
    match st.core.handle(req).await {
        Ok(r) => success_response(r),
        Err(e) => error_response(&e),
    }
}

fn success_response(r: Response) -> HttpResponse {
    let status = StatusCode::from_u16(r.status.unwrap_or(200)).unwrap_or(StatusCode::OK);
    let data = match &r.body {
        Body::Raw(raw) => return json_response(status, raw),
        _ if r.is_empty() => {
            let mut resp = HttpResponse::new(Full::default());
            *resp.status_mut() = StatusCode::NO_CONTENT;
            return resp;
        }
        Body::Empty => Data::Value(None),
        Body::Data(v) => Data::Value(Some(v)),
        // Data given as text is written verbatim, once checked to be one JSON value.
        Body::DataText(text) => match serde_json::from_str(text) {
            Ok(raw) => Data::Text(raw),
            Err(_) => {
                return error_response(&CoreError::Internal(
                    "a response's data is not valid JSON".into(),
                ))
            }
        },
    };
    // Serialized straight from the response, without building the envelope as a map.
    let env = Envelope {
        auth: &r.auth,
        data,
        lease_duration: r.lease_duration,
        lease_id: "",
        renewable: r.renewable,
        request_id: &strongroom_core::util::request_id(),
        warnings: (!r.warnings.is_empty()).then_some(&r.warnings),
        wrap_info: &r.wrap_info,
    };
    if !r.legacy_top_level {
        return json_response(status, &env);
    }
    // Legacy endpoints also repeat `data`'s keys at the top level.
    let mut env = serde_json::to_value(&env).unwrap_or(Value::Null);
    if let (Some(Value::Object(d)), Some(obj)) = (&r.data_value(), env.as_object_mut()) {
        for (k, v) in d {
            obj.entry(k.clone()).or_insert(v.clone());
        }
    }
    json_response(status, &env)
}

/// The response envelope, fields in the order a map would serialize them.
#[derive(serde::Serialize)]
struct Envelope<'a> {
    auth: &'a Option<strongroom_core::Auth>,
    data: Data<'a>,
    lease_duration: i64,
    lease_id: &'a str,
    renewable: bool,
    request_id: &'a str,
    warnings: Option<&'a Vec<String>>,
    wrap_info: &'a Option<strongroom_core::WrapInfo>,
}

/// A response's data: built as a value, or JSON text written as it is.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Data<'a> {
    Value(Option<&'a Value>),
    Text(&'a serde_json::value::RawValue),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_and_query_decoding() {
        assert_eq!(percent_decode("a%2Fb+c"), "a/b c");
        assert_eq!(percent_decode("100%"), "100%");
        let p = form_pairs(b"a=1&b=x%20y&c");
        assert_eq!(
            p,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "".into())
            ]
        );
    }

    #[test]
    fn methods_map_to_operations() {
        let mut q = Map::new();
        assert_eq!(operation(&Method::GET, &q), Some((Operation::Read, false)));
        assert_eq!(
            operation(&Method::from_bytes(b"LIST").unwrap(), &q),
            Some((Operation::List, false))
        );
        assert_eq!(operation(&Method::PUT, &q), Some((Operation::Update, true)));
        q.insert("list".into(), json!("true"));
        assert_eq!(operation(&Method::GET, &q), Some((Operation::List, false)));
        assert_eq!(operation(&Method::OPTIONS, &q), None);
    }
}
