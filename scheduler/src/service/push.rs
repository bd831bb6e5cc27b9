//! Sending the service table to the agents: woken by every change the endpoints controller
//! makes ([`crate::controller::endpoints::refresh`]), it sends each agent on the cluster
//! network what it lacks, one call per agent at a time: `PATCH /v1/services` with the
//! services changed since the generation it acknowledged, or `PUT /v1/services` with the
//! whole table when that generation is unknown (a new or restarted agent, a restarted
//! scheduler, a failed push) or the agent answers 409 `generation_mismatch`.
//!
//! After the scheduler starts, nothing is sent until every node was heard from (or the node
//! timeout passed): the instances' addresses come with the heartbeats, and a table sent
//! before them would empty the agents' services for a moment.

use super::Services;
use crate::controller::endpoints::targets;
use crate::controller::Daemon;
use crate::state::State;
use hyper::Method;
use mini_shim::protocol::{ServiceChanges, ServiceTable, ServicesState};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The agents' route.
const PATH: &str = "/v1/services";
/// How long one push may take.
const PUSH_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the pusher looks again without being woken (retries after failures).
const IDLE: Duration = Duration::from_millis(500);
/// The longest wait before retrying a failing agent.
const MAX_RETRY: Duration = Duration::from_secs(10);

/// What one agent is sent.
#[derive(Debug)]
enum Body {
    Table(ServiceTable),
    Changes(ServiceChanges),
}

/// One push.
#[derive(Debug)]
struct Call {
    node: String,
    addr: SocketAddr,
    body: Body,
}

/// Pushes changes until the daemon ends.
pub async fn run(daemon: Arc<Daemon>) {
    let wake = daemon.with(|s| s.services.wake.clone());
    loop {
        let calls = daemon.with(|s| plan(&daemon, s, Instant::now()));
        for call in calls {
            tokio::spawn(send(daemon.clone(), call));
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(IDLE) => {}
        }
    }
}

/// The pushes due now, each marked under way.
fn plan(daemon: &Daemon, state: &mut State, now: Instant) -> Vec<Call> {
    let settled = now >= daemon.started + daemon.settings.node_timeout
        || state
            .nodes
            .values()
            .filter(|n| !n.record.lost && n.record.subnet.is_some())
            .all(|n| n.live.last_heartbeat.is_some());
    if !settled {
        return Vec::new();
    }
    let mut calls = Vec::new();
    for node in targets(state) {
        let addr = state.nodes[&node].record.address;
        let services = &state.services;
        let push = services.nodes.get(&node);
        let acked = push.and_then(|p| p.acked);
        let busy = push.is_some_and(|p| p.in_flight || p.retry_at.is_some_and(|t| now < t));
        if busy || acked == Some(services.generation) {
            continue;
        }
        let body = match acked {
            Some(from) if from >= services.horizon && from < services.generation => {
                Body::Changes(changes(services, from))
            }
            _ => Body::Table(table(services)),
        };
        state
            .services
            .nodes
            .entry(node.clone())
            .or_default()
            .in_flight = true;
        calls.push(Call { node, addr, body });
    }
    calls
}

/// The whole table.
fn table(services: &Services) -> ServiceTable {
    ServiceTable {
        generation: services.generation,
        domain: services.settings.domain.clone(),
        services: services.entries.values().map(|(e, _)| e.clone()).collect(),
    }
}

/// The services changed since generation `from`.
fn changes(services: &Services, from: u64) -> ServiceChanges {
    ServiceChanges {
        from,
        generation: services.generation,
        upsert: services
            .entries
            .values()
            .filter(|(_, g)| *g > from)
            .map(|(e, _)| e.clone())
            .collect(),
        remove: services
            .removed
            .iter()
            .filter(|(_, g)| **g > from)
            .map(|(n, _)| n.clone())
            .collect(),
    }
}

/// Makes one push and records what the agent holds now.
async fn send(daemon: Arc<Daemon>, call: Call) {
    let agents = &daemon.agents;
    let (sent, full, result) = match &call.body {
        Body::Table(t) => (
            t.generation,
            true,
            agents
                .send_json::<_, ServicesState>(call.addr, Method::PUT, PATH, t, PUSH_TIMEOUT)
                .await,
        ),
        Body::Changes(c) => (
            c.generation,
            false,
            agents
                .send_json::<_, ServicesState>(call.addr, Method::PATCH, PATH, c, PUSH_TIMEOUT)
                .await,
        ),
    };
    let now = Instant::now();
    daemon.with(|state| {
        let services = &mut state.services;
        let push = services.nodes.entry(call.node.clone()).or_default();
        push.in_flight = false;
        match result {
            Ok(answer) => {
                let before = push.acked.unwrap_or(sent.saturating_sub(1));
                push.acked = Some(answer.generation);
                push.acked_at = Some(now);
                push.failures = 0;
                push.retry_at = None;
                push.error = None;
                services.stats.pushes += 1;
                if full {
                    services.stats.full += 1;
                }
                let latencies: Vec<f64> = services
                    .made_at
                    .iter()
                    .filter(|(g, _)| *g > before && *g <= answer.generation)
                    .map(|(_, at)| now.duration_since(*at).as_secs_f64())
                    .collect();
                for seconds in latencies {
                    services.stats.observe(seconds);
                }
            }
            Err(e) if e.code() == Some("generation_mismatch") => {
                // The agent holds another generation than we thought: the whole table next.
                push.acked = None;
                services.wake.notify_one();
            }
            Err(e) => {
                push.acked = None;
                push.failures = push.failures.saturating_add(1);
                let wait = Duration::from_millis(250)
                    .saturating_mul(1 << push.failures.min(6))
                    .min(MAX_RETRY);
                push.retry_at = Some(now + wait);
                let first = push.error.is_none();
                push.error = Some(e.to_string());
                services.stats.failures += 1;
                if first {
                    state.event(
                        format!("node/{}", call.node),
                        "ServicesPushFailed",
                        format!("sending the service table: {e}; retrying"),
                    );
                }
            }
        }
    });
}
