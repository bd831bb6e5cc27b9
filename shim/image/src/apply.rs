//! Applying one layer's tar stream to an empty directory in the form overlayfs reads as a lower
//! layer (image-spec "layer.md"): entries are created as they are, a whiteout `.wh.NAME` becomes
//! an overlay whiteout (a 0/0 character device NAME) and an opaque marker `.wh..wh..opq` sets
//! `trusted.overlay.opaque=y` on its directory, so that the merged view hides what lower layers
//! hold there.
//!
//! Every path is resolved inside the layer directory (`openat2` with `RESOLVE_IN_ROOT`) and the
//! final component is never followed, so an entry cannot write outside the layer whatever
//! symlinks or `..` it contains.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{
    fchmodat, fstatat, futimens, makedev, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag,
    UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use tar::EntryType;

use crate::error::{Error, Result};

/// The whiteout prefix of the image spec.
const WHITEOUT: &[u8] = b".wh.";
/// The opaque-directory marker of the image spec.
const OPAQUE: &[u8] = b".wh..wh..opq";
/// The xattr overlayfs reads to treat a directory as opaque.
const OVERLAY_OPAQUE: &str = "trusted.overlay.opaque";
/// xattrs a layer must not set: overlayfs's own (a forged redirect or origin would reach
/// outside the layer).
const FORBIDDEN_XATTR_PREFIX: &str = "trusted.overlay.";

/// What applying a layer created.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Applied {
    /// Files, directories, links and device nodes.
    pub entries: u64,
    /// Whiteouts and opaque markers.
    pub whiteouts: u64,
}

/// Applies the tar stream `reader` to the (empty) directory `dir`.
pub(crate) fn apply(dir: &Path, reader: impl Read) -> Result<Applied> {
    let root = openat(
        nix::fcntl::AT_FDCWD,
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| Error::path("opening", dir, e))?;
    let mut applier = Applier {
        root,
        applied: Applied::default(),
        dir_times: Vec::new(),
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(bad_stream)?;
    for entry in entries {
        applier.entry(entry.map_err(bad_stream)?)?;
    }
    applier.finish()?;
    Ok(applier.applied)
}

fn bad_stream(e: io::Error) -> Error {
    Error::Invalid(format!("reading the layer's tar stream: {e}"))
}

/// Splits an entry's path into components relative to the layer root: "/", "." and empty
/// components vanish; ".." is refused.
fn components(raw: &[u8]) -> Result<Vec<OsString>> {
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(Error::Invalid(format!(
                "layer entry {:?} contains \"..\": refusing an entry that points outside the layer",
                String::from_utf8_lossy(raw)
            )))
            }
            c => out.push(OsString::from_vec(c.to_vec())),
        }
    }
    Ok(out)
}

fn join(comps: &[OsString]) -> PathBuf {
    comps.iter().collect()
}

/// Whether `e` says the file does not exist.
fn is_missing(e: Errno) -> bool {
    e == Errno::ENOENT
}

struct Applier {
    root: OwnedFd,
    applied: Applied,
    /// Directory mtimes, set last (creating entries inside a directory changes its mtime).
    dir_times: Vec<(Vec<OsString>, i64)>,
}

