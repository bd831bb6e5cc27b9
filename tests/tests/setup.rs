//! Container setup as the spec describes it, checked from inside with the probe: namespaces,
//! hostname, mounts, /dev, masked and read-only paths, sysctls, user, cwd, env, rlimits,
//! capabilities, no_new_privs, oom_score_adj, --no-pivot.

use mini_tests::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Runs `script` with the container's sh; returns each line of output parsed as JSON.
fn json_lines(rt: &Runtime, b: Bundle) -> Vec<Value> {
    rt.run_stdout(&b)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Namespaces

#[test]
fn the_process_is_pid_1_of_a_new_pid_namespace() {
    let r = Runtime::new().report(&Bundle::new(&["probe", "report"]));
    assert_eq!(r["pid"], 1);
    assert_eq!(r["ppid"], 0);
    assert_ne!(r["namespaces"]["pid"], host_ns_inode("pid"));
}

#[test]
fn new_namespaces_differ_from_the_hosts() {
    let r = Runtime::new().report(&Bundle::new(&["probe", "report"]));
    for kind in ["net", "ipc", "uts", "mnt", "cgroup", "pid"] {
        let inside = r["namespaces"][kind].as_u64().expect(kind);
        assert_ne!(
            inside,
            host_ns_inode(kind),
            "{kind} namespace is the host's"
        );
    }
    // Not asked for: shared with the host.
    for kind in ["user", "time"] {
        assert_eq!(
            r["namespaces"][kind].as_u64(),
            Some(host_ns_inode(kind)),
            "{kind}"
        );
    }
}

#[test]
fn without_a_namespace_entry_the_hosts_is_shared() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        ns_list(c).retain(|n| n["type"] != "network" && n["type"] != "ipc");
    });
    let r = Runtime::new().report(&b);
    assert_eq!(r["namespaces"]["net"].as_u64(), Some(host_ns_inode("net")));
    assert_eq!(r["namespaces"]["ipc"].as_u64(), Some(host_ns_inode("ipc")));
    assert_ne!(r["namespaces"]["uts"].as_u64(), Some(host_ns_inode("uts")));
}

/// A host process in new network and UTS namespaces (`unshare --net --uts sleep`), killed on
/// drop; its /proc/<pid>/ns files can be joined.
fn namespace_holder() -> ChildGuard {
    let holder = unshare_holder(&["--net", "--uts"]);
    let path = format!("/proc/{}/ns/net", holder.pid());
    assert_ne!(ns_inode(&path), host_ns_inode("net"));
    holder
}

/// A config without a mount namespace is refused on purpose, with one line saying why and
/// what to do, and leaves nothing: every mount would land in the runtime's namespace and stay
/// there (runc 1.1.5 runs such a container and leaves its proc, /dev, /sys and cgroup mounts
/// behind in the runtime's namespace; see tests/conformance/config-linux.md).
#[test]
fn a_config_without_a_mount_namespace_is_refused_with_the_reason() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "report"]).edit(|c| ns_list(c).retain(|n| n["type"] != "mount"));
    let id = unique("no-mnt");
    assert_fails_with(
        &rt.create(&b, &id),
        &["\"mount\"", "namespace", "add {\"type\": \"mount\"}"],
    );
    assert_nothing_left(&rt, &id, b.path());
}

#[test]
fn joining_namespaces_by_path_shares_them() {
    let holder = namespace_holder();
    let net = format!("/proc/{}/ns/net", holder.pid());
    let uts = format!("/proc/{}/ns/uts", holder.pid());
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        for n in ns_list(c).iter_mut() {
            if n["type"] == "network" {
                n["path"] = json!(net);
            }
            if n["type"] == "uts" {
                n["path"] = json!(uts);
            }
        }
        c["hostname"] = json!("joined-uts");
    });
    let r = Runtime::new().report(&b);
    assert_eq!(r["namespaces"]["net"].as_u64(), Some(ns_inode(&net)));
    assert_eq!(r["namespaces"]["uts"].as_u64(), Some(ns_inode(&uts)));
    assert_eq!(r["hostname"], "joined-uts");
    // The others are still new.
    assert_ne!(r["namespaces"]["ipc"].as_u64(), Some(host_ns_inode("ipc")));
    assert_eq!(r["pid"], 1);
}

#[test]
fn joining_a_network_namespace_in_a_bind_mount_shares_it() {
    // `ip netns add` keeps a namespace in a bind mount under /run/netns; a unique name and a
    // guard that deletes it keep the host clean.
    struct Netns(String);
    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Command::new("ip")
                .args(["netns", "delete", &self.0])
                .status();
        }
    }
    let name = unique("mini-tests-netns");
    let st = Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .expect("ip");
    assert!(st.success(), "ip netns add failed");
    let ns = Netns(name);
    let path = format!("/run/netns/{}", ns.0);
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        for n in ns_list(c).iter_mut() {
            if n["type"] == "network" {
                n["path"] = json!(path);
            }
        }
    });
    let r = Runtime::new().report(&b);
    assert_eq!(r["namespaces"]["net"].as_u64(), Some(ns_inode(&path)));
    assert_ne!(r["namespaces"]["net"].as_u64(), Some(host_ns_inode("net")));
}

