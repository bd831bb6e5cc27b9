//! `exec` into created and running containers (runc's exec contract).

use mini_tests::{last_json, unique, Bundle, Runtime};
use std::time::Duration;

fn running(rt: &Runtime) -> (Bundle, String) {
    let b = Bundle::new(&["/bin/probe", "sleep", "60"]);
    let id = unique("exec");
    rt.ok(&[
        "run",
        "--detach",
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ]);
    rt.wait_status(&id, "running", Duration::from_secs(10));
    (b, id)
}

#[test]
fn exec_joins_every_namespace_and_the_cgroup_of_the_container() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt);
    let init = rt.state(&id)["pid"].as_i64().unwrap();
    let out = rt.cmd(&["exec", &id, "/bin/probe", "report"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = last_json(&out);
    for ns in ["mnt", "net", "ipc", "uts", "pid", "cgroup"] {
        let theirs = mini_tests::ns_inode(&format!("/proc/{init}/ns/{ns}"));
        assert_eq!(
            r["namespaces"][ns].as_u64().unwrap(),
            theirs,
            "{ns} namespace"
        );
    }
    assert_ne!(r["pid"], 1, "the exec'd process is not the init");
    assert_eq!(r["hostname"], "mini-run");
}

#[test]
fn exec_exit_status_propagates() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt);
    let out = rt.cmd(&["exec", &id, "sh", "-c", "exit 42"]);
    assert_eq!(out.status.code(), Some(42));
}

#[test]
fn exec_applies_user_env_cwd_and_capability_flags() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt);
    let out = rt.cmd(&[
        "exec",
        "--user",
        "1000:1000",
        "--additional-gids",
        "2000",
        "--env",
        "EXTRA=1",
        "--cwd",
        "/tmp",
        "--cap",
        "CAP_SYS_PTRACE",
        "--no-new-privs",
        &id,
        "/bin/probe",
        "report",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = last_json(&out);
    assert_eq!(r["uid"]["effective"], 1000);
    assert_eq!(r["gid"]["effective"], 1000);
    assert_eq!(r["groups"], serde_json::json!([2000]));
    assert_eq!(r["cwd"], "/tmp");
    assert_eq!(r["no_new_privs"], true);
    let env: Vec<&str> = r["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"EXTRA=1"), "{env:?}");
    assert!(
        env.iter().any(|e| e.starts_with("PATH=")),
        "the container's env is kept: {env:?}"
    );
    let bounding = r["caps"]["bounding"].as_array().unwrap();
    assert!(bounding.contains(&"cap_sys_ptrace".into()), "{bounding:?}");
}

/// `exec --env NAME=value` replaces the container's value of NAME (where it stood) and adds
/// new names after it, as runc does; before, the spec's value came first and won.
#[test]
fn exec_env_overrides_the_containers_value() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt);
    let out = rt.cmd(&[
        "exec",
        "--env",
        "PATH=/bin",
        "--env",
        "NEW=1",
        &id,
        "/bin/probe",
        "report",
    ]);
    let r = last_json(&out);
    let env: Vec<&str> = r["env"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&out.stderr)))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let path: Vec<&&str> = env.iter().filter(|e| e.starts_with("PATH=")).collect();
    assert_eq!(path, [&"PATH=/bin"], "{env:?}");
    assert_eq!(env.last(), Some(&"NEW=1"), "{env:?}");
}

/// A `--process` file may leave out `user`: the process runs as uid 0, gid 0, as with runc.
#[test]
fn exec_process_file_without_user_runs_as_root() {
    let rt = Runtime::new();
    let (b, id) = running(&rt);
    let pfile = b.path().join("process.json");
    let process = serde_json::json!({"args": ["/bin/probe", "report"], "cwd": "/"});
    std::fs::write(&pfile, process.to_string()).unwrap();
    let out = rt.cmd(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = last_json(&out);
    assert_eq!(r["uid"]["effective"], 0);
    assert_eq!(r["gid"]["effective"], 0);
}

#[test]
fn exec_leaks_no_runtime_descriptor() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt);
    let out = rt.cmd(&["exec", &id, "/bin/probe", "report"]);
    let r = last_json(&out);
    let fds: Vec<i64> = r["fds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fd"].as_i64().unwrap())
        .collect();
    assert_eq!(fds, vec![0, 1, 2], "{}", r["fds"]);
}

