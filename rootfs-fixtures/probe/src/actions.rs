//! The subcommands other than `report`: small actions that make a container
//! do something a test can observe from outside.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::{errno, print_json};

/// One mebibyte.
const MIB: usize = 1 << 20;

/// `exit N`: exits with status `n`.
pub fn exit(n: i32) -> ! {
    std::process::exit(n)
}

/// `sleep SECS`: sleeps, then exits 0.
pub fn sleep(duration: Duration) -> ExitCode {
    thread::sleep(duration);
    ExitCode::SUCCESS
}

/// `signal-self SIG`: sends signal `sig` to this process with its default
/// action restored and the signal unblocked.
///
/// Exits 1 with a message on stderr if the process survives: the signal is
/// not fatal by default, or the probe is the init (PID 1) of a PID namespace,
/// whose self-sent signals with default action the kernel drops.
pub fn signal_self(sig: i32) -> ExitCode {
    // SAFETY: plain signal-mask and disposition changes on this
    // single-threaded process; `set` is initialised by `sigemptyset`.
    let sent = unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::kill(libc::getpid(), sig)
    };
    if sent != 0 {
        eprintln!("probe: signal-self {sig}: {}", io::Error::last_os_error());
    } else {
        eprintln!(
            "probe: still alive after signal {sig} (not fatal, or sent by a PID namespace's init to itself)"
        );
    }
    ExitCode::from(1)
}

/// Access mode for `try-open`.
#[derive(Clone, Copy)]
pub enum OpenMode {
    /// `r`: `O_RDONLY`.
    Read,
    /// `w`: `O_WRONLY` (never creates the file).
    Write,
    /// `rw`: `O_RDWR` (never creates the file).
    ReadWrite,
    /// `path`: `O_PATH`.
    Path,
}

impl OpenMode {
    /// Parses `r`, `w`, `rw` or `path`.
    pub fn parse(arg: &OsStr) -> Option<Self> {
        Some(match arg.to_str()? {
            "r" => Self::Read,
            "w" => Self::Write,
            "rw" => Self::ReadWrite,
            "path" => Self::Path,
            _ => return None,
        })
    }
}

/// `try-open PATH MODE`: opens (and closes) `path`, printing the outcome.
pub fn try_open(path: &OsStr, mode: OpenMode) -> ExitCode {
    let mut options = OpenOptions::new();
    match mode {
        OpenMode::Read => options.read(true),
        OpenMode::Write => options.write(true),
        OpenMode::ReadWrite => options.read(true).write(true),
        OpenMode::Path => options.read(true).custom_flags(libc::O_PATH),
    };
    print_outcome(path, options.open(path).map(drop))
}

/// `try-write PATH TEXT`: creates or truncates `path` (mode 0644) and writes
/// `text` to it without adding a newline, printing the outcome.
pub fn try_write(path: &OsStr, text: &OsStr) -> ExitCode {
    use std::os::unix::ffi::OsStrExt;
    let result = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()));
    print_outcome(path, result)
}

/// Prints `{"path","ok","errno","error"}` for a `try-*` result; exits 0.
fn print_outcome(path: &OsStr, result: io::Result<()>) -> ExitCode {
    let code = result.err().map(|e| e.raw_os_error().unwrap_or(0));
    print_json(&json!({
        "path": path.to_string_lossy(),
        "ok": code.is_none(),
        "errno": code,
        "error": code.map(errno::name),
    }));
    ExitCode::SUCCESS
}

/// `read PATH`: copies the file's contents to stdout unchanged.
pub fn read(path: &OsStr) -> ExitCode {
    let result = fs::read(path).and_then(|data| {
        let mut out = io::stdout().lock();
        out.write_all(&data)?;
        out.flush()
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("probe: read {}: {e}", Path::new(path).display());
            ExitCode::from(1)
        }
    }
}

/// `alloc MIB`: allocates and touches `mib` MiB, 1 MiB at a time, printing
/// `{"progress_mib":n}` every 16 MiB and `{"allocated_mib":n}` at the end,
/// then holds the memory for a second.
pub fn alloc(mib: usize) -> ExitCode {
    let mut chunks = Vec::with_capacity(mib);
    for done in 1..=mib {
        let mut chunk = vec![0u8; MIB];
        // Write one byte per page so every page is really backed by memory.
        for byte in chunk.iter_mut().step_by(4096) {
            *byte = 1;
        }
        chunks.push(std::hint::black_box(chunk));
        if done % 16 == 0 {
            print_json(&json!({ "progress_mib": done }));
        }
    }
    print_json(&json!({ "allocated_mib": chunks.len() }));
    thread::sleep(Duration::from_secs(1));
    ExitCode::SUCCESS
}

/// `spawn N`: forks up to `n` children that each sleep 30 s, stopping at the
/// first failure; prints `{"spawned":k,"errno":n|null,"error":name|null}`,
/// then kills and reaps the children.
pub fn spawn(n: usize) -> ExitCode {
    let mut children = Vec::new();
    let mut failure = None;
    for _ in 0..n {
        // SAFETY: the child only makes async-signal-safe calls, then `_exit`s.
        match unsafe { libc::fork() } {
            -1 => {
                failure = io::Error::last_os_error().raw_os_error();
                break;
            }
            0 => unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                libc::sleep(30);
                libc::_exit(0)
            },
            pid => children.push(pid),
        }
    }
    print_json(&json!({
        "spawned": children.len(),
        "errno": failure,
        "error": failure.map(errno::name),
    }));
    for &pid in &children {
        // SAFETY: `pid` is our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    for &pid in &children {
        // SAFETY: a null status pointer is allowed.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    }
    ExitCode::SUCCESS
}

/// `burn SECS`: keeps one CPU busy for `duration` of wall time and prints
/// `{"iterations":n}` (each iteration is a fixed small batch of arithmetic).
pub fn burn(duration: Duration) -> ExitCode {
    let start = Instant::now();
    let mut iterations: u64 = 0;
    let mut x: u64 = 1;
    while start.elapsed() < duration {
        for _ in 0..1000 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
        iterations += 1;
    }
    print_json(&json!({ "iterations": iterations }));
    ExitCode::SUCCESS
}

/// `wait-file PATH SECS`: polls every 50 ms until `path` exists (a dangling
/// symlink counts); exits 1 with a message on stderr after `timeout`.
pub fn wait_file(path: &OsStr, timeout: Duration) -> ExitCode {
    let start = Instant::now();
    loop {
        if fs::symlink_metadata(path).is_ok() {
            return ExitCode::SUCCESS;
        }
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            eprintln!(
                "probe: timed out after {timeout:?} waiting for {}",
                Path::new(path).display()
            );
            return ExitCode::from(1);
        }
        thread::sleep(left.min(Duration::from_millis(50)));
    }
}
