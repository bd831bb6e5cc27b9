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
