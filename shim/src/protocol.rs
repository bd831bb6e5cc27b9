//! The shim protocol's types, shared by the agent and its clients (the scheduler, the CLI).
//!
//! HTTP/1.1 with JSON bodies; every route lives under [`PREFIX`] (`/v1`), so a later version
//! can be served beside this one. shim/PROTOCOL.md documents routes, status codes, units and
//! sampling; this module is the machine-readable half of it. Requests are parsed strictly
//! (unknown fields are errors) so a typo never silently means "default".

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The protocol version this agent speaks.
pub const VERSION: u32 = 1;

/// The path prefix of every versioned route.
pub const PREFIX: &str = "/v1";

/// The highest uid or gid a container may run as (2^31 − 1, as runc): the kernel reads
/// `(uid_t)-1` (4294967295) as "no change", which would leave the process root.
pub const MAX_ID: u32 = 2_147_483_647;

/// `GET /v1/version`: who answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VersionInfo {
    /// [`VERSION`].
    pub protocol: u32,
    /// The agent's package version.
    pub agent: String,
    /// The node's name (`--node-name`, default the hostname).
    pub node: String,
}

/// `POST /v1/containers`: run a workload in a new container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The container id: 1–64 characters of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
    pub id: String,
    /// Where the root filesystem comes from.
    pub source: Source,
    /// The process to run; its fields default to the image's config (or, for a rootfs
    /// directory, to `sh` in `/` with a standard PATH).
    #[serde(default)]
    pub process: ProcessSpec,
    /// Limits applied through the container's cgroup.
    #[serde(default)]
    pub resources: Resources,
    /// The container's network.
    #[serde(default)]
    pub network: Network,
    /// Ports of the node forwarded to the container (`network: cluster` only), by the
    /// `portmap` CNI plugin of the node's configuration list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
    /// Free-form labels, returned as given (the scheduler stores its workload name here).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The root filesystem of a workload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// A root filesystem directory on the host, used as the read-only lower layer under a
    /// per-container writable layer.
    Rootfs(String),
    /// An OCI image.
    Image(ImageRef),
    /// An image in a registry, pulled by the agent into its image store.
    Registry(RegistryImage),
}

/// An image in a registry: `[registry[:port]/]name[:tag][@digest]`, with Docker's defaults
/// (`docker.io`, `library/` for a one-part name on it, tag `latest`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistryImage {
    /// The reference. With a digest, exactly those bytes run whatever the tag says now.
    pub reference: String,
    /// When to contact the registry (default [`PullPolicy::default_for`] the reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<PullPolicy>,
}

/// When an agent pulls an image (Kubernetes' `imagePullPolicy`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    /// Only when the node's store lacks the image.
    IfNotPresent,
    /// Ask the registry for the manifest every time (layers the node holds are not fetched).
    Always,
    /// Never: the image must be in the node's store already.
    Never,
}

impl PullPolicy {
    /// Kubernetes' default: [`PullPolicy::Always`] for a reference tagged `latest` (or with no
    /// tag and no digest), else [`PullPolicy::IfNotPresent`].
    pub fn default_for(reference: &str) -> PullPolicy {
        let (name, digest) = match reference.split_once('@') {
            Some((name, _)) => (name, true),
            None => (reference, false),
        };
        let last = name.rsplit('/').next().unwrap_or(name);
        match last.split_once(':') {
            Some((_, "latest")) => PullPolicy::Always,
            None if !digest => PullPolicy::Always,
            _ => PullPolicy::IfNotPresent,
        }
    }
}

/// An OCI image on the host: an image layout directory or an oci-archive tarball.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageRef {
    /// The path of an OCI image layout directory (skopeo's `oci:`) or of an oci-archive
    /// (`podman save --format oci-archive`, skopeo's `oci-archive:`).
    pub path: String,
    /// Which manifest of the index (its `org.opencontainers.image.ref.name`); may be left out
    /// when the index holds exactly one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// The container's process. Empty fields take the image's (or the default) values.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    /// The command and its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// `NAME=value` entries, added to (and overriding) the image's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// The working directory (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// The numeric user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The numeric group id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

