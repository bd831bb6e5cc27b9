//! Per-container usage from the container's cgroup (v1 or v2), through mini-cgroups.

use std::time::Duration;

use mini_cgroups::{CgroupConfig, Stats};
use serde::Serialize;

use crate::error::Result;

/// Limits at or above this are "no limit" (v1 reports unlimited memory as a huge number just
/// below 2^63, v2 as `max`).
const UNLIMITED: u64 = 1 << 62;

/// A container's resource usage, read from its cgroup at one moment. Counters are cumulative
/// since the cgroup was created; gauges are current values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ContainerUsage {
    /// CPU time used, nanoseconds (v1 cpuacct.usage, v2 cpu.stat usage_usec × 1000).
    pub cpu_usage_ns: u64,
    /// User-mode CPU time, nanoseconds (v1 cpuacct.stat in ticks, converted; v2 user_usec).
    pub cpu_user_ns: u64,
    /// Kernel-mode CPU time, nanoseconds.
    pub cpu_system_ns: u64,
    /// CFS enforcement periods elapsed (cpu.stat nr_periods; 0 without a quota).
    pub cpu_periods: u64,
    /// Periods in which the container was throttled (nr_throttled).
    pub cpu_throttled_periods: u64,
    /// Time throttled, nanoseconds (v1 throttled_time, v2 throttled_usec × 1000).
    pub cpu_throttled_ns: u64,
    /// Memory charged to the cgroup, bytes (v1 memory.usage_in_bytes, v2 memory.current).
    pub memory_usage_bytes: u64,
    /// Usage minus inactive file cache, bytes: what the kernel cannot easily reclaim (the
    /// kubelet's "working set").
    pub memory_working_set_bytes: u64,
    /// Highest usage seen, bytes (v1 memory.max_usage_in_bytes, v2 memory.peak); `None` where
    /// the kernel does not track it.
    pub memory_peak_bytes: Option<u64>,
    /// The memory limit, bytes; `None` when unlimited.
    pub memory_limit_bytes: Option<u64>,
    /// Processes and threads (pids.current).
    pub pids: u64,
    /// The pids limit; `None` when unlimited.
    pub pids_limit: Option<u64>,
    /// Bytes read from block devices.
    pub io_read_bytes: u64,
    /// Bytes written to block devices.
    pub io_write_bytes: u64,
    /// Read operations.
    pub io_read_ops: u64,
    /// Write operations.
    pub io_write_ops: u64,
    /// Processes the kernel OOM killer killed in the cgroup.
    pub oom_kills: u64,
}

impl ContainerUsage {
    /// Reads the cgroup a container runs in (mini-run keeps its [`CgroupConfig`] in the
    /// container's state record, `mini_run::state::Record::cgroup`).
    pub fn read(cgroup: &CgroupConfig) -> Result<ContainerUsage> {
        let manager = mini_cgroups::open(cgroup)?;
        let stats = manager.stats()?;
        let oom_kills = manager.oom_kill_count()?;
        Ok(ContainerUsage::from_stats(&stats, oom_kills))
    }

    /// Converts mini-cgroups statistics.
    pub fn from_stats(s: &Stats, oom_kills: u64) -> ContainerUsage {
        let limit = |v: u64| (v > 0 && v < UNLIMITED).then_some(v);
        let inactive_file = ["total_inactive_file", "inactive_file"]
            .iter()
            .find_map(|k| s.memory.raw.get(*k))
            .copied()
            .unwrap_or(0);
        let sum = |entries: &[mini_cgroups::BlkioEntry], op: &str| {
            entries
                .iter()
                .filter(|e| e.op == op)
                .map(|e| e.value)
                .sum::<u64>()
        };
        let b = &s.blkio;
        ContainerUsage {
            cpu_usage_ns: s.cpu.usage.total,
            cpu_user_ns: s.cpu.usage.user,
            cpu_system_ns: s.cpu.usage.kernel,
            cpu_periods: s.cpu.throttling.periods,
            cpu_throttled_periods: s.cpu.throttling.throttled_periods,
            cpu_throttled_ns: s.cpu.throttling.throttled_time,
            memory_usage_bytes: s.memory.usage.usage,
            memory_working_set_bytes: s.memory.usage.usage.saturating_sub(inactive_file),
            memory_peak_bytes: (s.memory.usage.max > 0).then_some(s.memory.usage.max),
            memory_limit_bytes: limit(s.memory.usage.limit),
            pids: s.pids.current,
            pids_limit: limit(s.pids.limit),
            io_read_bytes: sum(&b.io_service_bytes_recursive, "Read"),
            io_write_bytes: sum(&b.io_service_bytes_recursive, "Write"),
            io_read_ops: sum(&b.io_serviced_recursive, "Read"),
            io_write_ops: sum(&b.io_serviced_recursive, "Write"),
            oom_kills,
        }
    }

    /// CPUs used on average between `earlier` and this sample, `elapsed` apart (1.0 = one
    /// CPU fully busy).
    pub fn cpu_cores_since(&self, earlier: &ContainerUsage, elapsed: Duration) -> f64 {
        let secs = elapsed.as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        self.cpu_usage_ns.saturating_sub(earlier.cpu_usage_ns) as f64 / 1e9 / secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mini_cgroups::BlkioEntry;

    #[test]
    fn stats_convert_with_unlimited_as_none() {
        let mut s = Stats::default();
        s.cpu.usage.total = 3_000_000_000;
        s.memory.usage.usage = 10 << 20;
        s.memory.usage.limit = 9_223_372_036_854_771_712;
        s.memory.raw.insert("total_inactive_file".into(), 4 << 20);
        s.pids.current = 3;
        let entry = |op: &str, value| BlkioEntry {
            major: 8,
            minor: 0,
            op: op.into(),
            value,
        };
        s.blkio.io_service_bytes_recursive = vec![
            entry("Read", 100),
            entry("Write", 7),
            entry("Total", 107),
            entry("Read", 1),
        ];
        let u = ContainerUsage::from_stats(&s, 2);
        assert_eq!(u.memory_limit_bytes, None);
        assert_eq!(u.memory_peak_bytes, None);
        assert_eq!(u.memory_working_set_bytes, 6 << 20);
        assert_eq!(u.pids_limit, None);
        assert_eq!((u.io_read_bytes, u.io_write_bytes), (101, 7));
        assert_eq!(u.oom_kills, 2);
        let later = ContainerUsage {
            cpu_usage_ns: 4_500_000_000,
            ..u
        };
        assert_eq!(later.cpu_cores_since(&u, Duration::from_secs(3)), 0.5);
    }
}
