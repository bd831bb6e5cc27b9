//! The agent's view of its containers: the state directory's layout, what a container's
//! directory and monitor say about it (`info`, `list`), re-adoption after a restart, and the
//! helpers the operations share. Every answer comes from the state directory and the
//! container's monitor, never from memory that a restart would lose. The operations live
//! beside this module: [`mod@super::run`], [`mod@super::stop`], [`mod@super::exec`].

use super::{Agent, Error};
use crate::monitor;
use crate::protocol::{self, ContainerInfo, ContainerList, ExitInfo, RunRequest, Status};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the agent records about a container beside its monitor's files (`meta.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    /// The request it was run with.
    pub request: RunRequest,
    /// When the agent accepted it (RFC 3339).
    pub created_at: String,
    /// Its cgroup (the spec's `linux.cgroupsPath`).
    pub cgroups_path: String,
    /// Its writable layer's directory, for the disk usage figure.
    pub writable_layer: Option<PathBuf>,
    /// For a registry source: the manifest digest of the image it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
}

/// The file holding [`Meta`] in a container's directory.
pub const META_FILE: &str = "meta.json";

/// The directory of the containers' directories in the state directory.
pub const CONTAINERS_DIR: &str = "containers";
/// The image store's directory in the state directory.
pub const IMAGES_DIR: &str = "images";
/// mini-run's state root in the state directory.
pub const RUNTIME_DIR: &str = "runtime";

/// How many containers' monitors a list asks at once.
pub const LIST_PARALLEL: usize = 16;

/// The directory of an image-based container's overlay rootfs (mini-image's layout: upper,
/// work, merged) inside the container's directory.
pub const ROOTFS_DIR: &str = "rootfs";

impl Agent {
    /// `<state-dir>/containers`.
    pub fn containers_dir(&self) -> PathBuf {
        self.config.state_dir.join(CONTAINERS_DIR)
    }

    /// `<state-dir>/containers/<id>`, for a valid id.
    pub(super) fn container_dir(&self, id: &str) -> Result<PathBuf, Error> {
        protocol::validate_id(id).map_err(Error::BadRequest)?;
        Ok(self.containers_dir().join(id))
    }

    /// The directory of an existing container.
    pub(super) fn existing(&self, id: &str) -> Result<PathBuf, Error> {
        let dir = self.container_dir(id)?;
        if !dir.join(META_FILE).exists() {
            return Err(Error::NotFound(format!(
                "no container {id:?} on node {}",
                self.config.node
            )));
        }
        Ok(dir)
    }

    pub(super) fn read_meta(dir: &Path) -> Result<Meta, Error> {
        let path = dir.join(META_FILE);
        let text = mini_run::input_file::read(&path, mini_run::input_file::JSON_LIMIT)
            .map_err(|e| Error::io("reading", &path, e))?;
        serde_json::from_slice(&text)
            .map_err(|e| Error::Monitor(format!("{} is corrupt: {e}", path.display())))
    }

    /// The image store.
    pub(super) fn images_dir(&self) -> PathBuf {
        self.config.state_dir.join(IMAGES_DIR)
    }

    /// mini-run's state root for this agent's containers.
    pub(super) fn runtime_root(&self) -> PathBuf {
        self.config.state_dir.join(RUNTIME_DIR)
    }

    /// Removes a container's files: its overlay rootfs (unmounted, layers released) and its
    /// directory.
    pub(super) async fn remove_files(&self, dir: &Path) -> Result<(), Error> {
        // The cluster network first: DEL needs the recorded result, and the namespace's
        // mount must go before its directory can.
        self.detach(dir).await;
        let rootfs = dir.join(ROOTFS_DIR);
        if rootfs.exists() {
            let store = self.images_dir();
            let removed = tokio::task::spawn_blocking(move || {
                mini_image::Store::open(store).and_then(|s| s.remove_rootfs(&rootfs))
            })
            .await;
            if let Ok(Err(e)) = removed {
                self.log(&format!("removing the rootfs of {}: {e}", dir.display()));
            }
        }
        // A monitor on its way out may still be closing (and writing) its files: a directory
        // that is not empty yet is tried again for a while.
        let mut attempts = 0;
        loop {
            match std::fs::remove_dir_all(dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(_) if attempts < 100 => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => {
                    self.log(&format!("removing {}: {e}", dir.display()));
                    return Err(Error::io("removing", dir, e));
                }
            }
        }
    }

