//! cgroup v2 device control: compiles device rules into a `BPF_PROG_TYPE_CGROUP_DEVICE`
//! program and attaches it to the container's cgroup through the bpf(2) syscall.
//!
//! The program reads `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`
//! (access_type = access << 16 | type) and checks the rules from last to first, so the last
//! matching rule wins; with no match the access is denied. An allow rule matches when it
//! grants every requested access bit, a deny rule when it covers any of them.

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::devices::{DeviceRule, Kind, ACCESS_ALL};
use crate::error::{Error, Result};

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// Device type values in the program context.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    code: u8,
    /// dst in the low nibble, src in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}
/// dst = *(u32 *)(src + off)
fn load_word(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x61, dst, src, off, 0)
}
/// dst &= imm (32-bit)
fn and_imm(dst: u8, imm: i32) -> Insn {
    insn(0x54, dst, 0, 0, imm)
}
/// dst >>= imm (32-bit)
fn rsh_imm(dst: u8, imm: i32) -> Insn {
    insn(0x74, dst, 0, 0, imm)
}
/// dst = src (32-bit)
fn mov_reg(dst: u8, src: u8) -> Insn {
    insn(0xbc, dst, src, 0, 0)
}
/// dst = imm (64-bit)
fn mov_imm(dst: u8, imm: i32) -> Insn {
    insn(0xb7, dst, 0, 0, imm)
}
/// if dst != imm goto +off
fn jne_imm(dst: u8, imm: i32, off: i16) -> Insn {
    insn(0x55, dst, 0, off, imm)
}
/// if dst == imm goto +off
fn jeq_imm(dst: u8, imm: i32, off: i16) -> Insn {
    insn(0x15, dst, 0, off, imm)
}
/// if dst != src goto +off
fn jne_reg(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x5d, dst, src, off, 0)
}
fn exit() -> Insn {
    insn(0x95, 0, 0, 0, 0)
}

/// A condition of a rule block; each becomes instructions that jump past the block when the
/// request does not match.
enum Check {
    Type(i32),
    AllowAccess(i32),
    DenyAccess(i32),
    Major(i32),
    Minor(i32),
}

/// Compiles rules (in spec order, last match wins) into a device program.
pub(crate) fn compile(rules: &[DeviceRule]) -> Vec<Insn> {
    // r2 = device type, r3 = requested access, r4 = major, r5 = minor.
    let mut prog = vec![
        load_word(R2, R1, 0),
        and_imm(R2, 0xffff),
        load_word(R3, R1, 0),
        rsh_imm(R3, 16),
        load_word(R4, R1, 4),
        load_word(R5, R1, 8),
    ];
    for rule in rules.iter().rev() {
        let checks = rule_checks(rule);
        let unconditional = checks.is_empty();
        let len: usize = checks.iter().map(check_len).sum::<usize>() + 2;
        let mut emitted = 0;
        for check in &checks {
            // Jump to the first instruction after this block.
            let skip = |at: usize| (len - at - 1) as i16;
            match *check {
                Check::Type(t) => prog.push(jne_imm(R2, t, skip(emitted))),
                Check::Major(m) => prog.push(jne_imm(R4, m, skip(emitted))),
                Check::Minor(m) => prog.push(jne_imm(R5, m, skip(emitted))),
                Check::AllowAccess(a) => {
                    prog.push(mov_reg(R1, R3));
                    prog.push(and_imm(R1, a));
                    prog.push(jne_reg(R1, R3, skip(emitted + 2)));
                }
                Check::DenyAccess(a) => {
                    prog.push(mov_reg(R1, R3));
                    prog.push(and_imm(R1, a));
                    prog.push(jeq_imm(R1, 0, skip(emitted + 2)));
                }
            }
            emitted += check_len(check);
        }
        prog.push(mov_imm(R0, i32::from(rule.allow)));
        prog.push(exit());
        if unconditional {
            // Earlier rules can never be reached; the verifier rejects dead code.
            return prog;
        }
    }
    prog.push(mov_imm(R0, 0));
    prog.push(exit());
    prog
}

fn check_len(c: &Check) -> usize {
    match c {
        Check::AllowAccess(_) | Check::DenyAccess(_) => 3,
        _ => 1,
    }
}

fn rule_checks(rule: &DeviceRule) -> Vec<Check> {
    let mut checks = Vec::new();
    match rule.kind {
        Kind::All => {}
        Kind::Block => checks.push(Check::Type(DEV_BLOCK)),
        Kind::Char => checks.push(Check::Type(DEV_CHAR)),
    }
    if rule.access != ACCESS_ALL {
        // Requests always carry at least one bit, so full access needs no check.
        let a = rule.access as i32;
        checks.push(if rule.allow {
            Check::AllowAccess(a)
        } else {
            Check::DenyAccess(a)
        });
    }
    // Device numbers fit in 32 bits (major 12 bits, minor 20 bits), so they are positive imms.
    if let Some(m) = rule.major {
        checks.push(Check::Major(m as i32));
    }
    if let Some(m) = rule.minor {
        checks.push(Check::Minor(m as i32));
    }
    checks
}

