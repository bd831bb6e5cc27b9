//! Shared helpers for the integration tests: the mini-run binary, fixture bundles, a private
//! state root per test, and leak accounting. Everything a test creates has a unique name and
//! is removed when the helper is dropped, even if the test fails.

pub mod cluster;
mod daemon_cgroup;

pub use daemon_cgroup::DaemonCgroup;

pub use mini_test_skip::{skip, Need};
pub mod flood;
pub mod lone_daemon;
pub mod registry;
pub mod test_user;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name no other test (or test run) uses: `prefix-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Ports below the kernel's ephemeral range (`net.ipv4.ip_local_port_range`, 32768 and up
/// by default), so that no outgoing connection of a concurrent test takes the port between
/// this check and the daemon's bind.
const LISTEN_PORTS: std::ops::Range<u16> = 20000..32768;

static NEXT_PORT: AtomicU32 = AtomicU32::new(0);

/// A TCP port free on every address of this host, for a daemon a test starts: taken from
/// below the ephemeral range, from a start that differs per test process, and never the same
/// twice in one process.
pub fn free_port() -> u16 {
    let span = u32::from(LISTEN_PORTS.end - LISTEN_PORTS.start);
    let start = std::process::id().wrapping_mul(2654435761) % span;
    for _ in 0..span {
        let offset = (start + NEXT_PORT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = LISTEN_PORTS.start + u16::try_from(offset).expect("offset below the span");
        if std::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, port)).is_ok() {
            return port;
        }
    }
    panic!("no free TCP port in {LISTEN_PORTS:?}");
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// The mini-run binary under test: `$MINI_RUN_BIN`, or the release build of the workspace.
pub fn mini_run_bin() -> PathBuf {
    built_binary("MINI_RUN_BIN", "mini-run")
}

/// The mini-shim binary under test: `$MINI_SHIM_BIN`, or the release build of the workspace.
pub fn mini_shim_bin() -> PathBuf {
    built_binary("MINI_SHIM_BIN", "mini-shim")
}

/// Runs `mini-shim ARGS` (`cert ca`, `cert issue`), which must succeed.
pub fn mini_shim_ok(args: &[&str]) {
    let out = Command::new(mini_shim_bin())
        .args(args)
        .output()
        .expect("run mini-shim");
    assert!(
        out.status.success(),
        "mini-shim {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `$var`, or the workspace's release binary `name`, which must exist. The tests run in the
/// dev/test profile (fast to build) but always drive the release binaries, the ones that are
/// shipped and benchmarked: target/<triple>/<profile>/deps/<test> → target/<triple>/release/<name>.
pub(crate) fn built_binary(var: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe
        .ancestors()
        .nth(3)
        .expect("target dir")
        .join("release")
        .join(name);
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build --release --workspace)",
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

/// An HTTP answer (from curl in the agent tests): status and body.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {self:?}"))
    }

    /// The protocol error's `code`.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// The protocol error's `message`.
    pub fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
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

    /// The bundle directory as a string (for command lines).
    pub fn path_str(&self) -> &str {
        self.path().to_str().expect("utf-8 bundle path")
    }

    /// Gives the bundle its own copy of the fixture rootfs (`<bundle>/rootfs`, `cp -a`), for
    /// tests that write into the rootfs or plant files in it; it goes away with the bundle.
    pub fn with_private_rootfs(mut self) -> Bundle {
        let dest = self.path().join("rootfs");
        let st = Command::new("cp")
            .arg("-a")
            .arg(fixture_rootfs())
            .arg(&dest)
            .status()
            .expect("spawn cp");
        assert!(st.success(), "copying the fixture rootfs failed");
        self.config["root"]["path"] = Value::from("rootfs");
        self.write();
        self
    }

    /// Bind-mounts the host directory `host` read-write at `dest` in the container.
    pub fn with_bind(self, host: &Path, dest: &str) -> Bundle {
        let source = host.to_str().expect("utf-8 path").to_string();
        self.edit(|c| {
            c["mounts"].as_array_mut().expect("mounts").push(serde_json::json!({
                "destination": dest, "type": "bind", "source": source, "options": ["rbind", "rw"]
            }));
        })
    }

    /// The absolute rootfs directory this bundle's config names.
    pub fn rootfs(&self) -> PathBuf {
        self.path()
            .join(self.config["root"]["path"].as_str().expect("root.path"))
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

    /// Runs mini-run with `args` and captures its output (through files, see
    /// [`captured_output`]).
    pub fn cmd(&self, args: &[&str]) -> Output {
        captured_output(&mut self.command(args))
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

    /// Foreground `run --no-pivot` of a bundle (MS_MOVE and chroot instead of pivot_root);
    /// returns the output.
    pub fn run_no_pivot(&self, bundle: &Bundle) -> Output {
        self.cmd(&[
            "run",
            "--no-pivot",
            "--bundle",
            bundle.path().to_str().expect("utf-8"),
            &unique("nopivot"),
        ])
    }

    /// Foreground `run` of a probe `report`; returns the parsed JSON.
    pub fn report(&self, bundle: &Bundle) -> Value {
        self.run_json(bundle)
    }

    /// Foreground `run` of a bundle; asserts success and returns the output.
    pub fn run_ok(&self, bundle: &Bundle) -> Output {
        let out = self.run(bundle, &unique("probe"));
        assert!(
            out.status.success(),
            "run failed ({:?}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Foreground `run` of a bundle; asserts success and returns its stdout.
    pub fn run_stdout(&self, bundle: &Bundle) -> String {
        String::from_utf8_lossy(&self.run_ok(bundle).stdout).into_owned()
    }

    /// Foreground `run` of a bundle whose process is a probe command (`report`, `try-open`,
    /// ...); asserts success and returns the last JSON line it printed.
    pub fn run_json(&self, bundle: &Bundle) -> Value {
        last_json(&self.run_ok(bundle))
    }

    /// Runs mini-run with `args` but gives up after `timeout`: the command is killed (by its
    /// pid) and `Err` says so. A watcher thread waits for the command, so a hung runtime fails
    /// the test instead of hanging it.
    pub fn cmd_timeout(&self, args: &[&str], timeout: Duration) -> Result<Output, String> {
        let cap = Capture::new();
        let mut child = cap
            .attach(&mut self.command(args))
            .spawn()
            .expect("spawn mini-run");
        let pid = child.id() as i32;
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(timeout) {
            Ok(status) => {
                let _ = waiter.join();
                Ok(cap.finish(status.expect("waiting for mini-run")))
            }
            Err(_) => {
                // SAFETY: kill(2) on the pid of our unreaped child (its waiter is still blocked
                // in wait), so the pid cannot have been reused.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                let _ = waiter.join();
                Err(format!(
                    "mini-run {args:?} did not finish within {timeout:?}"
                ))
            }
        }
    }

    /// A `mini-run` command started in the background (e.g. a foreground `run` to signal),
    /// its output captured; killed and reaped on drop unless waited for.
    pub fn spawn(&self, args: &[&str]) -> ChildGuard {
        let cap = Capture::new();
        let child = cap
            .attach(&mut self.command(args))
            .spawn()
            .expect("spawn mini-run");
        ChildGuard {
            child: Some(child),
            capture: Some(cap),
        }
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

    /// `create` a container from the bundle and assert it succeeded.
    pub fn create_ok(&self, bundle: &Bundle, id: &str) {
        let out = self.create(bundle, id);
        assert!(
            out.status.success(),
            "create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
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

    /// Waits up to `timeout` for the container to reach `status`; panics with the last status
    /// seen otherwise.
    pub fn wait_status(&self, id: &str, status: &str, timeout: Duration) {
        let mut last = String::new();
        let reached = wait_until(timeout, || {
            last = self.status(id);
            last == status
        });
        assert!(
            reached,
            "container {id} did not become {status} in {timeout:?} (still {last})"
        );
    }

    /// Runs mini-run with `args` for a command whose container outlives it (`run --detach`,
    /// `create`) and asserts success. The container's stdio must not be a pipe the test waits
    /// on, so stdout goes to /dev/null and stderr to a file read on failure.
    pub fn detached(&self, args: &[&str]) {
        let log = TempDir::new("log");
        let path = log.path().join("stderr");
        let err = std::fs::File::create(&path).expect("log file");
        let status = self
            .command(args)
            .stdout(Stdio::null())
            .stderr(err)
            .status()
            .expect("spawn mini-run");
        assert!(
            status.success(),
            "mini-run {args:?} failed ({status}): {}",
            std::fs::read_to_string(&path).unwrap_or_default()
        );
    }

    /// Whether the root holds a state directory for `id`.
    pub fn has_state_dir(&self, id: &str) -> bool {
        self.root().join(id).exists()
    }

    /// Number of entries (container directories) in the root.
    pub fn state_dir_count(&self) -> usize {
        std::fs::read_dir(self.root()).map_or(0, |d| d.count())
    }
}

/// Runs `cmd` with stdin from /dev/null and captures its output through files, not pipes: a
/// container's process inherits the runtime's stdout and stderr, so after `create`, `run
/// --detach` or `exec --detach` pipes would stay open (and the caller blocked) for as long as
/// the container lives.
pub fn captured_output(cmd: &mut Command) -> Output {
    let cap = Capture::new();
    let status = cap
        .attach(cmd.stdin(Stdio::null()))
        .status()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
    cap.finish(status)
}

