//! Conformance with the runtime spec's config-linux.md (and the Linux parts of runtime-linux.md
//! and of config.md's mount options table), one test per MUST/SHOULD statement that applies to
//! Linux, checked from inside the container where possible. Each test's doc comment names the
//! statement (section in brackets); tests/conformance/config-linux.md maps every statement to its
//! test, to an older test that already checks it, or to the reason it is not met or n/a.

use mini_tests::*;
use serde_json::{json, Value};
use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Helpers

/// Every stdout line parsed as JSON.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Sets namespace `typ` to be joined at `path` (`None`: created), adding it if absent.
fn set_ns(c: &mut Value, typ: &str, path: Option<&str>) {
    let list = ns_list(c);
    list.retain(|n| n["type"] != typ);
    list.push(match path {
        Some(p) => json!({"type": typ, "path": p}),
        None => json!({"type": typ}),
    });
}

/// Adds a new user namespace mapping container ids 0..65536 to host ids 100000...
fn with_userns(c: &mut Value) {
    set_ns(c, "user", None);
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
}

/// Adds `cap` to every capability set of the process.
fn add_cap(c: &mut Value, cap: &str) {
    for set in ["bounding", "effective", "permitted"] {
        c["process"]["capabilities"][set]
            .as_array_mut()
            .expect("capability set")
            .push(json!(cap));
    }
}

/// `create` must fail with one line naming `words`, leaving nothing behind; returns the line.
fn rejected(rt: &Runtime, b: &Bundle, words: &[&str]) -> String {
    let id = unique("cl-bad");
    let line = assert_fails_with(&rt.create(b, &id), words);
    assert_nothing_left(rt, &id, b.path());
    line
}

fn has_prefix(v: &Value, prefix: &str) -> bool {
    strings(v).iter().any(|w| w.starts_with(prefix))
}

/// A host process holding new namespaces made by `unshare ARGS sleep 60`, killed on drop.
/// `kind` is the /proc/PID/ns entry that names the new namespace.
struct NsHolder {
    child: ChildGuard,
    kind: &'static str,
}

impl NsHolder {
    fn new(unshare_args: &[&str], kind: &'static str) -> NsHolder {
        let child = ChildGuard::start(
            Command::new("unshare")
                .args(unshare_args)
                .args(["sleep", "60"]),
        );
        let h = NsHolder { child, kind };
        let host = host_ns_inode(kind.trim_end_matches("_for_children"));
        assert!(
            wait_until(WAIT, || std::fs::metadata(h.path())
                .is_ok_and(|m| m.ino() != host)),
            "unshare {unshare_args:?} never made its {kind} namespace"
        );
        h
    }

    fn path(&self) -> String {
        format!("/proc/{}/ns/{}", self.child.pid(), self.kind)
    }
}

/// `create`s `b`, returns the container init's host pid; the container is left created.
fn created_pid(rt: &Runtime, b: &Bundle, id: &str) -> i64 {
    rt.create_ok(b, id);
    rt.state(id)["pid"].as_i64().expect("pid")
}

fn cgroup_v2_only() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// A cgroup made by the test in each v1 hierarchy (or the v2 root), under a unique name;
/// removed on drop, thawed first, with everything the runtime may have left below it.
struct HostCgroup {
    name: String,
}

impl HostCgroup {
    fn new() -> HostCgroup {
        HostCgroup {
            name: unique("mini-tests-cl"),
        }
    }

    /// The host directory for `controller` (v1) or of the unified hierarchy (v2).
    fn dir(&self, controller: &str) -> PathBuf {
        if cgroup_v2_only() {
            Path::new("/sys/fs/cgroup").join(&self.name)
        } else {
            Path::new("/sys/fs/cgroup")
                .join(controller)
                .join(&self.name)
        }
    }
}

impl Drop for HostCgroup {
    fn drop(&mut self) {
        let mut dirs = cgroups_mentioning(&self.name);
        for d in &dirs {
            let _ = std::fs::write(d.join("freezer.state"), "THAWED");
            let _ = std::fs::write(d.join("cgroup.freeze"), "0");
        }
        dirs.sort_by_key(|d| std::cmp::Reverse(d.as_os_str().len()));
        for d in dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// A tmpfs mounted on the host at `<dir>/sub` (with one file), unmounted on drop; optionally
/// made shared so that mounts propagate from it.
struct HostTmpfs {
    dir: TempDir,
}

impl HostTmpfs {
    fn new(shared: bool) -> HostTmpfs {
        use nix::mount::{mount, MsFlags};
        let dir = TempDir::new("cl-host");
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        mount(
            Some("tmpfs"),
            &sub,
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=64k"),
        )
        .expect("host tmpfs");
        if shared {
            mount(
                None::<&str>,
                &sub,
                None::<&str>,
                MsFlags::MS_SHARED,
                None::<&str>,
            )
            .expect("make shared");
        }
        std::fs::write(sub.join("inner.txt"), "submount").unwrap();
        HostTmpfs { dir }
    }

    fn sub(&self) -> PathBuf {
        self.dir.path().join("sub")
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.sub(), nix::mount::MntFlags::MNT_DETACH);
    }
}

// ---------------------------------------------------------------------------------------------
// Default filesystems

/// /proc (proc), /sys (sysfs), /dev/pts (devpts) and /dev/shm (tmpfs) SHOULD be available
/// [Default Filesystems].
#[test]
fn default_filesystems_proc_sysfs_devpts_and_shm_are_mounted() {
    let r = Runtime::new().report(&Bundle::new(&["probe", "report"]));
    for (point, fs) in [
        ("/proc", "proc"),
        ("/sys", "sysfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
    ] {
        let m = mount_at(&r, point).unwrap_or_else(|| panic!("{point} is not mounted"));
        assert_eq!(m["fs_type"], fs, "{point}: {m}");
    }
}

// ---------------------------------------------------------------------------------------------
// Namespaces

/// The types pid, network, mount, ipc, uts, user, cgroup and time SHOULD be supported, each
/// with its effect [Namespaces].
#[test]
fn every_namespace_type_is_supported() {
    let time = Path::new("/proc/self/ns/time").exists();
    let b = sh(
        "probe report; cat /proc/self/uid_map; cat /proc/self/cgroup | head -n 1; \
         ls /sys/class/net; cat /proc/uptime",
    )
    .edit(|c| {
        with_userns(c);
        if time {
            set_ns(c, "time", None);
            c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 86_400_000, "nanosecs": 0}});
        }
        c["hostname"] = json!("ns-all");
    });
    let out = Runtime::new().run_stdout(&b);
    let mut lines = out.lines();
    let r: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let mut kinds = vec!["pid", "net", "mnt", "ipc", "uts", "user", "cgroup"];
    if time {
        kinds.push("time");
    }
    for kind in kinds {
        assert_ne!(
            r["namespaces"][kind].as_u64(),
            Some(host_ns_inode(kind)),
            "{kind}: {r}"
        );
    }
    // pid: sh, the container's first process, is 1; uts: its own hostname; user: root is the
    // mapped host id.
    assert_eq!(r["ppid"], 1);
    assert_eq!(r["hostname"], "ns-all");
    assert_eq!(r["uid"]["effective"], 0);
    let uid_map: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(uid_map, ["0", "100000", "65536"]);
    // cgroup: the container's cgroup is its root; network: only loopback.
    let cgroup = lines.next().unwrap();
    assert!(cgroup.ends_with(":/"), "{cgroup}");
    assert_eq!(lines.next(), Some("lo"), "{out}");
    if time {
        let uptime: f64 = lines
            .next()
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .expect("uptime");
        assert!(uptime > 86_400_000.0, "boottime offset missing: {uptime}");
    }
}

