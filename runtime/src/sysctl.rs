//! linux.sysctl: only namespaced keys, and only when the container has the namespace that
//! isolates them (as runc enforces), written through the container's own /proc/sys.

use crate::error::Result;
use crate::namespaces::Namespaces;
use oci_spec::runtime::LinuxNamespaceType;
use std::collections::HashMap;

fn namespace_of(key: &str) -> Option<LinuxNamespaceType> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

/// Rejects keys that would change the host.
pub fn validate(sysctls: &HashMap<String, String>, ns: &Namespaces) -> Result<(), String> {
    for key in sysctls.keys() {
        let norm = key.replace('/', ".");
        match namespace_of(&norm) {
            Some(t) if ns.creates(t) => {}
            Some(t) => {
                return Err(format!(
                    "sysctl {key:?} needs a new {t} namespace, or it would change the host"
                ))
            }
            None => {
                return Err(format!(
                "sysctl {key:?} is not namespaced: setting it in a container would change the host"
            ))
            }
        }
    }
    Ok(())
}

/// Writes the values under /proc/sys (the container's procfs, after pivot_root), through
/// [`crate::process::procfs`] so no mount or symlink in the container redirects them.
pub fn apply(sysctls: &HashMap<String, String>) -> Result<()> {
    for (key, value) in sysctls {
        let path = format!("sys/{}", key.replace('.', "/"));
        crate::process::procfs::write(&path, value, &format!("setting sysctl {key}={value}"))?;
    }
    Ok(())
}