/// Stdout and stderr of a command captured in (unlinked) temporary files.
struct Capture {
    out: std::fs::File,
    err: std::fs::File,
}

impl Capture {
    fn new() -> Capture {
        let tmp = || {
            let p = std::env::temp_dir().join(unique("mini-tests-out"));
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&p)
                .expect("capture file");
            let _ = std::fs::remove_file(&p);
            f
        };
        Capture {
            out: tmp(),
            err: tmp(),
        }
    }

    fn attach<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.stdout(self.out.try_clone().expect("dup"))
            .stderr(self.err.try_clone().expect("dup"))
    }

    fn finish(mut self, status: std::process::ExitStatus) -> Output {
        use std::io::{Read, Seek};
        let read = |f: &mut std::fs::File| {
            let mut v = Vec::new();
            f.rewind().expect("rewind");
            f.read_to_end(&mut v).expect("read capture");
            v
        };
        Output {
            stdout: read(&mut self.out),
            stderr: read(&mut self.err),
            status,
        }
    }
}

/// A background child process, killed (by its pid) and reaped on drop.
pub struct ChildGuard {
    child: Option<Child>,
    capture: Option<Capture>,
}

impl ChildGuard {
    /// Starts `cmd` (a host command, e.g. `sleep 60` to hold a namespace); its output is not
    /// captured.
    pub fn start(cmd: &mut Command) -> ChildGuard {
        ChildGuard {
            child: Some(cmd.spawn().expect("spawn child")),
            capture: None,
        }
    }

