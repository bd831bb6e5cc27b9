//! Loading a compiled filter into the calling process: one `seccomp(2)` call.

use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use super::Filter;
use crate::error::{Error, Result};

/// The `SECCOMP_FILTER_FLAG_*` names, for messages.
pub(super) const FLAG_NAMES: [(libc::c_ulong, &str); 6] = [
    (libc::SECCOMP_FILTER_FLAG_TSYNC, "SECCOMP_FILTER_FLAG_TSYNC"),
    (libc::SECCOMP_FILTER_FLAG_LOG, "SECCOMP_FILTER_FLAG_LOG"),
    (
        libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    ),
    (
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
        "SECCOMP_FILTER_FLAG_NEW_LISTENER",
    ),
    (
        libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
        "SECCOMP_FILTER_FLAG_TSYNC_ESRCH",
    ),
    (
        libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    ),
];

impl Filter {
    /// Installs the filter in the calling thread (in every thread of the process with
    /// `SECCOMP_FILTER_FLAG_TSYNC`); returns the notify listener fd (close-on-exec) when a rule
    /// uses `SCMP_ACT_NOTIFY`, else `None`.
    ///
    /// Meant as the last step before execve: after it, every syscall the process makes is
    /// filtered. On success it makes exactly one system call and neither allocates nor frees
    /// (the program's memory is left to execve to reclaim), so it may run in a child forked from
    /// a multi-threaded process. Failures are reported with the cause: most commonly the process
    /// has neither no_new_privs (the caller sets it when `process.noNewPrivileges` asks) nor
    /// CAP_SYS_ADMIN, or the kernel does not know a requested filter flag.
    pub fn install(self) -> Result<Option<OwnedFd>> {
        let filter = ManuallyDrop::new(self);
        let prog = libc::sock_fprog {
            // compile() keeps the program within BPF_MAXINSNS (4096).
            len: filter.program.len() as libc::c_ushort,
            filter: filter.program.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points at `len` initialised instructions that outlive the call (the
        // kernel copies them).
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                filter.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if ret < 0 {
            return Err(install_error(Errno::last(), filter.flags));
        }
        if filter.flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
            // SAFETY: with NEW_LISTENER the kernel returns a new fd that nothing else owns.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(ret as RawFd) }));
        }
        if ret > 0 {
            // TSYNC without a listener: the id of a thread that could not be synchronized.
            return Err(Error::Sys {
                context: format!(
                    "installing the seccomp filter: thread {ret} could not be synchronized \
                     (SECCOMP_FILTER_FLAG_TSYNC)"
                ),
                errno: Errno::ESRCH,
            });
        }
        Ok(None)
    }
}

/// Explains why `seccomp(SECCOMP_SET_MODE_FILTER)` failed.
fn install_error(errno: Errno, flags: libc::c_ulong) -> Error {
    let context = match errno {
        Errno::EACCES => {
            // SAFETY: PR_GET_NO_NEW_PRIVS takes no pointers.
            let nnp = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
            if nnp == 1 {
                "installing the seccomp filter: permission denied".to_string()
            } else {
                "installing the seccomp filter: no_new_privs is not set and the process lacks \
                 CAP_SYS_ADMIN; set process.noNewPrivileges to true in config.json or keep \
                 CAP_SYS_ADMIN in the bounding and effective sets"
                    .to_string()
            }
        }
        Errno::EINVAL => format!(
            "installing the seccomp filter: the kernel rejected the program or the flags [{}] \
             (a flag newer than this kernel?)",
            flag_names(flags).join(", ")
        ),
        Errno::ESRCH => "installing the seccomp filter: another thread could not be \
                         synchronized (SECCOMP_FILTER_FLAG_TSYNC)"
            .to_string(),
        _ => format!(
            "installing the seccomp filter (flags [{}])",
            flag_names(flags).join(", ")
        ),
    };
    Error::Sys { context, errno }
}

/// The names of the flags set in `flags`.
fn flag_names(flags: libc::c_ulong) -> Vec<&'static str> {
    FLAG_NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|&(_, name)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eacces_explains_no_new_privs() {
        // The test process has no no_new_privs (cargo does not set it).
        let msg = install_error(Errno::EACCES, 0).to_string();
        assert!(
            msg.contains("no_new_privs") || msg.contains("permission denied"),
            "{msg}"
        );
    }

    #[test]
    fn einval_names_the_flags() {
        let msg = install_error(
            Errno::EINVAL,
            libc::SECCOMP_FILTER_FLAG_LOG | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
        )
        .to_string();
        assert!(msg.contains("SECCOMP_FILTER_FLAG_LOG"), "{msg}");
        assert!(
            msg.contains("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"),
            "{msg}"
        );
    }
}
