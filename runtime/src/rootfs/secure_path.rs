//! Path resolution that never leaves the container's root: every mount target and device node
//! is reached with openat2(RESOLVE_IN_ROOT) and then used through its descriptor
//! (`/proc/self/fd/N`), so a symlink planted in the image cannot redirect a mount onto the host.

use crate::error::{Context, Result};
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

const IN_ROOT: ResolveFlag = ResolveFlag::RESOLVE_IN_ROOT.union(ResolveFlag::RESOLVE_NO_MAGICLINKS);

/// The `/proc/self/fd/N` path that names an open descriptor.
pub fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Opens `path` inside `root` (absolute paths and `..` are confined to it).
pub fn open_in_root(root: &impl AsFd, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(IN_ROOT);
    loop {
        match openat2(root, path, how) {
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => continue,
            r => return r,
        }
    }
}

fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect()
}

/// Creates every missing directory of `path` inside `root`; returns an O_PATH descriptor of it.
pub fn mkdir_all(root: &impl AsFd, path: &Path, mode: u32) -> Result<OwnedFd> {
    let rel = relative(path);
    let mut cur = PathBuf::new();
    let mut fd = open_in_root(root, Path::new("."), OFlag::O_PATH | OFlag::O_DIRECTORY)
        .context(|| "opening the container root")?;
    for comp in rel.components() {
        cur.push(comp);
        fd = match open_in_root(root, &cur, OFlag::O_PATH | OFlag::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => {
                match nix::sys::stat::mkdirat(&fd, comp.as_os_str(), Mode::from_bits_truncate(mode))
                {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => return Err(e).context(|| format!("creating {}", cur.display())),
                }
                open_in_root(root, &cur, OFlag::O_PATH | OFlag::O_DIRECTORY)
                    .context(|| format!("opening {}", cur.display()))?
            }
            Err(e) => return Err(e).context(|| format!("opening {}", cur.display())),
        };
    }
    Ok(fd)
}

/// Makes sure `path` exists inside `root` as a directory (`dir`) or a file, creating its
/// parents; returns an O_PATH descriptor of it.
pub fn ensure(root: &impl AsFd, path: &Path, dir: bool) -> Result<OwnedFd> {
    if dir {
        return mkdir_all(root, path, 0o755);
    }
    match open_in_root(root, path, OFlag::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e).context(|| format!("opening {}", path.display())),
    }
    let parent = mkdir_all(root, path.parent().unwrap_or(Path::new("/")), 0o755)?;
    let name = path.file_name().unwrap_or_default();
    // Reopen the O_PATH parent as a real directory to create the file in it.
    let dirfd = nix::fcntl::open(
        &fd_path(&parent),
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context(|| format!("opening parent of {}", path.display()))?;
    match nix::fcntl::openat(
        &dirfd,
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::from_bits_truncate(0o644),
    ) {
        Ok(_) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(e).context(|| format!("creating {}", path.display())),
    }
    open_in_root(root, path, OFlag::O_PATH).context(|| format!("opening {}", path.display()))
}
