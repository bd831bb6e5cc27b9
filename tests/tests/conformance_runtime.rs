//! Conformance with the runtime spec's runtime.md (state, lifecycle, errors, operations) and
//! runtime-linux.md, one test per statement that applies to Linux. Each test's doc comment
//! names the statement (short) and its section; tests/conformance/runtime.md maps every
//! statement of those documents to its test, to an older test that checks it, or to the
//! reason it is not met.

use mini_tests::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// `bundle` with the host directory `dir` mounted read-write at /tmp, where the container's
/// process and its in-container hooks leave files the test reads.
fn with_tmp(b: Bundle, dir: &TempDir) -> Bundle {
    b.with_bind(dir.path(), "/tmp")
}

/// A hook running `script` with the host's (or, for startContainer, the container's) sh.
fn sh_hook(script: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", script]})
}

/// The text of `dir/name`, or "" if it does not exist.
fn read(dir: &TempDir, name: &str) -> String {
    std::fs::read_to_string(dir.path().join(name)).unwrap_or_default()
}

fn pid_of(rt: &Runtime, id: &str) -> i64 {
    rt.state(id)["pid"].as_i64().expect("pid")
}

// ---------------------------------------------------------------------------------------------
// State (runtime.md#state)

/// runtime.md#state: the state includes ociVersion, id, status, pid (while created or running)
/// and bundle, REQUIRED, serialized as the state schema's JSON; annotations MAY be absent or
/// an empty map when the config has none.
#[test]
fn state_has_the_required_properties_with_their_types() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "sleep", "60"]);
    let id = unique("st-props");
    rt.create_ok(&b, &id);
    let st = rt.state(&id);
    let version = st["ociVersion"].as_str().expect("ociVersion is a string");
    assert_eq!(
        version.split(['-', '+']).next().unwrap().split('.').count(),
        3,
        "ociVersion is SemVer: {version}"
    );
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["status"], "created");
    assert!(st["pid"].as_i64().is_some_and(|p| p > 0), "{st}");
    let bundle = st["bundle"].as_str().expect("bundle is a string");
    assert!(Path::new(bundle).is_absolute(), "{bundle}");
    assert!(
        st.get("annotations").is_none_or(|a| a == &json!({})),
        "no annotations in the config: {st}"
    );
    rt.ok(&["start", &id]);
    assert!(rt.state(&id)["pid"].as_i64().is_some_and(|p| p > 0));
}

/// runtime.md#state: pid is the ID of the container process as seen by the host.
#[test]
fn state_pid_is_the_container_process_as_the_host_sees_it() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "sleep", "60"]);
    let id = unique("st-pid");
    rt.create_ok(&b, &id);
    let pid = pid_of(&rt, &id);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("host /proc");
    let nspid = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .expect("NSpid")
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(
        nspid,
        [pid.to_string().as_str(), "1"],
        "host pid, then pid 1 in the container"
    );
    rt.ok(&["start", &id]);
    assert_eq!(pid_of(&rt, &id), pid);
    assert!(
        wait_until(WAIT, || cmdline(pid) == "probe sleep 60 "),
        "{}",
        cmdline(pid)
    );
}

/// runtime.md#state: bundle is the absolute path to the container's bundle directory (also
/// when `create` was given a relative one).
#[test]
fn state_bundle_is_absolute_for_a_relative_bundle_argument() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "sleep", "60"]);
    let id = unique("st-bundle");
    let name = b.path().file_name().unwrap().to_str().unwrap().to_string();
    let st = rt
        .command(&["create", "--bundle", &name, &id])
        .current_dir(b.path().parent().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn mini-run");
    assert!(st.success());
    let want = std::fs::canonicalize(b.path()).unwrap();
    assert_eq!(rt.state(&id)["bundle"], want.to_str().unwrap());
}

/// runtime.md#state: annotations are the list of annotations associated with the container.
#[test]
fn state_annotations_are_the_configs() {
    let rt = Runtime::new();
    let annotations = json!({"com.example.key": "value", "org.example.empty": ""});
    let a = annotations.clone();
    let b = Bundle::new(&["probe", "sleep", "60"]).edit(|c| c["annotations"] = a);
    let id = unique("st-ann");
    rt.create_ok(&b, &id);
    assert_eq!(rt.state(&id)["annotations"], annotations);
}