impl Applier {
    /// Opens a directory inside the layer, `RESOLVE_IN_ROOT`; `create` makes missing
    /// components (mode 0755, owned by root) as tar streams may omit parent entries.
    fn open_dir(&self, comps: &[OsString], create: bool) -> Result<OwnedFd> {
        let how = || {
            OpenHow::new()
                .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
                .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
        };
        if comps.is_empty() {
            return self.root.try_clone().map_err(|e| Error::io("dup", e));
        }
        let path = join(comps);
        match openat2(self.root.as_fd(), &path, how()) {
            Ok(fd) => return Ok(fd),
            Err(e) if create && is_missing(e) => {}
            Err(e) => return Err(Error::path("opening layer directory", &path, e)),
        }
        let parent = self.open_dir(&comps[..comps.len() - 1], true)?;
        let name = &comps[comps.len() - 1];
        match mkdirat(
            parent.as_fd(),
            name.as_os_str(),
            Mode::from_bits_truncate(0o755),
        ) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(Error::path("creating layer directory", &path, e)),
        }
        openat2(self.root.as_fd(), &path, how()).map_err(|e| {
            if is_missing(e) {
                // The name exists but resolves nowhere: a symlink whose target the layer lacks.
                Error::Invalid(format!(
                    "layer path {} passes through a symlink whose target is not in the layer",
                    path.display()
                ))
            } else {
                Error::path("opening layer directory", &path, e)
            }
        })
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        let comps = components(&raw)?;
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let meta = Meta::of(&mut entry, &shown)?;
        let Some((name, parents)) = comps.split_last() else {
            // The layer root itself ("./").
            if kind.is_dir() {
                meta.apply(self.root.as_fd(), None, &shown)?;
                self.dir_times.push((Vec::new(), meta.mtime));
            }
            return Ok(());
        };
        let parent = self.open_dir(parents, true)?;
        if let Some(target) = name.as_bytes().strip_prefix(WHITEOUT) {
            self.whiteout(&parent, name.as_bytes(), target, &shown)?;
            self.applied.whiteouts += 1;
            return Ok(());
        }
        let name = name.as_os_str();
        let at = |e: Errno, doing: &str| Error::io(format!("{doing} layer entry {shown}"), e);
        match kind {
            EntryType::Directory => {
                match fstatat(
                    parent.as_fd(),
                    name,
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                ) {
                    Ok(st)
                        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
                            == SFlag::S_IFDIR => {}
                    _ => {
                        remove_existing(&parent, name, &shown)?;
                        mkdirat(parent.as_fd(), name, Mode::from_bits_truncate(0o700))
                            .map_err(|e| at(e, "creating"))?;
                    }
                }
                self.dir_times.push((comps.clone(), meta.mtime));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                remove_existing(&parent, name, &shown)?;
                let fd = openat(
                    parent.as_fd(),
                    name,
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| at(e, "creating"))?;
                io::copy(&mut entry, &mut File::from(fd))
                    .map_err(|e| Error::io(format!("writing layer entry {shown}"), e))?;
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| {
                    Error::Invalid(format!("layer symlink {shown} has no target"))
                })?;
                remove_existing(&parent, name, &shown)?;
                symlinkat(OsStr::from_bytes(&target), parent.as_fd(), name)
                    .map_err(|e| at(e, "creating"))?;
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().ok_or_else(|| {
                    Error::Invalid(format!("layer hard link {shown} has no target"))
                })?;
                let tcomps = components(&target)?;
                let Some((tname, tparents)) = tcomps.split_last() else {
                    return Err(Error::Invalid(format!(
                        "layer hard link {shown} points at the layer root"
                    )));
                };
                let tparent = self.open_dir(tparents, false)?;
                remove_existing(&parent, name, &shown)?;
                linkat(
                    tparent.as_fd(),
                    tname.as_os_str(),
                    parent.as_fd(),
                    name,
                    nix::fcntl::AtFlags::empty(),
                )
                .map_err(|e| {
                    Error::io(
                        format!(
                            "linking layer entry {shown} to {} (a hard link must point at an earlier entry of the same layer)",
                            String::from_utf8_lossy(&target)
                        ),
                        e,
                    )
                })?;
                // A hard link shares the target's inode and metadata.
                self.applied.entries += 1;
                return Ok(());
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let sflag = match kind {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let header = entry.header();
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                remove_existing(&parent, name, &shown)?;
                mknodat(
                    parent.as_fd(),
                    name,
                    sflag,
                    Mode::from_bits_truncate(0o600),
                    makedev(major.into(), minor.into()),
                )
                .map_err(|e| at(e, "creating"))?;
            }
            other => {
                return Err(Error::Unsupported(format!(
                    "layer entry {shown} has tar type {other:?}, which a layer cannot hold"
                )))
            }
        }
        meta.apply(parent.as_fd(), Some(name), &shown)?;
        if kind != EntryType::Directory {
            meta.set_mtime(parent.as_fd(), name, &shown)?;
        }
        self.applied.entries += 1;
        Ok(())
    }

    /// `.wh.NAME` (`target` = NAME) or an opaque marker in `parent`.
    fn whiteout(&self, parent: &OwnedFd, name: &[u8], target: &[u8], shown: &str) -> Result<()> {
        if name == OPAQUE {
            return set_xattr(parent, None, OVERLAY_OPAQUE, b"y")
                .map_err(|e| Error::io(format!("marking {shown} opaque"), e));
        }
        if target.starts_with(WHITEOUT) {
            // Other ".wh..wh." names are aufs bookkeeping with no meaning in a layer.
            return Ok(());
        }
        if matches!(target, b"" | b"." | b"..") {
            return Err(Error::Invalid(format!(
                "layer whiteout {shown} names nothing"
            )));
        }
        let target = OsStr::from_bytes(target);
        remove_existing(parent, target, shown)?;
        mknodat(
            parent.as_fd(),
            target,
            SFlag::S_IFCHR,
            Mode::empty(),
            makedev(0, 0),
        )
        .map_err(|e| Error::io(format!("creating the overlay whiteout for {shown}"), e))
    }

    fn finish(&mut self) -> Result<()> {
        for (comps, mtime) in std::mem::take(&mut self.dir_times) {
            let dir = self.open_dir(&comps, false)?;
            let t = TimeSpec::new(mtime, 0);
            futimens(dir.as_fd(), &t, &t)
                .map_err(|e| Error::path("setting the mtime of", &join(&comps), e))?;
        }
        Ok(())
    }
}

