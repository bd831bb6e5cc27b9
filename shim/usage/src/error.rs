//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Errors reading procfs or a container's cgroup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A procfs file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A procfs file did not have the expected format.
    #[error("{path}: unexpected content {content:?}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The offending line.
        content: String,
    },
    /// The container's cgroup could not be read.
    #[error("reading the container's cgroup: {0}")]
    Cgroup(#[from] mini_cgroups::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reads a whole procfs file.
pub(crate) fn read(path: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.into(),
        source,
    })
}

pub(crate) fn parse_error(path: &str, content: &str) -> Error {
    Error::Parse {
        path: path.into(),
        content: content.into(),
    }
}
