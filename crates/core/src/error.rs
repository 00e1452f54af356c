//! The core's one error type. The HTTP edge maps each variant to a status code once.

use strongroom_barrier::BarrierError;
use strongroom_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// 403. OpenBao's text exactly, so clients that match on it keep working.
    #[error("permission denied")]
    PermissionDenied,
    /// 400: the request is malformed or a value is invalid.
    #[error("{0}")]
    BadRequest(String),
    /// 404 with an error message (no handler, unknown namespace).
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists but not for this operation.
    #[error("unsupported operation")]
    UnsupportedOperation,
    /// 503: sealed.
    #[error("Vault is sealed")]
    Sealed,
    /// 503: storage is unreachable.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// 400 for invalid or expired tokens, as OpenBao answers them… except it uses 403.
    #[error("{0}")]
    InvalidToken(String),
    /// 403 with OpenBao's own message for the case, shown to the client (a lookup of a
    /// token that does not exist: "bad token").
    #[error("{0}")]
    Forbidden(String),
    /// 500: a bug or corrupt data. The message must not contain secret material.
    #[error("internal error: {0}")]
    Internal(String),
    /// 429: rate limited or the server is busy.
    #[error("{0}")]
    TooManyRequests(String),
    /// Inline authentication failed: answered with the login's own error, flagged by
    /// `X-Vault-Inline-Auth-Failed: true`.
    #[error("{0}")]
    InlineAuthFailed(Box<CoreError>),
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

impl From<StorageError> for CoreError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Unavailable(m) => CoreError::Unavailable(m),
            StorageError::Conflict(k) => {
                CoreError::Internal(format!("unexpected storage conflict on {k}"))
            }
            StorageError::Backend(m) => CoreError::Internal(m),
        }
    }
}

impl From<BarrierError> for CoreError {
    fn from(e: BarrierError) -> Self {
        match e {
            BarrierError::Sealed => CoreError::Sealed,
            BarrierError::Storage(s) => s.into(),
            other => CoreError::Internal(other.to_string()),
        }
    }
}

impl CoreError {
    pub fn bad(msg: impl Into<String>) -> Self {
        CoreError::BadRequest(msg.into())
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            CoreError::PermissionDenied | CoreError::InvalidToken(_) | CoreError::Forbidden(_) => {
                403
            }
            CoreError::BadRequest(_) => 400,
            CoreError::NotFound(_) => 404,
            CoreError::UnsupportedOperation => 405,
            CoreError::Sealed | CoreError::Unavailable(_) => 503,
            CoreError::Internal(_) => 500,
            CoreError::TooManyRequests(_) => 429,
            CoreError::InlineAuthFailed(inner) => inner.status(),
        }
    }
}