/// cgroup limits; absent means unlimited.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Memory limit in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// CPU limit in millicores (1000 = one CPU), enforced as a CFS quota per 100 ms period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_millis: Option<u64>,
    /// Maximum number of processes and threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
}

/// The container's network.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// A network namespace of its own with only a loopback interface (the default).
    #[default]
    Isolated,
    /// The agent's network namespace.
    Host,
    /// A network namespace of its own on the cluster network: one interface with an address
    /// from the node's subnet, set up by the node's CNI plugin chain (see [`ClusterNetwork`]).
    Cluster,
}

/// A port of the node forwarded to a container's port (the CNI `portMappings` capability).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PortMapping {
    /// The port inside the container.
    pub container_port: u16,
    /// The port on every address of the node.
    pub host_port: u16,
    /// `tcp` (the default) or `udp`.
    #[serde(default)]
    pub protocol: PortProtocol,
}

/// The transport protocol of a [`PortMapping`].
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PortProtocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl PortProtocol {
    /// The name the spec and CNI use.
    pub fn name(self) -> &'static str {
        match self {
            PortProtocol::Tcp => "tcp",
            PortProtocol::Udp => "udp",
        }
    }
}

/// `POST /v1/network`: the node's place on the cluster network, which the scheduler sends
/// with every heartbeat (so routes follow the node list). `GET /v1/network` answers
/// [`NetworkState`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClusterNetwork {
    /// The whole cluster's address range (CIDR), e.g. `10.88.0.0/16`.
    pub cluster_cidr: String,
    /// This node's share of it (CIDR), e.g. `10.88.3.0/24`: its instances' addresses.
    pub subnet: String,
    /// How instances on different nodes reach each other.
    #[serde(default)]
    pub backend: NetworkBackend,
    /// Whether traffic from instances to addresses outside the cluster CIDR is masqueraded
    /// behind the node's address.
    #[serde(default)]
    pub masquerade: bool,
    /// The other nodes on the network.
    #[serde(default)]
    pub peers: Vec<NetworkPeer>,
}

/// How instances on different nodes reach each other.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkBackend {
    /// A route per peer subnet via the peer node's address (the nodes share an L2 segment).
    #[default]
    HostGw,
    /// A kernel VXLAN device per node with a forwarding entry for each peer (the nodes are
    /// only routed to each other).
    Vxlan,
}

/// Another node on the cluster network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NetworkPeer {
    /// Its name.
    pub node: String,
    /// Its host address (the agent's advertised IP).
    pub address: std::net::IpAddr,
    /// Its subnet (CIDR).
    pub subnet: String,
}

/// `GET /v1/network`: what the agent applied.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkState {
    /// The configuration last applied, if the node has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ClusterNetwork>,
    /// The CNI network configuration list the agent runs its plugins with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflist: Option<String>,
}

/// `PUT /v1/services`: every service of the cluster with its ready endpoints, the whole table.
/// The scheduler sends it when the agent's [`ServicesState::generation`] is not the one it
/// expects (a new or restarted agent, a lost update); otherwise it sends [`ServiceChanges`].
/// The agent programs its node from it in one nftables transaction. Answers [`ServicesState`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceTable {
    /// The scheduler's generation of this table; it grows with every change.
    pub generation: u64,
    /// The cluster's DNS domain, e.g. `cluster.local`: services answer as
    /// `<service>.<domain>`, endpoints as `<instance>.<service>.<domain>`.
    pub domain: String,
    /// Every service, in any order, names unique.
    #[serde(default)]
    pub services: Vec<ServiceEntry>,
}

