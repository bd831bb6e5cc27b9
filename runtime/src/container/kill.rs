//! `kill`: send a signal to a container's init, or with `--all` to every process in its cgroup.

use crate::error::{Context, Error, Result};
use crate::logging::debug;
use crate::state::{ContainerDir, Status};
use nix::unistd::Pid;
use std::path::Path;

/// Sends signal number `signal` (0 only checks that the process exists; real-time signals
/// included) to the container `id`. As runc: the init of a stopped container cannot be
/// signalled ("container not running", which containerd reads as "already finished"), while
/// `--all` signals whatever is left in the cgroup, possibly nothing.
pub fn kill(root: &Path, id: &str, signal: i32, all: bool) -> Result<()> {
    let dir = ContainerDir::open(root, id)?;
    let rec = dir.load()?;
    let status = rec.status(&dir);
    if all {
        if let Some(cg) = &rec.cgroup {
            debug(&format!(
                "kill {id}: signal {signal} to every process of its cgroup"
            ));
            let cg = mini_cgroups::open(cg)?;
            if signal == 0 {
                // Nothing to deliver: no need to freeze the cgroup around the check.
                for pid in cg.processes()? {
                    nix::sys::signal::kill(Pid::from_raw(pid), None)
                        .or_else(|e| {
                            if e == nix::errno::Errno::ESRCH {
                                Ok(())
                            } else {
                                Err(e)
                            }
                        })
                        .context(|| format!("checking process {pid} of container {id:?}"))?;
                }
                return Ok(());
            }
            return Ok(cg.kill_all(signal)?);
        }
        // A rootless container without a cgroup: every process of its pid namespace.
        debug(&format!(
            "kill {id}: signal {signal} to every process of its pid namespace (no cgroup)"
        ));
        for pid in super::processes(&rec)? {
            // SAFETY: kill(2) with any signal number has no memory-safety preconditions.
            let _ = unsafe { libc::kill(pid, signal) };
        }
        return Ok(());
    }
    if status == Status::Stopped {
        return Err(Error::invalid(format!(
            "container not running: {id:?} has stopped, so there is no process to signal"
        )));
    }
    debug(&format!("kill {id}: signal {signal} to init {}", rec.pid));
    // SAFETY: kill(2) with any signal number has no memory-safety preconditions.
    let r = unsafe { libc::kill(rec.pid, signal) };
    nix::errno::Errno::result(r)
        .context(|| format!("sending signal {signal} to container {id:?}"))?;
    if status == Status::Paused && signal == libc::SIGKILL {
        // A frozen init cannot die until it is thawed (runc thaws for SIGKILL too).
        if let Some(cg) = &rec.cgroup {
            mini_cgroups::open(cg)?.thaw()?;
        }
    }
    Ok(())
}
