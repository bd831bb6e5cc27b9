//! process.user: supplementary groups, gid and uid, switched with the capabilities kept so the
//! spec's capability sets can be applied afterwards.

use crate::error::{Context, Result};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::User;

/// The largest user or group id the runtime accepts, as runc: larger ones are negative as a
/// signed `id_t`, and `(uid_t)-1` would tell setresuid to change nothing, leaving the
/// process root.
pub const MAX_ID: u32 = i32::MAX as u32;

/// Checks that every id of `user` (uid, gid, additionalGids) is at most [`MAX_ID`]; `what`
/// names where the user came from in the error.
pub fn check_ids(user: &User, what: &str) -> Result<(), String> {
    let ids = [("uid", user.uid()), ("gid", user.gid())]
        .into_iter()
        .chain(
            user.additional_gids()
                .iter()
                .flatten()
                .map(|g| ("additionalGids entry", *g)),
        );
    for (name, id) in ids {
        if id > MAX_ID {
            return Err(format!(
                "{what}: {name} {id} is out of range: user and group ids are 0 to {MAX_ID}"
            ));
        }
    }
    Ok(())
}

/// Switches the calling process to the spec's user and groups.
pub fn switch(user: &User) -> Result<()> {
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // A rootless user namespace with a single-id gid map denies setgroups (the kernel's rule
    // for writing that map): no supplementary groups can be set there, and none are needed.
    let denied = std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    if !denied {
        setgroups(&groups).context(|| format!("setting additional gids {groups:?}"))?;
    } else if !groups.is_empty() {
        return Err(crate::error::Error::invalid(format!(
            "additional gids {groups:?} cannot be set: setgroups is denied in this rootless \
             user namespace; map a range of gids from /etc/subgid in linux.gidMappings"
        )));
    }
    nix::sys::prctl::set_keepcaps(true).context(|| "keeping capabilities across setuid")?;
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).context(|| format!("setting gid {gid}"))?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).context(|| format!("setting uid {uid}"))?;
    nix::sys::prctl::set_keepcaps(false).context(|| "resetting keepcaps")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uid: u32, gid: u32, additional: &[u32]) -> User {
        let mut u = User::default();
        u.set_uid(uid);
        u.set_gid(gid);
        u.set_additional_gids(Some(additional.to_vec()));
        u
    }

    #[test]
    fn ids_above_the_signed_range_are_refused() {
        check_ids(&user(MAX_ID, MAX_ID, &[0, MAX_ID]), "u").unwrap();
        let e = check_ids(&user(u32::MAX, 0, &[]), "process.user").unwrap_err();
        assert_eq!(
            e,
            "process.user: uid 4294967295 is out of range: user and group ids are 0 to 2147483647"
        );
        assert!(check_ids(&user(0, MAX_ID + 1, &[]), "u")
            .unwrap_err()
            .contains("gid 2147483648"));
        assert!(check_ids(&user(0, 0, &[1, u32::MAX]), "u")
            .unwrap_err()
            .contains("additionalGids entry 4294967295"));
    }
}
