//! Signal names and numbers as `kill` accepts them, and the signal handling of the runtime's
//! foreground `run` (block, wait, forward) and of the init (reset before exec).

use crate::error::{Context, Error, Result};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Parses `KILL`, `SIGKILL`, `kill` or `9`.
pub fn parse(text: &str) -> Result<Signal> {
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| {
            Error::invalid(format!(
                "unknown signal {text}: use a name like TERM or a number 1-31"
            ))
        });
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>().map_err(|_| {
        Error::invalid(format!(
            "unknown signal {text}: use a name like TERM or a number 1-31"
        ))
    })
}

/// Every signal the foreground `run` forwards to the container (all but those it cannot catch).
pub fn forwarded() -> SigSet {
    let mut set = SigSet::all();
    for s in [Signal::SIGKILL, Signal::SIGSTOP] {
        set.remove(s);
    }
    set
}

/// Blocks `set` in the calling thread (the init inherits the mask and clears it before exec).
pub fn block(set: &SigSet) -> Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(set), None)
        .context(|| "blocking signals")
}

/// Restores default dispositions and an empty mask: the user's process must not inherit the
/// runtime's (Rust ignores SIGPIPE, for one).
pub fn reset_for_exec() -> Result<()> {
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for s in Signal::iterator() {
        if s != Signal::SIGKILL && s != Signal::SIGSTOP {
            // SAFETY: installing SIG_DFL has no handler to be unsafe about.
            unsafe { sigaction(s, &dfl) }.context(|| format!("resetting {s}"))?;
        }
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .context(|| "unblocking signals")
}

/// Makes each signal whose default action ends a process end the calling process, exiting
/// with 128 + the signal. The init of a PID namespace receives only the signals it handles:
/// without this a created container, whose init waits for `start`, would ignore `kill TERM`
/// (runc's init dies of it). Execution of the user's process restores the defaults.
pub fn exit_on_terminating_signals() -> Result<()> {
    extern "C" fn exit_now(sig: libc::c_int) {
        // SAFETY: _exit is async-signal-safe and ends the process at once.
        unsafe { libc::_exit(128 + sig) }
    }
    let standard = [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGTERM,
        libc::SIGSTKFLT,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGIO,
        libc::SIGPWR,
    ];
    for sig in standard
        .into_iter()
        .chain(libc::SIGRTMIN()..=libc::SIGRTMAX())
    {
        // SAFETY: a zeroed sigaction with an empty mask and a handler that only calls _exit.
        let r = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = exit_now as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut())
        };
        nix::errno::Errno::result(r).context(|| format!("handling signal {sig}"))?;
    }
    Ok(())
}

/// Waits for the child `pid`, forwarding every signal in `set` (which the caller blocked before
/// creating it) to it, except SIGWINCH when `on_winch` takes it; returns its exit status, 128 + signal when killed. A blocked SIGCHLD
/// stays pending, so an exit is never missed however fast it comes; a 1 s timeout bounds each
/// wait besides.
pub fn wait_forwarding(pid: Pid, set: &SigSet, on_winch: Option<&dyn Fn()>) -> Result<i32> {
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context(|| format!("waiting for process {pid}")),
        }
        let timeout = libc::timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        // SAFETY: the set and timeout are valid for the call; no siginfo is requested.
        let sig = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &timeout) };
        if sig == libc::SIGWINCH {
            if let Some(f) = on_winch {
                f();
                continue;
            }
        }
        if sig > 0 && sig != libc::SIGCHLD {
            if let Ok(s) = Signal::try_from(sig) {
                let _ = nix::sys::signal::kill(pid, s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_prefixes_parse() {
        assert_eq!(parse("9").unwrap(), Signal::SIGKILL);
        assert_eq!(parse("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse("sigusr1").unwrap(), Signal::SIGUSR1);
        assert!(parse("NOPE").is_err());
        assert!(parse("0").is_err());
    }
}
