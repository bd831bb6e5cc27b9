//! The agent's side of the monitor socket, on tokio. Every call opens its own connection, so
//! one `Client` serves any number of concurrent calls (a `wait` and a log follow beside state
//! polls). When no monitor answers because the container ended and its monitor exited, the
//! client answers from the directory: `state` and `wait` from `exit.json`, `logs` from the
//! files. A monitor that died without an exit record yields [`Error::MonitorGone`].
//!
//! Every call but `wait` and `logs` (which last as long as the container) has a deadline:
//! [`CALL_TIMEOUT`] for `state`, `kill` and `stats`, the exec's own timeout plus
//! [`CALL_TIMEOUT`] for `exec`. A monitor that does not answer in time (stopped, or stuck)
//! yields [`Error::Timeout`], so no agent request waits on it for ever.

use super::error::{Error, Result};
use super::exit::{self, ExitRecord};
use super::layout::{self, SocketPath};
use super::log_record::LogRecord;
use super::wire::{ExecResult, ExecSpec, LogLine, Reply, Request, State, PROTOCOL};
use super::MonitorInfo;
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;

/// How long a monitor may take to answer `state`, `kill` or `stats` (the agent's list and the
/// scheduler's heartbeat wait on these).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of one container's monitor.
#[derive(Debug, Clone)]
pub struct Client {
    dir: PathBuf,
}

/// Why a call got no answer from a monitor.
enum Unanswered {
    /// No monitor listens (or it closed the connection without an answer).
    Gone,
    /// Something else went wrong.
    Failed(Error),
}

impl Client {
    /// A client of the monitor of the container in `dir`, whether or not it still runs.
    pub fn new(dir: &Path) -> Client {
        Client {
            dir: dir.to_path_buf(),
        }
    }

