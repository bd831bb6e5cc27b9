//! The lifecycle operations, one module each, as the CLI names them.

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod resume;
pub mod run;
pub mod start;
pub mod state;
pub mod sub_cgroup;
pub mod update;

use crate::error::{Error, Result};
use crate::state::{Record, Status};
use mini_cgroups::Manager;

/// Runs the poststart hooks of a container that just started (failures are warnings).
pub(crate) fn run_poststart(rec: &Record) {
    if let Some(h) = rec.hooks.as_ref().and_then(|h| h.poststart().as_ref()) {
        crate::hooks::run_warn("poststart", h, &rec.hook_state(Status::Running));
    }
}

/// The host pids of a container's processes, sorted: from its cgroup, or for a rootless
/// container without one, the processes in its pid namespace (without one of its own: its
/// init and the init's descendants).
pub(crate) fn processes(rec: &Record) -> Result<Vec<i32>> {
    if rec.cgroup.is_some() {
        return Ok(cgroup(rec)?.processes()?);
    }
    let ns_of = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let parent_of = |pid: i32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The fields after the command name (which may hold spaces and parentheses).
        let rest = &stat[stat.rfind(')')? + 2..];
        rest.split(' ').nth(1)?.parse::<i32>().ok()
    };
    let init_ns = ns_of(rec.pid);
    let mut all: Vec<(i32, Option<i32>)> = std::fs::read_dir("/proc")
        .map_err(|e| Error::invalid(format!("reading /proc: {e}")))?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .map(|pid| (pid, parent_of(pid)))
        .collect();
    all.sort_unstable();
    let mut pids = Vec::new();
    if rec.own_pid_ns && init_ns.is_some() {
        pids.extend(all.iter().map(|(p, _)| *p).filter(|p| ns_of(*p) == init_ns));
    } else if init_ns.is_some() {
        pids.push(rec.pid);
        // Descendants: parents come before children in a pass only by chance, so repeat
        // until a pass adds nothing.
        loop {
            let before = pids.len();
            for (pid, parent) in &all {
                if parent.is_some_and(|p| pids.contains(&p)) && !pids.contains(pid) {
                    pids.push(*pid);
                }
            }
            if pids.len() == before {
                break;
            }
        }
        pids.sort_unstable();
    }
    Ok(pids)
}

/// Reopens the cgroup recorded for a container; an error if it has none.
fn cgroup(rec: &Record) -> Result<Box<dyn Manager>> {
    let config = rec.cgroup.as_ref().ok_or_else(|| {
        Error::invalid(format!(
            "container {:?} has no cgroup: it runs rootless where its user may not create one \
             (delegate a cgroup v2 subtree and set linux.cgroupsPath in it), or an older \
             runtime made it",
            rec.id
        ))
    })?;
    Ok(mini_cgroups::open(config)?)
}
