//! The per-container monitor: a detached process that creates and starts one container, owns its
//! stdio and logs, records its exit durably and answers a unix socket — the part containerd's
//! shim and podman's conmon play. The agent starts monitors ([`spawn`]), talks to them
//! ([`Client`]) and, after a restart, finds them again ([`discover`], [`adopt`]).
//!
//! # Process model
//!
//! `mini-shim monitor` forks the monitor and returns once the container runs (or with the
//! reason it could not start). The monitor has a session of its own and is nobody's child but
//! the host's init (or a subreaper's): killing the agent, its process group or its session does
//! not reach it. It is a child subreaper, single-threaded (one `poll` loop; no async runtime),
//! and creates the container through the mini-run library, so the container's init is its
//! child and its exit status exact. It lives as long as its container, so it is kept small:
//! measured with a release build, 3.9 MB resident of which 0.46 MB private; the rest are the
//! binary's clean pages, shared by every monitor on the host. Under systemd, the agent's unit
//! needs `KillMode=process` (as containerd's has), or stopping the agent would kill the
//! monitors in its cgroup.
//!
//! # The container directory
//!
//! The agent gives each container a directory (`<state-dir>/containers/<id>/`); the monitor
//! adds to it:
//!
//! | file | what |
//! |---|---|
//! | `monitor.pid` | the monitor's pid, flock'ed for its whole life: the lock *is* its liveness |
//! | `monitor.json` | [`MonitorInfo`]: id, bundle, runtime root, log directory, start time |
//! | `monitor.sock` | the socket ([`wire`] documents the protocol); removed when it exits |
//! | `monitor.log` | the monitor's own diagnostics, one line each |
//! | `.monitor.bin` | a hard link of the binary the monitor runs from: replacing the installed binary cannot break its execs |
//! | `exit.json` | [`ExitRecord`], written once, atomically, in space reserved at start |
//! | `log.jsonl`, `log.jsonl.1`.. | the container's output as JSON lines ([`log_record`]), rotated by size; in `--log-dir` if given |
//!
//! The mini-run state of the container lives under the runtime root the agent passes
//! (`<state-dir>/runtime`), so nothing collides with other runtimes on the host.
//!
//! # When things die
//!
//! - **The agent dies**: nothing happens to monitors or containers. A restarted agent calls
//!   [`discover`]: live monitors answer on their sockets; containers that exited meanwhile have
//!   their `exit.json`.
//! - **The container exits**: the monitor reaps it and writes `exit.json` at once (exit code or
//!   signal, OOM kill from the cgroup's `oom_kill` count, time), removes the container from the
//!   runtime (cgroup, leftover processes), logs what is left in the pipes, answers every
//!   `wait`, ends every log follow, and exits. [`Client`] then answers from the directory.
//! - **The monitor dies** (kill -9, a crash): the container is killed with it — the kernel
//!   sends its init SIGKILL (a parent-death signal armed by mini-run for the monitor), which
//!   ends a container with its own pid namespace at once. A container that outlived its monitor
//!   would have nobody to read its output (its writes would fail with EPIPE), nobody to reap it
//!   (its exit status would go to the host's init and be lost) and nobody to stop it; killing it
//!   keeps every container in a known state, as containerd does when a shim dies. [`adopt`]
//!   then records the exit as `"monitor_lost":true` with signal 9 and removes what is left
//!   (processes of a container sharing the host's pid namespace, an init whose parent-death
//!   signal was cleared by executing a set-user-ID binary). The one exit status that cannot be
//!   known is that of a container which exited by itself in the microseconds between its
//!   monitor reaping it and writing `exit.json`; it is reported the same way.
//! - **The disk fills up**: log lines that cannot be written are dropped and counted
//!   ([`ExitRecord::dropped_log_lines`], [`State::dropped_log_lines`]); the container never
//!   blocks on its output and never sees an error, and the exit record has its space reserved.

mod client;
mod connection;
mod daemon;
mod discover;
mod error;
mod exec;
mod exit;
mod layout;
mod log_file;
pub mod log_record;
mod pin;
mod server;
mod startup;
pub mod wire;

pub use client::{Client, LogStream};
pub use discover::{adopt, discover, inspect, Adopted, Found, MonitorStatus};
pub use error::{Error, Result};
pub use exit::ExitRecord;
pub use log_file::LogLimits;
pub use log_record::{LogRecord, Stream};
pub use wire::{ExecResult, ExecSpec, State};

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `mini-shim monitor`: the options of one monitor (the agent builds them with [`spawn`]).
#[derive(clap::Args, Debug, Clone)]
pub struct MonitorArgs {
    /// The container's directory (monitor.sock, exit.json, logs, ... go here).
    #[arg(long)]
    pub dir: PathBuf,
    /// The container id.
    #[arg(long)]
    pub id: String,
    /// The OCI bundle to create the container from.
    #[arg(long)]
    pub bundle: PathBuf,
    /// mini-run's state root for the container.
    #[arg(long = "runtime-root")]
    pub runtime_root: PathBuf,
    /// Where the log files go (default: the container's directory).
    #[arg(long = "log-dir")]
    pub log_dir: Option<PathBuf>,
    /// Rotate the log once it would exceed this many bytes.
    #[arg(long = "log-max-bytes", default_value_t = LogLimits::default().max_bytes)]
    pub log_max_bytes: u64,
    /// Rotated log files to keep besides the current one.
    #[arg(long = "log-max-files", default_value_t = LogLimits::default().max_files)]
    pub log_max_files: u32,
}

