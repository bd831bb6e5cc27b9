//! Finding monitors again: what a (re)started agent does with every container directory under
//! its state directory. [`inspect`] only looks; [`adopt`] also settles a container whose
//! monitor died, so that every directory ends up either served by a live monitor or holding an
//! exit record.

use super::client::Client;
use super::error::{Error, Result};
use super::exit::{self, ExitRecord};
use super::layout;
use super::MonitorInfo;
use mini_run::process::liveness::{self, Liveness};
use nix::fcntl::{Flock, FlockArg};
use std::path::{Path, PathBuf};

/// What a container directory says about its monitor and container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorStatus {
    /// A monitor serves the container (it may be running, or just ending).
    Live {
        /// The monitor's pid.
        monitor_pid: i32,
    },
    /// The container ended and its exit was recorded.
    Exited(ExitRecord),
    /// The monitor died without recording an exit, and the container still runs (its
    /// parent-death signal did not end it): [`adopt`] kills it and records the loss.
    Orphaned {
        /// The container init's host pid.
        pid: i32,
    },
    /// The monitor died without recording an exit, and the container is gone (killed with its
    /// monitor): [`adopt`] records the loss.
    Lost,
    /// No monitor has claimed the directory (yet): a spawn is under way, or never happened.
    Unclaimed,
}

/// A container directory found by [`discover`].
#[derive(Debug, Clone)]
pub struct Found {
    /// The container id (the directory's name).
    pub id: String,
    /// The directory.
    pub dir: PathBuf,
    /// What it holds, or why it could not be read.
    pub status: Result<MonitorStatus, String>,
}

/// Every container directory under `<state_dir>/containers`, sorted by id.
pub fn discover(state_dir: &Path) -> Result<Vec<Found>> {
    let root = state_dir.join("containers");
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("reading {}", root.display()), e)),
    };
    let mut found: Vec<Found> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            let dir = e.path();
            Found {
                id: e.file_name().to_string_lossy().into_owned(),
                status: inspect(&dir).map_err(|e| e.to_string()),
                dir,
            }
        })
        .collect();
    found.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(found)
}

/// Whether a monitor holds `monitor.pid` locked; its pid if so, `None` if there is no file.
fn live_monitor(dir: &Path) -> Result<Option<Option<i32>>> {
    let path = dir.join(layout::PID_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("opening {}", path.display()), e)),
    };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        // Got the lock: no monitor holds it. Dropping the Flock releases it.
        Ok(_) => Ok(Some(None)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            let pid = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            Ok(Some(Some(pid)))
        }
        Err((_, e)) => Err(Error::io(format!("probing {}", path.display()), e.into())),
    }
}

/// What the directory `dir` holds.
pub fn inspect(dir: &Path) -> Result<MonitorStatus> {
    match live_monitor(dir)? {
        None => return Ok(MonitorStatus::Unclaimed),
        Some(Some(monitor_pid)) => return Ok(MonitorStatus::Live { monitor_pid }),
        Some(None) => {}
    }
    if let Some(record) = exit::read(dir)? {
        return Ok(MonitorStatus::Exited(record));
    }
    let Ok(info) = MonitorInfo::read(dir) else {
        return Ok(MonitorStatus::Lost);
    };
    Ok(match runtime_record(&info) {
        Some(rec) if liveness::check(rec.pid, rec.pid_start_time) == Liveness::Alive => {
            MonitorStatus::Orphaned { pid: rec.pid }
        }
        _ => MonitorStatus::Lost,
    })
}

/// mini-run's record of the container, if it still has one.
fn runtime_record(info: &MonitorInfo) -> Option<mini_run::state::Record> {
    let dir = mini_run::state::ContainerDir::open(&info.runtime_root, &info.id).ok()?;
    dir.load().ok()
}

/// What [`adopt`] leaves a directory as.
#[derive(Debug)]
pub enum Adopted {
    /// A live monitor serves it.
    Live(Client),
    /// The container has ended; here is how.
    Exited(ExitRecord),
}

/// Takes charge of the container directory `dir` after an agent (re)start: a live monitor is
/// returned as a [`Client`]; an ended container's record is returned, after removing what the
/// runtime may still hold of it; a container whose monitor died is killed (if anything of it
/// runs), removed from the runtime, and recorded as `monitor_lost`. Blocks while the runtime
/// removes a container: call it from `spawn_blocking` in async code. Not for a directory a
/// [`super::spawn`] is still working on.
pub fn adopt(dir: &Path) -> Result<Adopted> {
    match inspect(dir)? {
        MonitorStatus::Live { .. } => Ok(Adopted::Live(Client::new(dir))),
        MonitorStatus::Unclaimed => Err(Error::Invalid(format!(
            "no monitor ever claimed {}: start one, or remove the directory",
            dir.display()
        ))),
        MonitorStatus::Exited(record) => {
            remove_from_runtime(dir);
            Ok(Adopted::Exited(record))
        }
        MonitorStatus::Orphaned { .. } | MonitorStatus::Lost => {
            let oom_killed = MonitorInfo::read(dir)
                .ok()
                .and_then(|info| runtime_record(&info))
                .and_then(|rec| rec.cgroup)
                .and_then(|c| mini_cgroups::open(&c).ok())
                .and_then(|m| m.oom_kill_count().ok())
                .is_some_and(|n| n > 0);
            remove_from_runtime(dir);
            let record = ExitRecord::monitor_lost(oom_killed);
            exit::write(dir, &record)?;
            Ok(Adopted::Exited(record))
        }
    }
}

/// Kills and removes whatever the runtime still holds of the container of a dead monitor, and
/// the files only a live monitor uses.
fn remove_from_runtime(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(layout::SOCKET));
    let _ = std::fs::remove_file(dir.join(layout::EXIT_RESERVE));
    let _ = std::fs::remove_file(dir.join(layout::PINNED_BINARY));
    if let Ok(info) = MonitorInfo::read(dir) {
        let _ = mini_run::container::delete::delete(&info.runtime_root, &info.id, true);
    }
}
