//! What the runtime keeps from the container: descriptors, a working directory outside the
//! rootfs (CVE-2024-21626), its own binary (CVE-2019-5736), a dumpable init, and a fake
//! /dev/null for masking (CVE-2025-31133), and with `--no-pivot` the host's procfs, sysfs and old
//! root. And what it keeps from other local users: the state that holds a container's
//! environment.

use mini_tests::*;
use serde_json::{json, Value};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::Output;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// Makes `cmd` start with `fds[i]` open (without close-on-exec) as descriptor `3 + i`, the way
/// a caller leaks or passes descriptors to the runtime.
fn with_fds(cmd: &mut std::process::Command, fds: &[&dyn AsRawFd]) {
    let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    // SAFETY: only fcntl and dup2, which are async-signal-safe, run between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Copies above the targets first: no target overwrites a source, and a source that
            // already is its target still loses close-on-exec.
            for (i, fd) in raw.iter().enumerate() {
                let high = libc::fcntl(*fd, libc::F_DUPFD, 100);
                if high < 0 || libc::dup2(high, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Runs `mini-run ARGS` with `files` as descriptors 3, 4, ... (see [`with_fds`]).
fn cmd_with_fds(rt: &Runtime, args: &[&str], files: &[&File]) -> Output {
    let mut cmd = rt.command(args);
    let fds: Vec<&dyn AsRawFd> = files.iter().map(|f| *f as &dyn AsRawFd).collect();
    with_fds(&mut cmd, &fds);
    cmd.output().expect("spawn mini-run")
}

fn fds_of(report: &Value) -> Vec<(i64, String)> {
    report["fds"]
        .as_array()
        .expect("fds")
        .iter()
        .map(|f| {
            (
                f["fd"].as_i64().unwrap(),
                f["target"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn report_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    last_json(out)
}

#[test]
fn only_stdio_is_open_in_the_container_process() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "report"]);
    let leaked = File::open(fixture_rootfs().join("etc/passwd")).unwrap();
    let out = cmd_with_fds(
        &rt,
        &["run", "--bundle", b.path_str(), &unique("fds")],
        &[&leaked, &leaked],
    );
    let fds = fds_of(&report_of(&out));
    assert_eq!(
        fds.iter().map(|(fd, _)| *fd).collect::<Vec<_>>(),
        [0, 1, 2],
        "descriptors of the runtime or its caller reached the container: {fds:?}"
    );
}

#[test]
fn preserve_fds_passes_exactly_that_many_descriptors() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "report"]);
    let dir = TempDir::new("preserve");
    let passed_path = dir.path().join("passed.txt");
    let passed = File::create(&passed_path).unwrap();
    let extra = File::open(fixture_rootfs().join("etc/group")).unwrap();
    let out = cmd_with_fds(
        &rt,
        &[
            "run",
            "--preserve-fds",
            "1",
            "--bundle",
            b.path_str(),
            &unique("preserve"),
        ],
        &[&passed, &extra],
    );
    let fds = fds_of(&report_of(&out));
    assert_eq!(
        fds.iter().map(|(fd, _)| *fd).collect::<Vec<_>>(),
        [0, 1, 2, 3],
        "{fds:?}"
    );
    assert!(
        fds[3].1.ends_with("passed.txt"),
        "fd 3 should be the passed file: {fds:?}"
    );
}

#[test]
fn preserved_descriptor_is_usable_inside() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "echo written-through-fd-3 >&3"]);
    let dir = TempDir::new("preserve-w");
    let path = dir.path().join("out.txt");
    let file = File::create(&path).unwrap();
    let out = cmd_with_fds(
        &rt,
        &[
            "run",
            "--preserve-fds",
            "1",
            "--bundle",
            b.path_str(),
            &unique("pw"),
        ],
        &[&file],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "written-through-fd-3\n"
    );
}

