//! The calls the controllers make to agents, as a trait: [`Agents`] (the real client, over
//! mutual TLS) implements it, and the controllers' unit tests drive `tick` with an in-memory
//! fake ([`super::fake`]) and a clock they move by hand ([`Clock`]).

use crate::agents::{Agents, CallError};
use mini_shim::protocol::{
    ClusterNetwork, ContainerInfo, ContainerList, NetworkState, NodeStatus, Probe, ProbeResult,
    RunRequest, StopRequest,
};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// A call's answer, to await.
pub type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, CallError>> + Send + 'a>>;

/// What the controllers ask of an agent at `addr`, each call with its whole deadline.
pub trait AgentCalls: Send + Sync {
    /// `POST /v1/network`: the node's place on the cluster network.
    fn network<'a>(
        &'a self,
        addr: SocketAddr,
        network: &'a ClusterNetwork,
        timeout: Duration,
    ) -> Call<'a, NetworkState>;
    /// `GET /v1/node`: capacity and usage.
    fn node(&self, addr: SocketAddr, timeout: Duration) -> Call<'_, NodeStatus>;
    /// `GET /v1/containers?stats=true`: every container, with usage.
    fn containers(&self, addr: SocketAddr, timeout: Duration) -> Call<'_, Vec<ContainerInfo>>;
    /// `POST /v1/containers`: start a container.
    fn run<'a>(
        &'a self,
        addr: SocketAddr,
        request: &'a RunRequest,
        timeout: Duration,
    ) -> Call<'a, ContainerInfo>;
    /// `GET /v1/containers/{id}`.
    fn container<'a>(
        &'a self,
        addr: SocketAddr,
        id: &'a str,
        timeout: Duration,
    ) -> Call<'a, ContainerInfo>;
    /// `POST /v1/containers/{id}/stop`.
    fn stop<'a>(
        &'a self,
        addr: SocketAddr,
        id: &'a str,
        request: &'a StopRequest,
        timeout: Duration,
    ) -> Call<'a, ContainerInfo>;
    /// `DELETE /v1/containers/{id}?force=true`.
    fn remove<'a>(&'a self, addr: SocketAddr, id: &'a str, timeout: Duration) -> Call<'a, ()>;
    /// `POST /v1/containers/{id}/probe`.
    fn probe<'a>(
        &'a self,
        addr: SocketAddr,
        id: &'a str,
        probe: &'a Probe,
        timeout: Duration,
    ) -> Call<'a, ProbeResult>;
}

fn container_path(id: &str, what: &str) -> String {
    format!("/v1/containers/{id}{what}")
}

impl Agents {
    /// `POST /v1/containers/{id}{action}` with `body`.
    async fn container_action<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        addr: SocketAddr,
        id: &str,
        action: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<T, CallError> {
        self.post(addr, &container_path(id, action), body, timeout)
            .await
    }
}

impl AgentCalls for Agents {
    fn network<'a>(
        &'a self,
        addr: SocketAddr,
        network: &'a ClusterNetwork,
        timeout: Duration,
    ) -> Call<'a, NetworkState> {
        Box::pin(self.post(addr, "/v1/network", network, timeout))
    }

    fn node(&self, addr: SocketAddr, timeout: Duration) -> Call<'_, NodeStatus> {
        Box::pin(self.get(addr, "/v1/node", timeout))
    }

    fn containers(&self, addr: SocketAddr, timeout: Duration) -> Call<'_, Vec<ContainerInfo>> {
        Box::pin(async move {
            let list: ContainerList = self.get(addr, "/v1/containers?stats=true", timeout).await?;
            Ok(list.containers)
        })
    }

    fn run<'a>(
        &'a self,
        addr: SocketAddr,
        request: &'a RunRequest,
        timeout: Duration,
    ) -> Call<'a, ContainerInfo> {
        Box::pin(self.post(addr, "/v1/containers", request, timeout))
    }

    fn container<'a>(
        &'a self,
        addr: SocketAddr,
        id: &'a str,
        timeout: Duration,
    ) -> Call<'a, ContainerInfo> {
        Box::pin(async move { self.get(addr, &container_path(id, ""), timeout).await })
    }

    fn stop<'a>(
        &'a self,
        addr: SocketAddr,
        id: &'a str,
        request: &'a StopRequest,
        timeout: Duration,
    ) -> Call<'a, ContainerInfo> {
        Box::pin(self.container_action(addr, id, "/stop", request, timeout))
    }

    fn remove<'a>(&'a self, addr: SocketAddr, id: &'a str, timeout: Duration) -> Call<'a, ()> {
        Box::pin(async move {
            let path = format!("{}?force=true", container_path(id, ""));
            self.delete(addr, &path, timeout).await.map(drop)
        })
    }

    fn probe<'a>(
        &'a self,
        addr: SocketAddr,
        id: &'a str,
        probe: &'a Probe,
        timeout: Duration,
    ) -> Call<'a, ProbeResult> {
        Box::pin(self.container_action(addr, id, "/probe", probe, timeout))
    }
}

/// Where the controllers read the time: the monotonic clock, or a test's hand-moved one.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Instant;
}

/// The monotonic clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}
