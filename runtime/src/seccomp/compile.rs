//! From the spec's `linux.seccomp` to a BPF program, with libseccomp (runc's semantics).

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};

use crate::error::{Context, Error, Result};
use libseccomp_sys as sys;

/// The errno an `SCMP_ACT_ERRNO` (or `SCMP_ACT_TRACE`) returns when the spec gives no
/// `errnoRet`/`defaultErrnoRet`: EPERM, as in runc and crun.
const DEFAULT_ERRNO_RET: u32 = libc::EPERM as u32;

/// The kernel's limit on a classic BPF program's length (BPF_MAXINSNS).
const BPF_MAXINSNS: usize = 4096;

/// Syscalls the init itself makes once a notifying filter is installed, to hand the listener
/// over (`sendmsg`) and report (`write`): notifying them would stop the init before any agent
/// has the listener. runc refuses `write` for the same reason.
const NOT_NOTIFIABLE: [&str; 2] = ["write", "sendmsg"];

/// The highest syscall argument index (syscalls have six arguments).
const MAX_ARG_INDEX: usize = 5;

/// A compiled seccomp profile: the BPF program and the `seccomp(2)` flags to load it with.
///
/// Made by [`compile`]; [`Filter::install`] loads it into the calling process.
pub struct Filter {
    /// The program, as libseccomp exported it.
    pub(super) program: Vec<libc::sock_filter>,
    /// `SECCOMP_FILTER_FLAG_*` bits for `seccomp(SECCOMP_SET_MODE_FILTER, ...)`, including
    /// `NEW_LISTENER` when a rule uses `SCMP_ACT_NOTIFY`.
    pub(super) flags: libc::c_ulong,
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("instructions", &self.program.len())
            .field("flags", &format_args!("{:#x}", self.flags))
            .finish()
    }
}

impl Filter {
    /// Whether installing this filter yields a notify listener fd (a rule uses
    /// `SCMP_ACT_NOTIFY`), which the runtime must then pass to the agent at `listenerPath`.
    pub fn notifies(&self) -> bool {
        self.flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0
    }

    /// The number of BPF instructions in the compiled program.
    pub fn len(&self) -> usize {
        self.program.len()
    }

    /// Whether the program is empty (never true for a compiled profile).
    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }
}

/// Compiles the spec's seccomp profile.
///
/// Follows runc: syscall names this libseccomp does not know are skipped (profiles list
/// syscalls that only newer kernels have); a syscall numbered above every one the profile
/// names returns `-ENOSYS` unless the default action allows it (runc's stub, see
/// [`super::enosys`]); `SCMP_ACT_NOTIFY` on `write` (or `sendmsg`) is refused; a rule whose action equals the default action is
/// dropped (libseccomp refuses those); `SCMP_ACT_KILL` is `SCMP_ACT_KILL_THREAD`; `errnoRet`
/// defaults to EPERM; argument conditions on distinct arguments must all match, while several
/// conditions on the same argument each match on their own (runc's rule for e.g. `clone`
/// masks); `SCMP_CMP_MASKED_EQ` takes the mask in `value` and the expected value in `valueTwo`.
/// The listed architectures are added to the native one.
///
/// Errors name what is wrong: an architecture this libseccomp does not support, a NOTIFY
/// default action, an argument index past 5, an `errnoRet` that does not fit, a program too
/// long for the kernel. (Unknown action, architecture, operator or flag *names* are rejected
/// when config.json is parsed: oci-spec's enums name the offending value.)
pub fn compile(spec: &LinuxSeccomp) -> Result<Filter> {
    if spec.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(Error::invalid(
            "seccomp: SCMP_ACT_NOTIFY cannot be the defaultAction (the runtime could not \
             even hand the listener to the agent); use it in syscall rules",
        ));
    }
    let default = action(spec.default_action(), spec.default_errno_ret())
        .map_err(|e| Error::invalid(format!("seccomp: defaultAction: {e}")))?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| {
        Error::invalid(format!(
            "seccomp: creating a filter with default action {}: {e}",
            spec.default_action()
        ))
    })?;

    let mut arches = vec![(ScmpArch::Native, native_token())];
    for &arch in spec.architectures().iter().flatten() {
        arches.push(arch_and_token(arch));
        ctx.add_arch(scmp_arch(arch)).map_err(|e| {
            Error::invalid(format!(
                "seccomp: architecture {arch} is not supported by libseccomp {}: {e}",
                libseccomp_version()
            ))
        })?;
    }

    let mut notifies = false;
    for rule in spec.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())
            .map_err(|e| Error::invalid(format!("seccomp: rule for {:?}: {e}", rule.names())))?;
        if act == default {
            continue;
        }
        if act == ScmpAction::Notify {
            if let Some(name) = rule
                .names()
                .iter()
                .find(|n| NOT_NOTIFIABLE.contains(&n.as_str()))
            {
                return Err(Error::invalid(format!(
                    "seccomp: SCMP_ACT_NOTIFY cannot apply to {name}: the runtime needs it to \
                     hand the listener over after the filter is installed; allow it or use \
                     another action"
                )));
            }
            notifies = true;
        }
        add_rule(&mut ctx, rule, act)?;
    }

    let mut program = super::enosys::stub(spec, default, &arches);
    program.extend(export(&ctx)?);
    if program.len() > BPF_MAXINSNS {
        return Err(Error::invalid(format!(
            "seccomp: the profile compiles to {} BPF instructions, more than the kernel's \
             limit of {BPF_MAXINSNS}",
            program.len()
        )));
    }
    Ok(Filter {
        program,
        flags: filter_flags(spec.flags().iter().flatten().copied(), notifies),
    })
}

