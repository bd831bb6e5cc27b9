//! `mini-sched daemon`: loads the cluster and its state, serves the join listener for agents and
//! the API for the CLI, and runs the controllers.
//!
//! A restarted daemon (after `kill -9` too) reads back every node, workload and instance from
//! the store and reconciles them with what the agents report at their first heartbeat: an
//! instance recorded as starting is started again under the same id (the agent refuses a
//! duplicate id, so this never makes two), a recorded instance whose container is gone is
//! handled by its restart policy, and a container no record owns is removed. Nodes get a full
//! node timeout from the restart before they can be declared lost.

use crate::agents::Agents;
use crate::api::Event;
use crate::controller::supervise::{supervise, RESTART_DELAY};
use crate::controller::{Daemon, Settings};
use crate::join::{self, ClusterPki, RegisterError, Registration, Tokens};
use crate::model::Policy;
use crate::state::{
    now_rfc3339, Instance, InstanceLive, Node, NodeLive, NodeRecord, State, EVENTS_KEPT,
};
use crate::store::{Store, Table};
use mini_shim::connection_limits::Limits;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the cluster (`mini-sched init`) and the state store live.
    pub state_dir: PathBuf,
    /// The CLI's unix socket.
    pub socket: PathBuf,
    /// Where agents join (`None`: where the cluster was advertised, `init --advertise`).
    pub join_listen: Option<SocketAddr>,
    /// How often nodes are polled.
    pub heartbeat_interval: Duration,
    /// Silence after which a node is lost.
    pub node_timeout: Duration,
    /// Placement policy.
    pub policy: Policy,
    /// How often the rebalancer runs (zero: only on request).
    pub rebalance_interval: Duration,
    /// Where to serve `GET /metrics` over TCP as well, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The lifetime of the certificates issued to nodes and of the scheduler's own.
    pub cert_ttl: Duration,
    /// How long before its expiry a certificate is renewed (default: a third of `cert_ttl`).
    pub cert_renew_before: Option<Duration>,
    /// What each listener (join, metrics, API socket) allows its peers.
    pub limits: Limits,
}

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster's files.
    #[error(transparent)]
    Join(#[from] join::Error),
    /// The state store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The agents' client.
    #[error("the scheduler's client certificate: {0}")]
    Tls(#[from] mini_shim::agent::Error),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Reads the state back from the store. A record that cannot be read (corrupt, or stored
/// under rules this version refuses, such as a spec beyond today's maxima) is skipped and
/// reported, on stderr and as an `Unreadable` event: it stays in the store, untouched, and
/// applying the workload again replaces it.
pub fn load(store: &Store) -> Result<State, Error> {
    let mut state = State::default();
    let mut unreadable = Vec::new();
    for (name, record) in readable(store, Table::Nodes, "node", &mut unreadable)? {
        let live = NodeLive::default();
        state.nodes.insert(name, Node { record, live });
    }
    state.workloads = readable(store, Table::Workloads, "workload", &mut unreadable)?
        .into_iter()
        .collect();
    for (_, record) in readable(store, Table::Instances, "instance", &mut unreadable)? {
        let live = InstanceLive::default();
        state.insert_instance(Instance { record, live });
    }
    state.services.records = readable(store, Table::Services, "service", &mut unreadable)?
        .into_iter()
        .collect();
    for (key, value) in store.load::<serde_json::Value>(Table::Meta)?.records {
        match key.as_str() {
            crate::service::GENERATION_KEY => {
                state.services.generation = value.as_u64().unwrap_or(0);
                // What came before the restart is told to agents as a whole table.
                state.services.horizon = state.services.generation;
            }
            crate::service::LAST_ADDRESS_KEY => {
                state.services.last_address = serde_json::from_value(value).ok();
            }
            _ => {}
        }
    }
    let events = store.load::<Event>(Table::Events)?;
    for (key, why) in &events.unreadable {
        eprintln!("mini-sched: skipping stored event {key}: it cannot be read: {why}");
    }
    let events = events.records;
    state.next_event = events.last().map_or(0, |(_, e)| e.seq.saturating_add(1));
    let skip = events.len().saturating_sub(EVENTS_KEPT);
    state.events = events.into_iter().skip(skip).map(|(_, e)| e).collect();
    for (kind, key, why) in unreadable {
        let message =
            format!("the stored {kind} cannot be read and is skipped (left in the store): {why}");
        eprintln!("mini-sched: {kind} {key}: {message}");
        state.event(format!("{kind}/{key}"), "Unreadable", message);
    }
    Ok(state)
}

/// The readable records of `table`; the others are added to `unreadable` as
/// (`kind`, key, why).
fn readable<T: serde::de::DeserializeOwned>(
    store: &Store,
    table: Table,
    kind: &'static str,
    unreadable: &mut Vec<(&'static str, String, String)>,
) -> Result<Vec<(String, T)>, Error> {
    let loaded = store.load::<T>(table)?;
    unreadable.extend(loaded.unreadable.into_iter().map(|(k, e)| (kind, k, e)));
    Ok(loaded.records)
}

/// Records a node that joined (or joined again). An address belongs to one node; an existing
/// node joins again only with its current certificate or a token made for it.
/// A new node gets a subnet of the cluster network, or is refused when none is left.
fn register(
    state: &mut State,
    network: &crate::network::Settings,
    reg: Registration,
) -> Result<(), RegisterError> {
    let name = reg.node.clone();
    if let Some(other) = state
        .nodes
        .values()
        .find(|n| n.record.address == reg.address && n.record.name != name)
    {
        return Err(RegisterError::Conflict(format!(
            "address {} belongs to node {}: advertise this agent's own address, or delete that node first (mini-sched delete node {})",
            reg.address, other.record.name, other.record.name
        )));
    }
    match state.nodes.get_mut(&name) {
        Some(node) => {
            let current = node
                .record
                .certificate
                .as_deref()
                .and_then(|pem| mini_shim::agent::pki::inspect(pem).ok())
                .map(|info| info.der);
            let proven = reg.presented.is_some() && reg.presented == current;
            if !proven && !reg.forced {
                return Err(RegisterError::Conflict(format!(
                    "node {name} exists (at {}): it joins again only with its current certificate (mini-shim join --rejoin on that node) or a token made for it (mini-sched token create --rejoin {name}); or choose another --node-name",
                    node.record.address
                )));
            }
            node.record.address = reg.address;
            node.record.labels.extend(reg.labels);
            node.record.joined_at = now_rfc3339();
            node.record.certificate = Some(reg.certificate);
            node.live.joined = Some(Instant::now());
        }
        None => {
            let subnet = network
                .allocate(state)
                .map_err(|e| RegisterError::Conflict(format!("node {name} cannot join: {e}")))?;
            let record = NodeRecord {
                labels: reg.labels,
                certificate: Some(reg.certificate),
                subnet: Some(subnet.to_string()),
                ..NodeRecord::new(&name, reg.address)
            };
            let live = NodeLive {
                joined: Some(Instant::now()),
                ..NodeLive::default()
            };
            state.nodes.insert(name.clone(), Node { record, live });
        }
    }
    state.save_node(&name);
    let subnet = state.nodes[&name].record.subnet.clone().unwrap_or_default();
    state.event(
        format!("node/{name}"),
        "Joined",
        format!("agent at {}, subnet {subnet}", reg.address),
    );
    Ok(())
}

/// Runs the daemon until SIGINT or SIGTERM.
pub fn run(config: Config) -> Result<(), Error> {
    join::check_cert_ttl("--cert-ttl", config.cert_ttl, join::MIN_CERT_TTL)?;
    let renew_before = config.cert_renew_before.unwrap_or(config.cert_ttl / 3);
    if renew_before.is_zero() || renew_before >= config.cert_ttl {
        return Err(Error::Other(format!(
            "--cert-renew-before {} must be more than 0s and less than --cert-ttl {}",
            mini_shim::agent::pki::format_lifetime(renew_before),
            mini_shim::agent::pki::format_lifetime(config.cert_ttl)
        )));
    }
    crate::socket::claim(&config.socket).map_err(Error::Other)?;
    let pki = ClusterPki::load(&config.state_dir)?;
    let (join_listen, warning) = join::join_listen(config.join_listen, pki.advertise());
    if let Some(warning) = warning {
        eprintln!("mini-sched: {warning}");
    }
    let renewal = crate::renewal::Renewal {
        pki: pki.clone(),
        lifetime: config.cert_ttl,
        before: renew_before,
    };
    // The daemon's own certificates are renewed before they are used, if due.
    renewal.own();
    let network = crate::network::Settings::load(&config.state_dir).map_err(Error::Other)?;
    let store = Store::open(&config.state_dir.join("state.redb"))?;
    let mut state = load(&store)?;
    state.services.settings =
        crate::service::settings::Settings::load(&config.state_dir).map_err(Error::Other)?;
    let agents = Agents::new(&pki.scheduler_tls())?;
    let tokens = Tokens::new(&pki);
    let settings = Settings {
        heartbeat_interval: config.heartbeat_interval,
        node_timeout: config.node_timeout,
        policy: config.policy,
        rebalance_interval: config.rebalance_interval,
        rebalance_threshold: 0.25,
        rebalance_cooldown: Duration::from_secs(60),
        network,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("starting the async runtime: {e}")))?;
    runtime.block_on(async move {
        let daemon = Arc::new(Daemon::new(state, store, agents, settings));
        let registrar = daemon.clone();
        let on_join: join::Register = Arc::new(move |reg| {
            let result = registrar.with(|s| register(s, &network, reg));
            registrar.wake.notify_one();
            result
        });
        let limits = config.limits;
        let _join = join::serve(join_listen, pki, tokens, config.cert_ttl, on_join, limits).await?;
        let renewing = daemon.clone();
        tokio::spawn(async move {
            supervise("certificate renewal", RESTART_DELAY, move || {
                renewal.clone().run(renewing.clone())
            })
            .await
        });
        if let Some(addr) = config.metrics_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Error::Other(format!("metrics listener on {addr}: {e}")))?;
            tokio::spawn(crate::server::serve_metrics(
                daemon.clone(),
                listener,
                limits,
            ));
        }
        let controllers = daemon.clone();
        tokio::spawn(async move {
            supervise("controllers", RESTART_DELAY, move || {
                controllers.clone().run()
            })
            .await
        });
        let pusher = daemon.clone();
        tokio::spawn(async move {
            supervise("service pushes", RESTART_DELAY, move || {
                crate::service::push::run(pusher.clone())
            })
            .await
        });
        let socket = config.socket.clone();
        let api = crate::server::serve(daemon, &socket, limits);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| Error::Other(format!("installing the SIGTERM handler: {e}")))?;
        eprintln!(
            "mini-sched: daemon serving {} and joins on {}; each listener: {limits}",
            socket.display(),
            join_listen,
        );
        let result = tokio::select! {
            r = api => r.map_err(|e| Error::Other(format!("API socket {}: {e}", socket.display()))),
            _ = tokio::signal::ctrl_c() => Ok(()),
            _ = term.recv() => Ok(()),
        };
        let _ = std::fs::remove_file(&socket);
        result
    })
}
