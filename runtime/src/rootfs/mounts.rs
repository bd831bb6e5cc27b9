//! The spec's mounts, made inside the rootfs: bind/rbind with options, and filesystem mounts
//! (tmpfs, proc, sysfs, mqueue, devpts, ...). `cgroup` mounts are in [`super::cgroup_mount`].

use super::mount_options::{self, MountOptions, RecursiveAttrs};
use super::secure_path::{ensure, fd_path, open_in_root};
use crate::error::{Context, Result};
use crate::process::init_config::InitConfig;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Whether a mount is a bind mount (by type or by option).
pub fn is_bind(m: &Mount, o: &MountOptions) -> bool {
    o.bind || m.typ().as_deref() == Some("bind")
}

/// Whether a read-only mount is made writable and turned read-only only at the end of setup,
/// as runc does: `/dev` needs its devices and devpts mount point first, a tmpfs its mode.
pub fn read_only_later(m: &Mount, o: &MountOptions) -> bool {
    o.flags.contains(MsFlags::MS_RDONLY)
        && !is_bind(m, o)
        && (m.typ().as_deref() == Some("tmpfs") || m.destination() == Path::new("/dev"))
}

fn known_filesystem(typ: &str) -> bool {
    static FILESYSTEMS: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    FILESYSTEMS
        .get_or_init(|| std::fs::read_to_string("/proc/filesystems").ok())
        .as_deref()
        .is_none_or(|s| s.lines().any(|l| l.split_whitespace().last() == Some(typ)))
}

/// Checks a mount before anything is created: a known filesystem type, or a bind source that exists.
pub fn validate(m: &Mount) -> Result<(), String> {
    let o = mount_options::parse(m.options().as_deref().unwrap_or_default());
    let dest = m.destination().display();
    if is_bind(m, &o) {
        let src = m
            .source()
            .as_ref()
            .ok_or_else(|| format!("bind mount at {dest} has no source"))?;
        if src.is_absolute() && !src.exists() {
            return Err(format!(
                "bind mount at {dest}: source {} does not exist",
                src.display()
            ));
        }
        return Ok(());
    }
    match m.typ().as_deref() {
        None | Some("") => Err(format!("mount at {dest} has no type")),
        Some("cgroup") => Ok(()),
        Some(t) if !known_filesystem(t) => Err(format!(
            "mount at {dest}: unknown filesystem type {t:?} (see /proc/filesystems)"
        )),
        Some(_) => Ok(()),
    }
}

fn source_path(m: &Mount, cfg: &InitConfig) -> PathBuf {
    let src = m.source().clone().unwrap_or_default();
    if src.is_absolute() {
        src
    } else {
        cfg.bundle.join(src)
    }
}

/// Flags that a user namespace locks on a mount and that a bind remount must therefore keep.
pub fn locked_flags(path: &Path) -> MsFlags {
    use nix::sys::statvfs::FsFlags;
    let Ok(st) = nix::sys::statvfs::statvfs(path) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (s, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
    ] {
        if f.contains(s) {
            out |= m;
        }
    }
    out
}

/// Remounts the bind mount at `path` with `flags` (keeping locked flags in a user namespace).
pub fn bind_remount(path: &Path, flags: MsFlags, user_ns: bool) -> Result<()> {
    let mut f = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags;
    if user_ns {
        f |= locked_flags(path) & !MsFlags::MS_RDONLY;
    }
    mount(None::<&str>, path, None::<&str>, f, None::<&str>)
        .context(|| format!("remounting {} with {:?}", path.display(), flags))
}

const BIND_REMOUNT_FLAGS: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NOATIME)
    .union(MsFlags::MS_NODIRATIME)
    .union(MsFlags::MS_RELATIME)
    .union(MsFlags::MS_STRICTATIME)
    .union(MsFlags::MS_SYNCHRONOUS)
    .union(MsFlags::MS_DIRSYNC)
    .union(MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW));

