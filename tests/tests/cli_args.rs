//! runc's command line where clients depend on its details: signal names and numbers for
//! `kill` (real-time signals, signal 0), and what the commands answer, compared with runc
//! 1.1.5 (installed on the test hosts, `scripts/packages.sh`) where it runs here.

use mini_tests::*;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// runc with a private state root; every container in it is force-deleted on drop.
struct Runc {
    root: TempDir,
}

impl Runc {
    fn new() -> Runc {
        Runc {
            root: TempDir::new("runc-root"),
        }
    }

    fn cmd(&self, args: &[&str]) -> Output {
        let mut c = Command::new("runc");
        c.arg("--root").arg(self.root.path()).args(args);
        captured_output(c.stdin(Stdio::null()))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "runc {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn status(&self, id: &str) -> String {
        let st: serde_json::Value =
            serde_json::from_str(&self.ok(&["state", id])).expect("runc state JSON");
        st["status"].as_str().expect("status").to_string()
    }
}

impl Drop for Runc {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.root.path()) {
            for e in entries.flatten() {
                let _ = self.cmd(&["delete", "--force", &e.file_name().to_string_lossy()]);
            }
        }
    }
}

/// SIGRTMIN+3 as podman and docker pass it for systemd containers (glibc's SIGRTMIN is 34).
const RTMIN_3: u32 = 37;

#[test]
fn kill_delivers_real_time_signals_by_number_and_by_name() {
    // The init of a PID namespace receives only the signals it handles: sh traps SIGRTMIN+3.
    let rt = Runtime::new();
    let b = sh("trap 'exit 0' 37; while :; do sleep 0.05; done");
    for sig in ["37", "SIGRTMIN+3", "RTMIN+3", "rtmin+3", "SIGRTMAX-27"] {
        let id = unique("rtsig");
        rt.create_ok(&b, &id);
        rt.ok(&["start", &id]);
        let pid = rt.state(&id)["pid"].as_i64().expect("pid");
        assert!(
            wait_until(WAIT, || catches(pid, RTMIN_3)),
            "sh never installed its trap"
        );
        rt.ok(&["kill", &id, sig]);
        rt.wait_status(&id, "stopped", WAIT);
        rt.ok(&["delete", &id]);
    }
    let id = unique("rtbad");
    rt.create_ok(&b, &id);
    for bad in ["65", "RTMIN+31", "RTMAX+1", "SIGNOPE"] {
        assert_fails_with(&rt.cmd(&["kill", &id, bad]), &["error:", "signal", bad]);
    }
}

#[test]
fn foreground_run_forwards_real_time_signals() {
    // Without a PID namespace the process is not an init: SIGRTMIN+3's default action ends it.
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "sleep", "60"]).edit(|c| {
        ns_list(c).retain(|n| n["type"] != "pid");
    });
    let id = unique("rtfwd");
    let run = rt.spawn(&["run", "--bundle", b.path_str(), &id]);
    child_running(run.pid(), "probe sleep 60").expect("container process");
    // SAFETY: kill(2) on our own unreaped child.
    assert_eq!(unsafe { libc::kill(run.pid() as i32, RTMIN_3 as i32) }, 0);
    let out = run
        .wait_timeout(WAIT)
        .expect("run did not forward SIGRTMIN+3 to its container");
    assert_eq!(out.status.code(), Some(128 + RTMIN_3 as i32), "{out:?}");
}

/// `args` with each "ID" replaced by `id`.
fn with_id<'a>(args: &[&'a str], id: &'a str) -> Vec<&'a str> {
    args.iter()
        .map(|a| if *a == "ID" { id } else { a })
        .collect()
}

#[test]
fn kill_signal_zero_checks_the_container_as_runc_does() {
    let rt = Runtime::new();
    let runc = Runc::new();
    let b = Bundle::new(&["probe", "sleep", "60"]);
    let (ours, theirs) = (unique("sig0"), unique("sig0-runc"));
    rt.detached(&["run", "--detach", "--bundle", b.path_str(), &ours]);
    runc.ok(&["run", "--detach", "--bundle", b.path_str(), &theirs]);
    for args in [&["kill", "ID", "0"][..], &["kill", "--all", "ID", "0"]] {
        let (a, b) = (with_id(args, &ours), with_id(args, &theirs));
        assert!(
            runc.cmd(&b).status.success(),
            "runc {b:?} on a running container"
        );
        rt.ok(&a);
    }
    rt.ok(&["kill", &ours, "KILL"]);
    runc.ok(&["kill", &theirs, "KILL"]);
    rt.wait_status(&ours, "stopped", WAIT);
    assert!(wait_until(WAIT, || runc.status(&theirs) == "stopped"));
    // A stopped container's init cannot be signalled; --all signals what is left: nothing.
    assert!(!runc.cmd(&["kill", &theirs, "0"]).status.success());
    assert_fails_with(
        &rt.cmd(&["kill", &ours, "0"]),
        &["error:", "container not running"],
    );
    assert!(runc.cmd(&["kill", "--all", &theirs, "0"]).status.success());
    rt.ok(&["kill", "--all", &ours, "0"]);
}