impl MonitorArgs {
    /// The `mini-shim` arguments that start a monitor with these options.
    pub fn command_line(&self) -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = vec!["monitor".into(), "--dir".into()];
        a.push(self.dir.clone().into());
        a.extend(["--id".into(), self.id.clone().into(), "--bundle".into()]);
        a.push(self.bundle.clone().into());
        a.push("--runtime-root".into());
        a.push(self.runtime_root.clone().into());
        if let Some(d) = &self.log_dir {
            a.push("--log-dir".into());
            a.push(d.clone().into());
        }
        a.extend([
            "--log-max-bytes".into(),
            self.log_max_bytes.to_string().into(),
            "--log-max-files".into(),
            self.log_max_files.to_string().into(),
        ]);
        a
    }
}

/// Runs `mini-shim monitor`: forks the monitor, prints [`Started`] as a JSON line once the
/// container runs and exits 0, or exits 1 with the reason on stderr.
pub fn main(mut args: MonitorArgs) -> ! {
    // The monitor changes to /: relative paths must not change meaning.
    for p in [&mut args.dir, &mut args.bundle, &mut args.runtime_root]
        .into_iter()
        .chain(args.log_dir.as_mut())
    {
        if let Ok(abs) = std::path::absolute(&*p) {
            *p = abs;
        }
    }
    daemon::main(args)
}

/// What `mini-shim monitor` reports once the container runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// The monitor's pid.
    pub monitor_pid: i32,
    /// The container init's host pid.
    pub pid: i32,
}

/// How a monitor was started (`monitor.json`), written before it creates the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorInfo {
    /// The container id.
    pub id: String,
    /// The bundle.
    pub bundle: PathBuf,
    /// mini-run's state root.
    pub runtime_root: PathBuf,
    /// Where the logs are.
    pub log_dir: PathBuf,
    /// The monitor's pid.
    pub monitor_pid: i32,
    /// When the monitor started: RFC 3339 UTC.
    pub started_at: String,
}

impl MonitorInfo {
    /// Reads `monitor.json` in `dir`.
    pub fn read(dir: &Path) -> Result<MonitorInfo> {
        let path = dir.join(layout::INFO_FILE);
        let data = mini_run::input_file::read(&path, mini_run::input_file::JSON_LIMIT)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        serde_json::from_slice(&data)
            .map_err(|e| Error::Invalid(format!("corrupt {}: {e}", path.display())))
    }

    fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(layout::INFO_FILE);
        let tmp = dir.join(".monitor.json.tmp");
        let data = serde_json::to_vec_pretty(self).expect("serializes");
        mini_run::private_files::write_atomic(&path, &tmp, &data, false)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))
    }
}

/// What the agent asks of a new monitor.
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    /// The `mini-shim` binary (default: the running executable, i.e. the agent's own).
    pub binary: PathBuf,
    /// The container's directory; it must exist.
    pub dir: PathBuf,
    /// The container id.
    pub id: String,
    /// The bundle.
    pub bundle: PathBuf,
    /// mini-run's state root (`<state-dir>/runtime`).
    pub runtime_root: PathBuf,
    /// Where the logs go (default: `dir`).
    pub log_dir: Option<PathBuf>,
    /// Log rotation.
    pub log_limits: LogLimits,
}

impl SpawnOptions {
    /// Options with the running executable as the monitor binary, logs in `dir` and the
    /// default log limits.
    pub fn new(dir: &Path, id: &str, bundle: &Path, runtime_root: &Path) -> SpawnOptions {
        SpawnOptions {
            binary: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe")),
            dir: dir.to_path_buf(),
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
            runtime_root: runtime_root.to_path_buf(),
            log_dir: None,
            log_limits: LogLimits::default(),
        }
    }
}

/// Starts a monitor for a new container and returns once the container runs, or with the
/// reason it could not be started (which is also left in the directory's `exit.json`). Blocks
/// for the container's creation: call it from `spawn_blocking` in async code. The monitor is
/// not the caller's child; a caller that is a child subreaper inherits it, though, and must then
/// reap it when it exits.
pub fn spawn(opts: &SpawnOptions) -> Result<Started> {
    let args = MonitorArgs {
        dir: opts.dir.clone(),
        id: opts.id.clone(),
        bundle: opts.bundle.clone(),
        runtime_root: opts.runtime_root.clone(),
        log_dir: opts.log_dir.clone(),
        log_max_bytes: opts.log_limits.max_bytes,
        log_max_files: opts.log_limits.max_files,
    };
    let mut cmd = std::process::Command::new(&opts.binary);
    cmd.args(args.command_line())
        .stdin(std::process::Stdio::null());
    let out = cmd
        .output()
        .map_err(|e| Error::io(format!("running {}", opts.binary.display()), e))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        let line = text.trim().lines().last().unwrap_or("").to_string();
        let line = line.strip_prefix("mini-shim monitor: ").unwrap_or(&line);
        return Err(Error::Remote(if line.is_empty() {
            format!("mini-shim monitor failed ({})", out.status)
        } else {
            line.to_string()
        }));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::Invalid(format!(
            "mini-shim monitor printed no start report ({e}): {}",
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    })
}

/// Writes one line to the monitor's diagnostics (its stderr, `monitor.log`). Never panics,
/// whatever state the disk is in.
pub(crate) fn diag(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{} {msg}", exit::now());
}
