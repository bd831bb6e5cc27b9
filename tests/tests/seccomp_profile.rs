//! linux.seccomp applied to the container's process (and to exec'd ones).

use mini_tests::{last_json, unique, Bundle, Runtime};
use serde_json::json;
use std::time::Duration;

fn deny_mkdir(c: &mut serde_json::Value) {
    c["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    });
}

#[test]
fn seccomp_profile_denies_listed_syscalls_with_their_errno() {
    let rt = Runtime::new();
    let b = Bundle::new(&["/bin/probe", "report"]).edit(deny_mkdir);
    let r = rt.report(&b);
    assert_eq!(r["seccomp"], 2, "filter mode");
    let b = Bundle::new(&["sh", "-c", "mkdir /dev/shm/x 2>&1; echo done"]).edit(deny_mkdir);
    let out = rt.run(&b, &unique("seccomp"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Function not implemented"),
        "errnoRet 38 (ENOSYS): {text}"
    );
    assert!(text.contains("done"), "other syscalls still work: {text}");
}

#[test]
fn exec_gets_the_containers_seccomp_profile() {
    let rt = Runtime::new();
    let b = Bundle::new(&["/bin/probe", "sleep", "60"]).edit(deny_mkdir);
    let id = unique("seccomp-exec");
    rt.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
    rt.wait_status(&id, "running", Duration::from_secs(10));
    let out = rt.cmd(&["exec", &id, "/bin/probe", "report"]);
    assert_eq!(last_json(&out)["seccomp"], 2);
}

#[test]
fn a_bad_seccomp_profile_fails_create_with_one_line() {
    let rt = Runtime::new();
    let b = Bundle::new(&["/bin/true"]).edit(|c| {
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_BOGUS"});
    });
    let id = unique("seccomp-bad");
    let out = rt.create(&b, &id);
    assert!(!out.status.success());
    assert!(mini_tests::stderr_line(&out).contains("SCMP_ACT_BOGUS"));
    mini_tests::assert_nothing_left(&rt, &id, b.path());
}

#[test]
fn notify_without_listener_path_is_rejected() {
    let rt = Runtime::new();
    let b = Bundle::new(&["/bin/true"]).edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        });
    });
    let id = unique("seccomp-notify");
    let out = rt.create(&b, &id);
    assert!(!out.status.success());
    assert!(mini_tests::stderr_line(&out).contains("listenerPath"));
    mini_tests::assert_nothing_left(&rt, &id, b.path());
}

/// An allow-list profile (default EPERM) with what busybox needs to start, open, write its
/// error and exit: the highest syscall it names is openat/newfstatat (257/262 on x86_64).
fn allow_list(c: &mut serde_json::Value) {
    c["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["execve", "brk", "arch_prctl", "set_tid_address",
            "set_robust_list", "readlink", "mprotect", "getuid", "geteuid", "prctl",
            "exit_group", "exit", "openat", "open", "close", "write", "newfstatat", "fstat",
            "lseek", "mmap", "munmap", "read", "ioctl", "rt_sigaction", "rt_sigprocmask",
            "getpid", "uname"], "action": "SCMP_ACT_ALLOW"}]
    });
}

/// A syscall numbered above every one the profile names gets ENOSYS (runc's stub), so a
/// program probing for a newer syscall falls back; below that the default action (EPERM)
/// still holds.
#[test]
fn a_syscall_newer_than_the_profile_gets_enosys() {
    let rt = Runtime::new();
    // fallocate is 285 on x86_64: newer than anything the profile names.
    let b = Bundle::new(&["fallocate", "-l", "1", "/dev/shm/f"]).edit(allow_list);
    let out = rt.run(&b, &unique("seccomp-enosys"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Function not implemented"), "ENOSYS: {err}");
    // mkdir is 83: not listed, older than what the profile names: the default action.
    let b = Bundle::new(&["mkdir", "/dev/shm/d"]).edit(allow_list);
    let out = rt.run(&b, &unique("seccomp-eperm"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Operation not permitted"), "EPERM: {err}");
}

/// SCMP_ACT_NOTIFY on write is refused at create with one line, as runc does: the runtime
/// needs write (and sendmsg) to hand the listener over once the filter is installed.
#[test]
fn notify_on_write_is_refused() {
    let rt = Runtime::new();
    for name in ["write", "sendmsg"] {
        let b = Bundle::new(&["/bin/true"]).edit(|c| {
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "listenerPath": "/run/mini-tests-no-agent.sock",
                "syscalls": [{"names": ["mkdir", name], "action": "SCMP_ACT_NOTIFY"}]
            });
        });
        let id = unique("seccomp-notify-write");
        let out = rt
            .cmd_timeout(
                &["create", "--bundle", b.path_str(), &id],
                Duration::from_secs(30),
            )
            .unwrap_or_else(|e| panic!("create with NOTIFY on {name}: {e}"));
        mini_tests::assert_fails_with(&out, &["SCMP_ACT_NOTIFY", name]);
        mini_tests::assert_nothing_left(&rt, &id, b.path());
    }
}
