//! Signal names and numbers as `kill` accepts them, and the signal handling of the runtime's
//! foreground `run` (block, wait, forward) and of the init (reset before exec).

use crate::error::{Context, Error, Result};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};

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
