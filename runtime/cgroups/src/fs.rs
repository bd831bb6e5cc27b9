//! Small helpers for reading and writing cgroupfs control files with error context.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Writes `value` into the existing control file `dir/file` (never creates it).
pub(crate) fn write(dir: &Path, file: &str, value: impl Display) -> Result<()> {
    let path = dir.join(file);
    let value = value.to_string();
    let result = fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    result.map_err(|source| Error::Write {
        path,
        value,
        source,
    })
}

/// Reads `dir/file` as text.
pub(crate) fn read(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    fs::read_to_string(&path).map_err(|e| Error::io("reading", path, e))
}

/// Whether the control file `dir/file` exists.
pub(crate) fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

/// Parses a single number, mapping "max" (v2) to `u64::MAX`.
pub(crate) fn parse_u64(path: &Path, text: &str) -> Result<u64> {
    let t = text.trim();
    if t == "max" {
        return Ok(u64::MAX);
    }
    t.parse().map_err(|_| Error::Parse {
        path: path.to_path_buf(),
        content: t.to_string(),
    })
}

/// Reads a single-number control file ("max" reads as `u64::MAX`).
pub(crate) fn read_u64(dir: &Path, file: &str) -> Result<u64> {
    parse_u64(&dir.join(file), &read(dir, file)?)
}

/// Reads a single-number control file if it exists.
pub(crate) fn read_u64_opt(dir: &Path, file: &str) -> Result<Option<u64>> {
    if exists(dir, file) {
        read_u64(dir, file).map(Some)
    } else {
        Ok(None)
    }
}

/// Parses "key value" lines (memory.stat, cpu.stat, memory.events, ...).
/// Lines whose value is not a number are skipped.
pub(crate) fn parse_flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.split_whitespace();
            let key = it.next()?;
            let value = it.next()?.parse().ok()?;
            Some((key.to_string(), value))
        })
        .collect()
}

/// Reads a flat-keyed file; a missing file reads as empty.
pub(crate) fn read_flat_keyed(dir: &Path, file: &str) -> Result<BTreeMap<String, u64>> {
    if !exists(dir, file) {
        return Ok(BTreeMap::new());
    }
    Ok(parse_flat_keyed(&read(dir, file)?))
}

/// Parses a cgroup.procs file.
pub(crate) fn parse_pids(path: &Path, text: &str) -> Result<Vec<i32>> {
    text.split_whitespace()
        .map(|s| {
            s.parse().map_err(|_| Error::Parse {
                path: path.to_path_buf(),
                content: s.to_string(),
            })
        })
        .collect()
}

/// Lists the processes in `dir` and all its descendant cgroups. A missing directory has none.
pub(crate) fn procs_recursive(dir: &Path) -> Result<Vec<i32>> {
    let mut pids = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let procs = d.join("cgroup.procs");
        match fs::read_to_string(&procs) {
            Ok(text) => pids.extend(parse_pids(&procs, &text)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("reading", procs, e)),
        }
        stack.extend(subdirs(&d)?);
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

/// The child cgroup directories of `dir` (none if `dir` is gone).
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("listing", dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", dir, e))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// Creates `dir` and its missing parents (never above `root`), returning the directories
/// it created, outermost first. A parent that another container's delete removes meanwhile
/// (it was empty for a moment) is made again.
pub(crate) fn mkdir_all(root: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut created = Vec::new();
    let mut attempts = 0;
    'walk: loop {
        let mut missing = Vec::new();
        let mut cur = dir;
        while cur != root && !cur.exists() {
            missing.push(cur.to_path_buf());
            match cur.parent() {
                Some(p) => cur = p,
                None => break,
            }
        }
        missing.reverse();
        for d in missing {
            match fs::create_dir(&d) {
                Ok(()) => created.push(d),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < MKDIR_ATTEMPTS => {
                    attempts += 1;
                    continue 'walk;
                }
                Err(e) => return Err(Error::io("creating directory", d, e)),
            }
        }
        return Ok(created);
    }
}

/// How often `mkdir_all` walks again after a parent vanished under it.
const MKDIR_ATTEMPTS: u32 = 10;

/// How long removal retries on EBUSY (processes still exiting) before giving up.
const RMDIR_TIMEOUT: Duration = Duration::from_secs(2);

/// Removes the cgroup `dir` and its child cgroups, depth first. A missing directory is fine;
/// EBUSY is retried briefly.
pub(crate) fn remove_tree(dir: &Path) -> Result<()> {
    for sub in subdirs(dir)? {
        remove_tree(&sub)?;
    }
    let deadline = Instant::now() + RMDIR_TIMEOUT;
    let mut delay = Duration::from_millis(5);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            Err(e) => return Err(Error::io("removing", dir, e)),
        }
    }
}

/// Removes a parent directory this crate created, if it is empty now. Returns whether it was
/// removed (or already gone); a directory still in use by other cgroups is left alone.
pub(crate) fn remove_if_empty(dir: &Path) -> Result<bool> {
    match fs::remove_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY)) => Ok(false),
        Err(e) => Err(Error::io("removing", dir, e)),
    }
}

/// Calls `check` until it returns `Some`, sleeping with backoff, up to `timeout`.
pub(crate) fn poll_until<T>(
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(1);
    loop {
        if let Some(v) = check()? {
            return Ok(Some(v));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

/// Sends `signal` to each pid, ignoring processes that already exited.
pub(crate) fn signal_pids(pids: &[i32], signal: i32) -> Result<()> {
    for &pid in pids {
        // SAFETY: kill(2) has no memory-safety preconditions.
        if unsafe { libc::kill(pid, signal) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(Error::io("signalling", format!("/proc/{pid}"), e));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed_skips_non_numbers() {
        let m = parse_flat_keyed("usage_usec 10\nuser_usec 4\nbogus x\n\n");
        assert_eq!(m.get("usage_usec"), Some(&10));
        assert_eq!(m.get("user_usec"), Some(&4));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn max_parses_as_u64_max() {
        assert_eq!(parse_u64(Path::new("x"), "max\n").unwrap(), u64::MAX);
        assert_eq!(parse_u64(Path::new("x"), "42\n").unwrap(), 42);
        assert!(parse_u64(Path::new("x"), "4x").is_err());
    }
}
