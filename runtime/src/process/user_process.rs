//! The user's process, as the init or an `exec` becomes it: limits, credentials, capabilities,
//! working directory, executable lookup, no_new_privs and umask (prepared while errors can still
//! reach the runtime), then signal reset, close-on-exec of every runtime descriptor, and execve.

use crate::capabilities;
use crate::error::{Context, Error, Result};
use crate::identity;
use crate::process::channel::Channel;
use crate::process::message::Message;
use crate::process::signals;
use crate::rlimits;
use crate::seccomp;
use nix::sys::stat::Mode;
use oci_spec::runtime::LinuxSeccomp;
use oci_spec::runtime::Process;
use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::AsFd;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

/// A process ready to execute.
pub struct Prepared {
    exe: PathBuf,
    argv: Vec<CString>,
    envp: Vec<CString>,
    seccomp: Option<seccomp::Filter>,
}

/// Applies the spec's process settings to the calling process and its seccomp profile.
///
/// Where the profile is installed follows runc: without no_new_privs installing a filter
/// needs CAP_SYS_ADMIN, so it goes first, before capabilities are dropped; with no_new_privs
/// it goes as late as possible, in [`exec`] right before execve. A filter with
/// SCMP_ACT_NOTIFY rules is installed by now either way, and its listener sent over `ch` to
/// the runtime, which hands it to the agent (the filtered process never has to reach it).
pub fn prepare(
    process: &Process,
    profile: Option<&LinuxSeccomp>,
    ch: &mut Channel,
) -> Result<Prepared> {
    let mut seccomp = profile.map(seccomp::compile).transpose()?;
    let nnp = process.no_new_privileges() == Some(true);
    // The working directory first, while still root and before any filter: a directory only
    // root can enter works for any user (as in runc), and the check that it lies inside the
    // root cannot be broken by a profile that denies getcwd.
    let cwd_entered = try_enter_cwd(process.cwd())?;
    if !nnp {
        if let Some(filter) = seccomp.take() {
            install(filter, ch)?;
        }
    }
    if let Some(rl) = process.rlimits() {
        rlimits::apply(rl)?;
    }
    if let Some(c) = process.capabilities() {
        capabilities::limit_bounding(c)?;
    }
    identity::switch(process.user())?;
    if let Some(c) = process.capabilities() {
        capabilities::apply(c)?;
    }
    if !cwd_entered {
        // Root was refused (a directory of an unmapped owner, root-squashed NFS): the user may
        // be allowed.
        nix::unistd::chdir(process.cwd())
            .context(|| format!("entering process.cwd {}", process.cwd().display()))?;
        check_cwd_inside_root(process.cwd())?;
    }
    let env = process.env().clone().unwrap_or_default();
    let args = process
        .args()
        .as_ref()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Error::invalid("process.args is empty: give the command to run"))?;
    let exe = find_executable(&args[0], &env)?;
    if nnp {
        nix::sys::prctl::set_no_new_privs().context(|| "setting no_new_privs")?;
    }
    if seccomp.as_ref().is_some_and(|f| f.notifies()) {
        install(seccomp.take().expect("checked"), ch)?;
    }
    nix::sys::stat::umask(Mode::from_bits_truncate(
        process.user().umask().unwrap_or(0o022),
    ));
    Ok(Prepared {
        exe,
        argv: args.iter().map(|a| cstring(a)).collect(),
        envp: env.iter().map(|e| cstring(e)).collect(),
        seccomp,
    })
}

/// Installs a filter now; a notify listener goes to the runtime.
fn install(filter: seccomp::Filter, ch: &mut Channel) -> Result<()> {
    if let Some(listener) = filter.install()? {
        ch.send_with_fd(&Message::SeccompListener, listener.as_fd())?;
    }
    Ok(())
}

