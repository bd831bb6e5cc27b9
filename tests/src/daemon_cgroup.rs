//! A cgroup that holds the external daemons a test starts (containerd, dockerd and the
//! containerd it manages, podman's conmon) and every process they fork: their shims detach
//! with setsid and outlive the daemon, but they cannot leave a cgroup on their own. Dropping
//! it kills whatever is still inside and removes it, so a failing test leaves no shim behind.

use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// One test's daemon cgroup: in the v1 `pids` hierarchy on a v1/hybrid host, at the root of
/// the v2 tree on a pure v2 host.
pub struct DaemonCgroup {
    dir: PathBuf,
}

impl DaemonCgroup {
    /// Creates `<hierarchy>/<unique(prefix)>`.
    pub fn new(prefix: &str) -> DaemonCgroup {
        let root = match crate::cgroup_version() {
            mini_cgroups::Version::V1 => Path::new("/sys/fs/cgroup/pids"),
            mini_cgroups::Version::V2 => Path::new("/sys/fs/cgroup"),
        };
        let dir = root.join(crate::unique(prefix));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        DaemonCgroup { dir }
    }

    /// Makes `cmd` start inside the cgroup (the child joins it before it executes), so all it
    /// forks is held too.
    pub fn adopt<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        let procs =
            std::ffi::CString::new(self.dir.join("cgroup.procs").into_os_string().into_vec())
                .expect("a path without NUL");
        // SAFETY: the closure runs in the forked child before exec and makes only
        // async-signal-safe calls (open, write, close) on memory prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                if written == 1 {
                    Ok(())
                } else {
                    Err(err)
                }
            })
        }
    }

    /// The processes inside.
    pub fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// SIGKILLs every process inside until none is left (or 30 s pass).
    pub fn kill_all(&self) {
        crate::wait_until(Duration::from_secs(30), || {
            let pids = self.pids();
            for pid in &pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            pids.is_empty()
        });
    }
}

impl Drop for DaemonCgroup {
    fn drop(&mut self) {
        self.kill_all();
        // The last processes' exit may lag their disappearance from cgroup.procs briefly.
        crate::wait_until(Duration::from_secs(10), || {
            std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists()
        });
    }
}
