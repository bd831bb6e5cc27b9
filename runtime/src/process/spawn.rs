//! The runtime's side of starting a container's init: clone it into new namespaces (through a
//! short-lived joining stage when namespaces are joined by path or a time namespace is asked
//! for), write its id maps, place it in its cgroup, send its instructions and wait for ready.

use super::channel::{self, Channel};
use super::exe_guard;
use super::init_config::InitConfig;
use super::message::Message;
use crate::bundle::Bundle;
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::namespaces;
use crate::state::Status;
use mini_cgroups::Manager;
use nix::sched::CloneFlags;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, LinuxResources};
use std::convert::Infallible;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// How to start the init.
pub struct SpawnRequest<'a> {
    /// The validated bundle.
    pub bundle: &'a Bundle,
    /// What will be recorded about the container (its pid still 0); hooks get its state.
    pub record: &'a crate::state::Record,
    /// O_PATH descriptor of the exec FIFO (`create`), or none (`run`).
    pub fifo: Option<&'a OwnedFd>,
    /// The limits for the container's cgroup.
    pub resources: &'a LinuxResources,
    /// The inherited socket the init sends a terminal over.
    pub console_fd: Option<i32>,
    /// runc's --no-pivot.
    pub no_pivot: bool,
    /// runc's --preserve-fds.
    pub preserve_fds: i32,
    /// Signal for the init when the calling process dies (see `CreateOptions`).
    pub parent_death_signal: Option<nix::sys::signal::Signal>,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Forks with `flags` (fork semantics: the child continues on a copy of this stack). With a
/// cgroup descriptor, clone3 puts the child into that cgroup atomically; `Ok((pid, true))` says
/// it did, `Ok((pid, false))` that the caller must move it.
pub fn clone(flags: CloneFlags, cgroup: Option<&OwnedFd>) -> Result<(Pid, bool)> {
    if let Some(fd) = cgroup {
        let mut args = CloneArgs {
            flags: flags.bits() as u64 | CLONE_INTO_CGROUP,
            pidfd: 0,
            child_tid: 0,
            parent_tid: 0,
            exit_signal: libc::SIGCHLD as u64,
            stack: 0,
            stack_size: 0,
            tls: 0,
            set_tid: 0,
            set_tid_size: 0,
            cgroup: fd.as_raw_fd() as u64,
        };
        // SAFETY: clone3 without CLONE_VM and without a stack behaves as fork.
        let r = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &mut args as *mut CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        if r >= 0 {
            return Ok((Pid::from_raw(r as i32), true));
        }
        let e = nix::errno::Errno::last();
        if !matches!(
            e,
            nix::errno::Errno::ENOSYS | nix::errno::Errno::E2BIG | nix::errno::Errno::EINVAL
        ) {
            return Err(e)
                .context(|| format!("cloning the container init with {flags:?} into its cgroup"));
        }
    }
    // SAFETY: raw clone without CLONE_VM and with a null stack behaves as fork.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    nix::errno::Errno::result(r)
        .context(|| format!("cloning the container init with {flags:?}"))?;
    Ok((Pid::from_raw(r as i32), false))
}

/// The namespaces created by the clone itself. The cgroup namespace is left to the init, which
/// unshares it once it sits in its own cgroup (on v1 it gets there after the clone), so that
/// the namespace is rooted at the container's cgroup.
fn clone_flags(ns: &crate::namespaces::Namespaces) -> CloneFlags {
    ns.create - CloneFlags::CLONE_NEWCGROUP
}

/// What the child does right after the clone, before becoming the real init. With `user_ns`
/// it waits for its id maps; `maps_by_owner` says a rootless runtime writes them as the init's
/// owner, which it stays only while the init is dumpable (as runc's nsexec), so the init turns
/// non-dumpable only once they are written. (The runtime decides that before the clone: the
/// child's own euid changes when its maps arrive.)
pub fn pre_exec(ch: &mut Channel, user_ns: bool, maps_by_owner: bool) -> Result<Infallible> {
    if !maps_by_owner {
        nix::sys::prctl::set_dumpable(false).context(|| "making the init non-dumpable")?;
    }
    if user_ns {
        match ch.recv("the runtime")? {
            Message::Go => {}
            other => return Err(Error::invalid(format!("unexpected message {other:?}"))),
        }
        if maps_by_owner {
            nix::sys::prctl::set_dumpable(false).context(|| "making the init non-dumpable")?;
        }
        become_ns_root();
    }
    exe_guard::reexec_as_init(ch.raw_fd())
}

