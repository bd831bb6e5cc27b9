//! The controllers: one loop that compares what is desired with what agents report and acts.
//!
//! Each pass ([`Daemon::tick`]) runs under the state lock and only decides: it changes records
//! (committed to the store when the pass ends, after the lock is released, together with
//! whatever other writers queued meanwhile) and returns [`Action`]s, calls to agents that run
//! afterwards in their own tasks, once the pass's commit is durable, and report back through
//! [`Daemon::with`]. So a slow or dead agent never stalls the loop, every decision is durable
//! before anything acts on it, and readers ([`Daemon::read`]) never wait for an fsync.
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
pub mod calls;
pub mod endpoints;
pub mod heartbeat;
pub mod lifecycle;
pub mod migration;
pub mod placing;
pub mod replicas;
pub mod supervise;

#[cfg(test)]
mod driven;
#[cfg(test)]
mod fake;
#[cfg(test)]
mod races;
#[cfg(test)]
mod tests;

use crate::agents::Agents;
use crate::model::Policy;
use crate::placement::Scheduler;
use crate::state::State;
use crate::store::{Committer, Store};
pub use actions::Action;
use calls::{AgentCalls, Clock, SystemClock};
use std::collections::HashMap;
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
    committer: Committer,
    /// The agents' client (the API's pass-through calls: logs, exec; certificate renewal).
    pub agents: Agents,
    /// The controllers' calls to agents: the same client, or a test's fake.
    pub calls: Arc<dyn AgentCalls>,
    /// The controllers' clock.
    clock: Arc<dyn Clock>,
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
    /// When each node's last heartbeat answer arrived, stamped as it arrives (before the
    /// answer waits for the state): a node is lost only when its answers stop, never because
    /// recording them was slow.
    heard: Mutex<HashMap<String, Instant>>,
}

impl Daemon {
    /// A daemon over `state` loaded from `store`.
    pub fn new(state: State, store: Store, agents: Agents, settings: Settings) -> Daemon {
        Daemon {
            state: Mutex::new(state),
            committer: Committer::new(store),
            calls: Arc::new(agents.clone()),
            clock: Arc::new(SystemClock),
            agents,
            scheduler: Scheduler::new(settings.policy),
            settings,
            wake: Notify::new(),
            started: Instant::now(),
            counters: Mutex::new(Counters::default()),
            heard: Mutex::new(HashMap::new()),
        }
    }

    /// This daemon making its calls through `calls` and reading the time from `clock` (the
    /// controllers' unit tests).
    #[cfg(test)]
    pub fn with_fakes(mut self, calls: Arc<dyn AgentCalls>, clock: Arc<dyn Clock>) -> Daemon {
        self.started = clock.now();
        self.calls = calls;
        self.clock = clock;
        self
    }

    /// Now, by the controllers' clock.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Stamps a heartbeat answer from `node` that arrived at `at`.
    pub fn hear(&self, node: &str, at: Instant) {
        let mut heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        let last = heard.entry(node.to_string()).or_insert(at);
        *last = (*last).max(at);
    }

    /// When the last heartbeat answer from `node` arrived, recorded in the state or not.
    pub fn heard(&self, node: &str) -> Option<Instant> {
        let heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        heard.get(node).copied()
    }

    /// Forgets the heartbeats of a deleted node.
    pub fn forget(&self, node: &str) {
        let mut heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        heard.remove(node);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the state, then waits until what it changed (and every change made before
    /// it) is durable, so nobody acts on it before a restart would know of it. The commit
    /// happens after the state is released (group commit, [`Committer`]): other passes, API
    /// reads and heartbeats go on meanwhile, and the wait is off the async workers
    /// (`block_in_place`). A store that cannot commit ends the daemon: going on would act
    /// on decisions a restart would not know of.
    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (result, ticket) = {
            let mut state = self.lock();
            let result = f(&mut state);
            endpoints::refresh(&mut state, Instant::now());
            let batch = std::mem::take(&mut state.batch);
            (result, self.committer.queue_batch(batch))
        };
        let wait = || self.committer.wait(ticket);
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let committed = if multi_thread {
            tokio::task::block_in_place(wait)
        } else {
            wait()
        };
        if let Err(e) = committed {
            eprintln!("mini-sched: {e}; stopping (the store must record every decision)");
            std::process::exit(1);
        }
        result
    }

    /// Runs `f` on the state as it is now, for a reader (the API's views, `/metrics`): it
    /// never waits for a commit, and may see changes a commit under way has not made
    /// durable yet (which nothing acts on before they are).
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.lock())
    }

    /// How many transactions the store has committed.
    pub fn commits(&self) -> u64 {
        self.committer.commits()
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
            let actions = self.with(|state| self.tick(state, self.now()));
            self.spawn(actions);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = self.wake.notified() => {}
            }
        }
    }
}
