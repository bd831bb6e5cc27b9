//! What this build's seccomp supports, for the `features` command (`linux.seccomp` there).

use libseccomp::{ScmpAction, ScmpFilterContext};
use oci_spec::runtime::{
    Arch, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator, Seccomp,
};

use super::compile::scmp_arch;

/// Every action [`super::compile`] accepts.
const ACTIONS: [LinuxSeccompAction; 9] = [
    LinuxSeccompAction::ScmpActAllow,
    LinuxSeccompAction::ScmpActErrno,
    LinuxSeccompAction::ScmpActKill,
    LinuxSeccompAction::ScmpActKillProcess,
    LinuxSeccompAction::ScmpActKillThread,
    LinuxSeccompAction::ScmpActLog,
    LinuxSeccompAction::ScmpActNotify,
    LinuxSeccompAction::ScmpActTrace,
    LinuxSeccompAction::ScmpActTrap,
];

/// Every argument operator [`super::compile`] accepts.
const OPERATORS: [LinuxSeccompOperator; 7] = [
    LinuxSeccompOperator::ScmpCmpEq,
    LinuxSeccompOperator::ScmpCmpGe,
    LinuxSeccompOperator::ScmpCmpGt,
    LinuxSeccompOperator::ScmpCmpLe,
    LinuxSeccompOperator::ScmpCmpLt,
    LinuxSeccompOperator::ScmpCmpMaskedEq,
    LinuxSeccompOperator::ScmpCmpNe,
];

/// The architectures the spec can name (libseccomp may support fewer: see [`features`]).
const ARCHS: [Arch; 23] = [
    Arch::ScmpArchAarch64,
    Arch::ScmpArchArm,
    Arch::ScmpArchLoongarch64,
    Arch::ScmpArchM68k,
    Arch::ScmpArchMips,
    Arch::ScmpArchMips64,
    Arch::ScmpArchMips64n32,
    Arch::ScmpArchMipsel,
    Arch::ScmpArchMipsel64,
    Arch::ScmpArchMipsel64n32,
    Arch::ScmpArchParisc,
    Arch::ScmpArchParisc64,
    Arch::ScmpArchPpc,
    Arch::ScmpArchPpc64,
    Arch::ScmpArchPpc64le,
    Arch::ScmpArchRiscv64,
    Arch::ScmpArchS390,
    Arch::ScmpArchS390x,
    Arch::ScmpArchSh,
    Arch::ScmpArchSheb,
    Arch::ScmpArchX32,
    Arch::ScmpArchX86,
    Arch::ScmpArchX86_64,
];

/// The filter flags the spec can name, with the kernel bits to probe for each.
const FLAGS: [(LinuxSeccompFilterFlag, libc::c_ulong); 4] = [
    (
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync,
        libc::SECCOMP_FILTER_FLAG_TSYNC,
    ),
    (
        LinuxSeccompFilterFlag::SeccompFilterFlagLog,
        libc::SECCOMP_FILTER_FLAG_LOG,
    ),
    (
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow,
        libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    ),
    (
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv,
        // Only valid together with a listener.
        libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
    ),
];

/// The runtime's seccomp support, as the `features` command reports it (runc's shape):
/// all actions and operators, the architectures the linked libseccomp supports, the filter
/// flags the spec defines (`knownFlags`) and those this kernel accepts (`supportedFlags`).
pub fn features() -> Seccomp {
    let mut features = Seccomp::default();
    features
        .set_enabled(Some(true))
        .set_actions(Some(ACTIONS.to_vec()))
        .set_operators(Some(OPERATORS.iter().map(ToString::to_string).collect()))
        .set_archs(Some(supported_archs()))
        .set_known_flags(Some(FLAGS.iter().map(|(f, _)| f.to_string()).collect()))
        .set_supported_flags(Some(
            FLAGS
                .iter()
                .filter(|(_, bits)| kernel_accepts(*bits))
                .map(|(f, _)| f.to_string())
                .collect(),
        ));
    features
}

/// The architectures the linked libseccomp can add to a filter.
fn supported_archs() -> Vec<Arch> {
    let Ok(mut ctx) = ScmpFilterContext::new(ScmpAction::Allow) else {
        return Vec::new();
    };
    ARCHS
        .into_iter()
        .filter(|&arch| ctx.add_arch(scmp_arch(arch)).is_ok())
        .collect()
}

/// Whether the kernel knows the filter flags `bits`: loading a NULL program with them fails
/// with EFAULT (the flags passed validation) rather than EINVAL. Nothing is installed.
fn kernel_accepts(bits: libc::c_ulong) -> bool {
    // SAFETY: a NULL program is never dereferenced successfully; the call only validates.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            bits,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    ret < 0 && nix::errno::Errno::last() == nix::errno::Errno::EFAULT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_actions_operators_archs_and_flags() {
        let f = features();
        assert_eq!(f.enabled(), &Some(true));
        let actions = f.actions().as_ref().unwrap();
        assert!(actions.contains(&LinuxSeccompAction::ScmpActNotify));
        assert_eq!(actions.len(), 9);
        let ops = f.operators().as_ref().unwrap();
        assert!(ops.contains(&"SCMP_CMP_MASKED_EQ".to_string()), "{ops:?}");
        assert!(ops.contains(&"SCMP_CMP_NE".to_string()), "{ops:?}");
        let archs = f.archs().as_ref().unwrap();
        for a in [
            Arch::ScmpArchX86_64,
            Arch::ScmpArchX86,
            Arch::ScmpArchX32,
            Arch::ScmpArchAarch64,
        ] {
            assert!(archs.contains(&a), "{archs:?}");
        }
        let known = f.known_flags().as_ref().unwrap();
        assert!(
            known.contains(&"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV".to_string()),
            "{known:?}"
        );
        // Every kernel this runtime supports has TSYNC (3.17) and LOG (4.14).
        let supported = f.supported_flags().as_ref().unwrap();
        assert!(
            supported.contains(&"SECCOMP_FILTER_FLAG_TSYNC".to_string()),
            "{supported:?}"
        );
        assert!(
            supported.contains(&"SECCOMP_FILTER_FLAG_LOG".to_string()),
            "{supported:?}"
        );
        let json = serde_json::to_value(&f).unwrap();
        assert!(json["knownFlags"].is_array(), "{json}");
    }
}