#[test]
fn errors_start_with_error_and_keep_runcs_key_phrases() {
    // containerd's runc shim matches "does not exist" (no such container) and "container not
    // running" (already finished) in the runtime's error; tools that grep stderr want "error".
    let rt = Runtime::new();
    let runc = Runc::new();
    let id = unique("nosuch");
    for args in [
        &["state", "ID"][..],
        &["kill", "ID", "KILL"],
        &["delete", "ID"],
        &["start", "ID"],
        &["pause", "ID"],
        &["ps", "ID"],
        &["update", "--pids-limit", "5", "ID"],
    ] {
        let args = with_id(args, &id);
        let theirs = runc.cmd(&args);
        assert!(
            String::from_utf8_lossy(&theirs.stderr).contains("does not exist"),
            "runc {args:?}: {theirs:?}"
        );
        let line = assert_fails_with(&rt.cmd(&args), &["does not exist"]);
        assert!(line.starts_with("error: "), "{args:?}: {line}");
    }
    let line = assert_fails_with(&rt.cmd(&["kill", "ID", "NOPE"]), &["signal"]);
    assert!(line.starts_with("error: "), "{line}");
    let line = assert_fails_with(
        &rt.cmd(&["state", "--no-such-flag", "ID"]),
        &["no-such-flag"],
    );
    assert!(line.starts_with("error: "), "{line}");
}

#[test]
fn exec_exits_255_for_its_own_failures_as_runc() {
    let rt = Runtime::new();
    let runc = Runc::new();
    let b = Bundle::new(&["probe", "sleep", "60"]);
    let (ours, theirs) = (unique("exec255"), unique("exec255-runc"));
    rt.detached(&["run", "--detach", "--bundle", b.path_str(), &ours]);
    runc.ok(&["run", "--detach", "--bundle", b.path_str(), &theirs]);
    let gone = unique("nosuch");
    for (args, code) in [
        (&["exec", "ID", "sh", "-c", "exit 7"][..], 7),
        (&["exec", "ID", "/no/such/binary"], 255),
        (&["exec", "--cwd", "/no/such/dir", "ID", "true"], 255),
        (&["exec", "--user", "nobody:x", "ID", "true"], 255),
    ] {
        let out = runc.cmd(&with_id(args, &theirs));
        assert_eq!(out.status.code(), Some(code), "runc {args:?}: {out:?}");
        let out = rt.cmd(&with_id(args, &ours));
        assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
    }
    let out = runc.cmd(&["exec", &gone, "true"]);
    assert_eq!(out.status.code(), Some(255), "runc: {out:?}");
    let out = rt.cmd(&["exec", &gone, "true"]);
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(stderr_line(&out).starts_with("error: "), "{out:?}");
}

/// Counts `test` as skipped on a pure cgroup v2 host, where what it checks is v1 behaviour;
/// returns whether it did.
fn skipped_on_v2(test: &str, reason: &str) -> bool {
    let v2 = cgroup_version() == mini_cgroups::Version::V2;
    if v2 {
        skip(test, Need::CgroupV1, reason);
    }
    v2
}

/// A v1 freezer cgroup below a container's, frozen; thawed (and so released) on drop.
struct FrozenChild {
    dir: std::path::PathBuf,
}

impl FrozenChild {
    /// Moves `pid` into a new frozen sub-cgroup of its freezer cgroup.
    fn freeze(pid: i32) -> FrozenChild {
        let dir = cgroup_dir(pid, "freezer").join("held");
        std::fs::create_dir(&dir).expect("sub-cgroup");
        let held = FrozenChild { dir };
        std::fs::write(held.dir.join("cgroup.procs"), pid.to_string()).expect("move");
        std::fs::write(held.dir.join("freezer.state"), "FROZEN").expect("freeze");
        assert!(
            wait_until(WAIT, || std::fs::read_to_string(
                held.dir.join("freezer.state")
            )
            .is_ok_and(|s| s.trim() == "FROZEN")),
            "the sub-cgroup never froze"
        );
        held
    }

