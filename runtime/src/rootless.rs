//! Rootless mode: mini-run run by a user without privileges. As in runc it is on when the
//! effective uid is not 0, or is 0 only inside a user namespace (rootless podman runs its
//! runtime so): the state lives under `$XDG_RUNTIME_DIR`, the id maps of a new user namespace
//! are written by the runtime itself (one id) or by `newuidmap`/`newgidmap` (ranges from
//! /etc/subuid and /etc/subgid), and cgroups are used only where the user may create them.

use crate::error::{Error, Result};
use mini_cgroups::Manager;
use nix::unistd::{AccessFlags, Uid};
use oci_spec::runtime::{Linux, LinuxResources};
use std::path::{Path, PathBuf};

/// Whether this process runs in a user namespace other than the host's (whose uid map is
/// the identity of all ids).
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
}

/// Whether mini-run runs rootless: an effective uid other than 0, or root of a user
/// namespace (runc's rule).
pub fn active() -> bool {
    !Uid::effective().is_root() || in_user_namespace()
}

/// The default `--root`: `/run/mini-run`, or, when rootless with an `XDG_RUNTIME_DIR`,
/// `$XDG_RUNTIME_DIR/mini-run` (runc's `$XDG_RUNTIME_DIR/runc`, with its exception: root of a
/// user namespace whose `$USER` is root keeps the default).
pub fn default_root() -> PathBuf {
    let honor_xdg = !Uid::effective().is_root()
        || (in_user_namespace() && std::env::var("USER").ok().as_deref() != Some("root"));
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) if honor_xdg => Path::new(&dir).join("mini-run"),
        _ => PathBuf::from("/run/mini-run"),
    }
}

/// The cgroup controllers `resources` sets limits in (device rules excepted: a rootless
/// container cannot have them enforced and runc ignores them there too).
pub fn asked_controllers(resources: &LinuxResources) -> Vec<&'static str> {
    let mut asked = Vec::new();
    if resources.memory().is_some() {
        asked.push("memory");
    }
    if let Some(cpu) = resources.cpu() {
        if cpu.cpus().is_some() || cpu.mems().is_some() {
            asked.push("cpuset");
        }
        if cpu.shares().is_some()
            || cpu.quota().is_some()
            || cpu.period().is_some()
            || cpu.realtime_runtime().is_some()
            || cpu.realtime_period().is_some()
            || cpu.burst().is_some()
            || cpu.idle().is_some()
        {
            asked.push("cpu");
        }
    }
    if resources.pids().is_some() {
        asked.push("pids");
    }
    if resources.block_io().is_some() {
        asked.push("io");
    }
    if resources
        .hugepage_limits()
        .as_ref()
        .is_some_and(|h| !h.is_empty())
    {
        asked.push("hugetlb");
    }
    if resources.network().is_some() {
        asked.push("net_cls");
    }
    if resources.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
        asked.push("rdma");
    }
    if resources.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        asked.push("unified");
    }
    asked
}

fn writable(path: &Path) -> bool {
    nix::unistd::faccessat(
        nix::fcntl::AT_FDCWD,
        path,
        AccessFlags::W_OK | AccessFlags::X_OK,
        nix::fcntl::AtFlags::AT_EACCESS,
    )
    .is_ok()
}

/// The directory that decides whether the cgroup `dir` can be made: `dir` itself if it exists,
/// else its nearest existing ancestor.
fn nearest_existing(dir: &Path) -> &Path {
    dir.ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"))
}

/// A directory of `manager`'s cgroup the caller may not create or use, if any.
fn blocked(manager: &dyn Manager) -> Option<PathBuf> {
    manager.config().hierarchies.iter().find_map(|h| {
        let base = nearest_existing(&h.dir);
        let ok = if base == h.dir {
            writable(&base.join("cgroup.procs"))
        } else {
            writable(base)
        };
        (!ok).then(|| base.to_path_buf())
    })
}