/// The runtime MUST place the container process in the namespace associated with `path`
/// [Namespaces].
#[test]
fn namespace_path_places_the_process_in_that_namespace() {
    let rt = Runtime::new();
    let mut cases = vec![
        ("ipc", vec!["--ipc"], "ipc", "ipc"),
        ("mount", vec!["--mount"], "mnt", "mnt"),
        ("network", vec!["--net"], "net", "net"),
        (
            "pid",
            vec!["--pid", "--fork", "--kill-child"],
            "pid_for_children",
            "pid",
        ),
        ("uts", vec!["--uts"], "uts", "uts"),
        ("cgroup", vec!["--cgroup"], "cgroup", "cgroup"),
    ];
    if Path::new("/proc/self/ns/time").exists() {
        cases.push((
            "time",
            vec!["--time", "--fork", "--kill-child"],
            "time_for_children",
            "time",
        ));
    }
    for (typ, args, holder_kind, kind) in cases {
        let holder = NsHolder::new(&args, holder_kind);
        let path = holder.path();
        let b = Bundle::new(&["probe", "sleep", "60"]).edit(|c| {
            set_ns(c, typ, Some(&path));
            if typ == "uts" {
                c["hostname"] = json!("");
            }
        });
        let id = unique("cl-join");
        let pid = created_pid(&rt, &b, &id);
        assert_eq!(
            ns_inode(&format!("/proc/{pid}/ns/{kind}")),
            ns_inode(&path),
            "{typ}: the container is not in the namespace at {path}"
        );
        rt.ok(&["delete", "--force", &id]);
    }
    // user: joined from another container's user namespace (host root is not mapped there).
    let holder = Bundle::new(&["probe", "sleep", "60"]).edit(with_userns);
    let holder_pid = created_pid(&rt, &holder, &unique("cl-userns"));
    let path = format!("/proc/{holder_pid}/ns/user");
    let b = sh("cat /proc/self/uid_map; probe report").edit(|c| set_ns(c, "user", Some(&path)));
    let out = rt.run_stdout(&b);
    let mut lines = out.lines();
    let map: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(map, ["0", "100000", "65536"], "{out}");
    let r: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(r["namespaces"]["user"].as_u64(), Some(ns_inode(&path)));
    assert_eq!(r["uid"]["effective"], 0, "{r}");
}

/// The runtime MUST generate an error if `path` is not associated with a namespace of type
/// `type` [Namespaces].
#[test]
fn namespace_path_of_another_type_is_an_error() {
    let rt = Runtime::new();
    // The same pairs as runtime-tools' linux_ns_path_type; /proc/self is the runtime itself.
    for (typ, wrong) in [
        ("cgroup", "ipc"),
        ("ipc", "mnt"),
        ("mount", "net"),
        ("network", "pid"),
        ("pid", "user"),
        ("user", "uts"),
        ("uts", "cgroup"),
    ] {
        let path = format!("/proc/self/ns/{wrong}");
        let b = Bundle::new(&["probe"]).edit(|c| {
            set_ns(c, typ, Some(&path));
            c["hostname"] = json!("");
        });
        let line = rejected(&rt, &b, &[&path, "namespace"]);
        assert!(line.contains(&format!("is a {wrong} namespace")), "{line}");
    }
    // Not a namespace at all.
    let b = Bundle::new(&["probe"]).edit(|c| set_ns(c, "network", Some("/etc/hostname")));
    rejected(&rt, &b, &["/etc/hostname", "not a namespace"]);
}

/// `path` MUST be an absolute path in the runtime mount namespace [Namespaces].
#[test]
fn namespace_path_must_be_absolute() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe"]).edit(|c| set_ns(c, "network", Some("proc/self/ns/net")));
    rejected(&rt, &b, &["proc/self/ns/net", "absolute"]);
}

/// Without `path`, the runtime MUST create a new container namespace of type `type`
/// [Namespaces].
#[test]
fn namespace_without_path_is_new() {
    // Two containers from one config: each gets namespaces of its own, neither the host's nor
    // the other's.
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "sleep", "60"]).edit(with_userns);
    let (one, two) = (unique("cl-new"), unique("cl-new"));
    let pids = [created_pid(&rt, &b, &one), created_pid(&rt, &b, &two)];
    for kind in ["pid", "net", "mnt", "ipc", "uts", "user", "cgroup"] {
        let inodes: Vec<u64> = pids
            .iter()
            .map(|p| ns_inode(&format!("/proc/{p}/ns/{kind}")))
            .collect();
        assert_ne!(inodes[0], host_ns_inode(kind), "{kind} is the host's");
        assert_ne!(inodes[0], inodes[1], "{kind} is shared by two containers");
    }
}

/// A namespace type not in `namespaces` MUST be inherited from the runtime [Namespaces].
/// (Not met for `mount`: see tests/conformance/config-linux.md.)
#[test]
fn unlisted_namespace_types_are_inherited_from_the_runtime() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        ns_list(c).retain(|n| n["type"] == "mount");
        c["hostname"] = json!("");
        // sysfs cannot be mounted without a network namespace of one's own (runc binds the
        // host's, as mini-run does); keep the test about namespaces.
    });
    let r = Runtime::new().report(&b);
    for kind in ["pid", "net", "ipc", "uts", "user", "cgroup", "time"] {
        assert_eq!(
            r["namespaces"][kind].as_u64(),
            Some(host_ns_inode(kind)),
            "{kind} is not the runtime's"
        );
    }
    assert_ne!(r["pid"], 1, "the host pid namespace was inherited");
}

