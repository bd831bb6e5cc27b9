//! The `report` subcommand: one JSON object describing the process and the
//! container it runs in.
//!
//! Facts read from `/proc` become `null` (scalars) or empty arrays (lists)
//! when `/proc` is not mounted, e.g. in a plain `chroot`.

use std::ffi::CStr;
use std::fs;
use std::process::ExitCode;

use serde_json::{json, Map, Value};

use crate::{caps, print_json};

/// Namespace names under `/proc/self/ns`, as reported under `namespaces`.
const NAMESPACES: [&str; 10] = [
    "cgroup",
    "ipc",
    "mnt",
    "net",
    "pid",
    "pid_for_children",
    "time",
    "time_for_children",
    "user",
    "uts",
];

/// Sysctls reported under `sysctls`, by their dotted names.
const SYSCTLS: [&str; 2] = ["net.ipv4.ip_forward", "kernel.shm_rmid_forced"];

/// Capability sets: JSON key and the `/proc/self/status` field holding its mask.
const CAP_SETS: [(&str, &str); 5] = [
    ("bounding", "CapBnd"),
    ("effective", "CapEff"),
    ("permitted", "CapPrm"),
    ("inheritable", "CapInh"),
    ("ambient", "CapAmb"),
];

/// All 16 rlimits, by the name used as JSON key.
const RLIMITS: [(&str, libc::__rlimit_resource_t); 16] = [
    ("RLIMIT_CPU", libc::RLIMIT_CPU),
    ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
    ("RLIMIT_DATA", libc::RLIMIT_DATA),
    ("RLIMIT_STACK", libc::RLIMIT_STACK),
    ("RLIMIT_CORE", libc::RLIMIT_CORE),
    ("RLIMIT_RSS", libc::RLIMIT_RSS),
    ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
    ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
    ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
    ("RLIMIT_AS", libc::RLIMIT_AS),
    ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
    ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
    ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
    ("RLIMIT_NICE", libc::RLIMIT_NICE),
    ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
    ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
];

/// Prints the report as one line of JSON.
pub fn run() -> ExitCode {
    // Listed first, before anything else could leave a descriptor open.
    let fds = fds();
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let (hostname, domainname) = uname();
    // SAFETY: these calls only read process attributes.
    let (pid, ppid, no_new_privs, dumpable, tty) = unsafe {
        (
            libc::getpid(),
            libc::getppid(),
            libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0),
            libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0),
            libc::isatty(0) == 1,
        )
    };
    let report = json!({
        "pid": pid,
        "ppid": ppid,
        "uid": ids(libc::getresuid),
        "gid": ids(libc::getresgid),
        "groups": groups(),
        "caps": capabilities(&status),
        "rlimits": rlimits(),
        "hostname": hostname,
        "domainname": domainname,
        "mounts": mounts(),
        "namespaces": namespaces(),
        "cwd": cwd(),
        "umask": status_field(&status, "Umask").and_then(|v| u32::from_str_radix(v, 8).ok()),
        "env": std::env::vars_os().map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            kv.to_string_lossy().into_owned()
        }).collect::<Vec<_>>(),
        "no_new_privs": (no_new_privs >= 0).then_some(no_new_privs == 1),
        "dumpable": (dumpable >= 0).then_some(dumpable),
        "seccomp": status_field(&status, "Seccomp").and_then(|v| v.parse::<i64>().ok()),
        "oom_score_adj": read_trimmed("/proc/self/oom_score_adj").and_then(|v| v.parse::<i64>().ok()),
        "fds": fds,
        "cgroup": fs::read_to_string("/proc/self/cgroup")
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_else(|_| Vec::new()),
        "exe": readlink("/proc/self/exe"),
        "sysctls": SYSCTLS.iter().map(|name| {
            let path = format!("/proc/sys/{}", name.replace('.', "/"));
            (name.to_string(), read_trimmed(&path).into())
        }).collect::<Map<_, _>>(),
        "tty": tty,
    });
    print_json(&report);
    ExitCode::SUCCESS
}

/// Real, effective and saved ids from `getresuid`/`getresgid`.
fn ids(get: unsafe extern "C" fn(*mut u32, *mut u32, *mut u32) -> i32) -> Value {
    let (mut real, mut effective, mut saved) = (0, 0, 0);
    // SAFETY: the three pointers are valid for writes.
    if unsafe { get(&mut real, &mut effective, &mut saved) } != 0 {
        return Value::Null;
    }
    json!({ "real": real, "effective": effective, "saved": saved })
}

/// Supplementary group ids from `getgroups`.
fn groups() -> Vec<libc::gid_t> {
    // SAFETY: a size of 0 only asks for the count.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let mut list = vec![0; usize::try_from(n).unwrap_or(0)];
    // SAFETY: `list` has room for `n` entries.
    let got = unsafe { libc::getgroups(n, list.as_mut_ptr()) };
    list.truncate(usize::try_from(got).unwrap_or(0));
    list
}

/// The value of a `Name:\tvalue` line of `/proc/self/status`.
fn status_field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then_some(value.trim())
    })
}

/// The five capability sets as arrays of names (`null` if unreadable).
fn capabilities(status: &str) -> Value {
    CAP_SETS
        .iter()
        .map(|(key, field)| {
            let names = status_field(status, field).and_then(caps::names_from_hex);
            (key.to_string(), names.into())
        })
        .collect::<Map<_, _>>()
        .into()
}