    /// `GET /v1/containers/{id}`.
    pub async fn info(&self, id: &str) -> Result<ContainerInfo, Error> {
        if let Some(h) = self.hollow() {
            return self.hollow_info(h, id);
        }
        let dir = self.existing(id)?;
        let mut info = Self::unread(id, &dir, Some(Self::read_meta(&dir)?));
        let exit = match self.inspect(&dir).await? {
            monitor::MonitorStatus::Live { .. } => {
                let state = monitor::Client::new(&dir)
                    .state()
                    .await
                    .map_err(|e| Error::Monitor(format!("asking the monitor of {id:?}: {e}")))?;
                info.monitor_alive = state.exit.is_none();
                info.started_at = Some(state.started_at);
                if state.exit.is_none() && state.pid > 0 {
                    info.status = Status::Running;
                    info.pid = Some(state.pid);
                }
                state.exit
            }
            monitor::MonitorStatus::Exited(record) => Some(record),
            monitor::MonitorStatus::Unclaimed => {
                info.reason = Some("it is being created".into());
                None
            }
            // Settled by inspect: never returned.
            monitor::MonitorStatus::Orphaned { .. } | monitor::MonitorStatus::Lost => None,
        };
        if let Some(record) = exit {
            info.status = Status::Exited;
            info.reason = exit_reason(&record);
            info.exit = Some(exit_info(&record));
        }
        Ok(info)
    }

    /// What the directory holds; a container whose monitor died is settled on the spot (killed
    /// if anything of it runs, recorded as lost), so only live, exited and unclaimed remain.
    pub(super) async fn inspect(&self, dir: &Path) -> Result<monitor::MonitorStatus, Error> {
        let d = dir.to_path_buf();
        let found = tokio::task::spawn_blocking(move || match monitor::inspect(&d)? {
            monitor::MonitorStatus::Orphaned { .. } | monitor::MonitorStatus::Lost => {
                match monitor::adopt(&d)? {
                    monitor::Adopted::Exited(record) => Ok(monitor::MonitorStatus::Exited(record)),
                    monitor::Adopted::Live(_) => monitor::inspect(&d),
                }
            }
            status => Ok(status),
        })
        .await
        .map_err(|e| Error::Monitor(format!("inspecting {}: {e}", dir.display())))?;
        found.map_err(|e| Error::Monitor(format!("inspecting {}: {e}", dir.display())))
    }

    /// Called once at start: settles every container directory left by a previous agent —
    /// live monitors are kept, exits that happened meanwhile are read, containers whose
    /// monitor died are recorded as lost, and a run the previous agent did not finish (no
    /// monitor ever claimed it) is removed.
    pub async fn adopt_all(&self) {
        let state_dir = self.config.state_dir.clone();
        let found = tokio::task::spawn_blocking(move || monitor::discover(&state_dir)).await;
        let found = match found {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => return self.log(&format!("finding containers: {e}")),
            Err(e) => return self.log(&format!("finding containers: {e}")),
        };
        let (mut live, mut exited) = (0, 0);
        for f in found {
            match f.status {
                Ok(monitor::MonitorStatus::Unclaimed) => {
                    self.log(&format!("{}: an unfinished run; removing it", f.id));
                    let _ = self.remove_files(&f.dir).await;
                }
                Ok(monitor::MonitorStatus::Live { .. }) => {
                    self.check_network(&f.dir, &f.id).await;
                    live += 1;
                }
                Ok(_) => match self.inspect(&f.dir).await {
                    Ok(_) => exited += 1,
                    Err(e) => self.log(&format!("{}: {e}", f.id)),
                },
                Err(e) => self.log(&format!("{}: {e}", f.id)),
            }
        }
        self.log(&format!(
            "adopted {live} running and {exited} ended containers"
        ));
    }

