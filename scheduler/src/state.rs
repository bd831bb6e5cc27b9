//! The daemon's state: records that the store keeps (nodes, workloads, instances, events) and
//! what is only known while running (heartbeats, probe counts, calls in flight).
//!
//! Every change to a record goes through [`State`]'s `save_*` methods, which add it to the
//! pending [`Batch`]; the daemon commits that batch before it acts on the change (see
//! [`crate::store`]).

use crate::api::{Event, ExitView, NodeState, Phase, TaintView};
use crate::spec::WorkloadSpec;
use crate::store::{event_key, Batch, Table};
use mini_shim::protocol::NodeStatus;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

/// Events kept in memory and in the store.
pub const EVENTS_KEPT: usize = 2000;

/// A registered node as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Name.
    pub name: String,
    /// The agent's address.
    pub address: SocketAddr,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Taints.
    pub taints: Vec<TaintView>,
    /// Takes no new instances.
    pub cordoned: bool,
    /// Declared lost (no heartbeat for the node timeout); cleared by the next heartbeat.
    pub lost: bool,
    /// When it joined (RFC 3339).
    pub joined_at: String,
    /// Its agent's current certificate (PEM), as issued at its join or last renewal: a
    /// re-join must present it, and the scheduler renews it before it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Its share of the cluster network (CIDR), given when it joined (see [`crate::network`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
}

impl InstanceRecord {
    /// A new instance `id` of `workload` at `revision`, pending placement.
    pub fn pending(id: &str, workload: &str, revision: u64) -> InstanceRecord {
        InstanceRecord {
            id: id.to_string(),
            workload: workload.to_string(),
            revision,
            node: None,
            phase: Phase::Pending,
            ready: false,
            restarts: 0,
            started_at: None,
            exit: None,
            reason: None,
            created_at: now_rfc3339(),
            next_restart_at: None,
            replaced_by: None,
            replaces: None,
            target_node: None,
            moved_at: None,
            start_failure: None,
        }
    }
}

impl NodeRecord {
    /// A node joining now at `address`: no labels, taints, certificate or subnet yet.
    pub fn new(name: &str, address: SocketAddr) -> NodeRecord {
        NodeRecord {
            name: name.to_string(),
            address,
            labels: BTreeMap::new(),
            taints: Vec::new(),
            cordoned: false,
            lost: false,
            joined_at: now_rfc3339(),
            certificate: None,
            subnet: None,
        }
    }
}

/// What is known of a node from its heartbeats.
#[derive(Debug, Default)]
pub struct NodeLive {
    /// When the last heartbeat succeeded.
    pub last_heartbeat: Option<Instant>,
    /// Its wall-clock time, for people.
    pub last_heartbeat_at: Option<SystemTime>,
    /// The last capacity and usage report.
    pub status: Option<NodeStatus>,
    /// A heartbeat call is under way.
    pub polling: bool,
    /// When the last heartbeat call started.
    pub last_poll: Option<Instant>,
    /// Polls made since it was lost (its polls back off).
    pub lost_polls: u32,
    /// When it joined, if it joined while this daemon runs: the node timeout counts from here
    /// until the first heartbeat.
    pub joined: Option<Instant>,
    /// Why its agent refused or failed the last cluster network it was sent, if it did.
    pub network_error: Option<String>,
}

/// A node: its record and live view.
#[derive(Debug)]
pub struct Node {
    /// Stored.
    pub record: NodeRecord,
    /// Not stored.
    pub live: NodeLive,
}

impl Node {
    /// Health as the API reports it.
    pub fn state(&self) -> NodeState {
        if self.record.lost {
            NodeState::Lost
        } else if self.live.last_heartbeat.is_none() {
            NodeState::Joining
        } else {
            NodeState::Ready
        }
    }

    /// Heard from and not lost: may take instances.
    pub fn ready(&self) -> bool {
        self.state() == NodeState::Ready
    }
}

/// One revision of a workload's template.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revision {
    /// Number, from 1.
    pub revision: u64,
    /// When it was applied (RFC 3339).
    pub created_at: String,
    /// The spec as applied.
    pub spec: WorkloadSpec,
    /// For a registry image: the manifest digest the revision's first started instance ran.
    /// Every later start of the revision (restarts, replacements, `rollout undo` to it) runs
    /// this digest, whatever the tag names by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
}

