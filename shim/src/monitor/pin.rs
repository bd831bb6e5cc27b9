//! The monitor's binary, pinned. For every process it starts in the container, the monitor
//! re-executes its own binary (mini-run's read-only re-exec), for as long as the container
//! lives. Were the binary replaced at its path (a package upgrade, a rebuild), the path would
//! name another file and every later exec would fail. So the monitor hard-links its binary into
//! the container directory and re-executes itself through that link: the path it runs from
//! stays its own until it exits. Where no link can be made (another filesystem) or executed
//! (a noexec mount), the monitor runs unpinned and says so in `monitor.log`.

use super::{diag, layout, MonitorArgs};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

/// Set in a monitor that re-executed itself through its pin: the descriptor of its start report.
const ENV: &str = "_MINI_SHIM_MONITOR_READY_FD";

/// The start-report descriptor a pinned re-exec kept, if this process is one.
pub fn inherited_ready_fd() -> Option<OwnedFd> {
    let fd: i32 = std::env::var(ENV).ok()?.parse().ok()?;
    std::env::remove_var(ENV);
    // SAFETY: the monitor that re-executed itself passed this descriptor and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let _ = fcntl(&fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    Some(fd)
}

/// Re-executes the monitor through a hard link of its binary in its directory, keeping
/// `ready` open; returns only where that cannot be done.
pub fn reexec_pinned(args: &MonitorArgs, ready: &OwnedFd) {
    let pinned = args.dir.join(layout::PINNED_BINARY);
    let exe = match std::fs::read_link("/proc/self/exe") {
        Ok(p) => p,
        Err(e) => return diag(&format!("running unpinned: reading /proc/self/exe: {e}")),
    };
    if let Err(e) = std::fs::hard_link(&exe, &pinned) {
        // A link left by a monitor that runs here already is as good (it then refuses to start).
        let same = |a: &std::path::Path| std::fs::metadata(a).map(|m| (m.dev(), m.ino()));
        if e.kind() != std::io::ErrorKind::AlreadyExists
            || same(&pinned).ok() != same(std::path::Path::new("/proc/self/exe")).ok()
        {
            return diag(&format!(
                "running unpinned (exec fails once {} is replaced): linking it to {}: {e}",
                exe.display(),
                pinned.display()
            ));
        }
    }
    let cstring = |b: &[u8]| CString::new(b).ok();
    let argv: Option<Vec<CString>> = std::iter::once(exe.as_os_str().to_owned())
        .chain(args.command_line())
        .map(|a| cstring(a.as_bytes()))
        .collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| cstring(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect();
    env.extend(cstring(format!("{ENV}={}", ready.as_raw_fd()).as_bytes()));
    let (Some(path), Some(argv)) = (cstring(pinned.as_os_str().as_bytes()), argv) else {
        return diag("running unpinned: a path holds a NUL byte");
    };
    if let Err(e) = fcntl(ready, FcntlArg::F_SETFD(FdFlag::empty())) {
        return diag(&format!(
            "running unpinned: passing the start report on: {e}"
        ));
    }
    let e = nix::unistd::execve(&path, &argv, &env).unwrap_err();
    let _ = fcntl(ready, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    let _ = std::fs::remove_file(&pinned);
    diag(&format!(
        "running unpinned (exec fails once {} is replaced): executing {}: {e}",
        exe.display(),
        pinned.display()
    ));
}
