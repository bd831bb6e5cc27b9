//! `exec`: run another process in a created or running container. The runtime forks a stage
//! that re-executes through the read-only view of its binary, moves into the container's
//! cgroup, enters its namespaces and forks the process as the runtime's own child; in the
//! foreground the runtime forwards signals and returns the process's exit status.

use super::create::write_pid_file;
use super::sub_cgroup::{self, SubCgroups};
use crate::error::{Context, Error, Result};
use crate::process::channel;
use crate::process::exec_config::ExecConfig;
use crate::process::message::Message;
use crate::process::signals;
use crate::process::spawn::{abort, hand_listener_to_agent, pre_exec};
use crate::state::{ContainerDir, Record, Status};
use crate::terminal::{self, Console};
use crate::{identity, input_file};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{Capabilities, LinuxNamespaceType, Process};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// runc's `exec` options.
#[derive(Debug, Default, Clone)]
pub struct ExecOptions {
    /// Container id.
    pub id: String,
    /// An OCI Process JSON file (replaces args and the flags below).
    pub process: Option<PathBuf>,
    /// Command and arguments.
    pub args: Vec<String>,
    /// Extra environment (`KEY=value`), added to the container's.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// `uid[:gid]`.
    pub user: Option<String>,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
    /// Capabilities to add.
    pub caps: Vec<String>,
    /// Set no_new_privs.
    pub no_new_privs: bool,
    /// Allocate a terminal.
    pub tty: bool,
    /// Where to send the terminal's master.
    pub console_socket: Option<PathBuf>,
    /// Return once the process started.
    pub detach: bool,
    /// Where to write the process's pid.
    pub pid_file: Option<PathBuf>,
    /// Descriptors after stdio to pass on.
    pub preserve_fds: i32,
    /// Sub-cgroups of the container's to run in (`PATH` or `CONTROLLER:PATH`, as runc).
    pub cgroup: Vec<String>,
    /// Allow exec into a paused container.
    pub ignore_paused: bool,
}

fn bad(msg: impl std::fmt::Display) -> Error {
    Error::invalid(msg)
}

/// The container's environment with `--env` entries applied as runc does: one naming a variable
/// the environment has replaces its value (in place), others are added in order.
fn with_overrides(env: &[String], overrides: &[String]) -> Vec<String> {
    let name = |kv: &str| kv.split_once('=').map_or(kv, |(k, _)| k).to_string();
    let mut out = env.to_vec();
    for kv in overrides {
        match out.iter_mut().find(|e| name(e) == name(kv)) {
            Some(e) => e.clone_from(kv),
            None => out.push(kv.clone()),
        }
    }
    out
}

