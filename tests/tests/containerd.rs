//! containerd 1.6 (io.containerd.runc.v2 shim) drives mini-run as its runc binary, through
//! `ctr`: image import, run, exec, metrics, kill, delete. A private containerd daemon runs on
//! a socket in a temp dir for the test and is stopped (by pid) afterwards.

use mini_tests::{mini_run_bin, unique, TempDir};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

struct Containerd {
    dir: TempDir,
    daemon: Child,
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
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("containerd.log")).unwrap())
            .spawn()
            .expect("containerd is installed (.ci/run installs it)");
        let c = Containerd { dir, daemon };
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
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
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

#[test]
fn containerd_runs_execs_measures_kills_and_deletes_through_mini_run() {
    let ctd = Containerd::start();
    let image = format!("localhost/{}:latest", unique("ctd-busybox"));
    let archive = oci_archive(&ctd.dir, &image);
    ctd.ok(&["images", "import", archive.to_str().unwrap()]);
    let bin = mini_run_bin();
    let bin = bin.to_str().unwrap();
    let run = ["run", "--runc-binary", bin, "--snapshotter", "native"];

    let id = unique("ctd-fg");
    let out = ctd.ok(&[
        &run[..],
        &["--rm", &image, &id, "sh", "-c", "echo hello-$((6*7))"],
    ]
    .concat());
    assert!(out.contains("hello-42"), "{out}");

    let id = unique("ctd");
    ctd.ok(&[&run[..], &["-d", &image, &id, "sleep", "100"]].concat());
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
    let metrics = ctd.ok(&["task", "metrics", &id]);
    assert!(
        metrics.contains("memory") && metrics.contains("usage"),
        "{metrics}"
    );
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