/// Duplicated namespace types MUST be an error [Namespaces].
#[test]
fn duplicate_namespace_types_are_an_error() {
    let b = Bundle::new(&["probe"]).edit(|c| ns_list(c).push(json!({"type": "ipc"})));
    rejected(&Runtime::new(), &b, &["ipc", "twice"]);
}

// ---------------------------------------------------------------------------------------------
// User namespace mappings

/// uidMappings/gidMappings describe the user namespace's mappings: every entry is written, as
/// the process sees in /proc/self/uid_map and gid_map [User namespace mappings].
#[test]
fn uid_and_gid_mappings_are_applied() {
    let b =
        sh("cat /proc/self/uid_map; echo '|'; cat /proc/self/gid_map; echo '|'; id").edit(|c| {
            set_ns(c, "user", None);
            c["linux"]["uidMappings"] = json!([
                {"containerID": 0, "hostID": 100000, "size": 1000},
                {"containerID": 1000, "hostID": 200000, "size": 10}
            ]);
            c["linux"]["gidMappings"] = json!([
                {"containerID": 0, "hostID": 300000, "size": 2000}
            ]);
            c["process"]["user"] = json!({"uid": 1005, "gid": 1500});
        });
    let out = Runtime::new().run_stdout(&b);
    let parts: Vec<Vec<Vec<&str>>> = out
        .split('|')
        .map(|p| p.lines().map(|l| l.split_whitespace().collect()).collect())
        .collect();
    let mut uid_map = parts[0].clone();
    uid_map.retain(|l| !l.is_empty());
    uid_map.sort();
    assert_eq!(
        uid_map,
        [vec!["0", "100000", "1000"], vec!["1000", "200000", "10"]],
        "{out}"
    );
    let gid_map: Vec<_> = parts[1].iter().filter(|l| !l.is_empty()).collect();
    assert_eq!(gid_map, [&vec!["0", "300000", "2000"]], "{out}");
    assert!(out.contains("uid=1005 gid=1500"), "{out}");
}

/// The runtime SHOULD NOT modify the ownership of referenced filesystems to realize the
/// mapping [User namespace mappings].
#[test]
fn user_namespace_does_not_chown_the_rootfs() {
    fn owners(dir: &Path, out: &mut Vec<(PathBuf, u32, u32)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let m = e.path().symlink_metadata().unwrap();
            out.push((e.path(), m.uid(), m.gid()));
            if m.is_dir() {
                owners(&e.path(), out);
            }
        }
    }
    let b = Bundle::new(&["probe", "try-write", "/tmp/by-mapped-root", "x"])
        .with_private_rootfs()
        .edit(|c| {
            with_userns(c);
            c["root"]["readonly"] = json!(false);
        });
    // The rootfs' /tmp is writable by all (1777), so the mapped root can write there.
    let mut before = Vec::new();
    owners(&b.rootfs(), &mut before);
    let w = Runtime::new().run_json(&b);
    assert_eq!(w["ok"], true, "{w}");
    for (path, uid, gid) in before {
        let m = path.symlink_metadata().unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (uid, gid),
            "{} was chowned",
            path.display()
        );
    }
    let new = b.rootfs().join("tmp/by-mapped-root").metadata().unwrap();
    assert_eq!((new.uid(), new.gid()), (100000, 100000));
}

// ---------------------------------------------------------------------------------------------
// Devices

/// `devices` MUST be available in the container with their type, major/minor, fileMode, uid
/// and gid; the path MAY be outside /dev [Devices].
#[test]
fn listed_devices_are_created_with_type_numbers_mode_and_owner() {
    let b = sh("stat -c '%n|%F|%t:%T|%a|%u:%g' /dev/mychar /dev/myunbuf /dev/myblock /dev/myfifo /opt/dev/outside")
        .with_private_rootfs()
        .edit(|c| {
            c["linux"]["devices"] = json!([
                {"path": "/dev/mychar", "type": "c", "major": 1, "minor": 5,
                 "fileMode": 0o640, "uid": 7, "gid": 8},
                {"path": "/dev/myunbuf", "type": "u", "major": 1, "minor": 9},
                {"path": "/dev/myblock", "type": "b", "major": 7, "minor": 11,
                 "fileMode": 0o600, "uid": 0, "gid": 6},
                {"path": "/dev/myfifo", "type": "p", "fileMode": 0o620},
                {"path": "/opt/dev/outside", "type": "c", "major": 1, "minor": 3}
            ]);
        });
    let out = Runtime::new().run_stdout(&b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "/dev/mychar|character special file|1:5|640|7:8",
            "/dev/myunbuf|character special file|1:9|666|0:0",
            "/dev/myblock|block special file|7:b|600|0:6",
            "/dev/myfifo|fifo|0:0|620|0:0",
            "/opt/dev/outside|character special file|1:3|666|0:0",
        ],
        "{out}"
    );
}

/// If a file already exists at `path` that does not match the requested device, the runtime
/// MUST generate an error [Devices].
#[test]
fn listed_device_over_a_different_file_is_an_error() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe"]).edit(|c| {
        c["linux"]["devices"] =
            json!([{"path": "/etc/passwd", "type": "c", "major": 1, "minor": 3}]);
    });
    rejected(&rt, &b, &["/etc/passwd", "already exists"]);

    // A node of another device number is just as wrong; the same device is fine.
    let b = Bundle::new(&["stat", "-c", "%t:%T", "/mydev"]).with_private_rootfs();
    let st = Command::new("mknod")
        .arg(b.rootfs().join("mydev"))
        .args(["c", "1", "5"])
        .status()
        .unwrap();
    assert!(st.success());
    let b = b.edit(|c| {
        c["linux"]["devices"] = json!([{"path": "/mydev", "type": "c", "major": 1, "minor": 7}]);
    });
    rejected(&rt, &b, &["/mydev", "character device 1:7"]);
    let b = b.edit(|c| {
        c["linux"]["devices"] = json!([{"path": "/mydev", "type": "c", "major": 1, "minor": 5}]);
    });
    assert_eq!(rt.run_stdout(&b).trim(), "1:5");
}