/// Builds the process: the `--process` file, or the container's process with the flags applied.
fn process(rec: &Record, o: &ExecOptions) -> Result<Process> {
    if let Some(file) = &o.process {
        let data = input_file::read(file, input_file::JSON_LIMIT).map_err(|e| {
            bad(format!(
                "--process {}: {e}: give an OCI Process JSON file",
                file.display()
            ))
        })?;
        let mut value: serde_json::Value = serde_json::from_slice(&data)
            .map_err(|e| bad(format!("--process {}: {e}", file.display())))?;
        // runc's Go struct reads a missing user as uid 0, gid 0; the spec's type requires it.
        if let Some(obj) = value.as_object_mut() {
            obj.entry("user")
                .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
        }
        let p: Process = serde_json::from_value(value)
            .map_err(|e| bad(format!("--process {}: {e}", file.display())))?;
        identity::check_ids(p.user(), "--process user").map_err(bad)?;
        return Ok(p);
    }
    if o.args.is_empty() {
        return Err(bad(
            "exec needs a command after the container id, or --process FILE",
        ));
    }
    let mut p = rec.process.clone().unwrap_or_default();
    p.set_args(Some(o.args.clone()));
    p.set_terminal(Some(o.tty));
    p.set_env(Some(with_overrides(
        p.env().as_deref().unwrap_or_default(),
        &o.env,
    )));
    if let Some(cwd) = &o.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut user = p.user().clone();
    if let Some(u) = &o.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, ""));
        user.set_uid(
            uid.parse()
                .map_err(|_| bad(format!("--user {u:?}: use uid[:gid] numbers")))?,
        );
        if !gid.is_empty() {
            user.set_gid(
                gid.parse()
                    .map_err(|_| bad(format!("--user {u:?}: use uid[:gid] numbers")))?,
            );
        }
    }
    if !o.additional_gids.is_empty() {
        user.set_additional_gids(Some(o.additional_gids.clone()));
    }
    identity::check_ids(&user, "exec --user/--additional-gids").map_err(bad)?;
    p.set_user(user);
    if o.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !o.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let add = |set: &Option<Capabilities>, c: oci_spec::runtime::Capability| {
            let mut s = set.clone().unwrap_or_default();
            s.insert(c);
            Some(s)
        };
        for name in &o.caps {
            let upper = name.to_ascii_uppercase();
            let c = oci_spec::runtime::Capability::from_str(upper.trim_start_matches("CAP_"))
                .map_err(|_| bad(format!("--cap {name}: unknown capability")))?;
            caps.set_bounding(add(caps.bounding(), c));
            caps.set_effective(add(caps.effective(), c));
            caps.set_permitted(add(caps.permitted(), c));
            // Ambient needs inheritable; add it only where inheritable bits exist, as runc does.
            if caps.inheritable().as_ref().is_some_and(|i| !i.is_empty()) {
                caps.set_ambient(add(caps.ambient(), c));
            }
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

/// The init's namespaces that differ from ours, in joining order (user first, mount last).
fn namespaces(pid: i32) -> Vec<(LinuxNamespaceType, PathBuf)> {
    use LinuxNamespaceType::*;
    let mut out = Vec::new();
    for (typ, name) in [
        (User, "user"),
        (Ipc, "ipc"),
        (Uts, "uts"),
        (Network, "net"),
        (Pid, "pid"),
        (Cgroup, "cgroup"),
        (Time, "time"),
        (Mount, "mnt"),
    ] {
        let theirs = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
        let ours = Path::new("/proc/self/ns").join(name);
        match (std::fs::read_link(&theirs), std::fs::read_link(&ours)) {
            (Ok(a), Ok(b)) if a != b => out.push((typ, theirs)),
            _ => {}
        }
    }
    out
}

fn cgroup_files(rec: &Record, args: &[String]) -> Result<Vec<PathBuf>> {
    let sub = SubCgroups::parse(args)?;
    let Some(cfg) = &rec.cgroup else {
        if sub.is_empty() {
            return Ok(Vec::new());
        }
        return Err(bad("--cgroup: the container has no cgroup of its own"));
    };
    let m = mini_cgroups::open(cfg)?;
    let v2 = m.version() == mini_cgroups::Version::V2;
    let file = if v2 { "cgroup.procs" } else { "tasks" };
    let sources = m.mount_sources()?;
    let mounted: Vec<String> = sources.iter().flat_map(|s| s.controllers.clone()).collect();
    if let Some(c) = sub.unknown(&mounted).first() {
        return Err(bad(format!(
            "--cgroup {c}:...: no cgroup hierarchy holds controller {c}"
        )));
    }
    let mut out = Vec::new();
    for s in sources {
        let dir = match sub.for_hierarchy(&s.controllers, v2)? {
            Some(p) => sub_cgroup::resolve(&s.host_dir, p, &args.join(" "))?,
            None => s.host_dir,
        };
        out.push(dir.join(file));
    }
    // A hybrid host's cgroup2 tree, which the container joined as runc does: not mounted in the
    // container, so not a mount source; `0` to its cgroup.procs moves the joining process.
    if let Some(h) = cfg
        .hierarchies
        .iter()
        .find(|h| !v2 && h.controllers.is_empty())
    {
        out.push(h.dir.join("cgroup.procs"));
    }
    Ok(out)
}

/// Runs the process; returns the exit status `exec` should exit with.
pub fn exec(root: &Path, o: &ExecOptions) -> Result<i32> {
    let (rec, status) = {
        let dir = ContainerDir::open(root, &o.id)?;
        let rec = dir.load()?;
        let status = rec.status(&dir);
        (rec, status)
    };
    match status {
        Status::Created | Status::Running => {}
        Status::Paused if o.ignore_paused => {}
        Status::Paused => {
            return Err(bad(format!(
                "container {:?} is paused: resume it first, or pass --ignore-paused",
                o.id
            )))
        }
        s => {
            return Err(bad(format!(
                "cannot exec in container {:?}: it is {s}",
                o.id
            )))
        }
    }
    let process = process(&rec, o)?;
    let console = Console::choose(
        process.terminal() == Some(true),
        o.console_socket.as_deref(),
        !o.detach,
    )?;
    let cfg = ExecConfig {
        process,
        namespaces: namespaces(rec.pid),
        cgroup_join: cgroup_files(&rec, &o.cgroup)?,
        console_fd: console.container_fd(),
        seccomp: rec.seccomp.clone(),
        preserve_fds: o.preserve_fds,
    };
    let forwarded = signals::forwarded();
    if !o.detach {
        signals::block(&forwarded)?;
    }
    // Rootless, a mount namespace can only be made inside the container's user namespace.
    let user_ns = cfg
        .namespaces
        .iter()
        .find(|(t, _)| *t == LinuxNamespaceType::User && !nix::unistd::geteuid().is_root())
        .map(|(_, p)| p.clone());
    let (mut ours, theirs) = channel::pair()?;
    // SAFETY: the runtime is single-threaded; the child only makes syscalls, then execs.
    let stage = match unsafe { nix::unistd::fork() }.context(|| "forking the exec stage")? {
        nix::unistd::ForkResult::Child => {
            drop(ours);
            let mut theirs = theirs;
            // A private mount namespace for the read-only view of the runtime binary.
            let r = enter_user_ns(user_ns.as_deref())
                .and_then(|()| {
                    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
                        .context(|| "creating the exec stage's mount namespace")
                })
                .and_then(|()| pre_exec(&mut theirs, false, false));
            let Err(e) = r;
            let _ = theirs.send(&Message::Failed(e.to_string()));
            // SAFETY: _exit skips the parent image's atexit handlers and buffers.
            unsafe { libc::_exit(1) }
        }
        nix::unistd::ForkResult::Parent { child } => child,
    };
    drop(theirs);
    let started = start(&mut ours, cfg, &rec);
    let console = console.into_proxy_end();
    let _ = waitpid(stage, None);
    // A detached exec returns once the process runs its program (the channel closes on
    // execve), so the pid file never names a process still in the runtime's setup.
    let started = started.and_then(|pid| {
        if o.detach {
            executed(&mut ours).map_err(|e| (Some(pid), e))?;
        }
        Ok(pid)
    });
    let pid = match started {
        Ok(pid) => pid,
        Err((pid, e)) => {
            if let Some(p) = pid {
                abort(p);
            }
            return Err(e);
        }
    };
    crate::logging::debug(&format!("exec {}: process {pid} started", o.id));
    if let Some(f) = &o.pid_file {
        write_pid_file(f, pid)?;
    }
    if o.detach {
        return Ok(0);
    }
    match console {
        Some(ours) => terminal::foreground(ours, pid, &forwarded),
        None => signals::wait_forwarding(pid, &forwarded, None),
    }
}

/// Enters the user namespace at `path`, if any (see `exec`); `join` later skips it.
fn enter_user_ns(path: Option<&Path>) -> Result<()> {
    if let Some(path) = path {
        let ns = std::fs::File::open(path).context(|| format!("opening {}", path.display()))?;
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWUSER)
            .context(|| "joining the container's user namespace")?;
    }
    Ok(())
}

