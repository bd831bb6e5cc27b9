//! Resource control and monitoring through the container's cgroup: limits are enforced
//! (memory, pids, cpu quota, devices), pause/resume freeze and thaw, `update` changes live
//! limits, `events` reports usage and OOM kills, `ps` and `kill --all` see every process, and
//! nothing is left in the cgroup tree afterwards.
//!
//! The same tests run on this host (hybrid layout: cgroup v1 controllers) and in the test VM
//! (pure cgroup v2, see scripts/test-all.sh); they branch on the version only to name files.
//! The VM is emulated and slow, so waits are generous and return as soon as they can.

use mini_cgroups::Version;
use mini_tests::{
    captured_output, cgroup_dir, cgroup_version, cgroups_mentioning, runtime_cgroup_lines,
    stderr_line, unique, Bundle, Runtime, TempDir,
};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
/// The longest any wait may take (the VM is ~50x slower than the host).
const LONG: Duration = Duration::from_secs(180);

/// Polls `f` every 50 ms until it returns `Some`, panicking after `LONG`.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + LONG;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `run --detach` of `bundle` as `id`, waiting until it runs.
fn run_detached(rt: &Runtime, bundle: &Bundle, id: &str) -> i32 {
    let path = bundle.path().to_str().expect("utf-8");
    rt.detached(&["run", "--detach", "--bundle", path, id]);
    assert_eq!(rt.status(id), "running");
    rt.state(id)["pid"].as_i64().expect("pid") as i32
}

/// The "data" of `events --stats`, checking the event's envelope.
fn stats(rt: &Runtime, id: &str) -> Value {
    let out = rt.ok(&["events", "--stats", id]);
    assert_eq!(out.lines().count(), 1, "one event line: {out}");
    let event: Value = serde_json::from_str(&out).expect("stats event JSON");
    assert_eq!(event["type"], "stats", "{event}");
    assert_eq!(event["id"], id, "{event}");
    event["data"].clone()
}

/// Total CPU time in nanoseconds (runc omits it while zero).
fn cpu_total(data: &Value) -> u64 {
    data["cpu"]["usage"]["total"].as_u64().unwrap_or(0)
}

/// CPU seconds per wall second the container used over about `window`, from two
/// `events --stats` samples; each sample's moment is taken as the middle of its command.
fn cpu_rate(rt: &Runtime, id: &str, window: Duration) -> f64 {
    let sample = || {
        let before = Instant::now();
        let total = cpu_total(&stats(rt, id));
        (total, before + (Instant::now() - before) / 2)
    };
    let (u0, t0) = sample();
    std::thread::sleep(window);
    let (u1, t1) = sample();
    assert!(u1 >= u0, "cpu usage went backwards: {u0} -> {u1}");
    (u1 - u0) as f64 / 1e9 / (t1 - t0).as_secs_f64()
}

/// The host path of `file` in the cgroup of `pid` that holds `controller`.
fn cgroup_file(pid: i32, controller: &str, file: &str) -> PathBuf {
    cgroup_dir(pid, controller).join(file)
}

fn read_trim(path: &PathBuf) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// The JSON lines a probe printed.
fn json_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn with_memory_limit(b: Bundle, limit: u64) -> Bundle {
    // swap == limit: the container cannot swap instead of being OOM-killed.
    b.edit(|c| c["linux"]["resources"]["memory"] = json!({"limit": limit, "swap": limit}))
}

#[test]
fn memory_limit_is_enforced_by_the_oom_killer() {
    let rt = Runtime::new();
    let b = with_memory_limit(Bundle::new(&["probe", "alloc", "256"]), 64 * MIB);
    let out = rt.run(&b, &unique("oom"));
    let lines = json_lines(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(137),
        "alloc 256 MiB under a 64 MiB limit must be SIGKILLed; printed {lines:?}, stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !lines.iter().any(|l| l.get("allocated_mib").is_some()),
        "{lines:?}"
    );
}

/// A child `events` process whose lines arrive on a channel.
struct EventStream {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl EventStream {
    fn start(rt: &Runtime, id: &str, interval: &str) -> EventStream {
        let mut child = rt
            .command(&["events", "--interval", interval, id])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn events");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        EventStream { child, lines }
    }

