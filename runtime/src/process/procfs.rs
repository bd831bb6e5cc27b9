//! The runtime's writes into procfs (sysctls, oom_score_adj, time namespace offsets), made so a
//! container cannot redirect them (the CVE-2025-52881 class). Inside the container, /proc is
//! whatever the container's mounts made it: a volume or a bind mount over part of it, symlinks
//! in such a volume, a racing container changing a shared mount, an image directory instead of
//! procfs. A path-based write would land in the attacker's file.
//!
//! So each write starts from a private copy of the /proc mount alone (open_tree with
//! OPEN_TREE_CLONE, not recursive: no mount over any of its files is part of it, and later
//! changes to /proc do not reach it), checked to be the root of a procfs; the file is opened
//! beneath it without crossing into another mount or following a magic link, and checked to be
//! on procfs before anything is written.

use crate::error::{Context, Error, Result};
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, Mode};
use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC};
use std::os::fd::{FromRawFd, OwnedFd};

/// open_tree(2): copy the mount instead of opening it.
const OPEN_TREE_CLONE: libc::c_uint = 1;

/// The inode number of a procfs root directory.
const PROC_ROOT_INO: u64 = 1;

const BENEATH: ResolveFlag = ResolveFlag::RESOLVE_BENEATH
    .union(ResolveFlag::RESOLVE_NO_XDEV)
    .union(ResolveFlag::RESOLVE_NO_MAGICLINKS);

fn is_procfs(fd: &OwnedFd) -> bool {
    fstatfs(fd).is_ok_and(|s| s.filesystem_type() == PROC_SUPER_MAGIC)
}

/// A detached copy of the /proc mount, or (where the mount cannot be copied) the mount itself,
/// which [`BENEATH`] keeps every lookup inside.
fn open_proc_root() -> Result<OwnedFd> {
    // SAFETY: open_tree reads a NUL-terminated path and returns a new descriptor we then own.
    let r = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c"/proc".as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    let root = match nix::errno::Errno::result(r) {
        // SAFETY: a fresh descriptor from the kernel.
        Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd as i32) },
        Err(_) => nix::fcntl::open(
            "/proc",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .context(|| "opening /proc")?,
    };
    let is_root = fstat(&root).is_ok_and(|st| st.st_ino == PROC_ROOT_INO);
    if !is_procfs(&root) || !is_root {
        return Err(Error::invalid(
            "/proc is not a procfs mount: mount proc at /proc (type proc) in config.json",
        ));
    }
    Ok(root)
}

/// Writes `value` to `/proc/<path>` (`path` relative, e.g. `sys/net/ipv4/ip_forward` or
/// `self/oom_score_adj`); errors start with `what`.
pub fn write(path: &str, value: &str, what: &str) -> Result<()> {
    let root = open_proc_root().map_err(|e| Error::invalid(format!("{what}: {e}")))?;
    let how = OpenHow::new()
        .flags(OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(BENEATH);
    let file = loop {
        match openat2(&root, path, how) {
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => continue,
            r => break r,
        }
    }
    .context(|| format!("{what}: opening /proc/{path}"))?;
    if !is_procfs(&file) {
        return Err(Error::invalid(format!(
            "{what}: /proc/{path} is not on procfs"
        )));
    }
    let n = nix::unistd::write(&file, value.as_bytes())
        .context(|| format!("{what}: writing /proc/{path}"))?;
    if n != value.len() {
        return Err(Error::invalid(format!(
            "{what}: short write to /proc/{path}"
        )));
    }
    Ok(())
}
