//! The crate's error type: every variant renders as one line naming what is wrong and what to
//! do about it.

use std::io;
use std::path::Path;

/// Errors of image import, the layer store and container rootfs handling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. "reading blob sha256:...".
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A blob or an unpacked layer does not hash to the digest that names it.
    #[error("{what}: digest mismatch (expected {expected}, got {actual}): the image is corrupt; save or copy it again")]
    DigestMismatch {
        /// Which blob or layer.
        what: String,
        /// The digest the manifest or config names.
        expected: String,
        /// What the content hashes to.
        actual: String,
    },
    /// A blob's length differs from its descriptor's size.
    #[error("{what}: size mismatch (descriptor says {expected} bytes, blob has {actual}): the image is corrupt; save or copy it again")]
    SizeMismatch {
        /// Which blob.
        what: String,
        /// The descriptor's size.
        expected: u64,
        /// The blob's length.
        actual: u64,
    },
    /// The input is not a valid OCI image layout, archive, manifest, config or layer.
    #[error("{0}")]
    Invalid(String),
    /// Valid input this crate does not handle (a media type, a digest algorithm, ...).
    #[error("{0}")]
    Unsupported(String),
    /// No image, rootfs or user of that name.
    #[error("{0}")]
    NotFound(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error with its context.
    pub(crate) fn io(context: impl Into<String>, source: impl Into<io::Error>) -> Error {
        Error::Io {
            context: context.into(),
            source: source.into(),
        }
    }

    /// An I/O error about a path: "<doing> <path>: <error>".
    pub(crate) fn path(doing: &str, path: &Path, source: impl Into<io::Error>) -> Error {
        Error::io(format!("{doing} {}", path.display()), source)
    }
}

/// Adds context to I/O results.
pub(crate) trait Context<T> {
    /// Wraps the error with `context`.
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<io::Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}
