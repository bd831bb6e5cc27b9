//! The crate's error type: every failure names the file or object it concerns.

use std::io;
use std::path::PathBuf;

/// Errors returned by this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation on a cgroup file or directory failed.
    #[error("{op} {}: {}", path.display(), errno_text(source))]
    Io {
        /// What was being done, e.g. "reading", "creating directory".
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Writing a value into a cgroup control file failed.
    #[error("writing {value} to {}: {}", path.display(), errno_text(source))]
    Write {
        /// The control file.
        path: PathBuf,
        /// The value that was written.
        value: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A control file held something this crate could not parse.
    #[error("parsing {}: unexpected content {content:?}", path.display())]
    Parse {
        /// The control file.
        path: PathBuf,
        /// The offending text.
        content: String,
    },
    /// No usable cgroup hierarchy, or a needed controller is not available.
    #[error("{0}")]
    Unsupported(String),
    /// A caller-supplied argument (container id, cgroup path) is not acceptable.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The requested resources are inconsistent or out of range.
    #[error("invalid resources: {0}")]
    InvalidResources(String),
    /// `create` found processes already inside the cgroup.
    #[error(
        "cgroup {} already contains processes {pids:?}: another container may use it; \
         stop those processes or choose another cgroupsPath",
        path.display()
    )]
    NotEmpty {
        /// The cgroup directory.
        path: PathBuf,
        /// The processes found in it.
        pids: Vec<i32>,
    },
    /// `create` found the cgroup frozen: a process put in it would stop at once.
    #[error(
        "cgroup {} is frozen: thaw it or choose another cgroupsPath",
        path.display()
    )]
    Frozen {
        /// The cgroup directory.
        path: PathBuf,
    },
    /// An operation that waits for the kernel (freeze, removal) did not finish in time.
    #[error("timed out {0}")]
    Timeout(String),
    /// A bpf(2) call failed.
    #[error("bpf {op}: {}{}", errno_text(source), if log.is_empty() { String::new() } else { format!("\nverifier log:\n{log}") })]
    Bpf {
        /// The bpf command, e.g. "BPF_PROG_LOAD".
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
        /// The verifier log, if any.
        log: String,
    },
}

impl Error {
    /// Wraps an I/O error with the operation and path it concerns.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The errno behind this error, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } | Error::Write { source, .. } | Error::Bpf { source, .. } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }
}

/// Renders an OS error as "EINVAL" (plus the message for non-OS errors).
fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!("{}", nix::errno::Errno::from_raw(code)),
        None => e.to_string(),
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