/// Revisions kept per workload for rollback.
pub const REVISIONS_KEPT: usize = 10;

/// A workload as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadRecord {
    /// Name.
    pub name: String,
    /// The current spec (its replica count is the desired count).
    pub spec: WorkloadSpec,
    /// The current revision's number.
    pub revision: u64,
    /// Revisions kept, oldest first; the last is the current one.
    pub revisions: Vec<Revision>,
    /// The next instance sequence number (instance ids are never reused).
    pub next_seq: u64,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// Being deleted: every instance is stopped, then the record goes.
    pub deleting: bool,
    /// A `scale` by hand paused autoscaling until the next `apply`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub autoscale_paused: bool,
}

impl WorkloadRecord {
    /// A new workload's record: `spec` is its first revision, numbered `revision`, and its
    /// instances are numbered from `next_seq`.
    pub fn new(spec: WorkloadSpec, revision: u64, next_seq: u64) -> WorkloadRecord {
        WorkloadRecord {
            name: spec.name.clone(),
            spec: spec.clone(),
            revision,
            revisions: vec![Revision {
                revision,
                created_at: now_rfc3339(),
                spec,
                image_digest: None,
            }],
            next_seq,
            created_at: now_rfc3339(),
            deleting: false,
            autoscale_paused: false,
        }
    }
}

/// An instance as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// `<workload>-<seq>`, also the container id.
    pub id: String,
    /// Its workload.
    pub workload: String,
    /// The revision it runs.
    pub revision: u64,
    /// Where it is placed.
    pub node: Option<String>,
    /// Phase.
    pub phase: Phase,
    /// Readiness.
    pub ready: bool,
    /// Restarts so far.
    pub restarts: u32,
    /// When its current process started (RFC 3339).
    pub started_at: Option<String>,
    /// How its last process ended.
    pub exit: Option<ExitView>,
    /// Why it is pending, stopping or failed.
    pub reason: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// During back-off, when the restart is due (RFC 3339).
    pub next_restart_at: Option<String>,
    /// A migration's replacement for this instance (it stops once the replacement is ready).
    pub replaced_by: Option<String>,
    /// The instance this one replaces (migration).
    pub replaces: Option<String>,
    /// The node this instance must go to (migration to a named node).
    pub target_node: Option<String>,
    /// When it was last moved by a migration or the rebalancer (RFC 3339): the rebalancer's
    /// cool-down.
    pub moved_at: Option<String>,
    /// The agent's error code when its last start failed for a reason a retry does not fix
    /// ([`crate::api::PERMANENT_START_FAILURES`]); cleared once it starts.
    #[serde(default)]
    pub start_failure: Option<String>,
}

/// What is known of an instance only while running.
#[derive(Debug, Default)]
pub struct InstanceLive {
    /// An agent call about it is under way: do not start another.
    pub in_flight: bool,
    /// When its process was seen starting.
    pub started: Option<Instant>,
    /// When its current start (a restart's) was asked of its node: what a container list
    /// that began before this says is about the process before it, and is ignored.
    pub start_issued: Option<Instant>,
    /// Since when its node reports its state as `unknown` (cannot be read), if it does.
    pub unknown_since: Option<Instant>,
    /// Consecutive liveness failures.
    pub liveness_failures: u32,
    /// Consecutive readiness successes and failures.
    pub readiness_successes: u32,
    /// Consecutive readiness failures.
    pub readiness_failures: u32,
    /// When the last liveness probe ran.
    pub last_liveness: Option<Instant>,
    /// When the last readiness probe ran.
    pub last_readiness: Option<Instant>,
    /// A probe call is under way.
    pub probing: bool,
    /// Back-off: not before this.
    pub not_before: Option<Instant>,
    /// The back-off's exponent: restarts since the process last ran long enough.
    pub backoff_step: u32,
    /// Measured usage, from the heartbeats' container stats.
    pub usage: Usage,
    /// Its address on the cluster network, as its node last reported it.
    pub address: Option<String>,
}

/// An instance's measured usage: cpu as a rate between two heartbeats, memory as its working
/// set.
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    /// CPU in use, millicores (0 until two samples exist).
    pub cpu_millis: u64,
    /// Memory working set, bytes.
    pub memory_bytes: u64,
    /// The cumulative cpu time of the last sample, ns.
    pub cpu_ns: u64,
    /// When the last sample arrived.
    pub at: Option<Instant>,
    /// A cpu rate exists (two samples arrived).
    pub rated: bool,
}

