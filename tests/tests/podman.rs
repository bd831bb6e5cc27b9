//! podman (Debian's 4.3) drives mini-run as its OCI runtime through conmon: run attached and
//! detached, exec, logs, ps, pause/unpause, limits, stop, kill, rm, and an interactive -it
//! session through a pseudo-terminal. Storage and state live in a private temp dir.

use mini_tests::{cgroups_mentioning, mini_run_bin, remove_cgroups_mentioning, unique, TempDir};
use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

struct Podman {
    dir: TempDir,
    image: String,
    /// The test's own cgroup parent for containers and conmon (podman's default,
    /// `/libpod_parent`, is shared by every podman on the host and never removed).
    cgroup_parent: String,
}

impl Podman {
    fn new() -> Podman {
        let dir = TempDir::new("podman");
        let p = Podman {
            dir,
            image: format!("localhost/{}", unique("mini-busybox")),
            cgroup_parent: unique("mini-tests-podman"),
        };
        // The busybox fixture as an image, imported offline.
        mini_tests::import_fixture(p.cmd(), &p.image);
        p
    }

    fn cmd(&self) -> Command {
        let d = self.dir.path();
        let mut c = mini_tests::private_podman(d);
        // conmon writes an `oom` marker into its working directory: keep it in ours.
        c.current_dir(d).arg("--runtime").arg(mini_run_bin());
        c
    }

    fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("podman")
    }

    fn ok<S: AsRef<OsStr> + std::fmt::Debug>(&self, args: &[S]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "--all", "--force", "--time", "0"]);
        let _ = self.run(&["rmi", "--all", "--force"]);
        // vfs layers are plain directories; containers' mounts are gone with them.
        remove_cgroups_mentioning(&self.cgroup_parent);
    }
}

/// These hosts lack CAP_SYS_RESOURCE: limits must stay within the hard limits.
const LIMITS: &[&str] = &[
    "--network",
    "none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

impl Podman {
    /// `podman run` arguments: `head`, the limits and the test's cgroup parent, then `tail`.
    fn args(&self, head: &[&str], tail: &[&str]) -> Vec<String> {
        let parent = format!("--cgroup-parent=/{}", self.cgroup_parent);
        let limits = LIMITS.iter().copied().chain([parent.as_str()]);
        head.iter()
            .copied()
            .chain(limits)
            .chain(tail.iter().copied())
            .map(String::from)
            .collect()
    }
}

#[test]
fn podman_drives_mini_run_through_a_container_lifecycle() {
    let p = Podman::new();
    let img = p.image.clone();
    let out = p.ok(&p.args(
        &["run", "--rm"],
        &[&img, "sh", "-c", "echo attached-$((40+2)); hostname"],
    ));
    assert!(out.contains("attached-42"), "{out}");

    let name = unique("pm");
    p.ok(&p.args(
        &[
            "run",
            "-d",
            "--name",
            &name,
            "--memory",
            "64m",
            "--pids-limit",
            "50",
        ],
        &[
            &img,
            "sh",
            "-c",
            "echo started; while true; do sleep 0.2; done",
        ],
    ));
    let ps = p.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.contains(&name) && ps.contains("Up"), "{ps}");
    assert!(
        !cgroups_mentioning(&p.cgroup_parent).is_empty(),
        "the container's cgroup is under the test's own parent"
    );
    let logs = p.ok(&["logs", &name]);
    assert!(logs.contains("started"), "{logs}");
    let limits = p.ok(&[
        "exec", &name, "sh", "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
         cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
    ]);
    assert_eq!(
        limits.split_whitespace().collect::<Vec<_>>(),
        ["67108864", "50"],
        "{limits}"
    );
    let out = p.run(&["exec", &name, "sh", "-c", "exit 9"]);
    assert_eq!(out.status.code(), Some(9), "exec exit status");
    p.ok(&["pause", &name]);
    let status = p.ok(&["inspect", "--format", "{{.State.Status}}", &name]);
    assert_eq!(status.trim(), "paused");
    p.ok(&["unpause", &name]);
    p.ok(&["kill", &name]);
    p.ok(&["rm", &name]);
    let ps = p.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!ps.contains(&name), "{ps}");
}

#[test]
fn podman_memory_limit_kills_an_allocating_container() {
    let p = Podman::new();
    let img = p.image.clone();
    let out = p.run(&p.args(
        &["run", "--rm", "--memory", "16m", "--memory-swap", "16m"],
        &[&img, "/bin/probe", "alloc", "256"],
    ));
    assert_eq!(
        out.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn podman_interactive_session_through_a_terminal() {
    let p = Podman::new();
    let img = p.image.clone();
    let mut cmd = p.cmd();
    cmd.args(p.args(&["run", "--rm", "-it"], &[&img, "sh"]));
    let line = format!("{cmd:?}").replace('"', "");
    // `script` gives podman a terminal; the shell's input arrives after it starts.
    let out = mini_tests::in_terminal(&line, "echo interactive-$((6*7)); tty; exit 3")
        .current_dir(p.dir.path())
        .output()
        .expect("script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("interactive-42"), "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert_eq!(out.status.code(), Some(3), "{text}");
}

#[test]
fn podman_stop_sends_a_real_time_stop_signal() {
    // podman passes `--stop-signal SIGRTMIN+3` (systemd containers) to `kill` as 37.
    let p = Podman::new();
    let img = p.image.clone();
    let name = unique("pmrt");
    p.ok(&p.args(
        &["run", "-d", "--name", &name, "--stop-signal", "SIGRTMIN+3"],
        &[
            &img,
            "sh",
            "-c",
            "trap 'exit 0' 37; echo trapped; while :; do sleep 0.1; done",
        ],
    ));
    assert!(
        mini_tests::wait_until(std::time::Duration::from_secs(20), || p
            .ok(&["logs", &name])
            .contains("trapped")),
        "the container never installed its trap"
    );
    // Well below the timeout: only the signal itself can stop it in time with status 0.
    p.ok(&["stop", "--time", "60", &name]);
    let code = p.ok(&["inspect", "--format", "{{.State.ExitCode}}", &name]);
    assert_eq!(
        code.trim(),
        "0",
        "the container ended by its trap, not SIGKILL"
    );
}