/// The runtime MUST supply /dev/null, zero, full, random, urandom and tty, working as those
/// devices [Default Devices].
#[test]
fn default_devices_are_supplied() {
    let b = sh(
        "for d in null zero full random urandom tty; do stat -c '%n|%F|%t:%T' /dev/$d; done; \
         probe read /dev/null; echo '|'; head -c 4 /dev/zero | od -An -tx1; \
         head -c 16 /dev/urandom | wc -c; head -c 16 /dev/random | wc -c; \
         probe try-write /dev/full x; probe try-open /dev/tty rw",
    );
    let out = Runtime::new().run_stdout(&b);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(
        lines[..6],
        [
            "/dev/null|character special file|1:3",
            "/dev/zero|character special file|1:5",
            "/dev/full|character special file|1:7",
            "/dev/random|character special file|1:8",
            "/dev/urandom|character special file|1:9",
            "/dev/tty|character special file|5:0",
        ],
        "{out}"
    );
    assert_eq!(lines[6], "|", "/dev/null reads empty: {out}");
    assert_eq!(lines[7], "00 00 00 00", "{out}");
    assert_eq!(lines[8..10], ["16", "16"], "{out}");
    let full: Value = serde_json::from_str(lines[10]).unwrap();
    assert_eq!(full["error"], "ENOSPC", "{full}");
    // The tty driver answers (ENXIO without a controlling terminal): not a missing node, not
    // the device cgroup.
    let tty: Value = serde_json::from_str(lines[11]).unwrap();
    assert!(tty["ok"] == true || tty["error"] == "ENXIO", "{tty}");
}

/// /dev/ptmx MUST be a bind mount or symlink of the container's /dev/pts/ptmx [Default Devices].
#[test]
fn dev_ptmx_is_the_containers_devpts_ptmx() {
    let b = sh(
        "stat -L -c '%d:%i' /dev/ptmx /dev/pts/ptmx; stat -c %d /dev/pts; \
         probe try-open /dev/ptmx rw",
    );
    let out = Runtime::new().run_stdout(&b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], lines[1], "/dev/ptmx is not /dev/pts/ptmx: {out}");
    let host_pts = std::fs::metadata("/dev/pts").unwrap().dev();
    assert_ne!(
        lines[2],
        host_pts.to_string(),
        "the container's devpts is the host's"
    );
    let open: Value = serde_json::from_str(lines[3]).unwrap();
    assert_eq!(open["ok"], true, "{open}");
}

// ---------------------------------------------------------------------------------------------
// Control groups

/// A cgroup found unfit for purpose (frozen, or not empty at create) MUST be an error
/// [Control groups].
#[test]
fn unfit_cgroup_is_an_error() {
    let rt = Runtime::new();
    // Frozen: a process put there would stop at once (mini-run hung before this check).
    let frozen = HostCgroup::new();
    let freezer = frozen.dir("freezer");
    std::fs::create_dir_all(&freezer).unwrap();
    let (file, value) = if cgroup_v2_only() {
        ("cgroup.freeze", "1")
    } else {
        ("freezer.state", "FROZEN")
    };
    std::fs::write(freezer.join(file), value).unwrap();
    let b = Bundle::new(&["probe"])
        .edit(|c| c["linux"]["cgroupsPath"] = json!(format!("/{}/ctr", frozen.name)));
    rejected(&rt, &b, &["frozen"]);

    // Not empty: another process already lives in the cgroup.
    let busy = HostCgroup::new();
    let pids = busy.dir("pids");
    std::fs::create_dir_all(&pids).unwrap();
    let sleeper = ChildGuard::start(Command::new("sleep").arg("60"));
    std::fs::write(pids.join("cgroup.procs"), sleeper.pid().to_string()).unwrap();
    let b = Bundle::new(&["probe"])
        .edit(|c| c["linux"]["cgroupsPath"] = json!(format!("/{}", busy.name)));
    rejected(&rt, &b, &["already contains processes"]);
    drop(sleeper);
}

/// An absolute cgroupsPath MUST be taken relative to the cgroups mount point; the cgroups are
/// created if they do not exist [Cgroups Path].
#[test]
fn absolute_cgroups_path_is_below_each_hierarchy_root_and_created() {
    let cg = HostCgroup::new();
    let path = format!("/{}/nested/ctr", cg.name);
    assert!(!cg.dir("pids").exists());
    let b = Bundle::new(&["probe", "sleep", "60"]).edit(|c| {
        ns_list(c).retain(|n| n["type"] != "cgroup");
        c["linux"]["cgroupsPath"] = json!(path);
    });
    let rt = Runtime::new();
    let id = unique("cl-cgpath");
    let pid = created_pid(&rt, &b, &id);
    // Every hierarchy the process is in names the path (the v2 line too on a pure v2 host).
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let lines = runtime_cgroup_lines(&own);
    assert!(!lines.is_empty(), "{own}");
    for l in lines {
        assert!(l.ends_with(&path), "{l} (all: {own})");
    }
    let procs = std::fs::read_to_string(cg.dir("pids").join("nested/ctr/cgroup.procs")).unwrap();
    assert_eq!(procs.trim(), pid.to_string());
    rt.ok(&["delete", "--force", &id]);
    assert!(
        !cg.dir("pids").exists(),
        "the cgroups mini-run made are left"
    );
}

/// The same cgroupsPath MUST attach to the same place in the cgroups hierarchy, consistently
/// [Cgroups Path].
#[test]
fn same_cgroups_path_gives_the_same_cgroup() {
    let cg = HostCgroup::new();
    let rt = Runtime::new();
    for path in [format!("/{}/a", cg.name), format!("{}/b", cg.name)] {
        let b = Bundle::new(&["cat", "/proc/self/cgroup"]).edit(|c| {
            ns_list(c).retain(|n| n["type"] != "cgroup");
            c["linux"]["cgroupsPath"] = json!(path);
        });
        let first = rt.run_stdout(&b);
        let second = rt.run_stdout(&b);
        assert_eq!(first, second, "{path}");
        let tail = path.trim_start_matches('/');
        let lines = runtime_cgroup_lines(&first);
        assert!(!lines.is_empty(), "{first}");
        assert!(lines.iter().all(|l| l.ends_with(tail)), "{path}: {first}");
    }
}

/// Runtimes MAY consider certain cgroupsPath values invalid and MUST then generate an error
/// (mini-run: any value that names a hierarchy root or the runtime's own cgroup)
/// [Cgroups Path].
#[test]
fn invalid_cgroups_path_is_an_error() {
    let rt = Runtime::new();
    for path in ["/", "/..", ".", "/a/.."] {
        let b = Bundle::new(&["probe"]).edit(|c| c["linux"]["cgroupsPath"] = json!(path));
        rejected(&rt, &b, &["cgroupsPath", path]);
    }
}

