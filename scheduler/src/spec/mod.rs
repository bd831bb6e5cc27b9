//! The workload spec: what `mini-sched apply -f` reads, in YAML or JSON (scheduler/SPEC.md).
//!
//! [`parse`] reads the text, [`WorkloadSpec`] holds it with every default filled in, and its
//! conversions give what placement ([`WorkloadSpec::instance_spec`]) and the agents
//! ([`WorkloadSpec::run_request`], [`WorkloadSpec::probe`]) need. Reading never stops at the
//! first mistake: [`Problems`] lists every one, each at the path of its field.

pub mod autoscale;
mod conversion;
mod decode;
pub mod limits;
mod problems;
pub mod quantity;
mod read;
pub mod service;
mod text;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use mini_shim::protocol::{Network, PortMapping, Source};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use autoscale::{AutoscaleSpec, Behavior, PressureResource, Rules, Target};
pub use conversion::ProbeKind;
pub use decode::DEFAULT_STOP_DRAIN;
pub use problems::{Problem, Problems};
pub use validate::{workload_name, MAX_NAME_LEN};

/// Reads a workload spec from YAML or JSON text and checks it, listing every problem found.
pub fn parse(text: &str) -> Result<WorkloadSpec, Problems> {
    match parse_object(text)? {
        Object::Workload(spec) => Ok(*spec),
        Object::Service(spec) => Err(Problems::document(format!(
            "{:?} is a service (kind: service), not a workload",
            spec.name
        ))),
    }
}

/// What one spec file describes, by its `kind` (default `workload`).
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    /// `kind: workload`, or no kind.
    Workload(Box<WorkloadSpec>),
    /// `kind: service`.
    Service(service::ServiceSpec),
}

/// Reads one object (a workload or a service, by its `kind`) from YAML or JSON text, listing
/// every problem found.
pub fn parse_object(text: &str) -> Result<Object, Problems> {
    parse_object_against(text, &|_| Vec::new())
}

/// Whether `text` is a service's spec (`kind: service`), however wrong it is otherwise.
pub fn is_service(text: &str) -> bool {
    text::document(text)
        .ok()
        .is_some_and(|v| v.get("kind").and_then(|k| k.as_str()) == Some("service"))
}

/// As [`parse_object`], a service's problems against the cluster (`cluster`: its address and
/// node ports) listed with the others.
pub fn parse_object_against(
    text: &str,
    cluster: service::ClusterCheck,
) -> Result<Object, Problems> {
    let value = text::document(text)?;
    match value.get("kind") {
        None | Some(serde_json::Value::Null) => {
            decode::from_value(&value).map(|w| Object::Workload(Box::new(w)))
        }
        Some(serde_json::Value::String(k)) if k == "workload" => {
            decode::from_value(&value).map(|w| Object::Workload(Box::new(w)))
        }
        Some(serde_json::Value::String(k)) if k == "service" => {
            service::from_value(&value, cluster).map(Object::Service)
        }
        Some(other) => Err(Problems::at(
            "kind".into(),
            format!("{} is not one of workload, service", quantity::show(other)),
        )),
    }
}

/// One workload: what to run, how many, where, and how to keep it healthy and update it.
///
/// Every default is filled in, so two specs that mean the same are equal. It serializes to JSON
/// (or YAML) that [`parse`] and its own `Deserialize` read back to an equal spec; deserializing
/// runs the same checks as [`parse`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkloadSpec {
    /// The workload's name: 1–40 of `[a-z0-9-]`, starting with a letter, not ending with `-`.
    /// Instances are named `<name>-<seq>`.
    pub name: String,
    /// Labels services select this workload's instances by (`selector: {labels: ...}`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Where the root filesystem comes from.
    #[serde(serialize_with = "source")]
    pub source: Source,
    /// The command and its arguments; empty means the image's (or `sh` for a rootfs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Environment variables, added to the image's.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The working directory (absolute); `None` means the image's, or `/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// The numeric user (and group) to run as; `None` means the image's, or root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    /// The container's network (default cluster: its own namespace with an address on the
    /// cluster network).
    pub network: Network,
    /// Ports of the node forwarded to each instance (`network: cluster` only), by the node's
    /// `portmap` CNI plugin.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
    /// What each instance reserves and may use.
    pub resources: ResourceSpec,
    /// How many instances to run (default 1); with `autoscale`, the count to start from.
    pub replicas: u32,
    /// Follow the measured load with the replica count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<AutoscaleSpec>,
    /// Higher places first and may preempt lower priorities (default 0).
    pub priority: i32,
    /// Labels a node must carry, all of them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Place only where instances of these workloads already run (in the same domain).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub affinity: Vec<WorkloadTermSpec>,
    /// Never place where instances of these workloads run (in the same domain).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub anti_affinity: Vec<WorkloadTermSpec>,
    /// Keep this workload's instances evenly spread over a node label's values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spread: Option<SpreadSpec>,
    /// Taints this workload's instances accept.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<TolerationSpec>,
    /// Workloads to start before this one (and to place near, as a preference).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// When an exited instance is started again, and how fast.
    pub restart: RestartSpec,
    /// Restart an instance whose check fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness: Option<ProbeSpec>,
    /// Count an instance as ready (for rollouts and migrations) once its check passes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness: Option<ProbeSpec>,
    /// How a rolling update replaces instances.
    pub update: UpdateSpec,
    /// How long a stopping instance gets between SIGTERM and SIGKILL (default 10s; whole
    /// seconds).
    #[serde(serialize_with = "duration")]
    pub stop_timeout: Duration,
    /// How long an instance that is to stop stays out of every service's endpoints, on every
    /// node, before it is sent SIGTERM (default 2s), so new connections move away first.
    #[serde(serialize_with = "duration")]
    pub stop_drain: Duration,
}

