//! Resolving an image's `User` (`name`, `uid`, `name:group`, `uid:gid`) to numeric ids with
//! the image's own /etc/passwd and /etc/group, read inside the rootfs (symlinks resolved as if
//! the rootfs were `/`).

use std::io::Read;
use std::path::Path;

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use crate::error::{Error, Result};

/// Numeric identity for a container's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups: those of /etc/group listing the user by name.
    pub additional_gids: Vec<u32>,
}

/// Resolves `user` for a container whose root filesystem is `rootfs`. Empty means root. A
/// numeric uid missing from /etc/passwd gets gid 0, as Docker does; a name that is missing is
/// an error.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<User> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let passwd = read_in_root(rootfs, "etc/passwd")?;
    let entry = passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        let (name, uid, gid) = (f.first()?, f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?);
        (*name == user_part || user_part.parse::<u32>() == Ok(uid))
            .then(|| (name.to_string(), uid, gid))
    });
    let (name, uid, mut gid) = match (entry, user_part.parse::<u32>()) {
        (Some(e), _) => e,
        (None, Ok(uid)) => (String::new(), uid, 0),
        (None, Err(_)) => {
            return Err(Error::NotFound(format!(
                "user {user_part:?} is not in the image's /etc/passwd: use a numeric uid or a user the image defines"
            )))
        }
    };
    let groups = read_in_root(rootfs, "etc/group")?;
    let parsed: Vec<(String, u32, Vec<String>)> = groups
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            let members = f.get(3).map_or(Vec::new(), |m| {
                m.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            });
            Some((f.first()?.to_string(), f.get(2)?.parse().ok()?, members))
        })
        .collect();
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = match (parsed.iter().find(|(n, _, _)| n == g), g.parse::<u32>()) {
            (Some((_, id, _)), _) => *id,
            (None, Ok(id)) => id,
            (None, Err(_)) => {
                return Err(Error::NotFound(format!(
                    "group {g:?} is not in the image's /etc/group: use a numeric gid or a group the image defines"
                )))
            }
        };
    }
    let mut additional_gids: Vec<u32> = parsed
        .iter()
        .filter(|(_, id, members)| !name.is_empty() && *id != gid && members.contains(&name))
        .map(|(_, id, _)| *id)
        .collect();
    additional_gids.sort_unstable();
    additional_gids.dedup();
    Ok(User {
        uid,
        gid,
        additional_gids,
    })
}

/// Creates the working directory `cwd` (absolute, as the image's `WorkingDir`) inside
/// `rootfs` if it is missing, with mode 0755 and owned by root as Docker does: images may name
/// a working directory no layer contains. Symlinks are resolved inside the rootfs.
pub fn ensure_working_dir(rootfs: &Path, cwd: &str) -> Result<()> {
    let root = open_root(rootfs)?;
    let mut path = std::path::PathBuf::new();
    for comp in cwd.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if comp == ".." {
            return Err(Error::Invalid(format!(
                "working directory {cwd:?} contains \"..\": give an absolute path without it"
            )));
        }
        path.push(comp);
        match nix::sys::stat::mkdirat(&root, &path, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            // A symlink component: resolve it inside the rootfs and go on from its target.
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => {
                let how = OpenHow::new()
                    .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
                    .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
                openat2(&root, &path, how).map_err(|e| {
                    Error::path("creating the working directory", &rootfs.join(&path), e)
                })?;
            }
            Err(e) => {
                return Err(Error::path(
                    "creating the working directory",
                    &rootfs.join(&path),
                    e,
                ))
            }
        }
    }
    Ok(())
}

fn open_root(rootfs: &Path) -> Result<std::os::fd::OwnedFd> {
    nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::path("opening", rootfs, e))
}

/// Reads `rel` inside `rootfs`; a missing file reads as empty.
fn read_in_root(rootfs: &Path, rel: &str) -> Result<String> {
    let root = open_root(rootfs)?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match openat2(&root, rel, how) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(String::new()),
        Err(e) => return Err(Error::path("opening", &rootfs.join(rel), e)),
    };
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(16 << 20)
        .read_to_string(&mut text)
        .map_err(|e| Error::path("reading", &rootfs.join(rel), e))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_groups_resolve_inside_the_rootfs() {
        let dir = std::env::temp_dir().join(format!("mini-image-user-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(
            dir.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\ntester:x:1000:1000::/home/tester:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("etc/group"),
            "root:x:0:\ntester:x:1000:\nwheel:x:10:tester,other\n",
        )
        .unwrap();
        let r = |u: &str| resolve_user(&dir, u);
        assert_eq!(
            r("tester").unwrap(),
            User {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![10]
            }
        );
        assert_eq!(
            r("").unwrap(),
            User {
                uid: 0,
                gid: 0,
                additional_gids: vec![]
            }
        );
        assert_eq!(r("1000:wheel").unwrap().gid, 10);
        assert_eq!(
            r("4242").unwrap(),
            User {
                uid: 4242,
                gid: 0,
                additional_gids: vec![]
            }
        );
        assert_eq!(r("4242:77").unwrap().gid, 77);
        assert!(matches!(r("nobody-here"), Err(Error::NotFound(_))));
        assert!(matches!(r("tester:nogroup"), Err(Error::NotFound(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
