//! Seccomp end to end (runtime/src/seccomp): a forked child installs a compiled profile and
//! makes system calls; the parent checks what the kernel answered through the child's exit
//! code. Run as root (installing without no_new_privs needs CAP_SYS_ADMIN, as in a container
//! whose spec does not ask for noNewPrivileges).
//!
//! The test harness is multi-threaded, so between fork and exit the child does only
//! async-signal-safe work: raw system calls, `Filter::install` (one seccomp(2) call), execve of
//! argv prepared before the fork. Exit codes: 0 = every check passed, 100 = install failed,
//! other = the number of the first check that failed.

use std::ffi::CString;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags, ScmpSyscall};
use mini_run::seccomp::{compile, process_state, send_to_listener, Filter};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use oci_spec::runtime::{ContainerState, LinuxSeccomp, StateBuilder};
use serde_json::{json, Value};

/// Child exit code when `Filter::install` failed.
const INSTALL_FAILED: i32 = 100;

fn require_root() {
    assert_eq!(
        nix::unistd::geteuid().as_raw(),
        0,
        "the seccomp integration tests must run as root"
    );
}

fn spec(profile: Value) -> LinuxSeccomp {
    serde_json::from_value(profile).expect("a valid linux.seccomp")
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mini-run-seccomp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

fn errno() -> i32 {
    // SAFETY: reading the calling thread's errno.
    unsafe { *libc::__errno_location() }
}

/// A raw system call returning -1/errno as glibc's `syscall` does.
macro_rules! sys {
    ($nr:expr $(, $arg:expr)*) => {
        // SAFETY: every call below passes valid pointers or plain integers.
        unsafe { libc::syscall($nr $(, $arg)*) }
    };
}

/// Whether the call failed with `want`.
fn failed_with(ret: libc::c_long, want: i32) -> bool {
    ret == -1 && errno() == want
}

/// Forks; the child runs `before` (e.g. dropping privileges), installs `filter`, runs `body`
/// and exits with its result. Returns the child's exit code.
fn in_child(
    filter: Filter,
    before: impl FnOnce() -> i32,
    body: impl FnOnce(Option<OwnedFd>) -> i32,
) -> i32 {
    // SAFETY: the child only makes async-signal-safe calls (see the module docs) and leaves
    // with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = match before() {
            0 => match filter.install() {
                Ok(listener) => body(listener),
                Err(_) => INSTALL_FAILED,
            },
            code => code,
        };
        // SAFETY: leaving the child without running the parent's atexit handlers or destructors.
        unsafe { libc::_exit(code) };
    }
    wait(pid)
}

/// Waits for `pid`; its exit code (a signal death fails the test).
fn wait(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        assert!(
            r == -1 && errno() == libc::EINTR,
            "waitpid: {}",
            std::io::Error::last_os_error()
        );
    }
    assert!(
        libc::WIFEXITED(status),
        "child killed by signal {}",
        libc::WTERMSIG(status)
    );
    libc::WEXITSTATUS(status)
}

/// The argv/envp for an execve prepared before the fork.
struct Exec {
    _args: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: [*const libc::c_char; 1],
}

impl Exec {
    fn new(args: &[&str]) -> Self {
        let args: Vec<CString> = args.iter().map(|a| CString::new(*a).unwrap()).collect();
        let mut argv: Vec<_> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        Exec {
            _args: args,
            argv,
            envp: [std::ptr::null()],
        }
    }

    /// execve; returns only on failure, with an exit code.
    fn run(&self) -> i32 {
        // SAFETY: argv and envp are NUL-terminated arrays of C strings that outlive the call.
        unsafe { libc::execve(self.argv[0], self.argv.as_ptr(), self.envp.as_ptr()) };
        99
    }
}

const BUSYBOX: &str = "/bin/busybox";

