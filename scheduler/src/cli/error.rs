//! What can go wrong in a CLI command, worded for the person who typed it.

use std::path::PathBuf;
use std::time::Duration;

/// A failed command. Every variant but [`Error::Invalid`] displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing accepts connections on the socket.
    #[error(
        "cannot reach the scheduler at {}: {source} (is `mini-sched daemon` running?)",
        socket.display()
    )]
    Unreachable {
        /// The socket tried.
        socket: PathBuf,
        /// Why the connection failed.
        source: std::io::Error,
    },
    /// The connection broke during a call.
    #[error("talking to the scheduler at {}: {detail}", socket.display())]
    Transport {
        /// The socket.
        socket: PathBuf,
        /// What broke.
        detail: String,
    },
    /// The daemon refused the request; `message` is its explanation.
    #[error("{}", one_line(message))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error body's code (`not_found`, `conflict`, ...).
        code: String,
        /// The error body's message.
        message: String,
    },
    /// A spec the daemon rejected, with every problem it found.
    #[error("{what} is not a valid workload spec:{}", problems.iter().map(|p| format!("\n  {p}")).collect::<String>())]
    Invalid {
        /// The file (or `stdin`).
        what: String,
        /// One problem per entry.
        problems: Vec<String>,
    },
    /// The daemon's answer is not what the API promises.
    #[error("unreadable answer from the scheduler to {request}: {detail}")]
    Unreadable {
        /// Method and path of the request.
        request: String,
        /// What is wrong with the answer.
        detail: String,
    },
    /// An argument the CLI cannot use.
    #[error("{0}")]
    Usage(String),
    /// A local file could not be read.
    #[error("reading {what}: {source}")]
    Read {
        /// The file (or `stdin`).
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Write(#[from] std::io::Error),
    /// `rollout status` found an instance of the revision that cannot start.
    #[error("rollout of {workload} failed: {message}")]
    RolloutFailed {
        /// The workload.
        workload: String,
        /// Which instance and why.
        message: String,
    },
    /// `rollout status` gave up.
    #[error(
        "rollout of {workload} did not complete within {}: {state}: {message}",
        humantime::format_duration(*after)
    )]
    RolloutTimeout {
        /// The workload.
        workload: String,
        /// The timeout.
        after: Duration,
        /// The last state seen (`stalled`, `progressing`).
        state: String,
        /// The last message seen.
        message: String,
    },
}

/// Joins the lines of a multi-line message with "; ".
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_names_the_socket_and_the_daemon() {
        let e = Error::Unreachable {
            socket: "/run/mini-sched.sock".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        };
        let text = e.to_string();
        assert!(text.starts_with("cannot reach the scheduler at /run/mini-sched.sock: "));
        assert!(
            text.ends_with("(is `mini-sched daemon` running?)"),
            "{text}"
        );
        assert!(!text.contains('\n'));
    }

    #[test]
    fn api_messages_print_on_one_line() {
        let e = Error::Api {
            status: 409,
            code: "conflict".into(),
            message: "first\n  second\n".into(),
        };
        assert_eq!(e.to_string(), "first; second");
    }

    #[test]
    fn invalid_specs_list_one_problem_per_line() {
        let e = Error::Invalid {
            what: "web.yaml".into(),
            problems: vec!["replicas: not a number".into(), "name: empty".into()],
        };
        assert_eq!(
            e.to_string(),
            "web.yaml is not a valid workload spec:\n  replicas: not a number\n  name: empty"
        );
    }
}
