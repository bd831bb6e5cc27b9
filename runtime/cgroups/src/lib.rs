//! cgroup v1 and v2 management for mini-run and mini-shim.
//!
//! [`new_manager`] builds a [`Manager`] for a container on whatever hierarchy the host uses
//! ([`detect`]); the runtime stores [`Manager::config`] in the container's state and reopens it
//! with [`open`] in later commands. Resources come straight from the OCI spec
//! (`linux.resources`) and are converted to the host's cgroup version the way runc and crun do.

#![warn(missing_docs)]

mod devices;
mod ebpf;
mod error;
mod fs;
mod hierarchy;
mod oom;
mod resources;
mod stats;
mod v1;
mod v2;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use devices::default_allowed_devices;
pub use ebpf::attached_device_programs;
pub use error::{Error, Result};
pub use hierarchy::Hierarchy;
pub use resources::{blkio_weight_to_io_weight, shares_to_weight};
pub use stats::read_psi;
pub use stats::{
    Blkio, BlkioEntry, Cpu, CpuSet, CpuUsage, Hugetlb, IntelRdt, Memory, MemoryEntry,
    NetworkInterface, Pids, Psi, PsiData, Stats, Throttling,
};

/// Where cgroup filesystems are mounted on a standard host.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// How long `freeze` waits for the kernel to report the cgroup frozen.
pub const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// The cgroup version a manager drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Version {
    /// Legacy per-controller hierarchies (also used on hybrid hosts).
    V1,
    /// The unified hierarchy.
    V2,
}

/// Probes the host: a cgroup2 filesystem at /sys/fs/cgroup means v2; otherwise mounted v1
/// controller hierarchies mean v1 (a hybrid host's cgroup2 tree at /sys/fs/cgroup/unified holds
/// no usable controllers and is ignored).
pub fn detect() -> Result<Version> {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
    let st = statfs(CGROUP_ROOT).map_err(|e| Error::io("statfs", CGROUP_ROOT, e.into()))?;
    if st.filesystem_type() == CGROUP2_SUPER_MAGIC {
        return Ok(Version::V2);
    }
    if hierarchy::host_mounts()?.iter().any(|m| !m.v2) {
        return Ok(Version::V1);
    }
    Err(Error::Unsupported(
        "no cgroup v1 controllers or cgroup2 filesystem mounted".into(),
    ))
}

/// What the runtime stores in the container's state file to reopen the manager later.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CgroupConfig {
    /// The hierarchy version.
    pub version: Version,
    /// The cgroup path relative to the hierarchy root (on v1, that of the first hierarchy).
    pub path: PathBuf,
    /// Every hierarchy the cgroup lives in (one on v2), with the directories `create` made.
    pub hierarchies: Vec<Hierarchy>,
}

impl CgroupConfig {
    /// A v2 cgroup at `path` (relative to the hierarchy root) in a cgroup2 filesystem mounted at
    /// `mount_point`, e.g. a hybrid host's /sys/fs/cgroup/unified or a private test mount.
    pub fn v2(mount_point: &Path, path: &Path) -> Self {
        v2::config(mount_point, &hierarchy::clean(path))
    }
}

/// A host directory to expose for a `cgroup` mount inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSource {
    /// The hierarchy's name as mounted on the host ("cpu,cpuacct", "memory", "systemd");
    /// "" on v2.
    pub hierarchy: String,
    /// The controllers the hierarchy holds, so the runtime can add "cpu" / "cpuacct" symlinks
    /// for joined hierarchies ("name=systemd" for named ones; the enabled controllers on v2).
    pub controllers: Vec<String>,
    /// The host directory of the container's cgroup in that hierarchy.
    pub host_dir: PathBuf,
}

