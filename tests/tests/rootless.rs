//! mini-run rootless: an unprivileged user (made by the test, removed afterwards) runs
//! containers from a `spec --rootless` bundle: its state under `$XDG_RUNTIME_DIR`, the user
//! mapped to root (one id written directly, ranges through newuidmap/newgidmap), the whole
//! lifecycle without a cgroup, exec with a terminal, a bind mount of the user's files, host
//! devices bound in, and a limit refused when no cgroup is delegated.

use mini_tests::test_user::{TestUser, SUBID_COUNT};
use mini_tests::{recv_console, unique, wait_until};
use serde_json::{json, Value};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::time::Duration;

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn status(user: &TestUser, id: &str) -> String {
    let out = user.mini_run_ok(&["state", id]);
    let v: Value = serde_json::from_str(&out).expect("state json");
    v["status"].as_str().unwrap_or_default().to_string()
}

#[test]
fn rootless_run_maps_the_user_to_root_with_host_devices_and_sysfs() {
    let user = TestUser::new();
    let bundle = user.rootless_bundle(
        &[
            "sh",
            "-c",
            "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; \
             stat -c 'null %t:%T' /dev/null; echo data > /dev/null && echo null-writable; \
             grep ' /sys ' /proc/self/mounts; ls /sys/kernel >/dev/null && echo sys-readable",
        ],
        |_| {},
    );
    let id = unique("rl-run");
    let out = user.mini_run(&["run", "--bundle", bundle.to_str().unwrap(), &id]);
    let stdout = text(&out);
    assert!(out.status.success(), "{}{stdout}", err(&out));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[..2], ["0", "0"], "{stdout}");
    let uid_map: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(uid_map, ["0", &user.uid().to_string(), "1"], "{stdout}");
    let gid_map: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(gid_map, ["0", &user.gid().to_string(), "1"], "{stdout}");
    assert!(
        stdout.contains("null 1:3"),
        "/dev/null is the host's: {stdout}"
    );
    assert!(stdout.contains("null-writable"), "{stdout}");
    let sys = lines
        .iter()
        .find(|l| l.contains(" /sys "))
        .unwrap_or_else(|| panic!("/sys is mounted: {stdout}"));
    assert!(sys.contains(" ro,") || sys.contains(" ro "), "{sys}");
    assert!(stdout.contains("sys-readable"), "{stdout}");
    assert!(
        !user.state_dir(&id).exists(),
        "run removes its state from $XDG_RUNTIME_DIR/mini-run"
    );
}

#[test]
fn rootless_lifecycle_without_a_cgroup() {
    let user = TestUser::new();
    let bundle = user.rootless_bundle(&["sh", "-c", "sleep 1000 & exec sleep 1001"], |_| {});
    let id = unique("rl-life");
    user.mini_run_ok(&["create", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(
        user.state_dir(&id).join("state.json").exists(),
        "state lives in $XDG_RUNTIME_DIR/mini-run"
    );
    assert_eq!(status(&user, &id), "created");
    user.mini_run_ok(&["start", &id]);
    assert_eq!(status(&user, &id), "running");
    let list = user.mini_run_ok(&["list", "-q"]);
    assert!(list.lines().any(|l| l == id), "{list}");

    let state: Value = serde_json::from_str(&user.mini_run_ok(&["state", &id])).unwrap();
    let init = state["pid"].as_i64().expect("init pid");
    let mut pids = Vec::new();
    assert!(
        wait_until(Duration::from_secs(20), || {
            let out = user.mini_run_ok(&["ps", "--format", "json", &id]);
            pids = serde_json::from_str::<Vec<i64>>(out.trim()).unwrap_or_default();
            pids.len() == 2
        }),
        "ps lists the init and its child: {pids:?}"
    );
    assert!(pids.contains(&init), "{pids:?} holds the init {init}");

    let stats: Value =
        serde_json::from_str(&user.mini_run_ok(&["events", "--stats", &id])).expect("stats");
    assert_eq!(stats["type"], "stats");
    assert_eq!(stats["data"]["pids"]["current"], 2, "{stats}");

    let out = user.mini_run_ok(&["exec", &id, "sh", "-c", "echo exec-$((40+2)); id -u"]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["exec-42", "0"]);

    user.mini_run_ok(&["kill", "--all", &id, "KILL"]);
    assert!(
        wait_until(Duration::from_secs(20), || status(&user, &id) == "stopped"),
        "the container stops"
    );
    user.mini_run_ok(&["delete", &id]);
    assert!(!user.state_dir(&id).exists());
    assert!(
        wait_until(Duration::from_secs(10), || user.processes().is_empty()),
        "nothing of the container is left: {:?}",
        user.processes()
    );
}

#[test]
fn rootless_exec_with_a_terminal() {
    let user = TestUser::new();
    let bundle = user.rootless_bundle(&["sleep", "1000"], |_| {});
    let id = unique("rl-tty");
    user.mini_run_ok(&["run", "--detach", "--bundle", bundle.to_str().unwrap(), &id]);
    // The console socket is the test's (root's); the user must be able to connect to it.
    let sock = user.scratch().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o777)).unwrap();
    let receiver = std::thread::spawn(move || recv_console(&listener));
    let mut exec = user
        .command(user.mini_run_path())
        .args(["exec", "--tty", "--console-socket"])
        .arg(&sock)
        .args([&id, "sh", "-c", "tty; echo uid-$(id -u); exit 7"])
        .spawn()
        .expect("exec");
    let (name, master) = receiver.join().unwrap();
    assert!(name.starts_with("/dev/pts/"), "{name}");
    let mut out = String::new();
    let mut f = std::fs::File::from(master);
    let mut buf = [0u8; 4096];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert_eq!(exec.wait().unwrap().code(), Some(7), "{out}");
    assert!(
        out.contains("/dev/pts/"),
        "the process has a terminal: {out}"
    );
    assert!(out.contains("uid-0"), "{out}");
    user.mini_run_ok(&["delete", "--force", &id]);
}