impl Usage {
    /// Adds a sample of cumulative cpu time `cpu_ns` and working set `memory_bytes` taken now.
    pub fn sample(&mut self, cpu_ns: u64, memory_bytes: u64, now: Instant) {
        if let Some(at) = self.at {
            let elapsed = now.duration_since(at).as_nanos() as u64;
            if elapsed > 0 && cpu_ns >= self.cpu_ns {
                self.cpu_millis = (cpu_ns - self.cpu_ns).saturating_mul(1000) / elapsed;
                self.rated = true;
            }
        }
        self.cpu_ns = cpu_ns;
        self.memory_bytes = memory_bytes;
        self.at = Some(now);
    }
}

/// An instance: its record and live view.
#[derive(Debug)]
pub struct Instance {
    /// Stored.
    pub record: InstanceRecord,
    /// Not stored.
    pub live: InstanceLive,
}

/// Everything the daemon knows, and the changes not committed yet.
#[derive(Debug, Default)]
pub struct State {
    /// Nodes by name.
    pub nodes: BTreeMap<String, Node>,
    /// Workloads by name.
    pub workloads: BTreeMap<String, WorkloadRecord>,
    /// Instances by id.
    pub instances: BTreeMap<String, Instance>,
    /// Recent events, oldest first.
    pub events: VecDeque<Event>,
    /// The next event's number.
    pub next_event: u64,
    /// Changes to commit.
    pub batch: Batch,
    /// Stale containers being removed, as (node, container id).
    pub removing: HashSet<(String, String)>,
    /// When the rebalancer last ran.
    pub last_rebalance: Option<Instant>,
    /// Services, their endpoints and what each agent holds of them.
    pub services: crate::service::Services,
    /// The horizontal autoscalers, by workload.
    pub autoscalers: crate::controller::autoscale::Autoscalers,
    /// Instance ids by workload (kept by [`State::insert_instance`] and
    /// [`State::remove_instance`]).
    by_workload: HashMap<String, BTreeSet<String>>,
    /// Instance ids by the node they are bound to (kept by [`State::bind`] too).
    by_node: HashMap<String, BTreeSet<String>>,
}

