//! The monitor's event loop: one thread, one `poll` over the signalfd, the container's output
//! pipes, the socket and its connections. Output is logged as it arrives; the container's exit
//! is recorded the moment it is reaped; requests are answered without ever blocking on a
//! client (a log follower that falls too far behind is disconnected instead).
//!
//! After the container exits, the monitor records the exit, removes the container from the
//! runtime (its cgroup and leftover processes), reads what is left in the pipes (at most
//! [`DRAIN`]), then answers every `wait`, ends every `logs` stream, closes its socket and
//! exits. From then on the container directory alone tells its story ([`super::Client`] reads
//! it when no monitor answers).

use super::connection::{Conn, Phase};
use super::diag;
use super::exec::ExecJob;
use super::exit::ExitRecord;
use super::log_record::{self, LineSplitter, Stream};
use super::startup::Monitor;
use super::wire::{self, Reply, Request, State};
use super::{layout, Error};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// How long the monitor keeps reading the container's pipes after its exit (a process that
/// escaped the container may hold them open).
pub const DRAIN: Duration = Duration::from_secs(2);
/// How long the monitor lets clients take their last answers after the container ended.
const LINGER: Duration = Duration::from_secs(10);
/// Bytes read from a pipe per wakeup.
const CHUNK: usize = 64 * 1024;

/// How a request is answered.
enum Outcome {
    /// At once, with this line.
    Reply(Vec<u8>),
    /// When the container has exited.
    Wait,
    /// With the log (and, if true, what follows).
    Logs(bool),
    /// When this process has ended.
    Exec(ExecJob),
}

/// What a poll entry stands for.
#[derive(Clone, Copy)]
enum Token {
    Signals,
    Listener,
    Output(usize),
    Conn(u64),
    ExecOutput(u64, usize),
}

/// The running monitor.
pub struct Server {
    m: Monitor,
    splitters: [LineSplitter; 2],
    conns: BTreeMap<u64, Conn>,
    execs: BTreeMap<u64, ExecJob>,
    next_conn: u64,
    exit: Option<ExitRecord>,
    drain_until: Option<Instant>,
    finished: Option<Instant>,
    buf: Vec<u8>,
}

/// Serves until the container has exited and every client had its answer.
pub fn serve(m: Monitor) {
    let mut s = Server {
        m,
        splitters: Default::default(),
        conns: BTreeMap::new(),
        execs: BTreeMap::new(),
        next_conn: 0,
        exit: None,
        drain_until: None,
        finished: None,
        buf: vec![0; CHUNK],
    };
    s.run();
}

impl Server {
    fn run(&mut self) {
        loop {
            self.pump_logs();
            self.check_timers();
            if let Some(done) = self.finished {
                if self.conns.is_empty() || done.elapsed() > LINGER {
                    break;
                }
            }
            let (tokens, mut fds) = self.poll_set();
            let timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()) + Duration::from_millis(1))
                .map_or(PollTimeout::NONE, |d| {
                    PollTimeout::try_from(d).unwrap_or(PollTimeout::MAX)
                });
            match nix::poll::poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    diag(&format!("poll: {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            let ready: Vec<(Token, PollFlags)> = tokens
                .into_iter()
                .zip(
                    fds.iter()
                        .map(|f| f.revents().unwrap_or(PollFlags::empty())),
                )
                .filter(|(_, r)| !r.is_empty())
                .collect();
            drop(fds);
            for (token, revents) in ready {
                self.handle(token, revents);
            }
        }
        let _ = std::fs::remove_file(self.m.dir.join(layout::SOCKET));
        let _ = std::fs::remove_file(self.m.dir.join(layout::PINNED_BINARY));
    }

    fn poll_set(&self) -> (Vec<Token>, Vec<PollFd<'_>>) {
        let mut tokens = vec![Token::Signals];
        let mut fds = vec![PollFd::new(self.m.signals.as_fd(), PollFlags::POLLIN)];
        if self.finished.is_none() {
            tokens.push(Token::Listener);
            fds.push(PollFd::new(self.m.listener.as_fd(), PollFlags::POLLIN));
        }
        for (i, fd) in self.m.output.iter().enumerate() {
            if let Some(fd) = fd {
                tokens.push(Token::Output(i));
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
        }
        for (&id, job) in &self.execs {
            for (i, fd) in job.output_fds() {
                tokens.push(Token::ExecOutput(id, i));
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
        }
        for (&id, c) in &self.conns {
            tokens.push(Token::Conn(id));
            fds.push(PollFd::new(c.fd(), c.interest()));
        }
        (tokens, fds)
    }

    fn next_deadline(&self) -> Option<Instant> {
        let execs = self.execs.values().filter_map(ExecJob::deadline);
        let linger = self.finished.map(|f| f + LINGER);
        execs.chain(self.drain_until).chain(linger).min()
    }

    fn handle(&mut self, token: Token, revents: PollFlags) {
        match token {
            Token::Signals => self.signals(),
            Token::Listener => self.accept(),
            Token::Output(i) => self.read_output(i),
            Token::ExecOutput(id, i) => {
                if let Some(job) = self.execs.get_mut(&id) {
                    job.read_output(i, &mut self.buf);
                }
                self.finish_exec(id);
            }
            Token::Conn(id) => self.conn_ready(id, revents),
        }
    }

    fn signals(&mut self) {
        while let Ok(Some(info)) = self.m.signals.read_signal() {
            if info.ssi_signo != libc::SIGCHLD as u32 {
                let name =
                    Signal::try_from(info.ssi_signo as i32).map_or("a signal", |s| s.as_str());
                diag(&format!(
                    "ignoring {name} from pid {}: the monitor ends with its container; stop the container instead",
                    info.ssi_pid
                ));
            }
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    let Some(pid) = status.pid() else { continue };
                    if pid == self.m.pid {
                        self.init_exited(status);
                    } else if let Some((&id, job)) =
                        self.execs.iter_mut().find(|(_, j)| j.pid() == pid)
                    {
                        job.exited(status);
                        self.finish_exec(id);
                    }
                    // Anything else is an orphan the monitor adopted as subreaper: reaped.
                }
            }
        }
    }

