//! cgroup v2: the unified hierarchy, one directory per container.

mod resources;
mod stats;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result};
use crate::hierarchy::{host_dir, CgroupMount, Hierarchy};
use crate::{fs, oom, CgroupConfig, Manager, MountSource, Stats, Version, FREEZE_TIMEOUT};

/// The controllers listed in `dir`'s cgroup.controllers (none if unreadable).
fn controllers(dir: &Path) -> Vec<String> {
    fs::read(dir, "cgroup.controllers")
        .map(|t| t.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The v2 configuration for cgroup `path` in the cgroup2 filesystem at `mount_point`.
pub(crate) fn config(mount_point: &Path, path: &Path) -> CgroupConfig {
    let mount = CgroupMount {
        mount_point: mount_point.to_path_buf(),
        root: PathBuf::from("/"),
        controllers: Vec::new(),
        v2: true,
    };
    CgroupConfig {
        version: Version::V2,
        path: path.to_path_buf(),
        hierarchies: vec![Hierarchy {
            name: String::new(),
            controllers: controllers(mount_point),
            mount_point: mount_point.to_path_buf(),
            path: path.to_path_buf(),
            dir: host_dir(&mount, path),
            created: Vec::new(),
        }],
    }
}

/// Manages a container's cgroup on v2.
pub(crate) struct V2Manager {
    config: CgroupConfig,
}

impl V2Manager {
    pub(crate) fn new(config: CgroupConfig) -> Self {
        Self { config }
    }

    fn hierarchy(&self) -> &Hierarchy {
        &self.config.hierarchies[0]
    }

    /// The container's cgroup directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.hierarchy().dir
    }

    /// Enables every available controller in cgroup.subtree_control of each level from the
    /// hierarchy root down to the container's parent, so the container gets them all. Failures
    /// are ignored as runc does (e.g. a level holding processes); a missing controller then
    /// shows up as an error when a limit for it is applied.
    fn enable_controllers(&self) {
        let h = self.hierarchy();
        let Ok(rel) = h.dir.strip_prefix(&h.mount_point) else {
            return;
        };
        let mut level = h.mount_point.clone();
        for comp in rel.components() {
            let enabled = fs::read(&level, "cgroup.subtree_control").unwrap_or_default();
            let enabled: Vec<&str> = enabled.split_whitespace().collect();
            for c in controllers(&level) {
                if !enabled.contains(&c.as_str()) {
                    let _ = fs::write(&level, "cgroup.subtree_control", format!("+{c}"));
                }
            }
            level.push(comp);
        }
    }

    /// Whether the kernel reports the cgroup frozen (cgroup.events "frozen 1").
    fn frozen_event(&self) -> Result<bool> {
        let events = fs::read_flat_keyed(self.dir(), "cgroup.events")?;
        match events.get("frozen") {
            Some(v) => Ok(*v == 1),
            None => Err(Error::Unsupported(format!(
                "{} has no cgroup.events \"frozen\" field (kernel older than 5.2?)",
                self.dir().display()
            ))),
        }
    }
}

impl Manager for V2Manager {
    fn config(&self) -> &CgroupConfig {
        &self.config
    }

    fn version(&self) -> Version {
        Version::V2
    }

    fn path(&self) -> &Path {
        &self.config.path
    }

    fn create(&mut self) -> Result<()> {
        let pids = fs::procs_recursive(self.dir())?;
        if !pids.is_empty() {
            return Err(Error::NotEmpty {
                path: self.dir().to_path_buf(),
                pids,
            });
        }
        let h = &mut self.config.hierarchies[0];
        h.create_dir()?;
        self.enable_controllers();
        // Without a "frozen" field (kernel < 5.2) nothing can be told: go on.
        if self.frozen_event().unwrap_or(false) {
            return Err(Error::Frozen {
                path: self.dir().to_path_buf(),
            });
        }
        Ok(())
    }

    fn add_process(&self, pid: i32) -> Result<()> {
        fs::write(self.dir(), "cgroup.procs", pid)
    }

    fn apply(&self, resources: &LinuxResources) -> Result<()> {
        resources::apply(self, resources)
    }

    fn freeze(&self) -> Result<()> {
        fs::write(self.dir(), "cgroup.freeze", 1)?;
        let frozen = fs::poll_until(FREEZE_TIMEOUT, || Ok(self.frozen_event()?.then_some(())))?;
        if frozen.is_none() {
            let _ = fs::write(self.dir(), "cgroup.freeze", 0);
            return Err(Error::Timeout(format!(
                "freezing {} after {FREEZE_TIMEOUT:?}",
                self.dir().display()
            )));
        }
        Ok(())
    }

    fn thaw(&self) -> Result<()> {
        fs::write(self.dir(), "cgroup.freeze", 0)
    }

    fn is_frozen(&self) -> Result<bool> {
        self.frozen_event()
    }

    fn kill_all(&self, signal: i32) -> Result<()> {
        if signal == libc::SIGKILL && fs::exists(self.dir(), "cgroup.kill") {
            return fs::write(self.dir(), "cgroup.kill", 1);
        }
        if fs::exists(self.dir(), "cgroup.freeze") {
            crate::signal_frozen(self, signal)
        } else {
            fs::signal_pids(&self.processes()?, signal)
        }
    }

    fn processes(&self) -> Result<Vec<i32>> {
        fs::procs_recursive(self.dir())
    }

    fn stats(&self) -> Result<Stats> {
        stats::collect(self.dir())
    }

    fn oom_kill_count(&self) -> Result<u64> {
        oom::v2_oom_kill_count(self.dir())
    }

    fn wait_oom(&self, baseline: u64, timeout: Duration) -> Result<bool> {
        if !fs::exists(self.dir(), "memory.events") {
            return Err(Error::Unsupported(format!(
                "OOM notification needs the memory controller in {}",
                self.dir().display()
            )));
        }
        oom::v2_wait(self.dir(), baseline, timeout)
    }

    fn destroy(&self) -> Result<()> {
        self.hierarchy().remove_dir()
    }

    fn dir_fd(&mut self) -> Result<Option<OwnedFd>> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        open(self.dir(), flags, Mode::empty())
            .map(Some)
            .map_err(|e| Error::io("opening", self.dir(), e.into()))
    }

    fn mount_sources(&self) -> Result<Vec<MountSource>> {
        Ok(vec![MountSource {
            hierarchy: String::new(),
            controllers: controllers(self.dir()),
            host_dir: self.dir().to_path_buf(),
        }])
    }
}
