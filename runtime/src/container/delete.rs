//! `delete`: remove a stopped (or, with `--force`, any) container: its processes, its cgroup
//! and its state directory.

use crate::error::{Error, Result};
use crate::logging::debug;
use crate::process::liveness::{self, Liveness};
use crate::state::{ContainerDir, Record, Status};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::path::Path;
use std::time::{Duration, Instant};

/// Deletes the container `id`.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let dir = match ContainerDir::open(root, id) {
        Ok(d) => d,
        Err(_) if force => return Ok(()),
        Err(e) => return Err(e),
    };
    let rec = match dir.load() {
        Ok(r) => r,
        // A directory without state is the leftover of an aborted create.
        Err(_) => return dir.remove(),
    };
    let mut status = rec.status(&dir);
    if matches!(status, Status::Running | Status::Paused) && !force && liveness::dying(rec.pid) {
        // Right after `kill 9` the init may still be tearing down (an init of a PID namespace
        // waits for every process in it): as with runc, that counts as stopping, not running.
        wait_gone(rec.pid, rec.pid_start_time, DYING_WAIT);
        status = rec.status(&dir);
    }
    if matches!(status, Status::Running | Status::Paused) && !force {
        return Err(Error::invalid(format!(
            "cannot delete container {id:?}: it is {status}; stop it first or use --force"
        )));
    }
    destroy(dir, &rec)
}

/// Kills what is left of the container and removes its cgroup and directory.
pub fn destroy(dir: ContainerDir, rec: &Record) -> Result<()> {
    let id = &rec.id;
    let cgroup = rec.cgroup.as_ref().map(mini_cgroups::open).transpose()?;
    if liveness::check(rec.pid, rec.pid_start_time) == Liveness::Alive {
        if let Some(cg) = &cgroup {
            // A frozen init cannot die.
            let _ = cg.thaw();
        }
        if cgroup.is_none() && !rec.own_pid_ns {
            // Rootless without a cgroup or a pid namespace: the init's descendants, found
            // before its death reparents them.
            for pid in super::processes(rec).unwrap_or_default() {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        debug(&format!("delete {id}: killing init {}", rec.pid));
        let _ = nix::sys::signal::kill(Pid::from_raw(rec.pid), Signal::SIGKILL);
        wait_gone(rec.pid, rec.pid_start_time, KILL_WAIT);
    }
    if let Some(cg) = &cgroup {
        // Without a pid namespace of its own, the init's death leaves its children alive.
        if !rec.own_pid_ns || !cg.processes().unwrap_or_default().is_empty() {
            let _ = cg.kill_all(Signal::SIGKILL as i32);
        }
        debug(&format!(
            "delete {id}: removing cgroup {}",
            cg.path().display()
        ));
        cg.destroy()?;
    }
    // The container is gone (its state too, so `state` says so) before the poststop hooks run.
    dir.remove()?;
    debug(&format!("delete {id}: state removed"));
    if let Some(h) = rec.hooks.as_ref().and_then(|h| h.poststop().as_ref()) {
        crate::hooks::run_warn("poststop", h, &rec.hook_state(Status::Stopped));
    }
    Ok(())
}

/// How long `delete` waits for a dying init before it calls the container running.
const DYING_WAIT: Duration = Duration::from_secs(5);
/// How long removing a container waits for the init it killed.
const KILL_WAIT: Duration = Duration::from_secs(10);

fn wait_gone(pid: i32, start: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_micros(200);
    while liveness::check(pid, start) == Liveness::Alive && Instant::now() < deadline {
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}
