//! linux.personality: the execution domain the container's process runs with (`LINUX32`
//! makes uname(2) report a 32-bit machine such as i686), set by the init before execve.

use crate::error::{Context, Result};
use oci_spec::runtime::{LinuxPersonality, LinuxPersonalityDomain};

/// <sys/personality.h> execution domains.
const PER_LINUX: libc::c_ulong = 0x0000;
const PER_LINUX32: libc::c_ulong = 0x0008;

/// Checks what the config asks for: the spec defines no personality flags yet.
pub fn validate(p: &LinuxPersonality) -> Result<(), String> {
    match p.flags().as_deref() {
        Some([first, ..]) => Err(format!(
            "linux.personality.flags {first:?}: no personality flags are supported; remove them"
        )),
        _ => Ok(()),
    }
}

/// Sets the calling process's execution domain.
pub fn apply(p: &LinuxPersonality) -> Result<()> {
    let persona = match p.domain() {
        LinuxPersonalityDomain::PerLinux => PER_LINUX,
        LinuxPersonalityDomain::PerLinux32 => PER_LINUX32,
    };
    // SAFETY: personality(2) only changes the calling process's execution domain.
    let r = unsafe { libc::personality(persona) };
    nix::errno::Errno::result(r)
        .map(drop)
        .context(|| format!("setting personality {}", p.domain()))
}