/// `PATCH /v1/services`: the services that changed since generation `from`. The agent applies
/// it only when the generation it holds is `from`, else it answers 409 `generation_mismatch`
/// and the scheduler sends the whole [`ServiceTable`]. Answers [`ServicesState`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceChanges {
    /// The generation these changes apply to.
    pub from: u64,
    /// The generation after them.
    pub generation: u64,
    /// Services new or changed (each given whole, its endpoints included).
    #[serde(default)]
    pub upsert: Vec<ServiceEntry>,
    /// Names of services deleted.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// One service: a virtual address in front of its ready endpoints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceEntry {
    /// The service's name (a DNS label).
    pub name: String,
    /// Its virtual address, from the cluster's service CIDR.
    pub address: std::net::Ipv4Addr,
    /// The ports it listens on (at least one).
    pub ports: Vec<ServicePort>,
    /// Seconds a client address stays with the endpoint it was first sent to; absent: every
    /// new connection is balanced on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity_seconds: Option<u32>,
    /// The ready endpoints; empty: connections are rejected at once (TCP reset, ICMP
    /// port unreachable), never left to time out.
    #[serde(default)]
    pub endpoints: Vec<ServiceEndpoint>,
}

/// A port of a service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServicePort {
    /// The port on the virtual address.
    pub port: u16,
    /// The port the endpoints listen on.
    pub target_port: u16,
    /// The transport protocol.
    pub protocol: TransportProtocol,
    /// The port on every node's own addresses that also leads to the service, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<u16>,
}

/// A transport protocol of a service port.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum TransportProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// A ready instance behind a service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceEndpoint {
    /// The instance's name (a DNS label: `<instance>.<service>.<domain>` answers its address).
    pub instance: String,
    /// The node it runs on.
    pub node: String,
    /// Its address on the cluster network.
    pub address: std::net::Ipv4Addr,
    /// Its share of new connections relative to the service's other endpoints, 1–100.
    pub weight: u8,
}

/// The answer of `GET`/`PUT`/`PATCH /v1/services`: what the agent has programmed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServicesState {
    /// The generation applied; 0 when the agent has no table yet (just started).
    pub generation: u64,
    /// How many services are programmed.
    pub services: u32,
    /// How many endpoints, over all services.
    pub endpoints: u32,
    /// The address the node's DNS server listens on, once it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<std::net::SocketAddr>,
}

/// A container's life stage as the agent reports it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Its process runs.
    Running,
    /// Its process ended; `exit` says how.
    Exited,
    /// Neither a monitor nor an exit record vouches for it (it is being created, or its
    /// monitor did not answer in time: the container may still run); `reason` says what is
    /// known.
    Unknown,
}

/// How a container's process ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExitInfo {
    /// The exit code (128 + signal number when killed by a signal, as shells report it).
    pub code: i32,
    /// The signal that killed it, if one did (e.g. `SIGKILL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Whether the kernel's OOM killer killed a process of the container.
    pub oom_killed: bool,
    /// When it ended (RFC 3339).
    pub finished_at: String,
}

/// `GET /v1/containers/{id}` and each entry of the list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerInfo {
    /// The container id.
    pub id: String,
    /// Its life stage.
    pub status: Status,
    /// The host pid of its process while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// When it was started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// How it ended, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitInfo>,
    /// Whether its monitor process is alive.
    pub monitor_alive: bool,
    /// Why the status is what it is, when that needs saying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The labels it was run with.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its address on the cluster network (`network: cluster`), as its CNI plugins gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Its usage, in `GET /v1/containers?stats=true` for running containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<ContainerStats>,
    /// For a registry source: the digest of the image manifest it runs (`sha256:...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
}

/// `GET /v1/containers`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerList {
    /// Every container the agent knows, sorted by id.
    pub containers: Vec<ContainerInfo>,
}

/// `POST /v1/containers/{id}/stop`: SIGTERM (or `signal`), then SIGKILL after the grace period.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    /// The first signal (default `SIGTERM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Seconds to wait before SIGKILL (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

/// `POST /v1/containers/{id}/kill`: send one signal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KillRequest {
    /// A signal name (`SIGTERM`, `TERM`) or number.
    pub signal: String,
}

/// `POST /v1/containers/{id}/exec`: run a command in the running container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// The command and its arguments.
    pub args: Vec<String>,
    /// Extra `NAME=value` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Seconds before the command is killed (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

