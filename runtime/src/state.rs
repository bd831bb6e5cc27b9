//! Container state on disk: one directory per container under the runtime root, holding
//! `state.json` (written atomically), the `exec.fifo` of a created container, and the lock
//! that serializes concurrent CLI calls on one container.
//!
//! state.json holds the spec's process, its environment included, so the root and the
//! containers' directories are 0700 and state.json 0600, as runc keeps its root (see
//! [`crate::private_files`]); a root made wider by an older version is narrowed by every
//! command that uses it.

use crate::error::{Context, Error, Result};
use crate::process::liveness::{self, Liveness};
use crate::{input_file, private_files};
use mini_cgroups::CgroupConfig;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

/// The OCI version this runtime reports, as runc does.
pub const OCI_VERSION: &str = "1.0.2-dev";
/// File name of the FIFO a created container's init blocks on until `start`.
pub const EXEC_FIFO: &str = "exec.fifo";
const STATE_FILE: &str = "state.json";

/// A container's lifecycle status, as the OCI runtime spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The container is being created.
    Creating,
    /// Created; init waits for `start`.
    Created,
    /// The user process runs.
    Running,
    /// Frozen by `pause`.
    Paused,
    /// The container process has exited.
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What the runtime records about a container (state.json).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// Container id.
    pub id: String,
    /// Host pid of the container's init (0 before it exists).
    pub pid: i32,
    /// The init's start time in clock ticks since boot, guarding against pid reuse.
    pub pid_start_time: u64,
    /// Absolute bundle path.
    pub bundle: PathBuf,
    /// Absolute rootfs path.
    pub rootfs: PathBuf,
    /// Creation time, RFC 3339 with nanoseconds.
    pub created: String,
    /// The spec's annotations.
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// The container's cgroup, to reopen it in later commands.
    pub cgroup: Option<CgroupConfig>,
    /// Whether the container has its own pid namespace (if not, `delete` must kill the cgroup).
    pub own_pid_ns: bool,
    /// The spec's hooks (poststart and poststop run after create returned).
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// The spec's process: what `exec` starts from.
    #[serde(default)]
    pub process: Option<oci_spec::runtime::Process>,
    /// The spec's seccomp profile, applied to exec'd processes too.
    #[serde(default)]
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
}

/// runc's `state` output, its fields in runc's order.
#[derive(Debug, Serialize)]
pub struct OciState<'a> {
    /// Spec version.
    #[serde(rename = "ociVersion")]
    pub oci_version: &'static str,
    /// Container id.
    pub id: &'a str,
    /// Init pid, 0 once stopped.
    pub pid: i32,
    /// Lifecycle status.
    pub status: Status,
    /// Bundle path.
    pub bundle: &'a Path,
    /// Rootfs path.
    pub rootfs: &'a Path,
    /// Creation time, as Go prints a time (RFC 3339 without trailing zeros in the fraction).
    pub created: String,
    /// Annotations sorted by key, omitted when empty.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<&'a str, &'a str>,
    /// Owner: empty in `state`, the user name in `list --format json` (as runc prints them).
    pub owner: &'static str,
}

/// A container's directory under the runtime root, held under its lock.
pub struct ContainerDir {
    path: PathBuf,
    _lock: Flock<File>,
}

/// Checks that `id` can name a container: non-empty, no path separators or dot-dot,
/// only the characters runc accepts.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid container id {id:?}: use letters, digits, '_', '+', '-' and '.' only"
        )))
    }
}

