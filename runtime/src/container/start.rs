//! `start`: release a created container's init, which waits on the exec FIFO.

use crate::error::{Context, Error, Result};
use crate::process::liveness::{self, Liveness};
use crate::state::{ContainerDir, Status};
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;
use std::os::fd::AsFd;
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
    // Non-blocking open never hangs on a dead init; the init's blocked open for writing then
    // completes and it writes one byte.
    let fifo = nix::fcntl::open(
        &fifo_path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context(|| format!("opening {}", fifo_path.display()))?;
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(n) if n > 0 => {
                let mut b = [0u8; 1];
                if nix::unistd::read(&fifo, &mut b) == Ok(1) {
                    break;
                }
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context(|| "waiting for the container init"),
        }
        if liveness::check(rec.pid, rec.pid_start_time) == Liveness::Gone {
            return Err(Error::invalid(format!(
                "cannot start container {id:?}: its init exited before start"
            )));
        }
    }
    std::fs::remove_file(&fifo_path).context(|| format!("removing {}", fifo_path.display()))?;
    super::run_poststart(&rec);
    Ok(())
}