/// Executes the prepared process, passing on stdio and `preserve_fds` descriptors after it.
pub fn exec(p: Prepared, preserve_fds: i32) -> Result<Infallible> {
    signals::reset_for_exec()?;
    close_runtime_fds(3 + preserve_fds)?;
    // Last, so the filter constrains the user's process and nothing of the runtime's setup.
    if let Some(filter) = p.seccomp {
        filter.install()?;
    }
    nix::unistd::execve(&cstring(&p.exe.to_string_lossy()), &p.argv, &p.envp)
        .context(|| format!("executing {}", p.exe.display()))
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).expect("NULs removed")
}

/// Enters the working directory with the runtime's credentials and checks that it lies inside
/// the container's root; `Ok(false)` if permission was denied (to be tried again as the user).
fn try_enter_cwd(cwd: &Path) -> Result<bool> {
    match nix::unistd::chdir(cwd) {
        Ok(()) => check_cwd_inside_root(cwd).map(|()| true),
        Err(nix::errno::Errno::EACCES | nix::errno::Errno::EPERM) => Ok(false),
        Err(e) => Err(e).context(|| format!("entering process.cwd {}", cwd.display())),
    }
}

/// Checks that the working directory just entered lies inside the container's root: a path
/// through a leaked descriptor (`/proc/self/fd/N`, the CVE-2024-21626 shape) leaves getcwd
/// unable to name it.
fn check_cwd_inside_root(cwd: &Path) -> Result<()> {
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        _ => Err(Error::invalid(format!(
            "process.cwd {} is outside the container's root",
            cwd.display()
        ))),
    }
}

/// Resolves the command as execvp would, with the container's PATH. The check uses the
/// effective ids and capabilities, as execve does (`AT_EACCESS`): access(2) uses the real uid
/// and drops every capability of a non-root one, so it refused what CAP_DAC_OVERRIDE allows.
fn find_executable(cmd: &str, env: &[String]) -> Result<PathBuf> {
    let executable = |p: &Path| {
        nix::unistd::faccessat(
            nix::fcntl::AT_FDCWD,
            p,
            nix::unistd::AccessFlags::X_OK,
            nix::fcntl::AtFlags::AT_EACCESS,
        )
        .is_ok()
            && std::fs::metadata(p).is_ok_and(|m| m.is_file())
    };
    if cmd.contains('/') {
        let p = PathBuf::from(cmd);
        return if executable(&p) {
            Ok(p)
        } else {
            Err(Error::invalid(format!(
                "exec {cmd:?}: no such executable file in the container"
            )))
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .map(|d| Path::new(if d.is_empty() { "." } else { d }).join(cmd))
        .find(|p| executable(p))
        .ok_or_else(|| {
            Error::invalid(format!(
                "exec {cmd:?}: executable file not found in $PATH ({path})"
            ))
        })
}

/// Closes every descriptor from `first` up but those in `keep`. The runtime's caller may have
/// leaked descriptors it did not pass with --preserve-fds (a host directory, say); while they are
/// open, /proc/self/fd/N reaches them when the process's working directory and executable are
/// looked up (the CVE-2024-21626 shape), so they go before anything of the container is set up.
pub fn close_inherited_fds(first: RawFd, keep: &[Option<RawFd>]) -> Result<()> {
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .context(|| "listing descriptors")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open {
        if fd >= first && !keep.contains(&Some(fd)) {
            // SAFETY: nothing in this process owns these (the listing's own descriptor is
            // already closed, which makes its close fail harmlessly with EBADF).
            unsafe { libc::close(fd) };
        }
    }
    Ok(())
}

/// Marks every descriptor from `first` up close-on-exec.
fn close_runtime_fds(first: i32) -> Result<()> {
    // SAFETY: close_range only changes descriptor flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return Ok(());
    }
    // Kernels before 5.11: walk /proc/self/fd.
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .context(|| "listing descriptors")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= first)
        .collect();
    for fd in fds {
        // SAFETY: setting FD_CLOEXEC on a descriptor number; a stale one just fails.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}
