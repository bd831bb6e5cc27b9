//! Writing the uid and gid maps of a container's new user namespace. Root (of any user
//! namespace: its capabilities there cover the ids mapped into it) writes them itself.
//! A user without privileges may write one map of its own id (after denying setgroups, for
//! the gid map, as the kernel requires); any other map goes through the setuid helpers
//! `newuidmap`/`newgidmap` (Debian's `uidmap`), which check it against /etc/subuid and
//! /etc/subgid, as runc does.

use crate::error::{Context, Error, Result};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxIdMapping;
use std::process::Command;

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Whether `maps` maps nothing but the caller's own id `own`.
fn only_own(maps: &[LinuxIdMapping], own: u32) -> bool {
    matches!(maps, [m] if m.host_id() == own && m.size() == 1)
}

fn write_direct(pid: Pid, file: &str, maps: &[LinuxIdMapping]) -> Result<()> {
    std::fs::write(format!("/proc/{pid}/{file}"), map_text(maps))
        .context(|| format!("writing {file} of the init"))
}

fn run_helper(helper: &str, file: &str, pid: Pid, maps: &[LinuxIdMapping]) -> Result<()> {
    let mut cmd = Command::new(helper);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let subids = if helper == "newuidmap" {
        "/etc/subuid"
    } else {
        "/etc/subgid"
    };
    let out = cmd.output().map_err(|e| {
        Error::invalid(format!(
            "linux.{file} maps more than your own id, which needs {helper} ({e}): install \
             Debian's uidmap package"
        ))
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::invalid(format!(
            "{helper} refused linux.{file} ({}): map only ids {subids} gives this user",
            err.lines().next().unwrap_or("").trim()
        )));
    }
    Ok(())
}

/// Writes the init's uid and gid maps.
pub fn write(pid: Pid, uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        write_direct(pid, "uid_map", uids)?;
        return write_direct(pid, "gid_map", gids);
    }
    if only_own(uids, nix::unistd::geteuid().as_raw()) {
        write_direct(pid, "uid_map", uids)?;
    } else {
        run_helper("newuidmap", "uidMappings", pid, uids)?;
    }
    if only_own(gids, nix::unistd::getegid().as_raw()) {
        // Without CAP_SETGID the kernel takes a gid map only once setgroups is denied.
        std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
            .context(|| "denying setgroups in the init's user namespace")?;
        write_direct(pid, "gid_map", gids)
    } else {
        run_helper("newgidmap", "gidMappings", pid, gids)
    }
}