/// Becomes the user namespace's root where its maps allow it (they may not map 0).
fn become_ns_root() {
    let root = nix::unistd::Gid::from_raw(0);
    let _ = nix::unistd::setresgid(root, root, root);
    let uroot = nix::unistd::Uid::from_raw(0);
    let _ = nix::unistd::setresuid(uroot, uroot, uroot);
}

fn child_exit(ch: &mut Channel, r: Result<Infallible>) -> ! {
    match r {
        Ok(never) => match never {},
        Err(e) => {
            let _ = ch.send(&Message::Failed(e.to_string()));
        }
    }
    // SAFETY: _exit skips atexit handlers and buffers that belong to the parent's image.
    unsafe { libc::_exit(1) }
}

/// The joining stage: enters the namespaces given by path and a new time namespace, then
/// clones the init as a sibling (CLONE_PARENT), so the runtime is its parent.
fn join_stage(
    mut ch: Channel,
    req: &SpawnRequest,
    joins: Vec<(LinuxNamespaceType, OwnedFd)>,
    cgroup: Option<&OwnedFd>,
    maps_by_owner: bool,
) -> ! {
    let ns = &req.bundle.namespaces;
    let r: Result<Pid> = (|| {
        namespaces::enter(&joins)?;
        if joins.iter().any(|(t, _)| *t == LinuxNamespaceType::User) {
            // Host root is not mapped in a joined user namespace: become its root, or the
            // init's re-exec would drop every capability.
            become_ns_root();
        }
        if ns.create_time {
            nix::sched::unshare(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
                .context(|| "creating the time namespace")?;
            write_time_offsets(req)?;
        }
        let (pid, _) = clone(clone_flags(ns) | CloneFlags::CLONE_PARENT, cgroup)?;
        if pid.as_raw() == 0 {
            let user_ns = ns.creates(LinuxNamespaceType::User);
            let r = arm_parent_death(req.parent_death_signal)
                .and_then(|()| pre_exec(&mut ch, user_ns, maps_by_owner));
            child_exit(&mut ch, r)
        }
        Ok(pid)
    })();
    match r {
        Ok(pid) => {
            let _ = ch.send(&Message::InitPid(pid.as_raw()));
            // SAFETY: see child_exit.
            unsafe { libc::_exit(0) }
        }
        Err(e) => child_exit(&mut ch, Err(e)),
    }
}

fn write_time_offsets(req: &SpawnRequest) -> Result<()> {
    let linux = req.bundle.spec.linux().as_ref().expect("validated");
    let mut text = String::new();
    for (clock, off) in linux.time_offsets().iter().flatten() {
        text.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    if !text.is_empty() {
        super::procfs::write("self/timens_offsets", &text, "writing linux.timeOffsets")?;
    }
    Ok(())
}

/// Hands a seccomp notify listener, received from the init or an exec stage, to the agent at
/// the profile's listenerPath, with the container process state runc sends.
pub fn hand_listener_to_agent(
    ch: &mut Channel,
    profile: Option<&oci_spec::runtime::LinuxSeccomp>,
    pid: i32,
    state: &serde_json::Value,
) -> Result<()> {
    let fd = ch
        .take_fd()
        .ok_or_else(|| Error::invalid("the container sent no seccomp listener"))?;
    let profile = profile.ok_or_else(|| Error::invalid("a seccomp listener without a profile"))?;
    let path = profile.listener_path().as_ref().ok_or_else(|| {
        Error::invalid("config.json: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath")
    })?;
    let state: oci_spec::runtime::State = serde_json::from_value(state.clone())
        .map_err(|e| Error::invalid(format!("container state for the seccomp agent: {e}")))?;
    let message =
        crate::seccomp::process_state(pid, profile.listener_metadata().as_deref(), &state)?;
    crate::seccomp::send_to_listener(path, std::os::fd::AsFd::as_fd(&fd), &message)
}

/// Arms the parent-death signal in a freshly cloned init. Should the parent die before this,
/// the init's next message on its channel fails and it exits; so no check of the parent is
/// needed (getppid cannot tell inside a new pid namespace anyway).
pub fn arm_parent_death(signal: Option<nix::sys::signal::Signal>) -> Result<()> {
    match signal {
        Some(s) => nix::sys::prctl::set_pdeathsig(s).context(|| "arming the parent-death signal"),
        None => Ok(()),
    }
}

/// Opens the bind mounts' sources as host root and hands them to an init in a new user
/// namespace, as runc does: there, root may be refused a source by path (a directory only the
/// host's root may enter). A forked helper enters the init's mount namespace, so each
/// descriptor names a mount the init may bind, and sends each over the channel; a source it
/// cannot open is left to the init, which reports it.
fn send_mount_sources(req: &SpawnRequest, pid: Pid, ch: &mut Channel) -> Result<()> {
    let binds: Vec<(usize, std::path::PathBuf)> = req
        .bundle
        .spec
        .mounts()
        .iter()
        .flatten()
        .enumerate()
        .filter(|(_, m)| {
            let o = crate::rootfs::mount_options::parse(m.options().as_deref().unwrap_or_default());
            crate::rootfs::mounts::is_bind(m, &o)
        })
        .filter_map(|(i, m)| {
            let src = m.source().as_ref()?;
            Some((i, req.bundle.path.join(src)))
        })
        .collect();
    if binds.is_empty() {
        return Ok(());
    }
    let mnt = nix::fcntl::open(
        format!("/proc/{pid}/ns/mnt").as_str(),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .context(|| "opening the init's mount namespace")?;
    // SAFETY: the runtime is single-threaded; the child only makes syscalls and exits.
    match unsafe { nix::unistd::fork() }.context(|| "forking the mount source helper")? {
        nix::unistd::ForkResult::Child => {
            let ok = nix::sched::setns(&mnt, CloneFlags::CLONE_NEWNS).is_ok()
                && binds.iter().all(|(i, src)| {
                    let flags = nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC;
                    match nix::fcntl::open(src.as_path(), flags, nix::sys::stat::Mode::empty()) {
                        Ok(fd) => ch
                            .send_with_fd(&Message::MountSource(*i), fd.as_fd())
                            .is_ok(),
                        Err(_) => true,
                    }
                });
            // SAFETY: _exit skips atexit handlers and buffers that belong to the parent's image.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            let status = waitpid(child, None).context(|| "waiting for the mount source helper")?;
            if status != nix::sys::wait::WaitStatus::Exited(child, 0) {
                return Err(Error::invalid(
                    "could not open the bind mount sources in the container's mount namespace",
                ));
            }
            Ok(())
        }
    }
}

/// Kills and reaps a half-started init.
pub fn abort(pid: Pid) {
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = waitpid(pid, None);
}

fn make_cgroup(cgroup: &mut dyn Manager, resources: &LinuxResources) -> Result<()> {
    cgroup.create()?;
    Ok(cgroup.apply(resources)?)
}

/// Starts the container's init in the (not yet created) `cgroup` (none for a rootless
/// container without one) and waits until it is ready; returns its pid. On v2 the cgroup is
/// made first and the init cloned straight into it; on v1 it is made while the init
/// re-executes, which the init then joins by itself (on a hybrid host the init is cloned into
/// its directory of the cgroup2 tree).
pub fn spawn(req: &SpawnRequest, mut cgroup: Option<&mut dyn Manager>) -> Result<Pid> {
    let bundle = req.bundle;
    let ns = &bundle.namespaces;
    let (mut ours, theirs) = channel::pair()?;
    let joins = ns.open_joins()?;
    let v2 = cgroup
        .as_deref()
        .is_some_and(|cg| cg.version() == mini_cgroups::Version::V2);
    let cgroup_fd = match cgroup.as_deref_mut() {
        Some(cg) => {
            if v2 {
                make_cgroup(cg, req.resources)?;
            }
            // On a hybrid host, the container's directory in the cgroup2 tree: cloning the
            // init into it costs nothing, where moving it there later would take the
            // threadgroup lock.
            cg.dir_fd()?
        }
        None => None,
    };
    let user_ns = ns.creates(LinuxNamespaceType::User);
    let maps_by_owner = user_ns && !nix::unistd::geteuid().is_root();
    let (pid, in_cgroup) = if ns.needs_join_stage() {
        // SAFETY: the runtime is single-threaded; the child only makes syscalls and exits.
        match unsafe { nix::unistd::fork() }.context(|| "forking the namespace stage")? {
            nix::unistd::ForkResult::Child => {
                drop(ours);
                join_stage(theirs, req, joins, cgroup_fd.as_ref(), maps_by_owner)
            }
            nix::unistd::ForkResult::Parent { child } => {
                let msg = ours.recv("the namespace stage");
                let _ = waitpid(child, None);
                match msg? {
                    Message::InitPid(p) => (Pid::from_raw(p), v2 && cgroup_fd.is_some()),
                    Message::Failed(e) => return Err(Error::invalid(e)),
                    other => return Err(Error::invalid(format!("unexpected message {other:?}"))),
                }
            }
        }
    } else {
        let (pid, in_cgroup) = clone(clone_flags(ns), cgroup_fd.as_ref())?;
        if pid.as_raw() == 0 {
            let mut theirs = theirs;
            drop(ours);
            let r = arm_parent_death(req.parent_death_signal)
                .and_then(|()| pre_exec(&mut theirs, user_ns, maps_by_owner));
            child_exit(&mut theirs, r)
        }
        (pid, v2 && in_cgroup)
    };
    drop(theirs);
    let mut r = Ok(());
    if let Some(cg) = cgroup.as_deref_mut() {
        if cg.version() == mini_cgroups::Version::V1 {
            r = make_cgroup(cg, req.resources);
        }
    }
    let r = r.and_then(|()| finish(req, cgroup.as_deref(), &mut ours, pid, user_ns, in_cgroup));
    if r.is_err() {
        abort(pid);
    }
    r.map(|()| pid)
}

fn finish(
    req: &SpawnRequest,
    cgroup: Option<&dyn Manager>,
    ch: &mut Channel,
    pid: Pid,
    user_ns: bool,
    in_cgroup: bool,
) -> Result<()> {
    let bundle = req.bundle;
    let linux = bundle.spec.linux().as_ref().expect("validated");
    let ns = &bundle.namespaces;
    if user_ns {
        super::id_map::write(
            pid,
            linux.uid_mappings().as_deref().unwrap_or_default(),
            linux.gid_mappings().as_deref().unwrap_or_default(),
        )?;
        ch.send(&Message::Go)?;
        // Only a runtime that is root on the host can see what the user namespace hides;
        // a rootless runtime's init opens its (the user's own) sources itself.
        if ns.creates(LinuxNamespaceType::Mount) && nix::unistd::geteuid().is_root() {
            send_mount_sources(req, pid, ch)?;
        }
    }
    // A joined user namespace (by path) constrains the init as much as a new one does, and so
    // does the runtime's own (rootless podman runs it as root of one).
    let in_user_ns = ns.has(LinuxNamespaceType::User) || crate::rootless::in_user_namespace();
    let mount_sources = match cgroup {
        Some(cg) => cg.mount_sources()?,
        None => Vec::new(),
    };
    // On v1 the init moves itself: a thread writing 0 to `tasks` skips the global
    // threadgroup lock, whose RCU grace period makes the runtime writing `cgroup.procs` cost
    // ~7 ms per container on these hosts. In a user namespace the init cannot write the host's
    // cgroup files, so the runtime does it.
    let mut cgroup_join = Vec::new();
    match cgroup {
        Some(cg) if !in_cgroup => {
            if cg.version() == mini_cgroups::Version::V1 && !in_user_ns {
                cgroup_join = mount_sources.iter().map(|s| s.host_dir.clone()).collect();
            } else {
                cg.add_process(pid.as_raw())?;
            }
        }
        _ => {}
    }
    let mut hook_state = req.record.hook_state(Status::Creating);
    hook_state["pid"] = pid.as_raw().into();
    let cfg = InitConfig {
        spec: bundle.spec.clone(),
        bundle: bundle.path.clone(),
        rootfs: bundle.rootfs.clone(),
        fifo_fd: req.fifo.map(|f| f.as_raw_fd()),
        no_pivot: req.no_pivot,
        preserve_fds: req.preserve_fds,
        cgroup_mounts: mount_sources,
        cgroup_join,
        new_cgroup_ns: ns.creates(LinuxNamespaceType::Cgroup),
        user_ns: in_user_ns,
        uts_ns: ns.has(LinuxNamespaceType::Uts),
        new_net_ns: ns.creates(LinuxNamespaceType::Network),
        hook_state: hook_state.clone(),
        console_fd: req.console_fd,
        parent_death_signal: req.parent_death_signal.map(|s| s as i32),
    };
    ch.send(&Message::Setup(Box::new(cfg)))?;
    loop {
        match ch.recv("the container init")? {
            Message::Ready => return Ok(()),
            Message::RuntimeHooks => {
                let hooks = bundle.spec.hooks().as_ref();
                let none = Vec::new();
                hooks::run(
                    "prestart",
                    hooks.and_then(|h| h.prestart().as_ref()).unwrap_or(&none),
                    &hook_state,
                )?;
                hooks::run(
                    "createRuntime",
                    hooks
                        .and_then(|h| h.create_runtime().as_ref())
                        .unwrap_or(&none),
                    &hook_state,
                )?;
                ch.send(&Message::HooksDone)?;
            }
            Message::SeccompListener => {
                hand_listener_to_agent(ch, linux.seccomp().as_ref(), pid.as_raw(), &hook_state)?
            }
            Message::Failed(e) => return Err(Error::invalid(e)),
            other => return Err(Error::invalid(format!("unexpected message {other:?}"))),
        }
    }
}
