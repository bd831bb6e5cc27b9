//! The per-container monitor with real busybox containers (root): logs as JSON lines with
//! rotation, exit codes, signals and OOM kills recorded, exec, stats, log follow, the monitor
//! surviving the death of its agent, a killed monitor taking its container along and adoption
//! recording it, a full log disk that costs log lines but never the container, and execs that
//! keep working after the installed binary is replaced. The same suite passes on the cgroup v2
//! test VM (scripts/vm/run.sh).

use mini_shim::monitor::{
    self, adopt, discover, inspect, Adopted, Client, Error, ExecSpec, ExitRecord, LogLimits,
    LogRecord, MonitorStatus, SpawnOptions, Started, Stream,
};
use mini_tests::{cgroups_mentioning, sh, unique, wait_until, Bundle, TempDir};
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SETTLE: Duration = Duration::from_secs(20);

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// An agent's state directory (`containers/`, `runtime/`). On drop, every monitor still alive
/// in it is killed (by the pid its locked pid file names) and every container removed.
struct Host {
    state: TempDir,
}

impl Host {
    fn new() -> Host {
        Host {
            state: TempDir::new("shim-state"),
        }
    }

    fn runtime(&self) -> PathBuf {
        self.state.path().join("runtime")
    }

    /// A fresh container directory for `id`.
    fn dir(&self, id: &str) -> PathBuf {
        let d = self.state.path().join("containers").join(id);
        std::fs::create_dir_all(&d).expect("container dir");
        d
    }

    fn options(&self, id: &str, bundle: &Bundle) -> SpawnOptions {
        let mut o = SpawnOptions::new(&self.dir(id), id, bundle.path(), &self.runtime());
        o.binary = PathBuf::from(env!("CARGO_BIN_EXE_mini-shim"));
        o
    }

    /// Starts a monitor for `bundle`; returns its directory and start report.
    fn start(&self, id: &str, bundle: &Bundle) -> (PathBuf, Started) {
        let opts = self.options(id, bundle);
        let started = monitor::spawn(&opts).unwrap_or_else(|e| panic!("spawn {id}: {e}"));
        (opts.dir, started)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Ok(found) = discover(self.state.path()) {
            for f in found {
                if let Ok(MonitorStatus::Live { monitor_pid }) = f.status {
                    // The pid comes from the file its monitor holds locked: it is ours.
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(monitor_pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    wait_until(SETTLE, || {
                        !matches!(inspect(&f.dir), Ok(MonitorStatus::Live { .. }))
                    });
                }
            }
        }
        if let Ok(ids) = mini_run::state::list_ids(&self.runtime()) {
            for id in ids {
                let _ = mini_run::container::delete::delete(&self.runtime(), &id, true);
            }
        }
    }
}

/// A directory shared with the container at /shared.
fn with_shared(bundle: Bundle, shared: &Path) -> Bundle {
    bundle.with_bind(shared, "/shared")
}

/// Every record of the log files in `dir`, oldest first; each line must be a valid record.
fn read_log(dir: &Path) -> Vec<LogRecord> {
    let mut files: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .expect("log dir")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = match name.strip_prefix("log.jsonl")? {
                "" => 0,
                rest => rest.strip_prefix('.')?.parse().ok()?,
            };
            Some((n, e.path()))
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut out = Vec::new();
    for (_, path) in files {
        let text = std::fs::read_to_string(&path).expect("log file");
        for line in text.lines() {
            out.push(serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("{}: not a log record ({e}): {line:?}", path.display())
            }));
        }
    }
    out
}

fn texts(records: &[LogRecord], stream: Stream) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.stream == stream)
        .map(|r| r.text.clone())
        .collect()
}

fn wait_exit(dir: &Path) -> ExitRecord {
    block_on(async {
        tokio::time::timeout(SETTLE, Client::new(dir).wait())
            .await
            .expect("the container did not exit in time")
            .expect("wait")
    })
}

fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !matches!(s.rsplit_once(") ").map(|(_, r)| &r[..1]), Some("Z" | "X")))
}

/// Field `n` (1-based, as proc(5) numbers them) of /proc/<pid>/stat.
fn stat_field(pid: i32, n: usize) -> i64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = s.rsplit_once(") ").expect("stat format").1;
    rest.split(' ')
        .nth(n - 3)
        .expect("field")
        .parse()
        .expect("number")
}