#[test]
fn errno_rule_blocks_mkdir_and_leaves_other_syscalls() {
    require_root();
    let dir = scratch("mkdir");
    let (blocked, other) = (cstr(&dir.join("blocked")), cstr(&dir.join("other")));
    let filter = compile(&spec(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    })))
    .unwrap();
    let code = in_child(
        filter,
        || 0,
        |_| {
            if !failed_with(sys!(libc::SYS_mkdir, blocked.as_ptr(), 0o755), libc::EPERM) {
                return 1;
            }
            // mkdirat is not filtered, nor are getpid and openat.
            if sys!(libc::SYS_mkdirat, libc::AT_FDCWD, other.as_ptr(), 0o755) != 0 {
                return 2;
            }
            if sys!(libc::SYS_getpid) <= 0 {
                return 3;
            }
            let fd = sys!(
                libc::SYS_openat,
                libc::AT_FDCWD,
                c"/dev/null".as_ptr(),
                libc::O_RDONLY
            );
            if fd < 0 || sys!(libc::SYS_close, fd) != 0 {
                return 4;
            }
            0
        },
    );
    assert_eq!(code, 0);
    assert!(!dir.join("blocked").exists());
    assert!(dir.join("other").is_dir());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errno_ret_is_honoured() {
    require_root();
    let dir = scratch("errnoret");
    let path = cstr(&dir.join("x"));
    let filter = compile(&spec(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    })))
    .unwrap();
    let code = in_child(
        filter,
        || 0,
        |_| {
            if failed_with(sys!(libc::SYS_mkdir, path.as_ptr(), 0o755), 38) {
                0
            } else {
                1
            }
        },
    );
    assert_eq!(code, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn argument_conditions_select_the_call() {
    require_root();
    // Default deny (EPERM); personality is allowed only to query (arg0 == 0xffffffff).
    let filter = compile(&spec(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "syscalls": [
            {"names": ["exit_group", "exit"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0xffff_ffffu64, "op": "SCMP_CMP_EQ"}]}
        ]
    })))
    .unwrap();
    let code = in_child(
        filter,
        || 0,
        |_| {
            if sys!(libc::SYS_personality, 0xffff_ffffu64) < 0 {
                return 1;
            }
            if !failed_with(sys!(libc::SYS_personality, 0u64), libc::EPERM) {
                return 2;
            }
            if !failed_with(sys!(libc::SYS_getppid), libc::EPERM) {
                return 3;
            }
            0
        },
    );
    assert_eq!(code, 0);
}

/// What static busybox needs to start and exit (glibc's startup), plus write for messages.
const BUSYBOX_STARTUP: [&str; 13] = [
    "execve",
    "brk",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "readlink",
    "getrandom",
    "mprotect",
    "getuid",
    "prctl",
    "exit_group",
];

fn allow_list(extra: &[&str]) -> Filter {
    let mut names: Vec<&str> = BUSYBOX_STARTUP.to_vec();
    names.extend_from_slice(extra);
    compile(&spec(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
    })))
    .unwrap()
}

#[test]
fn default_errno_with_an_allow_list_runs_a_small_program() {
    require_root();
    let dir = scratch("allowlist");
    let made = dir.join("made");
    let exec = Exec::new(&[BUSYBOX, "mkdir", made.to_str().unwrap()]);
    let code = in_child(allow_list(&["mkdir", "write"]), || 0, |_| exec.run());
    assert_eq!(code, 0, "busybox mkdir under the allow-list");
    assert!(made.is_dir());

    // Without mkdir in the list, the program runs but its mkdir gets EPERM.
    let denied = dir.join("denied");
    let exec = Exec::new(&[BUSYBOX, "mkdir", denied.to_str().unwrap()]);
    let code = in_child(allow_list(&["write"]), || 0, |_| exec.run());
    assert_eq!(code, 1, "busybox mkdir must fail");
    assert!(!denied.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// runc's stub: a number above every syscall the profile names (rseq, 334, here) is ENOSYS,
/// whether the kernel has it (pidfd_open, 434) or not (1000); an unlisted older one (mkdir)
/// still gets the default action.
#[test]
fn syscalls_newer_than_the_profile_get_enosys() {
    require_root();
    let code = in_child(
        allow_list(&["write"]),
        || 0,
        |_| {
            if !failed_with(sys!(1000), libc::ENOSYS) {
                return 1;
            }
            if !failed_with(sys!(libc::SYS_pidfd_open, 1, 0), libc::ENOSYS) {
                return 2;
            }
            if !failed_with(sys!(libc::SYS_mkdir, c"/".as_ptr(), 0o755), libc::EPERM) {
                return 3;
            }
            0
        },
    );
    assert_eq!(code, 0);
}

#[test]
fn install_without_no_new_privs_needs_cap_sys_admin() {
    require_root();
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    });
    let drop_root = || {
        // Leaving uid 0 clears the effective capabilities (CAP_SYS_ADMIN among them).
        if sys!(libc::SYS_setresuid, 65534, 65534, 65534) != 0 {
            return 50;
        }
        0
    };
    let code = in_child(compile(&spec(profile.clone())).unwrap(), drop_root, |_| 0);
    assert_eq!(
        code, INSTALL_FAILED,
        "install must fail without NNP and CAP_SYS_ADMIN"
    );

    // With no_new_privs (what the init sets when process.noNewPrivileges is true) it works.
    let nnp_then_drop = || {
        // SAFETY: PR_SET_NO_NEW_PRIVS takes no pointers.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return 51;
        }
        drop_root()
    };
    let code = in_child(compile(&spec(profile)).unwrap(), nnp_then_drop, |_| 0);
    assert_eq!(code, 0);
}

