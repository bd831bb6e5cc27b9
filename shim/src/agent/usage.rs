//! What the agent reports about usage, through mini-usage: node capacity and usage from
//! procfs (sampled every [`NODE_SAMPLE`] by a background task), per-container usage from the
//! container's cgroup and the disk its writable layer takes, and both as Prometheus text.
//! Units and sampling are documented in PROTOCOL.md.
//!
//! A container list or a scrape costs the same whatever the containers hold: their usage is
//! sampled in the background ([`Agent::sample_containers`], one task and one blocking thread
//! per agent: cgroups every [`CONTAINER_SAMPLE`], writable layers walked every
//! [`DISK_SAMPLE`]) and answers read the last sample. Only `GET /v1/containers/{id}/stats`
//! reads one container's cgroup and layer when asked.

use super::containers::{self, Meta};
use super::{Agent, Error};
use crate::protocol::{ContainerStats, NodeStatus, Pressure, Status};
use mini_usage::prometheus::{self, ContainerSample, Exposition, Kind, Sample};
use mini_usage::{Capacity, ContainerUsage, NodeSampler, NodeUsage};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the node is sampled (CPU use is averaged over this interval).
pub const NODE_SAMPLE: Duration = Duration::from_secs(1);

/// How long after start the first sample is taken.
const FIRST_SAMPLE: Duration = Duration::from_millis(100);

/// How often every running container's cgroup is read in the background.
pub const CONTAINER_SAMPLE: Duration = Duration::from_secs(5);

/// How often each container's writable layer is walked for its disk usage (a walk costs one
/// `stat` per file of the layer, so it is done less often than the cgroup reads).
pub const DISK_SAMPLE: Duration = Duration::from_secs(30);

/// The node's last sample.
#[derive(Default)]
pub struct NodeState {
    last: Mutex<Option<(Capacity, NodeUsage, String)>>,
}

/// One container's last usage sample.
struct LastSample {
    usage: ContainerUsage,
    sampled_at: String,
    disk_bytes: u64,
    /// When its writable layer was last walked.
    disk_at: Instant,
}

/// The containers' last samples, by id (see [`Agent::sample_containers`]).
#[derive(Default)]
pub struct ContainerSamples {
    last: Mutex<HashMap<String, LastSample>>,
}

impl Agent {
    /// Samples the node every [`NODE_SAMPLE`], for ever (run it as a task).
    pub async fn sample_node(self: Arc<Self>) {
        let mut sampler = match NodeSampler::new() {
            Ok(s) => s,
            Err(e) => return self.log(&format!("node usage is unavailable: {e}")),
        };
        // A first, short interval, so an agent has figures to report right after it starts.
        tokio::time::sleep(FIRST_SAMPLE).await;
        let mut tick = tokio::time::interval(NODE_SAMPLE);
        loop {
            tick.tick().await;
            match (Capacity::read(), sampler.sample()) {
                (Ok(capacity), Ok(usage)) => {
                    *self.node.last.lock().expect("node sample") =
                        Some((capacity, usage, containers::now()));
                }
                (Err(e), _) | (_, Err(e)) => self.log(&format!("sampling the node: {e}")),
            }
        }
    }

