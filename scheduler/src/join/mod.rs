//! The cluster's identities and how agents join it (the scheduler's side; the agent's is
//! `mini_shim::join`).
//!
//! `mini-sched init` makes the cluster in a state directory `D` ([`init_cluster`]):
//!
//! - `D/pki/ca.pem`, `ca-key.pem`: the cluster CA ([`ClusterPki`]);
//! - `D/pki/scheduler.pem`, `-key.pem`: the client certificate the daemon calls agents with;
//! - `D/pki/admin.pem`, `-key.pem`: a client certificate for people (curl, debugging), with
//!   the lifetime `init --admin-ttl` or `mini-sched cert admin --ttl` gave it;
//! - `D/pki/join-server.pem`, `-key.pem`: the join listener's server certificate;
//! - `D/cluster.json`: the address agents join through;
//! - `D/tokens.json`: the join tokens, hashed, with their expiry and uses ([`Tokens`]).
//!
//! `init` is all or nothing: everything is made in a directory beside `D` and renamed to `D`.
//! Every certificate but the CA's lives for a bounded time (at most
//! [`mini_shim::agent::pki::MAX_LIFETIME`]); the daemon renews its own and the nodes' before
//! they expire (`crate::renewal`).
//!
//! An agent joins through the join listener ([`serve`]) with a token: it checks the CA it is
//! sent against the token's hash, and gets a server certificate for its own key signed by the
//! CA ([`ClusterPki::sign_agent_csr`]); the daemon's [`Register`] callback records the node.

mod pki;
mod server;
mod tokens;

pub use mini_shim::join::{JoinRequest, JoinResponse};
pub use pki::{ClusterPki, Lifetimes, ADMIN, JOIN_SERVER, SCHEDULER};
pub use server::{serve, JoinServer, Register, RegisterError, Registration};
pub use tokens::{TokenError, TokenInfo, TokenSpec, Tokens, MAX_TOKEN_TTL};

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// How long a token made without `--ttl` stays valid.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// How long the nodes', the scheduler's and the join listener's certificates live unless
/// `daemon --cert-ttl` says otherwise (they are renewed before they expire).
pub const DEFAULT_CERT_TTL: Duration = Duration::from_secs(30 * 86_400);

/// The shortest certificate lifetime `--cert-ttl` accepts.
pub const MIN_CERT_TTL: Duration = Duration::from_secs(60);

/// How long the admin certificate made without `--admin-ttl` lives.
pub const DEFAULT_ADMIN_TTL: Duration = Duration::from_secs(24 * 3600);

/// Where the daemon's join listener listens: `--join-listen` when given, else the address
/// the cluster was advertised at (`init --advertise`), where agents were told to join. The
/// second value is a warning when an explicit `--join-listen` is not where agents join.
pub fn join_listen(
    given: Option<SocketAddr>,
    advertise: SocketAddr,
) -> (SocketAddr, Option<String>) {
    let Some(listen) = given else {
        return (advertise, None);
    };
    let reaches = listen.port() == advertise.port()
        && (listen.ip() == advertise.ip() || listen.ip().is_unspecified());
    let warning = (!reaches).then(|| {
        format!(
            "warning: agents join through {advertise} (init --advertise) but --join-listen is \
             {listen}: they reach this listener only if something forwards {advertise} to it"
        )
    });
    (listen, warning)
}

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

/// What `init` makes besides the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOptions {
    /// The first join token.
    pub token: TokenSpec,
    /// The certificates' lifetimes.
    pub lifetimes: Lifetimes,
    /// The cluster network's layout.
    pub network: crate::network::Settings,
}

impl Default for InitOptions {
    fn default() -> InitOptions {
        InitOptions {
            token: TokenSpec::reusable(DEFAULT_TOKEN_TTL),
            lifetimes: Lifetimes {
                own: DEFAULT_CERT_TTL,
                admin: DEFAULT_ADMIN_TTL,
            },
            network: crate::network::Settings::default(),
        }
    }
}

/// Refuses a certificate lifetime (`flag`) outside `min..=MAX_LIFETIME`.
pub fn check_cert_ttl(flag: &str, ttl: Duration, min: Duration) -> Result<(), Error> {
    let max = mini_shim::agent::pki::MAX_LIFETIME;
    if ttl < min || ttl > max {
        return Err(Error::Cluster(format!(
            "{flag} {}: a certificate lifetime must be from {} to {}",
            mini_shim::agent::pki::format_lifetime(ttl),
            mini_shim::agent::pki::format_lifetime(min),
            mini_shim::agent::pki::format_lifetime(max)
        )));
    }
    Ok(())
}