    fn thaw(&self) {
        let _ = std::fs::write(self.dir.join("freezer.state"), "THAWED");
    }
}

impl Drop for FrozenChild {
    fn drop(&mut self) {
        self.thaw();
    }
}

#[test]
fn delete_right_after_kill_9_waits_for_the_dying_init() {
    if skipped_on_v2(
        "delete_right_after_kill_9_waits_for_the_dying_init",
        "holds a dying init with a v1 freezer (v2's lets killed processes go); pure v2 here",
    ) {
        return;
    }
    // The init of a PID namespace stays in exit(2) until every process in the namespace is
    // gone: a child held frozen keeps it dying for as long as the test wants.
    let rt = Runtime::new();
    let b = sh("probe sleep 60 & wait");
    let id = unique("dying");
    rt.detached(&["run", "--detach", "--bundle", b.path_str(), &id]);
    let init = rt.state(&id)["pid"].as_i64().expect("pid") as i32;
    let procs = cgroup_dir(init, "freezer").join("cgroup.procs");
    let mut child = None;
    assert!(wait_until(WAIT, || {
        child = std::fs::read_to_string(&procs)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse::<i32>().ok())
            .find(|&p| p != init && cmdline(p.into()).starts_with("probe sleep 60"));
        child.is_some()
    }));
    let held = FrozenChild::freeze(child.expect("found above"));
    rt.ok(&["kill", &id, "9"]);
    let delete = rt.spawn(&["delete", &id]);
    // Released a moment later (not a timing assertion: an earlier thaw only makes it easier).
    let delete = {
        let mut delete = delete;
        wait_until(Duration::from_millis(500), || !delete.running());
        held.thaw();
        delete
    };
    let out = delete.wait_timeout(WAIT).expect("delete returned");
    assert!(
        out.status.success(),
        "delete of a killed container failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!rt.has_state_dir(&id));
}

/// The `msg` of each `time="…" level=debug msg="…"` line in `text` (runc's text format).
fn debug_messages(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("time=\"")?;
            let (_, rest) = rest.split_once("\" level=debug msg=")?;
            Some(serde_json::from_str::<String>(rest).unwrap_or_else(|e| panic!("{l}: {e}")))
        })
        .collect()
}

#[test]
fn debug_logs_each_step_to_stderr_or_to_the_log_file() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "exit", "0"]);
    let id = unique("debug");
    let out = rt.cmd(&["--debug", "run", "--bundle", b.path_str(), &id]);
    assert!(out.status.success(), "{out:?}");
    let steps = debug_messages(&String::from_utf8_lossy(&out.stderr));
    for step in [
        "validated",
        "cgroup",
        "is ready",
        "waiting for init",
        "exited",
        "removed",
    ] {
        assert!(
            steps.iter().any(|m| m.contains(&id) && m.contains(step)),
            "no debug line about {step:?}: {steps:?}"
        );
    }

    let dir = TempDir::new("debuglog");
    let log = dir.path().join("debug.log");
    let log_arg = log.to_str().expect("utf-8");
    let id = unique("debug");
    let out = rt.cmd(&[
        "--debug",
        "--log",
        log_arg,
        "run",
        "--bundle",
        b.path_str(),
        &id,
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "with --log, debug lines go to the file: {out:?}"
    );
    let steps = debug_messages(&std::fs::read_to_string(&log).expect("log file"));
    assert!(steps.len() >= 6, "{steps:?}");

    // JSON lines, as containerd reads them, keep their form.
    let json_log = dir.path().join("debug.json");
    let json_arg = json_log.to_str().expect("utf-8");
    let id = unique("debug");
    rt.ok(&[
        "--debug",
        "--log",
        json_arg,
        "--log-format",
        "json",
        "run",
        "--bundle",
        b.path_str(),
        &id,
    ]);
    let text = std::fs::read_to_string(&json_log).expect("json log file");
    assert!(text.lines().count() >= 6, "{text}");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(v["level"], "debug", "{line}");
        assert!(v["msg"].is_string() && v["time"].is_string(), "{line}");
    }
}

#[test]
fn log_file_is_created_even_when_the_command_succeeds() {
    let rt = Runtime::new();
    let runc = Runc::new();
    let dir = TempDir::new("oklog");
    for (who, log) in [("runc", "runc.log"), ("mini-run", "mini-run.log")] {
        let log = dir.path().join(log);
        let args = ["--log", log.to_str().expect("utf-8"), "list"];
        if who == "runc" {
            runc.ok(&args);
        } else {
            rt.ok(&args);
        }
        assert!(log.exists(), "{who} did not create its --log file");
    }
    let unwritable = dir.path().join("no/such/dir/x.log");
    let out = rt.cmd(&["--log", unwritable.to_str().expect("utf-8"), "list"]);
    assert_fails_with(&out, &["error:", "log file", "no/such/dir"]);
}

