//! What the runtime hands to the container's init: the validated spec plus what the runtime
//! resolved on the host (absolute rootfs, inherited descriptors, cgroup directories).

use mini_cgroups::MountSource;
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The init's instructions.
#[derive(Debug, Serialize, Deserialize)]
pub struct InitConfig {
    /// The container's spec, validated.
    pub spec: Spec,
    /// Absolute host path of the bundle (relative bind sources are resolved against it).
    pub bundle: PathBuf,
    /// Absolute host path of the rootfs.
    pub rootfs: PathBuf,
    /// Descriptor (inherited, O_PATH) of the exec FIFO; `None` when `run` starts at once.
    pub fifo_fd: Option<i32>,
    /// Use MS_MOVE + chroot instead of pivot_root.
    pub no_pivot: bool,
    /// Number of descriptors after stdio to pass to the process (runc's --preserve-fds).
    pub preserve_fds: i32,
    /// Host directories for `cgroup` mounts.
    pub cgroup_mounts: Vec<MountSource>,
    /// cgroup v1 directories the init moves itself into (writing 0 to `tasks`), when the
    /// runtime did not place it.
    pub cgroup_join: Vec<PathBuf>,
    /// Whether the container has a new cgroup namespace (then `cgroup` mounts are real cgroupfs).
    pub new_cgroup_ns: bool,
    /// Whether the container has its own user namespace.
    pub user_ns: bool,
    /// Inherited socket to send the terminal's master over (process.terminal).
    pub console_fd: Option<i32>,
    /// Whether the container has its own UTS namespace.
    pub uts_ns: bool,
    /// Whether the container gets a new network namespace (its loopback is brought up).
    pub new_net_ns: bool,
    /// The state JSON given to hooks (the init sets `status`).
    pub hook_state: serde_json::Value,
    /// The parent-death signal to arm again once the init has its final credentials (a
    /// credential change clears it).
    pub parent_death_signal: Option<i32>,
}