/// Adds one spec rule (all its names) to the filter.
fn add_rule(ctx: &mut ScmpFilterContext, rule: &LinuxSyscall, act: ScmpAction) -> Result<()> {
    let conditions = rule
        .args()
        .iter()
        .flatten()
        .map(condition)
        .collect::<Result<Vec<_>>>()?;
    // Several conditions on the same argument cannot all hold in one libseccomp rule: runc
    // adds them as separate rules (any one matching), and so do we.
    let separate = rule.args().iter().flatten().enumerate().any(|(i, a)| {
        rule.args()
            .iter()
            .flatten()
            .skip(i + 1)
            .any(|b| b.index() == a.index())
    });
    for name in rule.names() {
        let Ok(syscall) = ScmpSyscall::from_name(name) else {
            // Unknown to this libseccomp (a newer syscall, or a typo): skipped, as runc does.
            continue;
        };
        let added = if separate {
            conditions.iter().try_for_each(|c| {
                ctx.add_rule_conditional(act, syscall, std::slice::from_ref(c))
                    .map(drop)
            })
        } else {
            ctx.add_rule_conditional(act, syscall, &conditions)
                .map(drop)
        };
        added.map_err(|e| {
            Error::invalid(format!(
                "seccomp: adding the rule {} for syscall {name}: {e}",
                rule.action()
            ))
        })?;
    }
    Ok(())
}

/// The libseccomp action for a spec action and its optional `errnoRet`.
fn action(action: LinuxSeccompAction, errno_ret: Option<u32>) -> Result<ScmpAction, String> {
    let takes_errno = matches!(
        action,
        LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace
    );
    if let (Some(ret), false) = (errno_ret, takes_errno) {
        // The spec: an errno for an action that returns none is an error, not ignored.
        return Err(format!(
            "{action} returns no errno, so errnoRet {ret} cannot apply: remove it or use \
             SCMP_ACT_ERRNO"
        ));
    }
    let ret = || {
        let ret = errno_ret.unwrap_or(DEFAULT_ERRNO_RET);
        u16::try_from(ret).map_err(|_| format!("errnoRet {ret} is out of range (0-65535)"))
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(i32::from(ret()?)),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(ret()?),
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    })
}

/// The libseccomp condition for a spec argument condition.
fn condition(arg: &LinuxSeccompArg) -> Result<ScmpArgCompare> {
    if arg.index() > MAX_ARG_INDEX {
        return Err(Error::invalid(format!(
            "seccomp: argument index {} is out of range (syscalls have arguments 0-{MAX_ARG_INDEX})",
            arg.index()
        )));
    }
    let (op, datum) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    // The index is at most 5 (checked above).
    Ok(ScmpArgCompare::new(arg.index() as u32, op, datum))
}

/// libseccomp's architecture for the spec's.
pub(super) fn scmp_arch(arch: Arch) -> ScmpArch {
    arch_and_token(arch).0
}

/// The native architecture's token (its AUDIT_ARCH value, as in `seccomp_data.arch`).
pub(super) fn native_token() -> u32 {
    // SAFETY: a pure query of libseccomp's build-time constant; no arguments, no state.
    unsafe { sys::seccomp_arch_native() }
}

