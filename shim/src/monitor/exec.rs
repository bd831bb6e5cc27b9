//! `exec` requests: a process started in the container through the mini-run library, as a
//! child of the monitor (so its exit status is exact), with its output captured on pipes and
//! an optional timeout after which it is killed.

use super::daemon::{output_pipe, with_stdio};
use super::error::{Error, Result};
use super::wire::{ExecResult, ExecSpec, EXEC_OUTPUT_MAX};
use mini_run::container::exec::ExecOptions;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the output of an exited process is still read (a child it left may hold it).
const GRACE: Duration = Duration::from_secs(1);

/// A running exec.
pub struct ExecJob {
    pid: Pid,
    pipes: [Option<OwnedFd>; 2],
    captured: [Vec<u8>; 2],
    truncated: bool,
    status: Option<WaitStatus>,
    timeout_at: Option<Instant>,
    timed_out: bool,
    exited_at: Option<Instant>,
}

impl ExecJob {
    /// Starts `spec` in the container `id` of the runtime at `root`; `dir` holds the
    /// temporary pid file, named after `tag`.
    pub fn start(root: &Path, id: &str, dir: &Path, tag: u64, spec: &ExecSpec) -> Result<ExecJob> {
        if spec.args.is_empty() {
            return Err(Error::Invalid("exec needs a command: args is empty".into()));
        }
        let (out_r, out_w) = output_pipe()?;
        let (err_r, err_w) = output_pipe()?;
        let pid_file = dir.join(format!(".exec-{tag}.pid"));
        let opts = ExecOptions {
            id: id.to_string(),
            args: spec.args.clone(),
            env: spec.env.clone(),
            cwd: spec.cwd.clone(),
            user: spec.user.clone(),
            detach: true,
            pid_file: Some(pid_file.clone()),
            ..Default::default()
        };
        let null =
            std::fs::File::open("/dev/null").map_err(|e| Error::io("opening /dev/null", e))?;
        let started = with_stdio([null.as_fd(), out_w.as_fd(), err_w.as_fd()], || {
            mini_run::container::exec::exec(root, &opts)
        });
        drop((out_w, err_w));
        let pid = std::fs::read_to_string(&pid_file);
        let _ = std::fs::remove_file(&pid_file);
        started??;
        let pid = pid
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| {
                Error::Invalid("exec started a process but its pid was not recorded".into())
            })?;
        Ok(ExecJob {
            pid: Pid::from_raw(pid),
            pipes: [Some(out_r), Some(err_r)],
            captured: [Vec::new(), Vec::new()],
            truncated: false,
            status: None,
            timeout_at: spec
                .timeout_ms
                .map(|ms| Instant::now() + Duration::from_millis(ms)),
            timed_out: false,
            exited_at: None,
        })
    }

    /// The process's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The output pipes still open, with their index (0 stdout, 1 stderr).
    pub fn output_fds(&self) -> impl Iterator<Item = (usize, BorrowedFd<'_>)> {
        self.pipes
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|fd| (i, fd.as_fd())))
    }

    /// Reads what pipe `i` has.
    pub fn read_output(&mut self, i: usize, buf: &mut [u8]) {
        let Some(fd) = &self.pipes[i] else { return };
        match nix::unistd::read(fd, buf) {
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
            Ok(0) | Err(_) => self.pipes[i] = None,
            Ok(n) => {
                let room = EXEC_OUTPUT_MAX - self.captured[i].len();
                self.truncated |= n > room;
                self.captured[i].extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }

    /// The process was reaped.
    pub fn exited(&mut self, status: WaitStatus) {
        self.status = Some(status);
        self.exited_at = Some(Instant::now());
    }

    /// When [`ExecJob::time_out`] must be called: the timeout while the process runs, the end
    /// of the grace for its output after it exited.
    pub fn deadline(&self) -> Option<Instant> {
        match self.exited_at {
            None => self.timeout_at,
            Some(t) if self.pipes.iter().any(Option::is_some) => Some(t + GRACE),
            Some(_) => None,
        }
    }

    /// The deadline passed: kills a running process, or stops reading an exited one's output.
    pub fn time_out(&mut self) {
        if self.status.is_none() {
            // Not reaped yet, so the pid is still this process's child.
            let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
            self.timed_out = true;
            self.timeout_at = None;
        } else {
            self.pipes = [None, None];
        }
    }

    /// Whether the process ended and its output is read.
    pub fn done(&self) -> bool {
        self.status.is_some() && self.pipes.iter().all(Option::is_none)
    }

    /// Nobody wants the answer any more: kills the process if it still runs (the monitor
    /// reaps it like any other child).
    pub fn abandon(self) {
        if self.status.is_none() {
            let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
        }
    }

    /// The answer.
    pub fn result(self) -> ExecResult {
        let (exit_code, signal) = match self.status {
            Some(WaitStatus::Exited(_, code)) => (Some(code), None),
            Some(WaitStatus::Signaled(_, sig, _)) => (None, Some(sig as i32)),
            _ => (None, None),
        };
        let [out, err] = self.captured;
        ExecResult {
            exit_code,
            signal,
            timed_out: self.timed_out,
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
            truncated: self.truncated,
        }
    }
}
