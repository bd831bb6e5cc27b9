//! In-memory agents and a hand-moved clock for the controllers' unit tests: containers start
//! at once, exit when told, and a node can be made to stop answering or to hold its container
//! lists back (the list is taken when asked for and handed over when released), which is how
//! the tests replay races.

use super::calls::{AgentCalls, Call, Clock};
use crate::agents::CallError;
use mini_shim::protocol::{
    ClusterNetwork, ContainerInfo, ExitInfo, NetworkState, NodeStatus, Probe, ProbeResult,
    RunRequest, Status, StopRequest,
};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// A clock that moves only when told.
pub struct FakeClock(Mutex<Instant>);

impl FakeClock {
    /// A clock at the real now.
    pub fn new() -> Arc<FakeClock> {
        Arc::new(FakeClock(Mutex::new(Instant::now())))
    }

    /// Moves the clock `by` forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap();
        *now += by;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
}

/// One fake node.
#[derive(Default)]
struct Node {
    containers: BTreeMap<String, ContainerInfo>,
    /// Answers nothing (a dead or partitioned node).
    silent: bool,
    /// Container lists wait for a permit before they are handed over.
    held: Option<Arc<Semaphore>>,
}

/// Agents kept in memory, by address.
#[derive(Default)]
pub struct FakeAgents {
    nodes: Mutex<HashMap<SocketAddr, Node>>,
    /// Calls made, as `(kind, container id)`, for the tests to inspect.
    pub calls: Mutex<Vec<(&'static str, String)>>,
}

fn unreachable(addr: SocketAddr) -> CallError {
    CallError::Unreachable(addr, "the fake node is silent".into())
}

fn not_found(addr: SocketAddr, id: &str) -> CallError {
    CallError::Refused {
        addr,
        status: 404,
        code: "not_found".into(),
        message: format!("no container {id}"),
    }
}

impl FakeAgents {
    /// Agents for nodes at `addrs`.
    pub fn new(addrs: &[SocketAddr]) -> Arc<FakeAgents> {
        let fake = FakeAgents::default();
        for addr in addrs {
            fake.nodes.lock().unwrap().insert(*addr, Node::default());
        }
        Arc::new(fake)
    }

    fn node<R>(&self, addr: SocketAddr, f: impl FnOnce(&mut Node) -> R) -> Result<R, CallError> {
        let mut nodes = self.nodes.lock().unwrap();
        match nodes.get_mut(&addr) {
            Some(node) if !node.silent => Ok(f(node)),
            _ => Err(unreachable(addr)),
        }
    }

    fn record(&self, kind: &'static str, id: &str) {
        self.calls.lock().unwrap().push((kind, id.to_string()));
    }

    /// Makes the node at `addr` stop (or start again) answering.
    pub fn set_silent(&self, addr: SocketAddr, silent: bool) {
        self.nodes.lock().unwrap().entry(addr).or_default().silent = silent;
    }

    /// Holds the node's container lists back until [`FakeAgents::release`].
    pub fn hold_lists(&self, addr: SocketAddr) {
        self.nodes.lock().unwrap().entry(addr).or_default().held =
            Some(Arc::new(Semaphore::new(0)));
    }

    /// Hands over the container lists held back on `addr`, and lets later ones through.
    pub fn release(&self, addr: SocketAddr) {
        if let Some(held) = self
            .nodes
            .lock()
            .unwrap()
            .entry(addr)
            .or_default()
            .held
            .take()
        {
            held.add_permits(Semaphore::MAX_PERMITS / 2);
        }
    }

    /// The process of container `id` on `addr` exits with `code`.
    pub fn exit(&self, addr: SocketAddr, id: &str, code: i32) {
        let mut nodes = self.nodes.lock().unwrap();
        let container = nodes
            .get_mut(&addr)
            .and_then(|n| n.containers.get_mut(id))
            .expect("a container to exit");
        container.status = Status::Exited;
        container.monitor_alive = false;
        container.exit = Some(ExitInfo {
            code,
            signal: None,
            oom_killed: false,
            finished_at: crate::state::now_rfc3339(),
        });
    }

    /// The containers on `addr`: (id, status).
    pub fn containers_on(&self, addr: SocketAddr) -> Vec<(String, Status)> {
        let nodes = self.nodes.lock().unwrap();
        nodes[&addr]
            .containers
            .values()
            .map(|c| (c.id.clone(), c.status))
            .collect()
    }