/// Soft and hard limit of every rlimit; `null` stands for `RLIM_INFINITY`.
fn rlimits() -> Value {
    let limit = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v);
    RLIMITS
        .iter()
        .map(|&(name, resource)| {
            let mut rl = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: `rl` is valid for writes.
            let value = if unsafe { libc::getrlimit(resource, &mut rl) } == 0 {
                json!({ "soft": limit(rl.rlim_cur), "hard": limit(rl.rlim_max) })
            } else {
                Value::Null
            };
            (name.to_string(), value)
        })
        .collect::<Map<_, _>>()
        .into()
}

/// Host name and NIS domain name from `uname`.
fn uname() -> (Option<String>, Option<String>) {
    // SAFETY: `utsname` is plain data; `uname` fills it with NUL-terminated strings.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut uts) } != 0 {
        return (None, None);
    }
    // SAFETY: the fields are NUL-terminated after a successful `uname`.
    let field = |f: &[libc::c_char]| {
        unsafe { CStr::from_ptr(f.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    (Some(field(&uts.nodename)), Some(field(&uts.domainname)))
}

/// Entries of `/proc/self/mountinfo` (see proc(5) for the format).
fn mounts() -> Vec<Value> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines().filter_map(parse_mountinfo_line).collect()
}

/// Parses one `mountinfo` line:
/// `id parent major:minor root mount_point options [optional...] - fs_type source super_options`.
fn parse_mountinfo_line(line: &str) -> Option<Value> {
    let (head, tail) = line.split_once(" - ")?;
    let head: Vec<&str> = head.split(' ').collect();
    let tail: Vec<&str> = tail.split(' ').collect();
    if head.len() < 6 || tail.len() < 3 {
        return None;
    }
    let list = |s: &str| s.split(',').map(unescape).collect::<Vec<_>>();
    Some(json!({
        "mount_point": unescape(head[4]),
        "fs_type": unescape(tail[0]),
        "source": unescape(tail[1]),
        "options": list(head[5]),
        "super_options": list(tail[2]),
        "optional": head[6..].to_vec(),
    }))
}

/// Undoes the octal escapes (`\040` for a space, ...) of `mountinfo` fields.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes.get(i + 1..i + 4).and_then(|d| {
            let d = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(d, 8).ok()
        });
        match code {
            Some(c) if bytes[i] == b'\\' => {
                out.push(c);
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Inode numbers of this process's namespaces (`null` where missing).
fn namespaces() -> Value {
    NAMESPACES
        .iter()
        .map(|ns| {
            // The link reads like `net:[4026531840]`.
            let inode = readlink(&format!("/proc/self/ns/{ns}")).and_then(|target| {
                let (_, rest) = target.split_once(":[")?;
                rest.strip_suffix(']')?.parse::<u64>().ok()
            });
            (ns.to_string(), inode.into())
        })
        .collect::<Map<_, _>>()
        .into()
}

/// The working directory (its `/proc/self/cwd` link if `getcwd` fails, e.g.
/// because it lies outside the root).
fn cwd() -> String {
    std::env::current_dir()
        .map(|p| p.to_string_lossy().into_owned())
        .ok()
        .or_else(|| readlink("/proc/self/cwd"))
        .unwrap_or_default()
}

/// Every open descriptor and where it points, except the one used to list them.
fn fds() -> Vec<Value> {
    let mut out = Vec::new();
    // SAFETY: plain libc directory iteration over a NUL-terminated path; the
    // directory is closed before returning and `readdir` entries are not kept.
    unsafe {
        let dir = libc::opendir(c"/proc/self/fd".as_ptr());
        if dir.is_null() {
            return out;
        }
        let own = libc::dirfd(dir);
        loop {
            let entry = libc::readdir(dir);
            if entry.is_null() {
                break;
            }
            let name = CStr::from_ptr((*entry).d_name.as_ptr()).to_string_lossy();
            let Ok(fd) = name.parse::<i32>() else {
                continue; // "." and ".."
            };
            if fd != own {
                let target = readlink(&format!("/proc/self/fd/{fd}"));
                out.push(json!({ "fd": fd, "target": target }));
            }
        }
        libc::closedir(dir);
    }
    out
}

/// The target of a symbolic link, lossily as UTF-8.
fn readlink(path: &str) -> Option<String> {
    fs::read_link(path)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// A small text file's contents with surrounding whitespace trimmed.
fn read_trimmed(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo() {
        let line = "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue";
        let m = parse_mountinfo_line(line).unwrap();
        assert_eq!(m["mount_point"], "/mnt two");
        assert_eq!(m["fs_type"], "ext3");
        assert_eq!(m["source"], "/dev/root");
        assert_eq!(m["options"], json!(["rw", "noatime"]));
        assert_eq!(m["super_options"], json!(["rw", "errors=continue"]));
        assert_eq!(m["optional"], json!(["master:1", "shared:2"]));
        let plain = parse_mountinfo_line("1 0 0:1 / / ro - tmpfs none rw").unwrap();
        assert_eq!(plain["optional"], json!([]));
        assert!(parse_mountinfo_line("garbage").is_none());
    }

    #[test]
    fn reads_status_fields() {
        let status = "Name:\tprobe\nUmask:\t0022\nSeccomp:\t2\n";
        assert_eq!(status_field(status, "Umask"), Some("0022"));
        assert_eq!(status_field(status, "Seccomp"), Some("2"));
        assert_eq!(status_field(status, "CapEff"), None);
    }
}