/// libseccomp's architecture for the spec's, and its token: the AUDIT_ARCH value the kernel
/// puts in `seccomp_data.arch` (x32's is a pseudo token: its calls arrive as x86_64's).
pub(super) fn arch_and_token(arch: Arch) -> (ScmpArch, u32) {
    match arch {
        Arch::ScmpArchNative => (ScmpArch::Native, native_token()),
        Arch::ScmpArchX86 => (ScmpArch::X86, sys::SCMP_ARCH_X86),
        Arch::ScmpArchX86_64 => (ScmpArch::X8664, sys::SCMP_ARCH_X86_64),
        Arch::ScmpArchX32 => (ScmpArch::X32, sys::SCMP_ARCH_X32),
        Arch::ScmpArchArm => (ScmpArch::Arm, sys::SCMP_ARCH_ARM),
        Arch::ScmpArchAarch64 => (ScmpArch::Aarch64, sys::SCMP_ARCH_AARCH64),
        Arch::ScmpArchMips => (ScmpArch::Mips, sys::SCMP_ARCH_MIPS),
        Arch::ScmpArchMips64 => (ScmpArch::Mips64, sys::SCMP_ARCH_MIPS64),
        Arch::ScmpArchMips64n32 => (ScmpArch::Mips64N32, sys::SCMP_ARCH_MIPS64N32),
        Arch::ScmpArchMipsel => (ScmpArch::Mipsel, sys::SCMP_ARCH_MIPSEL),
        Arch::ScmpArchMipsel64 => (ScmpArch::Mipsel64, sys::SCMP_ARCH_MIPSEL64),
        Arch::ScmpArchMipsel64n32 => (ScmpArch::Mipsel64N32, sys::SCMP_ARCH_MIPSEL64N32),
        Arch::ScmpArchPpc => (ScmpArch::Ppc, sys::SCMP_ARCH_PPC),
        Arch::ScmpArchPpc64 => (ScmpArch::Ppc64, sys::SCMP_ARCH_PPC64),
        Arch::ScmpArchPpc64le => (ScmpArch::Ppc64Le, sys::SCMP_ARCH_PPC64LE),
        Arch::ScmpArchS390 => (ScmpArch::S390, sys::SCMP_ARCH_S390),
        Arch::ScmpArchS390x => (ScmpArch::S390X, sys::SCMP_ARCH_S390X),
        Arch::ScmpArchParisc => (ScmpArch::Parisc, sys::SCMP_ARCH_PARISC),
        Arch::ScmpArchParisc64 => (ScmpArch::Parisc64, sys::SCMP_ARCH_PARISC64),
        Arch::ScmpArchRiscv64 => (ScmpArch::Riscv64, sys::SCMP_ARCH_RISCV64),
        Arch::ScmpArchLoongarch64 => (ScmpArch::Loongarch64, sys::SCMP_ARCH_LOONGARCH64),
        Arch::ScmpArchM68k => (ScmpArch::M68k, sys::SCMP_ARCH_M68K),
        Arch::ScmpArchSh => (ScmpArch::Sh, sys::SCMP_ARCH_SH),
        Arch::ScmpArchSheb => (ScmpArch::Sheb, sys::SCMP_ARCH_SHEB),
    }
}

/// The `seccomp(2)` flags for the spec's flags. `NEW_LISTENER` is added when a rule notifies;
/// `WAIT_KILLABLE_RECV` is only meaningful (and only accepted by the kernel) with a listener, so
/// it is dropped without one; `TSYNC` with a listener needs `TSYNC_ESRCH` (the kernel rejects
/// the pair otherwise, since the return value is then the listener fd, not a thread id).
pub(super) fn filter_flags(
    spec_flags: impl IntoIterator<Item = LinuxSeccompFilterFlag>,
    notifies: bool,
) -> libc::c_ulong {
    let mut flags = 0;
    for flag in spec_flags {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv if notifies => {
                libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        };
    }
    if notifies {
        flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        if flags & libc::SECCOMP_FILTER_FLAG_TSYNC != 0 {
            flags |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        }
    }
    flags
}