/// Removes whatever exists at `parent/name` (recursively for a directory); fine if nothing.
fn remove_existing(parent: &OwnedFd, name: &OsStr, shown: &str) -> Result<()> {
    let st = match fstatat(
        parent.as_fd(),
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(st) => st,
        Err(e) if is_missing(e) => return Ok(()),
        Err(e) => return Err(Error::io(format!("inspecting layer entry {shown}"), e)),
    };
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
        // std's remove_dir_all never follows symlinks below the named directory.
        std::fs::remove_dir_all(fd_path(parent, Some(name)))
            .map_err(|e| Error::io(format!("replacing layer directory {shown}"), e))
    } else {
        unlinkat(parent.as_fd(), name, UnlinkatFlags::NoRemoveDir)
            .map_err(|e| Error::io(format!("replacing layer entry {shown}"), e))
    }
}

/// `/proc/self/fd/N[/name]`: a path through a descriptor, for calls without an *at form.
fn fd_path(dir: &OwnedFd, name: Option<&OsStr>) -> PathBuf {
    let p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    match name {
        Some(n) => p.join(n),
        None => p,
    }
}

/// Sets an xattr on `dir/name` without following a final symlink, or on `dir` itself.
fn set_xattr(dir: &OwnedFd, name: Option<&OsStr>, key: &str, value: &[u8]) -> io::Result<()> {
    let key = CString::new(key).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let rc = match name {
        // SAFETY: fsetxattr on an open descriptor with a valid C string and buffer.
        None => unsafe {
            libc::fsetxattr(
                dir.as_raw_fd(),
                key.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        },
        Some(name) => {
            let path = CString::new(fd_path(dir, Some(name)).into_os_string().into_vec())
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            // SAFETY: lsetxattr with valid C strings and buffer.
            unsafe {
                libc::lsetxattr(
                    path.as_ptr(),
                    key.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            }
        }
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Ownership, permissions, xattrs and mtime of one entry.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
    symlink: bool,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Meta {
    fn of<R: Read>(entry: &mut tar::Entry<'_, R>, shown: &str) -> Result<Meta> {
        let h = entry.header();
        let bad = |what: &str| Error::Invalid(format!("layer entry {shown}: invalid {what}"));
        let id = |v: io::Result<u64>, what: &str| {
            v.ok()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| bad(what))
        };
        let mut meta = Meta {
            uid: id(h.uid(), "uid")?,
            gid: id(h.gid(), "gid")?,
            mode: h.mode().map_err(|_| bad("mode"))? & 0o7777,
            mtime: h
                .mtime()
                .ok()
                .and_then(|t| i64::try_from(t).ok())
                .ok_or_else(|| bad("mtime"))?,
            symlink: h.entry_type() == EntryType::Symlink,
            xattrs: Vec::new(),
        };
        if let Some(pax) = entry.pax_extensions().map_err(bad_stream)? {
            for ext in pax {
                let ext = ext.map_err(bad_stream)?;
                let Ok(key) = ext.key() else { continue };
                if let Some(attr) = key.strip_prefix("SCHILY.xattr.") {
                    if !attr.starts_with(FORBIDDEN_XATTR_PREFIX) {
                        meta.xattrs
                            .push((attr.to_string(), ext.value_bytes().to_vec()));
                    }
                }
            }
        }
        Ok(meta)
    }

    /// Owner, then mode (chown clears set-id bits), then xattrs (chown also drops
    /// security.capability). `name` None means `dir` itself.
    fn apply(&self, dir: impl AsFd, name: Option<&OsStr>, shown: &str) -> Result<()> {
        let err =
            |doing: &str, e: io::Error| Error::io(format!("{doing} of layer entry {shown}"), e);
        let (uid, gid) = (Some(Uid::from_raw(self.uid)), Some(Gid::from_raw(self.gid)));
        let mode = Mode::from_bits_truncate(self.mode);
        let dir = dir.as_fd();
        let owned = dir.try_clone_to_owned().map_err(|e| err("dup", e))?;
        match name {
            Some(name) => {
                fchownat(
                    dir,
                    name,
                    uid,
                    gid,
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|e| err("setting the owner", e.into()))?;
                if !self.symlink {
                    fchmodat(dir, name, mode, FchmodatFlags::FollowSymlink)
                        .map_err(|e| err("setting the mode", e.into()))?;
                }
            }
            None => {
                nix::unistd::fchown(dir, uid, gid)
                    .map_err(|e| err("setting the owner", e.into()))?;
                nix::sys::stat::fchmod(dir, mode).map_err(|e| err("setting the mode", e.into()))?;
            }
        }
        for (key, value) in &self.xattrs {
            set_xattr(&owned, name, key, value)
                .map_err(|e| err(&format!("setting xattr {key}"), e))?;
        }
        Ok(())
    }

    fn set_mtime(&self, dir: impl AsFd, name: &OsStr, shown: &str) -> Result<()> {
        let t = TimeSpec::new(self.mtime, 0);
        utimensat(dir, name, &t, &t, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| Error::io(format!("setting the mtime of layer entry {shown}"), e))
    }
}