/// Runtimes SHOULD NOT change the ownership of container cgroups when cgroups v1 is in use,
/// even for a user namespace with a read-write cgroup mount [Cgroup ownership].
#[test]
fn cgroup_ownership_is_unchanged_on_v1() {
    if cgroup_v2_only() {
        skip(
            "cgroup_ownership_is_unchanged_on_v1",
            Need::CgroupV1,
            "a cgroup v1 statement, this host is pure v2",
        );
        return;
    }
    let cg = HostCgroup::new();
    let b = Bundle::new(&["probe", "sleep", "60"]).edit(|c| {
        with_userns(c);
        c["linux"]["cgroupsPath"] = json!(format!("/{}", cg.name));
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["type"] == "cgroup" {
                m["options"] = json!(["nosuid", "noexec", "nodev", "relatime", "rw"]);
            }
        }
    });
    let rt = Runtime::new();
    let id = unique("cl-owner");
    created_pid(&rt, &b, &id);
    for controller in ["pids", "memory"] {
        let dir = cg.dir(controller);
        for p in [dir.clone(), dir.join("cgroup.procs"), dir.join("tasks")] {
            let m = p
                .metadata()
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert_eq!((m.uid(), m.gid()), (0, 0), "{} was chowned", p.display());
        }
    }
}

/// The allowed device list: the runtime MUST apply entries in the listed order (a later entry
/// overrides an earlier one for the same device) [Allowed Device list].
#[test]
fn device_allowlist_is_applied_in_order() {
    let rt = Runtime::new();
    // /dev/fake-sda is 8:0: denied by the cgroup it gives EPERM, allowed it reaches the block
    // layer (no such disk here: ENXIO, or it opens on a host that has one).
    let device = |rules: Value| {
        Bundle::new(&["probe", "try-open", "/dev/fake-sda", "r"]).edit(move |c| {
            c["linux"]["devices"] = json!([{
                "path": "/dev/fake-sda", "type": "b", "major": 8, "minor": 0, "fileMode": 0o600
            }]);
            c["linux"]["resources"]["devices"] = rules;
        })
    };
    let allow = json!({"allow": true, "type": "b", "major": 8, "minor": 0, "access": "r"});
    let deny = json!({"allow": false, "type": "b", "major": 8, "minor": 0, "access": "r"});
    let all_denied = json!({"allow": false, "access": "rwm"});

    let denied_last = rt.run_json(&device(json!([all_denied, allow, deny])));
    assert_eq!(denied_last["error"], "EPERM", "{denied_last}");
    let allowed_last = rt.run_json(&device(json!([all_denied, deny, allow])));
    assert_ne!(allowed_last["error"], "EPERM", "{allowed_last}");
}

/// memory `checkBeforeUpdate`: a new limit lower than the current usage MUST be rejected
/// [Memory].
#[test]
fn memory_limit_below_usage_is_rejected_with_check_before_update() {
    let rt = Runtime::new();
    // 24 MiB in the container's tmpfs, charged to its memory cgroup.
    let b = sh(
        "dd if=/dev/zero of=/dev/shm/fill bs=1M count=24 2>/dev/null; \
                touch /dev/shm/filled; exec probe sleep 60",
    );
    let id = unique("cl-mem");
    rt.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
    assert!(
        wait_until(WAIT, || rt
            .cmd(&["exec", &id, "test", "-e", "/dev/shm/filled"])
            .status
            .success()),
        "the container never filled its tmpfs"
    );
    let dir = TempDir::new("cl-mem");
    let update = |limit: u64| {
        let file = dir.path().join(format!("{limit}.json"));
        let r = json!({"memory": {"limit": limit, "checkBeforeUpdate": true}});
        std::fs::write(&file, r.to_string()).unwrap();
        rt.cmd(&["update", "--resources", file.to_str().unwrap(), &id])
    };
    assert_fails_with(&update(8 << 20), &["below the current usage"]);
    let out = update(256 << 20);
    assert!(
        out.status.success(),
        "a limit above the usage is taken: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `unified`: the runtime MUST generate an error when the configuration refers to a cgroup v2
/// controller that is not present or cannot be enabled (on a cgroup v1 host: all of them)
/// [Unified].
#[test]
fn unified_on_a_v1_host_is_an_error() {
    if cgroup_v2_only() {
        skip(
            "unified_on_a_v1_host_is_an_error",
            Need::CgroupV1,
            "this host is pure cgroup v2",
        );
        return;
    }
    let b = Bundle::new(&["probe"])
        .edit(|c| c["linux"]["resources"]["unified"] = json!({"pids.max": "10"}));
    rejected(&Runtime::new(), &b, &["unified", "v1"]);
}

// ---------------------------------------------------------------------------------------------
// IntelRdt

/// If intelRdt is set and no resctrl filesystem is mounted in the runtime mount namespace, the
/// runtime MUST generate an error [IntelRdt].
#[test]
fn intel_rdt_without_resctrl_is_an_error() {
    let mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(" - resctrl ");
    let b = Bundle::new(&["probe"]).edit(|c| {
        c["linux"]["intelRdt"] = json!({"closID": "mini-tests", "l3CacheSchema": "L3:0=f"})
    });
    let line = rejected(&Runtime::new(), &b, &["intelRdt"]);
    if !mounted {
        assert!(line.contains("resctrl"), "{line}");
    }
}

// ---------------------------------------------------------------------------------------------
// Seccomp

/// errnoRet / defaultErrnoRet with an action that returns no errno: the runtime MUST print an
/// error and fail [Seccomp].
#[test]
fn seccomp_errno_ret_on_an_action_without_errno_is_an_error() {
    let rt = Runtime::new();
    let rule = Bundle::new(&["probe"]).edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL", "errnoRet": 5}]
        });
    });
    rejected(&rt, &rule, &["errnoRet", "SCMP_ACT_KILL"]);
    let default = Bundle::new(&["probe"]).edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 5,
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
        });
    });
    rejected(
        &rt,
        &default,
        &["defaultAction", "errnoRet", "SCMP_ACT_ALLOW"],
    );
    // With an action that has an errno, the value is used.
    let ok = sh("mkdir /tmp/x").edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5}]
        });
    });
    let out = rt.run(&ok, &unique("cl-errno"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Input/output error"),
        "{out:?}"
    );
}

