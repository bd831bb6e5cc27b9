//! The container's root filesystem, prepared by the init inside its mount namespace:
//! propagation, the rootfs bind, the spec's mounts, /dev, pivot_root, then (inside the new
//! root) sysctls, read-only and masked paths, and a read-only root.

pub mod cgroup_mount;
pub mod devices;
pub mod mount_options;
pub mod mounts;
pub mod old_root;
pub mod pivot;
pub mod protected_paths;
pub mod secure_path;
pub mod tmpcopyup;

use crate::error::{Context, Result};
use crate::process::init_config::InitConfig;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;
use std::path::Path;

/// The propagation the container's root ends up with: the spec's rootfsPropagation, or rslave
/// (host mounts still reach the container; nothing flows back).
pub fn root_propagation(spec_value: Option<&str>) -> MsFlags {
    spec_value
        .and_then(mount_options::propagation)
        .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC)
}

/// Bind mount sources the runtime opened for the init, by index of the spec's mount.
pub type MountSources = std::collections::HashMap<usize, std::os::fd::OwnedFd>;

/// Prepares the rootfs and moves the process into it; `before_pivot` runs once the mounts
/// and devices are in place (the moment of the prestart/createRuntime/createContainer hooks).
pub fn prepare(
    cfg: &InitConfig,
    sources: &MountSources,
    before_pivot: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let linux = cfg.spec.linux().as_ref().expect("validated");
    let rootfs = &cfg.rootfs;
    let propagation = root_propagation(linux.rootfs_propagation().as_deref());
    // Setup runs on recursive slaves of the host's mounts: nothing flows back to the host, and
    // the rootfs can still be bound (an unbindable or shared parent would forbid or leak it).
    // The requested propagation is given to the container's root once it is in place.
    let setup_propagation = MsFlags::MS_SLAVE | MsFlags::MS_REC;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        setup_propagation,
        None::<&str>,
    )
    .context(|| "setting propagation of /")?;
    // The rootfs must be a mount point for pivot_root.
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .context(|| format!("bind mounting the rootfs {}", rootfs.display()))?;
    let root = nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context(|| format!("opening the rootfs {}", rootfs.display()))?;
    let mut dev_from_host = false;
    for (i, m) in cfg.spec.mounts().iter().flatten().enumerate() {
        mounts::mount_one(&root, m, cfg, sources.get(&i))?;
        if m.destination() == Path::new("/dev") {
            let o = mount_options::parse(m.options().as_deref().unwrap_or_default());
            dev_from_host = mounts::is_bind(m, &o);
        }
    }
    devices::create(
        &root,
        linux.devices().as_deref().unwrap_or_default(),
        !dev_from_host,
        cfg.user_ns,
    )?;
    drop(root);
    before_pivot()?;
    pivot::pivot(rootfs, cfg.no_pivot)?;
    if let Some(s) = linux.sysctl() {
        crate::sysctl::apply(s)?;
    }
    protected_paths::make_readonly(
        linux.readonly_paths().as_deref().unwrap_or_default(),
        cfg.user_ns,
    )?;
    protected_paths::mask(linux.masked_paths().as_deref().unwrap_or_default())?;
    mounts::finish_read_only(
        cfg.spec.mounts().as_deref().unwrap_or_default(),
        cfg.user_ns,
    )?;
    if cfg.spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        mounts::bind_remount(
            Path::new("/"),
            MsFlags::MS_RDONLY | mounts::locked_flags(Path::new("/")),
            cfg.user_ns,
        )?;
    }
    if propagation != setup_propagation {
        mount(None::<&str>, "/", None::<&str>, propagation, None::<&str>)
            .context(|| "setting rootfsPropagation of /")?;
    }
    Ok(())
}