/// Calls bpf(2) with `attr`, returning the non-negative result.
fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: attr points to a live, properly sized bpf_attr variant for `cmd`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Wraps a file descriptor returned by bpf(2).
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// Loads a device program. No GPL-only helpers are called, so any license string works.
fn load(prog: &[Insn]) -> Result<OwnedFd> {
    let license = CString::new("Apache-2.0").expect("no NUL");
    let mut log = vec![0u8; 64 * 1024];
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"mini_run_dev");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(owned(fd)),
        Err(source) => {
            // Retry with the verifier log on to explain the failure.
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let _ = bpf(BPF_PROG_LOAD, &mut attr);
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err(Error::Bpf {
                op: "BPF_PROG_LOAD",
                source,
                log: String::from_utf8_lossy(&log[..end]).into_owned(),
            })
        }
    }
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf_err(op: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Bpf {
        op,
        source,
        log: String::new(),
    }
}

/// The ids of the device programs attached to the cgroup.
fn attached(cgroup: &OwnedFd) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr).map_err(bpf_err("BPF_PROG_QUERY"))?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

/// Opens the cgroup directory for attaching (O_PATH descriptors are refused by bpf(2)).
fn open_cgroup(dir: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::io("opening", dir, e.into()))
}

/// Replaces the device programs on the cgroup at `dir` with one enforcing `rules`.
///
/// The new program is attached before the old ones (all of which this runtime put there: the
/// container's cgroup is its own) are detached, so there is no moment without a filter.
pub(crate) fn apply(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    let prog = load(&compile(rules))?;
    let cgroup = open_cgroup(dir)?;
    let old = attached(&cgroup)?;
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(bpf_err("BPF_PROG_ATTACH"))?;
    for id in old {
        let mut get = GetFdAttr {
            prog_id: id,
            ..Default::default()
        };
        let old_fd = match bpf(BPF_PROG_GET_FD_BY_ID, &mut get) {
            Ok(fd) => owned(fd),
            // Detached meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(bpf_err("BPF_PROG_GET_FD_BY_ID")(e)),
        };
        let mut detach = AttachAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_bpf_fd: old_fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        bpf(BPF_PROG_DETACH, &mut detach).map_err(bpf_err("BPF_PROG_DETACH"))?;
    }
    Ok(())
}

/// How many device programs are attached to the cgroup at `dir`.
pub fn attached_device_programs(dir: &Path) -> Result<usize> {
    Ok(attached(&open_cgroup(dir)?)?.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{normalize, ACCESS_READ};

    fn rule(
        allow: bool,
        kind: Kind,
        major: Option<u32>,
        minor: Option<u32>,
        access: u32,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            kind,
            major,
            minor,
            access,
        }
    }

    /// Runs the compiled program over one request, as the kernel would.
    fn run(prog: &[Insn], typ: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | typ, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            let imm = i.imm as i64 as u64;
            let target = (pc as i64 + 1 + i64::from(i.off)) as usize;
            pc += 1;
            match i.code {
                0x61 => r[dst] = u64::from(ctx[(i.off / 4) as usize]),
                0x54 => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                0x74 => r[dst] = (r[dst] as u32 >> i.imm) as u64,
                0xbc => r[dst] = r[src] as u32 as u64,
                0xb7 => r[dst] = imm,
                0x55 if r[dst] != imm => pc = target,
                0x15 if r[dst] == imm => pc = target,
                0x5d if r[dst] != r[src] => pc = target,
                0x55 | 0x15 | 0x5d => {}
                0x95 => return r[0],
                c => panic!("unknown opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn no_rules_denies_everything() {
        let p = compile(&[]);
        assert_eq!(run(&p, 2, 2, 1, 3), 0);
    }

    #[test]
    fn last_matching_rule_wins() {
        let rules = vec![
            rule(false, Kind::All, None, None, ACCESS_ALL),
            rule(true, Kind::Char, Some(1), Some(3), ACCESS_ALL),
            rule(
                false,
                Kind::Char,
                Some(1),
                Some(3),
                crate::devices::ACCESS_WRITE,
            ),
        ];
        let p = compile(&rules);
        assert_eq!(run(&p, 2, ACCESS_READ, 1, 3), 1, "read /dev/null allowed");
        assert_eq!(
            run(&p, 2, ACCESS_READ | 4, 1, 3),
            0,
            "write denied by last rule"
        );
        assert_eq!(run(&p, 1, ACCESS_READ, 1, 3), 0, "block 1:3 denied");
        assert_eq!(run(&p, 2, ACCESS_READ, 1, 5), 0, "other device denied");
    }

    #[test]
    fn allow_all_then_default_devices() {
        let mut rules = vec![rule(true, Kind::All, None, None, ACCESS_ALL)];
        rules.extend(normalize(&crate::default_allowed_devices()).unwrap());
        let p = compile(&rules);
        assert_eq!(run(&p, 1, ACCESS_READ, 8, 0), 1);
        let p = compile(&normalize(&crate::default_allowed_devices()).unwrap());
        assert_eq!(run(&p, 2, ACCESS_READ, 136, 4), 1, "pts allowed");
        assert_eq!(run(&p, 1, 1, 8, 0), 1, "mknod block allowed");
        assert_eq!(run(&p, 1, ACCESS_READ, 8, 0), 0, "reading a disk denied");
    }

    #[test]
    fn unreachable_rules_are_not_emitted() {
        let rules = vec![
            rule(true, Kind::Char, Some(1), Some(3), ACCESS_ALL),
            rule(true, Kind::All, None, None, ACCESS_ALL),
        ];
        let p = compile(&rules);
        assert_eq!(p.len(), 6 + 2);
    }
}