#[test]
fn cwd_through_a_leaked_descriptor_is_refused() {
    // CVE-2024-21626: a host directory descriptor leaks into the init, and process.cwd names it
    // through /proc/self/fd. The process would start outside its root.
    let rt = Runtime::new();
    let host_dir = TempDir::new("leakdir");
    let dir = File::open(host_dir.path()).unwrap();
    for preserve in ["0", "1"] {
        let b = Bundle::new(&["probe", "report"])
            .edit(|c| c["process"]["cwd"] = json!("/proc/self/fd/3"));
        let id = unique("cve-cwd");
        let out = cmd_with_fds(
            &rt,
            &[
                "run",
                "--preserve-fds",
                preserve,
                "--bundle",
                b.path_str(),
                &id,
            ],
            &[&dir],
        );
        assert_fails_with(&out, &["cwd", "/proc/self/fd/3"]);
        assert!(
            String::from_utf8_lossy(&out.stdout).is_empty(),
            "the process ran"
        );
        assert_nothing_left(&rt, &id, b.path());
    }
    // Every other small descriptor number too (none may name a host directory).
    for n in 3..12 {
        let b = Bundle::new(&["probe", "report"])
            .edit(|c| c["process"]["cwd"] = json!(format!("/proc/self/fd/{n}")));
        let out = rt.run(&b, &unique("cve-cwd-n"));
        if out.status.success() {
            let cwd = last_json(&out)["cwd"].as_str().unwrap().to_string();
            assert!(cwd.starts_with('/'), "fd {n}: cwd outside the root: {cwd}");
        } else {
            stderr_line(&out);
        }
    }
}

#[test]
fn runtime_binary_is_read_only_through_the_inits_exe() {
    // CVE-2019-5736: while the init runs the runtime's binary, /proc/<init>/exe must not open
    // for writing, and it leads to a read-only mount (not the host's writable one).
    let rt = Runtime::new();
    let bin = mini_run_bin();
    let before = file_fingerprint(&bin);
    let b = Bundle::new(&["probe", "sleep", "60"]);
    let id = unique("exe");
    rt.ok(&["create", "--bundle", b.path_str(), &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let exe = format!("/proc/{pid}/exe");
    assert_eq!(
        file_fingerprint(exe.as_ref()),
        before,
        "the init runs mini-run"
    );
    let flags = nix::sys::statvfs::statvfs(exe.as_str()).unwrap().flags();
    assert!(
        flags.contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
        "the init's binary is not behind a read-only mount"
    );
    assert!(
        !nix::sys::statvfs::statvfs(&bin)
            .unwrap()
            .flags()
            .contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
        "the check above is only meaningful if the host's copy is writable"
    );
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(&exe)
        .expect_err("opening the init's exe for writing must fail");
    assert!(
        matches!(err.raw_os_error(), Some(libc::EROFS) | Some(libc::ETXTBSY)),
        "{err}"
    );
    rt.ok(&["start", &id]);
    rt.ok(&["delete", "--force", &id]);
    assert_eq!(file_fingerprint(&bin), before, "the runtime binary changed");
}

#[test]
fn shebang_proc_self_exe_cannot_open_the_runtime_binary_for_writing() {
    // The entry point `#!/proc/self/exe` makes the kernel run the init's own binary, mini-run,
    // as the container's process. An attacker keeps a descriptor to it and, once it has exited,
    // reopens it for writing (CVE-2019-5736). To catch it running, the container's environment
    // makes that mini-run believe it is an init whose channel is fd 3, a socket whose other end
    // the test holds: it blocks reading it.
    let bin = mini_run_bin();
    let before = file_fingerprint(&bin);
    let init_env = format!("{}=3", mini_run::process::exe_guard::INIT_ENV);
    let b = Bundle::new(&["/evil"])
        .with_private_rootfs()
        .edit(|c| c["process"]["env"] = json!(["PATH=/bin", init_env]));
    let evil = b.rootfs().join("evil");
    std::fs::write(&evil, "#!/proc/self/exe\n").unwrap();
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).unwrap();

    let rt = Runtime::new();
    let (read_end, write_end) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut cmd = rt.command(&[
        "run",
        "--preserve-fds",
        "1",
        "--bundle",
        b.path_str(),
        &unique("shebang"),
    ]);
    with_fds(&mut cmd, &[&read_end]);
    let run = ChildGuard::start(&mut cmd);
    drop(read_end);

    let Some(pid) = child_running(run.pid(), "/proc/self/exe") else {
        let out = run.wait_timeout(WAIT);
        panic!("the shebang never ran mini-run: {out:?}");
    };
    let exe = format!("/proc/{pid}/exe");
    assert_eq!(
        file_fingerprint(exe.as_ref()),
        before,
        "the container's process is the runtime's binary"
    );
    assert!(
        nix::sys::statvfs::statvfs(exe.as_str())
            .unwrap()
            .flags()
            .contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
        "the container's process reaches the runtime binary through a writable mount"
    );
    let open_w = |path: &str| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .expect_err("opened the runtime binary for writing")
            .raw_os_error()
    };
    let errno = open_w(&exe);
    assert!(
        matches!(errno, Some(libc::EROFS) | Some(libc::ETXTBSY)),
        "{errno:?}"
    );
    let held = File::open(&exe).expect("a read-only descriptor, as an attacker keeps");

    // Let it exit (EOF on its channel), then reopen the held descriptor for writing.
    drop(write_end);
    let out = run.wait_timeout(WAIT).expect("run did not return");
    assert!(!out.status.success());
    let errno = open_w(&format!("/proc/self/fd/{}", held.as_raw_fd()));
    assert!(
        matches!(errno, Some(libc::EROFS) | Some(libc::ETXTBSY)),
        "{errno:?}"
    );
    assert_eq!(file_fingerprint(&bin), before, "the runtime binary changed");
}