fn userns_bundle(args: &[&str]) -> Bundle {
    Bundle::new(args).edit(|c| {
        ns_list(c).push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    })
}

#[test]
fn user_namespace_maps_container_root_to_the_mapped_host_id() {
    let rt = Runtime::new();
    let r = rt.report(&userns_bundle(&["probe", "report"]));
    assert_ne!(
        r["namespaces"]["user"].as_u64(),
        Some(host_ns_inode("user"))
    );
    assert_eq!(r["uid"], json!({"real": 0, "effective": 0, "saved": 0}));
    assert_eq!(r["gid"], json!({"real": 0, "effective": 0, "saved": 0}));
    assert_eq!(r["pid"], 1);

    // Seen from the host, the same process runs as 100000. (`run --detach`: `create` + `start`
    // fails in a user namespace, see the ignored test below.)
    let b = userns_bundle(&["probe", "sleep", "60"]);
    let id = unique("userns");
    rt.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    for key in ["Uid:", "Gid:"] {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        assert_eq!(
            line.split_whitespace().skip(1).collect::<Vec<_>>(),
            ["100000"; 4],
            "{line}"
        );
    }
    for file in ["uid_map", "gid_map"] {
        let map = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap();
        assert_eq!(
            map.split_whitespace().collect::<Vec<_>>(),
            ["0", "100000", "65536"],
            "{file}"
        );
    }
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn user_namespace_container_can_be_created_then_started() {
    let rt = Runtime::new();
    let b = userns_bundle(&["probe", "sleep", "60"]);
    let id = unique("userns-cs");
    rt.ok(&["create", "--bundle", b.path_str(), &id]);
    rt.ok(&["start", &id]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(rt.status(&id), "running");
}

#[test]
fn user_namespace_sees_host_root_files_as_the_overflow_owner() {
    // The fixture is owned by host root, which the mapping leaves out: inside, its files
    // belong to the overflow uid (65534), and the process still runs the world-executable probe.
    let out = Runtime::new().run_stdout(&userns_bundle(&[
        "stat",
        "-c",
        "%u %g",
        "/bin/probe",
        "/etc/passwd",
    ]));
    assert_eq!(out.lines().collect::<Vec<_>>(), ["65534 65534"; 2], "{out}");
}

/// A bind source only the host's root may reach (below a 0700 directory) still mounts in a
/// container with a new user namespace: the runtime opens it as host root and hands the init
/// a descriptor, as runc does (the init, root only of its namespace, is refused the path).
#[test]
fn a_bind_source_only_host_root_can_reach_mounts_in_a_user_namespace() {
    let dir = TempDir::new("userns-bind");
    let parent = dir.path().join("private");
    let src = parent.join("shared");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("hello.txt"), "from the host").unwrap();
    std::fs::set_permissions(&parent, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let b = userns_bundle(&["cat", "/mnt/hello.txt"]).edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt", "type": "bind", "source": src, "options": ["rbind", "ro"]
        }));
    });
    assert_eq!(Runtime::new().run_stdout(&b), "from the host");
}

#[test]
fn time_namespace_applies_time_offsets() {
    if !Path::new("/proc/self/ns/time").exists() {
        skip(
            "time_namespace_applies_time_offsets",
            Need::Host,
            "this kernel has no time namespaces",
        );
        return;
    }
    let offset = 10_000_000_i64;
    let b = sh("probe report; cat /proc/uptime").edit(|c| {
        ns_list(c).push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({
            "boottime": {"secs": offset, "nanosecs": 0},
            "monotonic": {"secs": offset, "nanosecs": 0}
        });
    });
    let host_before: f64 = uptime();
    let out = Runtime::new().run_stdout(&b);
    let host_after: f64 = uptime();
    let mut lines = out.lines();
    let r: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_ne!(
        r["namespaces"]["time"].as_u64(),
        Some(host_ns_inode("time"))
    );
    let inside: f64 = lines
        .next()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .expect("uptime inside");
    let off = offset as f64;
    assert!(
        inside >= host_before + off && inside <= host_after + off + 1.0,
        "uptime inside {inside}, host {host_before}..{host_after}, offset {off}"
    );
}

fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Hostname, mounts, propagation

#[test]
fn hostname_and_domainname_are_set() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        c["hostname"] = json!("box-one");
        c["domainname"] = json!("example.test");
    });
    let r = Runtime::new().report(&b);
    assert_eq!(r["hostname"], "box-one");
    assert_eq!(r["domainname"], "example.test");
    assert_ne!(
        nix::unistd::gethostname().unwrap().to_string_lossy(),
        "box-one",
        "the host's hostname must not change"
    );
}

#[test]
fn tmpfs_mount_gets_its_options() {
    let b = Bundle::new(&["probe", "report"])
        .with_private_rootfs()
        .edit(|c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/mnt/scratch", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "nodev", "noexec", "mode=710", "size=1m"]
            }));
        });
    let r = Runtime::new().report(&b);
    let m = mount_at(&r, "/mnt/scratch").expect("tmpfs mounted");
    assert_eq!(m["fs_type"], "tmpfs");
    for o in ["rw", "nosuid", "nodev", "noexec"] {
        assert!(has(&m["options"], o), "{o} missing: {m}");
    }
    assert!(has(&m["super_options"], "size=1024k"), "{m}");
    assert!(has(&m["super_options"], "mode=710"), "{m}");
}