/// The sequence number of instance `id` (`<workload>-<seq>`), for ordering.
pub fn sequence(id: &str) -> u64 {
    id.rsplit('-')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Now as RFC 3339 (seconds precision).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// `t` as RFC 3339 (milliseconds precision).
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

impl State {
    /// Records the node `name` for the store (or its removal, when it is gone).
    pub fn save_node(&mut self, name: &str) {
        match self.nodes.get(name) {
            Some(node) => self.batch.put(Table::Nodes, name, &node.record),
            None => self.batch.remove(Table::Nodes, name),
        }
    }

    /// Records the workload `name` for the store (or its removal, when it is gone).
    pub fn save_workload(&mut self, name: &str) {
        match self.workloads.get(name) {
            Some(w) => self.batch.put(Table::Workloads, name, w),
            None => self.batch.remove(Table::Workloads, name),
        }
    }

    /// Records the instance `id` for the store (or its removal, when it is gone).
    pub fn save_instance(&mut self, id: &str) {
        match self.instances.get(id) {
            Some(i) => self.batch.put(Table::Instances, id, &i.record),
            None => self.batch.remove(Table::Instances, id),
        }
    }

    /// Records an event about `object` (`workload/w`, `instance/i`, `node/n`).
    pub fn event(&mut self, object: String, reason: &str, message: String) {
        let seq = self.next_event;
        self.next_event += 1;
        let event = Event {
            seq,
            time: rfc3339(SystemTime::now()),
            object,
            reason: reason.to_string(),
            message,
        };
        self.batch.put(Table::Events, &event_key(seq), &event);
        self.events.push_back(event);
        while self.events.len() > EVENTS_KEPT {
            if let Some(old) = self.events.pop_front() {
                self.batch.remove(Table::Events, &event_key(old.seq));
            }
        }
    }

    /// Sets an instance's phase and reason, saves it and records an event when the phase
    /// changes.
    pub fn set_phase(&mut self, id: &str, phase: Phase, reason: Option<String>) {
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        let changed = instance.record.phase != phase;
        instance.record.phase = phase;
        if phase != Phase::Running {
            instance.record.ready = false;
        }
        if reason.is_some() || changed {
            instance.record.reason = reason.clone();
        }
        self.save_instance(id);
        if changed {
            let message = match reason {
                Some(r) => format!("{phase:?}: {r}"),
                None => format!("{phase:?}"),
            };
            self.event(format!("instance/{id}"), &format!("{phase:?}"), message);
        }
    }

    /// The spec instance `id` runs: its revision's, or the workload's current one when that
    /// revision is no longer kept.
    pub fn spec_of(&self, id: &str) -> Option<&WorkloadSpec> {
        let instance = &self.instances.get(id)?.record;
        let workload = self.workloads.get(&instance.workload)?;
        Some(
            workload
                .revisions
                .iter()
                .find(|r| r.revision == instance.revision)
                .map_or(&workload.spec, |r| &r.spec),
        )
    }

    /// The image digest recorded for the revision instance `id` runs.
    pub fn image_digest_of(&self, id: &str) -> Option<&str> {
        let instance = &self.instances.get(id)?.record;
        let workload = self.workloads.get(&instance.workload)?;
        workload
            .revisions
            .iter()
            .find(|r| r.revision == instance.revision)?
            .image_digest
            .as_deref()
    }

    /// Records `digest`, the image instance `id` started with, for its revision unless the
    /// revision has one already.
    pub fn record_image_digest(&mut self, id: &str, digest: &str) {
        let Some(instance) = self.instances.get(id) else {
            return;
        };
        let (name, revision) = (instance.record.workload.clone(), instance.record.revision);
        let Some(w) = self.workloads.get_mut(&name) else {
            return;
        };
        let Some(r) = w.revisions.iter_mut().find(|r| r.revision == revision) else {
            return;
        };
        if r.image_digest.is_some() {
            return;
        }
        r.image_digest = Some(digest.to_string());
        self.save_workload(&name);
        self.event(
            format!("workload/{name}"),
            "ImageResolved",
            format!("revision {revision} runs image {digest}"),
        );
    }

    /// Adds `instance` (replacing one of its id), indexed by its workload and node. Every
    /// instance enters the state here: the indexes must know it.
    pub fn insert_instance(&mut self, instance: Instance) {
        let id = instance.record.id.clone();
        self.remove_instance(&id);
        index(&mut self.by_workload, &instance.record.workload, &id);
        if let Some(node) = &instance.record.node {
            index(&mut self.by_node, node, &id);
        }
        self.instances.insert(id, instance);
    }

    /// Removes instance `id` from the state and its indexes.
    pub fn remove_instance(&mut self, id: &str) -> Option<Instance> {
        let instance = self.instances.remove(id)?;
        unindex(&mut self.by_workload, &instance.record.workload, id);
        if let Some(node) = &instance.record.node {
            unindex(&mut self.by_node, node, id);
        }
        Some(instance)
    }

    /// Binds instance `id` to `node` (its placement), keeping the node index.
    pub fn bind(&mut self, id: &str, node: &str) {
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        if let Some(old) = instance.record.node.replace(node.to_string()) {
            unindex(&mut self.by_node, &old, id);
        }
        index(&mut self.by_node, node, id);
    }

    /// The instances of `workload`, in id order.
    pub fn instances_of<'a>(&'a self, workload: &str) -> impl Iterator<Item = &'a Instance> {
        self.indexed(&self.by_workload, workload)
    }

    /// The instances bound to `node` (finished ones included), in id order.
    pub fn instances_on<'a>(&'a self, node: &str) -> impl Iterator<Item = &'a Instance> {
        self.indexed(&self.by_node, node)
    }

    fn indexed<'a>(
        &'a self,
        by: &'a HashMap<String, BTreeSet<String>>,
        key: &str,
    ) -> impl Iterator<Item = &'a Instance> {
        by.get(key)
            .into_iter()
            .flatten()
            .filter_map(|id| self.instances.get(id))
    }
}

fn index(by: &mut HashMap<String, BTreeSet<String>>, key: &str, id: &str) {
    by.entry(key.to_string())
        .or_default()
        .insert(id.to_string());
}

fn unindex(by: &mut HashMap<String, BTreeSet<String>>, key: &str, id: &str) {
    if let Some(ids) = by.get_mut(key) {
        ids.remove(id);
        if ids.is_empty() {
            by.remove(key);
        }
    }
}
