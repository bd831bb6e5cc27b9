//! linux.maskedPaths and linux.readonlyPaths, applied after pivot_root. Masking binds a
//! *verified* /dev/null (a character device 1:3 reached without following symlinks) over files
//! and a read-only tmpfs over directories; a container image cannot swap in a symlink to make
//! the runtime expose a host file instead (the CVE-2025-31133 shape).

use super::mounts::{bind_remount, locked_flags};
use super::secure_path::fd_path;
use crate::error::{Context, Error, Result};
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fstat, major, minor, Mode, SFlag};
use std::os::fd::OwnedFd;

fn open_nofollow(path: &str) -> nix::Result<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Opens /dev/null and checks that it is the real null device.
fn verified_dev_null() -> Result<OwnedFd> {
    let fd = open_nofollow("/dev/null").context(|| "opening /dev/null for masking")?;
    let st = fstat(&fd).context(|| "checking /dev/null")?;
    let is_chr = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    if !is_chr || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3 {
        return Err(Error::invalid(
            "/dev/null in the container is not the null device (1:3): refusing to mask paths with it",
        ));
    }
    Ok(fd)
}

/// Hides each path: /dev/null over files, an empty read-only tmpfs over directories.
pub fn mask(paths: &[String]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let null = verified_dev_null()?;
    for p in paths {
        let target = match open_nofollow(p) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => return Err(e).context(|| format!("opening masked path {p}")),
        };
        let st = fstat(&target).context(|| format!("checking masked path {p}"))?;
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFLNK && std::fs::metadata(p).is_err() {
            // Masking it would hide nothing the image meant to hide, and binding over a
            // symlink the container controls is not what was asked for.
            let to = std::fs::read_link(p).unwrap_or_default();
            return Err(Error::invalid(format!(
                "linux.maskedPaths entry {p} is a symlink to {}, which does not exist: remove \
                 the entry, or the symlink from the image",
                to.display()
            )));
        }
        let is_dir = kind == SFlag::S_IFDIR;
        let r = if is_dir {
            mount(
                Some("tmpfs"),
                &fd_path(&target),
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0,mode=555"),
            )
        } else {
            mount(
                Some(&fd_path(&null)),
                &fd_path(&target),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        r.context(|| format!("masking {p}"))?;
    }
    Ok(())
}

/// Makes each path read-only with a bind mount onto itself.
pub fn make_readonly(paths: &[String], user_ns: bool) -> Result<()> {
    for p in paths {
        let target = match open_nofollow(p) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => return Err(e).context(|| format!("opening read-only path {p}")),
        };
        mount(
            Some(&fd_path(&target)),
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .context(|| format!("binding read-only path {p}"))?;
        let mounted = open_nofollow(p).context(|| format!("opening read-only path {p}"))?;
        // Keep the flags the path already has (proc's nosuid, nodev, noexec), adding ro.
        let path = fd_path(&mounted);
        bind_remount(&path, MsFlags::MS_RDONLY | locked_flags(&path), user_ns)?;
    }
    Ok(())
}