/// Receives one connection on `listener`: the bytes until EOF and the descriptors of the first
/// message.
fn receive_process_state(listener: &UnixListener) -> (Vec<u8>, Vec<OwnedFd>) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
    let (mut stream, _) = listener.accept().expect("accept");
    let mut buf = vec![0u8; 65536];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let (n, fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<UnixAddr>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .expect("recvmsg");
        let mut fds = Vec::new();
        for c in msg.cmsgs().expect("cmsgs") {
            if let ControlMessageOwned::ScmRights(raw) = c {
                // SAFETY: SCM_RIGHTS descriptors are new and owned by this process.
                fds.extend(raw.into_iter().map(|r| unsafe { OwnedFd::from_raw_fd(r) }));
            }
        }
        (msg.bytes, fds)
    };
    buf.truncate(n);
    // The runtime MUST close the connection after one state: read until EOF.
    stream.read_to_end(&mut buf).expect("read to EOF");
    (buf, fds)
}

/// listenerPath: an AF_UNIX stream socket gets exactly one container process state (JSON, with
/// the seccomp fd by SCM_RIGHTS named in `fds`), then the connection is closed [Seccomp, The
/// Container Process State].
#[test]
fn seccomp_listener_gets_one_process_state_with_the_fd_then_eof() {
    let dir = TempDir::new("cl-agent");
    let sock = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let agent = std::thread::spawn(move || receive_process_state(&listener));
    let b = sh("mkdir /tmp/notified; echo mkdir=$?").edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "listenerMetadata": "agent-metadata",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        });
    });
    let rt = Runtime::new();
    let id = unique("cl-notify");
    let run = rt.spawn(&["run", "--bundle", b.path_str(), &id]);
    let (bytes, fds) = agent.join().expect("agent");
    let state: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert!(state["ociVersion"].is_string(), "{state}");
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["metadata"], "agent-metadata");
    assert_eq!(state["state"]["id"], id.as_str());
    assert!(state["pid"].as_i64().is_some_and(|p| p > 0), "{state}");
    assert_eq!(state["pid"], state["state"]["pid"], "{state}");
    assert_eq!(fds.len(), 1, "one descriptor");
    let target = std::fs::read_link(format!("/proc/self/fd/{}", fds[0].as_raw_fd())).unwrap();
    assert!(
        target.to_string_lossy().contains("seccomp"),
        "not a seccomp listener: {}",
        target.display()
    );
    // The agent goes away without answering: the notified call fails with ENOSYS.
    drop(fds);
    let out = run.wait_timeout(WAIT).expect("run finished");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("mkdir=1"),
        "{text} / {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Function not implemented"),
        "{out:?}"
    );
}

/// If sending to listenerPath fails, the runtime MUST generate an error [Seccomp].
#[test]
fn seccomp_listener_that_cannot_be_reached_is_an_error() {
    let dir = TempDir::new("cl-agent");
    let sock = dir.path().join("nobody-listens.sock");
    let b = Bundle::new(&["probe"]).edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        });
    });
    rejected(
        &Runtime::new(),
        &b,
        &["seccomp agent", "nobody-listens.sock"],
    );
}

// ---------------------------------------------------------------------------------------------
// Rootfs mount propagation

/// A privileged container with a writable root and `rootfsPropagation` set.
fn propagation_bundle(script: &str, propagation: &str) -> Bundle {
    sh(script).with_private_rootfs().edit(|c| {
        c["root"]["readonly"] = json!(false);
        c["linux"]["rootfsPropagation"] = json!(propagation);
        add_cap(c, "CAP_SYS_ADMIN");
    })
}

/// rootfsPropagation `shared` puts the rootfs in a peer group of its own (mounts made under it
/// reach its binds), while `slave` and `private` do not propagate within the container
/// [Rootfs Mount Propagation].
#[test]
fn rootfs_propagation_shared_slave_and_private_inside_the_container() {
    // runtime-tools' check: bind / recursively elsewhere, then mount under /; does the new
    // mount show through the bind?
    let script = "mkdir -p /t /m /src && touch /src/example && mount --rbind / /t && \
                  mount --bind /src /m && if [ -e /t/m/example ]; then echo propagated; \
                  else echo isolated; fi";
    let rt = Runtime::new();
    for (value, want) in [
        ("shared", "propagated"),
        ("slave", "isolated"),
        ("private", "isolated"),
    ] {
        let out = rt.run_stdout(&propagation_bundle(script, value));
        assert_eq!(out.trim(), want, "rootfsPropagation {value}");
    }
}

/// rootfsPropagation `unbindable`: the rootfs is a private mount that cannot be bind-mounted
/// [Rootfs Mount Propagation].
#[test]
fn rootfs_propagation_unbindable_root_cannot_be_bound() {
    let script = "mkdir -p /t && mount --bind / /t; echo rc=$?; \
                  awk '$5 == \"/\"' /proc/self/mountinfo";
    let out = Runtime::new().run_stdout(&propagation_bundle(script, "unbindable"));
    assert!(out.contains("rc=1") || out.contains("rc=255"), "{out}");
    assert!(out.contains("unbindable"), "{out}");
}