    /// Records the exit at once (durably), then removes the container from the runtime.
    fn init_exited(&mut self, status: WaitStatus) {
        let oom_killed = self
            .m
            .cgroup
            .as_ref()
            .and_then(|c| mini_cgroups::open(c).ok())
            .and_then(|m| m.oom_kill_count().ok())
            .is_some_and(|n| n > 0);
        let mut record = ExitRecord::from_wait(status, oom_killed);
        record.dropped_log_lines = self.m.log.dropped_lines();
        let reserved = match self.m.reservation.take() {
            Some(r) => r.commit(&record),
            None => super::exit::write(&self.m.dir, &record),
        };
        if let Err(e) = reserved {
            diag(&format!("recording the exit in the reserved space: {e}"));
            if let Err(e) = super::exit::write(&self.m.dir, &record) {
                diag(&format!("recording the exit: {e}"));
            }
        }
        self.exit = Some(record);
        let info = &self.m.info;
        if let Err(e) = mini_run::container::delete::delete(&info.runtime_root, &info.id, true) {
            diag(&format!("removing the container from the runtime: {e}"));
        }
        self.drain_until = Some(Instant::now() + DRAIN);
        self.maybe_finish();
    }

    fn read_output(&mut self, i: usize) {
        let Some(fd) = &self.m.output[i] else { return };
        let n = match nix::unistd::read(fd, &mut self.buf) {
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return,
            Ok(n) => n,
            Err(e) => {
                diag(&format!("reading the container's output: {e}"));
                0
            }
        };
        let stream = [Stream::Stdout, Stream::Stderr][i];
        let now = super::exit::now();
        let mut records = Vec::new();
        let mut emit = |text: &[u8], partial: bool| {
            records.push(log_record::encode(&now, stream, text, partial))
        };
        if n == 0 {
            self.splitters[i].finish(&mut emit);
            self.m.output[i] = None;
        } else {
            self.splitters[i].feed(&self.buf[..n], &mut emit);
        }
        for r in records {
            self.log(&r);
        }
        if n == 0 {
            self.maybe_finish();
        }
    }

    /// Writes a record to the log and to every live follower.
    fn log(&mut self, record: &[u8]) {
        self.m.log.append(record);
        for c in self.conns.values_mut() {
            c.push_live(record);
        }
    }

    fn check_timers(&mut self) {
        let now = Instant::now();
        for job in self.execs.values_mut() {
            if job.deadline().is_some_and(|d| d <= now) {
                job.time_out();
            }
        }
        let ids: Vec<u64> = self.execs.keys().copied().collect();
        for id in ids {
            self.finish_exec(id);
        }
        if self.drain_until.is_some_and(|d| d <= now) {
            self.maybe_finish();
        }
    }

    /// Ends the monitor's service once the exit is recorded and the output drained.
    fn maybe_finish(&mut self) {
        if self.finished.is_some() || self.exit.is_none() {
            return;
        }
        let drained = self.m.output.iter().all(Option::is_none);
        let late = self.drain_until.is_some_and(|d| d <= Instant::now());
        if !drained && !late {
            return;
        }
        for i in 0..2 {
            if self.m.output[i].take().is_some() {
                let now = super::exit::now();
                let stream = [Stream::Stdout, Stream::Stderr][i];
                let mut records = Vec::new();
                self.splitters[i]
                    .finish(|t, p| records.push(log_record::encode(&now, stream, t, p)));
                for r in records {
                    self.log(&r);
                }
            }
        }
        self.finished = Some(Instant::now());
        let exit = self.exit.clone().expect("checked above");
        for (id, job) in std::mem::take(&mut self.execs) {
            job.abandon();
            if let Some(c) = self.conns.get_mut(&id) {
                c.reply(&Reply::<()>::Error(
                    "the container exited during the exec".into(),
                ));
            }
        }
        for c in self.conns.values_mut() {
            c.container_ended(&exit);
        }
        let _ = std::fs::remove_file(self.m.dir.join(layout::SOCKET));
    }

