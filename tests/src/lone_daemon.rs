//! A scheduler daemon without agents: a cluster directory made by `mini-sched init` on
//! loopback, the daemon started on a socket of its own, and the CLI pointed at it. For the
//! tests of what the daemon accepts, stores and reports, where no instance needs to run.

use crate::cluster::mini_sched_bin;
use crate::{captured_output, free_port, unique, wait_until, ChildGuard, TempDir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// How long the daemon may take to come up (debug builds on a busy machine).
pub const START: Duration = Duration::from_secs(30);

/// Runs `mini-sched init --state-dir state_dir` (with `init_args`), advertising a free loopback
/// port.
pub fn run_init(state_dir: &Path, init_args: &[&str]) -> Output {
    captured_output(
        Command::new(mini_sched_bin())
            .arg("init")
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--advertise")
            .arg(format!("127.0.0.1:{}", free_port()))
            .args(init_args),
    )
}

/// A cluster directory made by `mini-sched init`, and its daemon when one runs.
pub struct LoneDaemon {
    /// The cluster's directory: `state/` (the cluster) and `daemon.log`.
    pub dir: TempDir,
    /// The daemon's API socket.
    pub socket: PathBuf,
    child: Option<ChildGuard>,
}

impl LoneDaemon {
    /// `mini-sched init` (with `init_args`) advertising a free loopback port, in a temporary
    /// directory named after `what`.
    pub fn init(what: &str, init_args: &[&str]) -> LoneDaemon {
        let dir = TempDir::new(what);
        let init = run_init(&dir.path().join("state"), init_args);
        assert!(init.status.success(), "init: {init:?}");
        let socket = dir.path().join(format!("{}.sock", unique("api")));
        LoneDaemon {
            dir,
            socket,
            child: None,
        }
    }

    /// What the daemon wrote so far (all its runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Starts the daemon on `socket` (joins on a free loopback port); does not wait.
    pub fn spawn(&self, socket: &Path) -> ChildGuard {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .expect("the log");
        ChildGuard::start(
            Command::new(mini_sched_bin())
                .arg("daemon")
                .arg("--state-dir")
                .arg(self.dir.path().join("state"))
                .arg("--socket")
                .arg(socket)
                .arg("--join-listen")
                .arg("127.0.0.1:0")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup"))
                .stderr(log),
        )
    }

    /// Starts the daemon and waits until it answers.
    pub fn start(&mut self) {
        self.child = Some(self.spawn(&self.socket.clone()));
        let up = wait_until(START, || self.cli(&["get", "workloads"]).status.success());
        assert!(up, "the daemon did not come up:\n{}", self.log());
    }

    /// Stops the daemon (killed, as a crash would).
    pub fn stop(&mut self) {
        self.child = None;
    }

    /// Runs the CLI against the daemon.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut c = Command::new(mini_sched_bin());
        c.arg("--socket").arg(&self.socket).args(args);
        c.env_remove("MINI_SCHED_SOCKET");
        captured_output(&mut c)
    }

    /// Runs the CLI, which must succeed, and returns what it printed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "{args:?}: {out:?}\n{}", self.log());
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Runs the CLI (with `-o json` among `args`) and reads its answer.
    pub fn json<T: serde::de::DeserializeOwned>(&self, args: &[&str]) -> T {
        serde_json::from_str(&self.ok(args)).expect("JSON")
    }

    /// `apply -f` of `text` written to a file of its own.
    pub fn apply(&self, text: &str) -> Output {
        let file = self.dir.path().join(format!("{}.yaml", unique("spec")));
        std::fs::write(&file, text).expect("write the spec");
        self.cli(&["apply", "-f", file.to_str().expect("utf-8")])
    }
}
