//! One crate error, by meaning. Each surface (portal, agent API, management API,
//! CLI) maps it to its own response in one place.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not found")]
    NotFound,
    #[error("authentication required")]
    Unauthenticated,
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{field}: {msg}")]
    Validation { field: String, msg: String },
    #[error("too many attempts, try again later")]
    RateLimited,
    #[error("{0}")]
    Locked(String),
    /// A sensitive action needs a fresh authenticator code (SESS-05).
    #[error("confirm with a fresh authenticator code to continue")]
    StepUpRequired,
    #[error("{0}")]
    InvalidState(String),
    #[error("{0}")]
    Gone(String),
    /// A body over the surface's limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// Temporarily unable to serve (shutting down, storage unavailable): try again later.
    #[error("{0}")]
    Unavailable(String),
    /// The disk under the database cannot take a write (DUR-02): nothing of the change was
    /// kept; the operator must free space. 503, code `storage_full`.
    #[error("the appliance's disk is full: nothing was saved; try again once space is freed")]
    StorageFull,
    /// A misconfiguration or unusable environment found at start-up: the message is shown as is.
    #[error("{0}")]
    Startup(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn validation(field: impl Into<String>, msg: impl fmt::Display) -> Self {
        Error::Validation {
            field: field.into(),
            msg: msg.to_string(),
        }
    }
    pub fn internal(msg: impl fmt::Display) -> Self {
        Error::Internal(msg.to_string())
    }
    pub fn startup(msg: impl fmt::Display) -> Self {
        Error::Startup(msg.to_string())
    }
    /// Stable machine-readable code used in JSON errors.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound => "not_found",
            Error::Unauthenticated => "unauthenticated",
            Error::Forbidden(_) => "forbidden",
            Error::Conflict(_) => "conflict",
            Error::Validation { .. } => "validation",
            Error::RateLimited => "rate_limited",
            Error::Locked(_) => "locked",
            Error::StepUpRequired => "step_up_required",
            Error::InvalidState(_) => "invalid_state",
            Error::Gone(_) => "gone",
            Error::TooLarge(_) => "too_large",
            Error::Unavailable(_) => "unavailable",
            Error::StorageFull => "storage_full",
            Error::Startup(_) | Error::Internal(_) => "internal",
        }
    }
    /// Whether the message may be shown to a client (never for internal failures).
    pub fn is_internal(&self) -> bool {
        matches!(self, Error::Internal(_) | Error::Startup(_))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::StorageFull {
            return Error::StorageFull;
        }
        Error::Internal(format!("i/o: {e}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Internal(format!("json: {e}"))
    }
}
