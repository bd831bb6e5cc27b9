//! The files of one container's directory (`<state-dir>/containers/<id>/`) that belong to its
//! monitor, and how to reach its socket whatever the directory's path length.

use super::error::{Error, Result};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The monitor's unix socket.
pub const SOCKET: &str = "monitor.sock";
/// The monitor's pid, locked (flock, exclusive) for as long as the monitor lives.
pub const PID_FILE: &str = "monitor.pid";
/// How the monitor was started ([`super::MonitorInfo`]), written before the container is created.
pub const INFO_FILE: &str = "monitor.json";
/// The monitor's own diagnostics (its stderr), one line each.
pub const DIAGNOSTICS: &str = "monitor.log";
/// The exit record ([`super::ExitRecord`]), written once, atomically.
pub const EXIT_FILE: &str = "exit.json";
/// Space reserved at start for the exit record, so a full disk cannot lose it.
pub const EXIT_RESERVE: &str = ".exit.json.reserve";
/// A hard link of the monitor's binary, which it runs from (see `pin`).
pub const PINNED_BINARY: &str = ".monitor.bin";
/// The current log file; rotated ones are `log.jsonl.1` (newest) to `log.jsonl.N` (oldest).
pub const LOG_FILE: &str = "log.jsonl";

/// The path of the `n`th log file in `log_dir`: 0 is the current one, 1.. the rotated ones.
pub fn log_path(log_dir: &Path, n: u32) -> PathBuf {
    match n {
        0 => log_dir.join(LOG_FILE),
        n => log_dir.join(format!("{LOG_FILE}.{n}")),
    }
}

/// The log files present in `log_dir`, oldest first (`log.jsonl.N` ... `log.jsonl.1`,
/// `log.jsonl`), as their rotation indexes.
pub fn log_files(log_dir: &Path) -> Vec<u32> {
    let mut rotated: Vec<u32> = std::fs::read_dir(log_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            name.to_str()?
                .strip_prefix(LOG_FILE)?
                .strip_prefix('.')?
                .parse()
                .ok()
        })
        .filter(|&n| n > 0)
        .collect();
    rotated.sort_unstable_by(|a, b| b.cmp(a));
    if log_dir.join(LOG_FILE).exists() {
        rotated.push(0);
    }
    rotated
}

/// A path naming `name` inside `dir` that fits a unix socket address (108 bytes) however long
/// `dir` is: `/proc/self/fd/<n>/<name>` through an open descriptor of `dir`, which must stay
/// open while the path is used.
pub struct SocketPath {
    _dir: File,
    path: PathBuf,
}

impl SocketPath {
    /// The socket `name` in `dir`.
    pub fn new(dir: &Path, name: &str) -> Result<SocketPath> {
        let d = nix::fcntl::open(
            dir,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| Error::io(format!("opening {}", dir.display()), e.into()))?;
        let d = File::from(d);
        let path = PathBuf::from(format!("/proc/self/fd/{}/{name}", d.as_raw_fd()));
        Ok(SocketPath { _dir: d, path })
    }

    /// The short path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_files_are_listed_oldest_first() {
        let dir = std::env::temp_dir().join(format!("mini-shim-layout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for n in [0, 1, 2, 10] {
            std::fs::write(log_path(&dir, n), b"").unwrap();
        }
        std::fs::write(dir.join("log.jsonl.tmp"), b"").unwrap();
        assert_eq!(log_files(&dir), vec![10, 2, 1, 0]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