fn lock(path: &Path) -> Result<Flock<File>> {
    let dir = File::open(path).context(|| format!("opening {}", path.display()))?;
    Flock::lock(dir, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .context(|| format!("locking {}", path.display()))
}

impl ContainerDir {
    /// Creates the directory of a new container; fails if the id is taken.
    pub fn create(root: &Path, id: &str) -> Result<ContainerDir> {
        validate_id(id)?;
        private_files::create_dir_all(root)
            .context(|| format!("creating runtime root {}", root.display()))?;
        let path = root.join(id);
        match private_files::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::invalid(format!(
                    "container {id:?} already exists: pick another id or `delete` it first"
                )))
            }
            Err(e) => return Err(e).context(|| format!("creating {}", path.display())),
        }
        let lock = lock(&path)?;
        Ok(ContainerDir { path, _lock: lock })
    }

    /// Opens and locks the directory of an existing container.
    pub fn open(root: &Path, id: &str) -> Result<ContainerDir> {
        validate_id(id)?;
        restrict_root(root)?;
        let path = root.join(id);
        match lock(&path) {
            Ok(lock) => Ok(ContainerDir { path, _lock: lock }),
            Err(e) if e.errno() == Some(nix::errno::Errno::ENOENT) => Err(not_found(id)),
            Err(e) => Err(e),
        }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path of the container's exec FIFO.
    pub fn fifo(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    /// Writes state.json atomically (a new 0600 temporary file, then rename).
    pub fn save(&self, record: &Record) -> Result<()> {
        let tmp = self.path.join(".state.json.tmp");
        let data = serde_json::to_vec(record).expect("state serializes");
        private_files::write_atomic(&self.path.join(STATE_FILE), &tmp, &data, false)
            .context(|| format!("writing {}", self.path.join(STATE_FILE).display()))
    }

    /// Reads state.json.
    pub fn load(&self) -> Result<Record> {
        let id = self.path.file_name().unwrap_or_default().to_string_lossy();
        let p = self.path.join(STATE_FILE);
        let data = match input_file::read(&p, input_file::STATE_LIMIT) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found(&id)),
            Err(e) => return Err(e).context(|| format!("reading {}", p.display())),
        };
        serde_json::from_slice(&data)
            .map_err(|e| Error::invalid(format!("corrupt state file {}: {e}", p.display())))
    }

    /// Removes the directory and everything in it.
    pub fn remove(self) -> Result<()> {
        match std::fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).context(|| format!("removing {}", self.path.display()))
            }
            _ => Ok(()),
        }
    }
}

/// The error for an id with no container.
pub fn not_found(id: &str) -> Error {
    Error::invalid(format!(
        "container {id:?} does not exist: check the id with `mini-run list`"
    ))
}

impl Record {
    /// The container's current status, derived from its init process, its FIFO and its cgroup.
    pub fn status(&self, dir: &ContainerDir) -> Status {
        if self.pid <= 0 {
            return Status::Creating;
        }
        match liveness::check(self.pid, self.pid_start_time) {
            Liveness::Gone => Status::Stopped,
            Liveness::Alive => {
                if dir.fifo().exists() {
                    Status::Created
                } else if self.is_frozen() {
                    Status::Paused
                } else {
                    Status::Running
                }
            }
        }
    }

    fn is_frozen(&self) -> bool {
        self.cgroup
            .as_ref()
            .and_then(|c| mini_cgroups::open(c).ok())
            .and_then(|m| m.is_frozen().ok())
            .unwrap_or(false)
    }

    /// The state JSON hooks receive on stdin.
    pub fn hook_state(&self, status: Status) -> serde_json::Value {
        serde_json::to_value(self.oci_state(status)).expect("state serializes")
    }

    /// runc's state JSON for this record with the given status.
    pub fn oci_state(&self, status: Status) -> OciState<'_> {
        OciState {
            oci_version: OCI_VERSION,
            id: &self.id,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status,
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: go_time(&self.created),
            annotations: self
                .annotations
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            owner: "",
        }
    }
}

/// An RFC 3339 time with nanoseconds as Go's `time.RFC3339Nano` prints it (and so runc): the
/// fraction without trailing zeros, and without the dot when it is zero.
fn go_time(rfc3339: &str) -> String {
    match rfc3339.split_once('.') {
        Some((seconds, fraction)) if fraction.ends_with('Z') => {
            let digits = fraction[..fraction.len() - 1].trim_end_matches('0');
            if digits.is_empty() {
                format!("{seconds}Z")
            } else {
                format!("{seconds}.{digits}Z")
            }
        }
        _ => rfc3339.to_string(),
    }
}

/// Opens `path` as an O_PATH descriptor that survives exec (the init reopens the FIFO through it).
pub fn open_fifo_path(path: &Path) -> Result<std::os::fd::OwnedFd> {
    nix::fcntl::open(path, OFlag::O_PATH, Mode::empty())
        .context(|| format!("opening {}", path.display()))
}

/// Narrows a runtime root made readable by others (by an older version) to 0700.
fn restrict_root(root: &Path) -> Result<()> {
    private_files::restrict(root).context(|| format!("making {} private", root.display()))
}

/// Lists the ids of every container under `root`.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    restrict_root(root)?;
    let mut ids = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(e).context(|| format!("reading {}", root.display())),
    };
    for e in entries.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            ids.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_go_prints_them() {
        assert_eq!(
            go_time("2026-12-07T22:11:15.875732020Z"),
            "2026-12-07T22:11:15.87573202Z"
        );
        assert_eq!(
            go_time("2026-12-07T22:11:15.000000000Z"),
            "2026-12-07T22:11:15Z"
        );
        assert_eq!(
            go_time("2026-12-07T22:11:15.123456789Z"),
            "2026-12-07T22:11:15.123456789Z"
        );
        assert_eq!(go_time("2026-12-07T22:11:15Z"), "2026-12-07T22:11:15Z");
    }
}
