//! Files and directories only their owner (root) may read: container state holds the spec's
//! process, its environment (passwords, tokens) included. Directories are made 0700 and files
//! 0600 *when they are created* (the mode given to mkdir/open, which the umask can only
//! narrow), so there is no moment in which another user could open them; a temporary file
//! left by a crash is removed rather than reused, since a descriptor opened on it while it was
//! readable would keep reading. Directories made by an older version with wider modes are
//! narrowed with [`restrict`] when a program starts using them.
//!
//! mini-shim and mini-sched use this module for their state as well.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The mode of a private directory.
pub const DIR_MODE: u32 = 0o700;
/// The mode of a private file.
pub const FILE_MODE: u32 = 0o600;

/// Creates the directory `path` (and its missing parents) with mode 0700; an existing `path`
/// loses its group and other permissions (see [`restrict`]).
pub fn create_dir_all(path: &Path) -> std::io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)?;
    restrict(path)
}

/// Creates the directory `path` with mode 0700; fails with `AlreadyExists` if it exists.
pub fn create_dir(path: &Path) -> std::io::Result<()> {
    DirBuilder::new().mode(DIR_MODE).create(path)
}

/// Removes the group and other permissions of the existing file or directory `path` (one
/// made before its creator made it private; a symlink's target); a missing `path` is left
/// missing.
pub fn restrict(path: &Path) -> std::io::Result<()> {
    let mode = match std::fs::metadata(path) {
        Ok(m) => m.permissions().mode(),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if mode & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7700))
}

/// Options that create a file with mode 0600 (an existing file keeps its mode: use
/// [`restrict`] on it, or [`write_atomic`] which always creates a new file).
pub fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// Writes `data` to `path` atomically, through `tmp` in the same directory: `tmp` is created
/// anew with mode 0600 (a stale one removed first), written, synced when `durable`, and
/// renamed over `path`.
pub fn write_atomic(path: &Path, tmp: &Path, data: &[u8], durable: bool) -> std::io::Result<()> {
    match std::fs::remove_file(tmp) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = options().write(true).create_new(true).open(tmp)?;
    f.write_all(data)?;
    if durable {
        f.sync_all()?;
    }
    drop(f);
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("private-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn directories_are_created_private_and_existing_ones_narrowed() {
        let d = scratch("dirs");
        create_dir_all(&d.join("a/b")).unwrap();
        assert_eq!(mode(&d.join("a")), 0o700);
        assert_eq!(mode(&d.join("a/b")), 0o700);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1755)).unwrap();
        create_dir_all(&d).unwrap();
        assert_eq!(mode(&d), 0o1700);
        assert_eq!(
            create_dir(&d.join("a")).unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        restrict(&d.join("missing")).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn atomic_writes_make_a_new_private_file_even_over_a_readable_leftover() {
        let d = scratch("atomic");
        std::fs::create_dir_all(&d).unwrap();
        let (path, tmp) = (d.join("state.json"), d.join(".state.json.tmp"));
        std::fs::write(&tmp, "stale").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&path, &tmp, b"{}", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
        assert_eq!(mode(&path), 0o600);
        assert!(!tmp.exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
