//! `tmpcopyup` (crun's and runc's extension): a tmpfs that starts with the content of the
//! directory it covers. The copy walks the covered directory through descriptors only (openat
//! with `O_NOFOLLOW`, readlinkat, mknodat), so a symlink in the image is copied as a symlink and
//! never followed, and nothing outside the container's root is read. Owners (where the user
//! namespace maps them), modes, files, directories, symlinks, devices and FIFOs are copied;
//! hard links become separate files and sockets are left out.

use super::secure_path::open_in_root;
use crate::error::{Context, Error, Result};
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};
use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Directory levels copied at most (each level holds two descriptors open).
const MAX_DEPTH: usize = 128;

/// Opens the directory at `dest` (before the tmpfs covers it), if it exists.
pub fn open_covered(root: &impl AsFd, dest: &Path) -> Result<Option<OwnedFd>> {
    match open_in_root(root, dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
        Ok(fd) => Ok(Some(fd)),
        Err(nix::errno::Errno::ENOENT) => Ok(None),
        Err(e) => Err(e).context(|| format!("opening {} for tmpcopyup", dest.display())),
    }
}

/// Copies the content of `covered` into the tmpfs now mounted at `dest`.
pub fn copy_up(root: &impl AsFd, covered: &OwnedFd, dest: &Path) -> Result<()> {
    let tmpfs = open_in_root(root, dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
        .context(|| format!("opening the tmpfs at {}", dest.display()))?;
    copy_dir(covered, &tmpfs, dest, 0)
}

fn open_dir(dir: &OwnedFd, name: &CStr) -> nix::Result<OwnedFd> {
    nix::fcntl::openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

fn copy_dir(from: &OwnedFd, to: &OwnedFd, at: &Path, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::invalid(format!(
            "tmpcopyup: {} is nested deeper than {MAX_DEPTH} directories",
            at.display()
        )));
    }
    let listing = nix::dir::Dir::from_fd(
        open_dir(from, c".").context(|| format!("tmpcopyup: listing {}", at.display()))?,
    )
    .context(|| format!("tmpcopyup: listing {}", at.display()))?;
    let names: Vec<_> = listing
        .into_iter()
        .flatten()
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    for name in names {
        let path = at.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
        let sub = copy_entry(from, to, &name)
            .context(|| format!("tmpcopyup: copying {}", path.display()))?;
        if let Some((src, dst)) = sub {
            copy_dir(&src, &dst, &path, depth + 1)?;
        }
    }
    Ok(())
}

/// Copies one entry; a directory is made empty and its pair of descriptors returned.
fn copy_entry(
    from: &OwnedFd,
    to: &OwnedFd,
    name: &CStr,
) -> nix::Result<Option<(OwnedFd, OwnedFd)>> {
    let st = fstatat(from, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
    let mut sub = None;
    match kind {
        SFlag::S_IFDIR => {
            nix::sys::stat::mkdirat(to, name, Mode::from_bits_truncate(0o700))?;
            sub = Some((open_dir(from, name)?, open_dir(to, name)?));
        }
        SFlag::S_IFREG => {
            let src = nix::fcntl::openat(
                from,
                name,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            let dst = nix::fcntl::openat(
                to,
                name,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )?;
            let (mut src, mut dst) = (std::fs::File::from(src), std::fs::File::from(dst));
            std::io::copy(&mut src, &mut dst)
                .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        }
        SFlag::S_IFLNK => {
            let target = nix::fcntl::readlinkat(from, name)?;
            nix::unistd::symlinkat(target.as_os_str(), to, name)?;
        }
        SFlag::S_IFCHR | SFlag::S_IFBLK | SFlag::S_IFIFO => {
            nix::sys::stat::mknodat(to, name, kind, mode, st.st_rdev)?;
        }
        _ => return Ok(None),
    }
    // An owner the user namespace does not map (EINVAL) keeps the copy as its creator's.
    match nix::unistd::fchownat(
        to,
        name,
        Some(nix::unistd::Uid::from_raw(st.st_uid)),
        Some(nix::unistd::Gid::from_raw(st.st_gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
        Err(e) => return Err(e),
    }
    if kind != SFlag::S_IFLNK {
        // After the owner: chown clears set-id bits.
        nix::sys::stat::fchmodat(
            to,
            name,
            mode,
            nix::sys::stat::FchmodatFlags::NoFollowSymlink,
        )?;
    }
    Ok(sub)
}