#[test]
fn output_is_logged_as_json_lines_and_the_exit_code_recorded() {
    let host = Host::new();
    let id = unique("mon-log");
    let b = sh("echo hello; echo oops >&2; printf 'no newline'; exit 7");
    let (dir, started) = host.start(&id, &b);
    assert!(started.pid > 0 && started.monitor_pid > 0);
    let exit = wait_exit(&dir);
    assert_eq!(
        (exit.exit_code, exit.signal, exit.oom_killed),
        (Some(7), None, false)
    );
    assert_eq!(exit.status(), 7);
    assert!(!exit.monitor_lost && exit.error.is_none());
    let on_disk: ExitRecord =
        serde_json::from_slice(&std::fs::read(dir.join("exit.json")).unwrap()).unwrap();
    assert_eq!(on_disk, exit);

    let log = read_log(&dir);
    assert_eq!(texts(&log, Stream::Stdout), ["hello", "no newline"]);
    assert_eq!(texts(&log, Stream::Stderr), ["oops"]);
    let last = log.iter().find(|r| r.text == "no newline").unwrap();
    assert!(
        last.partial,
        "output without a final newline is a partial record"
    );
    for r in &log {
        humantime::parse_rfc3339(&r.timestamp)
            .unwrap_or_else(|e| panic!("timestamp {:?}: {e}", r.timestamp));
    }

    // The monitor is gone, the runtime and the cgroup hold nothing of the container, and the
    // client answers from the directory.
    assert!(wait_until(SETTLE, || !pid_alive(started.monitor_pid)));
    assert!(!dir.join("monitor.sock").exists());
    assert!(!host.runtime().join(&id).exists());
    assert!(
        cgroups_mentioning(&id).is_empty(),
        "{:?}",
        cgroups_mentioning(&id)
    );
    let state = block_on(Client::new(&dir).state()).unwrap();
    assert_eq!(state.status, mini_run::state::Status::Stopped);
    assert_eq!(state.exit, Some(exit.clone()));
    assert_eq!(inspect(&dir).unwrap(), MonitorStatus::Exited(exit));
    let from_files: Vec<LogRecord> = block_on(async {
        let mut s = Client::new(&dir).logs(false).await.unwrap();
        let mut v = Vec::new();
        while let Some(r) = s.next().await {
            v.push(r.unwrap());
        }
        v
    });
    assert_eq!(from_files, log);
}

#[test]
fn logs_rotate_at_the_size_limit_and_keep_the_newest_lines() {
    let host = Host::new();
    let id = unique("mon-rot");
    let b = sh("i=0; while [ $i -lt 300 ]; do echo \"line $i\"; i=$((i+1)); done");
    let mut opts = host.options(&id, &b);
    opts.log_limits = LogLimits {
        max_bytes: 2000,
        max_files: 2,
    };
    monitor::spawn(&opts).unwrap();
    let dir = opts.dir;
    assert_eq!(wait_exit(&dir).exit_code, Some(0));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n.starts_with("log.jsonl"))
        .collect();
    names.sort();
    assert_eq!(names, ["log.jsonl", "log.jsonl.1", "log.jsonl.2"]);
    for n in &names {
        let len = std::fs::metadata(dir.join(n)).unwrap().len();
        assert!(len <= 2000, "{n} is {len} bytes, over the 2000-byte limit");
    }
    // What is kept is the newest output, contiguous and in order.
    let lines = texts(&read_log(&dir), Stream::Stdout);
    assert!(
        lines.len() > 20 && lines.len() < 300,
        "{} lines kept",
        lines.len()
    );
    let first: usize = lines[0].strip_prefix("line ").unwrap().parse().unwrap();
    let want: Vec<String> = (first..300).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, want);
}