impl<'de> Deserialize<'de> for WorkloadSpec {
    /// Reads any self-describing form (JSON, YAML) and checks it as [`parse`] does; the error
    /// holds every problem.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        decode::from_value(&value).map_err(serde::de::Error::custom)
    }
}

/// A numeric user and optional group, written `"1000"` or `"1000:100"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct User {
    /// The user id.
    pub uid: u32,
    /// The group id; `None` leaves the image's (or 0).
    pub gid: Option<u32>,
}

impl Serialize for User {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.gid {
            Some(gid) => serializer.collect_str(&format_args!("{}:{gid}", self.uid)),
            None => serializer.collect_str(&self.uid),
        }
    }
}

/// Requests (what placement reserves) and limits (what the cgroup enforces).
///
/// As in Kubernetes, a limit left out takes the request's value and a request left out takes
/// the limit's; with neither, nothing is reserved and nothing is limited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ResourceSpec {
    /// What placement reserves on a node for each instance.
    pub requests: Requests,
    /// What each instance may use at most.
    pub limits: Limits,
}

/// Amounts reserved per instance (0 = nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Requests {
    /// Millicores.
    #[serde(serialize_with = "cpu")]
    pub cpu: u64,
    /// Bytes.
    #[serde(serialize_with = "memory")]
    pub memory: u64,
    /// Processes and threads.
    pub pids: u64,
}

/// Upper bounds per instance (`None` = unlimited).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Millicores (a CFS quota).
    #[serde(serialize_with = "opt_cpu", skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u64>,
    /// Bytes.
    #[serde(serialize_with = "opt_memory", skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// Processes and threads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
}

/// Where a count of instances is kept: per node (`"node"`) or per value of a node label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopologySpec {
    /// Each node is its own domain (written `node`).
    Node,
    /// Nodes sharing a value of this label form a domain.
    Label(String),
}

impl Serialize for TopologySpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            TopologySpec::Node => serializer.serialize_str("node"),
            TopologySpec::Label(key) => serializer.serialize_str(key),
        }
    }
}

/// "Instances of `workload` in the same `topology` domain" (affinity, anti-affinity).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkloadTermSpec {
    /// The other workload's name.
    pub workload: String,
    /// The domain (default `node`).
    pub topology: TopologySpec,
}

/// Spread over the domains of a topology, at most `max_skew` apart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SpreadSpec {
    /// The domains (default `node`).
    pub topology: TopologySpec,
    /// The largest allowed difference of instance counts between domains (default 1).
    pub max_skew: u32,
}

/// What a taint does, in Kubernetes' spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum EffectSpec {
    /// Never place an intolerant instance on the node.
    NoSchedule,
    /// Avoid the node for intolerant instances.
    PreferNoSchedule,
    /// Never place, and evict intolerant instances running there.
    NoExecute,
}

/// Accepts taints that match every field given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TolerationSpec {
    /// The taint key; `None` matches every key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The taint value; `None` matches any value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The taint effect; `None` matches every effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<EffectSpec>,
}

/// When an instance whose process exited is started again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Whatever the exit code (the default).
    #[default]
    Always,
    /// Only after a non-zero exit (or a kill).
    OnFailure,
    /// Never: an exited instance stays exited.
    Never,
}

/// The restart policy and its back-off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RestartSpec {
    /// When to restart (default `always`).
    pub policy: RestartPolicy,
    /// How long to wait before each restart.
    pub backoff: Backoff,
}