#[test]
fn run_keep_leaves_the_stopped_container_as_runc() {
    let rt = Runtime::new();
    let runc = Runc::new();
    let b = Bundle::new(&["probe", "exit", "3"]);
    let (ours, theirs) = (unique("keep"), unique("keep-runc"));
    let out = runc.cmd(&["run", "--keep", "--bundle", b.path_str(), &theirs]);
    assert_eq!(out.status.code(), Some(3), "runc: {out:?}");
    assert_eq!(runc.status(&theirs), "stopped");
    let out = rt.cmd(&["run", "--keep", "--bundle", b.path_str(), &ours]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(rt.status(&ours), "stopped");
    let cgroups = cgroups_mentioning(&ours);
    assert!(!cgroups.is_empty(), "the kept container keeps its cgroup");
    rt.ok(&["delete", &ours]);
    assert!(!rt.has_state_dir(&ours));
    assert_eq!(cgroups_mentioning(&ours), Vec::<std::path::PathBuf>::new());
}

#[test]
fn update_memory_below_the_usage_says_the_usage() {
    if skipped_on_v2(
        "update_memory_below_the_usage_says_the_usage",
        "v1 refuses such a limit with EBUSY (v2 reclaims or OOM-kills); pure v2 here",
    ) {
        return;
    }
    // 32 MiB in the container's tmpfs: shared memory, which no reclaim can free without swap.
    let rt = Runtime::new();
    let b = sh("dd if=/dev/zero of=/dev/shm/fill bs=1M count=32 2>/dev/null && touch /dev/shm/done; sleep 60");
    let id = unique("memusage");
    rt.detached(&["run", "--detach", "--bundle", b.path_str(), &id]);
    let full = || {
        rt.cmd(&["exec", &id, "test", "-e", "/dev/shm/done"])
            .status
            .success()
    };
    assert!(
        wait_until(WAIT, full),
        "the container never filled its /dev/shm"
    );
    let out = rt.cmd(&["update", "--memory", "4m", &id]);
    let line = assert_fails_with(&out, &["error:", "memory limit", "4194304", "uses", "MiB"]);
    let mib: u64 = line
        .split(" MiB")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no usage in MiB: {line}"));
    assert!(
        mib >= 32,
        "the usage said ({mib} MiB) is below what the container holds: {line}"
    );
    rt.ok(&["update", "--memory", "256m", &id]);
}

#[test]
fn device_rules_with_rwa_access_work_as_in_runc() {
    // Configs written for runc deny every device with access "rwa"; runc runs them (and
    // ignores device rules in `update`), so must mini-run.
    let rt = Runtime::new();
    let runc = Runc::new();
    let deny_all = serde_json::json!([{"allow": false, "access": "rwa"}]);
    let b = sh("echo ok > /dev/null && sleep 60").edit(|c| {
        c["linux"]["resources"]["devices"] = deny_all.clone();
    });
    let (ours, theirs) = (unique("rwa"), unique("rwa-runc"));
    runc.ok(&["run", "--detach", "--bundle", b.path_str(), &theirs]);
    rt.detached(&["run", "--detach", "--bundle", b.path_str(), &ours]);
    let dir = TempDir::new("rwa");
    let res = dir.path().join("resources.json");
    let json = serde_json::json!({"devices": deny_all, "pids": {"limit": 50}});
    std::fs::write(&res, json.to_string()).expect("write resources");
    let res = res.to_str().expect("utf-8");
    runc.ok(&["update", "-r", res, &theirs]);
    rt.ok(&["update", "-r", res, &ours]);
    // The default devices stay usable behind the deny-all rule.
    rt.ok(&["exec", &ours, "sh", "-c", "echo ok > /dev/null"]);
    let bad = sh("true").edit(|c| {
        c["linux"]["resources"]["devices"] = serde_json::json!([{"allow": false, "access": "rwx"}]);
    });
    let out = rt.cmd(&["run", "--bundle", bad.path_str(), &unique("rwx")]);
    assert_fails_with(&out, &["error:", "device access", "rwx"]);
}

/// `text` with each of `values` (and the spaces that pad it in a table) replaced by its name.
fn normalized(text: &str, values: &[(&str, &str)]) -> String {
    let mut out = text.to_string();
    for (value, name) in values {
        let mut next = String::new();
        let mut rest = out.as_str();
        while let Some(at) = rest.find(value) {
            // Whole values only: a pid may also be part of a path or a time.
            let part_of =
                |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || "-/.".contains(c));
            if part_of(rest[..at].chars().next_back())
                || part_of(rest[at + value.len()..].chars().next())
            {
                next.push_str(&rest[..at + value.len()]);
                rest = &rest[at + value.len()..];
                continue;
            }
            next.push_str(&rest[..at]);
            next.push_str(name);
            rest = &rest[at + value.len()..];
            if rest.starts_with("  ") {
                rest = rest.trim_start_matches(' ');
                next.push(' ');
            }
        }
        next.push_str(rest);
        out = next;
    }
    out
}

