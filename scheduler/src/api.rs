//! The daemon's API as the CLI sees it: HTTP/1.1 with JSON bodies on a root-only unix socket.
//!
//! Routes (all under `/v1`, errors as [`ErrorBody`] with a non-2xx status, the shim protocol's
//! shape):
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `POST /v1/apply[?dry_run=true]` | a workload or service spec (YAML or JSON) | [`ApplyResult`] |
//! | `GET /v1/nodes` | | `[NodeView]` |
//! | `GET /v1/nodes/{n}` | | [`NodeDetail`] |
//! | `POST /v1/nodes/{n}/cordon`, `/uncordon`, `/drain` | | [`NodeView`] |
//! | `DELETE /v1/nodes/{n}` | | `{"deleted": n}` (its instances are replaced elsewhere) |
//! | `POST /v1/nodes/{n}/labels` | [`LabelsRequest`] | [`NodeView`] |
//! | `POST /v1/nodes/{n}/taints` | [`TaintsRequest`] | [`NodeView`] |
//! | `GET /v1/workloads` | | `[WorkloadView]` |
//! | `GET /v1/workloads/{w}` | | [`WorkloadDetail`] |
//! | `DELETE /v1/workloads/{w}` | | [`WorkloadView`] (its instances stop in the background) |
//! | `POST /v1/workloads/{w}/scale` | [`ScaleRequest`] | [`WorkloadView`] |
//! | `GET /v1/workloads/{w}/rollout` | | [`RolloutStatus`] |
//! | `POST /v1/workloads/{w}/rollback` | [`RollbackRequest`] | [`RolloutStatus`] |
//! | `GET /v1/instances[?workload=w]` | | `[InstanceView]` |
//! | `GET /v1/instances/{i}` | | [`InstanceDetail`] |
//! | `POST /v1/instances/{i}/migrate` | [`MigrateRequest`] | [`MigrateResult`] |
//! | `GET /v1/instances/{i}/logs[?tail=N][&follow=true]` | | the agent's NDJSON log lines |
//! | `POST /v1/instances/{i}/exec` | `mini_shim::protocol::ExecRequest` | `ExecResult` |
//! | `POST /v1/rebalance` | | [`RebalanceResult`] |
//! | `GET /v1/services` | | `[ServiceView]` |
//! | `GET /v1/services/{s}` | | [`ServiceDetail`] |
//! | `DELETE /v1/services/{s}` | | [`ServiceView`] |
//! | `GET /v1/events[?workload=w]` | | `[Event]` |
//! | `GET /metrics` | | Prometheus text |

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use mini_shim::protocol::{ErrorBody, ErrorInfo};

/// Where the daemon listens for the CLI unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/mini-sched.sock";

/// What `apply` did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApplyResult {
    /// What was applied: `workload` or `service`.
    #[serde(default = "workload_kind")]
    pub kind: String,
    /// The workload's (or service's) name.
    pub workload: String,
    /// A service's virtual address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Its current revision after the apply (a new one when the template changed).
    pub revision: u64,
    /// `created`, `updated` (a new revision: a rolling update starts), `scaled` (only the
    /// replica count changed), `configured` (other settings without a new revision) or
    /// `unchanged`; with `dry_run`, what would have happened.
    pub action: String,
}

fn workload_kind() -> String {
    "workload".into()
}

/// A port of a service as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServicePortView {
    /// The port on the virtual address.
    pub port: u16,
    /// The port the instances listen on.
    pub target_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The port on every node, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<u16>,
}

/// One row of `get services`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceView {
    /// Name.
    pub name: String,
    /// Its virtual address.
    pub address: String,
    /// `<name>.<cluster domain>`.
    pub dns_name: String,
    /// Its ports.
    pub ports: Vec<ServicePortView>,
    /// What it selects: `workload=W` or `k=v,...`.
    pub selector: String,
    /// `even` or `load`.
    pub balance: String,
    /// Endpoints ready (receiving new connections).
    pub ready: u32,
    /// Instances the selector picks (not ended).
    pub total: u32,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

/// An instance a service selects, for `describe service`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EndpointView {
    /// The instance.
    pub instance: String,
    /// Its node.
    pub node: Option<String>,
    /// Its cluster-network address.
    pub address: Option<String>,
    /// Whether it receives new connections.
    pub ready: bool,
    /// Why not, when it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its current weight (1–100), when ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u8>,
}

/// What an agent holds of the service table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceNodeView {
    /// The node.
    pub node: String,
    /// The generation it acknowledged, if known.
    pub generation: Option<u64>,
    /// Why the last push to it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `describe service`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceDetail {
    /// The row.
    #[serde(flatten)]
    pub service: ServiceView,
    /// Seconds a client stays with its endpoint, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_seconds: Option<u64>,
    /// Every instance the selector picks.
    pub endpoints: Vec<EndpointView>,
    /// The table's current generation.
    pub generation: u64,
    /// What each agent holds.
    pub nodes: Vec<ServiceNodeView>,
    /// Recent events about it.
    pub events: Vec<Event>,
}

