//! The OCI lifecycle through the CLI: create, start, state, kill, delete, run, list, spec, and
//! the global flags (--log, --version).

use mini_tests::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn sleeper() -> Bundle {
    Bundle::new(&["probe", "sleep", "60"])
}

/// Whether `pid` is a live (non-zombie) process.
fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit_once(") ").map_or("", |(_, r)| r);
            !state.starts_with('Z') && !state.starts_with('X')
        })
        .unwrap_or(false)
}

/// An RFC 3339 UTC timestamp like `2024-01-02T03:04:05.123456789Z`.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && s.ends_with('Z')
        && s[..4].parse::<u32>().is_ok_and(|y| y >= 2000)
}

fn canonical(p: &Path) -> String {
    std::fs::canonicalize(p)
        .expect("canonicalize")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn create_start_kill_delete_walks_through_created_running_stopped() {
    let rt = Runtime::new();
    let b = sleeper().edit(|c| {
        c["annotations"] = json!({"org.example.purpose": "lifecycle", "k2": "v2"});
    });
    let id = unique("life");
    rt.create_ok(&b, &id);

    let st = rt.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["ociVersion"], b.config["ociVersion"]);
    assert_eq!(st["bundle"], canonical(b.path()).as_str());
    assert_eq!(st["rootfs"], canonical(&fixture_rootfs()).as_str());
    assert_eq!(
        st["annotations"],
        json!({"org.example.purpose": "lifecycle", "k2": "v2"})
    );
    let created = st["created"].as_str().expect("created");
    assert!(is_rfc3339(created), "created is not RFC 3339: {created}");
    let pid = st["pid"].as_i64().expect("pid");
    assert!(pid > 0, "a created container has its init's pid: {st}");
    assert!(alive(pid), "init {pid} should be waiting for start");
    assert!(
        !cmdline(pid).contains("probe"),
        "the user's process must not run before start: {}",
        cmdline(pid)
    );

    rt.ok(&["start", &id]);
    let st = rt.state(&id);
    assert_eq!(st["status"], "running");
    assert_eq!(st["pid"].as_i64(), Some(pid), "start keeps the pid");
    assert!(
        wait_until(WAIT, || cmdline(pid).starts_with("probe sleep 60")),
        "the init should have executed the process: {}",
        cmdline(pid)
    );

    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped", WAIT);
    assert_eq!(rt.state(&id)["pid"], 0, "a stopped container reports pid 0");

    rt.ok(&["delete", &id]);
    assert!(!rt.has_state_dir(&id));
    assert!(!alive(pid));
    assert_fails_with(&rt.cmd(&["state", &id]), &[&id, "does not exist"]);
}

#[test]
fn kill_accepts_signal_names_with_and_without_sig_and_numbers() {
    let rt = Runtime::new();
    let b = sleeper();
    for sig in ["SIGKILL", "9", "KILL", "kill"] {
        let id = unique("killsig");
        rt.create_ok(&b, &id);
        rt.ok(&["start", &id]);
        assert_eq!(rt.status(&id), "running");
        rt.ok(&["kill", &id, sig]);
        rt.wait_status(&id, "stopped", WAIT);
        rt.ok(&["delete", &id]);
    }
}

#[test]
fn kill_sends_term_by_default_and_by_name() {
    // A PID namespace's init only receives signals it handles, so the process traps TERM.
    let rt = Runtime::new();
    let b = Bundle::new(&[
        "sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 0.05; done",
    ]);
    for args in [&["TERM"][..], &[][..]] {
        let id = unique("term");
        rt.create_ok(&b, &id);
        rt.ok(&["start", &id]);
        let pid = rt.state(&id)["pid"].as_i64().expect("pid");
        assert!(
            wait_until(WAIT, || catches(pid, 15)),
            "sh never installed its TERM trap"
        );
        let mut cmd = vec!["kill", id.as_str()];
        cmd.extend_from_slice(args);
        rt.ok(&cmd);
        rt.wait_status(&id, "stopped", WAIT);
        rt.ok(&["delete", &id]);
    }
}

