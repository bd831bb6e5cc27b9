//! The container's init, after its re-exec: receives its instructions, prepares the container
//! (hostname, rootfs, limits, user, capabilities, working directory), reports ready, waits on
//! the exec FIFO for `start`, and executes the user's process. Every error before `ready`
//! crosses back to the runtime; nothing of the runtime (descriptors, signal state, dumpability)
//! reaches the user's process.

use crate::capabilities;
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::identity;
use crate::process::channel::Channel;
use crate::process::message::Message;
use crate::process::signals;
use crate::rlimits;
use crate::rootfs;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

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
    let cfg = match ch.recv("the runtime")? {
        Message::Setup(cfg) => cfg,
        other => {
            return Err(Error::invalid(format!(
                "init: unexpected message {other:?}"
            )))
        }
    };
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
    let hooks = spec.hooks().clone().unwrap_or_default();
    let mut state = cfg.hook_state.clone();
    rootfs::prepare(&cfg, || {
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
        hooks::run(
            "createContainer",
            hooks.create_container().as_deref().unwrap_or_default(),
            &state,
        )
    })?;
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .context(|| format!("setting oomScoreAdj {adj}"))?;
    }
    if let Some(rl) = process.rlimits() {
        rlimits::apply(rl)?;
    }
    if let Some(c) = process.capabilities() {
        capabilities::limit_bounding(c)?;
    }
    identity::switch(process.user())?;
    if let Some(c) = process.capabilities() {
        capabilities::apply(c)?;
    }
    enter_cwd(process.cwd())?;
    let env = process.env().clone().unwrap_or_default();
    let args = process.args().as_ref().expect("validated");
    let exe = find_executable(&args[0], &env)?;
    if process.no_new_privileges() == Some(true) {
        nix::sys::prctl::set_no_new_privs().context(|| "setting no_new_privs")?;
    }
    nix::sys::stat::umask(Mode::from_bits_truncate(
        process.user().umask().unwrap_or(0o022),
    ));
    ch.send(&Message::Ready)?;
    *ready_sent = true;
    if let Some(fd) = cfg.fifo_fd {
        wait_for_start(fd)?;
    }
    state["status"] = "created".into();
    hooks::run(
        "startContainer",
        hooks.start_container().as_deref().unwrap_or_default(),
        &state,
    )?;
    signals::reset_for_exec()?;
    close_runtime_fds(3 + cfg.preserve_fds)?;
    let argv: Vec<CString> = args.iter().map(|a| cstring(a)).collect();
    let envp: Vec<CString> = env.iter().map(|e| cstring(e)).collect();
    nix::unistd::execve(&cstring(&exe.to_string_lossy()), &argv, &envp)
        .context(|| format!("executing {}", exe.display()))
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).expect("NULs removed")
}

/// Enters the working directory and checks that it lies inside the container's root: a path
/// through a leaked descriptor (`/proc/self/fd/N`, the CVE-2024-21626 shape) leaves getcwd
/// unable to name it.
fn enter_cwd(cwd: &Path) -> Result<()> {
    nix::unistd::chdir(cwd).context(|| format!("entering process.cwd {}", cwd.display()))?;
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        _ => Err(Error::invalid(format!(
            "process.cwd {} is outside the container's root",
            cwd.display()
        ))),
    }
}

/// Resolves the command as execvp would, with the container's PATH.
fn find_executable(cmd: &str, env: &[String]) -> Result<PathBuf> {
    let executable = |p: &Path| {
        nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok()
            && std::fs::metadata(p).is_ok_and(|m| m.is_file())
    };
    if cmd.contains('/') {
        let p = PathBuf::from(cmd);
        return if executable(&p) {
            Ok(p)
        } else {
            Err(Error::invalid(format!(
                "exec {cmd:?}: no such executable file in the container"
            )))
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .map(|d| Path::new(if d.is_empty() { "." } else { d }).join(cmd))
        .find(|p| executable(p))
        .ok_or_else(|| {
            Error::invalid(format!(
                "exec {cmd:?}: executable file not found in $PATH ({path})"
            ))
        })
}

/// Blocks until `start` opens the FIFO for reading, then tells it we are going.
fn wait_for_start(fifo_fd: RawFd) -> Result<()> {
    let path = format!("/proc/self/fd/{fifo_fd}");
    let fd = nix::fcntl::open(
        path.as_str(),
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context(|| "opening the exec fifo")?;
    nix::unistd::write(&fd, b"0").context(|| "writing the exec fifo")?;
    // SAFETY: the O_PATH descriptor is ours and not used after this.
    unsafe { libc::close(fifo_fd) };
    Ok(())
}

/// Marks every descriptor from `first` up close-on-exec.
fn close_runtime_fds(first: i32) -> Result<()> {
    // SAFETY: close_range only changes descriptor flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return Ok(());
    }
    // Kernels before 5.11: walk /proc/self/fd.
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .context(|| "listing descriptors")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= first)
        .collect();
    for fd in fds {
        // SAFETY: setting FD_CLOEXEC on a descriptor number; a stale one just fails.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}
