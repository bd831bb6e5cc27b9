//! The agent's container operations: run (prepare the bundle, start a monitor), inspect,
//! stop, kill, delete, list, wait, exec, logs and stats — each answered from the state
//! directory and the container's monitor, never from memory that a restart would lose.

use super::bundle::{self, ImageDefaults, Root};
use super::{Agent, Error};
use crate::monitor;
use crate::protocol::{
    self, ContainerInfo, ContainerList, ExecRequest, ExecResult, ExitInfo, LogLine, RunRequest,
    Source, Status, StopRequest,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
}

/// The file holding [`Meta`] in a container's directory.
pub const META_FILE: &str = "meta.json";

/// The directory of an image-based container's overlay rootfs (mini-image's layout: upper,
/// work, merged) inside the container's directory.
pub const ROOTFS_DIR: &str = "rootfs";

/// Imports the image (layers unpacked once per digest, every blob verified) and makes the
/// container's overlay rootfs in `rootfs_dir`.
fn image_root(
    store: &Path,
    image: &Path,
    reference: Option<&str>,
    rootfs_dir: &Path,
    node: &str,
) -> Result<(Root, ImageDefaults, Option<PathBuf>), Error> {
    let unavailable = |e: mini_image::Error| {
        Error::SourceUnavailable(format!("image {} on node {node}: {e}", image.display()))
    };
    if !image.is_absolute() {
        return Err(Error::BadRequest(format!(
            "source.image.path {image:?} must be an absolute path"
        )));
    }
    let store = mini_image::Store::open(store).map_err(unavailable)?;
    let imported = store.import(image, reference).map_err(unavailable)?.image;
    let rootfs = store
        .create_rootfs(&imported, rootfs_dir)
        .map_err(unavailable)?;
    let config = &imported.config;
    let user = mini_image::resolve_user(&rootfs.path(), &config.user).map_err(unavailable)?;
    let defaults = ImageDefaults {
        entrypoint: config.entrypoint.clone(),
        cmd: config.cmd.clone(),
        env: config.env.clone(),
        working_dir: Some(config.cwd().to_string()),
        user: Some((user.uid, user.gid)),
    };
    let root = Root {
        path: rootfs.path(),
        readonly: false,
    };
    Ok((root, defaults, Some(rootfs.upper())))
}

impl Agent {
    /// `<state-dir>/containers`.
    pub fn containers_dir(&self) -> PathBuf {
        self.config.state_dir.join("containers")
    }

    /// `<state-dir>/containers/<id>`, for a valid id.
    fn container_dir(&self, id: &str) -> Result<PathBuf, Error> {
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
        let text = std::fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
        serde_json::from_slice(&text)
            .map_err(|e| Error::Monitor(format!("{} is corrupt: {e}", path.display())))
    }

    /// `POST /v1/containers`.
    pub async fn run(&self, request: RunRequest) -> Result<ContainerInfo, Error> {
        let dir = self.container_dir(&request.id)?;
        let _claim = self.claim(&request.id)?;
        if dir.exists() {
            return Err(Error::Conflict(format!(
                "container {:?} already exists on node {}; delete it first or choose another id",
                request.id, self.config.node
            )));
        }
        if let Source::Rootfs(path) = &request.source {
            self.check_rootfs(Path::new(path))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        let result = async {
            let bundle = self.prepare(&dir, &request).await?;
            self.start(&dir, &request.id, &bundle).await
        }
        .await;
        if let Err(e) = result {
            self.remove_files(&dir).await;
            self.log(&format!("run {}: {e}", request.id));
            return Err(e);
        }
        self.log(&format!("run {}: started", request.id));
        self.info(&request.id).await
    }

    /// A rootfs directory source must be an absolute path to a directory.
    fn check_rootfs(&self, path: &Path) -> Result<(), Error> {
        if !path.is_absolute() {
            return Err(Error::BadRequest(format!(
                "source.rootfs {path:?} must be an absolute path"
            )));
        }
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(Error::SourceUnavailable(format!(
                "rootfs {} on node {} is not a directory",
                path.display(),
                self.config.node
            ))),
            Err(e) => Err(Error::SourceUnavailable(format!(
                "rootfs {} is unavailable on node {}: {e}",
                path.display(),
                self.config.node
            ))),
        }
    }

