//! runc's `-ENOSYS` stub (libcontainer/seccomp/patchbpf): a syscall newer than every syscall a
//! profile names gets `-ENOSYS`, not the profile's default action, so a program probing for a
//! new syscall (clone3, openat2, faccessat2...) falls back to the old one instead of failing
//! on EPERM. For each architecture of the filter, a few instructions run before libseccomp's
//! program: if `seccomp_data.arch` is that architecture and `nr` is above the highest number
//! the profile's names have there (as this libseccomp resolves them), return `-ENOSYS`.
//!
//! Like runc: no stub when the default action lets calls through (`SCMP_ACT_ALLOW`,
//! `SCMP_ACT_LOG`), nor for an architecture none of whose names this libseccomp knows. x32
//! calls (x86_64's `__X32_SYSCALL_BIT`) are left to libseccomp's program.

use libc::sock_filter;
use libseccomp::{ScmpAction, ScmpArch, ScmpSyscall};
use oci_spec::runtime::LinuxSeccomp;

/// `offsetof(struct seccomp_data, nr)` and `arch`.
const NR: u32 = 0;
const ARCH: u32 = 4;
/// x32 syscalls arrive as x86_64 ones with this bit set in `nr`.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn insn(code: u32, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter {
        // The BPF_* opcode constants all fit in 16 bits.
        code: code as u16,
        jt,
        jf,
        k,
    }
}

fn load(offset: u32) -> sock_filter {
    insn(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, offset)
}

/// A relative jump offset (the stub is a few instructions per architecture).
fn rel(from: usize, to: usize) -> u8 {
    u8::try_from(to - from - 1).expect("the stub's jumps are short")
}

/// The highest syscall number among the profile's names on `arch`, if it knows any.
fn highest(spec: &LinuxSeccomp, arch: ScmpArch) -> Option<u32> {
    spec.syscalls()
        .iter()
        .flatten()
        .flat_map(|rule| rule.names())
        .filter_map(|name| ScmpSyscall::from_name_by_arch(name, arch).ok())
        .filter_map(|nr| u32::try_from(i32::from(nr)).ok())
        .max()
}

/// The instructions to put before libseccomp's program; empty when no stub applies.
/// `arches` are the filter's architectures with their tokens.
pub(super) fn stub(
    spec: &LinuxSeccomp,
    default: ScmpAction,
    arches: &[(ScmpArch, u32)],
) -> Vec<sock_filter> {
    if matches!(default, ScmpAction::Allow | ScmpAction::Log) {
        return Vec::new();
    }
    let mut checks: Vec<(u32, u32)> = Vec::new();
    for &(arch, token) in arches {
        if token == libseccomp_sys::SCMP_ARCH_X32 || checks.iter().any(|c| c.0 == token) {
            continue;
        }
        if let Some(max) = highest(spec, arch) {
            checks.push((token, max));
        }
    }
    if checks.is_empty() {
        return Vec::new();
    }
    // Each check: ld arch; jeq token else next; ld nr; [jset x32 -> out]; jgt max -> ENOSYS;
    // ja out. Then "out: ja program" (skipping the return) and "ENOSYS: ret".
    let len = |token: u32| {
        if token == libseccomp_sys::SCMP_ARCH_X86_64 {
            6
        } else {
            5
        }
    };
    let out = checks.iter().map(|c| len(c.0)).sum::<usize>();
    let enosys = out + 1;
    let mut prog = Vec::with_capacity(enosys + 1);
    for &(token, max) in &checks {
        let next = prog.len() + len(token);
        prog.push(load(ARCH));
        let pc = prog.len();
        prog.push(insn(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            0,
            rel(pc, next),
            token,
        ));
        prog.push(load(NR));
        if token == libseccomp_sys::SCMP_ARCH_X86_64 {
            let pc = prog.len();
            prog.push(insn(
                libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K,
                rel(pc, out),
                0,
                X32_SYSCALL_BIT,
            ));
        }
        let pc = prog.len();
        prog.push(insn(
            libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K,
            rel(pc, enosys),
            0,
            max,
        ));
        let pc = prog.len();
        prog.push(insn(
            libc::BPF_JMP | libc::BPF_JA,
            0,
            0,
            u32::from(rel(pc, out)),
        ));
    }
    // out: skip the return, into libseccomp's program.
    prog.push(insn(libc::BPF_JMP | libc::BPF_JA, 0, 0, 1));
    prog.push(insn(
        libc::BPF_RET | libc::BPF_K,
        0,
        0,
        libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
    ));
    prog
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).expect("valid LinuxSeccomp JSON")
    }

    /// Runs the stub on (arch, nr): Some(return value) or None (falls into the program).
    fn run(prog: &[sock_filter], arch: u32, nr: u32) -> Option<u32> {
        let (mut pc, mut a) = (0usize, 0u32);
        while pc < prog.len() {
            let i = &prog[pc];
            let code = u32::from(i.code);
            pc += 1;
            match code {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    a = if i.k == ARCH { arch } else { nr }
                }
                c if c == libc::BPF_RET | libc::BPF_K => return Some(i.k),
                c if c == libc::BPF_JMP | libc::BPF_JA => pc += i.k as usize,
                c => {
                    let hit = match c & 0xf0 {
                        x if x == libc::BPF_JEQ => a == i.k,
                        x if x == libc::BPF_JGT => a > i.k,
                        x if x == libc::BPF_JSET => a & i.k != 0,
                        _ => panic!("unexpected opcode {c:#x}"),
                    };
                    pc += usize::from(if hit { i.jt } else { i.jf });
                }
            }
        }
        assert_eq!(pc, prog.len(), "jumps land inside the program");
        None
    }

    #[test]
    fn calls_above_the_highest_named_get_enosys() {
        let s = spec(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","openat",
                "no_such_syscall"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let x86_64 = libseccomp_sys::SCMP_ARCH_X86_64;
        let x86 = libseccomp_sys::SCMP_ARCH_X86;
        let prog = stub(
            &s,
            ScmpAction::Errno(1),
            &[(ScmpArch::X8664, x86_64), (ScmpArch::X86, x86)],
        );
        let enosys = Some(libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
        // openat is 257 on x86_64, 295 on x86.
        assert_eq!(run(&prog, x86_64, 257), None);
        assert_eq!(run(&prog, x86_64, 0), None);
        assert_eq!(run(&prog, x86_64, 258), enosys);
        assert_eq!(run(&prog, x86_64, X32_SYSCALL_BIT | 500), None);
        assert_eq!(run(&prog, x86, 295), None);
        assert_eq!(run(&prog, x86, 296), enosys);
        assert_eq!(run(&prog, libseccomp_sys::SCMP_ARCH_AARCH64, 999), None);
        assert!(stub(&s, ScmpAction::Allow, &[(ScmpArch::X8664, x86_64)]).is_empty());
        let none = spec(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["nope"],
            "action":"SCMP_ACT_ALLOW"}]}"#,
        );
        assert!(stub(&none, ScmpAction::Errno(1), &[(ScmpArch::X8664, x86_64)]).is_empty());
    }
}