/// The filter as a BPF program (libseccomp 2.5 exports only to a file descriptor).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    let memfd =
        nix::sys::memfd::memfd_create(c"mini-run-seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .context(|| "seccomp: creating a memfd for the BPF program")?;
    let mut file = File::from(memfd);
    ctx.export_bpf(&file)
        .map_err(|e| Error::invalid(format!("seccomp: exporting the BPF program: {e}")))?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .context(|| "seccomp: reading the exported BPF program")?;
    let insn = std::mem::size_of::<libc::sock_filter>();
    if bytes.is_empty() || bytes.len() % insn != 0 {
        return Err(Error::invalid(format!(
            "seccomp: libseccomp exported {} bytes, not a whole number of BPF instructions",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(insn)
        .map(|b| libc::sock_filter {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect())
}

/// The linked libseccomp's version, for messages.
pub(super) fn libseccomp_version() -> String {
    libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|_| "(unknown version)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).expect("valid LinuxSeccomp JSON")
    }

    #[test]
    fn errno_ret_on_an_action_without_errno_is_rejected() {
        let err = action(LinuxSeccompAction::ScmpActAllow, Some(5)).unwrap_err();
        assert!(err.contains("SCMP_ACT_ALLOW"), "{err}");
        assert!(action(LinuxSeccompAction::ScmpActKillProcess, Some(1)).is_err());
        assert_eq!(
            action(LinuxSeccompAction::ScmpActTrace, Some(7)).unwrap(),
            ScmpAction::Trace(7)
        );
    }

    #[test]
    fn errno_defaults_to_eperm_and_honours_errno_ret() {
        assert_eq!(
            action(LinuxSeccompAction::ScmpActErrno, None).unwrap(),
            ScmpAction::Errno(libc::EPERM)
        );
        assert_eq!(
            action(LinuxSeccompAction::ScmpActErrno, Some(38)).unwrap(),
            ScmpAction::Errno(38)
        );
        assert_eq!(
            action(LinuxSeccompAction::ScmpActTrace, None).unwrap(),
            ScmpAction::Trace(libc::EPERM as u16)
        );
        let err = action(LinuxSeccompAction::ScmpActErrno, Some(70000)).unwrap_err();
        assert!(err.contains("70000"), "{err}");
    }

    #[test]
    fn kill_is_kill_thread() {
        assert_eq!(
            action(LinuxSeccompAction::ScmpActKill, None).unwrap(),
            ScmpAction::KillThread
        );
        assert_eq!(
            action(LinuxSeccompAction::ScmpActKillProcess, None).unwrap(),
            ScmpAction::KillProcess
        );
    }

    #[test]
    fn masked_eq_takes_mask_from_value_and_datum_from_value_two() {
        let arg: LinuxSeccompArg = serde_json::from_str(
            r#"{"index":0,"value":255,"valueTwo":8,"op":"SCMP_CMP_MASKED_EQ"}"#,
        )
        .unwrap();
        assert_eq!(
            condition(&arg).unwrap(),
            ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(255), 8)
        );
    }

    #[test]
    fn argument_index_past_five_is_an_error() {
        let s = spec(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],
                "action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        let err = compile(&s).unwrap_err().to_string();
        assert!(err.contains("argument index 6"), "{err}");
    }

    #[test]
    fn unknown_syscall_names_are_skipped() {
        let s = spec(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["no_such_syscall_42",
                "mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        let filter = compile(&s).unwrap();
        assert!(!filter.is_empty());
        assert!(!filter.notifies());
    }

    #[test]
    fn rule_equal_to_default_is_dropped() {
        let plain = compile(&spec(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#)).unwrap();
        let same = compile(&spec(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],
                "action":"SCMP_ACT_ALLOW"}]}"#,
        ))
        .unwrap();
        assert_eq!(plain.len(), same.len());
        // ERRNO with another errnoRet than the default's is a different action: kept.
        let other = compile(&spec(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],
                "action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
        ))
        .unwrap();
        assert!(other.len() > plain.len());
    }

    #[test]
    fn notify_rule_asks_for_a_listener_and_notify_default_is_refused() {
        let s = spec(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_TSYNC",
                "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        );
        let filter = compile(&s).unwrap();
        assert!(filter.notifies());
        assert_eq!(
            filter.flags,
            libc::SECCOMP_FILTER_FLAG_TSYNC
                | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH
                | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
                | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
        );
        let err = compile(&spec(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SCMP_ACT_NOTIFY"), "{err}");
    }

    #[test]
    fn flags_without_listener() {
        let flags = filter_flags(
            [
                LinuxSeccompFilterFlag::SeccompFilterFlagLog,
                LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow,
                LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv,
            ],
            false,
        );
        assert_eq!(
            flags,
            libc::SECCOMP_FILTER_FLAG_LOG | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
        );
    }

    #[test]
    fn unsupported_architecture_is_named() {
        // libseccomp 2.5 predates LoongArch; 2.6 and later know it.
        let s =
            spec(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_LOONGARCH64"]}"#);
        match compile(&s) {
            Ok(_) => assert!(libseccomp::check_version((2, 6, 0).into()).unwrap()),
            Err(e) => assert!(e.to_string().contains("SCMP_ARCH_LOONGARCH64"), "{e}"),
        }
    }

    #[test]
    fn unknown_names_are_rejected_by_the_parser_with_the_name() {
        for (json, name) in [
            (r#"{"defaultAction":"SCMP_ACT_FOO"}"#, "SCMP_ACT_FOO"),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_VAX"]}"#,
                "SCMP_ARCH_VAX",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],
                    "action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_XX"}]}]}"#,
                "SCMP_CMP_XX",
            ),
        ] {
            let err = serde_json::from_str::<LinuxSeccomp>(json)
                .unwrap_err()
                .to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn multi_arch_profile_compiles() {
        let s = spec(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
                "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
                "syscalls":[{"names":["read","write","_llseek","exit_group"],"action":"SCMP_ACT_ALLOW"},
                {"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[
                  {"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"},
                  {"index":0,"value":1,"op":"SCMP_CMP_NE"}]}]}"#,
        );
        let filter = compile(&s).unwrap();
        assert!(filter.len() > 10, "{filter:?}");
    }
}