/// A tmpfs without `mode=` takes the mode of the directory it covers (runc's behaviour, which
/// images rely on: a 0700 home stays private), also when it is read-only; one over a missing
/// directory keeps tmpfs's 1777, and `mode=` wins.
#[test]
fn a_tmpfs_without_mode_takes_the_mode_of_its_mount_point() {
    let b = sh("stat -c '%n %a' /mnt/private /mnt/private-ro /mnt/new /mnt/given; probe report")
        .with_private_rootfs()
        .edit(|c| {
            let mounts = c["mounts"].as_array_mut().unwrap();
            for (d, o) in [
                ("/mnt/private", json!([])),
                ("/mnt/private-ro", json!(["ro"])),
                ("/mnt/new", json!([])),
                ("/mnt/given", json!(["mode=750"])),
            ] {
                mounts.push(
                    json!({"destination": d, "type": "tmpfs", "source": "tmpfs", "options": o}),
                );
            }
        });
    for (d, mode) in [("private", 0o712), ("private-ro", 0o2710), ("given", 0o700)] {
        let dir = b.rootfs().join("mnt").join(d);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    let out = Runtime::new().run_stdout(&b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..4],
        [
            "/mnt/private 712",
            "/mnt/private-ro 2710",
            "/mnt/new 1777",
            "/mnt/given 750"
        ],
        "{out}"
    );
    let r: Value = serde_json::from_str(lines[4]).unwrap();
    let ro = mount_at(&r, "/mnt/private-ro").expect("mounted");
    assert!(has(&ro["options"], "ro"), "{ro}");
}

/// The access-time words apply as written: a later one replaces an earlier one (the kernel
/// alone lets strictatime or noatime win whatever the order), and `rnorelatime`, like
/// `norelatime`, only undoes a relatime asked for, leaving the default (runc 1.1.5 gives
/// relatime for both; mini-run made it strictatime).
#[test]
fn access_time_mount_options_apply_as_written() {
    let src = host_dir_with_file();
    let cases = [
        ("tmpfs", &["strictatime", "relatime"][..], "relatime"),
        ("tmpfs", &["noatime", "relatime"][..], "relatime"),
        ("tmpfs", &["relatime", "noatime"][..], "noatime"),
        ("tmpfs", &["rnorelatime"][..], "relatime"),
        ("bind", &["rbind", "rnorelatime"][..], "relatime"),
        (
            "bind",
            &["rbind", "strictatime", "relatime"][..],
            "relatime",
        ),
        ("bind", &["rbind", "relatime", "strictatime"][..], ""),
    ];
    let b = Bundle::new(&["probe", "report"])
        .with_private_rootfs()
        .edit(|c| {
            for (i, (typ, options, _)) in cases.iter().enumerate() {
                c["mounts"].as_array_mut().unwrap().push(json!({
                    "destination": format!("/mnt/a{i}"), "type": typ,
                    "source": if *typ == "bind" { src.path().to_str().unwrap() } else { "tmpfs" },
                    "options": options
                }));
            }
        });
    let r = Runtime::new().report(&b);
    for (i, (_, options, want)) in cases.iter().enumerate() {
        let m = mount_at(&r, &format!("/mnt/a{i}")).expect("mounted");
        let atime: Vec<String> = strings(&m["options"])
            .into_iter()
            .filter(|o| o.ends_with("atime"))
            .collect();
        let want: Vec<&str> = want.split_whitespace().collect();
        assert_eq!(atime, want, "{options:?}: {m}");
    }
}

/// `tmpcopyup` (crun's option, runc has it too): the tmpfs starts with the content of the
/// directory it covers (files, owners, modes, nested directories, symlinks as symlinks), is
/// writable, and writes stay in the tmpfs.
#[test]
fn a_tmpcopyup_tmpfs_starts_with_the_covered_content() {
    let b = sh(
        "head -n1 /etc/passwd; stat -c '%a %u:%g' /etc/sub /etc/sub/deep; \
                readlink /etc/link; cat /etc/sub/deep; probe try-write /etc/new x",
    )
    .with_private_rootfs()
    .edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/etc", "type": "tmpfs", "source": "tmpfs",
            "options": ["tmpcopyup", "nosuid"]
        }));
    });
    let etc = b.rootfs().join("etc");
    std::fs::create_dir(etc.join("sub")).unwrap();
    std::fs::write(etc.join("sub/deep"), "nested content\n").unwrap();
    std::os::unix::fs::symlink("../no/such/target", etc.join("link")).unwrap();
    for (p, mode) in [(etc.join("sub"), 0o751), (etc.join("sub/deep"), 0o604)] {
        std::os::unix::fs::chown(&p, Some(1000), Some(1000)).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    let out = Runtime::new().run_stdout(&b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    assert_eq!(
        lines[..5],
        [
            "root:x:0:0:root:/root:/bin/sh",
            "751 1000:1000",
            "604 1000:1000",
            "../no/such/target",
            "nested content"
        ],
        "{out}"
    );
    let w: Value = serde_json::from_str(lines[5]).unwrap();
    assert_eq!(w["ok"], true, "the copy is writable: {w}");
    assert!(!etc.join("new").exists(), "the write stayed in the tmpfs");
}

/// A host directory with one file, for bind mounts.
fn host_dir_with_file() -> TempDir {
    let d = TempDir::new("bindsrc");
    std::fs::write(d.path().join("hello.txt"), "from the host").unwrap();
    d
}

#[test]
fn read_only_bind_mount_shows_host_files_and_refuses_writes() {
    let src = host_dir_with_file();
    let b = sh("probe report; probe read /mnt/b/hello.txt; echo; probe try-write /mnt/b/new x")
        .with_private_rootfs()
        .edit(|c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/mnt/b", "type": "bind", "source": src.path(),
                "options": ["bind", "ro"]
            }));
        });
    let out = Runtime::new().run_stdout(&b);
    let lines: Vec<&str> = out.lines().collect();
    let r: Value = serde_json::from_str(lines[0]).unwrap();
    let m = mount_at(&r, "/mnt/b").expect("bind mounted");
    assert!(has(&m["options"], "ro"), "{m}");
    assert_eq!(lines[1], "from the host");
    let w: Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(w["ok"], false);
    assert_eq!(w["error"], "EROFS");
    assert!(!src.path().join("new").exists());
}