    /// The container directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn connect(&self) -> Result<UnixStream, Unanswered> {
        let short = SocketPath::new(&self.dir, layout::SOCKET).map_err(Unanswered::Failed)?;
        match UnixStream::connect(short.path()).await {
            Ok(s) => Ok(s),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound
                        | std::io::ErrorKind::ConnectionRefused
                        // A monitor closing its socket as it exits resets pending connections.
                        | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                Err(Unanswered::Gone)
            }
            Err(e) => Err(Unanswered::Failed(Error::io(
                format!("connecting to {}", self.dir.join(layout::SOCKET).display()),
                e,
            ))),
        }
    }

    /// Sends `request` and reads the first answer line (`None`: the monitor closed first).
    async fn send(&self, request: &Request) -> Result<Lines<BufReader<UnixStream>>, Unanswered> {
        let mut sock = self.connect().await?;
        let mut line = serde_json::to_vec(request).expect("request serializes");
        line.push(b'\n');
        sock.write_all(&line).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                Unanswered::Gone
            }
            _ => Unanswered::Failed(Error::io("sending a request to the monitor", e)),
        })?;
        Ok(BufReader::new(sock).lines())
    }

    /// [`Client::call`] with a deadline for the whole exchange (`None`: as long as it takes).
    async fn call_within<T: DeserializeOwned>(
        &self,
        request: &Request,
        timeout: Option<Duration>,
    ) -> Result<T, Unanswered> {
        let Some(timeout) = timeout else {
            return self.call(request).await;
        };
        tokio::time::timeout(timeout, self.call(request))
            .await
            .unwrap_or_else(|_| {
                Err(Unanswered::Failed(Error::Timeout(
                    self.dir.clone(),
                    timeout,
                )))
            })
    }

    async fn call<T: DeserializeOwned>(&self, request: &Request) -> Result<T, Unanswered> {
        let mut lines = self.send(request).await?;
        let line = match lines.next_line().await {
            Ok(Some(l)) => l,
            Ok(None) => return Err(Unanswered::Gone),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Err(Unanswered::Gone)
            }
            Err(e) => {
                return Err(Unanswered::Failed(Error::io(
                    "reading the monitor's answer",
                    e,
                )))
            }
        };
        match serde_json::from_str::<Reply<T>>(&line) {
            Ok(Reply::Ok(v)) => Ok(v),
            Ok(Reply::Error(e)) => Err(Unanswered::Failed(Error::Remote(e))),
            Err(e) => Err(Unanswered::Failed(Error::Invalid(format!(
                "unreadable answer from the monitor ({e}): {line}"
            )))),
        }
    }

    /// The exit record a gone monitor left.
    fn left_record(&self) -> Result<ExitRecord> {
        exit::read(&self.dir)?.ok_or_else(|| Error::MonitorGone(self.dir.clone()))
    }

    /// Fails a call that only a running container can answer.
    fn not_running<T>(&self, u: Unanswered) -> Result<T> {
        match u {
            Unanswered::Failed(e) => Err(e),
            Unanswered::Gone => {
                self.left_record()?;
                let id = MonitorInfo::read(&self.dir)
                    .map(|i| i.id)
                    .unwrap_or_default();
                Err(Error::NotRunning(id))
            }
        }
    }

    /// The container's state.
    pub async fn state(&self) -> Result<State> {
        match self.call_within(&Request::State, Some(CALL_TIMEOUT)).await {
            Ok(s) => Ok(s),
            Err(Unanswered::Failed(e)) => Err(e),
            Err(Unanswered::Gone) => {
                let exit = self.left_record()?;
                // A monitor that failed early may not have written monitor.json.
                let info = MonitorInfo::read(&self.dir).ok();
                let name = self.dir.file_name().unwrap_or_default().to_string_lossy();
                Ok(State {
                    protocol: PROTOCOL,
                    id: info
                        .as_ref()
                        .map_or_else(|| name.into_owned(), |i| i.id.clone()),
                    status: mini_run::state::Status::Stopped,
                    pid: 0,
                    monitor_pid: info.as_ref().map_or(0, |i| i.monitor_pid),
                    started_at: info.map(|i| i.started_at).unwrap_or_default(),
                    cgroup: None,
                    dropped_log_lines: exit.dropped_log_lines,
                    exit: Some(exit),
                })
            }
        }
    }

    /// Waits for the container to exit (and its output to be logged).
    pub async fn wait(&self) -> Result<ExitRecord> {
        match self.call(&Request::Wait).await {
            Ok(r) => Ok(r),
            Err(Unanswered::Failed(e)) => Err(e),
            Err(Unanswered::Gone) => self.left_record(),
        }
    }

    /// Sends signal number `signal` to the container's init, or with `all` to every process of
    /// its cgroup.
    pub async fn kill(&self, signal: i32, all: bool) -> Result<()> {
        self.call_within(&Request::Kill { signal, all }, Some(CALL_TIMEOUT))
            .await
            .or_else(|u| self.not_running(u))
    }

    /// Runs a process in the container and waits for it.
    pub async fn exec(&self, spec: &ExecSpec) -> Result<ExecResult> {
        let timeout = spec
            .timeout_ms
            .map(|ms| Duration::from_millis(ms).saturating_add(CALL_TIMEOUT));
        self.call_within(&Request::Exec(spec.clone()), timeout)
            .await
            .or_else(|u| self.not_running(u))
    }

    /// The container's cgroup statistics (the `data` object of runc's `events --stats`).
    pub async fn stats(&self) -> Result<serde_json::Value> {
        self.call_within(&Request::Stats, Some(CALL_TIMEOUT))
            .await
            .or_else(|u| self.not_running(u))
    }

    /// The container's log from the oldest record kept; with `follow`, new records until the
    /// container exits.
    pub async fn logs(&self, follow: bool) -> Result<LogStream> {
        match self.send(&Request::Logs { follow }).await {
            Ok(lines) => Ok(LogStream {
                source: Source::Monitor(lines),
            }),
            Err(Unanswered::Failed(e)) => Err(e),
            Err(Unanswered::Gone) => {
                let log_dir = MonitorInfo::read(&self.dir)
                    .map(|i| i.log_dir)
                    .unwrap_or_else(|_| self.dir.clone());
                let files = layout::log_files(&log_dir)
                    .into_iter()
                    .map(|n| layout::log_path(&log_dir, n))
                    .collect();
                Ok(LogStream {
                    source: Source::Files(files, None),
                })
            }
        }
    }
}

