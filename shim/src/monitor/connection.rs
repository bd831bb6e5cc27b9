//! One client connection of the monitor socket: reads its request line, then holds it while the
//! answer is pending (`wait`, `exec`) or streams the log to it. Nothing here blocks: the socket
//! is non-blocking and the monitor writes only what the client takes.

use super::exit::ExitRecord;
use super::log_file::{LogCursor, LogWriter};
use super::wire::{self, Reply, Request};
use nix::poll::PollFlags;
use serde::Serialize;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

/// Log history is read while less than this is waiting to be sent.
const LOW_WATER: usize = 64 * 1024;
/// A follower with more than this unsent is too slow and is disconnected.
const MAX_BACKLOG: usize = 8 << 20;

/// Where a connection is in its life.
pub enum Phase {
    /// Reading the request line.
    Request,
    /// Waiting for the container's exit.
    Waiting,
    /// Waiting for an exec'd process.
    Exec,
    /// Streaming the log: from the files while a cursor is set, then live.
    Logs {
        /// Where the history reading is; `None` once caught up (live records are pushed).
        cursor: Option<LogCursor>,
        /// Go on live once the history is sent.
        follow: bool,
    },
    /// The answer is complete: close once it is sent.
    Closing,
}

/// A client connection.
pub struct Conn {
    sock: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    sent: usize,
    phase: Phase,
    /// The client sent EOF (it may still read).
    read_done: bool,
    closed: bool,
}

impl Conn {
    /// Wraps an accepted socket.
    pub fn new(sock: UnixStream) -> std::io::Result<Conn> {
        sock.set_nonblocking(true)?;
        Ok(Conn {
            sock,
            input: Vec::new(),
            output: Vec::new(),
            sent: 0,
            phase: Phase::Request,
            read_done: false,
            closed: false,
        })
    }

    /// The socket, for polling.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// What to poll for.
    pub fn interest(&self) -> PollFlags {
        let mut f = PollFlags::empty();
        if !self.read_done {
            f |= PollFlags::POLLIN;
        }
        if self.pending() > 0 {
            f |= PollFlags::POLLOUT;
        }
        f
    }

    /// Whether the connection is done with and can be dropped.
    pub fn closed(&self) -> bool {
        self.closed
    }

    fn pending(&self) -> usize {
        self.output.len() - self.sent
    }

    /// Handles readiness; returns a complete request (or why it is unreadable).
    pub fn ready(&mut self, revents: PollFlags) -> Option<Result<Request, String>> {
        let mut request = None;
        if revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            && !self.read_done
        {
            request = self.read();
        }
        if revents.contains(PollFlags::POLLOUT) {
            self.flush();
        }
        if revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) && request.is_none() {
            // The client is gone for good: nothing more can reach it.
            self.closed = true;
        }
        request
    }

    fn read(&mut self) -> Option<Result<Request, String>> {
        let mut buf = [0u8; 4096];
        loop {
            match self.sock.read(&mut buf) {
                Ok(0) => {
                    self.read_done = true;
                    let waiting = matches!(self.phase, Phase::Request);
                    if waiting && !self.input.is_empty() {
                        return Some(parse(&std::mem::take(&mut self.input)));
                    }
                    if waiting {
                        self.closed = true;
                    }
                    return None;
                }
                Ok(n) if matches!(self.phase, Phase::Request) => {
                    self.input.extend_from_slice(&buf[..n]);
                    if let Some(end) = self.input.iter().position(|&b| b == b'\n') {
                        let line = self.input[..end].to_vec();
                        self.input.clear();
                        return Some(parse(&line));
                    }
                    if self.input.len() > wire::MAX_REQUEST {
                        self.input.clear();
                        return Some(Err(format!(
                            "request longer than {} bytes",
                            wire::MAX_REQUEST
                        )));
                    }
                }
                // One request per connection: anything after it is ignored.
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.closed = true;
                    return None;
                }
            }
        }
    }

    /// Sends what the socket takes now.
    pub fn flush(&mut self) {
        while self.pending() > 0 {
            match self.sock.write(&self.output[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.closed = true;
                    return;
                }
            }
        }
        if self.pending() == 0 {
            self.output.clear();
            self.sent = 0;
            if matches!(self.phase, Phase::Closing) {
                self.closed = true;
            }
        } else if self.sent > self.output.len() / 2 {
            self.output.drain(..self.sent);
            self.sent = 0;
        }
    }

    /// Queues a one-line answer; the connection closes once it is sent.
    pub fn reply<T: Serialize>(&mut self, reply: &Reply<T>) {
        self.reply_raw(wire::reply_line(reply));
    }

    /// Queues an encoded one-line answer; the connection closes once it is sent.
    pub fn reply_raw(&mut self, line: Vec<u8>) {
        self.output.extend(line);
        self.phase = Phase::Closing;
        self.flush();
    }

    /// Moves to `phase`.
    pub fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
    }

    /// Starts a `logs` answer at the oldest record kept.
    pub fn start_logs(&mut self, log: &LogWriter, follow: bool) {
        self.phase = Phase::Logs {
            cursor: Some(LogCursor::new(log)),
            follow,
        };
    }

    /// Reads log history into the output buffer while it is low; at the end of the history a
    /// follower goes live, anyone else (or everyone, once the container ended) gets the end.
    pub fn pump_history(&mut self, log: &LogWriter, finished: bool) {
        let Phase::Logs {
            cursor: Some(cursor),
            follow,
        } = &mut self.phase
        else {
            return;
        };
        let follow = *follow && !finished;
        while self.output.len() - self.sent < LOW_WATER {
            let start = self.output.len();
            self.output.resize(start + LOW_WATER, 0);
            let r = cursor.read(log, &mut self.output[start..]);
            self.output.truncate(start + *r.as_ref().unwrap_or(&0));
            match r {
                Ok(0) if follow => {
                    self.phase = Phase::Logs {
                        cursor: None,
                        follow: true,
                    };
                    break;
                }
                Ok(0) => {
                    self.output.extend_from_slice(wire::EOF_LINE);
                    self.phase = Phase::Closing;
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    let msg = format!("reading the log: {e}");
                    self.output
                        .extend(wire::reply_line(&Reply::<()>::Error(msg)));
                    self.phase = Phase::Closing;
                    break;
                }
            }
        }
        self.flush();
    }

    /// Gives a live follower a new record; drops a follower that fell too far behind.
    pub fn push_live(&mut self, record: &[u8]) {
        if let Phase::Logs { cursor: None, .. } = self.phase {
            if self.pending() + record.len() > MAX_BACKLOG {
                self.closed = true;
                return;
            }
            self.output.extend_from_slice(record);
            self.flush();
        }
    }

    /// The container ended and its output is logged: answers a `wait`, ends a live follow.
    pub fn container_ended(&mut self, exit: &ExitRecord) {
        match self.phase {
            Phase::Waiting => self.reply(&Reply::Ok(exit.clone())),
            Phase::Logs { cursor: None, .. } => {
                self.output.extend_from_slice(wire::EOF_LINE);
                self.phase = Phase::Closing;
                self.flush();
            }
            _ => {}
        }
    }
}

fn parse(line: &[u8]) -> Result<Request, String> {
    serde_json::from_slice(line).map_err(|e| format!("bad request: {e}"))
}