#[test]
fn writable_bind_mount_writes_through_to_the_host() {
    let src = host_dir_with_file();
    let b = Bundle::new(&["probe", "try-write", "/mnt/b/new", "written inside"])
        .with_private_rootfs()
        .edit(|c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/mnt/b", "type": "bind", "source": src.path(), "options": ["bind"]
            }));
        });
    let w = Runtime::new().run_json(&b);
    assert_eq!(w["ok"], true, "{w}");
    assert_eq!(
        std::fs::read_to_string(src.path().join("new")).unwrap(),
        "written inside"
    );
}

/// A tmpfs mounted on the host under a temp dir, unmounted on drop.
struct HostSubmount {
    dir: TempDir,
}

impl HostSubmount {
    fn new() -> HostSubmount {
        let dir = TempDir::new("rbind");
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            &sub,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=64k"),
        )
        .expect("host tmpfs");
        std::fs::write(sub.join("inner.txt"), "submount").unwrap();
        HostSubmount { dir }
    }
}

impl Drop for HostSubmount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(
            &self.dir.path().join("sub"),
            nix::mount::MntFlags::MNT_DETACH,
        );
    }
}

#[test]
fn rbind_carries_submounts_and_bind_does_not() {
    let host = HostSubmount::new();
    let b = sh("probe read /mnt/r/sub/inner.txt; echo; ls /mnt/b/sub")
        .with_private_rootfs()
        .edit(|c| {
            let mounts = c["mounts"].as_array_mut().unwrap();
            mounts.push(json!({
                "destination": "/mnt/r", "type": "bind", "source": host.dir.path(),
                "options": ["rbind", "ro"]
            }));
            mounts.push(json!({
                "destination": "/mnt/b", "type": "bind", "source": host.dir.path(),
                "options": ["bind", "ro"]
            }));
        });
    let out = Runtime::new().run_stdout(&b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "submount", "rbind shows the submount: {out}");
    assert_eq!(
        lines.len(),
        1,
        "bind must not show the submount's files: {out}"
    );
    drop(host);
}

#[test]
fn proc_sysfs_mqueue_devpts_and_cgroup_are_mounted() {
    let r = Runtime::new().report(&Bundle::new(&["probe", "report"]));
    let m = |p: &str| mount_at(&r, p).unwrap_or_else(|| panic!("{p} not mounted"));
    assert_eq!(m("/proc")["fs_type"], "proc");
    assert_eq!(m("/sys")["fs_type"], "sysfs");
    assert!(has(&m("/sys")["options"], "ro"), "sysfs must be read-only");
    assert_eq!(m("/dev/mqueue")["fs_type"], "mqueue");
    assert_eq!(m("/dev/pts")["fs_type"], "devpts");
    assert!(has(&m("/dev/pts")["super_options"], "ptmxmode=666"));
    assert_eq!(m("/dev/shm")["fs_type"], "tmpfs");
    let cg: Vec<&Value> = r["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| {
            x["mount_point"]
                .as_str()
                .unwrap()
                .starts_with("/sys/fs/cgroup")
                && (x["fs_type"] == "cgroup" || x["fs_type"] == "cgroup2")
        })
        .collect();
    assert!(!cg.is_empty(), "no cgroup filesystem under /sys/fs/cgroup");
    assert!(cg.iter().all(|x| has(&x["options"], "ro")), "{cg:?}");
}

#[test]
fn sysfs_refuses_writes() {
    let file = "/sys/kernel/profiling";
    let host = std::fs::metadata(file).expect("host sysfs file");
    assert!(
        !host.permissions().readonly(),
        "{file} is writable on the host"
    );
    let b = Bundle::new(&["probe", "try-open", file, "w"]);
    let w = Runtime::new().run_json(&b);
    assert_eq!(w["ok"], false, "{w}");
    assert_eq!(w["error"], "EROFS", "{w}");
}