/// Amounts of the resources placement accounts for.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Amounts {
    /// CPU in millicores.
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Processes.
    pub pids: u64,
}

/// A node's health as the scheduler sees it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Joined, not heard from yet.
    Joining,
    /// Heartbeats arrive.
    Ready,
    /// No heartbeat for longer than the node timeout: its instances were replaced elsewhere.
    Lost,
}

/// A taint as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaintView {
    /// Key.
    pub key: String,
    /// Value (may be empty).
    #[serde(default)]
    pub value: String,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
}

/// One row of `get nodes`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeView {
    /// Node name.
    pub name: String,
    /// The agent's address.
    pub address: String,
    /// Health.
    pub state: NodeState,
    /// Takes no new instances.
    pub cordoned: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Taints.
    pub taints: Vec<TaintView>,
    /// What the node offers.
    pub capacity: Amounts,
    /// What its instances request.
    pub allocated: Amounts,
    /// Busy fraction of all CPUs at the last heartbeat.
    pub cpu_busy: f64,
    /// Memory in use (total − available) at the last heartbeat.
    pub memory_used_bytes: u64,
    /// Instances assigned to it and not finished.
    pub instances: u32,
    /// When the last heartbeat arrived (RFC 3339).
    pub last_heartbeat: Option<String>,
    /// Its subnet of the cluster network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
}

/// `describe node`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeDetail {
    /// The row.
    #[serde(flatten)]
    pub node: NodeView,
    /// When it joined (RFC 3339).
    pub joined_at: String,
    /// Its instances.
    pub instances_list: Vec<InstanceView>,
    /// Recent events about it.
    pub events: Vec<Event>,
}

/// Labels to set and remove.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LabelsRequest {
    /// Set (or overwrite) these.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Remove these keys.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Taints to add and remove.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TaintsRequest {
    /// Add (or replace, by key) these.
    #[serde(default)]
    pub add: Vec<TaintView>,
    /// Remove the taints with these keys.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// One row of `get workloads`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkloadView {
    /// Name.
    pub name: String,
    /// Desired replicas.
    pub replicas: u32,
    /// Instances running and ready (readiness probe passing, or running without one).
    pub ready: u32,
    /// Ready instances of the current revision.
    pub up_to_date: u32,
    /// The current revision.
    pub revision: u64,
    /// Scheduling priority.
    pub priority: i32,
    /// `available`, `progressing` (a rollout or scale is under way), `degraded` (fewer ready
    /// than desired and nothing can be done now, e.g. pending instances) or `deleting`.
    pub status: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// Its autoscaling, if it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<crate::autoscale::AutoscaleStatus>,
}

/// A revision of a workload's template.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RevisionView {
    /// Number, from 1.
    pub revision: u64,
    /// When it was applied (RFC 3339).
    pub created_at: String,
    /// The spec of that revision (JSON).
    pub spec: serde_json::Value,
}

/// `describe workload`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkloadDetail {
    /// The row.
    #[serde(flatten)]
    pub workload: WorkloadView,
    /// The current spec (JSON).
    pub spec: serde_json::Value,
    /// Every revision kept, oldest first.
    pub revisions: Vec<RevisionView>,
    /// The rollout.
    pub rollout: RolloutStatus,
    /// Its instances, including finished ones still remembered.
    pub instances: Vec<InstanceView>,
    /// Recent events about it and its instances.
    pub events: Vec<Event>,
    /// The requests and limits its measured usage calls for, once measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rightsizing: Option<crate::autoscale::Rightsizing>,
}

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Not placed: no node fits (see `pending_reason`), or waiting for `depends_on`.
    Pending,
    /// Placed; the agent is starting it.
    Starting,
    /// Its process runs.
    Running,
    /// Exited; waiting out the restart back-off.
    BackOff,
    /// Being stopped (scale down, rollout, migration, drain, delete).
    Stopping,
    /// Stopped on purpose; kept for history.
    Stopped,
    /// Exited with code 0 and not restarted (restart policy `on-failure` or `never`).
    Succeeded,
    /// Exited and not restarted (restart policy), or failed to start for good.
    Failed,
    /// Its node was lost; replaced elsewhere; stopped if the node comes back.
    Lost,
    /// Lost, and ended for good: its replacement (`reason` names it) runs elsewhere and its
    /// copy on the lost node was removed when the node came back (or the node was deleted).
    Replaced,
}

impl Phase {
    /// True for phases an instance never leaves.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Phase::Stopped | Phase::Succeeded | Phase::Failed | Phase::Lost | Phase::Replaced
        )
    }

    /// True for instances that were superseded (stopped, or lost and replaced): `get
    /// instances` lists them only with `--all`.
    pub fn is_ended(self) -> bool {
        matches!(self, Phase::Stopped | Phase::Replaced)
    }
}