#[test]
fn a_kill_is_recorded_as_its_signal() {
    let host = Host::new();
    let id = unique("mon-kill");
    let (dir, started) = host.start(&id, &Bundle::new(&["sleep", "1000"]));
    let client = Client::new(&dir);
    let state = block_on(client.state()).unwrap();
    assert_eq!(state.status, mini_run::state::Status::Running);
    assert_eq!(
        (state.pid, state.monitor_pid),
        (started.pid, started.monitor_pid)
    );
    assert_eq!(state.protocol, monitor::wire::PROTOCOL);
    let bad = block_on(client.kill(99, false)).unwrap_err();
    assert!(bad.to_string().contains("unknown signal 99"), "{bad}");
    block_on(client.kill(libc::SIGKILL, false)).unwrap();
    let exit = wait_exit(&dir);
    assert_eq!(
        (exit.exit_code, exit.signal, exit.status()),
        (None, Some(9), 137)
    );
    assert!(!exit.oom_killed);
    let after = block_on(client.kill(libc::SIGKILL, false)).unwrap_err();
    assert!(matches!(after, Error::NotRunning(_)), "{after}");
}

#[test]
fn an_oom_kill_is_recorded() {
    let host = Host::new();
    let id = unique("mon-oom");
    let mib = 1u64 << 20;
    // swap == limit: the container cannot swap instead of being OOM-killed.
    let b = Bundle::new(&["probe", "alloc", "256"])
        .edit(|c| c["linux"]["resources"]["memory"] = json!({"limit": 64 * mib, "swap": 64 * mib}));
    let (dir, _) = host.start(&id, &b);
    let exit = wait_exit(&dir);
    assert_eq!(exit.signal, Some(libc::SIGKILL), "{exit:?}");
    assert!(exit.oom_killed, "{exit:?}");
    let printed = texts(&read_log(&dir), Stream::Stdout);
    assert!(
        !printed.iter().any(|l| l.contains("allocated_mib")),
        "{printed:?}"
    );
}

#[test]
fn exec_returns_the_output_and_status_and_honours_its_timeout() {
    let host = Host::new();
    let id = unique("mon-exec");
    let (dir, _) = host.start(&id, &Bundle::new(&["sleep", "1000"]));
    let client = Client::new(&dir);
    let r = block_on(client.exec(&ExecSpec {
        args: vec![
            "sh".into(),
            "-c".into(),
            "echo out $X; echo err >&2; exit 3".into(),
        ],
        env: vec!["X=42".into()],
        ..Default::default()
    }))
    .unwrap();
    assert_eq!((r.exit_code, r.signal, r.timed_out), (Some(3), None, false));
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str()),
        ("out 42\n", "err\n")
    );
    let slow = block_on(client.exec(&ExecSpec {
        args: vec!["sleep".into(), "1000".into()],
        timeout_ms: Some(200),
        ..Default::default()
    }))
    .unwrap();
    assert!(slow.timed_out, "{slow:?}");
    assert_eq!(slow.signal, Some(libc::SIGKILL));
    let missing = block_on(client.exec(&ExecSpec {
        args: vec!["/no/such/binary".into()],
        ..Default::default()
    }))
    .unwrap_err();
    assert!(missing.to_string().contains("/no/such/binary"), "{missing}");
    // The exec'd output never reaches the container's log.
    block_on(client.kill(libc::SIGKILL, false)).unwrap();
    wait_exit(&dir);
    assert!(read_log(&dir).iter().all(|r| !r.text.contains("out 42")));
}

#[test]
fn stats_come_from_the_containers_cgroup() {
    let host = Host::new();
    let id = unique("mon-stats");
    let (dir, _) = host.start(&id, &Bundle::new(&["sleep", "1000"]));
    let client = Client::new(&dir);
    let stats: Value = block_on(client.stats()).unwrap();
    assert!(stats["pids"]["current"].as_u64() >= Some(1), "{stats}");
    assert!(
        stats["memory"]["usage"]["usage"].as_u64() > Some(0),
        "{stats}"
    );
    let state = block_on(client.state()).unwrap();
    assert!(state.cgroup.is_some());
    block_on(client.kill(libc::SIGKILL, false)).unwrap();
    wait_exit(&dir);
    assert!(matches!(
        block_on(client.stats()),
        Err(Error::NotRunning(_))
    ));
}