/// runtime.md#state: for hooks executed in the container namespace (createContainer,
/// startContainer), pid is the container process as the container sees it; for those in the
/// runtime namespace, as the runtime sees it.
#[test]
fn hooks_get_the_pid_of_their_namespace() {
    let rt = Runtime::new();
    let dir = TempDir::new("hook-pid");
    let host = |name: &str| sh_hook(&format!("cat > {}", dir.path().join(name).display()));
    let b = with_tmp(Bundle::new(&["true"]), &dir).edit(|c| {
        c["hooks"] = json!({
            "createRuntime": [host("createRuntime")],
            "createContainer": [host("createContainer")],
            "startContainer": [sh_hook("cat > /tmp/startContainer")],
        });
    });
    let id = unique("st-hookpid");
    rt.create_ok(&b, &id);
    let pid = pid_of(&rt, &id);
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped", WAIT);
    let seen = |name: &str| -> Value {
        serde_json::from_str(&read(&dir, name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    assert_eq!(seen("createRuntime")["pid"], pid);
    assert_eq!(seen("createContainer")["pid"], 1);
    assert_eq!(seen("startContainer")["pid"], 1);
}

// ---------------------------------------------------------------------------------------------
// Lifecycle (runtime.md#lifecycle)

/// runtime.md#lifecycle step 2 (and #create): the user-specified program MUST NOT be run at
/// create; `start` runs it.
#[test]
fn create_does_not_run_the_process_and_start_does() {
    let rt = Runtime::new();
    let dir = TempDir::new("ran");
    let b = with_tmp(
        Bundle::new(&["sh", "-c", "echo ran >> /tmp/ran; exec probe sleep 60"]),
        &dir,
    );
    let id = unique("lc-norun");
    rt.create_ok(&b, &id);
    assert_eq!(rt.status(&id), "created");
    assert_eq!(read(&dir, "ran"), "", "the process ran at create");
    rt.ok(&["start", &id]);
    assert!(wait_until(WAIT, || read(&dir, "ran") == "ran\n"));
}

/// runtime.md#lifecycle step 2 and #create: the resources the config asks for MUST be created
/// at create (every property but process.args is applied): namespaces, mounts, hostname,
/// cgroup and rlimits are in place before `start`.
#[test]
fn create_applies_every_property_before_start() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "sleep", "60"]).edit(|c| {
        c["hostname"] = json!("made-at-create");
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/tmp", "type": "tmpfs", "source": "made-at-create", "options": ["size=1m"]
        }));
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 555, "hard": 666}]);
    });
    let id = unique("lc-applied");
    rt.create_ok(&b, &id);
    let pid = pid_of(&rt, &id);
    assert_ne!(
        ns_inode(&format!("/proc/{pid}/ns/net")),
        host_ns_inode("net")
    );
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    assert!(
        mounts
            .lines()
            .any(|l| l.contains(" /tmp ") && l.contains("tmpfs made-at-create")),
        "{mounts}"
    );
    let out = Command::new("nsenter")
        .args(["--target", &pid.to_string(), "--uts", "hostname"])
        .output()
        .expect("nsenter");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "made-at-create"
    );
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cgroup.contains(&id), "not in its cgroup yet: {cgroup}");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let nofile: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(&nofile[3..5], ["555", "666"], "{limits}");
}

/// runtime.md#lifecycle step 2 and #create: any updates to config.json after create MUST NOT
/// affect the container.
#[test]
fn config_changes_after_create_do_not_affect_the_container() {
    let rt = Runtime::new();
    let dir = TempDir::new("cfg-change");
    let mut b = with_tmp(
        Bundle::new(&["sh", "-c", "hostname > /tmp/out"]).edit(|c| {
            c["hostname"] = json!("before");
        }),
        &dir,
    );
    let id = unique("lc-cfg");
    rt.create_ok(&b, &id);
    b.config["hostname"] = json!("after");
    b.config["process"]["args"] = json!(["sh", "-c", "echo changed > /tmp/out"]);
    b.write();
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped", WAIT);
    assert_eq!(read(&dir, "out"), "before\n");
}

