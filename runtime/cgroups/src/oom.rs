//! Waiting for out-of-memory events: v1 registers an eventfd for memory.oom_control through
//! cgroup.event_control; v2 watches memory.events with inotify.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::error::{Error, Result};
use crate::fs;

/// Waits until `fd` is readable or `timeout` passes; returns whether it became readable.
fn readable(fd: BorrowedFd<'_>, timeout: Duration, what: &Path) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::io("polling for OOM events of", what, e.into())),
        }
    }
}

/// The `oom_kill` counter of v1 memory.oom_control (0 on kernels without it).
pub(crate) fn v1_oom_kill_count(memory_dir: &Path) -> Result<u64> {
    let text = fs::read(memory_dir, "memory.oom_control")?;
    Ok(fs::parse_flat_keyed(&text)
        .get("oom_kill")
        .copied()
        .unwrap_or(0))
}

/// v1: blocks until the memory cgroup at `memory_dir` counts more OOM kills than `baseline`
/// or (kernels without the counter) reports an OOM event.
pub(crate) fn v1_wait(memory_dir: &Path, baseline: u64, timeout: Duration) -> Result<bool> {
    let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC)
        .map_err(|e| Error::io("creating eventfd for", memory_dir, e.into()))?;
    let control_path = memory_dir.join("memory.oom_control");
    let control =
        std::fs::File::open(&control_path).map_err(|e| Error::io("opening", &control_path, e))?;
    fs::write(
        memory_dir,
        "cgroup.event_control",
        format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()),
    )?;
    // Armed: a kill from before the registration shows in the count.
    if v1_oom_kill_count(memory_dir)? > baseline {
        return Ok(true);
    }
    let fired = readable(efd.as_fd(), timeout, memory_dir)?;
    if fired {
        // Drain the counter; the value itself carries no information we need.
        let _ = efd.read();
    }
    Ok(fired)
}

/// The `oom_kill` counter of v2 memory.events (0 without the memory controller).
pub(crate) fn v2_oom_kill_count(dir: &Path) -> Result<u64> {
    Ok(fs::read_flat_keyed(dir, "memory.events")?
        .get("oom_kill")
        .copied()
        .unwrap_or(0))
}

/// v2: blocks until memory.events in `dir` shows more OOM kills than `baseline`.
pub(crate) fn v2_wait(dir: &Path, baseline: u64, timeout: Duration) -> Result<bool> {
    let events = dir.join("memory.events");
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .map_err(|e| Error::io("creating inotify for", &events, e.into()))?;
    inotify
        .add_watch(&events, AddWatchFlags::IN_MODIFY)
        .map_err(|e| Error::io("watching", &events, e.into()))?;
    let deadline = Instant::now() + timeout;
    loop {
        if v2_oom_kill_count(dir)? > baseline {
            return Ok(true);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !readable(inotify.as_fd(), left, &events)? {
            return Ok(false);
        }
        // Consume the notifications; the counter is re-read above.
        let _ = inotify.read_events();
    }
}