/// Makes a cluster in `state_dir` (see the module documentation) whose agents join through
/// `advertise`. Refuses a state directory that holds anything already. All or nothing: the
/// files are made in a directory beside `state_dir` that is renamed to it at the end; on
/// failure nothing is left behind. Prints nothing.
pub fn init_cluster(
    state_dir: &Path,
    advertise: SocketAddr,
    options: &InitOptions,
) -> Result<Initialized, Error> {
    tokens::check_ttl(options.token.ttl)?;
    check_cert_ttl(
        "--admin-ttl",
        options.lifetimes.admin,
        Duration::from_secs(1),
    )?;
    check_cert_ttl("--cert-ttl", options.lifetimes.own, MIN_CERT_TTL)?;
    refuse_occupied(state_dir)?;
    let name = state_dir.file_name().ok_or_else(|| {
        Error::Cluster(format!(
            "--state-dir {}: not a directory name",
            state_dir.display()
        ))
    })?;
    let parent = match state_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let made_parents = mini_shim::join::missing_dirs(&parent);
    let staging = parent.join(format!(
        ".{}.init-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let build = || -> Result<String, Error> {
        std::fs::create_dir_all(&parent).map_err(|e| Error::io("creating", &parent, e))?;
        let _ = std::fs::remove_dir_all(&staging);
        // Private from the start: it holds the CA key and the tokens.
        mini_run::private_files::create_dir(&staging)
            .map_err(|e| Error::io("creating", &staging, e))?;
        let pki = ClusterPki::make(&staging, advertise, options.lifetimes)?;
        let token = Tokens::new(&pki).create(&options.token)?;
        options
            .network
            .save(&staging)
            .map_err(|e| Error::io("writing the network settings in", &staging, e))?;
        std::fs::rename(&staging, state_dir).map_err(|e| Error::io("renaming", &staging, e))?;
        std::fs::File::open(&parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("syncing", &parent, e))?;
        Ok(token)
    };
    let token = build().inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&staging);
        for dir in made_parents.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    })?;
    Ok(Initialized {
        pki: ClusterPki::load(state_dir)?,
        token,
    })
}

/// Refuses a state directory that exists and is not empty (a cluster, or anything else).
fn refuse_occupied(state_dir: &Path) -> Result<(), Error> {
    let mut entries = match std::fs::read_dir(state_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("reading", state_dir, e)),
    };
    if entries.next().is_none() {
        return Ok(());
    }
    let holds = if state_dir.join("pki").exists() || state_dir.join("cluster.json").exists() {
        "a cluster"
    } else {
        "other files"
    };
    Err(Error::Exists(format!(
        "{} already holds {holds}: use it (mini-sched token create makes a join token), or give init a new or empty directory",
        state_dir.display()
    )))
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

    #[test]
    fn the_join_listener_defaults_to_the_advertised_address_and_warns_when_told_otherwise() {
        let advertise: SocketAddr = "10.1.2.3:7440".parse().unwrap();
        assert_eq!(join_listen(None, advertise), (advertise, None));
        for reaches in ["10.1.2.3:7440", "0.0.0.0:7440"] {
            let listen: SocketAddr = reaches.parse().unwrap();
            assert_eq!(join_listen(Some(listen), advertise), (listen, None));
        }
        for elsewhere in ["10.1.2.4:7440", "0.0.0.0:7441", "10.1.2.3:7441"] {
            let listen: SocketAddr = elsewhere.parse().unwrap();
            let (chosen, warning) = join_listen(Some(listen), advertise);
            assert_eq!(chosen, listen);
            let warning = warning.expect("a warning");
            assert!(warning.contains(elsewhere) && warning.contains("10.1.2.3:7440"));
        }
    }

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
        let first = init_cluster(&dir, addr, &InitOptions::default()).unwrap();
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

        let e = init_cluster(&dir, addr, &InitOptions::default())
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
    fn init_out_of_bounds_or_failing_leaves_nothing() {
        let dir = temp_dir();
        let addr: SocketAddr = "10.1.2.3:7440".parse().unwrap();
        let eons = Duration::from_secs(8000 * 365 * 86_400);
        let mut options = InitOptions::default();
        options.token.ttl = eons;
        let e = init_cluster(&dir, addr, &options).err().expect("refused");
        assert!(e.to_string().contains("--ttl"), "{e}");
        let mut options = InitOptions::default();
        options.lifetimes.admin = eons;
        let e = init_cluster(&dir, addr, &options).err().expect("refused");
        assert!(e.to_string().contains("--admin-ttl"), "{e}");
        // A failure half-way (an unusable address) leaves neither the directory nor the
        // staging one beside it.
        let e = init_cluster(
            &dir,
            "0.0.0.0:7440".parse().unwrap(),
            &InitOptions::default(),
        )
        .err()
        .expect("refused");
        assert!(e.to_string().contains("--advertise"), "{e}");
        assert!(!dir.exists());
        let parent = dir.parent().unwrap();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let left: Vec<_> = std::fs::read_dir(parent)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(&name))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        // An empty directory is taken; one holding other files is not.
        std::fs::create_dir(&dir).unwrap();
        init_cluster(&dir, addr, &InitOptions::default()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("notes"), "x").unwrap();
        let e = init_cluster(&dir, addr, &InitOptions::default())
            .err()
            .expect("refused");
        assert!(e.to_string().contains("other files"), "{e}");
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
