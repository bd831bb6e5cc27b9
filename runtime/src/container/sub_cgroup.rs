//! `exec --cgroup`: the sub-cgroups of the container's cgroup an exec'd process joins, in
//! runc's forms (`--cgroup PATH`, or one `--cgroup CONTROLLER[,CONTROLLER]:PATH` per v1
//! controller). A sub-cgroup must lie inside the container's cgroup: a path with a `..`
//! component, or whose components are not plain directories (a symlink), is refused, so no
//! exec'd process escapes the container's limits into the parent cgroup.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

fn bad(msg: impl std::fmt::Display) -> Error {
    Error::invalid(msg)
}

/// The parsed `--cgroup` arguments: a path for every hierarchy (key "") or per controller.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SubCgroups(BTreeMap<String, PathBuf>);

impl SubCgroups {
    /// Parses the `--cgroup` arguments as runc does: one bare `PATH`, or any number of
    /// `CONTROLLER[,CONTROLLER]:PATH`, each controller named once.
    pub fn parse(args: &[String]) -> Result<SubCgroups> {
        let mut paths = BTreeMap::new();
        for arg in args {
            let (controllers, path) = match arg.split_once(':') {
                None if args.len() == 1 => ("", arg.as_str()),
                None => {
                    return Err(bad(format!(
                        "--cgroup {arg}: with several --cgroup, each needs a CONTROLLER: prefix"
                    )))
                }
                Some((c, p)) if !c.is_empty() && !p.contains(':') => (c, p),
                Some(_) => {
                    return Err(bad(format!(
                        "--cgroup {arg}: use PATH or CONTROLLER[,CONTROLLER]:PATH"
                    )))
                }
            };
            let path = relative(arg, path)?;
            for c in controllers.split(',') {
                if c.is_empty() && !controllers.is_empty() {
                    return Err(bad(format!("--cgroup {arg}: an empty controller name")));
                }
                if paths.insert(c.to_string(), path.clone()).is_some() {
                    return Err(bad(format!(
                        "--cgroup {arg}: controller {c} is named more than once"
                    )));
                }
            }
        }
        Ok(SubCgroups(paths))
    }

    /// Whether no `--cgroup` was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The sub-cgroup path (relative) for a hierarchy holding `controllers`: the bare path, the
    /// path given for one of its controllers, or none (the container's own cgroup). `v2` hosts
    /// take only the bare form; two different paths for one hierarchy are refused.
    pub fn for_hierarchy(&self, controllers: &[String], v2: bool) -> Result<Option<&Path>> {
        if let Some(p) = self.0.get("") {
            return Ok(Some(p));
        }
        if v2 && !self.0.is_empty() {
            return Err(bad(
                "--cgroup CONTROLLER:PATH needs cgroup v1: on cgroup v2 give a bare --cgroup PATH",
            ));
        }
        let mut found: Option<&Path> = None;
        for c in controllers {
            let name = c.strip_prefix("name=").unwrap_or(c);
            let hit = self.0.get(c.as_str()).or_else(|| self.0.get(name));
            if let Some(p) = hit {
                if found.is_some_and(|f| f != p.as_path()) {
                    return Err(bad(format!(
                        "--cgroup: the controllers {} share one hierarchy: give them one path",
                        controllers.join(",")
                    )));
                }
                found = Some(p);
            }
        }
        Ok(found)
    }

    /// The controllers named that no hierarchy holds (each must name a mounted one).
    pub fn unknown<'a>(&'a self, mounted: &[String]) -> Vec<&'a str> {
        self.0
            .keys()
            .filter(|k| !k.is_empty())
            .filter(|k| {
                !mounted
                    .iter()
                    .any(|m| m == *k || m.strip_prefix("name=") == Some(k.as_str()))
            })
            .map(String::as_str)
            .collect()
    }
}

/// `path` as a relative path below the container's cgroup: a leading `/` means the
/// container's cgroup itself (as runc joins it), `.` and empty components are dropped, `..`
/// is refused.
fn relative(arg: &str, path: &str) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(bad(format!(
                    "--cgroup {arg}: a sub-cgroup must lie inside the container's cgroup: drop the '..'"
                )))
            }
        }
    }
    Ok(out)
}

/// `base/sub` after checking that every component below `base` is a directory and no
/// symlink (cgroupfs has none, but a path must not lead out through one either).
pub fn resolve(base: &Path, sub: &Path, arg: &str) -> Result<PathBuf> {
    let mut dir = base.to_path_buf();
    for c in sub.components() {
        dir.push(c);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(bad(format!(
                    "--cgroup {arg}: {} is not a cgroup directory (a symlink or file)",
                    dir.display()
                )))
            }
            Err(_) => {
                return Err(bad(format!(
                    "--cgroup {arg}: no such cgroup {}: create it inside the container's cgroup",
                    dir.display()
                )))
            }
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<SubCgroups> {
        SubCgroups::parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn dot_dot_anywhere_is_refused() {
        for a in ["..", "../x", "a/../..", "a/..", "memory:..", "/../mini-run"] {
            let e = parse(&[a]).expect_err(a).to_string();
            assert!(e.contains("inside the container's cgroup"), "{a}: {e}");
        }
    }

    #[test]
    fn a_symlink_or_missing_component_is_refused() {
        let base = std::env::temp_dir().join(format!("mini-run-subcg-{}", std::process::id()));
        std::fs::create_dir_all(base.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/", base.join("a/out")).unwrap();
        let ok = resolve(&base, Path::new("a/b"), "a/b");
        let link = resolve(&base, Path::new("a/out"), "a/out").map_err(|e| e.to_string());
        let missing = resolve(&base, Path::new("a/c"), "a/c").map_err(|e| e.to_string());
        std::fs::remove_dir_all(&base).unwrap();
        assert_eq!(ok.unwrap(), base.join("a/b"));
        assert!(link.unwrap_err().contains("symlink"));
        assert!(missing.unwrap_err().contains("no such cgroup"));
    }

    #[test]
    fn no_sub_cgroup_is_the_containers_own_on_v1_and_v2() {
        let none = parse(&[]).unwrap();
        assert_eq!(none.for_hierarchy(&[], true).unwrap(), None);
        assert_eq!(none.for_hierarchy(&["memory".into()], false).unwrap(), None);
    }

    #[test]
    fn runc_forms_parse() {
        let s = parse(&["/sub/x"]).unwrap();
        assert_eq!(
            s.for_hierarchy(&[], true).unwrap(),
            Some(Path::new("sub/x"))
        );
        let s = parse(&["cpu,cpuacct:a", "memory:b"]).unwrap();
        let cc = ["cpu".to_string(), "cpuacct".to_string()];
        assert_eq!(s.for_hierarchy(&cc, false).unwrap(), Some(Path::new("a")));
        assert_eq!(s.for_hierarchy(&["pids".into()], false).unwrap(), None);
        assert!(s.for_hierarchy(&cc, true).is_err());
        assert_eq!(s.unknown(&["memory".into(), "cpu".into()]), vec!["cpuacct"]);
        assert!(parse(&["a", "b"]).is_err());
        assert!(parse(&["cpu:a", "cpu:b"]).is_err());
        assert!(parse(&[":a"]).is_err());
        let split = parse(&["cpu:a", "cpuacct:b"]).unwrap();
        assert!(split.for_hierarchy(&cc, false).is_err());
    }
}
