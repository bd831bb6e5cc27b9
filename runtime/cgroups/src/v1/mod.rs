//! cgroup v1: one directory per mounted controller hierarchy.

mod resources;
mod stats;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result};
use crate::hierarchy::{self, CgroupMount, Hierarchy, ProcCgroup};
use crate::{fs, oom, CgroupConfig, Manager, MountSource, Stats, Version, FREEZE_TIMEOUT};

/// Controllers whose hierarchy is preferred as the "primary" one (listed first in the
/// configuration), in order: its path is [`Manager::path`] and its cgroup.procs is read by
/// [`Manager::processes`].
const PRIMARY: &[&str] = &["freezer", "pids", "memory", "cpu", "devices"];

/// Builds the v1 configuration for a container: its cgroup in every mounted v1 hierarchy.
pub(crate) fn config(
    mounts: &[CgroupMount],
    own: &[ProcCgroup],
    cgroups_path: Option<&Path>,
    id: &str,
) -> Result<CgroupConfig> {
    // A hybrid host's cgroup2 tree (no controllers of its own) is joined too, as runc does:
    // tools find the container there. It sorts last, after every v1 hierarchy.
    let mut hierarchies: Vec<Hierarchy> = mounts
        .iter()
        .map(|m| {
            let own_path = own
                .iter()
                .find(|c| c.controllers == m.controllers)
                .map_or_else(|| PathBuf::from("/"), |c| c.path.clone());
            let path = hierarchy::resolve_path(cgroups_path, id, &own_path, false);
            Hierarchy {
                name: m
                    .mount_point
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                controllers: m.controllers.clone(),
                mount_point: m.mount_point.clone(),
                dir: hierarchy::host_dir(m, &path),
                path,
                created: Vec::new(),
            }
        })
        .collect();
    if hierarchies.iter().all(is_unified) {
        return Err(Error::Unsupported("no cgroup v1 hierarchy mounted".into()));
    }
    let rank = |h: &Hierarchy| {
        PRIMARY
            .iter()
            .position(|c| h.has(c))
            .unwrap_or(PRIMARY.len())
    };
    hierarchies.sort_by_key(rank);
    Ok(CgroupConfig {
        version: Version::V1,
        path: hierarchies[0].path.clone(),
        hierarchies,
    })
}

/// Whether a hierarchy of a v1 configuration is the hybrid host's cgroup2 tree (v1 hierarchies,
/// named ones too, always list a controller).
fn is_unified(h: &Hierarchy) -> bool {
    h.controllers.is_empty()
}

/// Manages a container's cgroup on v1.
pub(crate) struct V1Manager {
    config: CgroupConfig,
}

impl V1Manager {
    pub(crate) fn new(config: CgroupConfig) -> Self {
        Self { config }
    }

    /// The container's directory in the hierarchy holding `controller`, if mounted.
    pub(crate) fn dir(&self, controller: &str) -> Option<&Path> {
        self.config
            .hierarchies
            .iter()
            .find(|h| h.has(controller))
            .map(|h| h.dir.as_path())
    }

    /// Like [`Self::dir`], but a missing controller is an error naming what needed it.
    pub(crate) fn need(&self, controller: &str, purpose: &str) -> Result<&Path> {
        self.dir(controller).ok_or_else(|| {
            Error::Unsupported(format!(
                "{purpose} needs the cgroup v1 {controller} controller, which is not mounted"
            ))
        })
    }

    /// Copies the parent's cpuset.cpus / cpuset.mems into every level from the hierarchy root
    /// down to `dir` where they are empty: a cpuset cgroup accepts no tasks otherwise.
    fn init_cpuset(mount_point: &Path, dir: &Path) -> Result<()> {
        let Ok(rel) = dir.strip_prefix(mount_point) else {
            return Ok(());
        };
        let mut parent = mount_point.to_path_buf();
        for comp in rel.components() {
            let cur = parent.join(comp);
            for file in ["cpuset.cpus", "cpuset.mems"] {
                if fs::read(&cur, file)?.trim().is_empty() {
                    fs::write(&cur, file, fs::read(&parent, file)?.trim())?;
                }
            }
            parent = cur;
        }
        Ok(())
    }

