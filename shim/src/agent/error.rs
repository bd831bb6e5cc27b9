//! The agent's error type: every failure with its context, mapped to one protocol error
//! (HTTP status + stable code) at the API edge and to one line at the CLI edge.

use crate::protocol::{ErrorBody, ErrorInfo};
use std::path::Path;

/// What went wrong in the agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed (syntax, unknown fields, bad values).
    #[error("{0}")]
    BadRequest(String),
    /// No such container (or route).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the container's state (duplicate id, still running, ...).
    #[error("{0}")]
    Conflict(String),
    /// The workload's rootfs or image is missing or unusable.
    #[error("{0}")]
    SourceUnavailable(String),
    /// A `PATCH /v1/services` does not apply to the generation the agent holds.
    #[error("{0}")]
    GenerationMismatch(String),
    /// The container could not be started (the monitor's reason).
    #[error("{0}")]
    StartFailed(String),
    /// The container's monitor could not be reached or failed.
    #[error("{0}")]
    Monitor(String),
    /// TLS setup failed.
    #[error("{0}")]
    Tls(String),
    /// Certificate generation failed.
    #[error("{0}")]
    Pki(String),
    /// The agent's configuration is unusable (listen address, state dir, ...).
    #[error("{0}")]
    Config(String),
    /// A file-system operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The operation.
        what: &'static str,
        /// Its path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(what: &'static str, path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            what,
            path: path.display().to_string(),
            source,
        }
    }

    /// The HTTP status the protocol answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) => 400,
            Error::NotFound(_) => 404,
            Error::Conflict(_) | Error::GenerationMismatch(_) => 409,
            Error::SourceUnavailable(_) | Error::StartFailed(_) => 422,
            Error::Monitor(_) => 502,
            Error::Tls(_) | Error::Pki(_) | Error::Config(_) | Error::Io { .. } => 500,
        }
    }

    /// The protocol's stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::GenerationMismatch(_) => "generation_mismatch",
            Error::SourceUnavailable(_) => "source_unavailable",
            Error::StartFailed(_) => "start_failed",
            Error::Monitor(_) => "monitor_unavailable",
            Error::Tls(_) | Error::Pki(_) | Error::Config(_) | Error::Io { .. } => "internal",
        }
    }

    /// The error as the protocol's JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorInfo {
                code: self.code().to_string(),
                message: self.to_string(),
            },
        }
    }
}
