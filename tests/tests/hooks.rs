//! OCI hooks: each at its lifecycle point, state JSON on stdin, args/env/timeout honoured,
//! failures handled as config.md says.

use mini_tests::{unique, Bundle, Runtime, TempDir};
use serde_json::{json, Value};
use std::time::Duration;

/// A hook that saves its stdin, argv[0] and env under `dir/<name>`.
fn recorder(dir: &TempDir, name: &str) -> Value {
    let out = dir.path().join(name);
    json!({
        "path": "/bin/sh",
        "args": ["hook-argv0", "-c", format!("cat > {0}.state; echo \"$0 $HOOKVAR\" > {0}.info", out.display())],
        "env": ["HOOKVAR=set-for-hook"]
    })
}

fn read_state(dir: &TempDir, name: &str) -> Value {
    let p = dir.path().join(format!("{name}.state"));
    let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{name} hook did not run: {e}"));
    serde_json::from_slice(&data).unwrap()
}

#[test]
fn every_hook_runs_with_the_state_of_its_moment() {
    let rt = Runtime::new();
    let dir = TempDir::new("hooks");
    let b = Bundle::new(&["/bin/true"]).edit(|c| {
        c["hooks"] = json!({
            "prestart": [recorder(&dir, "prestart")],
            "createRuntime": [recorder(&dir, "createRuntime")],
            "poststart": [recorder(&dir, "poststart")],
            "poststop": [recorder(&dir, "poststop")],
        });
    });
    let id = unique("hooks");
    let out = rt.create(&b, &id);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    for name in ["prestart", "createRuntime"] {
        let s = read_state(&dir, name);
        assert_eq!(s["status"], "creating", "{name}");
        assert_eq!(s["id"], id.as_str());
        assert_eq!(s["pid"], pid, "{name} sees the init's host pid");
        assert_eq!(s["bundle"], b.path_str());
    }
    assert!(
        !dir.path().join("poststart.state").exists(),
        "poststart before start"
    );
    rt.ok(&["start", &id]);
    assert_eq!(read_state(&dir, "poststart")["status"], "running");
    rt.wait_status(&id, "stopped", Duration::from_secs(10));
    assert!(
        !dir.path().join("poststop.state").exists(),
        "poststop before delete"
    );
    rt.ok(&["delete", &id]);
    assert_eq!(read_state(&dir, "poststop")["status"], "stopped");
    let info = std::fs::read_to_string(dir.path().join("prestart.info")).unwrap();
    assert_eq!(
        info.trim(),
        "hook-argv0 set-for-hook",
        "args[0] and env honoured"
    );
}

#[test]
fn create_container_hook_runs_in_the_container_mount_namespace() {
    let rt = Runtime::new();
    let dir = TempDir::new("hooks-cc");
    let out = dir.path().join("mnt");
    let b = Bundle::new(&["/bin/true"]).edit(|c| {
        c["hooks"] = json!({"createContainer": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat >/dev/null; readlink /proc/self/ns/mnt > {}", out.display())]
        }]});
    });
    let id = unique("hooks-cc");
    let r = rt.run(&b, &id);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let seen = std::fs::read_to_string(&out).unwrap();
    let host = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    assert_ne!(
        seen.trim(),
        host.to_str().unwrap(),
        "hook ran in the host mount namespace"
    );
}

/// createContainer hooks run with the container's root as their working directory, as runc's
/// do, and read the status `creating` (the create operation is not finished while its hooks
/// run; runc agrees, crun says `created`).
#[test]
fn create_container_hook_runs_in_the_containers_root_and_sees_creating() {
    let rt = Runtime::new();
    let dir = TempDir::new("hooks-cwd");
    let out = dir.path().join("cc");
    let b = Bundle::new(&["/bin/true"]).edit(|c| {
        c["hooks"] = json!({"createContainer": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat > {0}.state; pwd -P > {0}.cwd", out.display())]
        }]});
    });
    let r = rt.run(&b, &unique("hooks-cwd"));
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let cwd = std::fs::read_to_string(dir.path().join("cc.cwd")).unwrap();
    assert_eq!(cwd.trim(), mini_tests::fixture_rootfs().to_str().unwrap());
    assert_eq!(read_state(&dir, "cc")["status"], "creating");
}

/// A startContainer hook without `env` gets the process's environment (runc's hook inherits
/// the init's, which is the process's by then); one with `env` gets exactly that.
#[test]
fn start_container_hook_without_env_gets_the_process_environment() {
    let rt = Runtime::new();
    let dir = TempDir::new("hooks-env");
    let b = Bundle::new(&["/bin/true"])
        .with_bind(dir.path(), "/mnt/out")
        .edit(|c| {
            c["process"]["env"] = json!(["PATH=/bin", "FROM_PROCESS=yes"]);
            let hook = |name: &str| format!("echo \"$FROM_PROCESS|$OWN\" > /mnt/out/{name}");
            c["hooks"] = json!({"startContainer": [
                {"path": "/bin/sh", "args": ["sh", "-c", hook("inherited")]},
                {"path": "/bin/sh", "args": ["sh", "-c", hook("own")], "env": ["OWN=1"]}
            ]});
        });
    let r = rt.run(&b, &unique("hooks-env"));
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    assert_eq!(read("inherited").trim(), "yes|");
    assert_eq!(read("own").trim(), "|1");
}

#[test]
fn failing_create_runtime_hook_fails_create_and_leaves_nothing() {
    let rt = Runtime::new();
    let b = Bundle::new(&["/bin/true"]).edit(|c| {
        c["hooks"] =
            json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]});
    });
    let id = unique("hooks-fail");
    let out = rt.create(&b, &id);
    assert!(!out.status.success());
    let msg = mini_tests::stderr_line(&out);
    assert!(msg.contains("createRuntime"), "{msg}");
    mini_tests::assert_nothing_left(&rt, &id, b.path());
}

#[test]
fn hook_timeout_kills_the_hook_and_fails_create() {
    let rt = Runtime::new();
    let b = Bundle::new(&["/bin/true"]).edit(|c| {
        c["hooks"] = json!({"prestart": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]});
    });
    let id = unique("hooks-timeout");
    let t = std::time::Instant::now();
    let out = rt.create(&b, &id);
    assert!(!out.status.success());
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "the hook was not killed at its timeout"
    );
    assert!(mini_tests::stderr_line(&out).contains("timed out"));
    mini_tests::assert_nothing_left(&rt, &id, b.path());
}

#[test]
fn failing_poststart_and_poststop_hooks_are_only_warnings() {
    let rt = Runtime::new();
    let fail = json!([{"path": "/bin/sh", "args": ["sh", "-c", "exit 1"]}]);
    let b = Bundle::new(&["/bin/probe", "exit", "7"]).edit(|c| {
        c["hooks"] = json!({"poststart": fail, "poststop": fail});
    });
    let out = rt.run(&b, &unique("hooks-warn"));
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning"));
}

#[test]
fn start_container_hook_failure_stops_the_process_from_running() {
    let rt = Runtime::new();
    let dir = TempDir::new("hooks-sc");
    let marker = "/dev/shm/should-not-exist";
    let b = Bundle::new(&["sh", "-c", &format!("touch {marker}; exit 0")]).edit(|c| {
        c["hooks"] =
            json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 1"]}]});
    });
    let out = rt.run(&b, &unique("hooks-sc"));
    assert!(
        !out.status.success(),
        "the process ran despite the failing startContainer hook"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("startContainer"));
    drop(dir);
}
