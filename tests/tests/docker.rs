//! Docker Engine (Debian's docker.io 20.10) drives mini-run, registered with `--add-runtime`:
//! run attached and detached, exec, logs, ps, top, pause/unpause, limits, stop, start, kill,
//! rm, an OOM kill, and interactive `-it` sessions through a pseudo-terminal. Each test runs
//! a private dockerd (and the containerd it manages) with its data, state, socket and cgroup
//! parent in a temp dir / unique name, and stops it and removes all of it afterwards.

use mini_tests::{
    in_terminal, mini_run_bin, mounts_under, remove_cgroups_mentioning, unique, wait_until,
    DaemonCgroup, TempDir,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// docker.io's daemon and client, by path: another package may put a newer client first on
/// PATH.
const DOCKERD: &str = "/usr/sbin/dockerd";
const DOCKER: &str = "/usr/bin/docker";

struct Docker {
    dir: TempDir,
    daemon: Option<Child>,
    cgroup_parent: String,
    image: String,
    /// Holds dockerd, its containerd and their shims: whatever outlives `stop_daemon` is
    /// killed when it drops.
    daemons: DaemonCgroup,
}

impl Docker {
    fn start() -> Docker {
        for tool in [DOCKERD, DOCKER] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: install Debian's docker.io (apt-get install docker.io; .ci/run does)"
            );
        }
        let dir = TempDir::new("docker");
        let d = dir.path();
        // An empty config keeps the host's /etc/docker/daemon.json out.
        std::fs::write(d.join("daemon.json"), "{}").unwrap();
        let cgroup_parent = unique("mini-tests-docker");
        let daemons = DaemonCgroup::new("mini-tests-dockerd");
        let daemon = daemons
            .adopt(&mut Command::new(DOCKERD))
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("dockerd.pid"))
            .arg("--host")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(["--ip-forward=false", "--ip-masq=false"])
            .args(["--storage-driver", "overlay2"])
            .args(["--exec-opt", "native.cgroupdriver=cgroupfs"])
            .arg(format!("--cgroup-parent=/{cgroup_parent}"))
            .arg(format!("--add-runtime=mini={}", mini_run_bin().display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("dockerd.log")).unwrap())
            .spawn()
            .expect("start dockerd");
        let docker = Docker {
            dir,
            daemon: Some(daemon),
            cgroup_parent,
            image: unique("mini-busybox"),
            daemons,
        };
        let up = wait_until(Duration::from_secs(60), || {
            docker.run(&["version"]).status.success()
        });
        assert!(up, "dockerd did not come up: {}", docker.log());
        // The busybox fixture as an image, imported offline.
        mini_tests::import_fixture(docker.cmd(), &docker.image);
        docker
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    fn cmd(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new(DOCKER);
        c.env("DOCKER_CONFIG", d.join("client"))
            .arg("--host")
            .arg(format!("unix://{}", d.join("docker.sock").display()));
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("docker")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `docker run` with mini-run as the runtime and no network, then `tail` (options, image,
    /// command).
    fn run_mini(&self, head: &[&str], tail: &[&str]) -> Output {
        let args: Vec<&str> = head
            .iter()
            .chain(&["--runtime", "mini", "--network", "none"])
            .chain(tail)
            .copied()
            .collect();
        self.run(&args)
    }

    /// A field of `docker inspect`.
    fn inspect(&self, format: &str, name: &str) -> String {
        self.ok(&["inspect", "--format", format, name])
    }

    /// The state mini-run keeps for container `id`: the runc v2 shim passes this `--root`. It
    /// also proves mini-run, not runc, created the container: runc's state files are not
    /// mini-run's.
    fn mini_run_state(&self, id: &str) -> Option<Value> {
        let root = self.dir.path().join("exec/runtime-runc/moby");
        let out = Command::new(mini_run_bin())
            .arg("--root")
            .arg(root)
            .args(["state", id])
            .output()
            .expect("mini-run");
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).expect("state JSON"))
    }

    /// A shell command line running docker with `args` (for `script`, which gives it a terminal).
    fn shell_line(&self, args: &str) -> String {
        let d = self.dir.path();
        format!(
            "DOCKER_CONFIG={} {DOCKER} --host unix://{} {args}",
            d.join("client").display(),
            d.join("docker.sock").display()
        )
    }

    /// Stops the daemon: containers first (dockerd would wait for each), then dockerd by its
    /// pid, which stops its containerd; whatever is left in the daemons' cgroup is killed.
    fn stop_daemon(&mut self, mut daemon: Child) {
        let ids = self.run(&["ps", "--all", "--quiet"]).stdout;
        for id in String::from_utf8_lossy(&ids).lines() {
            let _ = self.run(&["rm", "--force", id]);
        }
        let pid = Pid::from_raw(daemon.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let stopped = wait_until(Duration::from_secs(30), || {
            daemon.try_wait().ok().flatten().is_some()
        });
        if !stopped {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        // Its containerd and the shims, if still there.
        self.daemons.kill_all();
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        if let Some(daemon) = self.daemon.take() {
            self.stop_daemon(daemon);
        }
        // dockerd may leave its data-root bind mount (and, if it was killed, layer mounts).
        for m in mounts_under(self.dir.path()) {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
        remove_cgroups_mentioning(&self.cgroup_parent);
    }
}

#[test]
fn docker_drives_mini_run_through_a_container_lifecycle() {
    let dk = Docker::start();
    let img = dk.image.clone();
    let out = dk.run_mini(
        &["run", "--rm"],
        &[&img, "sh", "-c", "echo attached-$((40+2)); exit 3"],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("attached-42"));

    let name = unique("dk");
    let out = dk.run_mini(
        &[
            "run",
            "--detach",
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
            "trap 'exit 5' TERM; echo started; while true; do sleep 0.2; done",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(dk.inspect("{{.HostConfig.Runtime}}", &name), "mini");
    let state = dk
        .mini_run_state(&id)
        .unwrap_or_else(|| panic!("mini-run does not know {id}: {}", dk.log()));
    assert_eq!(state["status"], "running", "{state}");
    assert_eq!(
        state["pid"].to_string(),
        dk.inspect("{{.State.Pid}}", &name),
        "{state}"
    );

    let ps = dk.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.contains(&name) && ps.contains("Up"), "{ps}");
    let logged = wait_until(Duration::from_secs(10), || {
        dk.ok(&["logs", &name]).contains("started")
    });
    assert!(logged, "{}", dk.ok(&["logs", &name]));
    let top = dk.ok(&["top", &name]);
    assert!(top.contains("trap"), "{top}");
    let limits = dk.ok(&[
        "exec",
        &name,
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max",
    ]);
    assert_eq!(
        limits.split_whitespace().collect::<Vec<_>>(),
        ["67108864", "50"],
        "{limits}"
    );
    let out = dk.run(&["exec", &name, "sh", "-c", "echo exec-ok; exit 9"]);
    assert_eq!(out.status.code(), Some(9), "exec exit status");
    assert!(String::from_utf8_lossy(&out.stdout).contains("exec-ok"));

    dk.ok(&["pause", &name]);
    assert_eq!(dk.inspect("{{.State.Status}}", &name), "paused");
    assert_eq!(dk.mini_run_state(&id).expect("state")["status"], "paused");
    dk.ok(&["unpause", &name]);
    assert_eq!(dk.inspect("{{.State.Status}}", &name), "running");

    // The shell's TERM trap exits 5: stop's signal reached the container's init.
    dk.ok(&["stop", &name]);
    assert_eq!(
        dk.inspect("{{.State.Status}} {{.State.ExitCode}}", &name),
        "exited 5"
    );
    assert!(dk.mini_run_state(&id).is_none(), "deleted from mini-run");
    dk.ok(&["start", &name]);
    assert_eq!(dk.mini_run_state(&id).expect("state")["status"], "running");
    dk.ok(&["kill", &name]);
    let killed = wait_until(Duration::from_secs(10), || {
        dk.inspect("{{.State.Status}} {{.State.ExitCode}}", &name) == "exited 137"
    });
    assert!(killed, "{}", dk.inspect("{{.State.Status}}", &name));
    dk.ok(&["rm", &name]);
    let ps = dk.ok(&["ps", "--all", "--format", "{{.Names}}"]);
    assert!(!ps.contains(&name), "{ps}");
}

#[test]
fn docker_memory_limit_kills_an_allocating_container() {
    let dk = Docker::start();
    let name = unique("dk-oom");
    let out = dk.run_mini(
        &[
            "run",
            "--name",
            &name,
            "--memory",
            "16m",
            "--memory-swap",
            "16m",
        ],
        &[&dk.image, "/bin/probe", "alloc", "256"],
    );
    assert_eq!(
        out.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // dockerd learns of the OOM from containerd's event stream, which may come after the
    // exit status: poll until inspect settles.
    let oom = wait_until(Duration::from_secs(60), || {
        dk.inspect("{{.State.OOMKilled}}", &name) == "true"
    });
    assert!(oom, "{}", dk.inspect("{{json .State}}", &name));
}

#[test]
fn docker_interactive_sessions_through_a_terminal() {
    let dk = Docker::start();
    let line = dk.shell_line(&format!(
        "run --rm -it --runtime mini --network none {} sh",
        dk.image
    ));
    let out = in_terminal(&line, "echo interactive-$((6*7)); tty; exit 3")
        .output()
        .expect("script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("interactive-42"), "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert_eq!(out.status.code(), Some(3), "{text}");

    let name = unique("dk-it");
    let out = dk.run_mini(
        &["run", "--detach", "--name", &name],
        &[&dk.image, "sleep", "1000"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = dk.shell_line(&format!("exec -it {name} sh"));
    let out = in_terminal(&line, "echo exec-$((6*7)); tty; exit 4")
        .output()
        .expect("script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("exec-42"), "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert_eq!(out.status.code(), Some(4), "{text}");
}
