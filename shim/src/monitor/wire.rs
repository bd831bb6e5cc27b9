//! The monitor socket's protocol: JSON lines over a unix stream socket, one request per
//! connection. The client sends one request line; the monitor answers with one line,
//! `{"ok": <value>}` or `{"error": "<message>"}`, and closes. `logs` answers with the log's
//! records, one a line, then `{"eof":true}` (or an `{"error": ...}` line); with `follow` the
//! records go on as the container writes them until it exits.
//!
//! | request | answer |
//! |---|---|
//! | `{"op":"state"}` | [`State`] |
//! | `{"op":"wait"}` | [`ExitRecord`], once the container exited and its output is logged |
//! | `{"op":"kill","signal":15,"all":false}` | `null`; `all` signals every process of its cgroup |
//! | `{"op":"exec","args":["ls"],"env":[],"cwd":null,"user":null,"timeout_ms":5000}` | [`ExecResult`] |
//! | `{"op":"stats"}` | the cgroup's statistics, as the `data` of runc's `events --stats` |
//! | `{"op":"logs","follow":true}` | log records, then `{"eof":true}` |
//!
//! Unknown ops and fields are refused with an error, so a newer agent talking to an older
//! monitor (monitors outlive agent upgrades) gets a clear answer. [`State::protocol`] says
//! which version a monitor speaks.

use super::exit::ExitRecord;
use super::log_record::LogRecord;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The version of this protocol.
pub const PROTOCOL: u32 = 1;

/// The longest request line a monitor accepts.
pub const MAX_REQUEST: usize = 64 * 1024;

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The container's state.
    State,
    /// Wait for the container's exit.
    Wait,
    /// Send a signal.
    Kill {
        /// The signal number.
        signal: i32,
        /// Signal every process of the container's cgroup, not only its init.
        #[serde(default)]
        all: bool,
    },
    /// Run a process in the container and wait for it.
    Exec(ExecSpec),
    /// The container's cgroup statistics.
    Stats,
    /// The log.
    Logs {
        /// Go on with new records until the container exits.
        #[serde(default)]
        follow: bool,
    },
}

/// A process to run in the container. It inherits the container's process settings (user,
/// environment, capabilities, ...); what is given here changes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecSpec {
    /// Command and arguments.
    pub args: Vec<String>,
    /// `KEY=value` entries added to the container's environment.
    #[serde(default)]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// `uid[:gid]` to run as.
    #[serde(default)]
    pub user: Option<String>,
    /// Kill the process (SIGKILL) after this many milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// How an exec'd process ended, with its output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResult {
    /// The exit code, when it exited by itself.
    pub exit_code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// It ran past `timeout_ms` and was killed.
    pub timed_out: bool,
    /// Its standard output (UTF-8, invalid bytes replaced), at most [`EXEC_OUTPUT_MAX`] bytes.
    pub stdout: String,
    /// Its standard error, likewise.
    pub stderr: String,
    /// Output beyond [`EXEC_OUTPUT_MAX`] was cut.
    pub truncated: bool,
}

/// The most output of each stream an [`ExecResult`] carries.
pub const EXEC_OUTPUT_MAX: usize = 64 * 1024;

/// A container's state as its monitor sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The monitor's protocol version ([`PROTOCOL`]).
    pub protocol: u32,
    /// The container id.
    pub id: String,
    /// `created`, `running`, `paused` or `stopped`.
    pub status: mini_run::state::Status,
    /// Host pid of the container's init; 0 once stopped.
    pub pid: i32,
    /// The monitor's pid.
    pub monitor_pid: i32,
    /// When the container's process was started: RFC 3339 UTC.
    pub started_at: String,
    /// The container's cgroup (for reading its usage directly).
    pub cgroup: Option<mini_cgroups::CgroupConfig>,
    /// How it ended, once it did.
    pub exit: Option<ExitRecord>,
    /// Lines of output that could not be logged (full disk).
    pub dropped_log_lines: u64,
}

/// One line of a one-shot answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply<T> {
    /// Success, with the value.
    Ok(T),
    /// Failure, with a message for people.
    Error(String),
}

/// One line of a `logs` answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum LogLine {
    /// The end of the log.
    Eof {
        /// Always true.
        eof: bool,
    },
    /// The monitor failed to go on.
    Error {
        /// Why.
        error: String,
    },
    /// A record.
    Record(LogRecord),
}

/// The line that ends a `logs` answer.
pub const EOF_LINE: &[u8] = b"{\"eof\":true}\n";

/// The JSON line of a reply.
pub fn reply_line<T: Serialize>(reply: &Reply<T>) -> Vec<u8> {
    let mut line = serde_json::to_vec(reply).expect("reply serializes");
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_strictly() {
        let r: Request = serde_json::from_str(r#"{"op":"kill","signal":15}"#).unwrap();
        assert_eq!(
            r,
            Request::Kill {
                signal: 15,
                all: false
            }
        );
        let e: Request =
            serde_json::from_str(r#"{"op":"exec","args":["true"],"timeout_ms":10}"#).unwrap();
        assert!(matches!(
            e,
            Request::Exec(ExecSpec {
                timeout_ms: Some(10),
                ..
            })
        ));
        assert!(serde_json::from_str::<Request>(r#"{"op":"reboot"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"op":"logs","folow":true}"#).is_err());
        assert!(
            serde_json::from_str::<Request>(r#"{"op":"exec","args":["x"],"tty":true}"#).is_err()
        );
    }

    #[test]
    fn replies_and_log_lines_have_their_documented_shape() {
        assert_eq!(reply_line(&Reply::Ok(())), b"{\"ok\":null}\n");
        assert_eq!(
            reply_line::<()>(&Reply::Error("no".into())),
            b"{\"error\":\"no\"}\n"
        );
        let eof: LogLine = serde_json::from_slice(EOF_LINE).unwrap();
        assert!(matches!(eof, LogLine::Eof { eof: true }));
        let rec: LogLine =
            serde_json::from_str(r#"{"timestamp":"t","stream":"stdout","text":"x"}"#).unwrap();
        assert!(matches!(rec, LogLine::Record(r) if r.text == "x"));
    }
}