    /// How many calls of `kind` were made about container `id`.
    pub fn count(&self, kind: &str, id: &str) -> usize {
        let calls = self.calls.lock().unwrap();
        calls.iter().filter(|(k, i)| *k == kind && i == id).count()
    }
}

fn running(request: &RunRequest) -> ContainerInfo {
    serde_json::from_value(serde_json::json!({
        "id": request.id,
        "status": Status::Running,
        "monitor_alive": true,
        "started_at": crate::state::now_rfc3339(),
        "labels": request.labels,
    }))
    .expect("a running container")
}

impl AgentCalls for FakeAgents {
    fn network<'a>(
        &'a self,
        addr: SocketAddr,
        _network: &'a ClusterNetwork,
        _timeout: Duration,
    ) -> Call<'a, NetworkState> {
        Box::pin(async move {
            self.node(addr, |_| ())?;
            Err(CallError::Garbled(addr, "the fake has no network".into()))
        })
    }

    fn node(&self, addr: SocketAddr, _timeout: Duration) -> Call<'_, NodeStatus> {
        Box::pin(async move {
            let containers = self.node(addr, |n| n.containers.len())?;
            Ok(NodeStatus {
                node: addr.to_string(),
                sampled_at: crate::state::now_rfc3339(),
                cpus: 4,
                memory_total_bytes: 8 << 30,
                memory_available_bytes: 8 << 30,
                cpu_busy: 0.0,
                load: [0.0; 3],
                pressure: None,
                containers: containers as u32,
                containers_running: containers as u32,
                services_generation: 0,
            })
        })
    }

    fn containers(&self, addr: SocketAddr, _timeout: Duration) -> Call<'_, Vec<ContainerInfo>> {
        Box::pin(async move {
            let (list, held) = self.node(addr, |n| {
                (n.containers.values().cloned().collect(), n.held.clone())
            })?;
            if let Some(held) = held {
                let _ = held.acquire().await;
            }
            Ok(list)
        })
    }

    fn run<'a>(
        &'a self,
        addr: SocketAddr,
        request: &'a RunRequest,
        _timeout: Duration,
    ) -> Call<'a, ContainerInfo> {
        Box::pin(async move {
            self.record("run", &request.id);
            self.node(addr, |n| {
                if n.containers.contains_key(&request.id) {
                    return Err(CallError::Refused {
                        addr,
                        status: 409,
                        code: "conflict".into(),
                        message: format!("container {} exists", request.id),
                    });
                }
                let info = running(request);
                n.containers.insert(request.id.clone(), info.clone());
                Ok(info)
            })?
        })
    }

    fn container<'a>(
        &'a self,
        addr: SocketAddr,
        id: &'a str,
        _timeout: Duration,
    ) -> Call<'a, ContainerInfo> {
        Box::pin(async move {
            self.node(addr, |n| n.containers.get(id).cloned())?
                .ok_or_else(|| not_found(addr, id))
        })
    }

    fn stop<'a>(
        &'a self,
        addr: SocketAddr,
        id: &'a str,
        _request: &'a StopRequest,
        _timeout: Duration,
    ) -> Call<'a, ContainerInfo> {
        Box::pin(async move {
            self.record("stop", id);
            self.node(addr, |n| n.containers.get(id).cloned())?
                .ok_or_else(|| not_found(addr, id))?;
            self.exit(addr, id, 137);
            self.container(addr, id, Duration::ZERO).await
        })
    }

    fn remove<'a>(&'a self, addr: SocketAddr, id: &'a str, _timeout: Duration) -> Call<'a, ()> {
        Box::pin(async move {
            self.record("remove", id);
            self.node(addr, |n| n.containers.remove(id))?
                .map(drop)
                .ok_or_else(|| not_found(addr, id))
        })
    }

    fn probe<'a>(
        &'a self,
        addr: SocketAddr,
        id: &'a str,
        _probe: &'a Probe,
        _timeout: Duration,
    ) -> Call<'a, ProbeResult> {
        Box::pin(async move {
            let status = self.node(addr, |n| n.containers.get(id).map(|c| c.status))?;
            Ok(ProbeResult {
                healthy: status == Some(Status::Running),
                detail: String::new(),
            })
        })
    }
}
