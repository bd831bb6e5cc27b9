//! A container's network namespace, made before its process so that the CNI plugins can set
//! it up first (the spec's `CNI_NETNS` is a path): a fresh namespace bind-mounted on a file in
//! the container's directory, which the OCI config then names for mini-run to join.

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use std::path::{Path, PathBuf};

/// Creates a network namespace and binds it at `path` (a new file).
pub fn create(path: &Path) -> std::io::Result<()> {
    std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(path)?;
    let target: PathBuf = path.to_path_buf();
    // A thread of its own: unshare changes the calling thread's namespace, and this thread
    // ends right after, so no other work ever runs in the new namespace.
    let made = std::thread::spawn(move || -> nix::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET)?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    })
    .join()
    .unwrap_or(Err(nix::errno::Errno::EIO));
    if let Err(e) = made {
        let _ = std::fs::remove_file(path);
        return Err(e.into());
    }
    Ok(())
}

/// Unbinds and removes the namespace file at `path` (absent is fine).
pub fn remove(path: &Path) -> std::io::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