    /// Samples every container's usage every [`CONTAINER_SAMPLE`], for ever (run it as a
    /// task): one blocking thread reads the cgroups, and walks each writable layer when its
    /// last walk is [`DISK_SAMPLE`] old. A slow walk delays the next sample, never an answer.
    pub async fn sample_containers(self: Arc<Self>) {
        let mut tick = tokio::time::interval(CONTAINER_SAMPLE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let agent = self.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || agent.sample_all()).await {
                self.log(&format!("sampling the containers' usage: {e}"));
            }
        }
    }

    /// One pass of [`Agent::sample_containers`].
    fn sample_all(&self) {
        let ids = self.container_ids();
        let previous: HashMap<String, (u64, Instant)> = self
            .samples
            .last
            .lock()
            .expect("container samples")
            .iter()
            .map(|(id, s)| (id.clone(), (s.disk_bytes, s.disk_at)))
            .collect();
        let mut fresh = HashMap::new();
        for id in ids {
            let Ok(meta) = self.existing(&id).and_then(|dir| Self::read_meta(&dir)) else {
                continue; // being created or deleted
            };
            // A container without a cgroup does not run: it has no usage to report.
            let Ok((usage, sampled_at)) = cgroup_usage(&id, &meta) else {
                continue;
            };
            let (disk_bytes, disk_at) = match previous.get(&id) {
                Some(&(bytes, at)) if at.elapsed() < DISK_SAMPLE => (bytes, at),
                _ => (disk_usage(&meta), Instant::now()),
            };
            fresh.insert(
                id,
                LastSample {
                    usage,
                    sampled_at,
                    disk_bytes,
                    disk_at,
                },
            );
        }
        *self.samples.last.lock().expect("container samples") = fresh;
    }

    /// A running container's last background sample (`None` before its first).
    pub(super) fn last_stats(&self, id: &str) -> Option<ContainerStats> {
        let last = self.samples.last.lock().expect("container samples");
        last.get(id)
            .map(|s| container_stats(&s.usage, s.disk_bytes, s.sampled_at.clone()))
    }

    /// `GET /v1/containers/{id}/stats`: read now.
    pub async fn stats(&self, id: &str) -> Result<ContainerStats, Error> {
        if let Some(h) = self.hollow() {
            return self.hollow_stats(h, id);
        }
        let dir = self.existing(id)?;
        let meta = Self::read_meta(&dir)?;
        let id2 = id.to_string();
        let (usage, disk, sampled_at) =
            tokio::task::spawn_blocking(move || container_usage(&id2, &meta))
                .await
                .map_err(|e| Error::Monitor(format!("reading the usage of {id:?}: {e}")))??;
        Ok(container_stats(&usage, disk, sampled_at))
    }

    /// `GET /v1/node`: the last sample, and the containers as they are now.
    pub async fn node_status(&self) -> NodeStatus {
        let list = self.list(false).await;
        let mut status = NodeStatus {
            node: self.config.node.clone(),
            containers: list.containers.len() as u32,
            containers_running: list
                .containers
                .iter()
                .filter(|c| c.status == Status::Running)
                .count() as u32,
            services_generation: self.services.generation(),
            ..NodeStatus::default()
        };
        if let Some(h) = self.hollow() {
            status.sampled_at = containers::now();
            status.cpus = h.cpus;
            status.memory_total_bytes = h.memory_bytes;
            let (_, running) = h.counts();
            status.memory_available_bytes = h
                .memory_bytes
                .saturating_sub(u64::from(running) * (16 << 20));
        } else if let Some((capacity, usage, at)) = &*self.node.last.lock().expect("node sample") {
            let avg10 = |p: &Option<mini_cgroups::Psi>| p.as_ref().map(|p| p.some.avg10);
            let p = &usage.pressure;
            status.sampled_at = at.clone();
            status.cpus = capacity.cpus as u32;
            status.memory_total_bytes = capacity.memory_bytes;
            status.memory_available_bytes = usage.memory.available_bytes;
            status.cpu_busy = usage.cpu.busy_ratio;
            status.load = [usage.load.one, usage.load.five, usage.load.fifteen];
            status.pressure = match (avg10(&p.cpu), avg10(&p.memory), avg10(&p.io)) {
                (Some(cpu), Some(memory), Some(io)) => Some(Pressure { cpu, memory, io }),
                _ => None,
            };
        }
        status
    }

    /// `GET /metrics`: Prometheus text exposition format 0.0.4.
    pub async fn metrics(&self) -> String {
        let mut text = Exposition::new();
        if let Some((capacity, usage, _)) = &*self.node.last.lock().expect("node sample") {
            prometheus::node(&mut text, capacity, usage);
        }
        let list = self.list(false).await;
        let by_status = |s: Status| {
            let n = list.containers.iter().filter(|c| c.status == s).count();
            let name = serde_json::to_value(s).expect("status serializes");
            Sample::new(n as f64).label("status", name.as_str().unwrap_or_default())
        };
        text.family(
            "mini_shim_containers",
            Kind::Gauge,
            "Containers on this agent by status.",
            &[
                by_status(Status::Running),
                by_status(Status::Exited),
                by_status(Status::Unknown),
            ],
        );
        let mut samples = Vec::new();
        {
            let last = self.samples.last.lock().expect("container samples");
            for info in list.containers {
                let Some(sample) = last
                    .get(&info.id)
                    .filter(|_| info.status == Status::Running)
                else {
                    continue;
                };
                samples.push(ContainerSample {
                    id: info.id,
                    labels: info.labels.into_iter().collect(),
                    usage: sample.usage,
                    writable_layer_bytes: Some(sample.disk_bytes),
                });
            }
        }
        prometheus::containers(&mut text, &samples);
        let cni = self.cni_counters.snapshot();
        let by_command = |count: fn(&(&str, u64, u64)) -> u64| -> Vec<Sample> {
            cni.iter()
                .map(|c| Sample::new(count(c) as f64).label("command", c.0))
                .collect()
        };
        text.family(
            "mini_shim_cni_calls_total",
            Kind::Counter,
            "CNI plugin list calls by command.",
            &by_command(|c| c.1),
        );
        text.family(
            "mini_shim_cni_failures_total",
            Kind::Counter,
            "CNI plugin list calls that failed, by command.",
            &by_command(|c| c.2),
        );
        let (services, endpoints, transactions, failures) = self.services_counts().await;
        for (name, kind, help, value) in [
            (
                "mini_shim_services",
                Kind::Gauge,
                "Services programmed on this node.",
                services as u64,
            ),
            (
                "mini_shim_service_endpoints",
                Kind::Gauge,
                "Endpoints over all services programmed.",
                endpoints as u64,
            ),
            (
                "mini_shim_service_nft_transactions_total",
                Kind::Counter,
                "nftables transactions run for the services.",
                transactions,
            ),
            (
                "mini_shim_service_nft_failures_total",
                Kind::Counter,
                "nftables transactions for the services that failed.",
                failures,
            ),
        ] {
            text.family(name, kind, help, &[Sample::new(value as f64)]);
        }
        let admitted = self.gate.get().map_or(0, |g| g.admitted());
        text.family(
            "mini_shim_connections_total",
            Kind::Counter,
            "Connections the agent's listener admitted.",
            &[Sample::new(admitted as f64)],
        );
        let requests = self.requests.load(std::sync::atomic::Ordering::Relaxed);
        text.family(
            "mini_shim_requests_total",
            Kind::Counter,
            "Requests the agent answered.",
            &[Sample::new(requests as f64)],
        );
        let pulls = &self.puller.counters;
        for (name, help, counter) in [
            (
                "mini_shim_image_pulls_total",
                "Image pulls from registries that succeeded.",
                &pulls.pulls,
            ),
            (
                "mini_shim_image_pull_failures_total",
                "Image pulls from registries that failed.",
                &pulls.failures,
            ),
            (
                "mini_shim_image_pull_blobs_total",
                "Blobs downloaded from registries and verified.",
                &pulls.blobs,
            ),
            (
                "mini_shim_image_pull_bytes_total",
                "Bytes of verified blobs downloaded from registries.",
                &pulls.bytes,
            ),
        ] {
            let value = counter.load(std::sync::atomic::Ordering::Relaxed) as f64;
            text.family(name, Kind::Counter, help, &[Sample::new(value)]);
        }
        text.finish()
    }
}