#[test]
fn rootfs_propagation_shared_makes_the_root_shared() {
    let b = Bundle::new(&["probe", "report"])
        .edit(|c| c["linux"]["rootfsPropagation"] = json!("shared"));
    let r = Runtime::new().report(&b);
    let root = mount_at(&r, "/").unwrap();
    assert!(
        strings(&root["optional"])
            .iter()
            .any(|o| o.starts_with("shared:")),
        "{root}"
    );
    // The default (rslave of a private host root) is not shared.
    let r = Runtime::new().report(&Bundle::new(&["probe", "report"]));
    let root = mount_at(&r, "/").unwrap();
    assert!(
        !strings(&root["optional"])
            .iter()
            .any(|o| o.starts_with("shared:")),
        "{root}"
    );
}

#[test]
fn rootfs_propagation_private_keeps_the_root_private() {
    let b = Bundle::new(&["probe", "report"])
        .edit(|c| c["linux"]["rootfsPropagation"] = json!("private"));
    let r = Runtime::new().report(&b);
    assert!(strings(&mount_at(&r, "/").unwrap()["optional"]).is_empty());
}

// ---------------------------------------------------------------------------------------------
// /dev

#[test]
fn dev_has_the_default_devices_and_links() {
    let b = sh(
        "stat -c '%n|%F|%t:%T|%a' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; \
         for l in fd stdin stdout stderr ptmx; do echo \"/dev/$l->$(readlink /dev/$l)\"; done",
    );
    let out = Runtime::new().run_stdout(&b);
    let lines: Vec<&str> = out.lines().collect();
    let want_dev = [
        ("/dev/null", "1:3"),
        ("/dev/zero", "1:5"),
        ("/dev/full", "1:7"),
        ("/dev/random", "1:8"),
        ("/dev/urandom", "1:9"),
        ("/dev/tty", "5:0"),
    ];
    for (i, (path, dev)) in want_dev.iter().enumerate() {
        assert_eq!(
            lines[i],
            format!("{path}|character special file|{dev}|666"),
            "{out}"
        );
    }
    for (i, want) in [
        "/dev/fd->/proc/self/fd",
        "/dev/stdin->/proc/self/fd/0",
        "/dev/stdout->/proc/self/fd/1",
        "/dev/stderr->/proc/self/fd/2",
        "/dev/ptmx->pts/ptmx",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(lines[want_dev.len() + i], *want, "{out}");
    }
}

/// A read-only /dev (the spec's /dev mount with `ro`) works, as in runc: the default devices,
/// devpts and the console are set up before /dev becomes read-only.
#[test]
fn a_read_only_dev_gets_its_devices_and_devpts_first() {
    let b = sh("probe report; probe try-write /dev/new x; probe try-write /dev/null x").edit(|c| {
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/dev" {
                m["options"].as_array_mut().unwrap().push(json!("ro"));
            }
        }
    });
    let lines = json_lines(&Runtime::new(), b);
    let dev = mount_at(&lines[0], "/dev").expect("/dev mounted");
    assert!(has(&dev["options"], "ro"), "{dev}");
    assert!(
        has(&dev["options"], "nosuid"),
        "its other flags are kept: {dev}"
    );
    assert_eq!(
        mount_at(&lines[0], "/dev/pts").expect("devpts")["fs_type"],
        "devpts"
    );
    assert_eq!(lines[1]["error"], "EROFS", "{}", lines[1]);
    assert_eq!(lines[2]["ok"], true, "the devices still work: {}", lines[2]);
}

#[test]
fn spec_device_is_created_with_its_mode_and_owner() {
    let b = sh("stat -c '%F|%t:%T|%a|%u:%g' /dev/mynull; probe try-open /dev/mynull w").edit(|c| {
        c["linux"]["devices"] = json!([{
            "path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
            "fileMode": 0o600, "uid": 1000, "gid": 1000
        }]);
    });
    let rt = Runtime::new();
    let out = rt.run_stdout(&b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "character special file|1:3|600|1000:1000",
        "{out}"
    );
    // Root without CAP_DAC_OVERRIDE (not in the default spec) is held to the mode...
    let w: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(w["error"], "EACCES", "{w}");
    // ...and the owner may write.
    let b = b.edit(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    let out = rt.run_stdout(&b);
    let w: Value = serde_json::from_str(out.lines().nth(1).unwrap()).unwrap();
    assert_eq!(w["ok"], true, "the owner can write the device: {w}");
}

// ---------------------------------------------------------------------------------------------
// Masked, read-only, root

#[test]
fn masked_paths_are_unreadable() {
    let b = sh(
        "probe read /etc/group; echo '|'; ls -A /home/tester /sys/firmware; echo '|'; \
                probe read /proc/timer_list | head -c 100",
    )
    .edit(|c| {
        c["linux"]["maskedPaths"] = json!([
            "/etc/group",
            "/home/tester",
            "/sys/firmware",
            "/proc/timer_list",
            "/no/such/path"
        ]);
    });
    let out = Runtime::new().run_stdout(&b);
    let parts: Vec<&str> = out.split('|').map(str::trim).collect();
    assert_eq!(parts[0], "", "masked file reads empty: {out}");
    assert_eq!(
        parts[1]
            .lines()
            .filter(|l| !l.ends_with(':') && !l.is_empty())
            .count(),
        0,
        "masked dirs are empty: {out}"
    );
    assert_eq!(parts[2], "", "masked /proc file reads empty: {out}");

    // Unmasked, the same paths have content (the test would pass vacuously otherwise).
    let b = sh("probe read /etc/group; ls -A /sys/firmware | head -c 1");
    let out = Runtime::new().run_stdout(&b.edit(|c| c["linux"]["maskedPaths"] = json!([])));
    assert!(out.contains("tester"), "{out}");
}

/// A masked path that is a dangling symlink is refused with one line naming it (runc skips
/// it silently; mini-run used to bind /dev/null over the symlink itself).
#[test]
fn a_masked_path_that_is_a_dangling_symlink_is_refused() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "report"])
        .with_private_rootfs()
        .edit(|c| c["linux"]["maskedPaths"] = json!(["/etc/dangling"]));
    std::os::unix::fs::symlink("/no/such/file", b.rootfs().join("etc/dangling")).unwrap();
    let id = unique("mask-dangling");
    assert_fails_with(
        &rt.create(&b, &id),
        &["maskedPaths", "/etc/dangling", "symlink", "/no/such/file"],
    );
    assert_nothing_left(&rt, &id, b.path());
}