    fn accept(&mut self) {
        loop {
            match self.m.listener.accept() {
                Ok((sock, _)) => match Conn::new(sock) {
                    Ok(c) => {
                        self.conns.insert(self.next_conn, c);
                        self.next_conn += 1;
                    }
                    Err(e) => diag(&format!("configuring a connection: {e}")),
                },
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    diag(&format!("accepting a connection: {e}"));
                    return;
                }
            }
        }
    }

    fn conn_ready(&mut self, id: u64, revents: PollFlags) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let request = c.ready(revents);
        if let Some(request) = request {
            self.request(id, request);
        }
        if self.conns.get(&id).is_some_and(Conn::closed) {
            self.conns.remove(&id);
            if let Some(job) = self.execs.remove(&id) {
                // The caller went away: the process it asked for goes too.
                job.abandon();
            }
        }
    }

    /// Gives history to `logs` readers while their output buffers are low.
    fn pump_logs(&mut self) {
        let finished = self.finished.is_some();
        for c in self.conns.values_mut() {
            c.pump_history(&self.m.log, finished);
        }
        self.conns.retain(|_, c| !c.closed());
    }

    fn request(&mut self, id: u64, request: Result<Request, String>) {
        let outcome = match request {
            Ok(r) => self.answer(id, r),
            Err(e) => Outcome::Reply(wire::reply_line(&Reply::<()>::Error(e))),
        };
        let Some(c) = self.conns.get_mut(&id) else {
            if let Outcome::Exec(job) = outcome {
                job.abandon();
            }
            return;
        };
        match outcome {
            Outcome::Reply(line) => c.reply_raw(line),
            Outcome::Wait => c.set_phase(Phase::Waiting),
            Outcome::Logs(follow) => c.start_logs(&self.m.log, follow),
            Outcome::Exec(job) => {
                c.set_phase(Phase::Exec);
                self.execs.insert(id, job);
            }
        }
    }

    /// What to do with a request.
    fn answer(&mut self, id: u64, request: Request) -> Outcome {
        fn line<T: serde::Serialize>(r: Result<T, String>) -> Outcome {
            Outcome::Reply(match r {
                Ok(v) => wire::reply_line(&Reply::Ok(v)),
                Err(e) => wire::reply_line(&Reply::<()>::Error(e)),
            })
        }
        let info = &self.m.info;
        if self.exit.is_some()
            && matches!(
                request,
                Request::Kill { .. } | Request::Stats | Request::Exec(_)
            )
        {
            return line::<()>(Err(Error::NotRunning(info.id.clone()).to_string()));
        }
        match request {
            Request::State => line(Ok(self.state())),
            Request::Wait => match (&self.exit, self.finished) {
                (Some(exit), Some(_)) => line(Ok(exit.clone())),
                _ => Outcome::Wait,
            },
            Request::Logs { follow } => Outcome::Logs(follow),
            Request::Kill { signal, all } => line(
                Signal::try_from(signal)
                    .map_err(|_| format!("unknown signal {signal}: use a number from 1 to 31"))
                    .and_then(|s| {
                        mini_run::container::kill::kill(&info.runtime_root, &info.id, s as i32, all)
                            .map_err(|e| e.to_string())
                    }),
            ),
            Request::Stats => line(
                self.m
                    .cgroup
                    .as_ref()
                    .ok_or_else(|| "the container has no cgroup".to_string())
                    .and_then(|cfg| {
                        mini_cgroups::open(cfg)
                            .and_then(|m| m.stats())
                            .map_err(|e| e.to_string())
                    }),
            ),
            Request::Exec(spec) => {
                match ExecJob::start(&info.runtime_root, &info.id, &self.m.dir, id, &spec) {
                    Ok(job) => Outcome::Exec(job),
                    Err(e) => line::<()>(Err(e.to_string())),
                }
            }
        }
    }

    fn finish_exec(&mut self, id: u64) {
        if !self.execs.get(&id).is_some_and(ExecJob::done) {
            return;
        }
        let job = self.execs.remove(&id).expect("checked");
        if let Some(c) = self.conns.get_mut(&id) {
            c.reply(&Reply::Ok(job.result()));
        }
    }

    fn state(&self) -> State {
        let status = if self.exit.is_some() {
            mini_run::state::Status::Stopped
        } else {
            let frozen = self
                .m
                .cgroup
                .as_ref()
                .and_then(|c| mini_cgroups::open(c).ok())
                .and_then(|m| m.is_frozen().ok())
                .unwrap_or(false);
            if frozen {
                mini_run::state::Status::Paused
            } else {
                mini_run::state::Status::Running
            }
        };
        State {
            protocol: wire::PROTOCOL,
            id: self.m.info.id.clone(),
            status,
            pid: if self.exit.is_some() {
                0
            } else {
                self.m.pid.as_raw()
            },
            monitor_pid: self.m.info.monitor_pid,
            started_at: self.m.started_at.clone(),
            cgroup: self.m.cgroup.clone(),
            exit: self.exit.clone(),
            dropped_log_lines: self.m.log.dropped_lines(),
        }
    }
}
