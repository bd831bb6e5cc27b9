//! The container's init, after its re-exec: receives its instructions, prepares the container
//! (hostname, rootfs, limits, user, capabilities, working directory), reports ready, waits on
//! the exec FIFO for `start`, and executes the user's process. Every error before `ready`
//! crosses back to the runtime; nothing of the runtime (descriptors, signal state, dumpability)
//! reaches the user's process.

use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::process::channel::Channel;
use crate::process::init_config::InitConfig;
use crate::process::message::Message;
use crate::process::user_process;
use crate::rootfs;
use crate::terminal;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::convert::Infallible;
use std::os::fd::{AsFd, AsRawFd};
use std::os::fd::{OwnedFd, RawFd};

/// Entry point of `mini-run` started as an init (see [`super::exe_guard::INIT_ENV`]).
pub fn main(channel_fd: RawFd) -> ! {
    // Until execve, no process of the container may ptrace us or open our /proc files.
    let _ = nix::sys::prctl::set_dumpable(false);
    // SAFETY: the runtime passed us this descriptor and nothing else owns it.
    let mut ch = unsafe { Channel::from_raw_fd(channel_fd) };
    let _ = nix::fcntl::fcntl(
        &ch,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    let mut ready_sent = false;
    let err = match run(&mut ch, &mut ready_sent) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    if ready_sent {
        eprintln!("mini-run init: {err}");
    } else {
        let _ = ch.send(&Message::Failed(err.to_string()));
    }
    std::process::exit(127)
}

fn run(ch: &mut Channel, ready_sent: &mut bool) -> Result<Infallible> {
    let mut sources = rootfs::MountSources::new();
    let cfg = loop {
        match ch.recv("the runtime")? {
            Message::MountSource(i) => {
                if let Some(fd) = ch.take_fd() {
                    sources.insert(i, fd);
                }
            }
            other => break other,
        }
    };
    let cfg = match cfg {
        Message::Setup(cfg) => cfg,
        Message::Exec(cfg) => {
            let keep = [Some(ch.raw_fd()), cfg.console_fd];
            user_process::close_inherited_fds(3 + cfg.preserve_fds, &keep)?;
            super::exec::join(ch, &cfg)?;
            // The process runs on as the runtime's child; this joining stage is done.
            std::process::exit(0)
        }
        other => {
            return Err(Error::invalid(format!(
                "init: unexpected message {other:?}"
            )))
        }
    };
    let mut keep = vec![Some(ch.raw_fd()), cfg.fifo_fd, cfg.console_fd];
    keep.extend(sources.values().map(|fd| Some(fd.as_raw_fd())));
    user_process::close_inherited_fds(3 + cfg.preserve_fds, &keep)?;
    for dir in &cfg.cgroup_join {
        let tasks = dir.join("tasks");
        std::fs::write(&tasks, "0").context(|| format!("joining cgroup {}", dir.display()))?;
    }
    if cfg.new_cgroup_ns {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .context(|| "creating the cgroup namespace")?;
    }
    let spec = &cfg.spec;
    let process = spec.process().as_ref().expect("validated");
    // Setup creates files and devices with exact modes; the spec's umask applies to the process.
    nix::sys::stat::umask(Mode::empty());
    if cfg.uts_ns {
        if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
            nix::unistd::sethostname(h).context(|| format!("setting hostname {h}"))?;
        }
        if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
            // SAFETY: the pointer and length describe a live byte string.
            let r = unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) };
            nix::errno::Errno::result(r).context(|| format!("setting domainname {d}"))?;
        }
    }
    if cfg.new_net_ns {
        crate::loopback::up()?;
    }
    let hooks = spec.hooks().clone().unwrap_or_default();
    let mut state = cfg.hook_state.clone();
    // createContainer and startContainer hooks run in the container: they get its view of the pid.
    state["pid"] = nix::unistd::getpid().as_raw().into();
    let mut console = None;
    rootfs::prepare(&cfg, &sources, || {
        if process.terminal() == Some(true) {
            console = Some(console_for_init(&cfg)?);
        }
        let runtime_hooks = hooks
            .prestart()
            .iter()
            .chain(hooks.create_runtime())
            .flatten();
        if runtime_hooks.count() > 0 {
            ch.send(&Message::RuntimeHooks)?;
            match ch.recv("the runtime")? {
                Message::HooksDone => {}
                other => return Err(Error::invalid(format!("unexpected message {other:?}"))),
            }
        }
        hooks::run_in(
            "createContainer",
            hooks.create_container().as_deref().unwrap_or_default(),
            &state,
            hooks::Setting {
                cwd: Some(&cfg.rootfs),
                env: None,
            },
        )
    })?;
    if let Some(slave) = console {
        terminal::make_controlling(slave)?;
    }
    if let Some(adj) = process.oom_score_adj() {
        super::procfs::write(
            "self/oom_score_adj",
            &adj.to_string(),
            &format!("setting oomScoreAdj {adj}"),
        )?;
    }
    // Before seccomp, which could deny personality(2).
    if let Some(p) = spec.linux().as_ref().and_then(|l| l.personality().as_ref()) {
        crate::personality::apply(p)?;
    }
    let profile = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let prepared = user_process::prepare(process, profile, ch)?;
    // Switching credentials cleared it; a parent dead by now makes the send below fail.
    if let Some(sig) = cfg.parent_death_signal {
        let sig = nix::sys::signal::Signal::try_from(sig)
            .map_err(|e| Error::invalid(format!("parent-death signal {sig}: {e}")))?;
        super::spawn::arm_parent_death(Some(sig))?;
    }
    ch.send(&Message::Ready)?;
    *ready_sent = true;
    // Held until execve closes it, so `start` returns once the process runs.
    let fifo = cfg.fifo_fd.map(wait_for_start).transpose()?;
    state["status"] = "created".into();
    let hooks_ran = hooks::run_in(
        "startContainer",
        hooks.start_container().as_deref().unwrap_or_default(),
        &state,
        hooks::Setting {
            cwd: None,
            env: Some(process.env().as_deref().unwrap_or_default()),
        },
    );
    if let Some(fifo) = &fifo {
        // `start` reads "0", or why the process will not run.
        let word = match &hooks_ran {
            Ok(()) => "0".to_string(),
            Err(e) => e.to_string(),
        };
        nix::unistd::write(fifo, word.as_bytes()).context(|| "writing the exec fifo")?;
    }
    hooks_ran?;
    user_process::exec(prepared, cfg.preserve_fds)
}