/// The result of an exec.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExecResult {
    /// Its exit code (128 + signal when killed).
    pub exit_code: i32,
    /// What it wrote to stdout (lossy UTF-8, at most 64 KiB).
    pub stdout: String,
    /// What it wrote to stderr (lossy UTF-8, at most 64 KiB).
    pub stderr: String,
    /// It ran past its timeout and was killed.
    #[serde(default)]
    pub timed_out: bool,
}

/// `POST /v1/containers/{id}/probe`: a health check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Probe {
    /// Healthy when the command exits 0.
    Exec {
        /// The command.
        args: Vec<String>,
        /// Seconds before it counts as failed (default 5).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_secs: Option<u64>,
    },
    /// Healthy when a TCP connection to `port` is accepted, in the container's network
    /// namespace.
    Tcp {
        /// The port.
        port: u16,
        /// The address (default 127.0.0.1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
        /// Seconds before it counts as failed (default 5).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_secs: Option<u64>,
    },
    /// Healthy when `GET path` answers 200–399, in the container's network namespace.
    Http {
        /// The port.
        port: u16,
        /// The path (default `/`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// The address (default 127.0.0.1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
        /// Seconds before it counts as failed (default 5).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_secs: Option<u64>,
    },
}

/// A probe's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProbeResult {
    /// Whether the check passed.
    pub healthy: bool,
    /// What was seen (exit code, connection error, HTTP status line).
    pub detail: String,
}

/// One record of a container's log (`GET /v1/containers/{id}/logs`, one JSON object per
/// line), exactly as its monitor stored it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogLine {
    /// When the monitor read it (RFC 3339 UTC, nanoseconds).
    pub timestamp: String,
    /// `stdout`, `stderr`, or `monitor` (a note of the monitor, e.g. lines dropped on a full
    /// disk).
    pub stream: String,
    /// The text, without its newline (lossy UTF-8).
    pub text: String,
    /// The text does not end a line (a piece of a line longer than 16 KiB, or a stream's last
    /// bytes without a newline).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// `GET /v1/containers/{id}/stats`: usage from the container's cgroup and writable layer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ContainerStats {
    /// When the counters were read (RFC 3339).
    pub sampled_at: String,
    /// Total CPU time consumed, nanoseconds (cpuacct.usage / cpu.stat usage_usec × 1000).
    pub cpu_usage_ns: u64,
    /// User-mode CPU time, nanoseconds.
    pub cpu_user_ns: u64,
    /// Kernel-mode CPU time, nanoseconds.
    pub cpu_system_ns: u64,
    /// CFS periods elapsed while a quota applied.
    pub cpu_periods: u64,
    /// Periods in which the container was throttled.
    pub cpu_throttled_periods: u64,
    /// Total time throttled, nanoseconds.
    pub cpu_throttled_ns: u64,
    /// Memory in use now, bytes (memory.usage_in_bytes / memory.current).
    pub memory_bytes: u64,
    /// Memory in use minus inactive file cache, bytes (what the kernel cannot easily reclaim;
    /// what an OOM decision looks at).
    pub memory_working_set_bytes: u64,
    /// Highest memory use seen, bytes (memory.max_usage_in_bytes / memory.peak; 0 when the
    /// kernel does not track it).
    pub memory_peak_bytes: u64,
    /// The memory limit, bytes; absent when unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_bytes: Option<u64>,
    /// Processes the kernel's OOM killer killed in the container's cgroup.
    pub oom_kills: u64,
    /// Processes and threads now.
    pub pids: u64,
    /// The pids limit; absent when unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<u64>,
    /// Bytes read from block devices.
    pub io_read_bytes: u64,
    /// Bytes written to block devices.
    pub io_write_bytes: u64,
    /// Disk used by the container's writable layer, bytes (allocated blocks).
    pub disk_bytes: u64,
}

