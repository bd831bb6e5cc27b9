//! Signal names and numbers as `kill` accepts them, and the signal handling of the runtime's
//! foreground `run` (block, wait, forward) and of the init (reset before exec).

use crate::error::{Context, Error, Result};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

/// The highest signal number `kill` accepts (SIGRTMAX on Linux).
pub fn max() -> i32 {
    libc::SIGRTMAX()
}

/// Parses a signal as `kill` takes it: a number from 0 (no signal: only checks that the
/// process exists) to SIGRTMAX, a name with or without `SIG` in any case (`KILL`, `sigterm`),
/// or a real-time signal as `RTMIN`, `RTMIN+N`, `RTMAX` or `RTMAX-N` (`SIGRTMIN+3` is what
/// podman and docker pass for systemd containers, as the number 37).
pub fn parse(text: &str) -> Result<i32> {
    let bad = || {
        Error::invalid(format!(
            "unknown signal {text:?}: use a name like TERM or RTMIN+3, or a number from 0 to {}",
            max()
        ))
    };
    if let Ok(n) = text.parse::<i32>() {
        return if (0..=max()).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let realtime = |base: i32, rest: &str| -> Option<i32> {
        let n = match rest.as_bytes().first() {
            None => base,
            Some(b'+') => base.checked_add(rest[1..].parse::<u8>().ok()?.into())?,
            Some(b'-') => base.checked_sub(rest[1..].parse::<u8>().ok()?.into())?,
            Some(_) => return None,
        };
        (libc::SIGRTMIN()..=max()).contains(&n).then_some(n)
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return realtime(libc::SIGRTMIN(), rest).ok_or_else(bad);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return realtime(max(), rest).ok_or_else(bad);
    }
    format!("SIG{name}")
        .parse::<Signal>()
        .map(|s| s as i32)
        .map_err(|_| bad())
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
        // libc's waitpid, not nix's: nix cannot represent a real-time signal in a wait status.
        let mut status = 0;
        // SAFETY: waitpid writes the status into our local.
        match unsafe { libc::waitpid(pid.as_raw(), &mut status, libc::WNOHANG) } {
            0 => {}
            r if r > 0 && libc::WIFEXITED(status) => return Ok(libc::WEXITSTATUS(status)),
            r if r > 0 && libc::WIFSIGNALED(status) => return Ok(128 + libc::WTERMSIG(status)),
            r if r > 0 => {}
            _ => match nix::errno::Errno::last() {
                nix::errno::Errno::EINTR => continue,
                e => return Err(e).context(|| format!("waiting for process {pid}")),
            },
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
            // SAFETY: kill(2) has no memory-safety preconditions (real-time signals included).
            unsafe { libc::kill(pid.as_raw(), sig) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_prefixes_parse() {
        assert_eq!(parse("9").unwrap(), libc::SIGKILL);
        assert_eq!(parse("0").unwrap(), 0);
        assert_eq!(parse("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse("sigusr1").unwrap(), libc::SIGUSR1);
        assert!(parse("NOPE").is_err());
        assert!(parse("-1").is_err());
        assert!(parse("65").is_err());
    }

    #[test]
    fn real_time_signals_parse_by_number_and_name() {
        let min = libc::SIGRTMIN();
        assert_eq!(parse("37").unwrap(), 37);
        assert_eq!(parse("64").unwrap(), 64);
        assert_eq!(parse("SIGRTMIN+3").unwrap(), min + 3);
        assert_eq!(parse("rtmin+3").unwrap(), min + 3);
        assert_eq!(parse("RTMIN").unwrap(), min);
        assert_eq!(parse("SIGRTMAX-2").unwrap(), libc::SIGRTMAX() - 2);
        for bad in [
            "RTMIN+99", "RTMAX+1", "RTMIN-1", "RTMIN3", "RTMIN+", "RTMIN+x",
        ] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
    }
}