#[test]
fn masked_file_refuses_writes_and_dir_is_read_only() {
    let b = sh("probe try-write /home/tester/x y; probe try-open /etc/group w")
        .edit(|c| c["linux"]["maskedPaths"] = json!(["/home/tester", "/etc/group"]))
        .with_private_rootfs()
        .edit(|c| c["root"]["readonly"] = json!(false));
    let lines = json_lines(&Runtime::new(), b);
    assert_eq!(lines[0]["error"], "EROFS", "{}", lines[0]);
    // /etc/group is /dev/null now: writes go nowhere, the file is unchanged.
    assert_eq!(lines[1]["ok"], true, "{}", lines[1]);
}

#[test]
fn readonly_paths_refuse_writes() {
    let b = sh(
        "probe try-write /mnt/rw/f x; probe try-write /mnt/other/f x; \
                probe try-write /proc/sys/kernel/domainname x",
    )
    .with_private_rootfs()
    .edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        for d in ["/mnt/rw", "/mnt/other"] {
            mounts.push(json!({"destination": d, "type": "tmpfs", "source": "tmpfs"}));
        }
        c["linux"]["readonlyPaths"] = json!(["/mnt/rw", "/proc/sys", "/no/such/path"]);
    });
    let lines = json_lines(&Runtime::new(), b);
    assert_eq!(lines[0]["error"], "EROFS", "{}", lines[0]);
    assert_eq!(
        lines[1]["ok"], true,
        "not listed, still writable: {}",
        lines[1]
    );
    assert_eq!(lines[2]["error"], "EROFS", "{}", lines[2]);
}

#[test]
fn readonly_root_refuses_writes() {
    let b = Bundle::new(&["probe", "try-write", "/written-by-test", "x"]);
    assert_eq!(b.config["root"]["readonly"], true);
    let w = Runtime::new().run_json(&b);
    assert_eq!(w["ok"], false, "{w}");
    assert_eq!(w["error"], "EROFS", "{w}");
    assert!(!fixture_rootfs().join("written-by-test").exists());
}

#[test]
fn writable_root_allows_writes() {
    let b = Bundle::new(&["probe", "try-write", "/written-by-test", "hello"])
        .with_private_rootfs()
        .edit(|c| c["root"]["readonly"] = json!(false));
    let w = Runtime::new().run_json(&b);
    assert_eq!(w["ok"], true, "{w}");
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("written-by-test")).unwrap(),
        "hello"
    );
}

// ---------------------------------------------------------------------------------------------
// Sysctl

#[test]
fn namespaced_sysctls_are_set_inside_only() {
    let host_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let host_rmid = std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap();
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1"});
    });
    let r = Runtime::new().report(&b);
    assert_eq!(r["sysctls"]["net.ipv4.ip_forward"], "1");
    assert_eq!(r["sysctls"]["kernel.shm_rmid_forced"], "1");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_forward
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap(),
        host_rmid
    );
}

#[test]
fn non_namespaced_sysctl_is_rejected() {
    let rt = Runtime::new();
    for (key, words) in [
        ("kernel.panic", &["kernel.panic", "not namespaced"][..]),
        ("vm.swappiness", &["vm.swappiness", "not namespaced"][..]),
    ] {
        let b = Bundle::new(&["probe"]).edit(|c| c["linux"]["sysctl"] = json!({key: "1"}));
        let id = unique("sysctl");
        assert_fails_with(&rt.create(&b, &id), words);
        assert_nothing_left(&rt, &id, b.path());
    }
}

#[test]
fn net_sysctl_without_a_network_namespace_is_rejected() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe"]).edit(|c| {
        ns_list(c).retain(|n| n["type"] != "network");
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    });
    let id = unique("sysctl");
    assert_fails_with(&rt.create(&b, &id), &["net.ipv4.ip_forward", "namespace"]);
    assert_nothing_left(&rt, &id, b.path());
}