    /// Its host pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    /// Whether it is still running (an exited child is reaped).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Waits up to `timeout` for it to exit and returns its output (empty unless started by
    /// [`Runtime::spawn`]); `None` (and the child is killed) if it did not exit in time.
    pub fn wait_timeout(mut self, timeout: Duration) -> Option<Output> {
        let mut child = self.child.take().expect("child");
        let mut status = None;
        wait_until(timeout, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        };
        Some(match self.capture.take() {
            Some(c) => c.finish(status),
            None => Output {
                status,
                stdout: Vec::new(),
                stderr: Vec::new(),
            },
        })
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `f` (every 10 ms, backing off to 50 ms) until it returns true or `timeout` passes;
/// returns whether it did.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// The last line of a command's stdout, parsed as JSON (the probe prints one object a line).
pub fn last_json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("probe output is not JSON ({e}): {text}"))
}

/// A bundle running `script` with the container's sh.
pub fn sh(script: &str) -> Bundle {
    Bundle::new(&["sh", "-c", script])
}

/// The config's `linux.namespaces` list.
pub fn ns_list(config: &mut Value) -> &mut Vec<Value> {
    config["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
}

/// The topmost mount at `point` in a probe report.
pub fn mount_at<'a>(report: &'a Value, point: &str) -> Option<&'a Value> {
    report["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .rev()
        .find(|m| m["mount_point"] == point)
}

/// A JSON array of strings (mount options, capabilities, ...) as strings.
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

/// Whether the JSON array of strings `list` holds `word`.
pub fn has(list: &Value, word: &str) -> bool {
    strings(list).iter().any(|s| s == word)
}

/// The inode of the host's (this process's) namespace of `kind` (`net`, `ipc`, ...).
pub fn host_ns_inode(kind: &str) -> u64 {
    ns_inode(&format!("/proc/self/ns/{kind}"))
}

