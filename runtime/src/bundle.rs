//! An OCI bundle: a directory with config.json and a root filesystem. Loading validates
//! everything that can be checked before any process, mount or cgroup exists, so bad input
//! fails with one line and leaves nothing behind.

use crate::error::{Error, Result};
use crate::input_file;
use crate::namespaces::Namespaces;
use crate::rlimits;
use crate::spec_values;
use crate::sysctl;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::path::{Path, PathBuf};

/// A loaded, validated bundle.
#[derive(Debug)]
pub struct Bundle {
    /// Absolute bundle directory.
    pub path: PathBuf,
    /// Absolute rootfs directory.
    pub rootfs: PathBuf,
    /// The parsed config.
    pub spec: Spec,
    /// The namespaces the spec asks for.
    pub namespaces: Namespaces,
}

/// Loads and validates the bundle at `dir` (the current directory when empty).
pub fn load(dir: &Path) -> Result<Bundle> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let path = std::fs::canonicalize(dir).map_err(|e| {
        Error::invalid(format!(
            "bundle {}: {e}: pass an existing bundle directory with --bundle",
            dir.display()
        ))
    })?;
    let config = path.join("config.json");
    let data = input_file::read(&config, input_file::JSON_LIMIT).map_err(|e| {
        let what = match e.kind() {
            std::io::ErrorKind::InvalidInput => "config.json must be a regular JSON file",
            _ => "a bundle needs a config.json (`mini-run spec` writes one)",
        };
        Error::invalid(format!("{}: {e}: {what}", config.display()))
    })?;
    let mut spec: Spec = serde_json::from_slice(&data)
        .map_err(|e| Error::invalid(format!("{}: {e}", config.display())))?;
    if let Some(mounts) = spec.mounts_mut() {
        for dest in spec_values::absolute_mount_destinations(mounts) {
            let msg = format!(
                "mount destination {} is relative (deprecated): mounting it under /",
                dest.display()
            );
            crate::logging::warn(&msg);
            eprintln!("mini-run: warning: {msg}");
        }
    }
    let (rootfs, namespaces) = validate(&spec, &path)?;
    Ok(Bundle {
        path,
        rootfs,
        spec,
        namespaces,
    })
}

fn bad(msg: impl std::fmt::Display) -> Error {
    Error::invalid(format!("config.json: {msg}"))
}

/// Checks the spec against what this runtime and this host can do.
fn validate(spec: &Spec, bundle: &Path) -> Result<(PathBuf, Namespaces)> {
    spec_values::validate(spec).map_err(bad)?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| bad("root is missing: set root.path to the rootfs directory"))?;
    let rootfs = bundle.join(root.path());
    let rootfs = std::fs::canonicalize(&rootfs).map_err(|e| {
        bad(format!(
            "root.path {}: {e}: the root filesystem must exist",
            rootfs.display()
        ))
    })?;
    if !rootfs.is_dir() {
        return Err(bad(format!(
            "root.path {} is not a directory",
            rootfs.display()
        )));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| bad("process is missing"))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(bad(
            "process.args is empty: give the command to run in the container",
        ));
    }
    if !process.cwd().is_absolute() {
        return Err(bad(format!(
            "process.cwd {:?} must be an absolute path",
            process.cwd()
        )));
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| bad("linux section is missing"))?;
    let namespaces = Namespaces::from_spec(linux.namespaces().as_deref().unwrap_or_default())?;
    if !namespaces.has(LinuxNamespaceType::Mount) {
        return Err(bad(
            "linux.namespaces has no \"mount\": mini-run makes the container's mounts (proc, /dev, \
             masks, the read-only view of its binary) in a mount namespace of its own, which the \
             runtime's would otherwise keep after the container is gone: add {\"type\": \"mount\"}",
        ));
    }
    let user_ns = namespaces.creates(LinuxNamespaceType::User);
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        && linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if user_ns && !has_maps {
        return Err(bad(
            "a new user namespace needs linux.uidMappings and linux.gidMappings",
        ));
    }
    for (field, value) in [
        ("hostname", spec.hostname()),
        ("domainname", spec.domainname()),
    ] {
        if value.as_ref().is_some_and(|v| !v.is_empty()) && !namespaces.has(LinuxNamespaceType::Uts)
        {
            return Err(bad(format!(
                "{field} is set but there is no uts namespace: add {{\"type\": \"uts\"}}"
            )));
        }
    }
    for m in spec.mounts().as_deref().unwrap_or_default() {
        crate::rootfs::mounts::validate(m).map_err(bad)?;
    }
    if let Some(rl) = process.rlimits() {
        rlimits::validate(rl).map_err(bad)?;
    }
    if let Some(profile) = linux.seccomp() {
        crate::seccomp::compile(profile)?;
        let notifies = profile
            .syscalls()
            .iter()
            .flatten()
            .any(|s| s.action() == oci_spec::runtime::LinuxSeccompAction::ScmpActNotify);
        if notifies && profile.listener_path().is_none() {
            return Err(bad(
                "linux.seccomp uses SCMP_ACT_NOTIFY but sets no listenerPath for the agent",
            ));
        }
    }
    if let Some(s) = linux.sysctl() {
        sysctl::validate(s, &namespaces).map_err(bad)?;
    }
    for (field, paths) in [
        ("maskedPaths", linux.masked_paths()),
        ("readonlyPaths", linux.readonly_paths()),
    ] {
        if let Some(p) = paths.iter().flatten().find(|p| !p.starts_with('/')) {
            return Err(bad(format!(
                "linux.{field} entry {p:?} must be an absolute path in the container"
            )));
        }
    }
    if let Some(p) = linux.personality() {
        crate::personality::validate(p).map_err(bad)?;
    }
    if linux.intel_rdt().is_some() {
        return Err(bad(if resctrl_mounted() {
            "linux.intelRdt is not supported by mini-run: remove it"
        } else {
            "linux.intelRdt is set but no resctrl filesystem is mounted on this host: remove it"
        }));
    }
    Ok((rootfs, namespaces))
}

/// Whether a resctrl filesystem (Intel RDT) is mounted in the runtime's mount namespace.
fn resctrl_mounted() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| {
        m.lines()
            .filter_map(|l| l.split_once(" - ").map(|(_, fs)| fs))
            .any(|fs| fs.split_whitespace().next() == Some("resctrl"))
    })
}