#[test]
fn run_exits_with_the_container_process_status() {
    let rt = Runtime::new();
    let id = unique("exit42");
    let out = rt.run(&Bundle::new(&["probe", "exit", "42"]), &id);
    assert_eq!(out.status.code(), Some(42), "{out:?}");
    assert!(
        !rt.has_state_dir(&id),
        "a foreground run deletes its container"
    );
    let out = rt.run(&Bundle::new(&["probe", "exit", "0"]), &unique("exit0"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn run_of_a_container_killed_by_a_signal_exits_128_plus_the_signal() {
    let rt = Runtime::new();
    let b = sleeper();
    let id = unique("runkill");
    let run = rt.spawn(&["run", "--bundle", b.path_str(), &id]);
    // The foreground runtime is the parent of the container's init.
    let pid = child_running(run.pid(), "probe sleep 60").expect("container process");
    // SAFETY: kill(2) on the pid of a live process found just above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let out = run.wait_timeout(WAIT).expect("run did not return");
    assert_eq!(out.status.code(), Some(128 + 9), "{out:?}");
    assert!(
        !rt.has_state_dir(&id),
        "a foreground run deletes its container"
    );
    assert!(cgroups_mentioning(&id).is_empty());
}

#[test]
fn foreground_run_forwards_signals_to_the_container() {
    // Without a PID namespace the process is not an init and dies of an unhandled TERM.
    let rt = Runtime::new();
    let b = sleeper().edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid");
    });
    let id = unique("fwd");
    let run = rt.spawn(&["run", "--bundle", b.path_str(), &id]);
    child_running(run.pid(), "probe sleep 60").expect("container process");
    // SAFETY: kill(2) on our own unreaped child.
    assert_eq!(unsafe { libc::kill(run.pid() as i32, libc::SIGTERM) }, 0);
    let out = run.wait_timeout(WAIT).expect("run did not return");
    assert_eq!(out.status.code(), Some(128 + 15), "{out:?}");
    assert!(!rt.has_state_dir(&id));
}

#[test]
fn state_and_kill_reach_a_container_of_a_foreground_run() {
    let rt = Runtime::new();
    let b = sleeper();
    let id = unique("runstate");
    let run = rt.spawn(&["run", "--bundle", b.path_str(), &id]);
    child_running(run.pid(), "probe sleep 60").expect("container process");
    let out = rt
        .cmd_timeout(&["state", &id], Duration::from_secs(5))
        .expect("state must not block on a foreground run");
    let st: Value = serde_json::from_slice(&out.stdout).expect("state JSON");
    assert_eq!(st["status"], "running");
    rt.cmd_timeout(&["kill", &id, "KILL"], Duration::from_secs(5))
        .expect("kill must not block on a foreground run");
    let out = run.wait_timeout(WAIT).expect("run did not return");
    assert_eq!(out.status.code(), Some(137), "{out:?}");
}

#[test]
fn run_detach_returns_while_the_container_runs() {
    let rt = Runtime::new();
    let b = sleeper();
    let id = unique("detach");
    let out = rt
        .cmd_timeout(
            &["run", "--detach", "--bundle", b.path_str(), &id],
            Duration::from_secs(20),
        )
        .expect("run --detach must return at once");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = rt.state(&id);
    assert_eq!(st["status"], "running");
    let pid = st["pid"].as_i64().expect("pid");
    assert!(alive(pid));
    rt.ok(&["delete", "--force", &id]);
    assert!(wait_until(WAIT, || !alive(pid)));
    assert!(!rt.has_state_dir(&id));
}

#[test]
fn list_shows_containers_as_a_table_and_as_json() {
    let rt = Runtime::new();
    assert_eq!(rt.ok(&["list", "--format", "json"]).trim(), "null");
    let b = sleeper();
    let created = unique("listc");
    let running = unique("listr");
    rt.create_ok(&b, &created);
    rt.create_ok(&b, &running);
    rt.ok(&["start", &running]);

    let table = rt.ok(&["list"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        "{table}"
    );
    for (id, status) in [(&created, "created"), (&running, "running")] {
        let row: Vec<&str> = table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("{id} missing from:\n{table}"))
            .split_whitespace()
            .collect();
        assert_eq!(row[1], rt.state(id)["pid"].to_string(), "{table}");
        assert_eq!(row[2], status, "{table}");
        assert_eq!(row[3], canonical(b.path()), "{table}");
    }
    assert_eq!(table.lines().count(), 3, "{table}");

    let list: Value = serde_json::from_str(&rt.ok(&["list", "--format", "json"])).expect("json");
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 2);
    for (id, status) in [(&created, "created"), (&running, "running")] {
        let item = list
            .iter()
            .find(|i| i["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} missing from {list:?}"));
        assert_eq!(item["status"], status);
        assert_eq!(item["pid"], rt.state(id)["pid"]);
    }

    let quiet = rt.ok(&["list", "-q"]);
    let mut ids: Vec<&str> = quiet.lines().collect();
    ids.sort();
    let mut want = [created.as_str(), running.as_str()];
    want.sort();
    assert_eq!(ids, want);
}

