//! The joining side of `exec`, run by the re-executed runtime (so, like the init, it only ever
//! sees a read-only view of the host binary): move into the container's cgroup, enter its
//! namespaces (user first, mount last), then fork the process as a sibling (CLONE_PARENT, so
//! the CLI waits for it directly) inside the container's pid namespace.

use super::channel::Channel;
use super::exec_config::ExecConfig;
use super::message::Message;
use super::spawn::clone;
use super::user_process;
use crate::error::{Context, Result};
use crate::namespaces;
use crate::terminal;
use nix::sched::CloneFlags;
use oci_spec::runtime::LinuxNamespaceType;
use std::convert::Infallible;

/// Joins the container and starts the process; returns in the joining process only.
pub fn join(ch: &mut Channel, cfg: &ExecConfig) -> Result<()> {
    for file in &cfg.cgroup_join {
        std::fs::write(file, "0").context(|| format!("joining cgroup via {}", file.display()))?;
    }
    // Open every namespace before entering any: after the mount namespace, /proc is the
    // container's and the init's host pid no longer resolves.
    let mut joins = Vec::new();
    for (typ, path) in &cfg.namespaces {
        // A rootless exec stage entered the user namespace already (setns would refuse it).
        let current = std::fs::read_link("/proc/self/ns/user").ok();
        if *typ == LinuxNamespaceType::User && std::fs::read_link(path).ok() == current {
            continue;
        }
        let fd = nix::fcntl::open(
            path,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .context(|| format!("opening {}", path.display()))?;
        joins.push((*typ, fd));
    }
    namespaces::enter(&joins)?;
    let (pid, _) = clone(CloneFlags::CLONE_PARENT, None)?;
    if pid.as_raw() == 0 {
        let r = become_process(ch, cfg);
        let e = match r {
            Ok(never) => match never {},
            Err(e) => e,
        };
        let _ = ch.send(&Message::Failed(e.to_string()));
        // SAFETY: _exit skips the parent image's atexit handlers and buffers.
        unsafe { libc::_exit(127) }
    }
    ch.send(&Message::InitPid(pid.as_raw()))
}

fn become_process(ch: &mut Channel, cfg: &ExecConfig) -> Result<Infallible> {
    if cfg.process.terminal() == Some(true) {
        let socket = cfg
            .console_fd
            .ok_or_else(|| crate::error::Error::invalid("exec --tty needs a console socket"))?;
        let root = nix::fcntl::open(
            "/",
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .context(|| "opening the container root")?;
        let pty = terminal::open_pty(&root, cfg.process.user().uid())?;
        if let Some(size) = cfg.process.console_size() {
            terminal::set_size(
                std::os::fd::AsFd::as_fd(&pty.master),
                size.height() as u16,
                size.width() as u16,
            )?;
        }
        terminal::send_master(socket, &pty)?;
        // SAFETY: the inherited socket is ours; the receiver now holds the master.
        unsafe { libc::close(socket) };
        terminal::make_controlling(pty.slave)?;
    }
    let prepared = user_process::prepare(&cfg.process, cfg.seccomp.as_ref(), ch)?;
    ch.send(&Message::Ready)?;
    user_process::exec(prepared, cfg.preserve_fds)
}