/// The inode of the namespace file at `path`.
pub fn ns_inode(path: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .ino()
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

/// Asserts that a command failed with one line on stderr that contains every word of
/// `words` (case-insensitive); returns the line.
pub fn assert_fails_with(out: &Output, words: &[&str]) -> String {
    assert!(
        !out.status.success(),
        "expected failure, got {:?}; stdout: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    let line = stderr_line(out);
    let lower = line.to_lowercase();
    for w in words {
        assert!(
            lower.contains(&w.to_lowercase()),
            "error line should mention {w:?}: {line}"
        );
    }
    line
}

/// Asserts that nothing of container `id` (whose bundle is `bundle`) is left on the host: no
/// state directory in the runtime's root, no cgroup directory and no mount mentioning the id,
/// no mount mentioning the bundle, and no process mentioning either. (A cgroup directory that
/// could not be removed is also how a leftover container process shows: a cgroup holding
/// processes cannot be removed.)
pub fn assert_nothing_left(rt: &Runtime, id: &str, bundle: &Path) {
    let bundle = bundle.to_string_lossy();
    assert!(
        !rt.has_state_dir(id),
        "state directory of {id} left in {}",
        rt.root().display()
    );
    assert_eq!(
        cgroups_mentioning(id),
        Vec::<PathBuf>::new(),
        "cgroups of {id} left"
    );
    assert_eq!(mounts_mentioning(id), 0, "mounts mentioning {id} left");
    assert_eq!(mounts_mentioning(&bundle), 0, "mounts of {bundle} left");
    assert_eq!(
        processes_mentioning(id),
        Vec::<i32>::new(),
        "processes of {id} left"
    );
    assert_eq!(
        processes_mentioning(&bundle),
        Vec::<i32>::new(),
        "processes mentioning {bundle} left"
    );
}

/// Mount points of the host (this process's namespace) that mention `needle`.
pub fn mounts_mentioning(needle: &str) -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// Starts `cmd` with `resource` limited to `n` (soft and hard): a test bounds what a binary
/// under attack may take (open files, address space) so a missing bound fails the test, not
/// the machine.
pub fn limit_child(
    cmd: &mut Command,
    resource: nix::sys::resource::Resource,
    n: u64,
) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::resource::setrlimit(resource, n, n).map_err(std::io::Error::from)
        })
    }
}

/// Mount points of this namespace at or below `dir`, deepest first (the order to unmount).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mut mounts: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|m| m.starts_with(dir))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    mounts
}

/// Removes every cgroup directory whose path mentions `needle`, deepest first: what a client
/// (dockerd, podman) made under a test's own cgroup parent.
pub fn remove_cgroups_mentioning(needle: &str) {
    let mut cgroups = cgroups_mentioning(needle);
    cgroups.sort_by_key(|c| std::cmp::Reverse(c.components().count()));
    for c in cgroups {
        let _ = std::fs::remove_dir(c);
    }
}

/// Whether cgroup `dir` exists with no child cgroups: a shared parent its last container left
/// behind. On a shared machine other containers may still be in it (or be leaving), so callers
/// wait a moment with [`wait_until`] before calling a parent left over.
pub fn cgroup_left_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|r| r.flatten().all(|e| !e.path().is_dir()))
        .unwrap_or(false)
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

/// The host's cgroup version.
pub fn cgroup_version() -> mini_cgroups::Version {
    mini_cgroups::detect().expect("a cgroup hierarchy")
}

/// The host directory of `pid`'s cgroup holding `controller` (any on v2), read from
/// /proc/PID/cgroup (not from the runtime's state).
pub fn cgroup_dir(pid: i32, controller: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("/proc/PID/cgroup");
    let (hierarchy, path) = text
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            let hit = match cgroup_version() {
                mini_cgroups::Version::V2 => ctrls.is_empty(),
                mini_cgroups::Version::V1 => ctrls.split(',').any(|c| c == controller),
            };
            hit.then(|| (ctrls.to_string(), path.to_string()))
        })
        .unwrap_or_else(|| panic!("no {controller} cgroup in {text}"));
    PathBuf::from("/sys/fs/cgroup")
        .join(hierarchy)
        .join(path.trim_start_matches('/'))
}