#[test]
fn pid_file_holds_the_init_pid() {
    let rt = Runtime::new();
    let b = sleeper();
    let dir = TempDir::new("pidfile");
    let pid_file = dir.path().join("container.pid");
    let id = unique("pidfile");
    rt.ok(&[
        "create",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--bundle",
        b.path_str(),
        &id,
    ]);
    let written = std::fs::read_to_string(&pid_file).expect("pid file written");
    assert_eq!(written.trim(), rt.state(&id)["pid"].to_string());
    assert!(alive(written.trim().parse().expect("a pid")));
}

#[test]
fn flags_may_follow_the_container_id() {
    let rt = Runtime::new();
    let b = sleeper();
    let id = unique("after");
    rt.ok(&["create", &id, "--bundle", b.path_str()]);
    assert_eq!(rt.status(&id), "created");
    rt.ok(&["start", &id]);
    rt.ok(&["delete", &id, "--force"]);
    assert!(!rt.has_state_dir(&id));
}

#[test]
fn bundle_defaults_to_the_current_directory() {
    let rt = Runtime::new();
    let b = sleeper();
    let id = unique("cwd");
    // The created init keeps stdio open: don't wait for pipes to close.
    let status = rt
        .command(&["create", &id])
        .current_dir(b.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("spawn");
    assert!(status.success(), "create without --bundle failed");
    assert_eq!(rt.state(&id)["bundle"], canonical(b.path()).as_str());
}

#[test]
fn delete_of_a_running_container_needs_force() {
    let rt = Runtime::new();
    let b = sleeper();
    let id = unique("delrun");
    rt.create_ok(&b, &id);
    rt.ok(&["start", &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    assert_fails_with(&rt.cmd(&["delete", &id]), &[&id, "running", "--force"]);
    assert_eq!(
        rt.status(&id),
        "running",
        "a refused delete leaves it alone"
    );
    assert!(alive(pid));
    rt.ok(&["delete", "--force", &id]);
    assert!(!alive(pid), "delete --force kills the process");
    assert!(!rt.has_state_dir(&id));
    assert!(cgroups_mentioning(&id).is_empty());
    assert_fails_with(&rt.cmd(&["state", &id]), &["does not exist"]);
}

#[test]
fn delete_of_a_created_container_removes_it() {
    let rt = Runtime::new();
    let id = unique("delcreated");
    rt.create_ok(&sleeper(), &id);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    rt.ok(&["delete", "--force", &id]);
    assert!(!alive(pid));
    assert!(!rt.has_state_dir(&id));
    assert!(cgroups_mentioning(&id).is_empty());
}

#[test]
fn concurrent_state_kill_and_delete_never_corrupt_state() {
    let rt = Runtime::new();
    let b = sleeper();
    let id = unique("race");
    rt.create_ok(&b, &id);
    rt.ok(&["start", &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let ok_errors = ["does not exist", "not running"];
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for t in 0..8 {
            let (rt, id) = (&rt, &id);
            handles.push(s.spawn(move || {
                let mut seen = Vec::new();
                for i in 0..25 {
                    if t == 7 && i == 10 {
                        rt.ok(&["delete", "--force", id]);
                        continue;
                    }
                    let out = if i % 2 == 0 {
                        rt.cmd(&["state", id])
                    } else {
                        rt.cmd(&["kill", id, "USR1"])
                    };
                    if out.status.success() {
                        if i % 2 == 0 {
                            let st: Value =
                                serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                                    panic!(
                                        "state printed broken JSON ({e}): {}",
                                        String::from_utf8_lossy(&out.stdout)
                                    )
                                });
                            assert_eq!(st["id"], id.as_str());
                            seen.push(st["status"].as_str().unwrap().to_string());
                        }
                    } else {
                        let line = stderr_line(&out);
                        assert!(
                            ok_errors.iter().any(|e| line.contains(e)),
                            "unexpected error while racing: {line}"
                        );
                        seen.push("gone".into());
                    }
                }
                seen
            }));
        }
        for h in handles {
            for status in h.join().expect("thread") {
                assert!(
                    ["running", "stopped", "gone"].contains(&status.as_str()),
                    "unexpected status {status}"
                );
            }
        }
    });
    assert!(!alive(pid));
    assert!(!rt.has_state_dir(&id));
    assert!(cgroups_mentioning(&id).is_empty());
    assert_fails_with(&rt.cmd(&["state", &id]), &["does not exist"]);
}

#[test]
fn log_file_in_json_gets_an_error_line() {
    let rt = Runtime::new();
    let dir = TempDir::new("log");
    let log = dir.path().join("mini-run.log");
    let id = unique("nolog");
    let out = rt.cmd(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        &id,
    ]);
    let err = assert_fails_with(&out, &[&id]);
    let text = std::fs::read_to_string(&log).expect("log file written");
    let line: Value = serde_json::from_str(text.lines().last().expect("a line")).expect("json");
    assert_eq!(line["level"], "error");
    let msg = line["msg"].as_str().expect("msg");
    assert!(msg.contains(&id), "{msg}");
    assert!(err.contains(msg), "stderr {err:?} and log {msg:?} differ");
    assert!(line["time"].is_string(), "{line}");
}

