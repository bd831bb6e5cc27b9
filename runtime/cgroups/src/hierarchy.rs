//! Finding cgroup hierarchies on the host (/proc/self/mountinfo) and resolving a container's
//! cgroup directory in each of them.

use std::fs;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The v1 controllers this crate knows; other mount options of a `cgroup` mount are flags.
const V1_CONTROLLERS: &[&str] = &[
    "cpuset",
    "cpu",
    "cpuacct",
    "blkio",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "perf_event",
    "net_prio",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// One cgroup filesystem mount as found in mountinfo.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CgroupMount {
    /// Where it is mounted, e.g. /sys/fs/cgroup/cpu,cpuacct.
    pub mount_point: PathBuf,
    /// The cgroup path of the mount's root (usually "/").
    pub root: PathBuf,
    /// v1 controllers (and "name=..." for named hierarchies); empty for cgroup2.
    pub controllers: Vec<String>,
    /// Whether this is a cgroup2 mount.
    pub v2: bool,
}

/// Parses mountinfo text into its cgroup mounts, one per hierarchy (first mount wins).
pub(crate) fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut out: Vec<CgroupMount> = Vec::new();
    for line in text.lines() {
        // id parent maj:min root mount-point options [optional fields...] - fstype source super-options
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let (fstype, super_opts) = (post[0], post[2]);
        let v2 = match fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers: Vec<String> = if v2 {
            Vec::new()
        } else {
            super_opts
                .split(',')
                .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                .map(str::to_string)
                .collect()
        };
        if !v2 && controllers.is_empty() {
            continue;
        }
        let mount = CgroupMount {
            mount_point: PathBuf::from(unescape(pre[4])),
            root: PathBuf::from(unescape(pre[3])),
            controllers,
            v2,
        };
        let same_hierarchy = out
            .iter()
            .any(|m| m.v2 == mount.v2 && m.controllers == mount.controllers);
        if !same_hierarchy {
            out.push(mount);
        }
    }
    out
}

/// Undoes mountinfo's octal escapes (\040 for space, ...).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The host's cgroup mounts.
pub(crate) fn host_mounts() -> Result<Vec<CgroupMount>> {
    let path = "/proc/self/mountinfo";
    let text = fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
    Ok(parse_mountinfo(&text))
}

/// One line of /proc/<pid>/cgroup.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProcCgroup {
    /// Controllers of the hierarchy ("cpu,cpuacct" split); empty for the v2 line.
    pub controllers: Vec<String>,
    /// The path relative to the hierarchy root.
    pub path: PathBuf,
}

/// Parses /proc/<pid>/cgroup text.
pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<ProcCgroup> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.splitn(3, ':');
            let _id = it.next()?;
            let ctrls = it.next()?;
            let path = it.next()?;
            let controllers = ctrls
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            Some(ProcCgroup {
                controllers,
                path: PathBuf::from(path),
            })
        })
        .collect()
}

/// The calling process's cgroups.
pub(crate) fn own_cgroups() -> Result<Vec<ProcCgroup>> {
    let path = "/proc/self/cgroup";
    let text = fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
    Ok(parse_proc_cgroup(&text))
}

/// Normalizes a path lexically: makes it absolute, drops "." and resolves "..".
pub(crate) fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Resolves the container's cgroup path relative to a hierarchy's root.
///
/// `own` is the runtime's own cgroup path in that hierarchy. An absolute `cgroups_path` is
/// used as is; a relative one goes under `own` on v1 and under `own`'s parent on v2 (whose
/// "no internal processes" rule forbids children of a cgroup that holds processes), as runc
/// does; `None` is the relative path `<id>`, runc's default (a runtime running in the root
/// cgroups puts the container at `/<id>`).
pub(crate) fn resolve_path(cgroups_path: Option<&Path>, id: &str, own: &Path, v2: bool) -> PathBuf {
    match cgroups_path {
        Some(p) if p.is_absolute() => clean(p),
        p => {
            let base = if v2 {
                own.parent().unwrap_or(Path::new("/"))
            } else {
                own
            };
            clean(&base.join(p.unwrap_or(Path::new(id))))
        }
    }
}

/// The host directory of cgroup `path` in a hierarchy mounted at `mount_point` whose mount
/// shows the cgroup `root`.
pub(crate) fn host_dir(mount: &CgroupMount, path: &Path) -> PathBuf {
    let rel = path.strip_prefix(&mount.root).unwrap_or(path);
    mount.mount_point.join(path_relative(rel))
}

/// Drops any leading "/" so that joining stays below the base.
fn path_relative(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}