/// The lines of a `/proc/PID/cgroup` text that name hierarchies mounted under /sys/fs/cgroup,
/// the ones a runtime places its containers in: on a pure v2 host the `0::` line, on a v1 or
/// hybrid host the v1 lines whose controllers are mounted there. A hierarchy that something
/// else on the host mounted elsewhere (a v1 hugetlb, a `name=` hierarchy) is not the runtime's.
pub fn runtime_cgroup_lines(proc_cgroup: &str) -> Vec<&str> {
    let v2 = cgroup_version() == mini_cgroups::Version::V2;
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("/proc/self/mountinfo");
    // The super options of each v1 hierarchy mounted below /sys/fs/cgroup ("rw,cpu,cpuacct").
    let mounted: Vec<Vec<&str>> = info
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let point = pre.split(' ').nth(4)?;
            let mut post = post.split(' ');
            let (fstype, options) = (post.next()?, post.nth(1)?);
            (fstype == "cgroup" && point.starts_with("/sys/fs/cgroup/"))
                .then(|| options.split(',').collect())
        })
        .collect();
    proc_cgroup
        .lines()
        .filter(|l| {
            let ctrls = l.split(':').nth(1).unwrap_or("");
            match (v2, ctrls.is_empty()) {
                (true, empty) => empty,
                (false, true) => false,
                (false, false) => mounted
                    .iter()
                    .any(|m| ctrls.split(',').all(|c| m.contains(&c))),
            }
        })
        .collect()
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

/// The child of `ppid` whose command line (as [`cmdline`] shows it) starts with `prefix`, once
/// there is one; `None` after 10 s.
pub fn child_running(ppid: u32, prefix: &str) -> Option<i32> {
    let mut found = None;
    wait_until(Duration::from_secs(10), || {
        found = std::fs::read_dir("/proc")
            .expect("/proc")
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .find(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let parent = stat
                    .rsplit_once(") ")
                    .and_then(|(_, r)| r.split(' ').nth(1));
                parent == Some(ppid.to_string().as_str())
                    && cmdline(i64::from(*pid)).starts_with(prefix)
            });
        found.is_some()
    });
    found
}

/// The command line of host process `pid`, each argument followed by a space; empty once the
/// process is gone.
pub fn cmdline(pid: i64) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .unwrap_or_default()
}

/// A host process `unshare ARGS sleep 60` holding new namespaces to join through
/// /proc/PID/ns, killed on drop; returned once unshare has switched namespaces and executed
/// sleep under the same pid.
pub fn unshare_holder(unshare_args: &[&str]) -> ChildGuard {
    let holder = ChildGuard::start(
        Command::new("unshare")
            .args(unshare_args)
            .args(["sleep", "60"]),
    );
    let exe = format!("/proc/{}/exe", holder.pid());
    assert!(
        wait_until(Duration::from_secs(10), || std::fs::read_link(&exe)
            .is_ok_and(|p| p.ends_with("sleep"))),
        "unshare never executed sleep"
    );
    holder
}

/// Whether process `pid` handles signal `sig` (bit `sig` of the `SigCgt:` mask in
/// /proc/PID/status): a PID namespace's init only receives the signals it handles.
pub fn catches(pid: i64, sig: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("SigCgt:"))?;
            u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
        })
        .is_some_and(|mask| mask & (1 << (sig - 1)) != 0)
}

/// Open descriptors of this process.
pub fn own_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("fds").count()
}

/// Children of this process that have exited but were not reaped (zombies).
pub fn own_zombies() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // Fields after the command name: state, ppid, ...
            let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
            let mut f = rest.split(' ');
            let state = f.next();
            let ppid = f.next();
            state == Some("Z") && ppid == Some(me.as_str())
        })
        .count()
}

/// Cgroup directories whose own name starts with `prefix` (where mini-run puts a container
/// without a cgroupsPath: `<id>` below the runtime's own cgroup, as runc does).
pub fn runtime_cgroups_with_prefix(prefix: &str) -> Vec<PathBuf> {
    cgroups_mentioning(prefix)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect()
}

/// Number of lines in this process's /proc/self/mountinfo.
pub fn mount_count() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .count()
}

/// A fingerprint of a file's contents (length and 64-bit FNV-1a hash), enough to
/// tell whether a binary was modified.
pub fn file_fingerprint(path: &Path) -> (usize, u64) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in &data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (data.len(), h)
}

