//! Capability bit numbers to names, as in `linux/capability.h`.

/// Names of capability bits 0..=40, indexed by bit number.
const NAMES: [&str; 41] = [
    "cap_chown",
    "cap_dac_override",
    "cap_dac_read_search",
    "cap_fowner",
    "cap_fsetid",
    "cap_kill",
    "cap_setgid",
    "cap_setuid",
    "cap_setpcap",
    "cap_linux_immutable",
    "cap_net_bind_service",
    "cap_net_broadcast",
    "cap_net_admin",
    "cap_net_raw",
    "cap_ipc_lock",
    "cap_ipc_owner",
    "cap_sys_module",
    "cap_sys_rawio",
    "cap_sys_chroot",
    "cap_sys_ptrace",
    "cap_sys_pacct",
    "cap_sys_admin",
    "cap_sys_boot",
    "cap_sys_nice",
    "cap_sys_resource",
    "cap_sys_time",
    "cap_sys_tty_config",
    "cap_mknod",
    "cap_lease",
    "cap_audit_write",
    "cap_audit_control",
    "cap_setfcap",
    "cap_mac_override",
    "cap_mac_admin",
    "cap_syslog",
    "cap_wake_alarm",
    "cap_block_suspend",
    "cap_audit_read",
    "cap_perfmon",
    "cap_bpf",
    "cap_checkpoint_restore",
];

/// Returns the name of capability `bit`, or `cap_<bit>` for bits this table
/// does not know.
pub fn name(bit: u32) -> String {
    NAMES
        .get(bit as usize)
        .map_or_else(|| format!("cap_{bit}"), |n| (*n).to_string())
}

/// Parses a hex capability mask as printed in `/proc/self/status`
/// (e.g. `000001ffffffffff`) into the names of its set bits, lowest first.
pub fn names_from_hex(mask: &str) -> Option<Vec<String>> {
    let mask = u64::from_str_radix(mask.trim(), 16).ok()?;
    Some(
        (0..64)
            .filter(|bit| mask & (1u64 << bit) != 0)
            .map(name)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_masks() {
        assert_eq!(names_from_hex("0000000000000000"), Some(vec![]));
        assert_eq!(
            names_from_hex("0000000000000005"),
            Some(vec![
                "cap_chown".to_string(),
                "cap_dac_read_search".to_string()
            ])
        );
        let all = names_from_hex("000001ffffffffff").unwrap();
        assert_eq!(all.len(), 41);
        assert_eq!(all[40], "cap_checkpoint_restore");
        assert_eq!(
            names_from_hex("0000020000000000"),
            Some(vec!["cap_41".into()])
        );
        assert_eq!(names_from_hex("xyz"), None);
    }
}
