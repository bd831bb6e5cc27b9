//! `create`: validate the bundle, make the container's directory, cgroup and exec FIFO, start
//! its init and leave it waiting for `start`. Any failure undoes all of it.

use crate::bundle;
use crate::error::{Context, Result};
use crate::logging::debug;
use crate::process::liveness;
use crate::process::spawn::{self, SpawnRequest};
use crate::state::{self, ContainerDir, Record, Status};
use crate::terminal::Console;
use mini_cgroups::Manager;
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::{Hook, LinuxNamespaceType, LinuxResources};
use std::path::{Path, PathBuf};

/// Options of `create` (and of `run`, which creates first).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Container id.
    pub id: String,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Where to write the init's pid.
    pub pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root.
    pub no_pivot: bool,
    /// Descriptors after stdio to pass to the process.
    pub preserve_fds: i32,
    /// Where to send the terminal's master (process.terminal).
    pub console_socket: Option<PathBuf>,
    /// The runtime stays in the foreground (`run` without --detach), so it can hold the terminal.
    pub foreground: bool,
    /// A signal the kernel sends the container's init when the process that called `create`
    /// dies (PR_SET_PDEATHSIG), armed again after the init changed its credentials. A monitor
    /// that owns its container's stdio and exit status uses SIGKILL, so the container cannot
    /// outlive it unsupervised. Not a runc flag.
    pub parent_death_signal: Option<nix::sys::signal::Signal>,
}

/// Whether the init waits for `start` on the exec FIFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// `create`: wait for `start`.
    WaitForStart,
    /// `run`: go at once.
    Immediately,
}

/// A container whose init is ready.
pub struct Created {
    /// Its locked directory.
    pub dir: ContainerDir,
    /// What was recorded.
    pub record: Record,
    /// The init's pid.
    pub pid: Pid,
    /// The runtime's end of a foreground terminal.
    pub console: Option<std::os::fd::OwnedFd>,
}

/// Undoes a partial create unless disarmed.
struct Undo {
    dir: Option<ContainerDir>,
    cgroup: Option<Box<dyn Manager>>,
    /// Once the container's process was started, a failed create still ends the lifecycle as
    /// `delete` does: with the poststop hooks (and the state they get).
    poststop: Option<(Vec<Hook>, serde_json::Value)>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.destroy();
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.remove();
        }
        if let Some((hooks, state)) = self.poststop.take() {
            crate::hooks::run_warn("poststop", &hooks, &state);
        }
    }
}

fn cgroup_resources(spec: &oci_spec::runtime::Spec) -> LinuxResources {
    let mut res = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    // A rootless container cannot have device rules enforced; runc ignores them there too.
    if crate::rootless::active() {
        res.set_devices(None);
    }
    // The devices every container gets are allowed after the spec's own rules, as runc does.
    if res.devices().is_some() {
        let mut devices = res.devices().clone().unwrap_or_default();
        devices.extend(mini_cgroups::default_allowed_devices());
        res.set_devices(Some(devices));
    }
    res
}

