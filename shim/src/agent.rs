//! The host agent (`mini-shim agent`): the scheduler's only contact with a host. It serves the
//! shim [`protocol`](crate::protocol) over HTTP+JSON with mutual TLS, prepares bundles, runs
//! every container through its own [`monitor`](crate::monitor) process, and reports node and
//! container usage.
//!
//! The agent keeps no state of its own that a restart could lose: the state directory
//! (`containers/<id>/` per container, see [`crate::monitor`]) is the truth, and the monitors
//! hold the containers. A restarted agent finds every container there, reconnects to live
//! monitors and reads the exit records of containers that ended while it was down.

pub mod api;
pub mod bundle;
pub mod certificate;
pub mod containers;
pub mod error;
pub mod exec;
pub mod hollow;
pub mod listen;
pub mod network;
pub mod pki;
pub mod probe;
pub mod run;
pub mod service;
pub mod stop;
pub mod tls;
pub mod usage;

pub use error::Error;
pub use listen::Listen;

use crate::protocol::VersionInfo;
use containers::{CONTAINERS_DIR, IMAGES_DIR, RUNTIME_DIR};
use std::path::PathBuf;
use std::sync::Arc;

/// How an agent runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it listens.
    pub listen: Listen,
    /// Its state directory (default /var/lib/mini-shim).
    pub state_dir: PathBuf,
    /// The node's name, reported to clients and used in cgroup paths.
    pub node: String,
    /// What its listener allows its peers.
    pub limits: crate::connection_limits::Limits,
    /// On stop, remove what the cluster network made in the host's namespace (routes, the
    /// nftables table, the bridge), as `--cleanup` asks.
    pub cleanup: bool,
    /// How it reaches image registries.
    pub registries: crate::registry::RegistryOptions,
}

/// The agent's shared state, one per process.
pub struct Agent {
    config: Config,
    /// Ids being created or deleted right now (see [`Agent::claim`]).
    busy: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The node's last usage sample (see [`usage::NODE_SAMPLE`]).
    node: usage::NodeState,
    /// The containers' last usage samples (see [`usage::CONTAINER_SAMPLE`]).
    samples: usage::ContainerSamples,
    /// CNI calls and failures (see [`network`]).
    cni_counters: network::Counters,
    /// The cluster network this process last applied in full (nftables included): an
    /// unchanged heartbeat only re-checks the routes.
    network_applied: tokio::sync::Mutex<Option<crate::protocol::ClusterNetwork>>,
    /// Registry pulls: downloads under way and counters.
    puller: crate::registry::Puller,
    /// The service table (see [`service`]).
    services: service::Services,
    /// The listener's connection counts (`mini_shim_connections_total`).
    gate: std::sync::OnceLock<Arc<crate::connection_limits::Gate>>,
    /// Requests answered (`mini_shim_requests_total`).
    requests: std::sync::atomic::AtomicU64,
    /// A hollow agent's fake containers (`mini-shim hollow`); `None` for a real agent.
    hollow: Option<hollow::Hollow>,
}

impl Agent {
    /// An agent for `config`, its state directory created. The state directory and the
    /// directories in it are root's only (0700, narrowed if an older version made them
    /// wider): the containers' specs, environments and logs are in there, and so are the
    /// images, whose configurations and layers may hold secrets as well.
    pub fn new(config: Config) -> Result<Agent, Error> {
        let private = |dir: &std::path::Path| {
            mini_run::private_files::create_dir_all(dir)
                .map_err(|e| Error::io("creating the state directory", dir, e))
        };
        private(&config.state_dir)?;
        for sub in [CONTAINERS_DIR, IMAGES_DIR, RUNTIME_DIR] {
            private(&config.state_dir.join(sub))?;
        }
        Ok(Agent {
            puller: crate::registry::Puller::new(config.registries.clone()),
            services: service::Services::load(&config.state_dir),
            config,
            busy: Default::default(),
            node: Default::default(),
            samples: Default::default(),
            cni_counters: Default::default(),
            network_applied: Default::default(),
            gate: Default::default(),
            requests: Default::default(),
            hollow: None,
        })
    }

    /// A hollow agent for `config` (see [`hollow`]): its containers are fakes in memory.
    pub fn new_hollow(config: Config, hollow: hollow::Hollow) -> Result<Agent, Error> {
        Ok(Agent {
            hollow: Some(hollow),
            ..Agent::new(config)?
        })
    }

    /// Writes one line to the agent's log (stderr).
    pub fn log(&self, msg: &str) {
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        eprintln!("{now} mini-shim agent[{}]: {msg}", self.config.node);
    }

    /// `GET /v1/version`.
    pub fn version(&self) -> VersionInfo {
        VersionInfo {
            protocol: crate::protocol::VERSION,
            agent: env!("CARGO_PKG_VERSION").to_string(),
            node: self.config.node.clone(),
        }
    }
}

/// Runs the agent until SIGTERM or SIGINT. Containers and their monitors keep running after
/// it stops.
pub fn run(config: Config) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Config(format!("starting the async runtime: {e}")))?;
    runtime.block_on(async {
        let listen = config.listen.clone();
        let agent = Arc::new(Agent::new(config)?);
        agent.adopt_all().await;
        tokio::spawn(agent.clone().sample_node());
        tokio::spawn(agent.clone().sample_containers());
        let shutdown = async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return std::future::pending().await;
            };
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        };
        listen::serve(agent.clone(), &listen, agent.config.limits, shutdown).await?;
        if agent.config.cleanup {
            match agent.cleanup_services().await {
                Ok(()) => agent.log("removed the services' table and their connections"),
                Err(e) => agent.log(&format!("cleaning up the services: {e}")),
            }
            match agent.cleanup_network().await {
                Ok(()) => agent.log("removed the cluster network's routes, table and bridge"),
                Err(e) => agent.log(&format!("cleaning up the cluster network: {e}")),
            }
        }
        agent.log("stopping; containers keep running under their monitors");
        Ok(())
    })
}