/// Makes the container's terminal: a pty of its devpts, on /dev/console, master sent out.
fn console_for_init(cfg: &InitConfig) -> Result<std::os::fd::OwnedFd> {
    let socket = cfg.console_fd.ok_or_else(|| {
        Error::invalid("process.terminal is true but no console socket was given")
    })?;
    let root = nix::fcntl::open(
        &cfg.rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context(|| "opening the rootfs")?;
    let process = cfg.spec.process().as_ref().expect("validated");
    let pty = terminal::open_pty(&root, process.user().uid())?;
    if let Some(size) = process.console_size() {
        terminal::set_size(
            pty.master.as_fd(),
            size.height() as u16,
            size.width() as u16,
        )?;
    }
    terminal::mount_console(&root, &pty.slave)?;
    terminal::send_master(socket, &pty)?;
    // SAFETY: the inherited socket is ours; the receiver now holds the master.
    unsafe { libc::close(socket) };
    Ok(pty.slave)
}

/// Blocks until `start` opens the FIFO for reading; returns our (close-on-exec) writing end.
fn wait_for_start(fifo_fd: RawFd) -> Result<OwnedFd> {
    // A signal that would end the process ends the waiting container, as runc's does.
    super::signals::exit_on_terminating_signals()?;
    let path = format!("/proc/self/fd/{fifo_fd}");
    let fd = nix::fcntl::open(
        path.as_str(),
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context(|| "opening the exec fifo")?;
    // SAFETY: the O_PATH descriptor is ours and not used after this.
    unsafe { libc::close(fifo_fd) };
    Ok(fd)
}