// ---------------------------------------------------------------------------------------------
// Process: user, cwd, env, rlimits, capabilities, no_new_privs, oom_score_adj

#[test]
fn user_ids_additional_gids_and_umask_are_applied() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        c["process"]["user"] = json!({
            "uid": 1000, "gid": 1000, "additionalGids": [2000, 3000], "umask": 0o027
        });
    });
    let r = Runtime::new().report(&b);
    assert_eq!(
        r["uid"],
        json!({"real": 1000, "effective": 1000, "saved": 1000})
    );
    assert_eq!(
        r["gid"],
        json!({"real": 1000, "effective": 1000, "saved": 1000})
    );
    assert_eq!(r["groups"], json!([2000, 3000]));
    assert_eq!(r["umask"], 0o027);
}

#[test]
fn default_umask_is_0022_and_no_additional_groups() {
    let r = Runtime::new().report(&Bundle::new(&["probe", "report"]));
    assert_eq!(r["umask"], 0o022);
    assert_eq!(r["groups"], json!([]));
    assert_eq!(r["uid"]["effective"], 0);
}

#[test]
fn existing_cwd_is_entered() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| c["process"]["cwd"] = json!("/home/tester"));
    assert_eq!(Runtime::new().report(&b)["cwd"], "/home/tester");
}

/// A working directory only root may enter works for a non-root process user: the runtime
/// enters it before dropping privileges, as runc 1.1.5 does.
#[test]
fn a_cwd_only_root_can_enter_works_for_a_non_root_user() {
    let b = sh("pwd; id -u").with_private_rootfs().edit(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["cwd"] = json!("/root-only");
    });
    let dir = b.rootfs().join("root-only");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let out = Runtime::new().run_stdout(&b);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["/root-only", "1000"],
        "{out}"
    );
}

/// The check that the cwd lies inside the root runs before the seccomp filter is installed
/// (installed early without no_new_privs): a profile that denies getcwd does not break start.
#[test]
fn a_profile_denying_getcwd_does_not_break_start() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        c["process"]["noNewPrivileges"] = json!(false);
        c["process"]["cwd"] = json!("/home/tester");
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    let r = Runtime::new().report(&b);
    assert_eq!(r["seccomp"], 2, "the filter is installed: {r}");
    // The probe falls back to /proc/self/cwd when getcwd fails.
    assert_eq!(r["cwd"], "/home/tester", "{r}");
}

#[test]
fn missing_nested_cwd_is_an_error() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "report"])
        .edit(|c| c["process"]["cwd"] = json!("/no/such/nested/dir"));
    let id = unique("cwd");
    assert_fails_with(&rt.create(&b, &id), &["/no/such/nested/dir"]);
    assert_nothing_left(&rt, &id, b.path());
}

#[test]
fn env_is_passed_exactly() {
    let env = [
        "PATH=/bin",
        "A=1",
        "WITH_SPACES=two words",
        "EMPTY=",
        "EQUALS=a=b",
    ];
    let b = Bundle::new(&["probe", "report"]).edit(|c| c["process"]["env"] = json!(env));
    assert_eq!(Runtime::new().report(&b)["env"], json!(env));
}

#[test]
fn rlimits_are_set_soft_and_hard() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        c["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 777},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096},
            {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400},
            {"type": "RLIMIT_CPU", "soft": 3600, "hard": 7200}
        ]);
    });
    let r = Runtime::new().report(&b);
    let rl = &r["rlimits"];
    assert_eq!(rl["RLIMIT_NOFILE"], json!({"soft": 512, "hard": 777}));
    assert_eq!(rl["RLIMIT_CORE"], json!({"soft": 0, "hard": 4096}));
    assert_eq!(rl["RLIMIT_NPROC"], json!({"soft": 300, "hard": 400}));
    assert_eq!(rl["RLIMIT_CPU"], json!({"soft": 3600, "hard": 7200}));
}

fn caps(names: &[&str]) -> Value {
    json!(names.iter().map(|n| format!("CAP_{n}")).collect::<Vec<_>>())
}

fn cap_set(report: &Value, set: &str) -> Vec<String> {
    let mut v = strings(&report["caps"][set]);
    v.sort();
    v
}

#[test]
fn all_five_capability_sets_reach_a_non_root_process() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["capabilities"] = json!({
            "bounding": caps(&["NET_BIND_SERVICE", "KILL", "CHOWN"]),
            "effective": caps(&["NET_BIND_SERVICE"]),
            "permitted": caps(&["NET_BIND_SERVICE"]),
            "inheritable": caps(&["NET_BIND_SERVICE"]),
            "ambient": caps(&["NET_BIND_SERVICE"])
        });
    });
    let r = Runtime::new().report(&b);
    assert_eq!(
        cap_set(&r, "bounding"),
        ["cap_chown", "cap_kill", "cap_net_bind_service"]
    );
    for set in ["effective", "permitted", "inheritable", "ambient"] {
        assert_eq!(cap_set(&r, set), ["cap_net_bind_service"], "{set}");
    }
    assert_eq!(r["uid"]["effective"], 1000);
}

