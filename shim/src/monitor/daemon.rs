//! The monitor's process model. `mini-shim monitor` forks once: the parent waits for the child
//! to report that the container started (or why it did not), prints that and exits, so its
//! caller (the agent) has no child to reap and learns the outcome synchronously. The child is
//! the monitor: it starts a session of its own (no terminal, no process group shared with the
//! agent, so nothing sent to the agent's group reaches it), becomes a child subreaper (orphans
//! of a container without its own pid namespace come to it, not to the host's init), points its
//! stdio at /dev/null and its stderr at `monitor.log`, and blocks the signals it reads through a
//! signalfd. It stays single-threaded, so it may fork the container's processes. Then it
//! re-executes itself once through a pinned copy of its binary (see [`super::pin`]).

use super::error::{Error, Result};
use super::wire::Reply;
use super::{diag, layout, pin, server, startup, MonitorArgs, Started};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::ForkResult;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The signals the monitor takes through its signalfd instead of their default action.
pub fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        set.add(s);
    }
    set
}

/// Runs `mini-shim monitor`: forks the monitor and reports its start. Exits with 0 once the
/// container runs (after printing [`Started`] as one JSON line), or 1 with one line on stderr.
pub fn main(args: MonitorArgs) -> ! {
    if let Some(ready) = pin::inherited_ready_fd() {
        // The monitor itself, re-executed through its pinned binary: already detached.
        std::process::exit(serve(&args, ready));
    }
    let (read_end, write_end) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => fail(&format!("mini-shim monitor: creating a pipe: {e}")),
    };
    // SAFETY: `mini-shim monitor` has started no thread: main only parsed its arguments.
    match unsafe { nix::unistd::fork() } {
        Err(e) => fail(&format!("mini-shim monitor: forking: {e}")),
        Ok(ForkResult::Parent { .. }) => {
            drop(write_end);
            report(read_end)
        }
        Ok(ForkResult::Child) => {
            drop(read_end);
            let code = monitor(&args, write_end);
            std::process::exit(code)
        }
    }
}

fn fail(msg: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "{msg}");
    std::process::exit(1)
}

/// The parent's side: relays the monitor's report.
fn report(read_end: OwnedFd) -> ! {
    let mut data = Vec::new();
    let _ = std::fs::File::from(read_end).read_to_end(&mut data);
    match serde_json::from_slice::<Reply<Started>>(&data) {
        Ok(Reply::Ok(started)) => {
            let line = serde_json::to_string(&started).expect("serializes");
            let _ = writeln!(std::io::stdout(), "{line}");
            std::process::exit(0)
        }
        Ok(Reply::Error(e)) => fail(&format!("mini-shim monitor: {e}")),
        Err(_) => fail(
            "mini-shim monitor: the monitor ended before reporting; see monitor.log in the container directory",
        ),
    }
}

/// The monitor's life; returns its exit status.
fn monitor(args: &MonitorArgs, ready: OwnedFd) -> i32 {
    if let Err(e) = detach(args) {
        send(&ready, &Reply::<Started>::Error(e.to_string()));
        return 1;
    }
    pin::reexec_pinned(args, &ready);
    serve(args, ready)
}

/// Starts the container, reports, and serves until the container has ended.
fn serve(args: &MonitorArgs, ready: OwnedFd) -> i32 {
    match startup::start(args) {
        Ok((monitor, started)) => {
            send(&ready, &Reply::Ok(started));
            drop(ready);
            server::serve(monitor);
            0
        }
        Err(e) => {
            diag(&format!("not started: {e}"));
            send(&ready, &Reply::<Started>::Error(e.to_string()));
            1
        }
    }
}

fn send(ready: &OwnedFd, reply: &Reply<Started>) {
    let data = serde_json::to_vec(reply).expect("serializes");
    let _ = nix::unistd::write(ready, &data);
}

fn detach(args: &MonitorArgs) -> Result<()> {
    let sys = |what: &'static str| move |e: nix::errno::Errno| Error::io(what, e.into());
    // Stdio first: the caller may be reading our inherited stdout until it closes.
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| Error::io("opening /dev/null", e))?;
    nix::unistd::dup2_stdin(&null).map_err(sys("redirecting stdin"))?;
    nix::unistd::dup2_stdout(&null).map_err(sys("redirecting stdout"))?;
    let diagnostics = mini_run::private_files::options()
        .append(true)
        .create(true)
        .open(args.dir.join(layout::DIAGNOSTICS));
    match &diagnostics {
        Ok(f) => nix::unistd::dup2_stderr(f),
        Err(_) => nix::unistd::dup2_stderr(&null),
    }
    .map_err(sys("redirecting stderr"))?;
    nix::unistd::setsid().map_err(sys("starting a session"))?;
    nix::sys::prctl::set_child_subreaper(true).map_err(sys("becoming a child subreaper"))?;
    std::env::set_current_dir("/").map_err(|e| Error::io("changing to /", e))?;
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled_signals()), None)
        .map_err(sys("blocking signals"))?;
    Ok(())
}

/// Pipes get this much buffer (the kernel's default maximum for unprivileged processes), so a
/// burst of output never stalls the container while the monitor answers a request.
const PIPE_BUFFER: i32 = 1 << 20;

/// A pipe for a container process's output: the monitor's read end is non-blocking, the
/// process's write end blocks as a pipe normally does; both are close-on-exec (the process
/// gets its end as stdout or stderr through [`with_stdio`]).
pub fn output_pipe() -> Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let (r, w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::io("creating a pipe", e.into()))?;
    fcntl(&r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
        .map_err(|e| Error::io("configuring a pipe", e.into()))?;
    let _ = fcntl(&r, FcntlArg::F_SETPIPE_SZ(PIPE_BUFFER));
    Ok((r, w))
}

/// Runs `f` with the given descriptors as stdin, stdout and stderr (the container's processes
/// inherit the monitor's stdio), then puts the monitor's own back.
pub fn with_stdio<T>(fds: [BorrowedFd<'_>; 3], f: impl FnOnce() -> T) -> Result<T> {
    let sys = |e: nix::errno::Errno| Error::io("redirecting stdio", e.into());
    let saved = [0, 1, 2].map(|n| {
        // SAFETY: 0, 1 and 2 stay open for the monitor's whole life.
        nix::unistd::dup(unsafe { BorrowedFd::borrow_raw(n) })
    });
    let [Ok(in0), Ok(out1), Ok(err2)] = saved else {
        return Err(Error::io("saving stdio", std::io::Error::last_os_error()));
    };
    for s in [&in0, &out1, &err2] {
        nix::fcntl::fcntl(
            s,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(sys)?;
    }
    let set = |a: BorrowedFd, b: BorrowedFd, c: BorrowedFd| -> Result<()> {
        nix::unistd::dup2_stdin(a).map_err(sys)?;
        nix::unistd::dup2_stdout(b).map_err(sys)?;
        nix::unistd::dup2_stderr(c).map_err(sys)
    };
    let r = set(fds[0], fds[1], fds[2]).map(|()| f());
    if let Err(e) = set(in0.as_fd(), out1.as_fd(), err2.as_fd()) {
        // What `f` did stands; only the monitor's own diagnostics may go astray.
        diag(&format!("restoring the monitor's stdio: {e}"));
    }
    r
}