#[test]
fn state_list_and_ps_print_what_runc_prints() {
    let rt = Runtime::new();
    let runc = Runc::new();
    let b = Bundle::new(&["probe", "sleep", "60"]).edit(|c| {
        c["annotations"] = serde_json::json!({"org.example.b": "2", "org.example.a": "1"});
    });
    // Ids of one length, so that the tables' ID columns are alike.
    let ours = format!("fmt-{}-m", std::process::id());
    let theirs = format!("fmt-{}-r", std::process::id());
    // Empty lists first.
    assert_eq!(rt.ok(&["list"]), runc.ok(&["list"]));
    assert_eq!(
        rt.ok(&["list", "--format", "json"]),
        runc.ok(&["list", "--format", "json"])
    );
    rt.create_ok(&b, &ours);
    runc.ok(&["create", "--bundle", b.path_str(), &theirs]);
    let out = |id: &str, args: &[&str]| {
        let args = with_id(args, id);
        if id == ours {
            rt.ok(&args)
        } else {
            runc.ok(&args)
        }
    };
    for args in [
        &["state", "ID"][..],
        &["list"],
        &["list", "--format", "json"],
        &["ps", "--format", "json", "ID"],
    ] {
        let [a, b] = [&ours, &theirs].map(|id| {
            let st: serde_json::Value =
                serde_json::from_str(&out(id, &["state", "ID"])).expect("state");
            let pid = st["pid"].to_string();
            let created = st["created"].as_str().expect("created").to_string();
            normalized(
                &out(id, args),
                &[
                    (id, "ID"),
                    (&created, "CREATED"),
                    (&pid, "PID"),
                    ("CREATED ", "CREATED "),
                ],
            )
        });
        assert_eq!(a, b, "mini-run {args:?} differs from runc's");
    }
    let header = |id: &str| out(id, &["ps", "ID"]).lines().next().map(str::to_string);
    assert_eq!(header(&ours), header(&theirs));
}

#[test]
fn checkpoint_and_restore_print_help_but_fail_naming_criu() {
    let rt = Runtime::new();
    for cmd in ["checkpoint", "restore"] {
        let help = rt.ok(&[cmd, "--help"]);
        assert!(help.contains("Usage"), "{cmd} --help: {help}");
        let out = rt.cmd(&[cmd, "--image-path", "/tmp/none", "some-id"]);
        assert_fails_with(&out, &["error:", "not supported", "CRIU"]);
    }
    // podman's probe for restoring into pods must not find runc's or crun's answers.
    let out = rt.cmd(&["restore", "--lsm-mount-context"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        !text.contains("flag needs an argument") && !text.contains("requires an argument"),
        "{text}"
    );
}

#[test]
fn a_memory_limit_too_low_to_start_the_container_is_named() {
    // mini-run's init is killed by the cgroup's OOM killer during setup (runc, which sets the
    // limit after its init joined, is refused it: "unable to set memory limit").
    let rt = Runtime::new();
    let runc = Runc::new();
    let limit = 32 * 1024;
    let b = sh("true").edit(|c| {
        c["linux"]["resources"]["memory"] = serde_json::json!({"limit": limit, "swap": limit});
    });
    let out = runc.cmd(&["run", "--bundle", b.path_str(), &unique("oom-runc")]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("memory limit"),
        "runc: {out:?}"
    );
    let id = unique("oomstart");
    let out = rt.cmd(&["run", "--bundle", b.path_str(), &id]);
    let limit = limit.to_string();
    assert_fails_with(
        &out,
        &[
            "error:",
            "memory limit",
            &limit,
            "too low to start the container",
        ],
    );
    assert_nothing_left(&rt, &id, b.path());
}