/// Creates the container `opts.id` under `root`.
pub fn create(root: &Path, opts: &CreateOptions, mode: StartMode) -> Result<Created> {
    let dir = ContainerDir::create(root, &opts.id)?;
    let mut undo = Undo {
        dir: Some(dir),
        cgroup: None,
        poststop: None,
    };
    let bundle = bundle::load(&opts.bundle)?;
    debug(&format!(
        "create {}: bundle {} validated, state in {}",
        opts.id,
        bundle.path.display(),
        root.join(&opts.id).display()
    ));
    let linux = bundle.spec.linux().as_ref().expect("validated");
    let resources = cgroup_resources(&bundle.spec);
    undo.cgroup = crate::rootless::cgroup(linux, &opts.id, &resources)?;
    match &undo.cgroup {
        Some(cgroup) => debug(&format!(
            "create {}: cgroup {}",
            opts.id,
            cgroup.path().display()
        )),
        None => debug(&format!("create {}: no cgroup (rootless)", opts.id)),
    }
    let dir = undo.dir.as_ref().expect("set above");
    let fifo = match mode {
        StartMode::WaitForStart => {
            let path = dir.fifo();
            nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o622))
                .context(|| format!("creating {}", path.display()))?;
            // The umask narrowed the mode; the init opens the FIFO for writing after it became
            // the container's user, which may be anyone (or unmapped, in a user namespace).
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o622))
                .context(|| format!("setting the mode of {}", path.display()))?;
            Some(state::open_fifo_path(&path)?)
        }
        StartMode::Immediately => None,
    };
    let mut record = Record {
        id: opts.id.clone(),
        pid: 0,
        pid_start_time: 0,
        bundle: bundle.path.clone(),
        rootfs: bundle.rootfs.clone(),
        created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        cgroup: undo.cgroup.as_ref().map(|c| c.config().clone()),
        own_pid_ns: bundle.namespaces.creates(LinuxNamespaceType::Pid),
        hooks: bundle.spec.hooks().clone(),
        process: bundle.spec.process().clone(),
        seccomp: linux.seccomp().clone(),
    };
    let terminal = bundle.spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    let console = Console::choose(
        terminal,
        opts.console_socket.as_deref(),
        opts.foreground && mode == StartMode::Immediately,
    )?;
    undo.poststop = record
        .hooks
        .as_ref()
        .and_then(|h| h.poststop().clone())
        .map(|h| (h, record.hook_state(Status::Stopped)));
    let pid = spawn::spawn(
        &SpawnRequest {
            bundle: &bundle,
            record: &record,
            fifo: fifo.as_ref(),
            console_fd: console.container_fd(),
            resources: &resources,
            no_pivot: opts.no_pivot,
            preserve_fds: opts.preserve_fds,
            parent_death_signal: opts.parent_death_signal,
        },
        undo.cgroup.as_mut().map(|c| c.as_mut() as &mut dyn Manager),
    )
    .map_err(|e| match &undo.cgroup {
        Some(cgroup) => memory_limit_too_low(e, cgroup.as_ref(), &bundle.spec),
        None => e,
    })?;
    record.pid = pid.as_raw();
    debug(&format!("create {}: init {pid} is ready", opts.id));
    // Now with the directories `create` made, so that `delete` removes the parents it added.
    record.cgroup = undo.cgroup.as_ref().map(|c| c.config().clone());
    record.pid_start_time = liveness::stat(pid.as_raw()).map(|(_, t)| t).unwrap_or(0);
    let saved = dir.save(&record).and_then(|()| match &opts.pid_file {
        Some(p) => write_pid_file(p, pid),
        None => Ok(()),
    });
    if let Err(e) = saved {
        spawn::abort(pid);
        return Err(e);
    }
    debug(&format!("create {}: state saved", opts.id));
    undo.cgroup = None;
    undo.poststop = None;
    let dir = undo.dir.take().expect("set above");
    Ok(Created {
        dir,
        record,
        pid,
        console: console.into_proxy_end(),
    })
}

/// A start that failed because the container's memory limit ended (or starved) its init during
/// setup: the kernel's OOM killer shows in the cgroup's count, and the runtime itself only sees
/// its channel reset or the init gone. Says so, as crun and runc do; other errors pass through.
fn memory_limit_too_low(
    e: crate::error::Error,
    cgroup: &dyn Manager,
    spec: &oci_spec::runtime::Spec,
) -> crate::error::Error {
    let limit = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit())
        .filter(|&l| l > 0);
    let Some(limit) = limit else { return e };
    let killed = cgroup.oom_kill_count().unwrap_or(0) > 0;
    let starved = e.to_string().contains("ENOMEM")
        && cgroup.stats().is_ok_and(|s| s.memory.usage.failcnt > 0);
    if !killed && !starved {
        return e;
    }
    let how = if killed {
        "the kernel's OOM killer ended its init during setup"
    } else {
        "its init ran out of memory during setup"
    };
    crate::error::Error::invalid(format!(
        "memory limit {limit} too low to start the container: {how} ({e}); raise \
         linux.resources.memory.limit"
    ))
}

/// Writes the pid file atomically, as runc does (containerd and conmon read it at once).
pub(crate) fn write_pid_file(path: &Path, pid: Pid) -> Result<()> {
    let tmp = path.with_extension("mini-run-tmp");
    std::fs::write(&tmp, pid.to_string()).context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).context(|| format!("writing pid file {}", path.display()))
}
