//! The runtime's one error type. Every failure carries the context it happened in
//! ("mounting proc at /proc: EPERM"); the CLI prints it as a single line.

use std::fmt::Display;

/// What went wrong, with the context it went wrong in.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed.
    #[error("{context}: {errno}")]
    Sys {
        /// What was being done.
        context: String,
        /// The kernel's answer.
        errno: nix::errno::Errno,
    },
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The user asked for something invalid (bad config, unknown container, bad flag value).
    #[error("{0}")]
    Invalid(String),
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] mini_cgroups::Error),
}

/// The runtime's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error about the user's input; the message should say what is wrong and what to do.
    pub fn invalid(msg: impl Display) -> Self {
        Error::Invalid(msg.to_string())
    }

    /// The errno behind this error, if it came from the kernel.
    pub fn errno(&self) -> Option<nix::errno::Errno> {
        match self {
            Error::Sys { errno, .. } => Some(*errno),
            Error::Io { source, .. } => source.raw_os_error().map(nix::errno::Errno::from_raw),
            Error::Invalid(_) | Error::Cgroup(_) => None,
        }
    }
}

/// Attaches context to fallible system and I/O calls.
pub trait Context<T> {
    /// Wraps the error with the text `f` returns.
    fn context<C: Display>(self, f: impl FnOnce() -> C) -> Result<T>;
}

impl<T> Context<T> for nix::Result<T> {
    fn context<C: Display>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|errno| Error::Sys {
            context: f().to_string(),
            errno,
        })
    }
}

impl<T> Context<T> for std::io::Result<T> {
    fn context<C: Display>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: f().to_string(),
            source,
        })
    }
}