/// runtime.md#lifecycle step 2: if the runtime is unable to create the environment the config
/// specifies, it MUST generate an error (and, runtime.md#errors, leave nothing behind).
#[test]
fn an_environment_that_cannot_be_made_fails_create_and_leaves_nothing() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "sleep", "60"]).edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=lots"]
        }));
    });
    let id = unique("lc-nomount");
    assert_fails_with(&rt.create(&b, &id), &["/tmp"]);
    assert_nothing_left(&rt, &id, b.path());
}

/// runtime.md#lifecycle steps 3-5: the prestart, createRuntime and createContainer hooks MUST
/// be invoked during create, in that order, and no later hook yet.
#[test]
fn create_invokes_the_prestart_create_runtime_and_create_container_hooks() {
    let rt = Runtime::new();
    let dir = TempDir::new("create-hooks");
    let order = dir.path().join("order");
    let log = |name: &str| sh_hook(&format!("echo {name} >> {}", order.display()));
    let b = Bundle::new(&["probe", "sleep", "60"]).edit(|c| {
        c["hooks"] = json!({
            "prestart": [log("prestart")],
            "createRuntime": [log("createRuntime")],
            "createContainer": [log("createContainer")],
            "poststart": [log("poststart")],
            "poststop": [log("poststop")],
        });
    });
    let id = unique("lc-hooks");
    rt.create_ok(&b, &id);
    assert_eq!(
        read(&dir, "order"),
        "prestart\ncreateRuntime\ncreateContainer\n"
    );
}

