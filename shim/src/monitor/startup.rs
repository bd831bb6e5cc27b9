//! What the monitor does before it serves: claims the container directory (the locked pid
//! file), records how it was started, reserves the exit record's space, opens the log, binds its
//! socket, then creates and starts the container through the mini-run library with the
//! container's stdout and stderr on pipes the monitor reads. The container's init gets SIGKILL
//! as its parent-death signal: it cannot outlive its monitor unsupervised.
//!
//! Once the directory is claimed, every failure leaves an exit record with the reason, so the
//! agent (even a restarted one) can show why the container never ran.

use super::daemon::{handled_signals, output_pipe, with_stdio};
use super::error::{Error, Result};
use super::exit::{self, ExitRecord, Reservation};
use super::layout::{self, SocketPath};
use super::log_file::{LogLimits, LogWriter};
use super::{MonitorArgs, MonitorInfo, Started};
use mini_run::container::create::{self, CreateOptions, StartMode};
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::Signal;
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;

/// A started monitor: everything [`super::server`] needs.
pub struct Monitor {
    /// How it was started.
    pub info: MonitorInfo,
    /// The container directory.
    pub dir: std::path::PathBuf,
    /// The container's init.
    pub pid: Pid,
    /// When the container's process was started.
    pub started_at: String,
    /// The container's cgroup.
    pub cgroup: Option<mini_cgroups::CgroupConfig>,
    /// The locked pid file; the lock says "alive" for as long as the monitor runs.
    pub _pid_lock: Flock<File>,
    /// Space for the exit record (taken when it is written).
    pub reservation: Option<Reservation>,
    /// The socket.
    pub listener: UnixListener,
    /// Read ends of the container's stdout and stderr (each `None` once at its end).
    pub output: [Option<OwnedFd>; 2],
    /// The log.
    pub log: LogWriter,
    /// SIGCHLD and the signals the monitor ignores.
    pub signals: SignalFd,
}

/// Claims the directory and starts the container.
pub fn start(args: &MonitorArgs) -> Result<(Monitor, Started)> {
    mini_run::state::validate_id(&args.id)?;
    restrict(&args.dir)?;
    let pid_lock = claim(&args.dir)?;
    if args.dir.join(layout::EXIT_FILE).exists() {
        return Err(Error::Invalid(format!(
            "{} already holds an exit record: a container directory serves one container life; remove exit.json first",
            args.dir.display()
        )));
    }
    let info = MonitorInfo {
        id: args.id.clone(),
        bundle: args.bundle.clone(),
        runtime_root: args.runtime_root.clone(),
        log_dir: args.log_dir.clone().unwrap_or_else(|| args.dir.clone()),
        monitor_pid: std::process::id() as i32,
        started_at: exit::now(),
    };
    let r = info
        .write(&args.dir)
        .and_then(|()| prepare(args, info, pid_lock));
    if let Err(e) = &r {
        // Best effort: the reason must reach a later reader even if the start report does not.
        let _ = exit::write(&args.dir, &ExitRecord::start_failed(&e.to_string()));
        let _ = std::fs::remove_file(args.dir.join(layout::SOCKET));
        let _ = std::fs::remove_file(args.dir.join(layout::EXIT_RESERVE));
        let _ = std::fs::remove_file(args.dir.join(layout::PINNED_BINARY));
    }
    r
}

/// Narrows the container directory to root (an older monitor left it readable by all): what
/// the monitor writes there, its logs included, is created 0600.
fn restrict(dir: &std::path::Path) -> Result<()> {
    mini_run::private_files::restrict(dir)
        .map_err(|e| Error::io(format!("making {} private", dir.display()), e))
}

