//! Hollow nodes for scale tests (`mini-shim hollow`), as Kubernetes' kubemark runs hollow
//! kubelets: N agents in one process, each a node of its own — its own name, key and
//! certificate from joining the cluster with the token (exactly as `mini-shim join`), its own
//! state directory and its own mutual-TLS listener on a loopback address (`127.x.y.z`, one
//! per node from `--first-address` on) — serving the real agent API (the same routes, TLS and
//! answers) over a fake container backend ([`crate::agent::hollow`]): runs are accepted at
//! once, containers run until told to end and report plausible usage.
//!
//! Node loss on demand: the file `<state-dir>/frozen` lists node names, one per line; the
//! process reads it every [`FREEZE_CHECK`] and a listed node stops answering any request
//! (its connections stay open, unanswered, as a host that is gone) until its name is
//! removed.

use crate::agent::hollow::Hollow;
use crate::agent::{self, listen, Agent, Listen};
use crate::join::{self, JoinError, JoinOptions};
use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How often the freeze file is read.
pub const FREEZE_CHECK: Duration = Duration::from_millis(200);

/// The freeze file's name in the state directory.
pub const FROZEN_FILE: &str = "frozen";

/// How many joins run at once.
const JOIN_PARALLEL: usize = 8;

/// How `mini-shim hollow` runs.
#[derive(Debug, Clone)]
pub struct HollowOptions {
    /// How many nodes.
    pub count: usize,
    /// The scheduler's join listener.
    pub scheduler: SocketAddr,
    /// The join token.
    pub token: String,
    /// The nodes' names are `<prefix>-<i>`.
    pub prefix: String,
    /// The first node's address; node i listens on this address plus i.
    pub first_address: Ipv4Addr,
    /// The port every node listens on.
    pub port: u16,
    /// Labels of every node.
    pub labels: BTreeMap<String, String>,
    /// The CPUs each node reports.
    pub cpus: u32,
    /// The memory each node reports, bytes.
    pub memory_bytes: u64,
    /// The state directory: one directory per node in it, and the freeze file.
    pub state_dir: PathBuf,
    /// The connection limits of the options (`--max-connections` ...), shared out between
    /// the listeners.
    pub limits: crate::connection_limits::LimitArgs,
}

impl HollowOptions {
    /// Node `i`'s name and address.
    fn node(&self, i: usize) -> Result<(String, SocketAddr), JoinError> {
        let ip = u32::from(self.first_address)
            .checked_add(i as u32)
            .map(Ipv4Addr::from)
            .filter(|ip| ip.is_loopback())
            .ok_or_else(|| {
                JoinError::Usage(format!(
                    "{} nodes from {} leave the loopback network 127.0.0.0/8: choose a lower --first-address or fewer nodes",
                    self.count, self.first_address
                ))
            })?;
        Ok((
            format!("{}-{i}", self.prefix),
            SocketAddr::from((ip, self.port)),
        ))
    }

    fn join_options(&self, i: usize) -> Result<JoinOptions, JoinError> {
        let (node, listen) = self.node(i)?;
        Ok(JoinOptions {
            scheduler: self.scheduler,
            token: self.token.clone(),
            listen,
            advertise: None,
            labels: self.labels.clone(),
            state_dir: self.state_dir.join(&node),
            node,
            rejoin: false,
            limits: self.limits.limits(self.count),
            cleanup: false,
            registries: Default::default(),
        })
    }
}

/// Joins every node (nodes that joined before keep their credentials), then serves them all
/// until SIGTERM or SIGINT.
pub fn run(options: HollowOptions) -> Result<(), JoinError> {
    if !options.first_address.is_loopback() {
        return Err(JoinError::Usage(format!(
            "--first-address {} is not a loopback address (127.0.0.0/8): hollow nodes listen only on loopback",
            options.first_address
        )));
    }
    raise_open_file_limit();
    let all: Vec<JoinOptions> = (0..options.count)
        .map(|i| options.join_options(i))
        .collect::<Result<_, _>>()?;
    // Joins block (each runs its own small runtime): a few threads share them out.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let joined: Vec<Result<(usize, agent::tls::TlsFiles), JoinError>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..JOIN_PARALLEL.min(all.len()).max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(o) = all.get(i) else { break };
                        done.push(join::credentials(o).map(|files| (i, files)));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let mut files = vec![None; all.len()];
    for j in joined {
        let (i, f) = j?;
        files[i] = Some(f);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| JoinError::Usage(format!("starting the async runtime: {e}")))?;
    runtime.block_on(async {
        let mut agents = Vec::new();
        for (o, f) in all.into_iter().zip(files) {
            let Some(files) = f else { continue };
            let listen = Listen::Tls {
                addr: o.listen,
                files,
            };
            let config = agent::Config {
                listen: listen.clone(),
                state_dir: o.state_dir,
                node: o.node,
                limits: o.limits,
                cleanup: false,
                registries: o.registries,
            };
            let hollow = Hollow::new(options.cpus, options.memory_bytes);
            let agent = Arc::new(Agent::new_hollow(config, hollow)?);
            let limits = o.limits;
            let served = agent.clone();
            tokio::spawn(async move {
                if let Err(e) =
                    listen::serve(served.clone(), &listen, limits, std::future::pending()).await
                {
                    served.log(&format!("serving: {e}"));
                }
            });
            agents.push(agent);
        }
        eprintln!(
            "mini-shim hollow: {} nodes serve from {} on port {}; freeze nodes by listing their names in {}",
            agents.len(),
            options.first_address,
            options.port,
            options.state_dir.join(FROZEN_FILE).display()
        );
        tokio::spawn(follow_freezes(options.state_dir.join(FROZEN_FILE), agents));
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return Err(JoinError::Usage("installing the signal handlers failed".into()));
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        Ok(())
    })
}

/// Freezes the nodes the freeze file names and thaws the others, every [`FREEZE_CHECK`].
async fn follow_freezes(path: PathBuf, agents: Vec<Arc<Agent>>) {
    let mut last: Option<String> = None;
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if last.as_ref() != Some(&text) {
            let frozen: HashSet<&str> = text.lines().map(str::trim).collect();
            let mut n = 0;
            for agent in &agents {
                let freeze = frozen.contains(agent.version().node.as_str());
                n += usize::from(freeze);
                if let Some(h) = agent.hollow() {
                    h.set_frozen(freeze);
                }
            }
            eprintln!("mini-shim hollow: {n} nodes frozen");
            last = Some(text);
        }
        tokio::time::sleep(FREEZE_CHECK).await;
    }
}

/// Raises the soft open-file limit to the hard one: every node has a listener and
/// connections of its own.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