/// On cgroup v2, the asked controllers the delegated parent of the container's cgroup does not
/// offer (its cgroup.controllers).
fn missing_controllers(manager: &dyn Manager, asked: &[&'static str]) -> Vec<&'static str> {
    if manager.version() != mini_cgroups::Version::V2 {
        return Vec::new();
    }
    let h = &manager.config().hierarchies[0];
    let parent = h.dir.parent().map(nearest_existing).unwrap_or(&h.dir);
    let offered = std::fs::read_to_string(parent.join("cgroup.controllers")).unwrap_or_default();
    let offered: Vec<&str> = offered.split_whitespace().collect();
    asked
        .iter()
        .copied()
        .filter(|c| *c != "unified" && !offered.contains(c))
        .collect()
}

/// The container's cgroup. As root, always one. Rootless: one where the user may create it
/// (a delegated subtree); none when it may not and `resources` asks for no limits (as runc,
/// said under `--debug`); an error naming the missing delegation when a limit cannot be
/// applied.
pub fn cgroup(
    linux: &Linux,
    id: &str,
    resources: &LinuxResources,
) -> Result<Option<Box<dyn Manager>>> {
    let manager = mini_cgroups::new_manager(linux.cgroups_path().as_deref(), id)?;
    if !active() {
        return Ok(Some(manager));
    }
    let asked = asked_controllers(resources);
    let uid = Uid::effective();
    match blocked(manager.as_ref()) {
        None => {
            let missing = missing_controllers(manager.as_ref(), &asked);
            if missing.is_empty() {
                return Ok(Some(manager));
            }
            let dir = &manager.config().hierarchies[0].dir;
            Err(Error::invalid(format!(
                "config.json: linux.resources sets {} limits but the {} controller is not \
                 delegated to uid {uid} above {}: enable it in the parents' \
                 cgroup.subtree_control (systemd: Delegate={}) or drop those limits",
                missing.join(", "),
                missing.join(", "),
                dir.display(),
                missing.join(" "),
            )))
        }
        Some(dir) if asked.is_empty() => {
            crate::logging::debug(&format!(
                "rootless: uid {uid} may not create cgroups in {}: running without a cgroup \
                 (no linux.resources limits asked)",
                dir.display()
            ));
            Ok(None)
        }
        Some(dir) => Err(Error::invalid(format!(
            "config.json: linux.resources sets {} limits but uid {uid} may not create cgroups \
             in {}: delegate a cgroup v2 subtree to this user (systemd Delegate=yes, or chown \
             of the directory, its cgroup.procs and cgroup.subtree_control) and point \
             linux.cgroupsPath into it, or drop the limits",
            asked.join(", "),
            dir.display()
        ))),
    }
}

/// Where `program` is found in `PATH`, if anywhere.
fn in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// What rootless mode supports on this host, as `features` annotations: always on for a user
/// without privileges; id ranges when newuidmap/newgidmap are installed; cgroups only in a
/// delegated cgroup v2 subtree (none without one, where no limits may be asked).
pub fn features() -> serde_json::Value {
    let helpers = ["newuidmap", "newgidmap"].map(|h| in_path(h).is_some());
    let ranges = if helpers == [true, true] {
        "newuidmap/newgidmap (/etc/subuid, /etc/subgid)"
    } else {
        "none: install newuidmap and newgidmap (Debian: uidmap); single-id maps only"
    };
    let cgroups = match mini_cgroups::detect() {
        Ok(mini_cgroups::Version::V2) => {
            "delegated cgroup v2 subtree (linux.cgroupsPath inside it); none without limits"
        }
        _ => "none: cgroup v1 is not delegated; containers without limits run without one",
    };
    serde_json::json!({
        "org.mini-run.rootless": "true",
        "org.mini-run.rootless.idMapRanges": ranges,
        "org.mini-run.rootless.cgroups": cgroups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_rules_ask_for_no_controller_and_limits_do() {
        let res: LinuxResources = serde_json::from_value(serde_json::json!({
            "devices": [{"allow": false, "access": "rwm"}]
        }))
        .unwrap();
        assert!(asked_controllers(&res).is_empty());
        let res: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 1048576}, "pids": {"limit": 5}, "cpu": {"cpus": "0"}
        }))
        .unwrap();
        assert_eq!(asked_controllers(&res), ["memory", "cpuset", "pids"]);
    }
}