/// Locks `monitor.pid` (exclusively, for the monitor's life) and writes the monitor's pid.
fn claim(dir: &std::path::Path) -> Result<Flock<File>> {
    let path = dir.join(layout::PID_FILE);
    let file = mini_run::private_files::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            return Err(Error::Invalid(format!(
                "a monitor already runs for {}: one monitor per container directory",
                dir.display()
            )))
        }
        Err((_, e)) => return Err(Error::io(format!("locking {}", path.display()), e.into())),
    };
    lock.set_len(0)
        .and_then(|()| lock.write_all(format!("{}\n", std::process::id()).as_bytes()))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(lock)
}

/// Binds the socket (through /proc/self/fd, so a long directory path fits).
pub fn bind(dir: &std::path::Path) -> Result<UnixListener> {
    let path = dir.join(layout::SOCKET);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io(format!("removing stale {}", path.display()), e))
        }
        _ => {}
    }
    let short = SocketPath::new(dir, layout::SOCKET)?;
    let listener = UnixListener::bind(short.path())
        .map_err(|e| Error::io(format!("binding {}", path.display()), e))?;
    // Whoever may connect may run processes in the container: root only.
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .and_then(|()| listener.set_nonblocking(true))
        .map_err(|e| Error::io(format!("configuring {}", path.display()), e))?;
    Ok(listener)
}

/// The monitor logs the container's stdout and stderr from pipes: a terminal has no place.
fn refuse_terminal(bundle: &std::path::Path) -> Result<()> {
    let config = mini_run::input_file::read(
        &bundle.join("config.json"),
        mini_run::input_file::JSON_LIMIT,
    )
    .ok();
    let terminal = config
        .and_then(|c| serde_json::from_slice::<serde_json::Value>(&c).ok())
        .is_some_and(|c| c["process"]["terminal"] == true);
    if terminal {
        return Err(Error::Invalid(
            "process.terminal is true: a monitored container's output is logged from pipes, so set process.terminal to false".into(),
        ));
    }
    Ok(())
}

fn prepare(
    args: &MonitorArgs,
    info: MonitorInfo,
    pid_lock: Flock<File>,
) -> Result<(Monitor, Started)> {
    refuse_terminal(&args.bundle)?;
    let reservation = Reservation::new(&args.dir)?;
    let limits = LogLimits {
        max_bytes: args.log_max_bytes,
        max_files: args.log_max_files,
    };
    let log = LogWriter::open(&info.log_dir, limits)?;
    let signals = SignalFd::with_flags(
        &handled_signals(),
        SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
    )
    .map_err(|e| Error::io("creating a signalfd", e.into()))?;
    let listener = bind(&args.dir)?;
    let (out_r, out_w) = output_pipe()?;
    let (err_r, err_w) = output_pipe()?;
    let null = File::open("/dev/null").map_err(|e| Error::io("opening /dev/null", e))?;
    let opts = CreateOptions {
        id: args.id.clone(),
        bundle: args.bundle.clone(),
        parent_death_signal: Some(Signal::SIGKILL),
        ..Default::default()
    };
    let created = with_stdio([null.as_fd(), out_w.as_fd(), err_w.as_fd()], || {
        create::create(&args.runtime_root, &opts, StartMode::WaitForStart)
    })??;
    drop((out_w, err_w));
    let (pid, cgroup) = (created.pid, created.record.cgroup.clone());
    // `start` takes the container's lock itself.
    drop(created);
    if let Err(e) = mini_run::container::start::start(&args.runtime_root, &args.id) {
        let _ = mini_run::container::delete::delete(&args.runtime_root, &args.id, true);
        return Err(e.into());
    }
    let started = Started {
        monitor_pid: info.monitor_pid,
        pid: pid.as_raw(),
    };
    let monitor = Monitor {
        info,
        dir: args.dir.clone(),
        pid,
        started_at: exit::now(),
        cgroup,
        _pid_lock: pid_lock,
        reservation: Some(reservation),
        listener,
        output: [Some(out_r), Some(err_r)],
        log,
        signals,
    };
    Ok((monitor, started))
}
