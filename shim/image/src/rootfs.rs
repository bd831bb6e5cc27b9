//! A container's root filesystem: an overlay whose lower layers are the image's unpacked layers
//! (shared, read-only) and whose upper layer is the container's own.
//!
//! ```text
//! <dir>/rootfs.json   the image and the lower layers, to remount after a reboot
//! <dir>/upper/        the container's writable layer (what it changed)
//! <dir>/work/         overlayfs's work directory
//! <dir>/merged/       the mount point: the container's root (`root.path` in config.json)
//! ```

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde::{Deserialize, Serialize};

use crate::disk::{disk_usage, DiskUsage};
use crate::error::{Error, Result};

/// The record file in a rootfs directory.
pub(crate) const RECORD: &str = "rootfs.json";

/// The longest mount option string the kernel accepts (one page, with its NUL).
const MAX_MOUNT_DATA: usize = 4095;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    image: String,
    /// Topmost first, as overlayfs lists them.
    lowerdirs: Vec<PathBuf>,
}

/// A container rootfs made by [`crate::Store::create_rootfs`]; reopen it with
/// [`Rootfs::open`] (e.g. after an agent restart).
#[derive(Debug, Clone)]
pub struct Rootfs {
    dir: PathBuf,
    record: Record,
}

impl Rootfs {
    pub(crate) fn create(
        dir: &Path,
        image: &str,
        mut lowerdirs: Vec<PathBuf>,
        store_root: &Path,
    ) -> Result<Rootfs> {
        if lowerdirs.is_empty() {
            // An image without layers: overlayfs needs one lower directory.
            let empty = store_root.join("empty");
            fs::create_dir_all(&empty).map_err(|e| Error::path("creating", &empty, e))?;
            lowerdirs.push(empty);
        }
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(Error::Invalid(format!(
                    "{} already exists: remove the old rootfs first",
                    dir.display()
                )))
            }
            Err(e) => return Err(Error::path("creating", dir, e)),
        }
        let rootfs = Rootfs {
            dir: dir.to_path_buf(),
            record: Record {
                image: image.to_string(),
                lowerdirs,
            },
        };
        let made = rootfs.populate();
        if let Err(e) = made {
            let _ = remove(dir);
            return Err(e);
        }
        Ok(rootfs)
    }

    fn populate(&self) -> Result<()> {
        for sub in ["upper", "work", "merged"] {
            let p = self.dir.join(sub);
            fs::create_dir(&p).map_err(|e| Error::path("creating", &p, e))?;
        }
        // The merged root takes the upper directory's owner and mode: give it the image's.
        let top = &self.record.lowerdirs[0];
        let meta = fs::metadata(top).map_err(|e| Error::path("inspecting", top, e))?;
        let upper = self.upper();
        std::os::unix::fs::chown(&upper, Some(meta.uid()), Some(meta.gid()))
            .map_err(|e| Error::path("setting the owner of", &upper, e))?;
        fs::set_permissions(&upper, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| Error::path("setting the mode of", &upper, e))?;
        let record = serde_json::to_vec_pretty(&self.record).expect("record serializes");
        crate::store::write_atomic(&self.dir.join(RECORD), &record)?;
        self.mount()
    }

    /// Reopens the rootfs in `dir`.
    pub fn open(dir: &Path) -> Result<Rootfs> {
        let path = dir.join(RECORD);
        let data = fs::read(&path).map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Error::NotFound(format!("{} holds no container rootfs", dir.display()))
            } else {
                Error::path("reading", &path, e)
            }
        })?;
        let record = serde_json::from_slice(&data)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        Ok(Rootfs {
            dir: dir.to_path_buf(),
            record,
        })
    }

    /// The rootfs directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The mount point: what a container's config.json names as `root.path`.
    pub fn path(&self) -> PathBuf {
        self.dir.join("merged")
    }

    /// The writable layer.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// The id of the image it was made from.
    pub fn image(&self) -> &str {
        &self.record.image
    }

    /// The lower layer directories, topmost first.
    pub fn lowerdirs(&self) -> &[PathBuf] {
        &self.record.lowerdirs
    }

    /// Whether the overlay is mounted (the mount point is on another device than its parent).
    pub fn is_mounted(&self) -> Result<bool> {
        is_mount_point(&self.path())
    }

    /// Mounts the overlay at [`Rootfs::path`] with mount(2), unless it is mounted already.
    pub fn mount(&self) -> Result<()> {
        if self.is_mounted()? {
            return Ok(());
        }
        let mut dirs: Vec<&Path> = self.record.lowerdirs.iter().map(PathBuf::as_path).collect();
        let (upper, work, merged) = (self.upper(), self.dir.join("work"), self.path());
        dirs.extend([upper.as_path(), work.as_path()]);
        for d in &dirs {
            let s = d.to_string_lossy();
            if s.contains([',', ':', '\\']) || d.to_str().is_none() {
                return Err(Error::Unsupported(format!(
                    "overlay path {s:?} contains ',', ':' or '\\' (or is not UTF-8): choose store and container directories without them"
                )));
            }
        }
        let lower: Vec<String> = self
            .record
            .lowerdirs
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            upper.display(),
            work.display()
        );
        if data.len() > MAX_MOUNT_DATA {
            return Err(Error::Unsupported(format!(
                "the overlay options for {} layers take {} bytes, more than the kernel's {MAX_MOUNT_DATA}: use a shorter store path or an image with fewer layers",
                lower.len(),
                data.len()
            )));
        }
        mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|e| Error::path("mounting the overlay at", &merged, e))
    }

    /// Unmounts the overlay (lazily if it is busy); fine if it is not mounted.
    pub fn unmount(&self) -> Result<()> {
        unmount(&self.path())
    }

    /// Space the container's writable layer takes (see [`DiskUsage`]).
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        disk_usage(&self.upper())
    }
}

fn is_mount_point(path: &Path) -> Result<bool> {
    let parent = path.parent().unwrap_or(path);
    let (m, p) = match (fs::symlink_metadata(path), fs::symlink_metadata(parent)) {
        (Ok(m), Ok(p)) => (m, p),
        (Err(e), _) if e.kind() == ErrorKind::NotFound => return Ok(false),
        (Err(e), _) | (_, Err(e)) => return Err(Error::path("inspecting", path, e)),
    };
    Ok(m.dev() != p.dev())
}

fn unmount(merged: &Path) -> Result<()> {
    while is_mount_point(merged)? {
        match umount2(merged, MntFlags::empty()) {
            Ok(()) => {}
            Err(Errno::EBUSY) => umount2(merged, MntFlags::MNT_DETACH)
                .map_err(|e| Error::path("unmounting", merged, e))?,
            Err(Errno::EINVAL | Errno::ENOENT) => break,
            Err(e) => return Err(Error::path("unmounting", merged, e)),
        }
    }
    Ok(())
}

/// Unmounts and deletes a rootfs directory; fine if it does not exist.
pub(crate) fn remove(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    unmount(&dir.join("merged"))?;
    fs::remove_dir_all(dir).map_err(|e| Error::path("removing", dir, e))
}
