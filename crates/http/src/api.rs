//! The product's endpoints outside `/v1/`: `POST /api/ci/secrets`, a job's secrets in one
//! round trip. Handlers translate HTTP to the secrets manager and back; they decide nothing.

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use strongroom_core::CoreError;
use strongroom_manager::Error;

use crate::{header_str, json_response, AppState, HttpResponse};

fn error(status: StatusCode, msg: &str) -> HttpResponse {
    json_response(status, &json!({ "errors": [msg] }))
}

/// The status and client-facing message of a secrets manager error. Internal errors are
/// not described to the client: their text may name storage keys.
fn manager_error(e: &Error) -> HttpResponse {
    match e {
        Error::Unauthenticated(m) => {
            let mut r = error(StatusCode::UNAUTHORIZED, m);
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
        Error::Invalid(m) => error(StatusCode::BAD_REQUEST, m),
        Error::NotFound(m) => error(StatusCode::NOT_FOUND, m),
        Error::Conflict(m) => error(StatusCode::CONFLICT, m),
        Error::Forbidden => error(StatusCode::FORBIDDEN, &e.to_string()),
        Error::Core(CoreError::Sealed) => error(StatusCode::SERVICE_UNAVAILABLE, "Vault is sealed"),
        Error::Core(CoreError::Unavailable(_)) => {
            error(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable")
        }
        Error::Core(_) => {
            tracing::error!(error = %e, "secrets manager request failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// `POST /api/ci/secrets` with `Authorization: Bearer <CI ID token>` and an optional body
/// `{"names": [...]}`.
pub(crate) async fn ci_secrets(
    st: &AppState,
    method: &Method,
    headers: &HeaderMap,
    body: Incoming,
) -> HttpResponse {
    if *method != Method::POST {
        let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let Some(manager) = &st.manager else {
        return error(StatusCode::NOT_FOUND, "the secrets manager is not enabled");
    };
    let Some(jwt) = header_str(headers, "authorization")
        .and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return manager_error(&Error::Unauthenticated(
            "send the job's CI ID token as Authorization: Bearer <token>".into(),
        ));
    };
    // A job asks for names, not megabytes.
    let bytes = match Limited::new(body, 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large: the limit is 65536 bytes",
            )
        }
    };
    let names: Option<Vec<String>> = if bytes.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let parsed: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "the body must be JSON: {\"names\": [\"NAME\", ...]}",
                )
            }
        };
        match parsed.get("names") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) if a.len() <= 1_000 => {
                match a.iter().map(|v| v.as_str().map(str::to_owned)).collect() {
                    Some(n) => Some(n),
                    None => return error(StatusCode::BAD_REQUEST, "names must be strings"),
                }
            }
            Some(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "names must be a list of at most 1000 strings",
                )
            }
        }
    };
    match manager.ci_secrets(jwt, names.as_deref()).await {
        Ok(r) => {
            // Serialized as declared (`secrets` then `missing`; name, value, source,
            // version), not through a sorted map.
            let mut resp = json_response(StatusCode::OK, &r);
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => manager_error(&e),
    }
}

/// `/api/graphql`: GraphiQL on GET; queries on POST with `Authorization: Bearer <personal
/// access token or root token>` (or `X-Vault-Token`).
pub(crate) async fn graphql(
    st: &AppState,
    method: &Method,
    headers: &HeaderMap,
    body: Incoming,
) -> HttpResponse {
    let (Some(manager), Some(schema)) = (&st.manager, &st.graphql) else {
        return error(StatusCode::NOT_FOUND, "the secrets manager is not enabled");
    };
    if *method == Method::GET || *method == Method::HEAD {
        let mut r = HttpResponse::new(http_body_util::Full::from(strongroom_graphql::GRAPHIQL));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        return r;
    }
    if *method != Method::POST {
        let mut r = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "use POST (or GET for GraphiQL)",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET,HEAD,POST"));
        return r;
    }
    let token = crate::token_from(headers).unwrap_or_default();
    let actor = match manager.authenticate(&token).await {
        Ok(a) => a,
        Err(e) => return manager_error(&e),
    };
    let bytes = match Limited::new(body, 1024 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large: the limit is 1 MiB",
            )
        }
    };
    let request: async_graphql::Request = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "the body must be JSON: {\"query\": \"...\", \"variables\": {...}}",
            )
        }
    };
    let response = strongroom_graphql::execute(schema, request, actor).await;
    let mut r = json_response(StatusCode::OK, &response);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