/// `GET /v1/node`: the host's capacity and live usage.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeStatus {
    /// The node's name.
    pub node: String,
    /// When the figures were read (RFC 3339).
    pub sampled_at: String,
    /// Online CPUs.
    pub cpus: u32,
    /// Total memory, bytes (MemTotal).
    pub memory_total_bytes: u64,
    /// Memory available for new work, bytes (MemAvailable).
    pub memory_available_bytes: u64,
    /// Busy fraction of all CPUs (0.0–1.0) between the previous sample and this one
    /// (/proc/stat deltas; the agent samples every second).
    pub cpu_busy: f64,
    /// 1, 5 and 15 minute load averages (/proc/loadavg).
    pub load: [f64; 3],
    /// Pressure stall information (`some avg10`, percent) for cpu, memory and io, where the
    /// kernel offers /proc/pressure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pressure: Option<Pressure>,
    /// Containers the agent knows, and how many of them run.
    pub containers: u32,
    /// Containers whose process runs.
    pub containers_running: u32,
    /// The generation of the service table the agent has programmed (0: none yet), so the
    /// scheduler sees a restarted agent and sends it the whole table.
    #[serde(default)]
    pub services_generation: u64,
}

/// Pressure stall percentages (`some avg10` of /proc/pressure/*).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Pressure {
    /// Share of time some task waited for CPU, percent.
    pub cpu: f64,
    /// Share of time some task waited for memory, percent.
    pub memory: f64,
    /// Share of time some task waited for I/O, percent.
    pub io: f64,
}

/// `POST /v1/certificate`: the agent's certificate, renewed by the cluster CA for the key the
/// agent holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CertificateRenewal {
    /// The new certificate (PEM).
    pub cert: String,
}

/// The answer to [`CertificateRenewal`]: what the agent serves from now on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CertificateInfo {
    /// The end of the served certificate's validity (RFC 3339).
    pub not_after: String,
}

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorInfo,
}

/// An error's machine-readable code and human-readable message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorInfo {
    /// A stable code (see PROTOCOL.md: `bad_request`, `not_found`, `conflict`,
    /// `source_unavailable`, `start_failed`, `unsupported_version`, `internal`, ...).
    pub code: String,
    /// One line naming what is wrong and what to do.
    pub message: String,
}

/// Checks a container id: 1–64 characters of `[A-Za-z0-9_.-]`, not starting with `.` or `-`
/// (it becomes a directory name and a cgroup name).
pub fn validate_id(id: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if id.is_empty() || id.len() > 64 {
        return Err(format!(
            "container id {id:?} must be 1 to 64 characters long"
        ));
    }
    if id.starts_with(['.', '-']) || !id.chars().all(ok_char) {
        return Err(format!(
            "container id {id:?} may hold only letters, digits, '_', '.' and '-', and may not start with '.' or '-'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_request_takes_a_rootfs_source_and_defaults() {
        let r: RunRequest =
            serde_json::from_str(r#"{"id":"a","source":{"rootfs":"/srv/busybox"}}"#).unwrap();
        assert_eq!(r.source, Source::Rootfs("/srv/busybox".into()));
        assert_eq!(r.network, Network::Isolated);
        assert!(r.process.args.is_empty());
    }

    #[test]
    fn run_request_rejects_unknown_fields() {
        let e =
            serde_json::from_str::<RunRequest>(r#"{"id":"a","source":{"rootfs":"/x"},"memory":1}"#)
                .unwrap_err();
        assert!(e.to_string().contains("unknown field `memory`"), "{e}");
    }

    #[test]
    fn image_source_reference_is_optional() {
        let r: RunRequest =
            serde_json::from_str(r#"{"id":"a","source":{"image":{"path":"/x.tar"}}}"#).unwrap();
        assert_eq!(
            r.source,
            Source::Image(ImageRef {
                path: "/x.tar".into(),
                reference: None
            })
        );
    }

    #[test]
    fn probes_are_tagged_by_kind() {
        let p: Probe = serde_json::from_str(r#"{"tcp":{"port":80}}"#).unwrap();
        assert_eq!(
            p,
            Probe::Tcp {
                port: 80,
                host: None,
                timeout_secs: None
            }
        );
    }

    #[test]
    fn ids_that_could_escape_a_directory_are_refused() {
        assert!(validate_id("web-1.a_b").is_ok());
        for bad in ["", "..", "a/b", "-x", ".x", &"x".repeat(65), "a b"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }
}