#[test]
fn exec_with_a_process_file_and_detach_writes_the_pid_file() {
    let rt = Runtime::new();
    let (b, id) = running(&rt);
    let process = serde_json::json!({
        "args": ["/bin/probe", "sleep", "30"], "cwd": "/", "user": {"uid": 0, "gid": 0},
        "env": ["PATH=/bin"]
    });
    let pfile = b.path().join("process.json");
    std::fs::write(&pfile, process.to_string()).unwrap();
    let pid_file = b.path().join("exec.pid");
    rt.ok(&[
        "exec",
        "--detach",
        "--process",
        pfile.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ]);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("probe"),
        "pid file names the process"
    );
    let init = rt.state(&id)["pid"].as_i64().unwrap();
    let cgroups = |pid: i64| std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(
        cgroups(pid as i64),
        cgroups(init),
        "the exec'd process shares the init's cgroups"
    );
}

#[test]
fn exec_into_a_created_container_works_and_into_a_stopped_one_fails() {
    let rt = Runtime::new();
    let b = Bundle::new(&["/bin/true"]);
    let id = unique("exec-created");
    let out = rt.create(&b, &id);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = rt.cmd(&["exec", &id, "sh", "-c", "exit 3"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped", Duration::from_secs(10));
    let out = rt.cmd(&["exec", &id, "true"]);
    assert!(!out.status.success());
    let msg = mini_tests::stderr_line(&out);
    assert!(msg.contains("stopped"), "{msg}");
}

#[test]
fn exec_of_a_missing_command_fails_with_one_line() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt);
    let out = rt.cmd(&["exec", &id, "no-such-command"]);
    assert!(!out.status.success());
    let msg = mini_tests::stderr_line(&out);
    assert!(msg.contains("no-such-command"), "{msg}");
}

/// `exec --cgroup` with a path leading out of the container's cgroup (`..` in any form) is
/// refused with one line and starts nothing; a sub-cgroup inside it is joined (runc's
/// `PATH` and `CONTROLLER:PATH` forms).
#[test]
fn exec_cgroup_must_stay_inside_the_containers_cgroup() {
    let rt = Runtime::new();
    // A parent of the test's own, so that no other process joins it meanwhile (without a
    // cgroupsPath the parent is the runtime's own cgroup, where the tests run).
    let id = unique("exec-cg");
    let b = Bundle::new(&["/bin/probe", "sleep", "60"])
        .edit(|c| c["linux"]["cgroupsPath"] = format!("/{}/{id}", unique("mini-tests-cg")).into());
    rt.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
    rt.wait_status(&id, "running", Duration::from_secs(10));
    let init = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let v2 = mini_tests::cgroup_version() == mini_cgroups::Version::V2;
    let memory = mini_tests::cgroup_dir(init, "memory");
    let parent = memory.parent().unwrap().to_path_buf();
    let procs = if v2 { "cgroup.procs" } else { "tasks" };
    let in_parent = || std::fs::read_to_string(parent.join(procs)).unwrap();
    let before = in_parent();
    let inner = memory.join("inner");
    std::fs::create_dir(&inner).unwrap();
    let mut escapes = vec!["..", "../", "inner/../..", "/../..", "./inner/../../x"];
    if !v2 {
        escapes.push("memory:..");
    }
    for arg in escapes {
        let out = rt.cmd(&["exec", "--cgroup", arg, &id, "/bin/probe", "sleep", "0"]);
        mini_tests::assert_fails_with(&out, &["--cgroup", "inside the container's cgroup"]);
    }
    assert_eq!(in_parent(), before, "no process joined the parent cgroup");
    let inside = if v2 { "inner" } else { "memory:inner" };
    let out = rt.cmd(&["exec", "--cgroup", inside, &id, "cat", "/proc/self/cgroup"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let _ = std::fs::remove_dir(&inner);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| {
            if v2 {
                l.starts_with("0::")
            } else {
                l.contains(":memory:")
            }
        })
        .unwrap_or_else(|| panic!("no memory line in {text}"));
    assert!(line.ends_with("/inner"), "joined the sub-cgroup: {line}");
    let missing = rt.cmd(&["exec", "--cgroup", "nowhere", &id, "true"]);
    mini_tests::assert_fails_with(&missing, &["--cgroup", "no such cgroup"]);
}
