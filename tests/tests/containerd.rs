//! containerd 1.6 (io.containerd.runc.v2 shim) drives mini-run as its runc binary, through
//! `ctr`: image import, run, exec, metrics, kill, delete. A private containerd daemon runs on
//! a socket in a temp dir for the test, in a cgroup of its own that also holds the shims it
//! starts; the runtime's state (`--runc-root`) and the containers' cgroups (`--cgroup`) are the
//! test's too. Teardown deletes what the test made and kills everything in that cgroup.

use mini_tests::{mini_run_bin, remove_cgroups_mentioning, unique, DaemonCgroup, TempDir};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

struct Containerd {
    dir: TempDir,
    daemon: Child,
    /// Holds containerd and its shims (declared after `daemon`: dropped after it is killed).
    cgroup: DaemonCgroup,
    /// The containers' cgroup parent.
    parent: String,
}

impl Containerd {
    fn start() -> Containerd {
        let dir = TempDir::new("containerd");
        let d = dir.path();
        let config = format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n[grpc]\n  address = \"{0}/containerd.sock\"\n",
            d.display()
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let cgroup = DaemonCgroup::new("mini-tests-containerd");
        let daemon = cgroup
            .adopt(&mut Command::new("containerd"))
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("containerd.log")).unwrap())
            .spawn()
            .expect("containerd is installed (.ci/run installs it)");
        let c = Containerd {
            dir,
            daemon,
            cgroup,
            parent: unique("mini-tests-ctd"),
        };
        let up = mini_tests::wait_until(Duration::from_secs(20), || {
            c.ctr(&["version"]).status.success()
        });
        assert!(up, "containerd did not come up");
        c
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ctr")
    }

    /// The runtime's state root the runc v2 shim passes to mini-run (`ctr run --runc-root`).
    fn runc_root(&self) -> std::path::PathBuf {
        self.dir.path().join("runc")
    }

    /// `ctr run` options: mini-run as the runtime, with the test's state root, cgroup parent
    /// and snapshotter.
    fn run_args(&self, id: &str) -> Vec<String> {
        vec![
            "run".into(),
            "--runc-binary".into(),
            mini_run_bin().display().to_string(),
            "--runc-root".into(),
            self.runc_root().display().to_string(),
            "--cgroup".into(),
            format!("/{}/{id}", self.parent),
            "--snapshotter".into(),
            "native".into(),
        ]
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Containers a failed test left: their tasks and state, through the runtime.
        for line in String::from_utf8_lossy(&self.ctr(&["task", "ls", "-q"]).stdout).lines() {
            let _ = self.ctr(&["task", "delete", "--force", line.trim()]);
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        self.cgroup.kill_all();
        let root = self.runc_root();
        if let Ok(ids) = std::fs::read_dir(&root) {
            for id in ids.flatten() {
                let _ = Command::new(mini_run_bin())
                    .arg("--root")
                    .arg(&root)
                    .args(["delete", "--force"])
                    .arg(id.file_name())
                    .output();
            }
        }
        // The snapshots' bind mounts of the native snapshotter, if containerd was killed.
        for m in mini_tests::mounts_under(self.dir.path()) {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
        remove_cgroups_mentioning(&self.parent);
    }
}

/// The busybox fixture as an OCI archive, made offline with podman (import, then save).
fn oci_archive(dir: &TempDir, image: &str) -> std::path::PathBuf {
    let d = dir.path();
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(d.join("pm-root"))
            .arg("--runroot")
            .arg(d.join("pm-run"))
            .args(["--storage-driver", "vfs"])
            .args(args);
        c
    };
    mini_tests::import_fixture(podman(&[]), image);
    let archive = d.join("image.tar");
    let out = podman(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        archive.to_str().unwrap(),
        image,
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = podman(&["rmi", "--all", "--force"]).output();
    archive
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn containerd_runs_execs_measures_kills_and_deletes_through_mini_run() {
    let ctd = Containerd::start();
    let image = format!("localhost/{}:latest", unique("ctd-busybox"));
    let archive = oci_archive(&ctd.dir, &image);
    ctd.ok(&["images", "import", archive.to_str().unwrap()]);
    let with = |id: &str, tail: &[&str]| -> Vec<String> {
        let mut v = ctd.run_args(id);
        v.extend(tail.iter().map(|s| s.to_string()));
        v
    };

    let id = unique("ctd-fg");
    let fg = with(
        &id,
        &["--rm", &image, &id, "sh", "-c", "echo hello-$((6*7))"],
    );
    let out = ctd.ok(&strs(&fg));
    assert!(out.contains("hello-42"), "{out}");

    let id = unique("ctd");
    ctd.ok(&strs(&with(&id, &["-d", &image, &id, "sleep", "100"])));
    // mini-run made it, in the test's own state root (not /run/containerd/runc).
    assert!(ctd.runc_root().join("default").join(&id).exists());
    let out = ctd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        &id,
        "sh",
        "-c",
        "echo exec-ok; exit 4",
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("exec-ok"));
    // The shim samples the cgroup when asked; under load the first answer may come before
    // the container's cgroup has a sample: ask until one arrives.
    let mut metrics = String::new();
    let measured = mini_tests::wait_until(Duration::from_secs(60), || {
        let out = ctd.ctr(&["task", "metrics", &id]);
        metrics = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.status.success() && metrics.contains("memory") && metrics.contains("usage")
    });
    assert!(measured, "{metrics}");
    ctd.ok(&["task", "kill", "-s", "SIGKILL", &id]);
    let stopped = mini_tests::wait_until(Duration::from_secs(10), || {
        ctd.ok(&["task", "ls"])
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("STOPPED"))
    });
    assert!(stopped, "{}", ctd.ok(&["task", "ls"]));
    ctd.ok(&["task", "delete", &id]);
    ctd.ok(&["container", "delete", &id]);
    assert!(!ctd.ok(&["task", "ls"]).contains(&id));
}
