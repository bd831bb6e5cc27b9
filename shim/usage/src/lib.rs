//! mini-usage: what a node has and uses, and what each container uses, for mini-shim's agent.
//!
//! # Node (procfs)
//! - [`Capacity::read`]: online CPUs (/proc/stat), RAM and swap (/proc/meminfo).
//! - [`NodeSampler`]: [`NodeSampler::new`] takes a first /proc/stat reading; each
//!   [`NodeSampler::sample`] returns a [`NodeUsage`] whose `cpu` ([`CpuUsage`]) is the average
//!   since the previous sample (so sample at a fixed interval, e.g. every 10 s, and serve the
//!   last result), plus memory ([`MemInfo`], /proc/meminfo), load ([`LoadAvg`],
//!   /proc/loadavg) and pressure ([`Pressure`], /proc/pressure/*, `None` per resource where
//!   the kernel has no PSI) read at that moment.
//! - Units: CPU counters in clock ticks (`USER_HZ`, [`CpuStat::ticks_per_second`]);
//!   [`CpuUsage`] in ratios 0..1 of all CPU time, `busy_cores` in CPUs (0..=cpus), seconds
//!   for intervals; memory in bytes; PSI averages in percent (as the kernel writes them) and
//!   totals in microseconds.
//!
//! # Containers (cgroups)
//! - [`ContainerUsage::read`] takes the container's [`mini_cgroups::CgroupConfig`] (mini-run
//!   stores it in the container's state, `mini_run::state::Record::cgroup`) and reads its
//!   cgroup through mini-cgroups on v1 or v2: CPU usage and throttling (nanoseconds,
//!   periods), memory usage, working set, peak and limit (bytes), pids and limit, block I/O
//!   (bytes, operations), OOM kills. Each call reads the cgroup files at that moment;
//!   counters are cumulative, so rates come from two samples
//!   ([`ContainerUsage::cpu_cores_since`]).
//! - The disk used by a container's writable layer comes from mini-image
//!   (`Rootfs::disk_usage`) and goes into [`prometheus::ContainerSample`].
//!
//! # Prometheus
//! [`prometheus::Exposition`] writes the text format; [`prometheus::node`] and
//! [`prometheus::containers`] write the `mini_node_*` and `mini_container_*` families
//! (seconds, bytes, ratios; counters end in `_total`).
//!
//! ```no_run
//! # fn main() -> mini_usage::Result<()> {
//! use mini_usage::{prometheus, Capacity, ContainerUsage, NodeSampler};
//! let capacity = Capacity::read()?;
//! let mut sampler = NodeSampler::new()?;
//! // ... some seconds later, and then periodically:
//! let node = sampler.sample()?;
//! # let cgroup: mini_cgroups::CgroupConfig = unimplemented!();
//! let usage = ContainerUsage::read(&cgroup)?;
//! let mut text = prometheus::Exposition::new();
//! prometheus::node(&mut text, &capacity, &node);
//! prometheus::containers(&mut text, &[prometheus::ContainerSample {
//!     id: "c1".into(),
//!     labels: vec![],
//!     usage,
//!     writable_layer_bytes: Some(4096),
//! }]);
//! let body = text.finish(); // serve as text/plain; version=0.0.4
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod container;
mod cpu;
mod error;
mod load;
mod memory;
mod node;
pub mod prometheus;

pub use container::ContainerUsage;
pub use cpu::{CpuStat, CpuTimes, CpuUsage};
pub use error::{Error, Result};
pub use load::LoadAvg;
pub use memory::MemInfo;
pub use node::{Capacity, NodeSampler, NodeUsage, Pressure};