/// Makes one spec mount inside the rootfs whose descriptor is `root`; a bind mount's source
/// is taken from `opened` when the runtime opened it (see [`super::MountSources`]).
pub fn mount_one(
    root: &OwnedFd,
    m: &Mount,
    cfg: &InitConfig,
    opened: Option<&OwnedFd>,
) -> Result<()> {
    let o = mount_options::parse(m.options().as_deref().unwrap_or_default());
    let dest = m.destination();
    if m.typ().as_deref() == Some("cgroup") && !o.bind {
        return super::cgroup_mount::mount_cgroups(root, dest, &o, cfg);
    }
    if is_bind(m, &o) {
        let src = source_path(m, cfg);
        let is_dir = match opened {
            Some(fd) => nix::sys::stat::fstat(fd).map(|st| {
                nix::sys::stat::SFlag::from_bits_truncate(st.st_mode)
                    & nix::sys::stat::SFlag::S_IFMT
                    == nix::sys::stat::SFlag::S_IFDIR
            }),
            None => std::fs::metadata(&src)
                .map(|m| m.is_dir())
                .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
        }
        .context(|| format!("bind mount at {}: source {}", dest.display(), src.display()))?;
        let target = ensure(root, dest, is_dir)?;
        let from = opened.map_or_else(|| src.clone(), fd_path);
        mount(
            Some(&from),
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_BIND | (o.flags & MsFlags::MS_REC),
            None::<&str>,
        )
        .context(|| format!("bind mounting {} at {}", src.display(), dest.display()))?;
        let extra = o.flags & BIND_REMOUNT_FLAGS;
        if !extra.is_empty() {
            let mounted = reopen(root, dest)?;
            bind_remount(&fd_path(&mounted), extra, cfg.user_ns)?;
        }
    } else {
        let typ = m.typ().as_deref().unwrap_or_default();
        // A tmpfs without mode= takes the mode of the directory it covers (runc's behaviour);
        // one over a directory that did not exist keeps tmpfs's default.
        let covered_mode = (typ == "tmpfs" && !o.data.iter().any(|d| d.starts_with("mode=")))
            .then(|| open_in_root(root, dest, OFlag::O_PATH).ok())
            .flatten()
            .and_then(|fd| nix::sys::stat::fstat(&fd).ok())
            .map(|st| st.st_mode & 0o7777);
        let target = ensure(root, dest, true)?;
        let copy_up = typ == "tmpfs" && m.options().iter().flatten().any(|w| w == "tmpcopyup");
        let covered = if copy_up {
            super::tmpcopyup::open_covered(root, dest)?
        } else {
            None
        };
        let src = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
        // Raw bits: nix's complement would drop flags it does not name (MS_NOSYMFOLLOW).
        let mut drop = MsFlags::MS_REMOUNT;
        if read_only_later(m, &o) {
            drop |= MsFlags::MS_RDONLY;
        }
        let flags = MsFlags::from_bits_retain(o.flags.bits() & !drop.bits());
        let mut data = o.data.join(",");
        let mut r = mount(
            Some(&src),
            &fd_path(&target),
            Some(typ),
            flags,
            Some(data.as_str()),
        );
        if r == Err(nix::errno::Errno::EINVAL) && typ == "devpts" {
            // A gid= the user namespace does not map: retry without it, as runc does.
            data = o
                .data
                .iter()
                .filter(|d| !d.starts_with("gid="))
                .cloned()
                .collect::<Vec<_>>()
                .join(",");
            r = mount(
                Some(&src),
                &fd_path(&target),
                Some(typ),
                flags,
                Some(data.as_str()),
            );
        }
        if r == Err(nix::errno::Errno::EPERM) && typ == "sysfs" {
            // Without a network namespace of its own a container cannot mount sysfs; bind the host's
            // read-only instead, as runc does.
            mount(
                Some("/sys"),
                &fd_path(&target),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .context(|| format!("bind mounting /sys at {}", dest.display()))?;
            let mounted = reopen(root, dest)?;
            bind_remount(&fd_path(&mounted), flags | MsFlags::MS_RDONLY, cfg.user_ns)?;
            r = Ok(());
        }
        r.context(|| format!("mounting {typ} at {}", dest.display()))?;
        if let Some(covered) = covered {
            super::tmpcopyup::copy_up(root, &covered, dest)?;
        }
        if let Some(mode) = covered_mode {
            let mounted = reopen(root, dest)?;
            std::fs::set_permissions(
                fd_path(&mounted),
                std::os::unix::fs::PermissionsExt::from_mode(mode),
            )
            .context(|| format!("giving the tmpfs at {} mode {mode:o}", dest.display()))?;
        }
    }
    if !o.recursive.is_empty() {
        let mounted = reopen(root, dest)?;
        set_recursive(&mounted, o.recursive).context(|| {
            format!(
                "applying recursive options (rro, rnosuid, ...) at {}",
                dest.display()
            )
        })?;
    }
    if !o.propagation.is_empty() {
        let mounted = reopen(root, dest)?;
        for p in &o.propagation {
            mount(
                None::<&str>,
                &fd_path(&mounted),
                None::<&str>,
                *p,
                None::<&str>,
            )
            .context(|| format!("setting propagation of {}", dest.display()))?;
        }
    }
    Ok(())
}

/// Sets and clears `attrs` on the mount `mounted` names and on every mount below it.
fn set_recursive(mounted: &OwnedFd, attrs: RecursiveAttrs) -> nix::Result<()> {
    let attr = libc::mount_attr {
        attr_set: attrs.set,
        attr_clr: attrs.clear,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr(2) only reads the empty path and `attr`, whose size is passed;
    // `mounted` is an open descriptor.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mounted.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    nix::errno::Errno::result(r).map(drop)
}

/// Makes the mounts [`read_only_later`] left writable read-only, inside the new root.
pub fn finish_read_only(mounts: &[Mount], user_ns: bool) -> Result<()> {
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .context(|| "opening the container root")?;
    for m in mounts {
        let o = mount_options::parse(m.options().as_deref().unwrap_or_default());
        if read_only_later(m, &o) {
            let mounted = reopen(&root, m.destination())?;
            let path = fd_path(&mounted);
            bind_remount(&path, MsFlags::MS_RDONLY | locked_flags(&path), user_ns)?;
        }
    }
    Ok(())
}

/// Opens the mount now sitting at `dest` (a descriptor taken before mounting names what is under it).
pub fn reopen(root: &OwnedFd, dest: &Path) -> Result<OwnedFd> {
    open_in_root(root, dest, OFlag::O_PATH).context(|| format!("opening {}", dest.display()))
}
