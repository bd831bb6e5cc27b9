//! What `exec` hands to the re-executed runtime that joins a running container.

use oci_spec::runtime::Process;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The joining process's instructions.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExecConfig {
    /// The process to run.
    pub process: Process,
    /// Namespaces to join (`/proc/<init>/ns/<type>` paths, in joining order, mount last).
    pub namespaces: Vec<(oci_spec::runtime::LinuxNamespaceType, PathBuf)>,
    /// Files to write `0` into to move the joining process into the container's cgroup
    /// (v1 `tasks` of every hierarchy, v2 `cgroup.procs`).
    pub cgroup_join: Vec<PathBuf>,
    /// Inherited socket to send the terminal's master over (process.terminal).
    pub console_fd: Option<i32>,
    /// The container's seccomp profile, which exec'd processes get too.
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    /// Descriptors after stdio to pass on.
    pub preserve_fds: i32,
}
