//! Shared helpers for the integration tests: the mini-run binary, fixture bundles, a private
//! state root per test, and leak accounting. Everything a test creates has a unique name and
//! is removed when the helper is dropped, even if the test fails.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name no other test (or test run) uses: `prefix-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// The mini-run binary under test: `$MINI_RUN_BIN`, or the one built beside the test binary.
pub fn mini_run_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MINI_RUN_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> → target/<profile>/mini-run
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("mini-run");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build --release -p mini-run)",
        bin.display()
    );
    bin
}

/// The busybox rootfs with the probe at /bin/probe.
pub fn fixture_rootfs() -> PathBuf {
    let p = workspace().join("rootfs-fixtures/out/busybox");
    assert!(
        p.join("bin/probe").exists(),
        "{} is missing: run rootfs-fixtures/build.sh",
        p.display()
    );
    p
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates /tmp/mini-tests-<unique>.
    pub fn new(prefix: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique(&format!("mini-tests-{prefix}")));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A bundle whose config.json is mini-run's default spec with the fixture rootfs, no terminal
/// and the given command; tests edit `config` before `write`.
pub struct Bundle {
    dir: TempDir,
    /// The config to write.
    pub config: Value,
}

impl Bundle {
    /// A bundle running `args`.
    pub fn new(args: &[&str]) -> Bundle {
        let mut config = mini_run::spec::default_spec(false);
        config["root"]["path"] = Value::from(fixture_rootfs().to_str().expect("utf-8 path"));
        config["process"]["terminal"] = Value::from(false);
        config["process"]["args"] = Value::from(args.to_vec());
        let b = Bundle {
            dir: TempDir::new("bundle"),
            config,
        };
        b.write();
        b
    }

    /// Writes config.json (again).
    pub fn write(&self) {
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).expect("json"),
        )
        .expect("write config.json");
    }

    /// Edits the config and writes it.
    pub fn edit(mut self, f: impl FnOnce(&mut Value)) -> Bundle {
        f(&mut self.config);
        self.write();
        self
    }

    /// The bundle directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A private state root (`--root`); on drop every container in it is force-deleted.
pub struct Runtime {
    root: TempDir,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    /// A fresh, empty root.
    pub fn new() -> Runtime {
        Runtime {
            root: TempDir::new("root"),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// A `mini-run --root <root> ARGS` command, stdin from /dev/null.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(mini_run_bin());
        c.arg("--root").arg(self.root()).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Runs mini-run with `args` and captures its output.
    pub fn cmd(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("spawn mini-run")
    }

    /// Runs mini-run and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "mini-run {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Foreground `run` of a bundle; returns the output.
    pub fn run(&self, bundle: &Bundle, id: &str) -> Output {
        self.cmd(&[
            "run",
            "--bundle",
            bundle.path().to_str().expect("utf-8"),
            id,
        ])
    }

    /// Foreground `run` of a probe `report`; returns the parsed JSON.
    pub fn report(&self, bundle: &Bundle) -> Value {
        let out = self.run(bundle, &unique("report"));
        assert!(
            out.status.success(),
            "run failed ({:?}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "probe output is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// `create` a container from the bundle.
    pub fn create(&self, bundle: &Bundle, id: &str) -> Output {
        self.cmd(&[
            "create",
            "--bundle",
            bundle.path().to_str().expect("utf-8"),
            id,
        ])
    }

    /// The container's `state` as JSON.
    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state JSON")
    }

    /// The container's status string.
    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .expect("status")
            .to_string()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.root()) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.cmd(&["delete", "--force", &id]);
            }
        }
    }
}

/// The one-line error a failed command printed.
pub fn stderr_line(out: &Output) -> String {
    let s = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(s.lines().count(), 1, "expected one line of error, got: {s}");
    s
}

/// Mount points of the host (this process's namespace) that mention `needle`.
pub fn mounts_mentioning(needle: &str) -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// Cgroup directories on the host whose path mentions `needle`.
pub fn cgroups_mentioning(needle: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, needle: &str, depth: u32, out: &mut Vec<PathBuf>) {
        if depth > 4 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) && !e.path().is_symlink() {
                if p.to_string_lossy().contains(needle) {
                    out.push(p.clone());
                }
                walk(&p, needle, depth + 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), needle, 0, &mut out);
    out
}

/// Host processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// Open descriptors of this process.
pub fn own_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("fds").count()
}
