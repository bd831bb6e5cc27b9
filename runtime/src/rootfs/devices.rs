//! /dev inside the container: the default devices every container gets (null, zero, full,
//! random, urandom, tty), the spec's linux.devices, and the standard symlinks. Without a user
//! namespace nodes are made with mknod; inside one (where mknod is not allowed) the host's
//! nodes are bind mounted. A listed device whose path already holds something else is an
//! error; one that already holds the same device is left as it is (as runc does).

use super::secure_path::{ensure, fd_path, mkdir_all, open_in_root};
use crate::error::{Context, Error, Result};
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fstat, makedev, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// A device node to create.
struct Node {
    path: PathBuf,
    kind: SFlag,
    major: i64,
    minor: i64,
    mode: u32,
    uid: u32,
    gid: u32,
}

fn defaults() -> Vec<Node> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(p, major, minor)| Node {
        path: PathBuf::from(p),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

fn from_spec(d: &LinuxDevice) -> Node {
    let kind = match d.typ() {
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    Node {
        path: d.path().clone(),
        kind,
        major: d.major(),
        minor: d.minor(),
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    }
}

fn make(root: &OwnedFd, n: &Node, user_ns: bool) -> Result<()> {
    if user_ns {
        let target = ensure(root, &n.path, false)?;
        return mount(
            Some(&n.path),
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .context(|| format!("bind mounting device {}", n.path.display()));
    }
    let parent = mkdir_all(root, n.path.parent().unwrap_or(Path::new("/dev")), 0o755)?;
    let name = n.path.file_name().unwrap_or_default();
    let dev = makedev(n.major as u64, n.minor as u64);
    let perm = Mode::from_bits_truncate(n.mode);
    let mut r = nix::sys::stat::mknodat(&parent, name, n.kind, perm, dev);
    if r == Err(nix::errno::Errno::EEXIST) {
        nix::unistd::unlinkat(&parent, name, nix::unistd::UnlinkatFlags::NoRemoveDir)
            .context(|| format!("replacing {}", n.path.display()))?;
        r = nix::sys::stat::mknodat(&parent, name, n.kind, perm, dev);
    }
    r.context(|| format!("creating device {}", n.path.display()))?;
    nix::unistd::fchownat(
        &parent,
        name,
        Some(n.uid.into()),
        Some(n.gid.into()),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .context(|| format!("chown of device {}", n.path.display()))?;
    nix::sys::stat::fchmodat(
        &parent,
        name,
        perm,
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .context(|| format!("chmod of device {}", n.path.display()))
}

/// Whether `n.path` already holds the device `n` describes; an error if it holds anything else.
fn already_there(root: &OwnedFd, n: &Node) -> Result<bool> {
    let fd = match open_in_root(root, &n.path, OFlag::O_PATH | OFlag::O_NOFOLLOW) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(false),
        Err(e) => return Err(e).context(|| format!("checking device {}", n.path.display())),
    };
    let st = fstat(&fd).context(|| format!("checking device {}", n.path.display()))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let numbers = makedev(n.major as u64, n.minor as u64);
    if kind == n.kind && (kind == SFlag::S_IFIFO || st.st_rdev == numbers) {
        return Ok(true);
    }
    let wanted = match n.kind {
        SFlag::S_IFBLK => format!("block device {}:{}", n.major, n.minor),
        SFlag::S_IFIFO => "fifo".to_string(),
        _ => format!("character device {}:{}", n.major, n.minor),
    };
    Err(Error::invalid(format!(
        "linux.devices: {} already exists in the container and is not the {wanted}: \
         remove it from the image or change the device's path",
        n.path.display()
    )))
}

/// Creates the default devices (unless /dev comes from the host), the spec's devices, and the
/// /dev symlinks.
pub fn create(
    root: &OwnedFd,
    spec_devices: &[LinuxDevice],
    defaults_too: bool,
    user_ns: bool,
) -> Result<()> {
    if defaults_too {
        for n in defaults() {
            if !spec_devices.iter().any(|d| d.path() == &n.path) {
                make(root, &n, user_ns)?;
            }
        }
    }
    for d in spec_devices {
        let n = from_spec(d);
        if !already_there(root, &n)? {
            make(root, &n, user_ns)?;
        }
    }
    if defaults_too {
        let dev = mkdir_all(root, Path::new("/dev"), 0o755)?;
        let mut links = vec![
            ("/proc/self/fd", "fd"),
            ("/proc/self/fd/0", "stdin"),
            ("/proc/self/fd/1", "stdout"),
            ("/proc/self/fd/2", "stderr"),
            ("pts/ptmx", "ptmx"),
        ];
        if Path::new("/proc/kcore").exists() {
            links.push(("/proc/kcore", "core"));
        }
        for (to, name) in links {
            if name == "ptmx" {
                // A ptmx node from the image would bypass the container's devpts instance.
                let _ = nix::unistd::unlinkat(&dev, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
            }
            match nix::unistd::symlinkat(to, &dev, name) {
                Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                Err(e) => return Err(e).context(|| format!("linking /dev/{name} to {to}")),
            }
        }
    }
    Ok(())
}
