//! Calls to agents that the controllers decided on, and how their outcomes are recorded.

use super::{heartbeat, lifecycle, Daemon};
use crate::agents::CallError;
use crate::api::Phase;
use crate::state::State;
use mini_shim::protocol::{ClusterNetwork, ContainerInfo, Probe, RunRequest, Status, StopRequest};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// Failing restarts the instance.
    Liveness,
    /// Passing makes it ready.
    Readiness,
}

/// A call to an agent.
#[derive(Debug)]
pub enum Action {
    /// Heartbeat: read the node's capacity, usage and containers.
    Poll {
        /// Node name.
        node: String,
        /// Its agent.
        addr: SocketAddr,
        /// Its place on the cluster network, sent with the heartbeat.
        network: Option<Box<ClusterNetwork>>,
    },
    /// Start an instance's container (after removing an old one of the same id on a restart).
    Run {
        /// Instance id.
        id: String,
        /// Its node's agent.
        addr: SocketAddr,
        /// What to run.
        request: Box<RunRequest>,
        /// Delete an exited container of the same id first (a restart).
        replace: bool,
    },
    /// Stop an instance's container and delete it; the instance ends `Stopped`.
    Stop {
        /// Instance id.
        id: String,
        /// Its node's agent.
        addr: SocketAddr,
        /// Grace period before SIGKILL.
        timeout: Duration,
    },
    /// Stop a container without ending its instance (a failed liveness probe: the exit is then
    /// handled like any other, by the restart policy).
    Kill {
        /// Instance id.
        id: String,
        /// Its node's agent.
        addr: SocketAddr,
        /// Grace period before SIGKILL.
        timeout: Duration,
    },
    /// Remove a container no live instance owns on that node (fencing, orphans).
    Remove {
        /// The node.
        node: String,
        /// Its agent.
        addr: SocketAddr,
        /// The container id.
        container: String,
    },
    /// Run a probe inside an instance.
    Probe {
        /// Instance id.
        id: String,
        /// Its node's agent.
        addr: SocketAddr,
        /// Which.
        kind: ProbeKind,
        /// The check.
        probe: Probe,
        /// How long it may take.
        timeout: Duration,
    },
}

const RUN_TIMEOUT: Duration = Duration::from_secs(60);

impl Daemon {
    /// Makes each call in a task of its own.
    pub fn spawn(self: &Arc<Self>, actions: Vec<Action>) {
        for action in actions {
            let call: Pin<Box<dyn Future<Output = ()> + Send>> =
                Box::pin(self.clone().perform(action));
            tokio::spawn(call);
        }
    }