#[test]
fn non_root_without_ambient_capabilities_has_none_after_exec() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["capabilities"] = json!({
            "bounding": caps(&["NET_BIND_SERVICE", "KILL"]),
            "effective": caps(&["NET_BIND_SERVICE", "KILL"]),
            "permitted": caps(&["NET_BIND_SERVICE", "KILL"]),
            "inheritable": caps(&["KILL"]),
            "ambient": []
        });
    });
    let r = Runtime::new().report(&b);
    for set in ["effective", "permitted", "ambient"] {
        assert!(cap_set(&r, set).is_empty(), "{set}: {:?}", cap_set(&r, set));
    }
    assert_eq!(cap_set(&r, "inheritable"), ["cap_kill"]);
    assert_eq!(
        cap_set(&r, "bounding"),
        ["cap_kill", "cap_net_bind_service"]
    );
}

#[test]
fn root_capabilities_are_limited_by_the_bounding_set() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        c["process"]["capabilities"] = json!({
            "bounding": caps(&["CHOWN", "SETUID"]),
            "effective": caps(&["CHOWN", "SETUID"]),
            "permitted": caps(&["CHOWN", "SETUID"]),
            "inheritable": [],
            "ambient": []
        });
    });
    let r = Runtime::new().report(&b);
    for set in ["bounding", "effective", "permitted"] {
        assert_eq!(cap_set(&r, set), ["cap_chown", "cap_setuid"], "{set}");
    }
    assert!(cap_set(&r, "inheritable").is_empty());
    assert!(cap_set(&r, "ambient").is_empty());
}

/// The check of the executable before execve honours CAP_DAC_OVERRIDE as execve does: a
/// non-root user holding it runs a root-owned 0700 program (runc 1.1.5 does), and without it
/// the program is still refused.
#[test]
fn the_executable_check_honours_cap_dac_override() {
    let b = Bundle::new(&["/root-only.sh"])
        .with_private_rootfs()
        .edit(|c| {
            c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
            let set = caps(&["DAC_OVERRIDE"]);
            c["process"]["capabilities"] = json!({
                "bounding": set, "effective": set, "permitted": set,
                "inheritable": set, "ambient": set
            });
        });
    let script = b.rootfs().join("root-only.sh");
    std::fs::write(&script, "#!/bin/sh\necho ran as $(id -u)\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let rt = Runtime::new();
    assert_eq!(rt.run_stdout(&b).trim(), "ran as 1000");
    let b = b.edit(|c| c["process"]["capabilities"] = json!({}));
    assert_fails_with(&rt.run(&b, &unique("no-dac")), &["/root-only.sh"]);
}

#[test]
fn no_new_privileges_true_and_false() {
    for (value, want) in [(true, true), (false, false)] {
        let b = Bundle::new(&["probe", "report"])
            .edit(|c| c["process"]["noNewPrivileges"] = json!(value));
        assert_eq!(Runtime::new().report(&b)["no_new_privs"], want);
    }
}

#[test]
fn oom_score_adj_is_raised() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| c["process"]["oomScoreAdj"] = json!(500));
    assert_eq!(Runtime::new().report(&b)["oom_score_adj"], 500);
    let r = Runtime::new().report(&Bundle::new(&["probe", "report"]));
    assert_eq!(
        r["oom_score_adj"],
        own_oom_score_adj(),
        "inherited when unset"
    );
}

fn own_oom_score_adj() -> i64 {
    std::fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn no_pivot_runs_the_container_in_its_rootfs() {
    let rt = Runtime::new();
    let b = sh("probe report; probe read /etc/passwd");
    let out = rt.run_no_pivot(&b);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (first, rest) = text.split_once('\n').unwrap();
    let r: Value = serde_json::from_str(first).unwrap();
    assert_eq!(
        r["ppid"], 1,
        "the probe is a child of sh, the container's init"
    );
    assert_ne!(r["namespaces"]["mnt"].as_u64(), Some(host_ns_inode("mnt")));
    assert_eq!(r["cwd"], "/");
    assert!(mount_at(&r, "/proc").is_some());
    assert!(rest.contains("tester:x:1000"), "{rest}");
    // No host mount (outside the rootfs) is visible.
    assert!(
        r["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| !m["mount_point"].as_str().unwrap().starts_with("/work")),
        "{r}"
    );
}

/// A new network namespace has its loopback up (runc and crun bring it up too): the container
/// reaches its own 127.0.0.1.
#[test]
fn a_new_network_namespace_has_its_loopback_up() {
    let rt = Runtime::new();
    let out = rt.run_stdout(&sh("cat /sys/class/net/lo/operstate /sys/class/net/lo/flags; \
             httpd -p 127.0.0.1:8080 -h /etc && wget -q -O - http://127.0.0.1:8080/passwd | head -n 1"),
    );
    let lines: Vec<&str> = out.lines().collect();
    let flags = u32::from_str_radix(lines[1].trim_start_matches("0x"), 16).expect("flags");
    assert_eq!(flags & 1, 1, "lo is not up: {out}");
    assert!(
        lines.get(2).is_some_and(|l| l.starts_with("root:")),
        "{out}"
    );
}