    fn next(&self) -> String {
        self.lines
            .recv_timeout(LONG)
            .expect("an event line in time")
    }

    /// Every further line until `events` exits; returns them with its exit status.
    fn finish(mut self) -> (Vec<String>, std::process::ExitStatus) {
        let mut lines = Vec::new();
        loop {
            match self.lines.recv_timeout(LONG) {
                Ok(l) => lines.push(l),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("events did not end: {lines:?}"),
            }
        }
        let status = self.child.wait().expect("wait events");
        (lines, status)
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        // Our own child, by handle; harmless if it already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn events_streams_stats_and_reports_an_oom_kill() {
    let rt = Runtime::new();
    let id = unique("oomev");
    let b = with_memory_limit(
        Bundle::new(&["sh", "-c", "sleep 1; probe alloc 256"]),
        64 * MIB,
    );
    rt.detached(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let events = EventStream::start(&rt, &id, "200ms");
    // The first stats line proves `events` took its OOM baseline before the allocation.
    let first: Value = serde_json::from_str(&events.next()).expect("JSON event");
    assert_eq!(first["type"], "stats", "{first}");
    assert_eq!(first["id"], id.as_str());
    assert!(first["data"]["memory"]["usage"].is_object(), "{first}");
    rt.ok(&["start", &id]);
    let (lines, status) = events.finish();
    assert!(status.success(), "events exited with {status}");
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON event"))
        .collect();
    let ooms: Vec<&Value> = events.iter().filter(|e| e["type"] == "oom").collect();
    assert_eq!(
        ooms,
        vec![&json!({"type": "oom", "id": id})],
        "one OOM kill reported; events: {lines:?}"
    );
    assert!(events
        .iter()
        .all(|e| e["type"] == "oom" || (e["type"] == "stats" && e["data"].is_object())));
    assert_eq!(rt.status(&id), "stopped");
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let rt = Runtime::new();
    let spawn = |limit: Option<i64>| {
        let mut b = Bundle::new(&["probe", "spawn", "50"]);
        if let Some(l) = limit {
            b = b.edit(|c| c["linux"]["resources"]["pids"] = json!({ "limit": l }));
        }
        let out = rt.run(&b, &unique("pids"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json_lines(&out.stdout).pop().expect("spawn report")
    };
    let limited = spawn(Some(10));
    let spawned = limited["spawned"].as_u64().expect("spawned");
    assert!(spawned < 10, "{limited}");
    assert_eq!(limited["error"], "EAGAIN", "{limited}");
    let free = spawn(None);
    assert_eq!(free["spawned"], 50, "without a limit: {free}");
}

#[test]
fn cpu_quota_caps_measured_usage() {
    let rt = Runtime::new();
    let burner = |quota: Option<i64>| {
        let mut b = Bundle::new(&["probe", "burn", "600"]);
        if let Some(q) = quota {
            b = b.edit(|c| c["linux"]["resources"]["cpu"] = json!({"quota": q, "period": 100000}));
        }
        let id = unique("cpu");
        run_detached(&rt, &b, &id);
        wait_for("the burner to use cpu", || {
            (cpu_total(&stats(&rt, &id)) > 0).then_some(())
        });
        let rate = cpu_rate(&rt, &id, Duration::from_secs(3));
        let data = stats(&rt, &id);
        rt.ok(&["delete", "--force", &id]);
        (rate, data)
    };
    let (limited, data) = burner(Some(20_000));
    assert!(
        limited <= 0.3,
        "quota 20ms/100ms allowed {limited:.2} cpu s per s"
    );
    assert!(limited > 0.05, "the capped burner still runs: {limited:.2}");
    assert!(
        data["cpu"]["throttling"]["throttledPeriods"].as_u64() > Some(0),
        "throttled periods counted: {}",
        data["cpu"]
    );
    let (free, data) = burner(None);
    assert!(
        free >= 0.45 && free > 2.0 * limited,
        "unlimited burner used {free:.2} cpu s per s (capped: {limited:.2})"
    );
    assert!(data["cpu"]["throttling"]["throttledPeriods"].is_null());
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let rt = Runtime::new();
    let id = unique("pause");
    run_detached(&rt, &Bundle::new(&["probe", "burn", "600"]), &id);
    wait_for("the burner to use cpu", || {
        (cpu_total(&stats(&rt, &id)) > 0).then_some(())
    });

    rt.ok(&["pause", &id]);
    assert_eq!(rt.status(&id), "paused");
    let frozen = cpu_total(&stats(&rt, &id));
    std::thread::sleep(Duration::from_secs(1));
    let still = cpu_total(&stats(&rt, &id));
    assert!(
        still - frozen < 20_000_000,
        "a paused burner used {} ms of cpu in 1 s",
        (still - frozen) / 1_000_000
    );
    let again = rt.cmd(&["pause", &id]);
    assert!(!again.status.success());
    assert!(stderr_line(&again).contains("paused"));

    rt.ok(&["resume", &id]);
    assert_eq!(rt.status(&id), "running");
    // Thawed, it burns again: however busy the host, it gets 200 ms of cpu eventually.
    wait_for("the resumed burner to use 200 ms of cpu", || {
        (cpu_total(&stats(&rt, &id)) - still > 200_000_000).then_some(())
    });
    let again = rt.cmd(&["resume", &id]);
    assert!(!again.status.success());
    assert!(stderr_line(&again).contains("running"));
}

#[test]
fn update_changes_live_limits() {
    let rt = Runtime::new();
    let id = unique("update");
    let pid = run_detached(&rt, &Bundle::new(&["probe", "sleep", "600"]), &id);
    let (memory_file, cpu_file) = match cgroup_version() {
        Version::V1 => ("memory.limit_in_bytes", "cpu.cfs_quota_us"),
        Version::V2 => ("memory.max", "cpu.max"),
    };
    let memory = cgroup_file(pid, "memory", memory_file);
    let pids = cgroup_file(pid, "pids", "pids.max");
    let cpu = cgroup_file(pid, "cpu", cpu_file);
    assert_eq!(read_trim(&pids), "max");

    rt.ok(&["update", "--memory", "100m", "--pids-limit", "20", &id]);
    assert_eq!(read_trim(&memory), (100 * MIB).to_string());
    assert_eq!(read_trim(&pids), "20");

    rt.ok(&[
        "update",
        "--cpu-quota",
        "30000",
        "--cpu-period",
        "100000",
        &id,
    ]);
    rt.ok(&["update", "--cpu-period", "50000", &id]);
    match cgroup_version() {
        Version::V1 => {
            assert_eq!(read_trim(&cpu), "30000");
            assert_eq!(read_trim(&cpu.with_file_name("cpu.cfs_period_us")), "50000");
        }
        // A new period alone keeps the quota.
        Version::V2 => assert_eq!(read_trim(&cpu), "30000 50000"),
    }

    let dir = TempDir::new("resources");
    let file = dir.path().join("resources.json");
    let r = json!({"memory": {"limit": 200 * MIB}, "pids": {"limit": 30}});
    std::fs::write(&file, r.to_string()).unwrap();
    rt.ok(&["update", "--resources", file.to_str().unwrap(), &id]);
    assert_eq!(read_trim(&memory), (200 * MIB).to_string());
    assert_eq!(read_trim(&pids), "30");

    let bad = rt.cmd(&["update", "--memory", "12x", &id]);
    assert!(!bad.status.success());
    assert!(stderr_line(&bad).contains("--memory"));
    assert_eq!(read_trim(&memory), (200 * MIB).to_string());

    rt.ok(&["delete", "--force", &id]);
    let gone = rt.cmd(&["update", "--pids-limit", "5", &id]);
    assert!(!gone.status.success());
    assert!(stderr_line(&gone).contains("does not exist"));
}

#[test]
fn stats_follow_memory_use() {
    let rt = Runtime::new();
    let id = unique("memstats");
    let b = Bundle::new(&[
        "sh",
        "-c",
        "probe wait-file /dev/shm/go 600 && probe alloc 96 && exec probe sleep 600",
    ]);
    let pid = run_detached(&rt, &b, &id);
    // The shell and the probe it forks (the fork may lag the start on a busy host).
    let before = wait_for("the shell and its probe in the pids count", || {
        let d = stats(&rt, &id);
        (d["pids"]["current"].as_u64() >= Some(2)).then_some(d)
    });
    let peak0 = before["memory"]["usage"]["max"].as_u64().unwrap_or(0);
    let usage0 = before["memory"]["usage"]["usage"].as_u64().unwrap_or(0);
    assert!(usage0 > 0, "memory usage reported: {}", before["memory"]);
    // The container's /dev/shm, reached through its init's root.
    std::fs::write(format!("/proc/{pid}/root/dev/shm/go"), "").expect("signal the container");
    let grown = wait_for("memory use to grow by the allocation", || {
        let d = stats(&rt, &id);
        let peak = d["memory"]["usage"]["max"].as_u64().unwrap_or(0);
        let usage = d["memory"]["usage"]["usage"].as_u64().unwrap_or(0);
        (peak.max(usage) >= peak0.max(usage0) + 80 * MIB).then_some(d)
    });
    assert!(grown["memory"]["usage"]["limit"].as_u64() > Some(0));
}

#[test]
fn device_rules_deny_a_block_device_and_allow_null() {
    let rt = Runtime::new();
    let b = Bundle::new(&[
        "sh",
        "-c",
        "probe try-open /dev/fake-sda r; probe try-open /dev/null rw",
    ])
    .edit(|c| {
        // The default spec's cgroup rules deny every device; the default ones are allowed.
        assert_eq!(
            c["linux"]["resources"]["devices"],
            json!([{"allow": false, "access": "rwm"}])
        );
        c["linux"]["devices"] = json!([{
            "path": "/dev/fake-sda", "type": "b", "major": 8, "minor": 0,
            "fileMode": 0o660, "uid": 0, "gid": 0
        }]);
    });
    let out = rt.run(&b, &unique("devices"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 2, "{lines:?}");
    // EPERM is the device cgroup's answer; without it the open would reach the block layer.
    assert_eq!(lines[0]["path"], "/dev/fake-sda");
    assert_eq!(lines[0]["error"], "EPERM", "{}", lines[0]);
    assert_eq!(lines[1]["path"], "/dev/null");
    assert_eq!(lines[1]["ok"], true, "{}", lines[1]);
}

/// Without a cgroupsPath the container's cgroup is `<id>` below the runtime's own cgroup in
/// every hierarchy (`/<id>` for a runtime in the root cgroups), exactly where runc 1.1.5 puts
/// it and tools look for it (mini-run used `/mini-run/<id>`); on a hybrid host that includes
/// the cgroup2 tree, which mini-run did not join.
#[test]
fn without_cgroups_path_the_cgroup_is_where_runc_puts_it() {
    let b = Bundle::new(&["probe", "sleep", "600"]);
    let rt = Runtime::new();
    let id = unique("default-cg");
    run_detached(&rt, &b, &id);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let ours = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();

    let runc_root = TempDir::new("runc-root");
    let runc_id = unique("default-cg-runc");
    struct RuncContainer<'a>(&'a Path, &'a str);
    impl Drop for RuncContainer<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("runc")
                .arg("--root")
                .arg(self.0)
                .args(["delete", "--force", self.1])
                .status();
        }
    }
    let runc = |args: &[&str]| {
        let out = captured_output(
            std::process::Command::new("runc")
                .arg("--root")
                .arg(runc_root.path())
                .args(args),
        );
        assert!(
            out.status.success(),
            "runc {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let _guard = RuncContainer(runc_root.path(), &runc_id);
    runc(&["run", "--detach", "--bundle", b.path_str(), &runc_id]);
    let state: Value = serde_json::from_slice(&runc(&["state", &runc_id]).stdout).unwrap();
    let theirs = std::fs::read_to_string(format!("/proc/{}/cgroup", state["pid"])).unwrap();

    // On a hybrid host also the cgroup2 tree's `0::` line (runc joins it too).
    let lines = |text: &str, id: &str| -> Vec<String> {
        let mut lines = runtime_cgroup_lines(text);
        lines.extend(text.lines().filter(|l| l.starts_with("0::")));
        lines.dedup();
        lines.into_iter().map(|l| l.replace(id, "ID")).collect()
    };
    let ours = lines(&ours, &id);
    assert!(ours.iter().all(|l| l.ends_with("/ID")), "{ours:?}");
    assert_eq!(ours, lines(&theirs, &runc_id));
}

#[test]
fn nothing_is_left_in_the_cgroup_tree() {
    let rt = Runtime::new();

    let id = unique("leftover");
    run_detached(&rt, &Bundle::new(&["probe", "sleep", "600"]), &id);
    let dirs = cgroups_mentioning(&id);
    assert!(!dirs.is_empty(), "a running container has a cgroup");
    rt.ok(&["delete", "--force", &id]);
    assert_eq!(
        cgroups_mentioning(&id),
        Vec::<PathBuf>::new(),
        "after delete"
    );

    // A command that does not exist fails create after the cgroup was made.
    let id = unique("badcmd");
    let out = rt.create(&Bundle::new(&["/no/such/command"]), &id);
    assert!(!out.status.success());
    assert!(stderr_line(&out).contains("/no/such/command"));
    assert_eq!(
        cgroups_mentioning(&id),
        Vec::<PathBuf>::new(),
        "after bad command"
    );
    assert!(!rt.root().join(&id).exists());

    // A limit the kernel rejects (a cpu that does not exist) fails while applying resources.
    let id = unique("badcpu");
    let b = Bundle::new(&["probe", "sleep", "600"])
        .edit(|c| c["linux"]["resources"]["cpu"] = json!({"cpus": "4095"}));
    let out = rt.create(&b, &id);
    assert!(!out.status.success());
    assert!(stderr_line(&out).contains("cpuset.cpus"));
    assert_eq!(
        cgroups_mentioning(&id),
        Vec::<PathBuf>::new(),
        "after bad limit"
    );
    assert!(!rt.root().join(&id).exists());
}

#[test]
fn ps_lists_the_processes_and_kill_all_reaches_them() {
    let rt = Runtime::new();
    let id = unique("ps");
    let b = Bundle::new(&["sh", "-c", "probe sleep 600 & probe sleep 600 & wait"]);
    let init = run_detached(&rt, &b, &id);
    let pids = wait_for("three processes", || {
        let v: Value = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
        let pids: Vec<i32> = v
            .as_array()
            .map(|a| a.iter().map(|p| p.as_i64().unwrap() as i32).collect())
            .unwrap_or_default();
        (pids.len() == 3).then_some(pids)
    });
    assert!(pids.contains(&init), "{pids:?} has the init {init}");
    for pid in &pids {
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(cg.contains(&id), "{pid} is in the container's cgroup: {cg}");
    }

    let table = rt.ok(&["ps", &id]);
    let mut rows = table.lines();
    let header = rows.next().expect("header");
    let col = header
        .split_whitespace()
        .position(|f| f == "PID")
        .expect("PID column");
    let listed: Vec<i32> = rows
        .map(|r| r.split_whitespace().nth(col).unwrap().parse().unwrap())
        .collect();
    assert_eq!(listed.len(), 3, "{table}");
    assert!(listed.iter().all(|p| pids.contains(p)), "{table}");
    let custom = rt.ok(&["ps", &id, "--", "-o", "pid,comm"]);
    assert_eq!(custom.lines().count(), 4, "{custom}");

    // The init of a pid namespace ignores TERM from outside: only --all reaches the others.
    rt.ok(&["kill", &id, "TERM"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rt.status(&id), "running");
    let after: Value = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(after, json!(pids), "TERM to the init alone kills nothing");
    rt.ok(&["kill", "--all", &id, "TERM"]);
    wait_for("the container to stop", || {
        (rt.status(&id) == "stopped").then_some(())
    });
    assert_eq!(rt.ok(&["ps", "--format", "json", &id]).trim(), "null");
}