/// Creates a container whose `kind` hook fails and whose poststop hook leaves a marker:
/// create must fail naming the hook, the process must not have run, the poststop hook must
/// have run (the lifecycle continues at step 12), and nothing may be left.
fn failing_create_hook(kind: &str) {
    let rt = Runtime::new();
    let dir = TempDir::new("hook-fail");
    let marker = dir.path().join("poststop");
    let b = with_tmp(Bundle::new(&["sh", "-c", "echo ran > /tmp/ran"]), &dir).edit(|c| {
        c["hooks"] = json!({
            kind: [sh_hook("exit 1")],
            "poststop": [sh_hook(&format!("cat > {}", marker.display()))],
        });
    });
    let id = unique("lc-hookfail");
    let out = rt.create(&b, &id);
    assert!(!out.status.success(), "create succeeded despite {kind}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(kind));
    assert_eq!(read(&dir, "ran"), "");
    let state: Value = serde_json::from_str(&read(&dir, "poststop")).expect("poststop ran");
    assert_eq!(state["id"], id.as_str());
    assert_nothing_left(&rt, &id, b.path());
}

/// runtime.md#lifecycle step 3: if a prestart hook fails, the runtime MUST generate an error,
/// stop the container and continue the lifecycle at step 12 (destroy, then poststop hooks).
#[test]
fn failing_prestart_hook_fails_create_and_ends_the_lifecycle() {
    failing_create_hook("prestart");
}

/// runtime.md#lifecycle step 4: a failing createRuntime hook: error, stop, continue at step 12.
#[test]
fn failing_create_runtime_hook_fails_create_and_ends_the_lifecycle() {
    failing_create_hook("createRuntime");
}

/// runtime.md#lifecycle step 5: a failing createContainer hook: error, stop, continue at step 12.
#[test]
fn failing_create_container_hook_fails_create_and_ends_the_lifecycle() {
    failing_create_hook("createContainer");
}

/// runtime.md#lifecycle step 7: the startContainer hooks MUST be invoked by `start`, before
/// the user-specified program runs (step 8).
#[test]
fn start_invokes_start_container_hooks_before_the_process() {
    let rt = Runtime::new();
    let dir = TempDir::new("sc-hooks");
    let b = with_tmp(
        Bundle::new(&["sh", "-c", "echo process >> /tmp/order"]),
        &dir,
    )
    .edit(|c| {
        c["hooks"] = json!({"startContainer": [sh_hook(
            "cat > /dev/null; test -e /tmp/order && echo late >> /tmp/order || echo startContainer >> /tmp/order"
        )]});
    });
    let id = unique("lc-sc");
    rt.create_ok(&b, &id);
    assert_eq!(read(&dir, "order"), "", "startContainer ran at create");
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped", WAIT);
    assert_eq!(read(&dir, "order"), "startContainer\nprocess\n");
}

/// runtime.md#lifecycle step 7: if a startContainer hook fails, the runtime MUST generate an
/// error, stop the container and continue at step 12 (`delete` then runs the poststop hooks).
#[test]
fn failing_start_container_hook_fails_start_and_stops_the_container() {
    let rt = Runtime::new();
    let dir = TempDir::new("sc-fail");
    let marker = dir.path().join("poststop");
    let b = with_tmp(Bundle::new(&["sh", "-c", "echo ran > /tmp/ran"]), &dir).edit(|c| {
        c["hooks"] = json!({
            "startContainer": [sh_hook("exit 3")],
            "poststop": [sh_hook(&format!("cat > {}", marker.display()))],
        });
    });
    let id = unique("lc-scfail");
    rt.create_ok(&b, &id);
    assert_fails_with(&rt.cmd(&["start", &id]), &["startContainer", &id]);
    rt.wait_status(&id, "stopped", WAIT);
    assert_eq!(read(&dir, "ran"), "", "the process ran");
    rt.ok(&["delete", &id]);
    assert!(marker.exists(), "poststop hooks did not run");
    assert_nothing_left(&rt, &id, b.path());
}

/// runtime.md#lifecycle step 9 and config.md#poststart: the poststart hooks MUST be invoked
/// after the user-specified process is executed but before `start` returns.
#[test]
fn poststart_hooks_run_after_the_process_executed_and_before_start_returns() {
    let rt = Runtime::new();
    let dir = TempDir::new("poststart");
    let seen = dir.path().join("cmdline");
    let b = Bundle::new(&["probe", "sleep", "60"]).edit(|c| {
        c["hooks"] = json!({"poststart": [sh_hook(&format!(
            "pid=$(sed 's/.*\"pid\":\\([0-9]*\\).*/\\1/'); tr '\\0' ' ' < /proc/$pid/cmdline > {}",
            seen.display()
        ))]});
    });
    let id = unique("lc-poststart");
    rt.create_ok(&b, &id);
    assert!(!seen.exists(), "poststart ran at create");
    rt.ok(&["start", &id]);
    assert_eq!(
        std::fs::read_to_string(&seen).expect("poststart ran before start returned"),
        "probe sleep 60 ",
        "the process had not been executed when poststart ran"
    );
}

/// runtime.md#lifecycle step 9 (spec 1.0.2, which mini-run implements): if a poststart hook
/// fails, the runtime MUST log a warning, and the remaining hooks and lifecycle continue.
#[test]
fn failing_poststart_hook_is_a_warning_and_the_rest_continues() {
    let rt = Runtime::new();
    let dir = TempDir::new("poststart-fail");
    let marker = dir.path().join("second");
    let b = Bundle::new(&["probe", "sleep", "60"]).edit(|c| {
        c["hooks"] = json!({"poststart": [
            sh_hook("exit 1"),
            sh_hook(&format!("cat > {}", marker.display())),
        ]});
    });
    let id = unique("lc-psfail");
    rt.create_ok(&b, &id);
    let out = rt.cmd(&["start", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning"));
    assert!(marker.exists(), "the second poststart hook did not run");
    assert_eq!(rt.status(&id), "running");
}

/// runtime.md#lifecycle step 10 and #kill: when the container process stops, for whatever
/// reason, the status MUST be stopped.
#[test]
fn a_process_that_exits_leaves_the_container_stopped() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "exit", "3"]);
    let id = unique("lc-exit");
    rt.create_ok(&b, &id);
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped", WAIT);
}