#[test]
fn notify_hands_the_listener_to_an_agent_that_answers() {
    require_root();
    let dir = scratch("notify");
    let socket_path = dir.join("agent.sock");
    let listener = UnixListener::bind(&socket_path).unwrap();
    let (denied, continued) = (cstr(&dir.join("denied")), cstr(&dir.join("continued")));
    let seccomp = spec(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": socket_path,
        "listenerMetadata": "test-metadata",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    let filter = compile(&seccomp).unwrap();
    assert!(filter.notifies());

    // The agent: takes the fd, answers the first mkdir with EXDEV and lets the second run.
    let mkdir_nr = ScmpSyscall::from_name("mkdir").unwrap();
    let agent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .unwrap();
        let mut fds = Vec::new();
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(r) = c {
                fds.extend(r);
            }
        }
        let len = msg.bytes;
        assert_eq!(fds.len(), 1, "one fd with the state");
        // SAFETY: the fd arrived with SCM_RIGHTS; nothing else owns it.
        let notify_fd = unsafe { OwnedFd::from_raw_fd(fds[0]) };
        let state: Value = serde_json::from_slice(&buf[..len]).unwrap();

        let mut pids = Vec::new();
        for flags in [None, Some(ScmpNotifRespFlags::CONTINUE)] {
            let req = ScmpNotifReq::receive(notify_fd.as_raw_fd()).unwrap();
            assert_eq!(req.data.syscall, mkdir_nr);
            pids.push(req.pid);
            let resp = match flags {
                None => ScmpNotifResp::new_error(req.id, -libc::EXDEV, ScmpNotifRespFlags::empty()),
                Some(f) => ScmpNotifResp::new_continue(req.id, f),
            };
            resp.respond(notify_fd.as_raw_fd()).unwrap();
        }
        (state, pids)
    });

    // The child learns its state message through a pipe (it cannot format JSON after fork).
    let (state_r, state_w) = nix::unistd::pipe().unwrap();
    let path = socket_path.clone();
    // SAFETY: see in_child; the child only reads a pipe, sends and makes raw syscalls.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        drop(state_w);
        let code = (|| {
            let Ok(Some(notify_fd)) = filter.install() else {
                return INSTALL_FAILED;
            };
            let mut buf = [0u8; 4096];
            let mut len = 0;
            loop {
                let n = sys!(
                    libc::SYS_read,
                    state_r.as_raw_fd(),
                    buf[len..].as_mut_ptr(),
                    buf.len() - len
                );
                match n {
                    0 => break,
                    n if n > 0 => len += n as usize,
                    _ if errno() == libc::EINTR => {}
                    _ => return 1,
                }
            }
            if send_to_listener(&path, notify_fd.as_fd(), &buf[..len]).is_err() {
                return 2;
            }
            if !failed_with(sys!(libc::SYS_mkdir, denied.as_ptr(), 0o755), libc::EXDEV) {
                return 3;
            }
            if sys!(libc::SYS_mkdir, continued.as_ptr(), 0o755) != 0 {
                return 4;
            }
            0
        })();
        // SAFETY: leaving the child.
        unsafe { libc::_exit(code) };
    }
    drop(state_r);
    let state = StateBuilder::default()
        .version("1.2.0")
        .id("seccomp-test")
        .status(ContainerState::Creating)
        .pid(pid)
        .bundle(dir.clone())
        .build()
        .unwrap();
    let message = process_state(pid, seccomp.listener_metadata().as_deref(), &state).unwrap();
    nix::unistd::write(&state_w, &message).unwrap();
    drop(state_w);

    let code = wait(pid);
    assert_eq!(code, 0, "child's notify checks");
    let (state, pids) = agent.join().unwrap();
    assert_eq!(pids, [pid as u32, pid as u32]);
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["pid"], pid);
    assert_eq!(state["metadata"], "test-metadata");
    assert_eq!(state["state"]["status"], "creating");
    assert!(!dir.join("denied").exists());
    assert!(dir.join("continued").is_dir());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// podman's default profile (Debian's golang-github-containers-common).
const PODMAN_PROFILE: &str = "/usr/share/containers/seccomp.json";