/// One hierarchy a container's cgroup lives in: on v2 the single unified one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Hierarchy {
    /// The hierarchy's name as mounted on the host: the mount directory's name on v1
    /// ("cpu,cpuacct", "memory", "systemd"), "" on v2.
    pub name: String,
    /// The controllers it holds ("cpu", "cpuacct", or "name=systemd"); on v2 the controllers
    /// listed in the root's cgroup.controllers when the manager was built.
    pub controllers: Vec<String>,
    /// The host mount point of the hierarchy.
    pub mount_point: PathBuf,
    /// The container's cgroup path relative to the hierarchy root.
    pub path: PathBuf,
    /// The host directory of the container's cgroup.
    pub dir: PathBuf,
    /// Directories this cgroup owns, outermost first: those `create` made (the last is `dir`
    /// itself when it was new). `destroy` removes each while it is empty. (Containers without
    /// a cgroupsPath once shared a `/mini-run` parent, recorded here too, so a state of that
    /// time still removes it.)
    #[serde(default)]
    pub created: Vec<PathBuf>,
}

impl Hierarchy {
    /// Creates the cgroup directory and its missing parents, recording those it owns.
    pub(crate) fn create_dir(&mut self) -> Result<()> {
        for d in crate::fs::mkdir_all(&self.mount_point, &self.dir)? {
            if !self.created.contains(&d) {
                self.created.push(d);
            }
        }
        Ok(())
    }

    /// Removes the cgroup directory (with any child cgroups), then, innermost first, the
    /// parents it owns while they are empty.
    pub(crate) fn remove_dir(&self) -> Result<()> {
        crate::fs::remove_tree(&self.dir)?;
        for parent in self.created.iter().rev().filter(|p| **p != self.dir) {
            if !crate::fs::remove_if_empty(parent)? {
                break;
            }
        }
        Ok(())
    }

    /// Whether this hierarchy holds `controller`.
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
99 31 0:32 /sub /mnt/mem\\040x rw - cgroup cgroup rw,memory
";

    #[test]
    fn mountinfo_finds_each_hierarchy_once() {
        let m = parse_mountinfo(HYBRID);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(m[0].mount_point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m[2].controllers, vec!["name=systemd"]);
        assert!(m[3].v2);
        assert_eq!(m[3].mount_point, Path::new("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn mountinfo_unescapes_spaces() {
        assert_eq!(unescape("/mnt/mem\\040x"), "/mnt/mem x");
        assert_eq!(unescape("/plain"), "/plain");
    }

    #[test]
    fn proc_cgroup_lines_parse() {
        let v = parse_proc_cgroup("4:memory:/a/b\n1:cpu,cpuacct:/\n0::/user.slice/x\n");
        assert_eq!(v[0].controllers, vec!["memory"]);
        assert_eq!(v[0].path, Path::new("/a/b"));
        assert_eq!(v[1].controllers, vec!["cpu", "cpuacct"]);
        assert!(v[2].controllers.is_empty());
        assert_eq!(v[2].path, Path::new("/user.slice/x"));
    }

    #[test]
    fn cgroups_path_resolution_follows_runc() {
        let own = Path::new("/user.slice/session-1.scope");
        // No cgroupsPath: the id, relative, as runc.
        assert_eq!(
            resolve_path(None, "c1", own, true),
            Path::new("/user.slice/c1")
        );
        assert_eq!(
            resolve_path(None, "c1", Path::new("/"), false),
            Path::new("/c1")
        );
        assert_eq!(
            resolve_path(Some(Path::new("/a/../b/c")), "c1", own, true),
            Path::new("/b/c")
        );
        assert_eq!(
            resolve_path(Some(Path::new("x/y")), "c1", own, true),
            Path::new("/user.slice/x/y")
        );
        assert_eq!(
            resolve_path(Some(Path::new("x/y")), "c1", own, false),
            Path::new("/user.slice/session-1.scope/x/y")
        );
    }

    #[test]
    fn host_dir_strips_the_mount_root() {
        let m = CgroupMount {
            mount_point: PathBuf::from("/sys/fs/cgroup/memory"),
            root: PathBuf::from("/docker/abc"),
            controllers: vec!["memory".into()],
            v2: false,
        };
        assert_eq!(
            host_dir(&m, Path::new("/docker/abc/mini-run/x")),
            Path::new("/sys/fs/cgroup/memory/mini-run/x")
        );
        let root = CgroupMount {
            root: PathBuf::from("/"),
            ..m
        };
        assert_eq!(
            host_dir(&root, Path::new("/mini-run/x")),
            Path::new("/sys/fs/cgroup/memory/mini-run/x")
        );
    }
}
