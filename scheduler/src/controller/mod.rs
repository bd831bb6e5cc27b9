//! The controllers: one loop that compares what is desired with what agents report and acts.
//!
//! Each pass ([`Daemon::tick`]) runs under the state lock and only decides: it changes records
//! (committed to the store when the pass ends) and returns [`Action`]s, calls to agents that run
//! afterwards in their own tasks and report back through [`Daemon::with`]. So a slow or dead
//! agent never stalls the loop, and every decision is durable before anything acts on it.
//!
//! - [`heartbeat`]: polls nodes, declares them lost after the node timeout, fences stale
//!   copies when they return, follows containers (start, exit, vanish).
//! - [`replicas`]: replica counts, rolling updates (max surge / max unavailable), deletion.
//! - [`placing`]: places pending instances (priority order, preemption, `depends_on`).
//! - [`lifecycle`]: restarts with back-off, liveness and readiness probes.
//! - [`migration`]: make-before-break moves, drain and the rebalancer.
//! - [`endpoints`]: services' endpoints after every change, and draining before stops.
//! - [`autoscale`]: replica counts that follow the measured load.

pub mod actions;
pub mod autoscale;
pub mod endpoints;
pub mod heartbeat;
pub mod lifecycle;
pub mod migration;
pub mod placing;
pub mod replicas;

#[cfg(test)]
mod tests;

use crate::agents::Agents;
use crate::model::Policy;
use crate::placement::Scheduler;
use crate::state::State;
use crate::store::Store;
pub use actions::Action;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Timings and policies of the controllers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often each node is polled.
    pub heartbeat_interval: Duration,
    /// A node not heard from for this long is lost and its instances are replaced.
    pub node_timeout: Duration,
    /// How placement prefers nodes.
    pub policy: Policy,
    /// How often the rebalancer looks for hot nodes (zero: only on request).
    pub rebalance_interval: Duration,
    /// The rebalancer moves work only between nodes whose load differs by more than this
    /// (fraction of capacity): the hysteresis band.
    pub rebalance_threshold: f64,
    /// An instance moved by a migration is not moved again by the rebalancer for this long.
    pub rebalance_cooldown: Duration,
    /// The cluster network's layout (`mini-sched init`).
    pub network: crate::network::Settings,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Instances placed on a node.
    pub placements: u64,
    /// Instances evicted by preemption.
    pub preemptions: u64,
    /// Restarts after an exit or a failed liveness probe.
    pub restarts: u64,
    /// Nodes declared lost.
    pub nodes_lost: u64,
    /// Instances lost with their node (each replaced).
    pub instances_lost: u64,
    /// Stale containers stopped on returning nodes (fencing) or orphans removed.
    pub fenced: u64,
    /// Migrations started (explicit, drain or rebalancer).
    pub migrations: u64,
    /// Failed calls to agents.
    pub agent_errors: u64,
}

/// The running scheduler: state, store, agents' client and the placement pipeline.
pub struct Daemon {
    state: Mutex<State>,
    store: Store,
    /// The agents' client.
    pub agents: Agents,
    /// Timings and policies.
    pub settings: Settings,
    /// The placement pipeline of the cluster policy.
    pub scheduler: Scheduler,
    /// Wakes the loop early (a change arrived).
    pub wake: Notify,
    /// When the daemon started: nodes get a full timeout from here before being lost.
    pub started: Instant,
    /// Counters for `/metrics`.
    pub counters: Mutex<Counters>,
}

impl Daemon {
    /// A daemon over `state` loaded from `store`.
    pub fn new(state: State, store: Store, agents: Agents, settings: Settings) -> Daemon {
        Daemon {
            state: Mutex::new(state),
            store,
            agents,
            scheduler: Scheduler::new(settings.policy),
            settings,
            wake: Notify::new(),
            started: Instant::now(),
            counters: Mutex::new(Counters::default()),
        }
    }

    /// Runs `f` on the state, then commits what it changed before anyone can act on it. A
    /// store that cannot commit ends the daemon: going on would act on decisions a restart
    /// would not know of.
    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let result = f(&mut state);
        endpoints::refresh(&mut state, Instant::now());
        let batch = std::mem::take(&mut state.batch);
        if let Err(e) = self.store.commit(batch) {
            eprintln!("mini-sched: {e}; stopping (the store must record every decision)");
            std::process::exit(1);
        }
        result
    }

    /// Adds `f(counters)` to the metrics.
    pub fn count(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut self.counters.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// One pass of every controller; returns the agent calls to make.
    pub fn tick(&self, state: &mut State, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        heartbeat::due(self, state, now, &mut actions);
        heartbeat::detect_lost(self, state, now);
        autoscale::evaluate_due(self, state, now);
        replicas::reconcile(state);
        migration::finish(state);
        placing::place_pending(self, state, now, &mut actions);
        lifecycle::restarts_due(state, now, &mut actions);
        lifecycle::probes_due(state, now, &mut actions);
        lifecycle::stops_due(state, now, &mut actions);
        migration::rebalance_due(self, state, now, &mut actions);
        actions
    }

    /// The controllers' loop: a pass every 200 ms, or sooner when woken.
    pub async fn run(self: Arc<Self>) {
        loop {
            let actions = self.with(|state| self.tick(state, Instant::now()));
            self.spawn(actions);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = self.wake.notified() => {}
            }
        }
    }
}