    /// Makes the root filesystem, writes the bundle (config.json) and meta.json; returns the
    /// bundle directory.
    async fn prepare(&self, dir: &Path, request: &RunRequest) -> Result<PathBuf, Error> {
        let (root, image, writable_layer) = match &request.source {
            // A shared directory: mounted read-only, so no container changes it.
            Source::Rootfs(path) => (
                Root {
                    path: PathBuf::from(path),
                    readonly: true,
                },
                ImageDefaults::default(),
                None,
            ),
            Source::Image(image) => {
                let store = self.config.state_dir.join("images");
                let (image, reference) = (PathBuf::from(&image.path), image.reference.clone());
                let rootfs_dir = dir.join(ROOTFS_DIR);
                let node = self.config.node.clone();
                tokio::task::spawn_blocking(move || {
                    image_root(&store, &image, reference.as_deref(), &rootfs_dir, &node)
                })
                .await
                .map_err(|e| Error::SourceUnavailable(format!("preparing the image: {e}")))??
            }
        };
        // One flat level under /mini-shim, so deleting a container leaves no per-node parent.
        let cgroups_path = format!("/mini-shim/{}_{}", self.config.node, request.id);
        let config = bundle::config(request, &root, &image, &cgroups_path)?;
        let bundle_dir = dir.join("bundle");
        std::fs::create_dir_all(&bundle_dir).map_err(|e| Error::io("creating", &bundle_dir, e))?;
        write_json(&bundle_dir.join("config.json"), &config)?;
        let meta = Meta {
            request: request.clone(),
            created_at: now(),
            cgroups_path,
            writable_layer,
        };
        write_json(&dir.join(META_FILE), &meta)?;
        Ok(bundle_dir)
    }

    /// Starts the container's monitor and waits until the container runs or failed.
    async fn start(&self, dir: &Path, id: &str, bundle: &Path) -> Result<(), Error> {
        let opts = monitor::SpawnOptions::new(dir, id, bundle, &self.runtime_root());
        tokio::task::spawn_blocking(move || monitor::spawn(&opts))
            .await
            .map_err(|e| Error::StartFailed(format!("starting the monitor: {e}")))?
            .map(drop)
            .map_err(|e| Error::StartFailed(format!("container {id:?} did not start: {e}")))
    }

    /// mini-run's state root for this agent's containers.
    fn runtime_root(&self) -> PathBuf {
        self.config.state_dir.join("runtime")
    }

