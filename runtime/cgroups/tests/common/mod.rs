//! Shared helpers for the integration tests: unique cgroup names, real child processes and
//! guards that clean up even when a test fails.

#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use mini_cgroups::{CgroupConfig, Manager, Version};
use mini_test_skip::{skip, Need};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A cgroup name no other test (or concurrent test run) uses.
pub fn unique(test: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("mini-cgroups-test-{}-{n}-{test}", std::process::id())
}

/// Whether the tests can touch cgroups at all.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A manager plus the processes a test put in it; dropping it kills those processes (by pid,
/// through their handles) and destroys the cgroup.
pub struct Guard {
    pub mgr: Box<dyn Manager>,
    pub children: Vec<Child>,
    /// Top directory of the test (relative to the hierarchy root), for leak checks.
    pub top: PathBuf,
}

impl Guard {
    /// Spawns `sleep 1000` and moves it into the cgroup.
    pub fn add_sleeper(&mut self) -> i32 {
        let child = Command::new("sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        let pid = child.id() as i32;
        self.children.push(child);
        self.mgr.add_process(pid).expect("add_process");
        pid
    }

    /// Spawns `sh -c script` that first waits for a line on stdin, moves it into the cgroup
    /// and returns the handle used to release it.
    pub fn add_gated_shell(&mut self, script: &str) -> (i32, ChildStdin) {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("read go; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let pid = child.id() as i32;
        let stdin = child.stdin.take().expect("stdin");
        self.children.push(child);
        self.mgr.add_process(pid).expect("add_process");
        (pid, stdin)
    }

    /// Releases a gated shell and waits for its output.
    pub fn release(&mut self, mut stdin: ChildStdin, pid: i32) -> std::process::Output {
        stdin.write_all(b"go\n").expect("release");
        drop(stdin);
        let idx = self
            .children
            .iter()
            .position(|c| c.id() as i32 == pid)
            .expect("known child");
        self.children.remove(idx).wait_with_output().expect("wait")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.mgr.thaw();
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Err(e) = self.mgr.destroy() {
            eprintln!("cleanup: {e}");
        }
    }
}

/// A created v1 manager at "/<unique>/c", or `None` (with a note) when the host is not v1.
pub fn v1(test: &str) -> Option<Guard> {
    if !is_root() || mini_cgroups::detect().ok()? != Version::V1 {
        skip(
            test,
            Need::CgroupV1,
            "needs root on a cgroup v1 (or hybrid) host",
        );
        return None;
    }
    let top = PathBuf::from("/").join(unique(test));
    let mut mgr = mini_cgroups::new_manager(Some(&top.join("c")), "c").expect("new_manager");
    mgr.create().expect("create");
    Some(Guard {
        mgr,
        children: Vec::new(),
        top,
    })
}

/// The cgroup2 mount to test v2 code on: /sys/fs/cgroup on a v2 host, or the hybrid host's
/// unified tree (which has the core files but usually no controllers).
pub fn v2_mount() -> Option<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let all: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let point = PathBuf::from(pre.split(' ').nth(4)?);
            (post.split(' ').next()? == "cgroup2").then_some(point)
        })
        .collect();
    all.iter()
        .find(|m| *m == Path::new("/sys/fs/cgroup"))
        .or_else(|| all.first())
        .cloned()
}

/// A created v2 manager at "/<unique>/c" on [`v2_mount`], or `None` (with a note) when there
/// is no cgroup2 filesystem or it lacks one of `controllers`.
pub fn v2(test: &str, controllers: &[&str]) -> Option<Guard> {
    let Some(mount) = v2_mount().filter(|_| is_root()) else {
        skip(test, Need::CgroupV2, "needs root and a cgroup2 filesystem");
        return None;
    };
    let available = fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
    let available: Vec<&str> = available.split_whitespace().collect();
    if let Some(missing) = controllers.iter().find(|c| !available.contains(c)) {
        let reason = format!(
            "the cgroup2 tree at {} has no {missing} controller (needs a pure v2 host)",
            mount.display()
        );
        skip(test, Need::CgroupV2, &reason);
        return None;
    }
    let top = PathBuf::from("/").join(unique(test));
    let config = CgroupConfig::v2(&mount, &top.join("c"));
    let mut mgr = mini_cgroups::open(&config).expect("open");
    mgr.create().expect("create");
    Some(Guard {
        mgr,
        children: Vec::new(),
        top,
    })
}

/// The process state letter from /proc/<pid>/stat.
pub fn proc_state(pid: i32) -> char {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    after.chars().next().expect("state")
}

/// Waits (up to 5 s, for slow emulated guests) until the process is in `state`; returns the
/// state last seen.
pub fn wait_state(pid: i32, state: char) -> char {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let s = proc_state(pid);
        if s == state || std::time::Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Reads a control file of the container's cgroup in the hierarchy holding `controller`
/// (v2: the only one), trimmed.
pub fn read(g: &Guard, controller: &str, file: &str) -> String {
    let h = g
        .mgr
        .config()
        .hierarchies
        .iter()
        .find(|h| h.controllers.iter().any(|c| c == controller) || h.name.is_empty())
        .expect("hierarchy");
    fs::read_to_string(h.dir.join(file))
        .unwrap_or_else(|e| panic!("reading {file}: {e}"))
        .trim()
        .to_string()
}

/// The first real block device (not loop/ram/zram) as (major, minor).
pub fn block_device() -> Option<(i64, i64)> {
    let mut names: Vec<String> = fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram") && !n.starts_with("zram"))
        .collect();
    names.sort();
    let dev = fs::read_to_string(format!("/sys/block/{}/dev", names.first()?)).ok()?;
    let (a, b) = dev.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Builds `LinuxResources` from spec JSON.
pub fn resources(json: serde_json::Value) -> oci_spec::runtime::LinuxResources {
    serde_json::from_value(json).expect("resources json")
}