/// Waits until the process has executed its program (its end of the channel is close-on-exec),
/// or reports why it could not.
fn executed(ch: &mut channel::Channel) -> Result<()> {
    match ch.recv_or_closed("the exec'd process")? {
        None => Ok(()),
        Some(Message::Failed(e)) => Err(Error::invalid(e)),
        Some(other) => Err(Error::invalid(format!("unexpected message {other:?}"))),
    }
}

/// Sends the instructions and waits for the process's pid and readiness.
fn start(
    ch: &mut channel::Channel,
    cfg: ExecConfig,
    rec: &Record,
) -> Result<Pid, (Option<Pid>, Error)> {
    let mut pid = None;
    let mut ready = false;
    ch.send(&Message::Exec(Box::new(cfg)))
        .map_err(|e| (None, e))?;
    while pid.is_none() || !ready {
        match ch.recv("the exec stage").map_err(|e| (pid, e))? {
            Message::InitPid(p) => pid = Some(Pid::from_raw(p)),
            Message::Ready => ready = true,
            Message::SeccompListener => {
                let state =
                    serde_json::to_value(rec.oci_state(Status::Running)).expect("state serializes");
                let p = pid.map_or(0, |p| p.as_raw());
                hand_listener_to_agent(ch, rec.seccomp.as_ref(), p, &state).map_err(|e| (pid, e))?
            }
            Message::Failed(e) => return Err((pid, Error::invalid(e))),
            other => return Err((pid, Error::invalid(format!("unexpected message {other:?}")))),
        }
    }
    Ok(pid.expect("loop ends with a pid"))
}