/// How an instance's last process ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExitView {
    /// Exit code (128 + signal number when killed by a signal).
    pub code: i32,
    /// The signal's name, when a signal ended it.
    pub signal: Option<String>,
    /// The OOM killer ended it.
    pub oom_killed: bool,
    /// When (RFC 3339).
    pub finished_at: String,
}

/// One row of `get instances`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstanceView {
    /// `<workload>-<seq>`; also the container id on the node.
    pub id: String,
    /// Its workload.
    pub workload: String,
    /// The workload revision it runs.
    pub revision: u64,
    /// Where it is placed.
    pub node: Option<String>,
    /// Phase.
    pub phase: Phase,
    /// Readiness (probe passing, or running without a readiness probe).
    pub ready: bool,
    /// Restarts so far.
    pub restarts: u32,
    /// When its current process started (RFC 3339).
    pub started_at: Option<String>,
    /// How its last process ended.
    pub exit: Option<ExitView>,
    /// Why it is pending or failed: the placement filters' verdict or the agent's error.
    pub reason: Option<String>,
    /// When the instance was created (RFC 3339).
    pub created_at: String,
    /// The agent's error code when its last start failed for a reason a retry does not fix
    /// (one of [`PERMANENT_START_FAILURES`]); absent once it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_failure: Option<String>,
    /// Its address on the cluster network (`network: cluster`), once its node reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// The agent's error codes for a start that fails the same way however often it is retried
/// (the source is missing, the agent refuses the request, the runtime cannot start the
/// process): restarts go on (the cause may be fixed meanwhile) but `get instances` shows
/// `StartFailed` and `rollout status` fails at once.
pub const PERMANENT_START_FAILURES: [&str; 3] =
    ["source_unavailable", "bad_request", "start_failed"];

/// `describe instance`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstanceDetail {
    /// The row.
    #[serde(flatten)]
    pub instance: InstanceView,
    /// When the next restart is due, during back-off (RFC 3339).
    pub next_restart_at: Option<String>,
    /// For a pending instance: each ready node and the placement filter that rejects it there
    /// (`fits` where none does).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placement: Vec<NodeVerdict>,
    /// Measured usage of its container (cpu rate between heartbeats, memory working set);
    /// absent until two heartbeats have sampled it.
    #[serde(default)]
    pub usage: Option<Amounts>,
    /// Recent events about it.
    pub events: Vec<Event>,
}

/// A node and placement's verdict on it for one instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeVerdict {
    /// The node.
    pub node: String,
    /// The first filter that rejects the instance there (`insufficient resources`, `node
    /// cordoned`, `untolerated taint`, …), or `fits`.
    pub verdict: String,
}

/// `scale`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    /// The new desired count.
    pub replicas: u32,
}

/// `rollout undo`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The revision to go back to; default the one before the current.
    #[serde(default)]
    pub revision: Option<u64>,
}

/// `rollout status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RolloutStatus {
    /// The workload.
    pub workload: String,
    /// The revision being rolled out (or done).
    pub revision: u64,
    /// `complete`, `progressing`, `stalled` (no progress possible now; `message` says why) or
    /// `failed` (an instance of the revision cannot start: `message` names it and the cause).
    pub state: String,
    /// Desired replicas.
    pub desired: u32,
    /// Instances of the current revision (not finished).
    pub updated: u32,
    /// Of those, ready.
    pub updated_ready: u32,
    /// Instances of older revisions not finished yet (running and stopping).
    pub old: u32,
    /// Of those, still running (or starting).
    #[serde(default)]
    pub old_running: u32,
    /// Of those, being stopped.
    #[serde(default)]
    pub old_stopping: u32,
    /// One line for people.
    pub message: String,
}

/// `migrate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MigrateRequest {
    /// The target node; default: placement chooses among the others.
    #[serde(default)]
    pub node: Option<String>,
}

/// What `migrate` started.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MigrateResult {
    /// The instance being moved (stopped once the replacement is ready).
    pub instance: String,
    /// Its replacement.
    pub replacement: String,
    /// Where the replacement goes.
    pub node: String,
}

/// What `rebalance` started.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RebalanceResult {
    /// Migrations started.
    pub moves: Vec<MigrateResult>,
    /// Why nothing (more) moved, for people.
    pub message: String,
}

/// Something that happened, for `describe` and `get events`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Order of events, increasing.
    pub seq: u64,
    /// When (RFC 3339).
    pub time: String,
    /// `workload/<w>`, `instance/<i>`, `node/<n>` or `service/<s>`.
    pub object: String,
    /// A short CamelCase reason (`Scheduled`, `Started`, `Exited`, `BackOff`, `NodeLost`, ...).
    pub reason: String,
    /// One line for people.
    pub message: String,
}
