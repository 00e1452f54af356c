//! Cross-origin requests (`sys/config/cors`), as OpenBao answers them: off by default;
//! when on, a request with an `Origin` header from an origin not allowed is refused (403),
//! a preflight (`OPTIONS`) for a method the API does not have is a 405, and an allowed
//! origin gets `Access-Control-Allow-Origin` (and, on a preflight, the methods and
//! headers it may use). The configuration is stored behind the barrier at `core/cors`,
//! so every node sees a change; the edge asks [`Core::cors_answer`] and applies it.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{CoreError, Result};
use crate::route::Fields;
use crate::{Core, Response};

const KEY: &str = "core/cors";

/// The headers every allowed origin may send (OpenBao's `StdAllowedHeaders`).
const STD_HEADERS: &[&str] = &[
    "Content-Type",
    "Authorization",
    "X-Vault-Token",
    "X-Vault-MFA",
    "X-Vault-No-Request-Forwarding",
    "X-Vault-Wrap-Format",
    "X-Vault-Wrap-TTL",
    "X-Requested-With",
    "X-Vault-AWS-IAM-Server-ID",
    "X-Vault-Policy-Override",
];

/// The methods a preflight may ask for.
pub const METHODS: &[&str] = &["DELETE", "GET", "OPTIONS", "POST", "PUT", "LIST", "SCAN"];

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct CorsConfig {
    allowed_origins: Vec<String>,
    allowed_headers: Vec<String>,
    #[serde(default)]
    allow_credentials: bool,
}

impl CorsConfig {
    fn allows(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == "*" || o == origin)
    }
}

/// What the edge does with a request that carries an `Origin` header.
#[derive(Debug, PartialEq, Eq)]
pub enum CorsAnswer {
    /// CORS is off (or the server sealed): serve it as if no origin were given.
    PassThrough,
    /// 403 `origin not allowed`.
    OriginNotAllowed,
    /// 405: a preflight for a method the API does not have.
    MethodNotAllowed,
    /// Serve it (or, for a preflight, answer 204) with these headers.
    Allow {
        origin: String,
        credentials: bool,
        /// For a preflight: the allowed methods and headers, comma-separated.
        preflight: Option<(String, String)>,
    },
}

impl Core {
    async fn cors_config(&self) -> Result<Option<CorsConfig>> {
        if self.active().is_err() {
            return Ok(None);
        }
        match self.barrier.get(KEY).await? {
            Some(b) => Ok(serde_json::from_slice(&b).ok()),
            None => Ok(None),
        }
    }

    /// How to answer a request from `origin`; `preflight` is the method an `OPTIONS`
    /// request asks about (`Access-Control-Request-Method`), `None` for any other request.
    pub async fn cors_answer(&self, origin: &str, preflight: Option<&str>) -> CorsAnswer {
        let Ok(Some(cfg)) = self.cors_config().await else {
            return CorsAnswer::PassThrough;
        };
        if !cfg.allows(origin) {
            return CorsAnswer::OriginNotAllowed;
        }
        if let Some(m) = preflight {
            if !METHODS.contains(&m) {
                return CorsAnswer::MethodNotAllowed;
            }
        }
        CorsAnswer::Allow {
            origin: origin.to_owned(),
            credentials: cfg.allow_credentials,
            preflight: preflight.map(|_| (METHODS.join(","), cfg.allowed_headers.join(","))),
        }
    }
}

/// `GET sys/config/cors`.
pub(crate) async fn read(core: &Core) -> Result<Response> {
    Ok(Response::data(match core.cors_config().await? {
        Some(c) => json!({
            "enabled": true,
            "allowed_origins": c.allowed_origins,
            "allowed_headers": c.allowed_headers,
            "allow_credentials": c.allow_credentials,
        }),
        None => json!({ "enabled": false }),
    }))
}

/// `PUT sys/config/cors`: on, with these origins (`*` alone for any) and extra headers.
pub(crate) async fn write(core: &Core, f: &Fields<'_>) -> Result<Response> {
    let origins: Vec<String> = f
        .str_list("allowed_origins")
        .unwrap_or_default()
        .into_iter()
        .map(|o| o.trim().to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        return Err(CoreError::bad(
            "at least one origin or the wildcard must be provided",
        ));
    }
    if origins.iter().any(|o| o == "*") && origins.len() > 1 {
        return Err(CoreError::bad(
            "to allow all origins the '*' must be the only value for allowed_origins",
        ));
    }
    let mut headers: Vec<String> = STD_HEADERS.iter().map(|h| (*h).to_owned()).collect();
    headers.extend(
        f.str_list("allowed_headers")
            .unwrap_or_default()
            .into_iter()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty()),
    );
    let cfg = CorsConfig {
        allowed_origins: origins,
        allowed_headers: headers,
        allow_credentials: f.bool("allow_credentials").unwrap_or(false),
    };
    let bytes = serde_json::to_vec(&cfg).map_err(|e| CoreError::Internal(e.to_string()))?;
    core.barrier.put(KEY, &bytes).await?;
    Ok(Response::none())
}

/// `DELETE sys/config/cors`: off.
pub(crate) async fn delete(core: &Core) -> Result<Response> {
    core.barrier.delete(KEY).await?;
    Ok(Response::none())
}

/// The JSON of a CORS refusal, as OpenBao words it.
pub fn origin_not_allowed() -> Value {
    json!({ "errors": ["origin not allowed"] })
}