/// rootfsPropagation `slave` receives mount events from the host; `private` does not
/// [Rootfs Mount Propagation].
#[test]
fn rootfs_propagation_slave_receives_host_mounts_and_private_does_not() {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = umount2(&self.0, MntFlags::MNT_DETACH);
        }
    }
    for (value, want) in [("slave", "from-the-host"), ("private", "")] {
        let b = sh("touch /started; probe wait-file /ready 20 >/dev/null; \
                    cat /mnt/hostmount/marker")
        .with_private_rootfs()
        .edit(|c| {
            c["root"]["readonly"] = json!(false);
            c["linux"]["rootfsPropagation"] = json!(value);
        });
        let hostmount = b.rootfs().join("mnt/hostmount");
        std::fs::create_dir_all(&hostmount).unwrap();
        // The bundle directory becomes a shared mount, so host mounts below it propagate.
        let bundle_dir = b.path().to_path_buf();
        mount(
            Some(&bundle_dir),
            &bundle_dir,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        let _bundle_mount = Unmount(bundle_dir.clone());
        mount(
            None::<&str>,
            &bundle_dir,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .unwrap();
        let rt = Runtime::new();
        let run = rt.spawn(&["run", "--bundle", b.path_str(), &unique("cl-prop")]);
        // Once the container runs (its probe waits), mount on the host, then let it look.
        assert!(
            wait_until(WAIT, || b.rootfs().join("started").exists()),
            "the container never started"
        );
        mount(
            Some("tmpfs"),
            &hostmount,
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=16k"),
        )
        .unwrap();
        let _host_tmpfs = Unmount(hostmount.clone());
        std::fs::write(hostmount.join("marker"), "from-the-host").unwrap();
        std::fs::write(b.rootfs().join("ready"), "").unwrap();
        let out = run.wait_timeout(WAIT).expect("run finished");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            want,
            "rootfsPropagation {value}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Masked and read-only paths

/// The layout runtime-tools' masked/readonly path tests use: a directory with a subdirectory
/// and files at three depths (all with content), plus block, character and fifo nodes.
fn plant_layout(rootfs: &Path) -> Vec<&'static str> {
    std::fs::create_dir_all(rootfs.join("top-dir/sub-dir")).unwrap();
    for f in ["top-file", "top-dir/file", "top-dir/sub-dir/file"] {
        std::fs::write(rootfs.join(f), "secrets").unwrap();
    }
    for (name, args) in [
        ("node-b", &["b", "7", "0"][..]),
        ("node-c", &["c", "1", "5"][..]),
        ("node-p", &["p"][..]),
    ] {
        let st = Command::new("mknod")
            .arg(rootfs.join(name))
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "mknod {name}");
    }
    vec![
        "/top-dir",
        "/top-file",
        "/top-dir/sub-dir",
        "/top-dir/file",
        "/top-dir/sub-dir/file",
        "/node-b",
        "/node-c",
        "/node-p",
    ]
}

/// maskedPaths are masked so that they cannot be read: files (and device nodes, fifos) read
/// nothing, directories list nothing [Masked Paths].
#[test]
fn masked_paths_cannot_be_read() {
    let script = "for f in /top-file /node-c /node-p /node-b; do printf \"$f=\"; \
                  head -c 1 $f 2>&1 | wc -c; done; ls -A /top-dir | wc -l";
    let b = sh(script).with_private_rootfs();
    let paths = plant_layout(&b.rootfs());
    let rt = Runtime::new();
    let b = b.edit(|c| c["linux"]["maskedPaths"] = json!(paths));
    let out = rt.run_stdout(&b);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        ["/top-file=0", "/node-c=0", "/node-p=0", "/node-b=0", "0"],
        "{out}"
    );
    // Unmasked, the same script sees content (fifo and loop device left out: they would block
    // or fail).
    let b = sh("head -c 1 /top-file | wc -c; head -c 1 /node-c | wc -c; ls -A /top-dir | wc -l")
        .with_private_rootfs();
    plant_layout(&b.rootfs());
    let b = b.edit(|c| c["linux"]["maskedPaths"] = json!([]));
    let out = rt.run_stdout(&b);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["1", "1", "2"]);
}

/// maskedPaths values MUST be absolute paths in the container [Masked Paths].
#[test]
fn masked_paths_must_be_absolute() {
    let b = Bundle::new(&["probe"]).edit(|c| c["linux"]["maskedPaths"] = json!(["etc/passwd"]));
    rejected(
        &Runtime::new(),
        &b,
        &["maskedPaths", "etc/passwd", "absolute"],
    );
}

/// readonlyPaths are read-only inside the container: no file written or created under them;
/// device nodes and fifos among them do not stop the container [Readonly Paths].
#[test]
fn readonly_paths_refuse_writes() {
    let script = "for f in /top-file /top-dir/file /top-dir/sub-dir/file; do \
                  probe try-write $f changed; done; \
                  for d in /top-dir /top-dir/sub-dir; do probe try-write $d/new x; done; \
                  probe try-write /elsewhere x";
    let b = sh(script).with_private_rootfs();
    let paths = plant_layout(&b.rootfs());
    let b = b.edit(|c| {
        c["root"]["readonly"] = json!(false);
        c["linux"]["readonlyPaths"] = json!(paths);
    });
    let lines = json_lines(&Runtime::new().run_stdout(&b));
    assert_eq!(lines.len(), 6, "{lines:?}");
    for w in &lines[..5] {
        assert_eq!(w["error"], "EROFS", "{w}");
    }
    assert_eq!(
        lines[5]["ok"], true,
        "a path not listed stays writable: {}",
        lines[5]
    );
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("top-file")).unwrap(),
        "secrets"
    );
}

/// readonlyPaths values MUST be absolute paths in the container [Readonly Paths].
#[test]
fn readonly_paths_must_be_absolute() {
    let b = Bundle::new(&["probe"]).edit(|c| c["linux"]["readonlyPaths"] = json!(["proc/sys"]));
    rejected(
        &Runtime::new(),
        &b,
        &["readonlyPaths", "proc/sys", "absolute"],
    );
}

// ---------------------------------------------------------------------------------------------
// Mount label, personality

