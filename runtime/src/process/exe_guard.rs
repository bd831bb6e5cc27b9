//! Protection of the host's runtime binary (the CVE-2019-5736 class). The init starts as a
//! fork of the runtime, so `/proc/self/exe` names the host binary; a container whose entry
//! point is `#!/proc/self/exe` would otherwise run that binary as its own process and could
//! reopen it for writing once the runtime exits. Before anything of the container exists, the
//! init bind-mounts the binary read-only onto itself — in its own mount namespace, after making
//! every mount a slave so nothing propagates to the host — and re-executes through that mount.
//! From then on every path to the binary (`/proc/<pid>/exe` included) crosses a read-only mount,
//! and opening it for writing fails with EROFS. This costs one bind mount and one execve, far
//! less than copying the binary into a sealed memfd on every start as runc 1.1 does.

use crate::error::{Context, Error, Result};
use nix::mount::{mount, MsFlags};
use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The environment variable that tells a starting `mini-run` it is a container's init, and
/// which descriptor is its channel to the runtime.
pub const INIT_ENV: &str = "_MINI_RUN_INIT";

/// The runtime binary's path from this process's root. `/proc/self/exe` is spelled from the root
/// of the mount namespace the binary was opened in, so a runtime started inside a chroot (the
/// test VM chroots into the shared host root) sees, once in the init's new mount namespace, the
/// chroot's directory in front of the path. The longest suffix naming the same file is the path.
fn own_exe() -> Result<PathBuf> {
    let link = std::fs::read_link("/proc/self/exe").context(|| "reading /proc/self/exe")?;
    if link.as_os_str().as_bytes().ends_with(b" (deleted)") {
        return Err(Error::invalid(format!(
            "the runtime binary {} was replaced while running: run the command again",
            link.display()
        )));
    }
    let target = std::fs::metadata("/proc/self/exe").context(|| "inspecting /proc/self/exe")?;
    let parts: Vec<_> = link.components().skip(1).collect();
    (0..parts.len())
        .map(|i| Path::new("/").join(parts[i..].iter().collect::<PathBuf>()))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino())
        })
        .ok_or_else(|| {
            Error::invalid(format!(
                "the runtime binary {} is not reachable from the container init's root: run mini-run from a path inside it",
                link.display()
            ))
        })
}

/// Re-executes the runtime as the container's init, through a read-only view of its binary.
pub fn reexec_as_init(channel_fd: RawFd) -> Result<Infallible> {
    let exe = own_exe()?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .context(|| "making the init's mounts slaves")?;
    // The source is the path, not /proc/self/exe: that link names a mount of the runtime's
    // namespace, which cannot be bound from this copy of it.
    mount(
        Some(&exe),
        &exe,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .context(|| format!("bind mounting {}", exe.display()))?;
    mount(
        None::<&str>,
        &exe,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .context(|| format!("making {} read-only", exe.display()))?;
    // The channel must survive the exec.
    nix::fcntl::fcntl(
        unsafe { std::os::fd::BorrowedFd::borrow_raw(channel_fd) },
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .context(|| "passing the channel to the init")?;
    let path = CString::new(exe.as_os_str().as_bytes()).expect("no NUL in a path");
    let argv = [c"mini-run".to_owned(), c"init".to_owned()];
    let env = [CString::new(format!("{INIT_ENV}={channel_fd}")).expect("no NUL")];
    nix::unistd::execve(&path, &argv, &env).context(|| format!("re-executing {}", exe.display()))
}
