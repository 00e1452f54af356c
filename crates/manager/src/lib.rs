//! The secrets manager: GitLab's native Secrets Manager on top of the OpenBao-compatible
//! core. A directory of users, groups and projects with inherited access levels; a
//! secrets manager per project and per group (a namespace of its own with a kv-v2 mount
//! `secrets/kv` and a jwt mount `pipeline_jwt`); scoped, versioned secrets; grants; and
//! the resolution of a pipeline job's secrets in one round trip.
//!
//! Architecture invariant: this crate is a client of the core, as GitLab's Rails is a client
//! of OpenBao. Everything it keeps goes through [`strongroom_core::api::CoreApi`] (so
//! through the barrier, the ACL and the audit log); it never touches storage. Two
//! functions decide: [`permissions::decide`] for people and [`scope::released`] for jobs.

#![forbid(unsafe_code)]

pub mod audit;
pub mod directory;
pub mod permissions;
pub mod scope;
mod service;
mod store;

pub use service::{
    CiConfig, CiSecret, CiSecrets, Limits, Manager, ManagerStatus, SecretInput, SecretView,
    SecretsManager,
};

use strongroom_core::CoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is invalid (400; a GraphQL payload's `errors`).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// A name or path is taken, or a compare-and-set lost (409).
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this (403).
    #[error("you do not have permission to perform this action")]
    Forbidden,
    /// No valid credentials (401).
    #[error("{0}")]
    Unauthenticated(String),
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl Error {
    pub fn invalid(m: impl Into<String>) -> Error {
        Error::Invalid(m.into())
    }
    pub fn not_found(m: impl Into<String>) -> Error {
        Error::NotFound(m.into())
    }
    pub fn conflict(m: impl Into<String>) -> Error {
        Error::Conflict(m.into())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
