//! Errors of the use-cases, each mapping to one HTTP status.

use chasqui_store::StoreError;

/// A use-case failure.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// No credentials, or wrong ones (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The caller is known but may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// Too many attempts; try again after this many seconds (429).
    #[error("{0}")]
    RateLimited(String, u64),
    /// The resource does not exist in the caller's project (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with stored state (409).
    #[error("{0}")]
    Conflict(String),
    /// The input is well-formed but invalid (422), with one message per problem.
    #[error("Validation failed")]
    Invalid(Vec<String>),
    /// A service we depend on (Meta's Graph API) failed or refused (502).
    #[error("{0}")]
    Upstream(String),
    /// Storage failed (500; details are logged, not returned).
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
    /// Something else failed on our side (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// A 422 with a single message.
    pub fn invalid(message: impl Into<String>) -> Self {
        AppError::Invalid(vec![message.into()])
    }
}