/// The records of a `logs` call, oldest first.
pub struct LogStream {
    source: Source,
}

enum Source {
    Monitor(Lines<BufReader<UnixStream>>),
    Files(VecDeque<PathBuf>, Option<Lines<BufReader<tokio::fs::File>>>),
    Done,
}

impl LogStream {
    /// The next record; `None` at the end of the log (with `follow`: once the container
    /// exited and all its output was delivered).
    pub async fn next(&mut self) -> Option<Result<LogRecord>> {
        let item = match &mut self.source {
            Source::Done => return None,
            Source::Monitor(lines) => next_from_monitor(lines).await,
            Source::Files(paths, current) => next_from_files(paths, current).await,
        };
        if !matches!(item, Some(Ok(_))) {
            self.source = Source::Done;
        }
        item
    }
}

async fn next_from_monitor(lines: &mut Lines<BufReader<UnixStream>>) -> Option<Result<LogRecord>> {
    let line =
        match lines.next_line().await {
            Ok(Some(l)) => l,
            Ok(None) => return Some(Err(Error::Remote(
                "the log stream ended early: the monitor died, or the reader fell too far behind"
                    .into(),
            ))),
            Err(e) => return Some(Err(Error::io("reading the log stream", e))),
        };
    match serde_json::from_str::<LogLine>(&line) {
        Ok(LogLine::Record(r)) => Some(Ok(r)),
        Ok(LogLine::Eof { .. }) => None,
        Ok(LogLine::Error { error }) => Some(Err(Error::Remote(error))),
        Err(e) => Some(Err(Error::Invalid(format!(
            "unreadable log line from the monitor ({e}): {line}"
        )))),
    }
}

async fn next_from_files(
    paths: &mut VecDeque<PathBuf>,
    current: &mut Option<Lines<BufReader<tokio::fs::File>>>,
) -> Option<Result<LogRecord>> {
    loop {
        if current.is_none() {
            let path = paths.pop_front()?;
            match tokio::fs::File::open(&path).await {
                Ok(f) => *current = Some(BufReader::new(f).lines()),
                // Removed meanwhile (by an agent deleting the container): nothing to read.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Some(Err(Error::io(format!("opening {}", path.display()), e))),
            }
        }
        let lines = current.as_mut().expect("set above");
        match lines.next_line().await {
            Ok(Some(line)) => {
                return Some(
                    serde_json::from_str(&line)
                        .map_err(|e| Error::Invalid(format!("unreadable log line ({e}): {line}"))),
                )
            }
            Ok(None) => *current = None,
            Err(e) => return Some(Err(Error::io("reading the log", e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: T) {}

    #[test]
    fn calls_and_streams_can_move_between_tokio_threads() {
        let c = Client::new(Path::new("/nonexistent"));
        assert_send(c.state());
        assert_send(c.wait());
        assert_send(c.kill(9, false));
        assert_send(c.exec(&ExecSpec::default()));
        assert_send(c.stats());
        assert_send(c.logs(true));
        let s = LogStream {
            source: Source::Done,
        };
        assert_send(s);
    }

    #[tokio::test]
    async fn a_directory_without_monitor_or_record_is_reported_gone() {
        let dir = std::env::temp_dir().join(format!("mini-shim-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = Client::new(&dir);
        assert!(matches!(c.wait().await, Err(Error::MonitorGone(_))));
        assert!(matches!(c.kill(9, false).await, Err(Error::MonitorGone(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
