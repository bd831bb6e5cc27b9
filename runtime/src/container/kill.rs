//! `kill`: send a signal to a container's init, or with `--all` to every process in its cgroup.

use crate::error::{Context, Error, Result};
use crate::state::{ContainerDir, Status};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::path::Path;

/// Signals the container `id`.
pub fn kill(root: &Path, id: &str, signal: Signal, all: bool) -> Result<()> {
    let dir = ContainerDir::open(root, id)?;
    let rec = dir.load()?;
    let status = rec.status(&dir);
    if status == Status::Stopped {
        return Err(Error::invalid(format!(
            "container {id:?} is not running: there is no process to signal"
        )));
    }
    if all {
        if let Some(cg) = &rec.cgroup {
            return Ok(mini_cgroups::open(cg)?.kill_all(signal as i32)?);
        }
        // A rootless container without a cgroup: every process of its pid namespace.
        for pid in super::processes(&rec)? {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), signal);
        }
        return Ok(());
    }
    nix::sys::signal::kill(Pid::from_raw(rec.pid), signal)
        .context(|| format!("sending {signal} to container {id:?}"))
}
