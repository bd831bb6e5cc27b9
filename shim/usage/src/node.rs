//! The node: capacity, and live usage sampled from procfs.

use std::path::Path;

use mini_cgroups::Psi;
use serde::Serialize;

use crate::cpu::{CpuStat, CpuUsage};
use crate::error::Result;
use crate::load::LoadAvg;
use crate::memory::MemInfo;

/// What the node has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capacity {
    /// Online CPUs (the "cpuN" lines of /proc/stat).
    pub cpus: usize,
    /// RAM in bytes (MemTotal).
    pub memory_bytes: u64,
    /// Swap in bytes (SwapTotal).
    pub swap_bytes: u64,
}

impl Capacity {
    /// Reads /proc/stat and /proc/meminfo.
    pub fn read() -> Result<Capacity> {
        let stat = CpuStat::read()?;
        let mem = MemInfo::read()?;
        Ok(Capacity {
            cpus: stat.per_cpu.len(),
            memory_bytes: mem.total_bytes,
            swap_bytes: mem.swap_total_bytes,
        })
    }
}

/// Pressure stall information of the host (/proc/pressure/*); each `None` where the kernel
/// does not provide it (no CONFIG_PSI, or `psi=0`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Pressure {
    /// CPU: tasks waiting for a CPU.
    pub cpu: Option<Psi>,
    /// Memory: tasks waiting for reclaim or refaults.
    pub memory: Option<Psi>,
    /// I/O: tasks waiting for block I/O.
    pub io: Option<Psi>,
}

impl Pressure {
    /// Reads /proc/pressure/{cpu,memory,io}.
    pub fn read() -> Pressure {
        let dir = Path::new("/proc/pressure");
        Pressure {
            cpu: mini_cgroups::read_psi(dir, "cpu"),
            memory: mini_cgroups::read_psi(dir, "memory"),
            io: mini_cgroups::read_psi(dir, "io"),
        }
    }
}

/// One sample of the node's usage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeUsage {
    /// CPU use averaged since the previous sample.
    pub cpu: CpuUsage,
    /// The cumulative CPU counters of this sample (for rates computed elsewhere).
    pub cpu_stat: CpuStat,
    /// Memory right now.
    pub memory: MemInfo,
    /// Load averages right now.
    pub load: LoadAvg,
    /// Pressure right now.
    pub pressure: Pressure,
}

/// Samples the node. CPU use is a rate, so each [`NodeSampler::sample`] reports the average
/// since the previous one (the first since [`NodeSampler::new`]); memory, load and pressure
/// are read at the moment of sampling.
#[derive(Debug, Clone)]
pub struct NodeSampler {
    last: CpuStat,
}

impl NodeSampler {
    /// Takes the first CPU reading.
    pub fn new() -> Result<NodeSampler> {
        Ok(NodeSampler {
            last: CpuStat::read()?,
        })
    }

    /// Samples the node.
    pub fn sample(&mut self) -> Result<NodeUsage> {
        let now = CpuStat::read()?;
        let cpu = CpuUsage::between(&self.last, &now);
        self.last = now.clone();
        Ok(NodeUsage {
            cpu,
            cpu_stat: now,
            memory: MemInfo::read()?,
            load: LoadAvg::read()?,
            pressure: Pressure::read(),
        })
    }
}
