//! What a network listener allows its peers, shared by the agent and the scheduler daemon:
//! how many connections may be open at once (in all, unauthenticated, and per peer address),
//! how long a TLS handshake, a request's headers (idle connections included) and a request's
//! body may take, how long an unauthenticated connection may live, and how large a body may
//! be read. An outsider who opens connections and sends nothing, or sends slowly, or answers
//! without end, ties up a bounded number of descriptors and bytes for a bounded time, and a
//! failed `accept` (out of descriptors) never ends a listener.
//!
//! - [`gate`]: counts connections and refuses those over the limits;
//! - [`accept`]: the accept loop (back-off on errors, the gate, one task per connection);
//! - [`http`]: TLS handshake and HTTP/1.1 serving under the timeouts;
//! - [`body`]: reading a body with a size limit and a deadline (servers and clients).

pub mod accept;
pub mod body;
pub mod gate;
pub mod http;

pub use accept::{serve, Accept};
pub use body::{read_body, read_limited, BodyError};
pub use gate::{Gate, Permit};

use std::time::Duration;

/// The limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Unauthenticated connections open at once: on a listener that requires client
    /// certificates, those still in their TLS handshake; on any other, every connection.
    pub max_unauthenticated: usize,
    /// Unauthenticated connections from one peer address (an IPv6 /64 counts as one address).
    pub max_per_peer: usize,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// How long a connection may take to send a request's headers, counted from the end of
    /// the handshake or of the previous answer: an idle connection is closed after it.
    pub idle_timeout: Duration,
    /// How long a request's body may take to arrive once its headers have.
    pub body_timeout: Duration,
    /// How long an unauthenticated connection may stay open whatever it does (a peer that
    /// never reads its answers stalls the connection without being idle); `None`: no limit,
    /// for authenticated connections that follow logs for hours.
    pub max_lifetime: Option<Duration>,
}

/// Default: connections open at once per listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default: unauthenticated connections from one peer address.
pub const DEFAULT_MAX_PER_PEER: usize = 32;
/// Default: TLS handshake timeout.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default: idle (request header) timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default: request body timeout.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// The lifetime of a connection on a listener without client authentication (the join and
/// metrics listeners): long enough for any join and many scrapes.
pub const UNAUTHENTICATED_LIFETIME: Duration = Duration::from_secs(120);

/// The listeners' limits on the command line (`mini-shim agent`/`join`, `mini-sched daemon`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LimitArgs {
    /// Connections open at once, per listener [default: 256, or half the open-file limit
    /// shared among the listeners if that is less].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
    /// Unauthenticated connections open at once from one peer address.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_PER_PEER as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_peer: u32,
    /// How long a TLS handshake may take.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = positive)]
    pub handshake_timeout: Duration,
    /// How long a connection may stay idle (or take to send a request's headers).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = positive)]
    pub idle_timeout: Duration,
    /// How long a request's body may take to arrive.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = positive)]
    pub body_timeout: Duration,
}

/// A duration above zero, at most a day (`10s`, `500ms`).
fn positive(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d.is_zero() || d > Duration::from_secs(86_400) {
        return Err(format!("{text} is not between 1ms and 24h"));
    }
    Ok(d)
}

impl LimitArgs {
    /// The limits for each of `listeners` listeners of one process: the defaults fit half of
    /// its open-file limit (the other half stays for everything else it opens); a
    /// `--max-connections` given explicitly is taken as it is.
    pub fn limits(&self, listeners: usize) -> Limits {
        let max_connections = match self.max_connections {
            Some(n) => n as usize,
            None => {
                let budget = open_file_limit() / 2 / listeners.max(1);
                DEFAULT_MAX_CONNECTIONS.min(budget).max(1)
            }
        };
        Limits {
            max_connections,
            max_unauthenticated: max_connections,
            max_per_peer: (self.max_connections_per_peer as usize).min(max_connections),
            handshake_timeout: self.handshake_timeout,
            idle_timeout: self.idle_timeout,
            body_timeout: self.body_timeout,
            max_lifetime: Some(UNAUTHENTICATED_LIFETIME),
        }
    }
}

impl Default for Limits {
    /// The defaults for one listener, without regard to the open-file limit.
    fn default() -> Limits {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_unauthenticated: DEFAULT_MAX_CONNECTIONS,
            max_per_peer: DEFAULT_MAX_PER_PEER,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_lifetime: Some(UNAUTHENTICATED_LIFETIME),
        }
    }
}

impl Limits {
    /// For a listener that requires client certificates: at most half of its connections
    /// may be unauthenticated, so a flood of handshakes leaves room for the real clients, and
    /// an authenticated connection may live as long as it needs (log follows).
    pub fn authenticated_clients(self) -> Limits {
        Limits {
            max_unauthenticated: (self.max_connections / 2).max(1),
            max_per_peer: self.max_per_peer.min((self.max_connections / 2).max(1)),
            max_lifetime: None,
            ..self
        }
    }

    /// For a listener only root can reach (a unix socket of mode 0600): no lifetime, since
    /// its clients follow logs through it.
    pub fn local_clients(self) -> Limits {
        Limits {
            max_lifetime: None,
            ..self
        }
    }
}

impl std::fmt::Display for Limits {
    /// The limits in a few words, for a listener's log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "at most {} connections, {} unauthenticated, {} per peer address; timeouts: \
             handshake {}, idle {}, body {}",
            self.max_connections,
            self.max_unauthenticated,
            self.max_per_peer,
            humantime::format_duration(self.handshake_timeout),
            humantime::format_duration(self.idle_timeout),
            humantime::format_duration(self.body_timeout),
        )
    }
}

/// The process's soft limit on open files (1024 when it cannot be read).
fn open_file_limit() -> usize {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| usize::try_from(soft).unwrap_or(usize::MAX))
        .unwrap_or(1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        limits: LimitArgs,
    }

    #[test]
    fn defaults_fit_the_open_file_limit() {
        let args = Cli::parse_from(["x"]).limits;
        let limits = args.limits(3);
        assert!(limits.max_connections <= DEFAULT_MAX_CONNECTIONS);
        assert!(limits.max_connections * 3 <= open_file_limit() / 2);
        assert_eq!(limits.idle_timeout, DEFAULT_IDLE_TIMEOUT);
        assert_eq!(limits.handshake_timeout, DEFAULT_HANDSHAKE_TIMEOUT);
        assert_eq!(limits.body_timeout, DEFAULT_BODY_TIMEOUT);
    }

    #[test]
    fn explicit_values_are_taken_as_given() {
        let args = Cli::parse_from([
            "x",
            "--max-connections",
            "5000",
            "--max-connections-per-peer",
            "7",
            "--idle-timeout",
            "2s",
        ])
        .limits;
        let limits = args.limits(3);
        assert_eq!(limits.max_connections, 5000);
        assert_eq!(limits.max_per_peer, 7);
        assert_eq!(limits.idle_timeout, Duration::from_secs(2));
        assert!(Cli::try_parse_from(["x", "--idle-timeout", "0s"]).is_err());
        assert!(Cli::try_parse_from(["x", "--max-connections", "0"]).is_err());
    }

    #[test]
    fn authenticated_listeners_keep_half_for_authenticated_clients() {
        let limits = Limits {
            max_connections: 100,
            ..Limits::default()
        }
        .authenticated_clients();
        assert_eq!(limits.max_unauthenticated, 50);
        assert_eq!(limits.max_per_peer, DEFAULT_MAX_PER_PEER);
        assert_eq!(limits.max_lifetime, None);
    }
}