    /// Makes the call and records its outcome.
    pub async fn perform(self: Arc<Self>, action: Action) {
        match action {
            Action::Poll {
                node,
                addr,
                network,
            } => {
                let timeout = (self.settings.heartbeat_interval.max(Duration::from_secs(1)))
                    .saturating_mul(2);
                let began = self.now();
                if let Some(network) = network {
                    let sent = self
                        .calls
                        .network(addr, &network, timeout)
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string());
                    self.with(|state| heartbeat::network_outcome(state, &node, sent));
                }
                let status = self.calls.node(addr, timeout);
                let list = self.calls.containers(addr, timeout);
                let result = match tokio::join!(status, list) {
                    (Ok(s), Ok(l)) => Ok((s, l)),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                };
                let timing = heartbeat::Timing {
                    began,
                    arrived: self.now(),
                };
                match &result {
                    Ok(_) => self.hear(&node, timing.arrived),
                    Err(_) => self.count(|c| c.agent_errors += 1),
                }
                let actions =
                    self.with(|state| heartbeat::record(&self, state, &node, timing, result));
                self.spawn(actions);
            }
            Action::Run {
                id,
                addr,
                request,
                replace,
            } => {
                if replace {
                    let _ = self.calls.remove(addr, &id, RUN_TIMEOUT).await;
                }
                let run = || self.calls.run(addr, &request, RUN_TIMEOUT);
                let mut result = run().await;
                if result.as_ref().is_err_and(|e| e.code() == Some("conflict")) {
                    // A container of this id is there already: a start repeated after a
                    // crash (adopt it if it runs), or an exited one not removed (replace it).
                    match self.calls.container(addr, &id, RUN_TIMEOUT).await {
                        Ok(info) if info.status == Status::Running => result = Ok(info),
                        _ => {
                            let _ = self.calls.remove(addr, &id, RUN_TIMEOUT).await;
                            result = run().await;
                        }
                    }
                }
                self.with(|state| run_outcome(&self, state, &id, result));
                self.wake.notify_one();
            }
            Action::Stop { id, addr, timeout } => {
                let result = self.stop_and_delete(addr, &id, timeout).await;
                self.with(|state| {
                    let Some(instance) = state.instances.get_mut(&id) else {
                        return;
                    };
                    instance.live.in_flight = false;
                    match result {
                        Ok(()) => {
                            // Stopped keeps the reason it was stopped for.
                            let reason = instance.record.reason.clone();
                            state.set_phase(&id, Phase::Stopped, reason);
                        }
                        Err(e) => {
                            instance.live.not_before = Some(self.now() + Duration::from_secs(1));
                            state.event(format!("instance/{id}"), "StopFailed", e.to_string());
                        }
                    }
                });
                self.wake.notify_one();
            }
            Action::Kill { id, addr, timeout } => {
                let request = StopRequest {
                    signal: None,
                    timeout_secs: Some(timeout.as_secs()),
                };
                let result = self
                    .calls
                    .stop(addr, &id, &request, timeout.saturating_add(RUN_TIMEOUT))
                    .await;
                self.with(|state| {
                    if let Some(instance) = state.instances.get_mut(&id) {
                        instance.live.in_flight = false;
                    }
                    if let Err(e) = result {
                        state.event(format!("instance/{id}"), "KillFailed", e.to_string());
                    }
                });
            }
            Action::Remove {
                node,
                addr,
                container,
            } => {
                let result = self
                    .stop_and_delete(addr, &container, Duration::from_secs(2))
                    .await;
                self.with(|state| {
                    state.removing.remove(&(node.clone(), container.clone()));
                    if result.is_ok() {
                        super::replicas::fenced(state, &node, &container);
                    }
                    let (reason, message) = match &result {
                        Ok(()) => (
                            "Fenced",
                            format!("stopped and removed stale container {container} on {node}"),
                        ),
                        Err(e) => (
                            "FenceFailed",
                            format!("removing stale container {container} on {node}: {e}"),
                        ),
                    };
                    state.event(format!("node/{node}"), reason, message);
                });
                if result.is_ok() {
                    self.count(|c| c.fenced += 1);
                }
            }
            Action::Probe {
                id,
                addr,
                kind,
                probe,
                timeout,
            } => {
                let result = self
                    .calls
                    .probe(
                        addr,
                        &id,
                        &probe,
                        timeout.saturating_add(Duration::from_secs(5)),
                    )
                    .await;
                let actions = self.with(|state| lifecycle::probe_outcome(state, &id, kind, result));
                self.spawn(actions);
            }
        }
    }

    /// Stops a container (signal, then SIGKILL after `timeout`) and deletes it; a container
    /// the agent does not know counts as done.
    async fn stop_and_delete(
        &self,
        addr: SocketAddr,
        id: &str,
        timeout: Duration,
    ) -> Result<(), CallError> {
        let request = StopRequest {
            signal: None,
            timeout_secs: Some(timeout.as_secs()),
        };
        let stop = self
            .calls
            .stop(addr, id, &request, timeout.saturating_add(RUN_TIMEOUT))
            .await;
        match stop {
            Err(e) if e.code() == Some("not_found") => return Ok(()),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        match self.calls.remove(addr, id, RUN_TIMEOUT).await {
            Err(e) if e.code() != Some("not_found") => Err(e),
            _ => Ok(()),
        }
    }
}

/// Records the outcome of starting instance `id`.
fn run_outcome(
    daemon: &Daemon,
    state: &mut State,
    id: &str,
    result: Result<ContainerInfo, CallError>,
) {
    let Some(instance) = state.instances.get_mut(id) else {
        return;
    };
    instance.live.in_flight = false;
    if instance.record.phase != Phase::Starting {
        // Stopped or lost meanwhile: the heartbeat's fencing removes the container.
        return;
    }
    match result {
        Ok(info) if info.status == Status::Running => {
            if let Some(digest) = &info.image_digest {
                state.record_image_digest(id, digest);
            }
            lifecycle::started(state, id, info.started_at, daemon.now());
        }
        Ok(info) => {
            // It ran and already ended: the exit goes through the restart policy.
            lifecycle::exited(
                daemon,
                state,
                id,
                info.exit.as_ref(),
                "exited right after starting",
            );
        }
        Err(CallError::Unreachable(..)) => {
            // Not known to have started; the next pass retries with the same id (the agent
            // refuses a second container of that id, so a retry never duplicates).
            instance.live.not_before = Some(daemon.now() + Duration::from_secs(1));
        }
        Err(e) if e.code() == Some("conflict") => {
            // The id is still taken (a removal under way): try again shortly.
            instance.live.not_before = Some(daemon.now() + Duration::from_secs(1));
            let message = format!("starting again shortly: {e}");
            state.event(format!("instance/{id}"), "StartDelayed", message);
        }
        Err(e) => {
            daemon.count(|c| c.agent_errors += 1);
            instance.record.start_failure = e
                .code()
                .filter(|code| crate::api::PERMANENT_START_FAILURES.contains(code))
                .map(str::to_string);
            lifecycle::start_failed(daemon, state, id, &e.to_string());
        }
    }
}
