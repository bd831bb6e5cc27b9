//! Linux namespaces from the spec: which to create, which to join by path, and the order that
//! joining must follow (user first, so that the others are entered with its privileges).

use crate::error::{Context, Error, Result};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The namespaces of one container, split by how they are obtained.
#[derive(Debug, Clone)]
pub struct Namespaces {
    /// Namespaces to create (clone flags, time excluded).
    pub create: CloneFlags,
    /// Whether a new time namespace is requested (it can only be made with unshare).
    pub create_time: bool,
    /// Namespaces to join, in joining order.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
}

/// The clone flag of a namespace type.
pub fn flag(typ: LinuxNamespaceType) -> CloneFlags {
    match typ {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

fn join_rank(typ: LinuxNamespaceType) -> u8 {
    match typ {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 2,
        _ => 1,
    }
}

impl Default for Namespaces {
    fn default() -> Self {
        Namespaces {
            create: CloneFlags::empty(),
            create_time: false,
            join: Vec::new(),
        }
    }
}

impl Namespaces {
    /// Sorts the spec's namespaces; rejects duplicates and paths that are not namespaces.
    pub fn from_spec(list: &[LinuxNamespace]) -> Result<Namespaces> {
        let mut ns = Namespaces::default();
        let mut seen = Vec::new();
        for n in list {
            if seen.contains(&n.typ()) {
                return Err(Error::invalid(format!(
                    "config.json: namespace {:?} is listed twice in linux.namespaces",
                    n.typ().to_string()
                )));
            }
            seen.push(n.typ());
            match n.path() {
                Some(p) if !p.as_os_str().is_empty() => {
                    check_join_path(n.typ(), p)?;
                    ns.join.push((n.typ(), p.clone()));
                }
                _ if n.typ() == LinuxNamespaceType::Time => ns.create_time = true,
                _ => ns.create |= flag(n.typ()),
            }
        }
        ns.join.sort_by_key(|(t, _)| join_rank(*t));
        Ok(ns)
    }

    /// Whether the container has this namespace of its own or joined (rather than the host's).
    pub fn has(&self, typ: LinuxNamespaceType) -> bool {
        self.creates(typ) || self.join.iter().any(|(t, _)| *t == typ)
    }

    /// Whether the container gets a new namespace of this type.
    pub fn creates(&self, typ: LinuxNamespaceType) -> bool {
        if typ == LinuxNamespaceType::Time {
            self.create_time
        } else {
            self.create.contains(flag(typ))
        }
    }

    /// Whether an intermediate process is needed: joining by path and new time namespaces
    /// both act on the caller (setns, unshare) before the init is cloned.
    pub fn needs_join_stage(&self) -> bool {
        !self.join.is_empty() || self.create_time
    }

    /// Opens every namespace to join (done before forking, so errors reach the user).
    pub fn open_joins(&self) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>> {
        self.join
            .iter()
            .map(|(t, p)| {
                let fd = nix::fcntl::open(
                    p,
                    nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .context(|| format!("opening {} namespace {}", t, p.display()))?;
                Ok((*t, fd))
            })
            .collect()
    }
}

/// `ioctl(NS_GET_NSTYPE)`: the CLONE_NEW* type of a namespace file.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Checks that `path` is absolute and names a namespace of type `typ`, so that a wrong path
/// fails before anything is created.
fn check_join_path(typ: LinuxNamespaceType, path: &Path) -> Result<()> {
    let bad = |why: String| {
        Error::invalid(format!(
            "config.json: cannot join {typ} namespace at {}: {why}",
            path.display()
        ))
    };
    if !path.is_absolute() {
        return Err(bad("the path must be absolute".into()));
    }
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the open descriptor.
    let found = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
    if found < 0 {
        return Err(bad(
            "it is not a namespace file (like /proc/PID/ns/TYPE)".into()
        ));
    }
    if found != flag(typ).bits() {
        let actual = [
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Cgroup,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::User,
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Time,
        ]
        .into_iter()
        .find(|t| flag(*t).bits() == found)
        .map_or_else(|| "another".to_string(), |t| t.to_string());
        return Err(bad(format!("it is a {actual} namespace")));
    }
    Ok(())
}

/// Enters each opened namespace, in order.
pub fn enter(joins: &[(LinuxNamespaceType, OwnedFd)]) -> Result<()> {
    for (t, fd) in joins {
        nix::sched::setns(fd, flag(*t)).context(|| format!("joining {t} namespace"))?;
    }
    Ok(())
}