#[test]
fn init_is_not_dumpable_until_it_executes_the_process() {
    // A non-dumpable process's private /proc/<pid> files (fd/, environ: the ones not world
    // readable) belong to root whatever its uid. The init runs as
    // the spec's user (1000) while it waits for start; CAP_DAC_OVERRIDE lets it open the exec
    // FIFO as that user (see the ignored test in setup.rs for why that is needed).
    let caps = json!(["CAP_DAC_OVERRIDE", "CAP_KILL"]);
    let b = Bundle::new(&["probe", "sleep", "60"]).edit(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["capabilities"] = json!({
            "bounding": caps, "effective": caps, "permitted": caps
        });
    });
    let rt = Runtime::new();
    let id = unique("dumpable");
    rt.ok(&["create", "--bundle", b.path_str(), &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let proc_dir = format!("/proc/{pid}");
    let fd_dir = format!("{proc_dir}/fd");
    let status = std::fs::read_to_string(format!("{proc_dir}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.contains("1000")),
        "the waiting init already runs as the user: {status}"
    );
    assert_eq!(
        std::fs::metadata(&fd_dir).unwrap().uid(),
        0,
        "the created container's init is dumpable"
    );

    rt.ok(&["start", &id]);
    assert!(
        wait_until(WAIT, || std::fs::read(format!("{proc_dir}/cmdline"))
            .is_ok_and(|c| c.starts_with(b"probe"))),
        "the process never started"
    );
    assert_eq!(
        std::fs::metadata(&fd_dir).unwrap().uid(),
        1000,
        "an ordinary process is dumpable again after execve"
    );
}

#[test]
fn user_process_is_dumpable_after_exec() {
    let r = Runtime::new().report(&Bundle::new(&["probe", "report"]));
    assert_eq!(r["dumpable"], 1);
}

#[test]
fn masking_refuses_a_dev_null_that_is_not_the_null_device() {
    let rt = Runtime::new();
    for (major, minor) in [(1, 5), (1, 7)] {
        let b = Bundle::new(&["probe", "report"]).edit(|c| {
            c["linux"]["devices"] = json!([{
                "path": "/dev/null", "type": "c", "major": major, "minor": minor, "fileMode": 0o666
            }]);
        });
        let id = unique("fakenull");
        assert_fails_with(&rt.create(&b, &id), &["/dev/null", "not the null device"]);
        assert_nothing_left(&rt, &id, b.path());
    }
    // The genuine device is accepted.
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        c["linux"]["devices"] = json!([{
            "path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666
        }]);
    });
    assert_eq!(rt.report(&b)["pid"], 1);
}

#[test]
fn masking_refuses_a_dev_null_symlink_planted_in_the_image() {
    // With /dev from the image (bind of the rootfs's own dev directory), /dev/null is whatever
    // the image holds: here a symlink to a host-looking file.
    let b = Bundle::new(&["probe", "report"]).with_private_rootfs();
    let dev = b.rootfs().join("dev");
    let _ = std::fs::remove_file(dev.join("null"));
    std::os::unix::fs::symlink("/etc/passwd", dev.join("null")).unwrap();
    let b = b.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| {
            m["destination"] != "/dev" && !m["destination"].as_str().unwrap().starts_with("/dev/")
        });
        mounts.push(json!({
            "destination": "/dev", "type": "bind", "source": dev, "options": ["bind"]
        }));
    });
    let rt = Runtime::new();
    let id = unique("symnull");
    assert_fails_with(&rt.create(&b, &id), &["/dev/null"]);
    assert_nothing_left(&rt, &id, b.path());
}