/// podman's default capabilities, which decide the profile's capability-dependent rules.
const PODMAN_CAPS: [&str; 11] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// The running kernel's (major, minor).
fn kernel_version() -> (u32, u32) {
    let release = nix::sys::utsname::uname().unwrap();
    let release = release.release().to_str().unwrap();
    let mut parts = release.split(['.', '-']).map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Turns containers/common's profile format into `linux.seccomp` for x86_64, the way podman
/// does: the arch map picks the architectures; a rule applies when its `includes` (arches,
/// caps, minKernel) hold and its `excludes` do not.
fn podman_to_oci(profile: &Value) -> Value {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let arch = "amd64";
    let has_cap = |c: &String| PODMAN_CAPS.contains(&c.as_str());
    let kernel = kernel_version();
    let archs: Vec<Value> = profile["archMap"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["architecture"] == "SCMP_ARCH_X86_64")
        .flat_map(|m| {
            std::iter::once(m["architecture"].clone())
                .chain(m["subArchitectures"].as_array().unwrap().iter().cloned())
        })
        .collect();
    let syscalls: Vec<Value> = profile["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|rule| {
            let inc = &rule["includes"];
            let exc = &rule["excludes"];
            let inc_arches = strings(&inc["arches"]);
            let min_kernel_ok = inc["minKernel"].as_str().is_none_or(|v| {
                let mut p = v.split('.').map(|x| x.parse::<u32>().unwrap_or(0));
                kernel >= (p.next().unwrap_or(0), p.next().unwrap_or(0))
            });
            (inc_arches.is_empty() || inc_arches.iter().any(|a| a == arch))
                && strings(&inc["caps"]).iter().all(has_cap)
                && min_kernel_ok
                && !strings(&exc["arches"]).iter().any(|a| a == arch)
                && !strings(&exc["caps"]).iter().any(has_cap)
        })
        .map(|rule| {
            let mut out = json!({"names": rule["names"], "action": rule["action"]});
            if let Some(ret) = rule.get("errnoRet") {
                out["errnoRet"] = ret.clone();
            }
            if let Some(args) = rule["args"].as_array().filter(|a| !a.is_empty()) {
                out["args"] = Value::Array(args.clone());
            }
            out
        })
        .collect();
    let mut out = json!({
        "defaultAction": profile["defaultAction"],
        "architectures": archs,
        "syscalls": syscalls,
    });
    if let Some(ret) = profile.get("defaultErrnoRet") {
        out["defaultErrnoRet"] = ret.clone();
    }
    out
}

#[test]
fn podman_default_profile_installs_and_busybox_runs() {
    require_root();
    let text = std::fs::read_to_string(PODMAN_PROFILE).unwrap_or_else(|e| {
        panic!(
            "{PODMAN_PROFILE}: {e} (install Debian's golang-github-containers-common, \
             which ships podman's default seccomp profile)"
        )
    });
    let seccomp = spec(podman_to_oci(&serde_json::from_str(&text).unwrap()));
    assert_eq!(
        seccomp.architectures().as_ref().unwrap().len(),
        3,
        "x86_64 with x86 and x32"
    );
    let filter = compile(&seccomp).unwrap();
    assert!(!filter.notifies());

    let dir = scratch("podman");
    let made = dir.join("made");
    let script = format!(
        "echo hello >/dev/null && ls / >/dev/null && cat /proc/self/status >/dev/null \
         && mkdir {} && [ \"$(echo ok | tr a-z A-Z)\" = OK ]",
        made.display()
    );
    let exec = Exec::new(&[BUSYBOX, "sh", "-c", &script]);
    let code = in_child(
        filter,
        || 0,
        |_| {
            // kcmp needs CAP_SYS_PTRACE, which podman does not grant: EPERM by rule.
            if !failed_with(sys!(libc::SYS_kcmp, 0, 0, 0, 0, 0), libc::EPERM) {
                return 1;
            }
            // add_key is not in the profile at all: the default action, ENOSYS (38).
            if !failed_with(sys!(libc::SYS_add_key, 0, 0, 0, 0, 0), libc::ENOSYS) {
                return 2;
            }
            // personality(0xffffffff) is allowed by an argument rule.
            if sys!(libc::SYS_personality, 0xffff_ffffu64) < 0 {
                return 3;
            }
            exec.run()
        },
    );
    assert_eq!(code, 0, "busybox sh under podman's profile");
    assert!(made.is_dir());
    std::fs::remove_dir_all(&dir).unwrap();
}