/// runtime.md#lifecycle step 12 and #delete: delete MUST destroy the container by undoing
/// what create did: no process, cgroup, mount or state is left.
#[test]
fn delete_undoes_everything_create_did() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "exit", "0"]);
    let id = unique("lc-undo");
    rt.create_ok(&b, &id);
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped", WAIT);
    rt.ok(&["delete", &id]);
    assert_nothing_left(&rt, &id, b.path());
}

/// runtime.md#lifecycle step 13 and config.md#poststop: the poststop hooks MUST be invoked
/// after the container is deleted (`state` no longer knows it) but before `delete` returns.
#[test]
fn poststop_hooks_run_after_the_container_is_deleted() {
    let rt = Runtime::new();
    let dir = TempDir::new("poststop");
    let seen = dir.path().join("state");
    let b = Bundle::new(&["probe", "exit", "0"]).edit(|c| {
        c["hooks"] = json!({"poststop": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!(
                "id=$(sed 's/.*\"id\":\"\\([^\"]*\\)\".*/\\1/'); {} --root {} state $id > {} 2>&1; echo rc=$? >> {}",
                mini_run_bin().display(), rt.root().display(), seen.display(), seen.display()
            )],
            "timeout": 10
        }]});
    });
    let id = unique("lc-poststop");
    rt.create_ok(&b, &id);
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped", WAIT);
    rt.ok(&["delete", &id]);
    let text = std::fs::read_to_string(&seen).expect("poststop ran before delete returned");
    assert!(
        text.contains("does not exist") && text.contains("rc=1"),
        "the container still existed when poststop ran: {text}"
    );
}

