//! An unprivileged user for the rootless tests: a uniquely named account made with `useradd`,
//! with a range of subordinate ids in /etc/subuid and /etc/subgid (for `newuidmap`), a home
//! and a private `XDG_RUNTIME_DIR` in a temp dir, and commands run as it with a clean
//! environment. Dropping it kills what is left of its processes, removes its ranges, the
//! account and every file it had, even when the test failed. Where /etc is read-only (the
//! cgroup v2 VM) [`TestUser::without_account`] is a bare uid and gid with no account.

use crate::{unique, TempDir};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// How many subordinate ids the user gets (as `useradd` gives a new user by default).
pub const SUBID_COUNT: u32 = 65536;

/// A temporary unprivileged user.
pub struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
    subid_start: u32,
    /// Whether `useradd` made an account (and ranges) that drop removes.
    account: bool,
    dir: TempDir,
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn id_of(flag: &str, name: &str) -> u32 {
    let out = Command::new("id").args([flag, name]).output().expect("id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("id {flag} {name}: {out:?}"))
}

impl TestUser {
    fn dir() -> TempDir {
        let dir = TempDir::new("rootless");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("temp dir mode");
        dir
    }

    fn make_runtime_dir(self) -> TestUser {
        let run = self.runtime_dir();
        std::fs::create_dir(&run).expect("runtime dir");
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).expect("mode");
        self.chown(&run);
        let home = self.home();
        if !home.exists() {
            std::fs::create_dir(&home).expect("home");
            self.chown(&home);
        }
        self
    }

    /// A uid and gid no account uses (from this process id and a counter), with a home and a runtime
    /// directory but no account and no subordinate ids: for hosts whose /etc is read-only.
    pub fn without_account() -> TestUser {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 100;
        let uid = 3_000_000 + (std::process::id() % 100_000) * 100 + n;
        TestUser {
            name: format!("uid{uid}"),
            uid,
            gid: uid,
            subid_start: 0,
            account: false,
            dir: Self::dir(),
        }
        .make_runtime_dir()
    }

    /// Creates the user, its ranges, its home and its runtime directory.
    pub fn new() -> TestUser {
        let name = unique("mrtu");
        let dir = Self::dir();
        let home = dir.path().join("home");
        // A range per user that no other test process picks: from this process id and name.
        let slot = name.bytes().fold(std::process::id(), |h, b| {
            h.wrapping_mul(31).wrapping_add(u32::from(b))
        }) % 60000;
        let subid_start = 1_000_000 + slot * SUBID_COUNT;
        let range = format!("{subid_start}-{}", subid_start + SUBID_COUNT - 1);
        run_ok(
            Command::new("useradd")
                .args(["--no-user-group", "--gid", "nogroup", "--shell", "/bin/sh"])
                .args(["--create-home", "--home-dir"])
                .arg(&home)
                .arg(&name),
        );
        // From here on the drop removes the account, even if a step below fails.
        let mut user = TestUser {
            uid: 0,
            gid: 0,
            subid_start,
            account: true,
            dir,
            name,
        };
        user.uid = id_of("-u", &user.name);
        user.gid = id_of("-g", &user.name);
        run_ok(
            Command::new("usermod")
                .args(["--add-subuids", &range, "--add-subgids", &range])
                .arg(&user.name),
        );
        user.make_runtime_dir()
    }

    /// The account's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its uid.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// Its (primary) gid.
    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// The first of its subordinate uids and gids (there are [`SUBID_COUNT`]).
    pub fn subid_start(&self) -> u32 {
        assert!(
            self.account,
            "a user without an account has no subordinate ids"
        );
        self.subid_start
    }

    /// Its home directory.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Its private `XDG_RUNTIME_DIR` (0700, its own).
    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// A directory for the test's files, removed with the user (readable by it).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// Makes `path` (recursively) the user's, as `chown -R` does (symlinks not followed).
    pub fn chown(&self, path: &Path) {
        run_ok(
            Command::new("chown")
                .args(["-R", "-h", &format!("{}:{}", self.uid, self.gid)])
                .arg(path),
        );
    }

    /// A command running `program` as the user: its ids and groups, no capabilities, and only
    /// the environment a login gives (HOME, USER, LOGNAME, PATH, XDG_RUNTIME_DIR).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("setpriv");
        c.env_clear()
            .env("HOME", self.home())
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .args([
                format!("--reuid={}", self.uid).as_str(),
                format!("--regid={}", self.gid).as_str(),
                if self.account {
                    "--init-groups"
                } else {
                    "--clear-groups"
                },
                "--inh-caps=-all",
                "--",
            ])
            .arg(program)
            .current_dir(self.dir.path());
        c
    }

    /// Runs `program ARGS` as the user and returns its output.
    pub fn output(&self, program: impl AsRef<OsStr>, args: &[&str]) -> Output {
        crate::captured_output(self.command(program).args(args))
    }

    /// A bundle directory of the user's: the busybox fixture rootfs copied into `rootfs`, all
    /// owned by the user (config.json is left to the caller).
    pub fn bundle(&self, name: &str) -> PathBuf {
        let bundle = self.dir.path().join(name);
        std::fs::create_dir(&bundle).expect("bundle dir");
        run_ok(
            Command::new("cp")
                .arg("-a")
                .arg(crate::fixture_rootfs())
                .arg(bundle.join("rootfs")),
        );
        self.chown(&bundle);
        bundle
    }

    /// The mini-run binary under test, copied where the user can run it (the workspace may
    /// lie in a directory it cannot enter).
    pub fn mini_run_path(&self) -> PathBuf {
        let bin = self.dir.path().join("mini-run");
        if !bin.exists() {
            std::fs::copy(crate::mini_run_bin(), &bin).expect("copy mini-run");
            std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("mode");
        }
        bin
    }

    /// Runs `mini-run ARGS` as the user (its default root: `$XDG_RUNTIME_DIR/mini-run`).
    pub fn mini_run(&self, args: &[&str]) -> Output {
        self.output(self.mini_run_path(), args)
    }

    /// Runs `mini-run ARGS` as the user, which must succeed; returns its stdout.
    pub fn mini_run_ok(&self, args: &[&str]) -> String {
        let out = self.mini_run(args);
        assert!(
            out.status.success(),
            "mini-run {args:?} as {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A bundle of the user's whose config.json the user wrote with `mini-run spec --rootless`,
    /// without a terminal, running `args`, then changed by `edit`.
    pub fn rootless_bundle(
        &self,
        args: &[&str],
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> PathBuf {
        let bundle = self.bundle(&unique("bundle"));
        self.mini_run_ok(&["spec", "--rootless", "--bundle", bundle.to_str().unwrap()]);
        let path = bundle.join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("config")).expect("json");
        config["process"]["terminal"] = false.into();
        config["process"]["args"] = serde_json::json!(args);
        edit(&mut config);
        std::fs::write(&path, config.to_string()).expect("write config");
        bundle
    }

    /// The user's state directory of container `id` (under its runtime directory).
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.runtime_dir().join("mini-run").join(id)
    }

    /// The pids of the user's processes.
    pub fn processes(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let owned = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("Uid:"))
                        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
                })
                .is_some_and(|u| u == self.uid.to_string());
            if owned {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Default for TestUser {
    fn default() -> Self {
        TestUser::new()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Only this unique user's processes: containers a failed test left running.
        crate::wait_until(std::time::Duration::from_secs(10), || {
            let pids = self.processes();
            for pid in &pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            pids.is_empty()
        });
        if !self.account {
            return;
        }
        let range = format!(
            "{}-{}",
            self.subid_start,
            self.subid_start + SUBID_COUNT - 1
        );
        let _ = Command::new("usermod")
            .args(["--del-subuids", &range, "--del-subgids", &range])
            .arg(&self.name)
            .output();
        let _ = Command::new("userdel")
            .args(["--remove", &self.name])
            .output();
        // The temp dir (home, runtime dir, bundles) goes with `self.dir`; files the user's
        // containers made under subordinate ids are plain files root removes.
    }
}
