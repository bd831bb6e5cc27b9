//! `--no-pivot` leaves the old root's mounts in the init's mount namespace, hidden under the
//! rootfs moved onto `/`. The kernel lets a user namespace mount a new procfs or sysfs only if
//! a fully visible one exists in the mount namespace (`mnt_already_visible`), reachable or not,
//! so a hidden host `/proc` would let `unshare -Urm` in the container mount a fresh, unmasked
//! procfs. Before the move, every mount outside the rootfs that is not one of its ancestors is
//! detached; a locked one (a user-namespaced container cannot unmount what it inherited) that
//! is a procfs or sysfs is covered with an empty read-only tmpfs instead, as runc's
//! `msMoveRoot` does, so no fully visible one is left.

use crate::error::{Context, Result};
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::{Path, PathBuf};

/// One line of /proc/self/mountinfo: where it is mounted and the filesystem type.
#[derive(Debug, PartialEq, Eq)]
struct Mount {
    point: PathBuf,
    fstype: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space and so on).
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push(d.iter().fold(0u8, |n, c| n.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            Some(Mount {
                point: PathBuf::from(unescape(pre.split(' ').nth(4)?)),
                fstype: post.split(' ').next()?.to_string(),
            })
        })
        .collect()
}

/// The mounts to hide before moving `rootfs` onto `/`: neither inside it nor one of its
/// ancestors (detaching an ancestor would take the rootfs with it), deepest first.
fn outside(mounts: Vec<Mount>, rootfs: &Path) -> Vec<Mount> {
    let mut out: Vec<Mount> = mounts
        .into_iter()
        .filter(|m| !m.point.starts_with(rootfs) && !rootfs.starts_with(&m.point))
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.point.components().count()));
    out
}

/// Detaches (or, where locked, covers) every mount outside `rootfs`, the canonical path of
/// the rootfs, in the init's own mount namespace.
pub fn hide(rootfs: &Path) -> Result<()> {
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").context(|| "reading the mount table")?;
    for m in outside(parse(&info), rootfs) {
        // Keep the unmount from propagating to the host; a mount already gone with its
        // parent is done.
        match mount(
            None::<&str>,
            &m.point,
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Err(Errno::ENOENT | Errno::EINVAL) => continue,
            r => r.context(|| format!("making {} a slave", m.point.display()))?,
        }
        match umount2(&m.point, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(Errno::EINVAL | Errno::EPERM) if m.fstype == "proc" || m.fstype == "sysfs" => {
                mount(
                    Some("tmpfs"),
                    &m.point,
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY
                        | MsFlags::MS_NOSUID
                        | MsFlags::MS_NODEV
                        | MsFlags::MS_NOEXEC,
                    Some("size=4k,mode=0"),
                )
                .context(|| format!("covering the host's {} {}", m.fstype, m.point.display()))?;
            }
            // Another locked mount stays, unreachable under the rootfs.
            Err(Errno::EINVAL | Errno::EPERM) => {}
            Err(e) => {
                return Err(e).context(|| format!("detaching {}", m.point.display()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mounts_beside_the_rootfs_are_hidden_deepest_first() {
        let info = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 23 0:23 / /sys/fs/cgroup rw - tmpfs tmpfs rw
27 1 8:1 / / rw - ext4 /dev/sda1 rw
28 27 8:2 / /work rw - ext4 /dev/sda2 rw
29 28 8:2 /x /work/b\\040c/rootfs rw - ext4 /dev/sda2 rw
30 29 0:21 / /work/b\\040c/rootfs/proc rw - proc proc rw
";
        let hidden: Vec<_> = outside(parse(info), Path::new("/work/b c/rootfs"))
            .into_iter()
            .map(|m| (m.point.to_string_lossy().into_owned(), m.fstype))
            .collect();
        assert_eq!(
            hidden,
            [
                ("/sys/fs/cgroup".to_string(), "tmpfs".to_string()),
                ("/proc".to_string(), "proc".to_string()),
                ("/sys".to_string(), "sysfs".to_string()),
            ]
        );
    }
}