/// The container's cgroup usage, the disk its writable layer takes, and when they were read.
fn container_usage(id: &str, meta: &Meta) -> Result<(ContainerUsage, u64, String), Error> {
    let (usage, sampled_at) = cgroup_usage(id, meta)?;
    Ok((usage, disk_usage(meta), sampled_at))
}

/// The container's cgroup usage and when it was read.
fn cgroup_usage(id: &str, meta: &Meta) -> Result<(ContainerUsage, String), Error> {
    let not_running = |e: &dyn std::fmt::Display| {
        Error::Conflict(format!(
            "container {id:?} has no cgroup to read ({e}); it is not running"
        ))
    };
    let cgroup = mini_cgroups::new_manager(Some(std::path::Path::new(&meta.cgroups_path)), id)
        .map_err(|e| not_running(&e))?;
    let sampled_at = containers::now();
    let usage = ContainerUsage::read(cgroup.config()).map_err(|e| not_running(&e))?;
    Ok((usage, sampled_at))
}

/// The disk the container's writable layer takes (a walk of the layer).
fn disk_usage(meta: &Meta) -> u64 {
    match &meta.writable_layer {
        Some(dir) => mini_image::disk_usage(dir).map_or(0, |d| d.bytes),
        None => 0,
    }
}

/// The protocol's view of a usage reading.
fn container_stats(usage: &ContainerUsage, disk: u64, sampled_at: String) -> ContainerStats {
    ContainerStats {
        sampled_at,
        cpu_usage_ns: usage.cpu_usage_ns,
        cpu_user_ns: usage.cpu_user_ns,
        cpu_system_ns: usage.cpu_system_ns,
        cpu_periods: usage.cpu_periods,
        cpu_throttled_periods: usage.cpu_throttled_periods,
        cpu_throttled_ns: usage.cpu_throttled_ns,
        memory_bytes: usage.memory_usage_bytes,
        memory_working_set_bytes: usage.memory_working_set_bytes,
        memory_peak_bytes: usage.memory_peak_bytes.unwrap_or(0),
        memory_limit_bytes: usage.memory_limit_bytes,
        oom_kills: usage.oom_kills,
        pids: usage.pids,
        pids_limit: usage.pids_limit,
        io_read_bytes: usage.io_read_bytes,
        io_write_bytes: usage.io_write_bytes,
        disk_bytes: disk,
    }
}
