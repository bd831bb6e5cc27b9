//! `run`: create and start in one step. In the foreground the runtime stays the init's parent:
//! it forwards signals, reaps the init with waitpid (a blocked SIGCHLD stays pending, so an exit
//! is never missed however fast it comes), removes the container and returns its exit status.

use super::create::{self, CreateOptions, StartMode};
use super::delete;
use crate::error::{Context, Result};
use crate::process::signals;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use std::path::Path;

/// Runs the container; returns the exit status `run` should exit with.
pub fn run(root: &Path, opts: &CreateOptions, detach: bool) -> Result<i32> {
    let forwarded = signals::forwarded();
    if !detach {
        // Blocked before the clone: nothing sent from now on is lost or handled by default.
        signals::block(&forwarded)?;
    }
    let created = create::create(root, opts, StartMode::Immediately)?;
    super::run_poststart(&created.record);
    if detach {
        return Ok(0);
    }
    let pid = created.pid;
    let status = loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => break code,
            Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context(|| "waiting for the container"),
        }
        // A timeout bounds the wait even if a signal were somehow lost.
        let timeout = libc::timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        // SAFETY: the set and timeout are valid for the call; no siginfo is requested.
        let sig = unsafe { libc::sigtimedwait(forwarded.as_ref(), std::ptr::null_mut(), &timeout) };
        if sig > 0 && sig != libc::SIGCHLD {
            if let Ok(s) = Signal::try_from(sig) {
                let _ = nix::sys::signal::kill(pid, s);
            }
        }
    };
    delete::destroy(created.dir, &created.record)?;
    Ok(status)
}
