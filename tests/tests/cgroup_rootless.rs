//! cgroups of rootless containers: a limit is refused with the missing delegation named when
//! the user may not create cgroups (both hierarchies), and on cgroup v2 a subtree delegated to
//! the user (its directory, cgroup.procs and cgroup.subtree_control chowned, as systemd's
//! Delegate=yes does) holds the container's cgroup with its memory limit enforced. The user is
//! a bare uid (the VM's /etc is read-only), so no account is needed.

use mini_tests::test_user::TestUser;
use mini_tests::{captured_output, cgroup_version, skip, unique, wait_until, Need};
use serde_json::json;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[test]
fn rootless_limit_without_a_delegated_cgroup_is_refused() {
    let user = TestUser::without_account();
    let bundle = user.rootless_bundle(&["true"], |c| {
        c["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
    });
    let id = unique("rl-limit");
    let out = user.mini_run(&["run", "--bundle", bundle.to_str().unwrap(), &id]);
    mini_tests::assert_fails_with(&out, &["memory", "delegate", "/sys/fs/cgroup"]);
    assert!(!user.state_dir(&id).exists(), "nothing is left of {id}");
    assert!(wait_until(Duration::from_secs(10), || user
        .processes()
        .is_empty()));
}

/// A cgroup v2 directory delegated to a user, with a `shell` leaf for the user's commands;
/// removed (its processes killed first) on drop.
struct Delegation {
    dir: PathBuf,
}

impl Delegation {
    fn new(user: &TestUser) -> Delegation {
        let root = Path::new(mini_cgroups::CGROUP_ROOT);
        let dir = root.join(unique("mini-tests-rootless"));
        std::fs::create_dir(&dir).expect("delegated cgroup");
        let d = Delegation { dir };
        std::fs::create_dir(d.shell()).expect("shell cgroup");
        for f in [
            "",
            "cgroup.procs",
            "cgroup.subtree_control",
            "cgroup.threads",
        ] {
            let path = d.dir.join(f);
            std::os::unix::fs::chown(&path, Some(user.uid()), Some(user.gid())).expect("chown");
        }
        user.chown(&d.shell());
        d
    }

    fn shell(&self) -> PathBuf {
        self.dir.join("shell")
    }

    fn name(&self) -> String {
        self.dir.file_name().unwrap().to_string_lossy().into_owned()
    }
}

impl Drop for Delegation {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        let children: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        wait_until(Duration::from_secs(10), || {
            children
                .iter()
                .all(|c| std::fs::remove_dir(c).is_ok() || !c.exists())
                && (std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists())
        });
    }
}

#[test]
fn rootless_memory_limit_in_a_delegated_cgroup_v2_subtree_is_enforced() {
    if cgroup_version() != mini_cgroups::Version::V2 {
        return skip(
            "rootless_memory_limit_in_a_delegated_cgroup_v2_subtree_is_enforced",
            Need::CgroupV2,
            "delegating a subtree to a user is a cgroup v2 feature: the VM runs this",
        );
    }
    let user = TestUser::without_account();
    let deleg = Delegation::new(&user);
    let run = |args: &[&str], id: &str| {
        let path = format!("/{}/{id}", deleg.name());
        let bundle = user.rootless_bundle(args, |c| {
            c["linux"]["cgroupsPath"] = path.into();
            c["linux"]["resources"] =
                json!({"memory": {"limit": 16777216, "swap": 16777216}, "pids": {"limit": 20}});
        });
        let mut cmd = user.command(user.mini_run_path());
        cmd.args(["run", "--bundle", bundle.to_str().unwrap(), id]);
        // The user's command starts inside its delegated subtree (as a systemd user session
        // does), so the container's cgroup and the runtime's share a parent the user owns.
        let procs = deleg.shell().join("cgroup.procs");
        // SAFETY: the closure only writes a file between fork and exec.
        unsafe {
            cmd.pre_exec(move || std::fs::write(&procs, "0"));
        }
        captured_output(&mut cmd)
    };
    let id = unique("rl-v2");
    let out = run(
        &[
            "sh",
            "-c",
            "cat /proc/self/cgroup; /bin/probe alloc 4 >/dev/null && echo small-ok",
        ],
        &id,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("small-ok"), "{stdout}");
    assert!(
        !deleg.dir.join(&id).exists(),
        "the container's cgroup is removed with it"
    );
    let out = run(&["/bin/probe", "alloc", "256"], &unique("rl-v2-oom"));
    assert_eq!(
        out.status.code(),
        Some(137),
        "an allocation beyond the delegated memory limit is OOM-killed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
