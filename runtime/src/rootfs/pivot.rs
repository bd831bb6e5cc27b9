//! Switching the init's root to the prepared rootfs: pivot_root with the old root detached,
//! or (`--no-pivot`, for ramdisk hosts where pivot_root is impossible) MS_MOVE plus chroot,
//! with every other mount of the old root detached or covered first (see [`super::old_root`]).

use crate::error::{Context, Result};
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use std::path::Path;

/// Makes `rootfs` the process's root.
pub fn pivot(rootfs: &Path, no_pivot: bool) -> Result<()> {
    nix::unistd::chdir(rootfs).context(|| format!("entering {}", rootfs.display()))?;
    if no_pivot {
        let here = nix::unistd::getcwd().context(|| "naming the rootfs")?;
        super::old_root::hide(&here)?;
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .context(|| "moving the rootfs onto /")?;
        nix::unistd::chroot(".").context(|| "chroot into the rootfs")?;
    } else {
        // pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves
        // the new root alone, with no directory needed for the old one.
        let old_root = nix::fcntl::open(
            "/",
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .context(|| "opening the old root")?;
        nix::unistd::pivot_root(".", ".").context(|| "pivot_root into the rootfs")?;
        // "." must name the old root below, not the new one it hides (whose mounts keep their
        // own propagation): enter it explicitly.
        nix::unistd::fchdir(&old_root).context(|| "entering the old root")?;
        // Keep the unmount below from propagating to the host's mounts.
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .context(|| "making the old root a slave")?;
        umount2(".", MntFlags::MNT_DETACH).context(|| "detaching the old root")?;
    }
    nix::unistd::chdir("/").context(|| "entering the new root")
}