/// Imports the fixture rootfs as image `image`, offline, with `tool`: a podman or docker
/// command with its options but without a subcommand (both take `import - IMAGE`).
pub fn import_fixture(mut tool: Command, image: &str) {
    let name = Path::new(tool.get_program())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tar = Command::new("tar")
        .args(["-C", fixture_rootfs().to_str().expect("utf-8"), "-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar");
    let out = tool
        .args(["import", "-", image])
        .stdin(tar.stdout.take().expect("piped"))
        .output()
        .unwrap_or_else(|e| panic!("{name} ({e}): is it installed? (.ci/run installs it)"));
    let _ = tar.wait();
    assert!(
        out.status.success(),
        "{name} import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A podman command (without a subcommand) whose storage, state, temporary files and events
/// all live under `dir`: vfs storage, cgroupfs, no system service.
pub fn private_podman(dir: &Path) -> Command {
    let mut c = Command::new("podman");
    c.arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
        .args(["--events-backend", "file", "--tmpdir"])
        .arg(dir.join("tmp"));
    c
}

/// A `sh` command that runs the shell command line `line` under `script`, which gives it a
/// pseudo-terminal, and types `input` (one line) about three seconds after it started.
pub fn in_terminal(line: &str, input: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(format!(
        "(sleep 3; echo '{input}'; sleep 2) | script -qec '{line}' /dev/null"
    ));
    c
}

/// Accepts the runtime's connection on a `--console-socket` listener and receives what it
/// sends: the pty slave's name and the pty master.
pub fn recv_console(listener: &std::os::unix::net::UnixListener) -> (String, std::os::fd::OwnedFd) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    let (conn, _) = listener.accept().expect("the runtime connects");
    let mut name = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let msg = nix::sys::socket::recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::empty(),
    )
    .expect("recvmsg");
    let n = msg.bytes;
    let mut fds = Vec::new();
    for c in msg.cmsgs().expect("control messages") {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(f) = c {
            fds.extend(f);
        }
    }
    assert_eq!(fds.len(), 1, "exactly one descriptor");
    let name = String::from_utf8_lossy(&name[..n]).into_owned();
    // SAFETY: SCM_RIGHTS just gave us this descriptor; nothing else owns it.
    (name, unsafe { OwnedFd::from_raw_fd(fds[0]) })
}

/// Creates container `id` from `bundle` (a process with a terminal) with a `--console-socket`,
/// starts it and returns the pty slave's name and everything the process wrote to its
/// terminal: the master reads EIO once the process, the last holder of the slave, exits.
pub fn run_with_console(rt: &Runtime, bundle: &Bundle, id: &str) -> (String, String) {
    use std::io::Read;
    let dir = TempDir::new("console");
    let sock = dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("console socket");
    let receiver = std::thread::spawn(move || recv_console(&listener));
    rt.ok(&[
        "create",
        "--console-socket",
        sock.to_str().expect("utf-8 path"),
        "--bundle",
        bundle.path_str(),
        id,
    ]);
    let (name, master) = receiver.join().expect("console receiver");
    rt.ok(&["start", id]);
    let mut text = String::new();
    let mut f = std::fs::File::from(master);
    let mut buf = [0u8; 65536];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    (name, text)
}

/// Runs `ip ARGS`, which must succeed (network namespaces and links of the tests).
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether the unprivileged user nobody (uid and gid 65534, no supplementary groups) can read
/// `path`: `cat` of a file, `ls` of a directory, run through `setpriv`.
pub fn readable_by_nobody(path: &Path) -> bool {
    let reader = if path.is_dir() { "ls" } else { "cat" };
    Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            reader,
        ])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run setpriv (util-linux)")
        .success()
}

/// The permission bits of `path` (symlinks followed).
pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Asserts that `secret` is in the file `path`, that root reads it but nobody cannot (see
/// [`readable_by_nobody`]), and that its mode is `mode` (0600 for a file, 0700 for a
/// directory): a private file is proven private by both, whatever its directories' modes.
pub fn assert_private(path: &Path, mode: u32, secret: Option<&str>) {
    if let Some(secret) = secret {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            String::from_utf8_lossy(&data).contains(secret),
            "{} should hold {secret:?}",
            path.display()
        );
    }
    assert_eq!(
        mode_of(path),
        mode,
        "mode of {}: {:o}",
        path.display(),
        mode_of(path)
    );
    // The check itself works: nobody reads what everyone may read.
    assert!(readable_by_nobody(Path::new("/etc/passwd")));
    assert!(
        !readable_by_nobody(path),
        "nobody can read {}",
        path.display()
    );
}
