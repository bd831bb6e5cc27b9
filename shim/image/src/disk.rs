//! Disk usage of a directory tree (a container's writable layer).

use std::collections::HashSet;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Space a tree takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUsage {
    /// Bytes allocated on disk (`st_blocks` × 512, so sparse files count what they occupy);
    /// an inode with several hard links counts once.
    pub bytes: u64,
    /// Inodes (files, directories, links, whiteouts), each counted once.
    pub inodes: u64,
}

/// Walks `root` without following symlinks. Entries that vanish during the walk (a running
/// container deletes files) are skipped. Cost grows with the number of entries; it is meant
/// to be sampled, not called per request.
pub fn disk_usage(root: &Path) -> Result<DiskUsage> {
    let mut usage = DiskUsage::default();
    let mut seen = HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound && path != root => continue,
            Err(e) => return Err(Error::path("measuring", &path, e)),
        };
        if seen.insert((meta.dev(), meta.ino())) {
            usage.bytes += meta.blocks() * 512;
            usage.inodes += 1;
        }
        if meta.is_dir() {
            let entries = match std::fs::read_dir(&path) {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::path("listing", &path, e)),
            };
            for entry in entries.flatten() {
                stack.push(entry.path());
            }
        }
    }
    Ok(usage)
}