#[test]
fn a_log_follower_gets_history_then_live_records_until_the_exit() {
    let host = Host::new();
    let id = unique("mon-follow");
    let shared = TempDir::new("follow-shared");
    let b = with_shared(
        sh(
            "echo before; while [ ! -e /shared/go ]; do sleep 0.05; done; \
            i=0; while [ $i -lt 5 ]; do echo live $i; i=$((i+1)); sleep 0.05; done; exit 2",
        ),
        shared.path(),
    );
    let (dir, _) = host.start(&id, &b);
    let records = block_on(async {
        let client = Client::new(&dir);
        let mut stream = client.logs(true).await.unwrap();
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(
            (first.stream, first.text.as_str()),
            (Stream::Stdout, "before")
        );
        std::fs::write(shared.path().join("go"), b"").unwrap();
        let mut v = vec![first];
        while let Some(r) = tokio::time::timeout(SETTLE, stream.next())
            .await
            .expect("stalled")
        {
            v.push(r.unwrap());
        }
        v
    });
    let want = ["before", "live 0", "live 1", "live 2", "live 3", "live 4"];
    assert_eq!(texts(&records, Stream::Stdout), want);
    assert_eq!(wait_exit(&dir).exit_code, Some(2));
}

#[test]
fn the_monitor_survives_a_kill_9_of_its_agents_whole_process_group() {
    let host = Host::new();
    let id = unique("mon-agent");
    let shared = TempDir::new("agent-shared");
    let b = with_shared(
        sh(
            "i=0; while [ ! -e /shared/go ]; do echo tick $i; i=$((i+1)); sleep 0.05; done; \
            echo bye; exit 5",
        ),
        shared.path(),
    );
    let opts = host.options(&id, &b);
    // The stand-in agent: starts the monitor, then lives on, in a process group of its own.
    let mut agent = std::process::Command::new("sh");
    agent
        .arg("-c")
        .arg("\"$@\" >/dev/null && exec sleep 1000")
        .arg("agent")
        .arg(&opts.binary)
        .args(["monitor", "--id", &id, "--dir"])
        .arg(&opts.dir)
        .arg("--bundle")
        .arg(&opts.bundle)
        .arg("--runtime-root")
        .arg(&opts.runtime_root)
        .process_group(0);
    let mut agent = agent.spawn().expect("stand-in agent");
    let agent_pid = agent.id() as i32;
    let dir = opts.dir;
    let live = wait_until(SETTLE, || {
        matches!(inspect(&dir), Ok(MonitorStatus::Live { .. }))
            && texts(&read_log(&dir), Stream::Stdout).len() > 2
    });
    assert!(live, "the monitor did not start logging");
    let MonitorStatus::Live { monitor_pid } = inspect(&dir).unwrap() else {
        unreachable!()
    };
    // Its own session, not a member of the agent's process group.
    assert_eq!(
        stat_field(monitor_pid, 6),
        i64::from(monitor_pid),
        "session id"
    );
    assert_ne!(
        stat_field(monitor_pid, 5),
        i64::from(agent_pid),
        "process group"
    );
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(agent_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    agent.wait().unwrap();
    let ticks = texts(&read_log(&dir), Stream::Stdout).len();
    assert!(
        wait_until(SETTLE, || texts(&read_log(&dir), Stream::Stdout).len()
            > ticks + 3),
        "the container stopped logging after the agent died"
    );
    assert!(matches!(inspect(&dir), Ok(MonitorStatus::Live { .. })));
    // A one-shot `logs` while it runs: the history so far, then the end.
    let so_far = block_on(async {
        let mut s = Client::new(&dir).logs(false).await.unwrap();
        let mut n = 0;
        while let Some(r) = s.next().await {
            assert!(r.unwrap().text.starts_with("tick "));
            n += 1;
        }
        n
    });
    assert!(so_far > ticks, "{so_far} records");
    std::fs::write(shared.path().join("go"), b"").unwrap();
    let exit = wait_exit(&dir);
    assert_eq!(exit.exit_code, Some(5));
    let out = texts(&read_log(&dir), Stream::Stdout);
    assert_eq!(out.last().map(String::as_str), Some("bye"));
    let n: Vec<usize> = out[..out.len() - 1]
        .iter()
        .map(|t| t.strip_prefix("tick ").unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        n,
        (0..n.len()).collect::<Vec<_>>(),
        "no tick lost or repeated"
    );
}

#[test]
fn a_killed_monitor_takes_its_container_along_and_adoption_records_it() {
    let host = Host::new();
    let id = unique("mon-lost");
    let (dir, started) = host.start(&id, &Bundle::new(&["sleep", "1000"]));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(started.monitor_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        wait_until(SETTLE, || !pid_alive(started.pid)),
        "the container outlived its monitor"
    );
    assert_eq!(inspect(&dir).unwrap(), MonitorStatus::Lost);
    // Until someone adopts the directory, there is no exit status to give, and clients say so.
    let gone = block_on(Client::new(&dir).wait()).unwrap_err();
    assert!(matches!(gone, Error::MonitorGone(_)), "{gone}");
    let Adopted::Exited(exit) = adopt(&dir).unwrap() else {
        panic!("a dead monitor's directory adopted as live")
    };
    assert!(exit.monitor_lost);
    assert_eq!((exit.exit_code, exit.signal), (None, Some(libc::SIGKILL)));
    assert_eq!(block_on(Client::new(&dir).wait()).unwrap(), exit);
    assert_eq!(inspect(&dir).unwrap(), MonitorStatus::Exited(exit));
    assert!(!host.runtime().join(&id).exists());
    assert!(cgroups_mentioning(&id).is_empty());
}

#[test]
fn adoption_kills_what_outlived_a_dead_monitor() {
    let host = Host::new();
    // A container sharing the host's pid namespace: its init dies with the monitor, but a
    // process it forked does not, as no pid namespace ends with it.
    let id = unique("mon-orphan");
    let b = sh("sleep 1000 & echo $!; wait").edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "pid");
    });
    let (dir, started) = host.start(&id, &b);
    let mut child = 0;
    assert!(wait_until(SETTLE, || {
        child = texts(&read_log(&dir), Stream::Stdout)
            .first()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        child > 0
    }));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(started.monitor_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_until(SETTLE, || !pid_alive(started.pid)));
    assert!(
        pid_alive(child),
        "the forked process should have outlived the init"
    );
    assert_eq!(inspect(&dir).unwrap(), MonitorStatus::Lost);
    let Adopted::Exited(exit) = adopt(&dir).unwrap() else {
        panic!("adopted as live")
    };
    assert!(exit.monitor_lost);
    assert!(wait_until(SETTLE, || !pid_alive(child)), "leftover process");
    assert!(cgroups_mentioning(&id).is_empty());
}