#[test]
fn container_state_with_the_environment_is_private_to_root() {
    const SECRET: &str = "PASSWORD=state-secret-4711";
    // The test's root exists already with mode 0755, like one an older version made.
    let rt = Runtime::new();
    assert_eq!(mode_of(rt.root()), 0o755);
    // A non-root process: the init reopens the exec FIFO after it became that user, so the
    // private directories must not keep it from starting.
    let b = Bundle::new(&["probe", "sleep", "60"]).edit(|c| {
        c["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!(SECRET));
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    let id = unique("private");
    rt.create_ok(&b, &id);
    let dir = rt.root().join(&id);
    assert_private(rt.root(), 0o700, None);
    assert_private(&dir, 0o700, None);
    assert_private(&dir.join("state.json"), 0o600, Some(SECRET));
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "running", WAIT);
    assert_private(&dir.join("state.json"), 0o600, Some(SECRET));

    // A root made readable again is narrowed by the next command that uses it.
    std::fs::set_permissions(rt.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(readable_by_nobody(rt.root()));
    assert_eq!(rt.status(&id), "running");
    assert_private(rt.root(), 0o700, None);
    rt.ok(&["delete", "--force", &id]);
}

/// Runs `script` in a container started with `--no-pivot` (and, with `userns`, its own user
/// namespace), its process given CAP_SETFCAP (as docker's default set does) so that it can
/// make a user namespace mapping its root; returns the container's output (the script's own
/// exit status does not count).
fn no_pivot_output(script: &str, userns: bool) -> String {
    let b = sh(&format!("{script}; true")).edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .expect("capability set")
                .push(json!("CAP_SETFCAP"));
        }
        if userns {
            ns_list(c).push(json!({"type": "user"}));
            c["linux"]["uidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            c["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        }
    });
    let rt = Runtime::new();
    let out = rt.run_no_pivot(&b);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// With `--no-pivot` the host's /proc and /sys must not stay fully visible (hidden under the
/// rootfs) in the container's mount namespace: a process that makes its own user, mount, pid
/// and network namespaces may mount a tmpfs there, but no fresh, unmasked procfs or sysfs.
#[test]
fn no_pivot_container_cannot_mount_a_fresh_procfs_or_sysfs() {
    let mut mounted = Vec::new();
    for userns in [false, true] {
        let out = no_pivot_output(
            "unshare -Urmpfn sh -c 'mount -t tmpfs t /tmp && echo TMPFS; \
             mount -t proc p /tmp && echo PROC; mount -t sysfs s /tmp && echo SYSFS'",
            userns,
        );
        if !out.contains("TMPFS") {
            skip(
                "no_pivot_container_cannot_mount_a_fresh_procfs_or_sysfs",
                Need::Host,
                "this kernel lets no container process make a user namespace",
            );
            return;
        }
        for fs in ["PROC", "SYSFS"] {
            if out.contains(fs) {
                mounted.push(format!("{fs} (container user namespace: {userns})"));
            }
        }
    }
    assert_eq!(
        mounted,
        Vec::<String>::new(),
        "fresh mounts made in the container"
    );
}

/// With `--no-pivot` the old root stays out of reach: neither by path nor by unmounting the
/// rootfs (moved onto `/`) in a mount namespace of the container's own.
#[test]
fn no_pivot_old_root_stays_unreachable() {
    let sentinel = TempDir::new("oldroot");
    let file = sentinel.path().join("host-only");
    std::fs::write(&file, "host").unwrap();
    let f = file.to_str().unwrap();
    for userns in [false, true] {
        let out = no_pivot_output(
            &format!(
                "test -e {f} && echo REACHED; \
                 unshare -Urm sh -c 'echo UNSHARED; umount -l / ; test -e {f} && echo REACHED'"
            ),
            userns,
        );
        assert!(out.contains("UNSHARED"), "userns {userns}: {out}");
        assert!(
            !out.contains("REACHED"),
            "userns {userns}: host file reached: {out}"
        );
    }
}
