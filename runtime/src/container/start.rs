//! `start`: release a created container's init, which waits on the exec FIFO.

use crate::error::{Context, Error, Result};
use crate::logging::debug;
use crate::process::liveness::{self, Liveness};
use crate::state::{ContainerDir, Record, Status};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// Starts the created container `id`.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let dir = ContainerDir::open(root, id)?;
    let rec = dir.load()?;
    let status = rec.status(&dir);
    if status != Status::Created {
        return Err(Error::invalid(format!(
            "cannot start container {id:?}: it is {status}, and only a created container can be started"
        )));
    }
    let fifo_path = dir.fifo();
    debug(&format!(
        "start {id}: releasing init {} through {}",
        rec.pid,
        fifo_path.display()
    ));
    // Non-blocking open never hangs on a dead init; the init's blocked open for writing then
    // completes: it runs the startContainer hooks and writes "0", or why the process will not run.
    let fifo = nix::fcntl::open(
        &fifo_path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context(|| format!("opening {}", fifo_path.display()))?;
    let mut word = [0u8; 512];
    let n = read_fifo(&fifo, &mut word, &rec)?;
    if n == 0 {
        return Err(Error::invalid(format!(
            "cannot start container {id:?}: its init exited before start"
        )));
    }
    if &word[..n] != b"0" {
        return Err(Error::invalid(format!(
            "cannot start container {id:?}: {}",
            String::from_utf8_lossy(&word[..n]).trim()
        )));
    }
    std::fs::remove_file(&fifo_path).context(|| format!("removing {}", fifo_path.display()))?;
    // The init's end closes when it executes the process (or dies): the poststart hooks come after.
    while read_fifo(&fifo, &mut word, &rec)? > 0 {}
    debug(&format!("start {id}: the process runs"));
    super::run_poststart(&rec);
    Ok(())
}

/// Waits until the FIFO has data or is at end-of-file, or the init is gone; returns the number
/// of bytes read (0 at end-of-file or once the init is gone).
fn read_fifo(fifo: &OwnedFd, buf: &mut [u8], rec: &Record) -> Result<usize> {
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        let ready = match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(n) => n > 0,
            Err(Errno::EINTR) => false,
            Err(e) => return Err(e).context(|| "waiting for the container init"),
        };
        let gone = !ready && liveness::check(rec.pid, rec.pid_start_time) == Liveness::Gone;
        if ready || gone {
            match nix::unistd::read(fifo, buf) {
                Ok(n) => return Ok(n),
                Err(Errno::EAGAIN) if gone => return Ok(0),
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e).context(|| "reading the exec fifo"),
            }
        }
    }
}