#[test]
fn rootless_multi_id_map_through_newuidmap() {
    let user = TestUser::new();
    let sub = user.subid_start();
    let (uid, gid) = (user.uid(), user.gid());
    let bundle = user.rootless_bundle(
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map; id -u; touch /tmp/f && stat -c 'owner %u:%g' /tmp/f",
        ],
        |c| {
            // A container user among the subordinate ids.
            c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
            c["linux"]["uidMappings"] = json!([
                {"containerID": 0, "hostID": uid, "size": 1},
                {"containerID": 1, "hostID": sub, "size": SUBID_COUNT}
            ]);
            c["linux"]["gidMappings"] = json!([
                {"containerID": 0, "hostID": gid, "size": 1},
                {"containerID": 1, "hostID": sub, "size": SUBID_COUNT}
            ]);
            c["mounts"]
                .as_array_mut()
                .unwrap()
                .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
        },
    );
    let out = user.mini_run(&[
        "run",
        "--bundle",
        bundle.to_str().unwrap(),
        &unique("rl-map"),
    ]);
    let stdout = text(&out);
    assert!(out.status.success(), "{}{stdout}", err(&out));
    assert!(stdout.contains("owner 1000:1000"), "{stdout}");
    let second: Vec<&str> = stdout
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        second,
        ["1", &sub.to_string(), &SUBID_COUNT.to_string()],
        "{stdout}"
    );
}

#[test]
fn rootless_map_beyond_the_users_ranges_is_refused() {
    let user = TestUser::new();
    let uid = user.uid();
    let bundle = user.rootless_bundle(&["true"], |c| {
        c["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": uid, "size": 1},
            {"containerID": 1, "hostID": 0, "size": 1}
        ]);
    });
    let id = unique("rl-badmap");
    let out = user.mini_run(&["run", "--bundle", bundle.to_str().unwrap(), &id]);
    let line = mini_tests::assert_fails_with(&out, &["newuidmap", "/etc/subuid"]);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(!user.state_dir(&id).exists());
    assert!(wait_until(Duration::from_secs(10), || user
        .processes()
        .is_empty()));
}

#[test]
fn rootless_bind_mount_of_a_users_directory() {
    let user = TestUser::new();
    let data = user.scratch().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("in"), "from-host\n").unwrap();
    user.chown(&data);
    let source = data.to_str().unwrap().to_string();
    let bundle = user.rootless_bundle(
        &[
            "sh",
            "-c",
            "cat /data/in && echo from-container > /data/out",
        ],
        |c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/data", "type": "bind", "source": source,
                "options": ["rbind", "rw"]
            }));
        },
    );
    let out = user.mini_run(&[
        "run",
        "--bundle",
        bundle.to_str().unwrap(),
        &unique("rl-bind"),
    ]);
    assert!(out.status.success(), "{}", err(&out));
    assert_eq!(text(&out), "from-host\n");
    let written = data.join("out");
    assert_eq!(
        std::fs::read_to_string(&written).unwrap(),
        "from-container\n"
    );
    assert_eq!(
        std::fs::metadata(&written).unwrap().uid(),
        user.uid(),
        "root in the container is the user on the host"
    );
}

/// The init stays dumpable until its maps are written: decided before the clone, since a
/// child that looked at its own euid raced the runtime writing its uid map (a later gid map
/// write then found a non-dumpable init: EACCES).
#[test]
fn rootless_runs_back_to_back_write_their_maps() {
    let user = TestUser::new();
    let bundle = user.rootless_bundle(&["true"], |_| {});
    for i in 0..100 {
        let out = user.mini_run(&[
            "run",
            "--bundle",
            bundle.to_str().unwrap(),
            &unique("rl-seq"),
        ]);
        assert!(out.status.success(), "run {i}: {}", err(&out));
    }
}

#[test]
fn rootless_spec_is_runcs_and_features_report_rootless() {
    let user = TestUser::new();
    let spec = |program: &std::path::Path| {
        let dir = user.scratch().join(unique("spec"));
        std::fs::create_dir(&dir).unwrap();
        user.chown(&dir);
        let out = user.output(
            program,
            &["spec", "--rootless", "--bundle", dir.to_str().unwrap()],
        );
        assert!(out.status.success(), "{program:?}: {}", err(&out));
        let mut v: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap();
        v.as_object_mut().unwrap().remove("hostname");
        v
    };
    assert_eq!(
        spec(&user.mini_run_path()),
        spec(std::path::Path::new("/usr/sbin/runc")),
        "the same config as runc's, but for the hostname"
    );
    let features: Value = serde_json::from_str(&user.mini_run_ok(&["features"])).unwrap();
    let notes = &features["annotations"];
    assert_eq!(notes["org.mini-run.rootless"], "true", "{notes}");
    assert!(
        notes["org.mini-run.rootless.idMapRanges"]
            .as_str()
            .is_some_and(|s| s.starts_with("newuidmap/newgidmap")),
        "uidmap is installed: {notes}"
    );
}
