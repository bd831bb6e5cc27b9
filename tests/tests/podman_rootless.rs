//! Rootless podman (Debian's 4.3) with `--runtime mini-run`, as an ordinary user the test makes:
//! podman's storage in the user's home and its state under the user's `XDG_RUNTIME_DIR`, its
//! user namespace from the user's /etc/subuid range (newuidmap), cgroupfs and the file events
//! logger. run, run -d, logs, exec, exec -it, stop, rm. On this cgroup v1 host no cgroup is
//! delegated, so the containers run without one, as with runc (podman itself drops resource
//! limits on rootless cgroup v1, with a warning).

use mini_tests::test_user::TestUser;
use mini_tests::unique;
use std::process::{Command, Output, Stdio};

struct RootlessPodman {
    user: TestUser,
    image: String,
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

impl RootlessPodman {
    fn new() -> RootlessPodman {
        let user = TestUser::new();
        let p = RootlessPodman {
            image: format!("localhost/{}", unique("mini-busybox")),
            user,
        };
        mini_tests::import_fixture(p.cmd(), &p.image);
        p
    }

    /// `podman` as the user, with mini-run as its runtime.
    fn cmd(&self) -> Command {
        let mut c = self.user.command("podman");
        c.args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file", "--runtime"])
            .arg(self.user.mini_run_path());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("podman")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `podman run` arguments: `head`, the limits, then `tail`.
    fn args<'a>(&self, head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
        head.iter().chain(LIMITS).chain(tail).copied().collect()
    }
}

impl Drop for RootlessPodman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "--all", "--force", "--time", "0"]);
        // Storage under subordinate ids is plain files the user's drop removes as root; the
        // lock podman keeps per uid in /dev/shm goes here (a later user may get the uid).
        let lock = format!("/dev/shm/libpod_rootless_lock_{}", self.user.uid());
        let _ = std::fs::remove_file(lock);
    }
}

#[test]
fn rootless_podman_drives_mini_run() {
    let p = RootlessPodman::new();
    let img = p.image.clone();
    let out = p.ok(&p.args(
        &["run", "--rm"],
        &[
            &img,
            "sh",
            "-c",
            "echo attached-$((40+2)); id -u; cat /proc/self/uid_map",
        ],
    ));
    assert!(out.contains("attached-42"), "{out}");
    let uid = p.user.uid().to_string();
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["0", uid.as_str(), "1"]),
        "container root is the user: {out}"
    );

    let name = unique("rpm");
    p.ok(&p.args(
        &["run", "-d", "--name", &name],
        &[
            &img,
            "sh",
            "-c",
            "echo started; while true; do sleep 0.2; done",
        ],
    ));
    let ps = p.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.contains(&name) && ps.contains("Up"), "{ps}");
    let logs = p.ok(&["logs", &name]);
    assert!(logs.contains("started"), "{logs}");
    let out = p.run(&["exec", &name, "sh", "-c", "exit 9"]);
    assert_eq!(out.status.code(), Some(9), "exec exit status");
    let state = p.user.mini_run_ok(&["list", "-q"]);
    assert_eq!(
        state.lines().count(),
        1,
        "mini-run made the container: {state}"
    );

    // exec -it through a terminal.
    let mut exec = p.cmd();
    exec.args(["exec", "-it", &name, "sh"]);
    let line = format!("{exec:?}").replace('"', "");
    let mut script = mini_tests::in_terminal(&line, "echo interactive-$((6*7)); tty; exit 3");
    let out = script.output().expect("script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("interactive-42"), "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");

    p.ok(&["stop", "--time", "1", &name]);
    let status = p.ok(&["inspect", "--format", "{{.State.Status}}", &name]);
    assert_eq!(status.trim(), "exited");
    p.ok(&["rm", &name]);
    let ps = p.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!ps.contains(&name), "{ps}");
}
