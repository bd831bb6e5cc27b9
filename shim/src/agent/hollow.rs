//! The container backend of a hollow agent (`mini-shim hollow`, see [`crate::hollow`]): the
//! same [`Agent`](super::Agent), routes, TLS and answers as a real one, but its containers
//! are entries in memory. A run is accepted at once and the container runs until it is told
//! to end (stop, kill, delete); its usage grows plausibly with its age (a tenth of a core,
//! 16 MiB of memory or a quarter of its limit). Nothing on the host is touched: no monitor,
//! cgroup, rootfs or network. A frozen agent stops answering (node loss) until thawed.

use super::{Agent, Error};
use crate::protocol::{
    ContainerInfo, ContainerList, ContainerStats, ExecRequest, ExecResult, ExitInfo, LogLine,
    Probe, ProbeResult, RunRequest, Status, StopRequest,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The containers of one hollow agent, and what it claims as its capacity.
pub struct Hollow {
    containers: Mutex<BTreeMap<String, Fake>>,
    frozen: AtomicBool,
    /// Online CPUs it reports.
    pub cpus: u32,
    /// Memory it reports, bytes.
    pub memory_bytes: u64,
}

/// One fake container.
struct Fake {
    request: RunRequest,
    started_at: String,
    started: Instant,
    exit: Option<ExitInfo>,
}

impl Fake {
    fn info(&self, stats: bool) -> ContainerInfo {
        ContainerInfo {
            id: self.request.id.clone(),
            status: if self.exit.is_some() {
                Status::Exited
            } else {
                Status::Running
            },
            pid: self.exit.is_none().then_some(1),
            started_at: Some(self.started_at.clone()),
            exit: self.exit.clone(),
            monitor_alive: self.exit.is_none(),
            reason: None,
            labels: self.request.labels.clone(),
            address: None,
            stats: (stats && self.exit.is_none()).then(|| self.stats()),
            image_digest: None,
        }
    }

    /// Plausible usage for its age: a tenth of a core, a working set of 16 MiB or a quarter
    /// of its memory limit.
    fn stats(&self) -> ContainerStats {
        let age = self.started.elapsed();
        let cpu = age.as_nanos() as u64 / 10;
        let limit = self.request.resources.memory_bytes;
        let memory = limit.map_or(16 << 20, |l| l / 4);
        ContainerStats {
            sampled_at: super::containers::now(),
            cpu_usage_ns: cpu,
            cpu_user_ns: cpu / 10 * 9,
            cpu_system_ns: cpu / 10,
            cpu_periods: age.as_millis() as u64 / 100,
            cpu_throttled_periods: 0,
            cpu_throttled_ns: 0,
            memory_bytes: memory + (4 << 20),
            memory_working_set_bytes: memory,
            memory_peak_bytes: memory + (4 << 20),
            memory_limit_bytes: limit,
            oom_kills: 0,
            pids: 1,
            pids_limit: self.request.resources.pids,
            io_read_bytes: 0,
            io_write_bytes: 0,
            disk_bytes: 4096,
        }
    }

    fn end(&mut self, signal: nix::sys::signal::Signal) {
        if self.exit.is_none() {
            self.exit = Some(ExitInfo {
                code: 128 + signal as i32,
                signal: Some(signal.as_str().to_string()),
                oom_killed: false,
                finished_at: super::containers::now(),
            });
        }
    }
}

impl Hollow {
    /// A hollow backend reporting `cpus` and `memory_bytes` as its capacity.
    pub fn new(cpus: u32, memory_bytes: u64) -> Hollow {
        Hollow {
            containers: Mutex::default(),
            frozen: AtomicBool::new(false),
            cpus,
            memory_bytes,
        }
    }

    /// Freezes (no answers at all) or thaws the agent.
    pub fn set_frozen(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::Relaxed);
    }

    /// Whether it is frozen.
    pub fn frozen(&self) -> bool {
        self.frozen.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Fake>> {
        self.containers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many containers it has, and how many of them run.
    pub fn counts(&self) -> (u32, u32) {
        let all = self.lock();
        let running = all.values().filter(|f| f.exit.is_none()).count();
        (all.len() as u32, running as u32)
    }

    fn with<T>(
        &self,
        agent: &Agent,
        id: &str,
        f: impl FnOnce(&mut Fake) -> Result<T, Error>,
    ) -> Result<T, Error> {
        match self.lock().get_mut(id) {
            Some(fake) => f(fake),
            None => Err(Error::NotFound(format!(
                "no container {id:?} on node {}",
                agent.config.node
            ))),
        }
    }
}

impl Agent {
    /// The hollow backend, when this agent is hollow.
    pub fn hollow(&self) -> Option<&Hollow> {
        self.hollow.as_ref()
    }

    pub(super) fn hollow_list(&self, h: &Hollow, stats: bool) -> ContainerList {
        ContainerList {
            containers: h.lock().values().map(|f| f.info(stats)).collect(),
        }
    }

    pub(super) fn hollow_info(&self, h: &Hollow, id: &str) -> Result<ContainerInfo, Error> {
        h.with(self, id, |f| Ok(f.info(false)))
    }

    pub(super) fn hollow_run(
        &self,
        h: &Hollow,
        request: RunRequest,
    ) -> Result<ContainerInfo, Error> {
        crate::protocol::validate_id(&request.id).map_err(Error::BadRequest)?;
        let mut all = h.lock();
        if all.contains_key(&request.id) {
            return Err(Error::Conflict(format!(
                "container {:?} already exists on node {}; delete it first or choose another id",
                request.id, self.config.node
            )));
        }
        let fake = Fake {
            started_at: super::containers::now(),
            started: Instant::now(),
            exit: None,
            request,
        };
        let info = fake.info(false);
        all.insert(info.id.clone(), fake);
        Ok(info)
    }

    pub(super) fn hollow_stop(
        &self,
        h: &Hollow,
        id: &str,
        request: &StopRequest,
    ) -> Result<ContainerInfo, Error> {
        let signal =
            super::containers::parse_signal(request.signal.as_deref().unwrap_or("SIGTERM"))?;
        h.with(self, id, |f| {
            f.end(signal);
            Ok(f.info(false))
        })
    }

    pub(super) fn hollow_kill(&self, h: &Hollow, id: &str, signal: &str) -> Result<(), Error> {
        let signal = super::containers::parse_signal(signal)?;
        h.with(self, id, |f| {
            if f.exit.is_some() {
                return Err(Error::Conflict(format!("container {id:?} is not running")));
            }
            f.end(signal);
            Ok(())
        })
    }

    pub(super) fn hollow_delete(&self, h: &Hollow, id: &str, force: bool) -> Result<(), Error> {
        let mut all = h.lock();
        match all.get(id) {
            None => Err(Error::NotFound(format!(
                "no container {id:?} on node {}",
                self.config.node
            ))),
            Some(f) if f.exit.is_none() && !force => Err(Error::Conflict(format!(
                "container {id:?} is running; stop it first or delete with force"
            ))),
            Some(_) => {
                all.remove(id);
                Ok(())
            }
        }
    }

    /// Waits (polling) until the fake container has ended.
    pub(super) async fn hollow_wait(&self, h: &Hollow, id: &str) -> Result<ContainerInfo, Error> {
        loop {
            let info = self.hollow_info(h, id)?;
            if info.status != Status::Running {
                return Ok(info);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(super) fn hollow_stats(&self, h: &Hollow, id: &str) -> Result<ContainerStats, Error> {
        h.with(self, id, |f| {
            if f.exit.is_some() {
                return Err(Error::Conflict(format!(
                    "container {id:?} has no cgroup to read; it is not running"
                )));
            }
            Ok(f.stats())
        })
    }

    pub(super) fn hollow_exec(
        &self,
        h: &Hollow,
        id: &str,
        _request: &ExecRequest,
    ) -> Result<ExecResult, Error> {
        self.hollow_stats(h, id)?;
        Ok(ExecResult {
            exit_code: 0,
            stdout: String::new(),
            stderr: String::new(),
            timed_out: false,
        })
    }

    pub(super) fn hollow_probe(
        &self,
        h: &Hollow,
        id: &str,
        _probe: &Probe,
    ) -> Result<ProbeResult, Error> {
        self.hollow_stats(h, id)?;
        Ok(ProbeResult {
            healthy: true,
            detail: "hollow node: every probe passes".into(),
        })
    }

    /// An empty log (the channel's sender is dropped at once).
    pub(super) fn hollow_logs(
        &self,
        h: &Hollow,
        id: &str,
    ) -> Result<tokio::sync::mpsc::Receiver<LogLine>, Error> {
        self.hollow_info(h, id)?;
        Ok(tokio::sync::mpsc::channel(1).1)
    }
}