/// mountLabel sets the SELinux context of the container's mounts; on a host without SELinux
/// there is nothing to label and the container runs (runc 1.1.5 passes `context=` to every
/// mount and fails) [Mount Label].
#[test]
fn mount_label_without_selinux_is_accepted() {
    if Path::new("/sys/fs/selinux/enforce").exists() {
        skip(
            "mount_label_without_selinux_is_accepted",
            Need::Host,
            "this host has SELinux",
        );
        return;
    }
    let b = Bundle::new(&["probe", "exit", "0"]).edit(|c| {
        c["linux"]["mountLabel"] = json!("system_u:object_r:svirt_sandbox_file_t:s0:c715,c811");
    });
    let out = Runtime::new().run(&b, &unique("cl-label"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// personality `LINUX32` makes uname report a 32-bit machine, `LINUX` the native one; no flags
/// are defined, so any is an error [Personality].
#[test]
fn personality_sets_the_execution_domain() {
    let rt = Runtime::new();
    let uname = |domain: &str| {
        let b = Bundle::new(&["uname", "-m"])
            .edit(|c| c["linux"]["personality"] = json!({"domain": domain}));
        rt.run_stdout(&b).trim().to_string()
    };
    let native = String::from_utf8(Command::new("uname").arg("-m").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(uname("LINUX"), native);
    if native == "x86_64" {
        assert_eq!(uname("LINUX32"), "i686");
    } else {
        assert_ne!(uname("LINUX32"), native);
    }
    let b = Bundle::new(&["probe"]).edit(|c| {
        c["linux"]["personality"] = json!({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]});
    });
    rejected(&rt, &b, &["personality", "flags"]);
}

// ---------------------------------------------------------------------------------------------
// Linux mount options (config.md, Mounts)

/// One mount's options (space-separated words) and what the mount must then show.
struct OptionCase {
    options: &'static str,
    /// Words the mount's own options must hold, and must not.
    present: &'static str,
    absent: &'static str,
    /// Words the superblock's options must hold.
    superblock: &'static str,
}

/// Checks the mount at `point` in a probe report against `case`.
fn check_options(r: &Value, point: &str, case: &OptionCase) {
    let m = mount_at(r, point).unwrap_or_else(|| panic!("{point} is not mounted"));
    let what = format!("{point} with {:?}", case.options);
    for w in case.present.split_whitespace() {
        assert!(has(&m["options"], w), "{what}: {w} missing: {m}");
    }
    for w in case.absent.split_whitespace() {
        assert!(!has(&m["options"], w), "{what}: {w} present: {m}");
    }
    for w in case.superblock.split_whitespace() {
        assert!(has(&m["super_options"], w), "{what}: {w} missing: {m}");
    }
}

/// The options table's MUST words reach mount(2): flags show in the mount's (or the
/// superblock's) options, words that clear a flag undo an earlier one [Linux mount options].
#[test]
fn mount_option_flags_reach_the_mount() {
    let cases = [
        OptionCase {
            options: "ro nosuid nodev noexec noatime nodiratime sync dirsync",
            present: "ro nosuid nodev noexec noatime nodiratime",
            absent: "rw relatime",
            superblock: "sync dirsync",
        },
        OptionCase {
            options: "ro rw nosuid suid nodev dev noexec exec strictatime sync async lazytime \
                      nosymfollow iversion defaults loud remount",
            present: "rw nosymfollow",
            absent: "ro nosuid nodev noexec relatime noatime",
            superblock: "lazytime",
        },
        OptionCase {
            options: "noatime atime strictatime nostrictatime nodiratime diratime lazytime \
                      nolazytime nosymfollow symfollow noiversion silent",
            present: "relatime",
            absent: "noatime nodiratime nosymfollow",
            superblock: "",
        },
        OptionCase {
            options: "relatime norelatime",
            present: "relatime",
            absent: "noatime",
            superblock: "",
        },
    ];
    let b = Bundle::new(&["probe", "report"])
        .with_private_rootfs()
        .edit(|c| {
            for (i, case) in cases.iter().enumerate() {
                c["mounts"].as_array_mut().unwrap().push(json!({
                    "destination": format!("/mnt/m{i}"), "type": "tmpfs", "source": "tmpfs",
                    "options": case.options.split_whitespace().collect::<Vec<_>>()
                }));
            }
        });
    let r = Runtime::new().report(&b);
    for (i, case) in cases.iter().enumerate() {
        check_options(&r, &format!("/mnt/m{i}"), case);
    }
}

/// The recursive words (rro, rrw, rnosuid, rsuid, rnodev, rdev, rnoexec, rexec, rnoatime,
/// ratime, rstrictatime, rnostrictatime, rnodiratime, rdiratime, rrelatime, rnorelatime,
/// rnosymfollow, rsymfollow) SHOULD apply to the mount and every submount
/// [Linux mount options].
#[test]
fn recursive_mount_options_reach_every_submount() {
    let host = HostTmpfs::new(false);
    let cases = [
        OptionCase {
            options: "rro rnosuid rnodev rnoexec rnoatime rnodiratime rnosymfollow",
            present: "ro nosuid nodev noexec noatime nodiratime nosymfollow",
            absent: "rw relatime",
            superblock: "",
        },
        OptionCase {
            options: "rro rrw rnosuid rsuid rnodev rdev rnoexec rexec rnodiratime rdiratime \
                      rnosymfollow rsymfollow rnoatime ratime",
            present: "rw relatime",
            absent: "ro nosuid nodev noexec nodiratime nosymfollow noatime",
            superblock: "",
        },
        OptionCase {
            options: "rnoatime rstrictatime",
            present: "rw",
            absent: "noatime relatime",
            superblock: "",
        },
        OptionCase {
            options: "rnoatime rnorelatime rnostrictatime rrelatime",
            present: "relatime",
            absent: "noatime",
            superblock: "",
        },
    ];
    let b = Bundle::new(&["probe", "report"])
        .with_private_rootfs()
        .edit(|c| {
            for (i, case) in cases.iter().enumerate() {
                let mut o = vec!["rbind"];
                o.extend(case.options.split_whitespace());
                c["mounts"].as_array_mut().unwrap().push(json!({
                    "destination": format!("/mnt/r{i}"), "type": "bind",
                    "source": host.dir.path(), "options": o
                }));
            }
            // Not only for binds: a filesystem mount takes them too.
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/mnt/fs", "type": "tmpfs", "source": "tmpfs",
                "options": ["rro", "rnoexec"]
            }));
        });
    let r = Runtime::new().report(&b);
    for (i, case) in cases.iter().enumerate() {
        check_options(&r, &format!("/mnt/r{i}"), case);
        check_options(&r, &format!("/mnt/r{i}/sub"), case);
    }
    let fs = OptionCase {
        options: "rro rnoexec",
        present: "ro noexec",
        absent: "",
        superblock: "",
    };
    check_options(&r, "/mnt/fs", &fs);
}

/// The propagation words (private, rprivate, shared, rshared, slave, rslave, unbindable,
/// runbindable) set the mount's propagation [Linux mount options].
#[test]
fn propagation_mount_options_set_the_propagation() {
    // A shared host mount: its copy in the container is a slave of it, so `slave` shows.
    let host = HostTmpfs::new(true);
    let words = [
        "private",
        "rprivate",
        "shared",
        "rshared",
        "slave",
        "rslave",
        "unbindable",
        "runbindable",
    ];
    let b = Bundle::new(&["probe", "report"])
        .with_private_rootfs()
        .edit(|c| {
            for w in words {
                c["mounts"].as_array_mut().unwrap().push(json!({
                    "destination": format!("/mnt/{w}"), "type": "bind",
                    "source": host.sub(), "options": ["bind", w]
                }));
            }
        });
    let r = Runtime::new().report(&b);
    for w in words {
        let m = mount_at(&r, &format!("/mnt/{w}")).expect("mounted");
        let o = &m["optional"];
        let (shared, slave, unbindable) = (
            has_prefix(o, "shared:"),
            has_prefix(o, "master:"),
            has(o, "unbindable"),
        );
        let want = match w.trim_start_matches('r') {
            "private" => (false, false, false),
            "shared" => (true, true, false),
            "slave" => (false, true, false),
            _ => (false, false, true),
        };
        assert_eq!((shared, slave, unbindable), want, "{w}: {m}");
    }
}