#[test]
fn version_prints_the_runtime_and_spec_versions() {
    let rt = Runtime::new();
    for flag in ["--version", "-v"] {
        let out = rt.ok(&[flag]);
        let first = out.lines().next().unwrap_or("");
        assert_eq!(
            first,
            format!("mini-run {}", env!("CARGO_PKG_VERSION")),
            "{out}"
        );
        assert!(out.contains("spec: 1.0"), "{out}");
    }
}

#[test]
fn spec_writes_a_parsable_config_and_refuses_to_overwrite() {
    let rt = Runtime::new();
    let dir = TempDir::new("spec");
    let d = dir.path().to_str().unwrap();
    rt.ok(&["spec", "--bundle", d]);
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path).expect("config.json written");
    let cfg: Value = serde_json::from_str(&text).expect("config.json parses");
    assert_eq!(cfg["process"]["args"], json!(["sh"]));
    assert_eq!(cfg["root"]["path"], "rootfs");
    assert!(cfg["ociVersion"].as_str().unwrap().starts_with("1."));
    let ns: Vec<&str> = cfg["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    for want in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(ns.contains(&want), "{ns:?}");
    }

    std::fs::write(&path, "{\"mine\": true}").unwrap();
    assert_fails_with(&rt.cmd(&["spec", "--bundle", d]), &["already exists"]);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"mine\": true}",
        "spec must not overwrite"
    );
}

#[test]
fn rootless_spec_maps_the_caller_into_a_user_namespace() {
    let rt = Runtime::new();
    let dir = TempDir::new("spec-rootless");
    rt.ok(&[
        "spec",
        "--rootless",
        "--bundle",
        dir.path().to_str().unwrap(),
    ]);
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    let ns = cfg["linux"]["namespaces"].as_array().unwrap();
    assert!(ns.iter().any(|n| n["type"] == "user"), "{ns:?}");
    assert!(!ns.iter().any(|n| n["type"] == "network"), "{ns:?}");
    assert_eq!(cfg["linux"]["uidMappings"][0]["hostID"], 0);
}

#[test]
fn non_root_container_can_be_created_then_started() {
    let rt = Runtime::new();
    let b = sleeper().edit(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    let id = unique("nonroot");
    rt.create_ok(&b, &id);
    assert_eq!(rt.status(&id), "created");
    rt.ok(&["start", &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    assert!(wait_until(WAIT, || cmdline(pid).starts_with("probe sleep")));
    assert_eq!(rt.status(&id), "running");
}

#[test]
fn non_root_container_runs_in_the_foreground() {
    // `run` needs no exec FIFO, so a non-root process starts there.
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "report"])
        .edit(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    assert_eq!(rt.report(&b)["uid"]["effective"], 1000);
}