    /// The ids of the containers' directories, sorted.
    pub(super) fn container_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.containers_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| protocol::validate_id(id).is_ok())
            .collect();
        ids.sort();
        ids
    }

    /// `GET /v1/containers[?stats=true]`: with `stats`, each running container's last usage
    /// sample (see [`super::usage`]). Up to [`LIST_PARALLEL`] monitors are asked at once, each
    /// within [`monitor::CALL_TIMEOUT`]; a container whose state cannot be read is listed as
    /// `unknown` with the reason, never left out.
    pub async fn list(&self, stats: bool) -> ContainerList {
        if let Some(h) = self.hollow() {
            return self.hollow_list(h, stats);
        }
        use futures_util::StreamExt;
        let entries = futures_util::stream::iter(self.container_ids())
            .map(|id| async move {
                match self.info(&id).await {
                    Ok(mut info) => {
                        if stats && info.status == Status::Running {
                            info.stats = self.last_stats(&id);
                        }
                        Some(info)
                    }
                    // A container being created or deleted right now may have no meta.json yet.
                    Err(Error::NotFound(_)) => None,
                    Err(e) => self.unknown(&id, &e),
                }
            })
            .buffered(LIST_PARALLEL)
            .collect::<Vec<_>>()
            .await;
        ContainerList {
            containers: entries.into_iter().flatten().collect(),
        }
    }

    /// A container whose state could not be read: `unknown`, with why (`None` if its
    /// directory is gone meanwhile).
    fn unknown(&self, id: &str, e: &Error) -> Option<ContainerInfo> {
        let dir = self.existing(id).ok()?;
        let mut info = Self::unread(id, &dir, Self::read_meta(&dir).ok());
        info.reason = Some(format!("its state could not be read: {e}"));
        Some(info)
    }

    /// What a container's directory says of it before its monitor is asked: `unknown`, with
    /// its labels and address.
    fn unread(id: &str, dir: &Path, meta: Option<Meta>) -> ContainerInfo {
        let (labels, image_digest) =
            meta.map_or_else(Default::default, |m| (m.request.labels, m.image_digest));
        ContainerInfo {
            id: id.to_string(),
            status: Status::Unknown,
            pid: None,
            started_at: None,
            exit: None,
            monitor_alive: false,
            reason: None,
            labels,
            address: Self::address(dir),
            stats: None,
            image_digest,
        }
    }

    /// The client of a running container's monitor.
    pub(super) async fn running(&self, id: &str) -> Result<monitor::Client, Error> {
        let info = self.info(id).await?;
        if info.status != Status::Running {
            return Err(Error::Conflict(format!(
                "container {id:?} is not running ({})",
                info.reason.unwrap_or_else(|| "it has exited".into())
            )));
        }
        Ok(monitor::Client::new(&self.existing(id)?))
    }

    /// Reserves `id` for one run or delete at a time.
    pub(super) fn claim(&self, id: &str) -> Result<Claim<'_>, Error> {
        let mut busy = self.busy.lock().expect("busy set");
        if !busy.insert(id.to_string()) {
            return Err(Error::Conflict(format!(
                "container {id:?} is being created or deleted; try again"
            )));
        }
        Ok(Claim {
            agent: self,
            id: id.to_string(),
        })
    }
}

/// An id reserved by [`Agent::claim`], released on drop.
pub(super) struct Claim<'a> {
    agent: &'a Agent,
    id: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.agent.busy.lock().expect("busy set").remove(&self.id);
    }
}

pub(super) fn monitor_error(id: &str, what: &str, e: monitor::Error) -> Error {
    match e {
        monitor::Error::NotRunning(_) => {
            Error::Conflict(format!("container {id:?} is not running"))
        }
        e => Error::Monitor(format!("{what} {id:?}: {e}")),
    }
}

/// The protocol's view of an exit record.
fn exit_info(record: &monitor::ExitRecord) -> ExitInfo {
    ExitInfo {
        code: record.status(),
        signal: record
            .signal
            .and_then(|n| nix::sys::signal::Signal::try_from(n).ok())
            .map(|s| s.as_str().to_string()),
        oom_killed: record.oom_killed,
        finished_at: record.finished_at.clone(),
    }
}

/// Why an exit needs explaining: the container never ran, or its monitor died.
fn exit_reason(record: &monitor::ExitRecord) -> Option<String> {
    if let Some(error) = &record.error {
        Some(format!("it never ran: {error}"))
    } else if record.monitor_lost {
        Some("its monitor died, and the container was killed with it".into())
    } else if record.dropped_log_lines > 0 {
        Some(format!(
            "{} lines of output were dropped (the disk was full)",
            record.dropped_log_lines
        ))
    } else {
        None
    }
}

/// Reads `SIGTERM`, `TERM` or `15`.
pub fn parse_signal(s: &str) -> Result<nix::sys::signal::Signal, Error> {
    use std::str::FromStr;
    let bad = || Error::BadRequest(format!("{s:?} is not a signal name or number"));
    if let Ok(n) = s.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n).map_err(|_| bad());
    }
    let name = s.to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    nix::sys::signal::Signal::from_str(&name).map_err(|_| bad())
}

/// Now, RFC 3339.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_short_name_and_number() {
        use nix::sys::signal::Signal;
        assert_eq!(parse_signal("SIGTERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("kill").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("2").unwrap(), Signal::SIGINT);
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
}
