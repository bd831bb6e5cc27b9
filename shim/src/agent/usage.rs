//! What the agent reports about usage, through mini-usage: node capacity and usage from
//! procfs (sampled every [`NODE_SAMPLE`] by a background task), per-container usage from the
//! container's cgroup (read when asked) and the disk its writable layer takes, and both as
//! Prometheus text. Units and sampling are documented in PROTOCOL.md.

use super::containers::{self, Meta};
use super::{Agent, Error};
use crate::protocol::{ContainerStats, NodeStatus, Pressure, Status};
use mini_usage::prometheus::{self, ContainerSample, Exposition, Kind, Sample};
use mini_usage::{Capacity, ContainerUsage, NodeSampler, NodeUsage};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the node is sampled (CPU use is averaged over this interval).
pub const NODE_SAMPLE: Duration = Duration::from_secs(1);

/// How long after start the first sample is taken.
const FIRST_SAMPLE: Duration = Duration::from_millis(100);

/// The node's last sample.
#[derive(Default)]
pub struct NodeState {
    last: Mutex<Option<(Capacity, NodeUsage, String)>>,
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

    /// `GET /v1/containers/{id}/stats`.
    pub async fn stats(&self, id: &str) -> Result<ContainerStats, Error> {
        let dir = self.existing(id)?;
        let meta = Self::read_meta(&dir)?;
        let id2 = id.to_string();
        let (usage, disk, sampled_at) =
            tokio::task::spawn_blocking(move || container_usage(&id2, &meta))
                .await
                .map_err(|e| Error::Monitor(format!("reading the usage of {id:?}: {e}")))??;
        Ok(ContainerStats {
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
        })
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
        if let Some((capacity, usage, at)) = &*self.node.last.lock().expect("node sample") {
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
        for info in list.containers {
            if info.status != Status::Running {
                continue;
            }
            let Ok(dir) = self.existing(&info.id) else {
                continue;
            };
            let Ok(meta) = Self::read_meta(&dir) else {
                continue;
            };
            let id = info.id.clone();
            let Ok(Ok((usage, disk, _))) =
                tokio::task::spawn_blocking(move || container_usage(&id, &meta)).await
            else {
                continue; // it ended meanwhile
            };
            samples.push(ContainerSample {
                id: info.id,
                labels: info.labels.into_iter().collect(),
                usage,
                writable_layer_bytes: Some(disk),
            });
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
    let not_running = |e: &dyn std::fmt::Display| {
        Error::Conflict(format!(
            "container {id:?} has no cgroup to read ({e}); it is not running"
        ))
    };
    let cgroup = mini_cgroups::new_manager(Some(std::path::Path::new(&meta.cgroups_path)), id)
        .map_err(|e| not_running(&e))?;
    let sampled_at = containers::now();
    let usage = ContainerUsage::read(cgroup.config()).map_err(|e| not_running(&e))?;
    let disk = match &meta.writable_layer {
        Some(dir) => mini_image::disk_usage(dir).map_or(0, |d| d.bytes),
        None => 0,
    };
    Ok((usage, disk, sampled_at))
}
