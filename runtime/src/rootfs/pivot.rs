//! Switching the init's root to the prepared rootfs: pivot_root with the old root detached,
//! or (`--no-pivot`, for ramdisk hosts where pivot_root is impossible) MS_MOVE plus chroot.

use crate::error::{Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::Path;

/// Makes `rootfs` the process's root.
pub fn pivot(rootfs: &Path, no_pivot: bool) -> Result<()> {
    nix::unistd::chdir(rootfs).context(|| format!("entering {}", rootfs.display()))?;
    if no_pivot {
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .context(|| "moving the rootfs onto /")?;
        nix::unistd::chroot(".").context(|| "chroot into the rootfs")?;
    } else {
        // pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves
        // the new root alone, with no directory needed for the old one.
        nix::unistd::pivot_root(".", ".").context(|| "pivot_root into the rootfs")?;
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
