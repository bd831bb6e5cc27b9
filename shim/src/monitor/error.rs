//! The monitor's error type: what failed, with the context it failed in.

/// A monitor failure (starting one, talking to one, or one reporting an error).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The runtime (mini-run) refused or failed.
    #[error(transparent)]
    Runtime(#[from] mini_run::error::Error),
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] mini_cgroups::Error),
    /// The monitor answered a request with an error.
    #[error("{0}")]
    Remote(String),
    /// The container is not running (it exited, or never started).
    #[error("container {0:?} is not running")]
    NotRunning(String),
    /// No monitor answers for the directory and it holds no exit record: the monitor died
    /// while its container ran. [`super::adopt`] settles it.
    #[error(
        "the monitor of {0} is gone and left no exit record: adopt the directory to settle it"
    )]
    MonitorGone(std::path::PathBuf),
    /// The monitor of the directory did not answer within the deadline (it is stopped or
    /// stuck); the container may still run.
    #[error("the monitor of {} did not answer within {}", .0.display(), humantime::format_duration(*.1))]
    Timeout(std::path::PathBuf, std::time::Duration),
    /// A request, an option or a file was not what it must be.
    #[error("{0}")]
    Invalid(String),
}

/// The monitor's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error with its context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
