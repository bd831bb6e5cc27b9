//! The cluster's identities and how agents join it (the scheduler's side; the agent's is
//! `mini_shim::join`).
//!
//! `mini-sched init` makes the cluster in a state directory `D` ([`init_cluster`]):
//!
//! - `D/pki/ca.pem`, `ca-key.pem`: the cluster CA ([`ClusterPki`]);
//! - `D/pki/scheduler.pem`, `-key.pem`: the client certificate the daemon calls agents with;
//! - `D/pki/admin.pem`, `-key.pem`: a spare client certificate (curl, debugging);
//! - `D/pki/join-server.pem`, `-key.pem`: the join listener's server certificate;
//! - `D/cluster.json`: the address agents join through;
//! - `D/tokens.json`: the join tokens, hashed, with their expiry ([`Tokens`]).
//!
//! An agent joins through the join listener ([`serve`]) with a token: it checks the CA it is
//! sent against the token's hash, and gets a server certificate for its own key signed by the
//! CA ([`ClusterPki::sign_agent_csr`]); the daemon's [`Register`] callback records the node.

mod pki;
mod server;
mod tokens;

pub use mini_shim::join::{JoinRequest, JoinResponse};
pub use pki::ClusterPki;
pub use server::{serve, JoinServer, Register, RegisterError, Registration};
pub use tokens::{TokenError, TokenInfo, Tokens};

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// How long a token made without `--ttl` stays valid.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// The join listener's default address (`mini-sched daemon --join-listen`).
pub const DEFAULT_JOIN_LISTEN: &str = "0.0.0.0:7440";

/// What went wrong with the cluster's files or certificates.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `init` found a cluster already there.
    #[error("{0}")]
    Exists(String),
    /// No cluster in the state directory (not initialized), or its files are unusable.
    #[error("{0}")]
    Cluster(String),
    /// A certificate could not be made or a request not signed.
    #[error("{0}")]
    Pki(String),
    /// An agent's certificate request is unusable (malformed, or its signature fails).
    #[error("{0}")]
    Request(String),
    /// The join listener could not start.
    #[error("{0}")]
    Listen(String),
    /// A file-system operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The operation.
        what: &'static str,
        /// Its path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    fn io(what: &'static str, path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            what,
            path: path.display().to_string(),
            source,
        }
    }
}

impl From<mini_shim::agent::Error> for Error {
    fn from(e: mini_shim::agent::Error) -> Error {
        Error::Pki(e.to_string())
    }
}

/// A cluster just made by [`init_cluster`].
pub struct Initialized {
    /// Its certificates.
    pub pki: ClusterPki,
    /// The first join token.
    pub token: String,
}

/// Makes a cluster in `state_dir` (see the module documentation) whose agents join through
/// `advertise`, with a first join token valid for `ttl`. Refuses a state directory that holds
/// a cluster already; on failure nothing is left behind. Prints nothing.
pub fn init_cluster(
    state_dir: &Path,
    advertise: SocketAddr,
    ttl: Duration,
) -> Result<Initialized, Error> {
    let made_dir = !state_dir.exists();
    let pki = ClusterPki::init(state_dir, advertise)?;
    match Tokens::new(&pki).create(ttl) {
        Ok(token) => Ok(Initialized { pki, token }),
        Err(e) => {
            pki.remove();
            let _ = std::fs::remove_file(Tokens::new(&pki).path());
            if made_dir {
                let _ = std::fs::remove_dir(state_dir);
            }
            Err(e)
        }
    }
}

/// The command that joins an agent with `token` through `scheduler`, for `init` and
/// `token create` to print (the agent's own addresses are left for the operator to fill in).
pub fn join_command(scheduler: SocketAddr, token: &str) -> String {
    format!(
        "mini-shim join --scheduler {scheduler} --token {token} --listen 0.0.0.0:7443 --advertise <this-host-ip>:7443 --state-dir /var/lib/mini-shim"
    )
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> std::path::PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mini-sched-join-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn init_makes_a_cluster_once() {
        let dir = temp_dir();
        let addr: SocketAddr = "10.1.2.3:7440".parse().unwrap();
        let first = init_cluster(&dir, addr, DEFAULT_TOKEN_TTL).unwrap();
        let tokens = Tokens::new(&first.pki);
        tokens.verify(&first.token).unwrap();
        for name in ["ca", "scheduler", "admin", "join-server"] {
            use std::os::unix::fs::PermissionsExt;
            let key = dir.join(format!("pki/{name}-key.pem"));
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", key.display());
            assert!(dir.join(format!("pki/{name}.pem")).exists());
        }
        let loaded = ClusterPki::load(&dir).unwrap();
        assert_eq!(loaded.ca_sha256(), first.pki.ca_sha256());
        assert_eq!(loaded.advertise(), addr);

        let e = init_cluster(&dir, addr, DEFAULT_TOKEN_TTL)
            .err()
            .expect("a second init is refused");
        assert!(matches!(e, Error::Exists(_)), "{e}");
        assert!(e.to_string().contains("already"), "{e}");
        // The first cluster is untouched.
        assert_eq!(ClusterPki::load(&dir).unwrap().ca_pem(), first.pki.ca_pem());
        tokens.verify(&first.token).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn loading_a_missing_cluster_says_to_init() {
        let dir = temp_dir();
        let e = ClusterPki::load(&dir).expect_err("no cluster");
        assert!(e.to_string().contains("mini-sched init"), "{e}");
        assert!(!dir.exists());
    }
}