/// runtime.md#lifecycle step 13: if a poststop hook fails, the runtime MUST log a warning, and
/// the remaining hooks and the lifecycle continue as if it had succeeded.
#[test]
fn failing_poststop_hook_is_a_warning_and_the_rest_continues() {
    let rt = Runtime::new();
    let dir = TempDir::new("poststop-fail");
    let marker = dir.path().join("second");
    let b = Bundle::new(&["probe", "exit", "0"]).edit(|c| {
        c["hooks"] = json!({"poststop": [
            sh_hook("exit 1"),
            sh_hook(&format!("cat > {}", marker.display())),
        ]});
    });
    let id = unique("lc-pstopfail");
    rt.create_ok(&b, &id);
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped", WAIT);
    let out = rt.cmd(&["delete", &id]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning"));
    assert!(marker.exists(), "the second poststop hook did not run");
    assert_nothing_left(&rt, &id, b.path());
}

// ---------------------------------------------------------------------------------------------
// Operations (runtime.md#operations)

/// Asserts that `mini-run OP` without a container id fails with a one-line message.
fn needs_an_id(op: &str) {
    let rt = Runtime::new();
    let out = rt.cmd(&[op]);
    assert!(!out.status.success(), "{op} without an id succeeded");
    stderr_line(&out);
    assert_eq!(rt.state_dir_count(), 0);
}

/// runtime.md#query-state: this operation MUST generate an error if it is not provided the ID.
#[test]
fn state_without_an_id_is_an_error() {
    needs_an_id("state");
}

/// runtime.md#create: MUST generate an error if it is not provided the container ID.
#[test]
fn create_without_an_id_is_an_error() {
    needs_an_id("create");
}

/// runtime.md#start: MUST generate an error if it is not provided the container ID.
#[test]
fn start_without_an_id_is_an_error() {
    needs_an_id("start");
}

/// runtime.md#kill: MUST generate an error if it is not provided the container ID.
#[test]
fn kill_without_an_id_is_an_error() {
    needs_an_id("kill");
}

/// runtime.md#delete: MUST generate an error if it is not provided the container ID.
#[test]
fn delete_without_an_id_is_an_error() {
    needs_an_id("delete");
}

/// runtime.md#create: MUST generate an error if it is not provided a path to the bundle (the
/// command line defaults it to the working directory, as runc's does: one without a bundle
/// fails).
#[test]
fn create_without_a_bundle_is_an_error() {
    let rt = Runtime::new();
    let empty = TempDir::new("not-a-bundle");
    let id = unique("op-nobundle");
    let out = rt
        .command(&["create", &id])
        .current_dir(empty.path())
        .stdout(Stdio::null())
        .output()
        .expect("spawn mini-run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("config.json"));
    assert!(!rt.has_state_dir(&id));
}

/// runtime.md#start: attempting to start a container that is not created (running, then
/// stopped) MUST have no effect on the container and MUST generate an error.
#[test]
fn start_of_a_container_that_is_not_created_is_an_error_without_effect() {
    let rt = Runtime::new();
    let dir = TempDir::new("start-twice");
    let b = with_tmp(
        Bundle::new(&["sh", "-c", "echo run >> /tmp/runs; exec probe sleep 60"]),
        &dir,
    );
    let id = unique("op-start2");
    rt.create_ok(&b, &id);
    rt.ok(&["start", &id]);
    assert!(wait_until(WAIT, || read(&dir, "runs") == "run\n"));
    let pid = pid_of(&rt, &id);
    assert_fails_with(&rt.cmd(&["start", &id]), &[&id, "running"]);
    assert_eq!(rt.status(&id), "running");
    assert_eq!(pid_of(&rt, &id), pid);
    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped", WAIT);
    assert_fails_with(&rt.cmd(&["start", &id]), &[&id, "stopped"]);
    assert_eq!(rt.status(&id), "stopped");
    assert_eq!(read(&dir, "runs"), "run\n", "the process ran again");
}

/// runtime.md#kill: this operation MUST send the specified signal to the container process.
#[test]
fn kill_sends_the_named_signal_to_the_container_process() {
    let rt = Runtime::new();
    let dir = TempDir::new("kill-usr1");
    let b = with_tmp(
        Bundle::new(&[
            "sh",
            "-c",
            "trap 'echo USR1 > /tmp/got; exit 0' USR1; touch /tmp/ready; while :; do probe sleep 0.05; done",
        ]),
        &dir,
    );
    let id = unique("op-kill");
    rt.create_ok(&b, &id);
    rt.ok(&["start", &id]);
    assert!(wait_until(WAIT, || dir.path().join("ready").exists()));
    rt.ok(&["kill", &id, "USR1"]);
    assert!(wait_until(WAIT, || read(&dir, "got") == "USR1\n"));
    rt.wait_status(&id, "stopped", WAIT);
}

/// runtime.md#kill: a created container may be signalled (only one that is neither created nor
/// running is an error); the signal reaches its process: TERM stops it, as it stops runc's.
#[test]
fn kill_of_a_created_container_signals_it() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "sleep", "60"]);
    for sig in ["TERM", "KILL"] {
        let id = unique("op-killcreated");
        rt.create_ok(&b, &id);
        rt.ok(&["kill", &id, sig]);
        rt.wait_status(&id, "stopped", WAIT);
        rt.ok(&["delete", &id]);
    }
}

/// runtime.md#delete: resources associated with the container but not created by it MUST NOT
/// be deleted: a joined network namespace and a bind-mounted host directory survive delete.
#[test]
fn delete_keeps_what_the_container_did_not_create() {
    let rt = Runtime::new();
    let holder = unshare_holder(&["--net"]);
    let netns = format!("/proc/{}/ns/net", holder.pid());
    let inode = ns_inode(&netns);
    let shared = TempDir::new("not-ours");
    std::fs::write(shared.path().join("keep"), "kept").unwrap();
    let ns = netns.clone();
    let b = with_tmp(Bundle::new(&["probe", "report"]), &shared).edit(|c| {
        for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "network" {
                n["path"] = json!(ns);
            }
        }
    });
    let id = unique("op-keep");
    rt.create_ok(&b, &id);
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped", WAIT);
    rt.ok(&["delete", &id]);
    assert_nothing_left(&rt, &id, b.path());
    assert_eq!(ns_inode(&netns), inode, "the joined namespace is gone");
    assert_eq!(
        std::fs::read_to_string(shared.path().join("keep")).unwrap(),
        "kept"
    );
}