    /// freezer.state of the container.
    fn freezer_state(&self) -> Result<String> {
        let dir = self.need("freezer", "freezing")?;
        Ok(fs::read(dir, "freezer.state")?.trim().to_string())
    }
}

impl Manager for V1Manager {
    fn config(&self) -> &CgroupConfig {
        &self.config
    }

    fn version(&self) -> Version {
        Version::V1
    }

    fn path(&self) -> &Path {
        &self.config.path
    }

    fn create(&mut self) -> Result<()> {
        // The init is cloned into the cgroup2 tree (see `dir_fd`) before this runs.
        for h in self.config.hierarchies.iter().filter(|h| !is_unified(h)) {
            let pids = fs::procs_recursive(&h.dir)?;
            if !pids.is_empty() {
                return Err(Error::NotEmpty {
                    path: h.dir.clone(),
                    pids,
                });
            }
        }
        for h in &mut self.config.hierarchies {
            h.create_dir()?;
            if h.has("cpuset") {
                Self::init_cpuset(&h.mount_point, &h.dir)?;
            }
        }
        if let Some(dir) = self.dir("freezer") {
            if self.freezer_state()? != "THAWED" {
                return Err(Error::Frozen {
                    path: dir.to_path_buf(),
                });
            }
        }
        Ok(())
    }

    fn add_process(&self, pid: i32) -> Result<()> {
        for h in &self.config.hierarchies {
            fs::write(&h.dir, "cgroup.procs", pid)?;
        }
        Ok(())
    }

    fn apply(&self, resources: &LinuxResources) -> Result<()> {
        resources::apply(self, resources)
    }

    fn freeze(&self) -> Result<()> {
        let dir = self.need("freezer", "freezing")?;
        // Rewriting FROZEN retries tasks that were busy (e.g. in vfork) on the previous pass.
        let frozen = fs::poll_until(FREEZE_TIMEOUT, || {
            fs::write(dir, "freezer.state", "FROZEN")?;
            Ok((fs::read(dir, "freezer.state")?.trim() == "FROZEN").then_some(()))
        })?;
        if frozen.is_none() {
            let _ = fs::write(dir, "freezer.state", "THAWED");
            return Err(Error::Timeout(format!(
                "freezing {} after {FREEZE_TIMEOUT:?}",
                dir.display()
            )));
        }
        Ok(())
    }

    fn thaw(&self) -> Result<()> {
        fs::write(self.need("freezer", "thawing")?, "freezer.state", "THAWED")
    }

    fn is_frozen(&self) -> Result<bool> {
        Ok(self.freezer_state()? == "FROZEN")
    }

    fn kill_all(&self, signal: i32) -> Result<()> {
        if self.dir("freezer").is_some() {
            crate::signal_frozen(self, signal)
        } else {
            fs::signal_pids(&self.processes()?, signal)
        }
    }

    fn processes(&self) -> Result<Vec<i32>> {
        fs::procs_recursive(&self.config.hierarchies[0].dir)
    }

    fn stats(&self) -> Result<Stats> {
        stats::collect(self)
    }

    fn oom_kill_count(&self) -> Result<u64> {
        match self.dir("memory") {
            Some(dir) => oom::v1_oom_kill_count(dir),
            None => Ok(0),
        }
    }

    fn wait_oom(&self, baseline: u64, timeout: Duration) -> Result<bool> {
        oom::v1_wait(self.need("memory", "OOM notification")?, baseline, timeout)
    }

    fn destroy(&self) -> Result<()> {
        for h in &self.config.hierarchies {
            h.remove_dir()?;
        }
        Ok(())
    }

    fn dir_fd(&mut self) -> Result<Option<OwnedFd>> {
        let Some(h) = self.config.hierarchies.iter_mut().find(|h| is_unified(h)) else {
            return Ok(None);
        };
        h.create_dir()?;
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        open(&h.dir, flags, Mode::empty())
            .map(Some)
            .map_err(|e| Error::io("opening", &h.dir, e.into()))
    }

    fn mount_sources(&self) -> Result<Vec<MountSource>> {
        Ok(self
            .config
            .hierarchies
            .iter()
            .filter(|h| !is_unified(h))
            .map(|h| MountSource {
                hierarchy: h.name.clone(),
                controllers: h.controllers.clone(),
                host_dir: h.dir.clone(),
            })
            .collect())
    }
}