    /// Removes a container's files: its overlay rootfs (unmounted, layers released) and its
    /// directory.
    async fn remove_files(&self, dir: &Path) {
        let rootfs = dir.join(ROOTFS_DIR);
        if rootfs.exists() {
            let store = self.config.state_dir.join("images");
            let removed = tokio::task::spawn_blocking(move || {
                mini_image::Store::open(store).and_then(|s| s.remove_rootfs(&rootfs))
            })
            .await;
            if let Ok(Err(e)) = removed {
                self.log(&format!("removing the rootfs of {}: {e}", dir.display()));
            }
        }
        if let Err(e) = std::fs::remove_dir_all(dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                self.log(&format!("removing {}: {e}", dir.display()));
            }
        }
    }

    /// `GET /v1/containers/{id}`.
    pub async fn info(&self, id: &str) -> Result<ContainerInfo, Error> {
        let dir = self.existing(id)?;
        let meta = Self::read_meta(&dir)?;
        let mut info = ContainerInfo {
            id: id.to_string(),
            status: Status::Unknown,
            pid: None,
            started_at: None,
            exit: None,
            monitor_alive: false,
            reason: None,
            labels: meta.request.labels,
        };
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
    async fn inspect(&self, dir: &Path) -> Result<monitor::MonitorStatus, Error> {
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
                    self.remove_files(&f.dir).await;
                }
                Ok(monitor::MonitorStatus::Live { .. }) => live += 1,
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

    /// `GET /v1/containers`.
    pub async fn list(&self) -> ContainerList {
        let mut ids: Vec<String> = std::fs::read_dir(self.containers_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| protocol::validate_id(id).is_ok())
            .collect();
        ids.sort();
        let mut containers = Vec::with_capacity(ids.len());
        for id in ids {
            // A container being created or deleted right now may have no meta.json yet.
            if let Ok(info) = self.info(&id).await {
                containers.push(info);
            }
        }
        ContainerList { containers }
    }

    /// The client of a running container's monitor.
    async fn running(&self, id: &str) -> Result<monitor::Client, Error> {
        let info = self.info(id).await?;
        if info.status != Status::Running {
            return Err(Error::Conflict(format!(
                "container {id:?} is not running ({})",
                info.reason.unwrap_or_else(|| "it has exited".into())
            )));
        }
        Ok(monitor::Client::new(&self.existing(id)?))
    }

    /// `POST /v1/containers/{id}/kill`.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<(), Error> {
        let signal = parse_signal(signal)?;
        self.running(id)
            .await?
            .kill(signal as i32, false)
            .await
            .map_err(|e| monitor_error(id, "signalling", e))
    }

    /// `POST /v1/containers/{id}/wait`: until the process ended.
    pub async fn wait(&self, id: &str) -> Result<ContainerInfo, Error> {
        let dir = self.existing(id)?;
        if let monitor::MonitorStatus::Live { .. } = self.inspect(&dir).await? {
            monitor::Client::new(&dir)
                .wait()
                .await
                .map_err(|e| monitor_error(id, "waiting for", e))?;
        }
        self.info(id).await
    }

    /// `POST /v1/containers/{id}/stop`: the signal, then SIGKILL to every process of the
    /// container after the grace period.
    pub async fn stop(&self, id: &str, request: StopRequest) -> Result<ContainerInfo, Error> {
        let signal = parse_signal(request.signal.as_deref().unwrap_or("SIGTERM"))?;
        let grace = Duration::from_secs(request.timeout_secs.unwrap_or(10));
        let info = self.info(id).await?;
        if info.status != Status::Running {
            return Ok(info); // nothing runs: already stopped
        }
        let client = monitor::Client::new(&self.existing(id)?);
        let map = |e| monitor_error(id, "stopping", e);
        client
            .kill(signal as i32, false)
            .await
            .or_else(ignore_not_running)
            .map_err(map)?;
        if tokio::time::timeout(grace, client.wait()).await.is_err() {
            client
                .kill(libc::SIGKILL, true)
                .await
                .or_else(ignore_not_running)
                .map_err(map)?;
            client.wait().await.map_err(map)?;
        }
        self.log(&format!("stop {id}: stopped"));
        self.info(id).await
    }

    /// `DELETE /v1/containers/{id}`: refuses a running container unless `force` (then it is
    /// killed first), and removes everything of it.
    pub async fn delete(&self, id: &str, force: bool) -> Result<(), Error> {
        let dir = self.existing(id)?;
        let _claim = self.claim(id)?;
        let info = self.info(id).await?;
        if info.status == Status::Running {
            if !force {
                return Err(Error::Conflict(format!(
                    "container {id:?} is running; stop it first or delete with ?force=true"
                )));
            }
            let client = monitor::Client::new(&dir);
            let map = |e| monitor_error(id, "killing", e);
            client
                .kill(libc::SIGKILL, true)
                .await
                .or_else(ignore_not_running)
                .map_err(map)?;
            client.wait().await.map_err(map)?;
        }
        // The monitor exits once the container is removed from the runtime and its clients
        // have their answers.
        let gone = async {
            while let Ok(monitor::MonitorStatus::Live { .. }) = self.inspect(&dir).await {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(MONITOR_EXIT, gone).await.is_err() {
            return Err(Error::Monitor(format!(
                "the monitor of {id:?} did not exit after its container; try again"
            )));
        }
        // Whatever a dead monitor left in the runtime goes too.
        let d = dir.clone();
        let _ = tokio::task::spawn_blocking(move || monitor::adopt(&d)).await;
        self.remove_files(&dir).await;
        self.log(&format!("delete {id}: removed"));
        Ok(())
    }

    /// `POST /v1/containers/{id}/exec`.
    pub async fn exec(&self, id: &str, request: ExecRequest) -> Result<ExecResult, Error> {
        if request.args.is_empty() {
            return Err(Error::BadRequest("exec needs a command in args".into()));
        }
        for entry in &request.env {
            if entry.split_once('=').is_none_or(|(n, _)| n.is_empty()) {
                return Err(Error::BadRequest(format!(
                    "environment entry {entry:?} is not NAME=value"
                )));
            }
        }
        let timeout = request.timeout_secs.unwrap_or(30).saturating_mul(1000);
        let spec = monitor::ExecSpec {
            args: request.args,
            env: request.env,
            cwd: None,
            user: None,
            timeout_ms: Some(timeout),
        };
        let out = self
            .running(id)
            .await?
            .exec(&spec)
            .await
            .map_err(|e| monitor_error(id, "exec in", e))?;
        Ok(ExecResult {
            exit_code: out
                .exit_code
                .unwrap_or_else(|| 128 + out.signal.unwrap_or(0)),
            stdout: out.stdout,
            stderr: out.stderr,
            timed_out: out.timed_out,
        })
    }

    /// `GET /v1/containers/{id}/logs`: the last `tail` records (all without it), then, with
    /// `follow`, new records until the container's output ends.
    pub async fn logs(
        &self,
        id: &str,
        follow: bool,
        tail: Option<usize>,
    ) -> Result<tokio::sync::mpsc::Receiver<LogLine>, Error> {
        let dir = self.existing(id)?;
        let client = monitor::Client::new(&dir);
        // With a tail, count the records kept so far, to skip all but the last `tail` of them.
        let skip = match tail {
            None => 0,
            Some(tail) => {
                let mut stream = client
                    .logs(false)
                    .await
                    .map_err(|e| monitor_error(id, "reading the logs of", e))?;
                let mut total = 0usize;
                while let Some(Ok(_)) = stream.next().await {
                    total += 1;
                }
                total.saturating_sub(tail)
            }
        };
        let mut stream = client
            .logs(follow)
            .await
            .map_err(|e| monitor_error(id, "reading the logs of", e))?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut seen = 0usize;
            while let Some(Ok(record)) = stream.next().await {
                seen += 1;
                if seen <= skip {
                    continue;
                }
                let line = LogLine {
                    timestamp: record.timestamp,
                    stream: match record.stream {
                        monitor::Stream::Stdout => "stdout",
                        monitor::Stream::Stderr => "stderr",
                        monitor::Stream::Monitor => "monitor",
                    }
                    .to_string(),
                    text: record.text,
                    partial: record.partial,
                };
                if tx.send(line).await.is_err() {
                    break; // the client went away
                }
            }
        });
        Ok(rx)
    }

    /// Reserves `id` for one run or delete at a time.
    fn claim(&self, id: &str) -> Result<Claim<'_>, Error> {
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
struct Claim<'a> {
    agent: &'a Agent,
    id: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.agent.busy.lock().expect("busy set").remove(&self.id);
    }
}

/// How long a monitor may take to exit after its container did.
const MONITOR_EXIT: Duration = Duration::from_secs(30);

/// A signal that arrives after the container exited is no failure for stop and delete.
fn ignore_not_running(e: monitor::Error) -> Result<(), monitor::Error> {
    match e {
        monitor::Error::NotRunning(_) => Ok(()),
        e => Err(e),
    }
}

fn monitor_error(id: &str, what: &str, e: monitor::Error) -> Error {
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

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_vec_pretty(value).expect("serializable");
    std::fs::write(&tmp, text).map_err(|e| Error::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("renaming", &tmp, e))
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