/// Operations on one container's cgroup.
pub trait Manager: Send + Sync {
    /// The configuration to store and later pass to [`open`].
    fn config(&self) -> &CgroupConfig;
    /// The hierarchy version.
    fn version(&self) -> Version;
    /// The cgroup path relative to the hierarchy root, e.g. "/<id>" (as
    /// /proc/<pid>/cgroup shows it).
    fn path(&self) -> &Path;
    /// Creates the cgroup directories (in every v1 hierarchy), refusing with
    /// [`Error::NotEmpty`] if the cgroup already contains processes and with
    /// [`Error::Frozen`] if it is frozen (itself or through a parent).
    fn create(&mut self) -> Result<()>;
    /// Moves a process into the cgroup.
    fn add_process(&self, pid: i32) -> Result<()>;
    /// Applies (or live-updates) limits, writing only what is set.
    fn apply(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<()>;
    /// Freezes every process, blocking until the kernel reports the cgroup frozen (at most
    /// [`FREEZE_TIMEOUT`]; on timeout the cgroup is thawed again and an error returned).
    fn freeze(&self) -> Result<()>;
    /// Thaws the cgroup.
    fn thaw(&self) -> Result<()>;
    /// Whether the cgroup is (completely) frozen.
    fn is_frozen(&self) -> Result<bool>;
    /// Signals every process in the cgroup; on v2 with SIGKILL uses cgroup.kill when present,
    /// otherwise freezes, signals each process and thaws.
    fn kill_all(&self, signal: i32) -> Result<()>;
    /// The processes in the cgroup and its child cgroups, sorted.
    fn processes(&self) -> Result<Vec<i32>>;
    /// Current usage statistics.
    fn stats(&self) -> Result<Stats>;
    /// How many processes the kernel OOM killer killed in the cgroup (v1: memory.oom_control,
    /// v2: memory.events `oom_kill`); 0 without a memory controller.
    fn oom_kill_count(&self) -> Result<u64>;
    /// Blocks until the cgroup's OOM kill count exceeds `baseline` (a count the caller read
    /// earlier, e.g. before starting what may run out of memory) or `timeout` passes; returns
    /// whether it did. An OOM that happened before the call is therefore never missed: the
    /// count is compared after the notification is armed. v1 listens on an eventfd registered
    /// through cgroup.event_control (on kernels without v1's `oom_kill` counter, any OOM event
    /// counts), v2 watches memory.events with inotify.
    fn wait_oom(&self, baseline: u64, timeout: Duration) -> Result<bool>;
    /// Removes the cgroup (with any child cgroups) and the empty parents this manager created;
    /// fine if already gone; retries briefly on EBUSY.
    fn destroy(&self) -> Result<()>;
    /// An `O_PATH | O_DIRECTORY` descriptor of the cgroup2 directory, for
    /// `clone3(CLONE_INTO_CGROUP)`: on v2 the container's cgroup (made by `create`), on a hybrid
    /// v1 host the container's directory in the cgroup2 tree, made here (it holds no
    /// controller, and the v1 hierarchies are joined by the init); `None` on pure v1.
    fn dir_fd(&mut self) -> Result<Option<OwnedFd>>;
    /// Host directories to expose for a `cgroup` mount inside the container.
    fn mount_sources(&self) -> Result<Vec<MountSource>>;
}

/// Builds a manager for a container without creating anything yet.
///
/// `cgroups_path` is the spec's `linux.cgroupsPath`: absolute paths are relative to the
/// hierarchy root; relative ones go under the runtime's own cgroup (v1) or its parent (v2), as
/// runc does; `None` means the relative path `<id>`, runc's default.
pub fn new_manager(cgroups_path: Option<&Path>, id: &str) -> Result<Box<dyn Manager>> {
    if id.is_empty() || id.contains('/') || id == "." || id == ".." {
        return Err(Error::InvalidArgument(format!("container id {id:?}")));
    }
    // An empty cgroupsPath is no cgroupsPath, as in runc.
    let cgroups_path = cgroups_path.filter(|p| !p.as_os_str().is_empty());
    if let Some(p) = cgroups_path.filter(|p| hierarchy::clean(p) == Path::new("/")) {
        return Err(Error::InvalidArgument(format!(
            "cgroupsPath {p:?} names a hierarchy root or the runtime's own cgroup: give the \
             container a cgroup of its own"
        )));
    }
    let mounts = hierarchy::host_mounts()?;
    let own = hierarchy::own_cgroups()?;
    let config = match detect()? {
        Version::V2 => {
            let own_path = own
                .iter()
                .find(|c| c.controllers.is_empty())
                .map_or_else(|| PathBuf::from("/"), |c| c.path.clone());
            let path = hierarchy::resolve_path(cgroups_path, id, &own_path, true);
            v2::config(Path::new(CGROUP_ROOT), &path)
        }
        Version::V1 => v1::config(&mounts, &own, cgroups_path, id)?,
    };
    open(&config)
}

/// Removes cgroup `path` (from the hierarchy roots, as an absolute cgroupsPath) in every
/// hierarchy where it has no child cgroups left. For a parent that a caller owns and shares
/// among its containers (the shim agent's `/mini-shim`), once its last container is gone; a
/// parent still in use, or already gone, is left as it is.
pub fn remove_if_empty(path: &Path) -> Result<()> {
    let v2 = detect()? == Version::V2;
    let path = hierarchy::clean(path);
    // On v1 every hierarchy, a hybrid host's cgroup2 tree too (containers join it).
    for m in hierarchy::host_mounts()?.iter().filter(|m| m.v2 || !v2) {
        fs::remove_if_empty(&hierarchy::host_dir(m, &path))?;
    }
    Ok(())
}

/// Reopens a manager from a stored configuration.
pub fn open(config: &CgroupConfig) -> Result<Box<dyn Manager>> {
    if config.hierarchies.is_empty() {
        return Err(Error::InvalidArgument(
            "cgroup configuration lists no hierarchies".into(),
        ));
    }
    Ok(match config.version {
        Version::V1 => Box::new(v1::V1Manager::new(config.clone())),
        Version::V2 => Box::new(v2::V2Manager::new(config.clone())),
    })
}

/// Signals every process of a cgroup that has a freezer: freezes it so nothing forks between
/// listing and signalling, signals, then thaws it unless it was already frozen (a SIGKILL
/// always thaws, so the signal is delivered). If freezing fails the processes are still
/// signalled, and the freeze error is returned afterwards.
pub(crate) fn signal_frozen<M: Manager + ?Sized>(m: &M, signal: i32) -> Result<()> {
    if m.processes()?.is_empty() {
        return Ok(());
    }
    let was_frozen = m.is_frozen()?;
    let frozen = m.freeze();
    let signalled = m
        .processes()
        .and_then(|pids| fs::signal_pids(&pids, signal));
    if !was_frozen || signal == libc::SIGKILL {
        m.thaw()?;
    }
    signalled.and(frozen)
}
