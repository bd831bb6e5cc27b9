//! The `cgroup` mount type: the container sees its own cgroup. With a cgroup namespace it gets
//! a real cgroupfs (rooted at its cgroup by the namespace); without one, bind mounts of its
//! cgroup directories. On v1 the hierarchies sit under a tmpfs, with the `cpu`/`cpuacct`
//! symlinks of comounted controllers, as on the host.

use super::mount_options::MountOptions;
use super::mounts::{bind_remount, reopen};
use super::secure_path::{ensure, fd_path, mkdir_all};
use crate::error::{Context, Result};
use crate::process::init_config::InitConfig;
use nix::mount::{mount, MsFlags};
use std::os::fd::OwnedFd;
use std::path::Path;

const KEEP: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_RELATIME);

/// Mounts the container's cgroups at `dest`.
pub fn mount_cgroups(
    root: &OwnedFd,
    dest: &Path,
    o: &MountOptions,
    cfg: &InitConfig,
) -> Result<()> {
    let flags = o.flags & KEEP;
    let sources = &cfg.cgroup_mounts;
    let unified = sources.len() == 1 && sources[0].hierarchy.is_empty();
    let target = ensure(root, dest, true)?;
    if unified {
        if cfg.new_cgroup_ns {
            mount(
                Some("cgroup2"),
                &fd_path(&target),
                Some("cgroup2"),
                flags,
                None::<&str>,
            )
            .context(|| format!("mounting cgroup2 at {}", dest.display()))?;
        } else {
            bind(root, &sources[0].host_dir, dest, flags, cfg)?;
        }
        return Ok(());
    }
    mount(
        Some("tmpfs"),
        &fd_path(&target),
        Some("tmpfs"),
        flags & !MsFlags::MS_RDONLY,
        Some("mode=755"),
    )
    .context(|| format!("mounting tmpfs for cgroups at {}", dest.display()))?;
    for s in sources {
        let sub = dest.join(&s.hierarchy);
        let dir = mkdir_all(root, &sub, 0o755)?;
        if cfg.new_cgroup_ns {
            let data = s.controllers.join(",");
            mount(
                Some("cgroup"),
                &fd_path(&dir),
                Some("cgroup"),
                flags,
                Some(data.as_str()),
            )
            .context(|| format!("mounting cgroup {data} at {}", sub.display()))?;
        } else {
            bind(root, &s.host_dir, &sub, flags, cfg)?;
        }
        if s.controllers.len() > 1 {
            let parent = reopen(root, dest)?;
            for c in &s.controllers {
                match nix::unistd::symlinkat(s.hierarchy.as_str(), &parent, c.as_str()) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => {
                        return Err(e)
                            .context(|| format!("linking cgroup {c} in {}", dest.display()))
                    }
                }
            }
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        let t = reopen(root, dest)?;
        mount(
            None::<&str>,
            &fd_path(&t),
            None::<&str>,
            MsFlags::MS_REMOUNT | flags,
            Some("mode=755"),
        )
        .context(|| format!("making {} read-only", dest.display()))?;
    }
    Ok(())
}

fn bind(root: &OwnedFd, host: &Path, dest: &Path, flags: MsFlags, cfg: &InitConfig) -> Result<()> {
    let target = ensure(root, dest, true)?;
    mount(
        Some(host),
        &fd_path(&target),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .context(|| {
        format!(
            "bind mounting cgroup {} at {}",
            host.display(),
            dest.display()
        )
    })?;
    if !flags.is_empty() {
        let t = reopen(root, dest)?;
        bind_remount(&fd_path(&t), flags, cfg.user_ns)?;
    }
    Ok(())
}