impl Default for RestartSpec {
    fn default() -> Self {
        RestartSpec {
            policy: RestartPolicy::Always,
            backoff: Backoff::default(),
        }
    }
}

/// Exponential back-off: the first restart waits `initial`, each further one twice as long,
/// at most `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Backoff {
    /// The first wait (default 1s).
    #[serde(serialize_with = "duration")]
    pub initial: Duration,
    /// The longest wait (default 60s).
    #[serde(serialize_with = "duration")]
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

/// A health check and its timing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProbeSpec {
    /// What is checked.
    #[serde(flatten)]
    pub check: ProbeCheck,
    /// Time between checks (default 2s).
    #[serde(serialize_with = "duration")]
    pub period: Duration,
    /// How long one check may take (default 1s; whole seconds).
    #[serde(serialize_with = "duration")]
    pub timeout: Duration,
    /// Consecutive failures that make the instance unhealthy (default 3).
    pub failure_threshold: u32,
    /// Consecutive successes that make it healthy again (default 1; 1 for liveness).
    pub success_threshold: u32,
    /// Time after the start before the first check (default 0s).
    #[serde(serialize_with = "duration")]
    pub initial_delay: Duration,
}

/// What a probe checks, inside the container (its network namespace for tcp and http).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeCheck {
    /// Healthy when the command exits 0.
    Exec {
        /// The command and its arguments.
        command: Vec<String>,
    },
    /// Healthy when a TCP connection to the port on 127.0.0.1 is accepted.
    Tcp {
        /// The port.
        port: u16,
    },
    /// Healthy when `GET path` on 127.0.0.1:port answers 200–399.
    Http {
        /// The port.
        port: u16,
        /// The path (default `/`).
        path: String,
    },
}

/// A number of instances, or a percentage of the replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Amount {
    /// That many instances.
    Count(u32),
    /// That percentage of `replicas` (0–100), written `"25%"`.
    Percent(u32),
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Amount::Count(n) => serializer.serialize_u32(*n),
            Amount::Percent(p) => serializer.collect_str(&format_args!("{p}%")),
        }
    }
}

/// How a rolling update proceeds (as a Kubernetes Deployment's RollingUpdate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct UpdateSpec {
    /// Instances started above `replicas` during an update (default 1; a percentage rounds up).
    pub max_surge: Amount,
    /// Instances that may be missing below `replicas` during an update (default 0; a
    /// percentage rounds down).
    pub max_unavailable: Amount,
}

impl Default for UpdateSpec {
    fn default() -> Self {
        UpdateSpec {
            max_surge: Amount::Count(1),
            max_unavailable: Amount::Count(0),
        }
    }
}

impl UpdateSpec {
    /// The surge and unavailability allowed for `replicas` instances: percentages resolved
    /// (surge rounded up, unavailability down); when both come to 0, one instance may be
    /// unavailable so the update can progress (as Kubernetes does).
    pub fn resolve(&self, replicas: u32) -> (u32, u32) {
        let of = |amount: Amount, round_up: bool| match amount {
            Amount::Count(n) => n,
            Amount::Percent(p) => {
                let scaled = u64::from(p) * u64::from(replicas);
                let n = if round_up {
                    scaled.div_ceil(100)
                } else {
                    scaled / 100
                };
                u32::try_from(n).unwrap_or(u32::MAX)
            }
        };
        let surge = of(self.max_surge, true);
        let unavailable = of(self.max_unavailable, false);
        if surge == 0 && unavailable == 0 {
            (0, 1)
        } else {
            (surge, unavailable)
        }
    }
}

/// `{"rootfs": ...}`, `{"image": {...}}` or `{"image": "reference", "pull": ...}` in every
/// format (YAML would write a tag).
fn source<S: Serializer>(value: &Source, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Source::Registry(image) => {
            let mut form = serde_json::json!({ "image": image.reference });
            if let Some(pull) = image.pull {
                form["pull"] = serde_json::to_value(pull).map_err(serde::ser::Error::custom)?;
            }
            form.serialize(serializer)
        }
        other => serde_json::to_value(other)
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer),
    }
}

fn duration<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&quantity::format_duration(*value))
}

fn cpu<S: Serializer>(millis: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&quantity::format_cpu(*millis))
}

fn memory<S: Serializer>(bytes: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&quantity::format_memory(*bytes))
}

fn opt_cpu<S: Serializer>(millis: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
    match millis {
        Some(millis) => cpu(millis, serializer),
        None => serializer.serialize_none(),
    }
}

fn opt_memory<S: Serializer>(bytes: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(bytes) => memory(bytes, serializer),
        None => serializer.serialize_none(),
    }
}
