//! process.user: supplementary groups, gid and uid, switched with the capabilities kept so the
//! spec's capability sets can be applied afterwards.

use crate::error::{Context, Result};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::User;

/// Switches the calling process to the spec's user and groups.
pub fn switch(user: &User) -> Result<()> {
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    setgroups(&groups).context(|| format!("setting additional gids {groups:?}"))?;
    nix::sys::prctl::set_keepcaps(true).context(|| "keeping capabilities across setuid")?;
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).context(|| format!("setting gid {gid}"))?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).context(|| format!("setting uid {uid}"))?;
    nix::sys::prctl::set_keepcaps(false).context(|| "resetting keepcaps")
}