#[test]
fn adoption_kills_a_container_still_running_without_a_monitor() {
    // A container whose monitor died but whose init lives on (its parent-death signal was
    // cleared, as executing a set-user-ID binary does): here made with mini-run directly,
    // under a directory whose monitor claimed it and is gone.
    let host = Host::new();
    let id = unique("mon-alive");
    let b = Bundle::new(&["sleep", "1000"]);
    let rt = host.runtime();
    let out = std::process::Command::new(mini_tests::mini_run_bin())
        .arg("--root")
        .arg(&rt)
        .args(["run", "--detach", "--bundle", b.path_str(), &id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(out.success());
    let dir = host.dir(&id);
    let info = json!({
        "id": id, "bundle": b.path(), "runtime_root": rt, "log_dir": dir,
        "monitor_pid": 0, "started_at": "2025-01-01T00:00:00Z"
    });
    std::fs::write(dir.join("monitor.json"), info.to_string()).unwrap();
    std::fs::write(dir.join("monitor.pid"), "0\n").unwrap();
    let MonitorStatus::Orphaned { pid } = inspect(&dir).unwrap() else {
        panic!("{:?}", inspect(&dir))
    };
    assert!(pid_alive(pid));
    let Adopted::Exited(exit) = adopt(&dir).unwrap() else {
        panic!("adopted as live")
    };
    assert!(exit.monitor_lost && exit.signal == Some(libc::SIGKILL));
    assert!(wait_until(SETTLE, || !pid_alive(pid)));
    assert!(!rt.join(&id).exists());
}

/// A tmpfs mounted on a fresh directory, unmounted on drop.
struct TinyDisk {
    dir: TempDir,
}

impl TinyDisk {
    fn new(size: &str) -> TinyDisk {
        let dir = TempDir::new("tiny-disk");
        nix::mount::mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size}").as_str()),
        )
        .expect("mount tmpfs");
        TinyDisk { dir }
    }

    /// Fills the disk with one file; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.dir.path().join("ballast");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = [b'x'; 4096];
        while f.write_all(&block).is_ok() {}
        path
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.dir.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn a_full_log_disk_costs_log_lines_but_not_the_container() {
    let host = Host::new();
    let id = unique("mon-full");
    let disk = TinyDisk::new("256k");
    let shared = TempDir::new("full-shared");
    // 100 lines while the disk is full, then (once told) one more after space came back.
    let b = with_shared(
        sh(
            "i=0; while [ $i -lt 100 ]; do echo \"lost $i\"; i=$((i+1)); done; \
            while [ ! -e /shared/go ]; do sleep 0.05; done; echo after; exit 0",
        ),
        shared.path(),
    );
    let mut opts = host.options(&id, &b);
    opts.log_dir = Some(disk.dir.path().to_path_buf());
    let ballast = disk.fill();
    monitor::spawn(&opts).unwrap();
    let dir = opts.dir;
    let client = Client::new(&dir);
    let dropped = wait_until(SETTLE, || {
        block_on(client.state()).is_ok_and(|s| s.dropped_log_lines == 100)
    });
    assert!(dropped, "{:?}", block_on(client.state()));
    std::fs::remove_file(ballast).unwrap();
    std::fs::write(shared.path().join("go"), b"").unwrap();
    let exit = wait_exit(&dir);
    assert_eq!(exit.exit_code, Some(0), "{exit:?}");
    assert_eq!(exit.dropped_log_lines, 100);
    let log = read_log(disk.dir.path());
    let notes = texts(&log, Stream::Monitor);
    assert_eq!(notes.len(), 1, "{log:?}");
    assert!(notes[0].starts_with("100 lines"), "{notes:?}");
    assert!(notes[0].contains("No space left on device"), "{notes:?}");
    assert_eq!(texts(&log, Stream::Stdout), ["after"]);
}

#[test]
fn a_full_disk_drops_the_oldest_rotated_files_first() {
    let host = Host::new();
    let id = unique("mon-fullrot");
    let disk = TinyDisk::new("64k");
    let b = sh("i=0; while [ $i -lt 3000 ]; do echo \"line $i\"; i=$((i+1)); done");
    let mut opts = host.options(&id, &b);
    opts.log_dir = Some(disk.dir.path().to_path_buf());
    // More than the disk holds: a full disk comes before the rotation limit.
    opts.log_limits = LogLimits {
        max_bytes: 16 * 1024,
        max_files: 10,
    };
    monitor::spawn(&opts).unwrap();
    let exit = wait_exit(&opts.dir);
    assert_eq!(exit.exit_code, Some(0));
    let lines = texts(&read_log(disk.dir.path()), Stream::Stdout);
    assert_eq!(lines.last().map(String::as_str), Some("line 2999"));
    assert!(lines.len() < 3000);
}

#[test]
fn a_missing_rootfs_fails_the_start_with_its_reason_and_leaves_it_recorded() {
    let host = Host::new();
    let id = unique("mon-norootfs");
    let b = Bundle::new(&["true"]).edit(|c| c["root"]["path"] = json!("/no/such/rootfs"));
    let opts = host.options(&id, &b);
    let err = monitor::spawn(&opts).unwrap_err().to_string();
    assert!(err.contains("/no/such/rootfs"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let MonitorStatus::Exited(exit) = inspect(&opts.dir).unwrap() else {
        panic!("{:?}", inspect(&opts.dir))
    };
    assert!(exit
        .error
        .as_deref()
        .is_some_and(|e| e.contains("/no/such/rootfs")));
    assert_eq!(exit.status(), 255);
    assert!(mini_run::state::list_ids(&host.runtime())
        .unwrap()
        .is_empty());
    // One monitor per container life: the directory cannot be reused as it is.
    let again = monitor::spawn(&opts).unwrap_err().to_string();
    assert!(again.contains("exit record"), "{again}");
}

#[test]
fn one_directory_gets_one_monitor() {
    let host = Host::new();
    let id = unique("mon-twice");
    let b = Bundle::new(&["sleep", "1000"]);
    let (dir, _) = host.start(&id, &b);
    let err = monitor::spawn(&host.options(&id, &b))
        .unwrap_err()
        .to_string();
    assert!(err.contains("already runs"), "{err}");
    // The running one is untouched.
    let state = block_on(Client::new(&dir).state()).unwrap();
    assert_eq!(state.status, mini_run::state::Status::Running);
}

#[test]
fn discovery_finds_live_and_exited_containers_and_long_paths_work() {
    let host = Host::new();
    let live = format!("{}-{}", unique("mon-disc"), "x".repeat(120));
    let done = unique("mon-disc-done");
    let (live_dir, started) = host.start(&live, &Bundle::new(&["sleep", "1000"]));
    assert!(live_dir.join("monitor.sock").as_os_str().len() > 108);
    let (done_dir, _) = host.start(&done, &sh("exit 4"));
    wait_exit(&done_dir);
    // A monitor still delivering its last answers is live; it exits right after.
    assert!(wait_until(SETTLE, || matches!(
        inspect(&done_dir),
        Ok(MonitorStatus::Exited(_))
    )));
    let found = discover(host.state.path()).unwrap();
    let ids: Vec<&str> = found.iter().map(|f| f.id.as_str()).collect();
    let mut want = vec![live.as_str(), done.as_str()];
    want.sort();
    assert_eq!(ids, want);
    for f in &found {
        match f.status.as_ref().unwrap() {
            MonitorStatus::Live { monitor_pid } => {
                assert_eq!(
                    (f.id.as_str(), *monitor_pid),
                    (live.as_str(), started.monitor_pid)
                )
            }
            MonitorStatus::Exited(e) => {
                assert_eq!((f.id.as_str(), e.exit_code), (done.as_str(), Some(4)))
            }
            other => panic!("{}: {other:?}", f.id),
        }
    }
    let Adopted::Live(client) = adopt(&live_dir).unwrap() else {
        panic!("a live monitor adopted as exited")
    };
    assert_eq!(block_on(client.state()).unwrap().pid, started.pid);
}

#[test]
fn the_monitor_is_one_small_thread() {
    let host = Host::new();
    let id = unique("mon-size");
    let (_, started) = host.start(&id, &Bundle::new(&["sleep", "1000"]));
    let status = std::fs::read_to_string(format!("/proc/{}/status", started.monitor_pid)).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {status}"))
    };
    assert_eq!(field("Threads:"), 1);
    // Reported, not asserted: the figures depend on the build profile (a debug build's
    // relocations dirty far more pages).
    let rollup =
        std::fs::read_to_string(format!("/proc/{}/smaps_rollup", started.monitor_pid)).unwrap();
    let private = rollup
        .lines()
        .find(|l| l.starts_with("Private_Dirty:"))
        .unwrap_or("Private_Dirty: ?");
    eprintln!("monitor VmRSS: {} kB, {private}", field("VmRSS:"));
}

#[test]
fn a_follower_that_stops_reading_is_dropped_and_never_stalls_the_container() {
    use std::io::{Read, Write};
    let host = Host::new();
    let id = unique("mon-slow");
    let shared = TempDir::new("slow-shared");
    // About 27 MB of log records, far more than a follower may fall behind.
    let b = with_shared(
        sh("while [ ! -e /shared/go ]; do sleep 0.05; done; \
            yes \"$(head -c 1000 /dev/zero | tr '\\0' x)\" | head -n 25000; exit 0"),
        shared.path(),
    );
    let (dir, _) = host.start(&id, &b);
    let mut slow = std::os::unix::net::UnixStream::connect(dir.join("monitor.sock")).unwrap();
    slow.write_all(b"{\"op\":\"logs\",\"follow\":true}\n")
        .unwrap();
    std::fs::write(shared.path().join("go"), b"").unwrap();
    let exit = wait_exit(&dir);
    assert_eq!(exit.exit_code, Some(0));
    let lines = texts(&read_log(&dir), Stream::Stdout);
    assert_eq!(lines.len(), 25000, "every line logged");
    // The follower got a prefix of the log, then the monitor hung up on it (no end marker).
    let mut got = Vec::new();
    slow.set_read_timeout(Some(SETTLE)).unwrap();
    slow.read_to_end(&mut got).unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(
        !text.contains("\"eof\""),
        "a dropped follower gets no end marker"
    );
    assert!(got.len() < 20 << 20, "the follower got {} bytes", got.len());
}

#[test]
fn termination_signals_do_not_stop_the_monitor() {
    let host = Host::new();
    let id = unique("mon-term");
    let (dir, started) = host.start(&id, &Bundle::new(&["sleep", "1000"]));
    let monitor = nix::unistd::Pid::from_raw(started.monitor_pid);
    use nix::sys::signal::Signal::*;
    for sig in [SIGTERM, SIGINT, SIGHUP, SIGQUIT] {
        nix::sys::signal::kill(monitor, sig).unwrap();
    }
    assert!(wait_until(SETTLE, || {
        std::fs::read_to_string(dir.join("monitor.log")).is_ok_and(|l| l.contains("SIGQUIT"))
    }));
    let log = std::fs::read_to_string(dir.join("monitor.log")).unwrap();
    assert!(log.contains("ignoring SIGTERM"), "{log}");
    let state = block_on(Client::new(&dir).state()).unwrap();
    assert_eq!(state.status, mini_run::state::Status::Running);
    assert!(pid_alive(started.pid));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("monitor.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "only root may talk to the monitor");
}

#[test]
fn a_terminal_is_refused_with_a_reason() {
    let host = Host::new();
    let id = unique("mon-tty");
    let b = Bundle::new(&["true"]).edit(|c| c["process"]["terminal"] = json!(true));
    let err = monitor::spawn(&host.options(&id, &b))
        .unwrap_err()
        .to_string();
    assert!(err.contains("process.terminal"), "{err}");
    assert!(mini_run::state::list_ids(&host.runtime())
        .unwrap()
        .is_empty());
}

#[test]
fn exec_keeps_working_after_the_installed_binary_is_replaced() {
    let host = Host::new();
    let id = unique("mon-upgrade");
    // An "installed" copy of mini-shim, on the state directory's filesystem.
    let install = TempDir::new("install");
    let installed = install.path().join("mini-shim");
    // A link, not a copy: a file just written can be "busy" for exec while a process forked
    // by another test thread still holds the writing descriptor.
    if std::fs::hard_link(env!("CARGO_BIN_EXE_mini-shim"), &installed).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_mini-shim"), &installed).unwrap();
    }
    let bundle = Bundle::new(&["sleep", "1000"]);
    let mut opts = host.options(&id, &bundle);
    opts.binary = installed.clone();
    let mut started = monitor::spawn(&opts);
    let busy = |r: &Result<Started, Error>| matches!(r, Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::ETXTBSY));
    wait_until(SETTLE, || {
        if busy(&started) {
            started = monitor::spawn(&opts);
        }
        !busy(&started)
    });
    let started = started.unwrap();
    let dir = opts.dir;
    let exe = std::fs::read_link(format!("/proc/{}/exe", started.monitor_pid)).unwrap();
    assert_eq!(exe, dir.join(".monitor.bin"));
    // The upgrade: a new file renamed over the old path, as package managers do.
    let new = install.path().join("mini-shim.new");
    std::fs::copy(&installed, &new).unwrap();
    std::fs::rename(&new, &installed).unwrap();
    let client = Client::new(&dir);
    let r = block_on(client.exec(&ExecSpec {
        args: vec!["echo".into(), "still here".into()],
        ..Default::default()
    }))
    .unwrap();
    assert_eq!((r.exit_code, r.stdout.as_str()), (Some(0), "still here\n"));
    block_on(client.kill(libc::SIGKILL, false)).unwrap();
    wait_exit(&dir);
    assert!(wait_until(SETTLE, || !pid_alive(started.monitor_pid)));
    assert!(!dir.join(".monitor.bin").exists());
}

#[test]
fn a_monitor_that_cannot_pin_its_binary_runs_unpinned() {
    let host = Host::new();
    let id = unique("mon-unpinned");
    // A container directory on another filesystem than the binary: no hard link possible.
    let disk = TinyDisk::new("1m");
    let dir = disk.dir.path().join(&id);
    std::fs::create_dir(&dir).unwrap();
    let bundle = Bundle::new(&["sleep", "1000"]);
    let mut opts = host.options(&id, &bundle);
    opts.dir = dir.clone();
    monitor::spawn(&opts).unwrap();
    let diagnostics = std::fs::read_to_string(dir.join("monitor.log")).unwrap();
    assert!(diagnostics.contains("running unpinned"), "{diagnostics}");
    let client = Client::new(&dir);
    let r = block_on(client.exec(&ExecSpec {
        args: vec!["true".into()],
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(r.exit_code, Some(0));
    block_on(client.kill(libc::SIGKILL, false)).unwrap();
    assert_eq!(wait_exit(&dir).signal, Some(libc::SIGKILL));
}
