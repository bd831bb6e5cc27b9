//! The exit record (`exit.json`): how a container ended, written once and atomically (a
//! temporary file, fsync, rename, fsync of the directory), so it survives a crash of the
//! monitor, the agent or the machine right after it was written. The monitor reserves the
//! record's disk space before the container starts, so a disk filled by the container's logs
//! cannot cost its exit status.

use super::error::{Error, Result};
use super::layout;
use nix::sys::wait::WaitStatus;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Bytes reserved for the record (a record is a few hundred bytes; an error message is cut to
/// fit).
const RESERVED: usize = 4096;
const MAX_MESSAGE: usize = 2048;

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The exit code, when the container's process exited by itself.
    pub exit_code: Option<i32>,
    /// The signal number that ended it, when it was killed.
    pub signal: Option<i32>,
    /// Whether the kernel's OOM killer killed a process of the container (its cgroup counted
    /// an `oom_kill`) during its life.
    pub oom_killed: bool,
    /// When the monitor saw the exit (or, with `monitor_lost`, when the loss was found):
    /// RFC 3339 UTC with nanoseconds.
    pub finished_at: String,
    /// The monitor died while the container ran; the container was killed with it (see the
    /// module docs of [`crate::monitor`]): `signal` is SIGKILL.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub monitor_lost: bool,
    /// Why the container never ran its process (creating or starting it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Lines of output the monitor could not write to the log (the disk was full), up to the
    /// moment the exit was recorded.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_log_lines: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Now, as the records and logs spell time (a clock set before 1970 reads as 1970: the
/// formatter would panic, and a panicking monitor would take its container along).
pub fn now() -> String {
    let t = std::time::SystemTime::now().max(std::time::UNIX_EPOCH);
    humantime::format_rfc3339_nanos(t).to_string()
}

impl ExitRecord {
    /// The record of a process that ended with `status` (an exit or a signal).
    pub fn from_wait(status: WaitStatus, oom_killed: bool) -> ExitRecord {
        let (exit_code, signal) = match status {
            WaitStatus::Exited(_, code) => (Some(code), None),
            WaitStatus::Signaled(_, sig, _) => (None, Some(sig as i32)),
            _ => (None, None),
        };
        ExitRecord {
            exit_code,
            signal,
            oom_killed,
            finished_at: now(),
            monitor_lost: false,
            error: None,
            dropped_log_lines: 0,
        }
    }

    /// The record of a container that failed to start.
    pub fn start_failed(message: &str) -> ExitRecord {
        let mut message = message.to_string();
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        ExitRecord {
            exit_code: None,
            signal: None,
            oom_killed: false,
            finished_at: now(),
            monitor_lost: false,
            error: Some(message),
            dropped_log_lines: 0,
        }
    }

    /// The record of a container whose monitor died: it was killed with SIGKILL (by the
    /// kernel's parent-death signal, or by whoever found it orphaned).
    pub fn monitor_lost(oom_killed: bool) -> ExitRecord {
        ExitRecord {
            exit_code: None,
            signal: Some(libc::SIGKILL),
            oom_killed,
            finished_at: now(),
            monitor_lost: true,
            error: None,
            dropped_log_lines: 0,
        }
    }

    /// The status a shell would report: the exit code, or 128 + the signal; 255 when the
    /// container never ran.
    pub fn status(&self) -> i32 {
        match (self.exit_code, self.signal) {
            (Some(code), _) => code,
            (None, Some(sig)) => 128 + sig,
            (None, None) => 255,
        }
    }

    fn to_json(&self) -> Vec<u8> {
        let mut data = serde_json::to_vec(self).expect("exit record serializes");
        data.push(b'\n');
        data
    }
}

/// Reads `exit.json` in `dir`; `None` if there is none yet.
pub fn read(dir: &Path) -> Result<Option<ExitRecord>> {
    let path = dir.join(layout::EXIT_FILE);
    match mini_run::input_file::read(&path, mini_run::input_file::JSON_LIMIT) {
        Ok(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(|e| Error::Invalid(format!("corrupt exit record {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// Writes `exit.json` in `dir` atomically and durably (for a record made outside a monitor,
/// e.g. by [`super::adopt`]).
pub fn write(dir: &Path, record: &ExitRecord) -> Result<()> {
    let tmp = dir.join(".exit.json.tmp");
    let ctx = |what: &str| format!("{what} {}", tmp.display());
    let _ = std::fs::remove_file(&tmp);
    let mut f = mini_run::private_files::options()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| Error::io(ctx("creating"), e))?;
    f.write_all(&record.to_json())
        .map_err(|e| Error::io(ctx("writing"), e))?;
    commit(f, &tmp, dir)
}

fn commit(f: File, tmp: &Path, dir: &Path) -> Result<()> {
    f.sync_all()
        .map_err(|e| Error::io(format!("syncing {}", tmp.display()), e))?;
    let dest = dir.join(layout::EXIT_FILE);
    std::fs::rename(tmp, &dest)
        .map_err(|e| Error::io(format!("renaming {} into place", tmp.display()), e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing {}", dir.display()), e))
}

/// Disk space held for the exit record from the start of the monitor.
pub struct Reservation {
    file: File,
    dir: std::path::PathBuf,
}

impl Reservation {
    /// Reserves space in `dir` (allocated blocks, so writing there later needs no new space).
    pub fn new(dir: &Path) -> Result<Reservation> {
        let path = dir.join(layout::EXIT_RESERVE);
        let ctx = |what: &str| format!("{what} {}", path.display());
        let _ = std::fs::remove_file(&path);
        let file = mini_run::private_files::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(ctx("creating"), e))?;
        file.write_all_at(&[b' '; RESERVED], 0)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(ctx("reserving space for the exit record in"), e))?;
        Ok(Reservation {
            file,
            dir: dir.to_path_buf(),
        })
    }

    /// Writes the record into the reserved space and renames it to `exit.json`.
    pub fn commit(self, record: &ExitRecord) -> Result<()> {
        let data = record.to_json();
        let path = self.dir.join(layout::EXIT_RESERVE);
        let ctx = |what: &str| format!("{what} {}", path.display());
        self.file
            .write_all_at(&data, 0)
            .and_then(|()| self.file.set_len(data.len() as u64))
            .map_err(|e| Error::io(ctx("writing the exit record to"), e))?;
        commit(self.file, &path, &self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::unistd::Pid;

    #[test]
    fn status_follows_the_shell_convention() {
        let p = Pid::from_raw(1);
        assert_eq!(
            ExitRecord::from_wait(WaitStatus::Exited(p, 3), false).status(),
            3
        );
        let killed = ExitRecord::from_wait(WaitStatus::Signaled(p, Signal::SIGKILL, false), true);
        assert_eq!(
            (killed.status(), killed.signal, killed.oom_killed),
            (137, Some(9), true)
        );
        assert_eq!(ExitRecord::start_failed("no rootfs").status(), 255);
    }

    #[test]
    fn a_reserved_record_round_trips_and_long_messages_are_cut() {
        let dir = std::env::temp_dir().join(format!("mini-shim-exit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = Reservation::new(&dir).unwrap();
        let rec = ExitRecord::start_failed(&"é".repeat(3000));
        assert!(rec.error.as_ref().unwrap().len() <= MAX_MESSAGE);
        r.commit(&rec).unwrap();
        assert_eq!(read(&dir).unwrap(), Some(rec));
        assert!(!dir.join(layout::EXIT_RESERVE).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
