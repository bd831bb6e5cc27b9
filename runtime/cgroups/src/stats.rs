//! Resource usage statistics, serialized exactly like the "data" object of runc's
//! `events --stats` output (runc's types/events.go): nested objects are always present,
//! fields runc marks `omitempty` are left out when zero or empty.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// All statistics of one container.
#[derive(Serialize, Default, Debug, Clone)]
pub struct Stats {
    /// CPU usage and throttling.
    pub cpu: Cpu,
    /// cpuset configuration.
    pub cpuset: CpuSet,
    /// Memory usage.
    pub memory: Memory,
    /// Process counts.
    pub pids: Pids,
    /// Block I/O counters.
    pub blkio: Blkio,
    /// Huge page usage per page size ("2MB", "1GB").
    pub hugetlb: HashMap<String, Hugetlb>,
    /// Intel RDT statistics (not collected; always empty as in runc without RDT).
    pub intel_rdt: IntelRdt,
    /// Network interface statistics (not collected: runc serializes `null` then).
    pub network_interfaces: Option<Vec<NetworkInterface>>,
}

/// CPU statistics.
#[derive(Serialize, Default, Debug, Clone)]
pub struct Cpu {
    /// Time consumed.
    pub usage: CpuUsage,
    /// CFS bandwidth throttling.
    pub throttling: Throttling,
    /// Pressure stall information (v2 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

/// CPU time in nanoseconds.
#[derive(Serialize, Default, Debug, Clone)]
pub struct CpuUsage {
    /// Total CPU time.
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    /// Total CPU time per CPU (v1 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    /// Kernel-mode time per CPU (v1 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    /// User-mode time per CPU (v1 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    /// Kernel-mode time.
    pub kernel: u64,
    /// User-mode time.
    pub user: u64,
}

/// CFS throttling counters.
#[derive(Serialize, Default, Debug, Clone)]
pub struct Throttling {
    /// Enforcement periods elapsed.
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    /// Periods in which the group was throttled.
    #[serde(rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Total throttled time in nanoseconds.
    #[serde(rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// Pressure stall information of one resource.
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct Psi {
    /// Some tasks stalled.
    pub some: PsiData,
    /// All tasks stalled.
    pub full: PsiData,
}

/// One PSI line.
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct PsiData {
    /// Percentage over 10 seconds.
    pub avg10: f64,
    /// Percentage over 60 seconds.
    pub avg60: f64,
    /// Percentage over 300 seconds.
    pub avg300: f64,
    /// Total stall time in microseconds.
    pub total: u64,
}

/// cpuset configuration.
#[derive(Serialize, Default, Debug, Clone)]
pub struct CpuSet {
    /// Allowed CPUs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    /// cpuset.cpu_exclusive (v1).
    pub cpu_exclusive: u64,
    /// Allowed memory nodes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    /// cpuset.mem_hardwall (v1).
    pub mem_hardwall: u64,
    /// cpuset.mem_exclusive (v1).
    pub mem_exclusive: u64,
    /// cpuset.memory_migrate (v1).
    pub memory_migrate: u64,
    /// cpuset.memory_spread_page (v1).
    pub memory_spread_page: u64,
    /// cpuset.memory_spread_slab (v1).
    pub memory_spread_slab: u64,
    /// cpuset.memory_pressure (v1).
    pub memory_pressure: u64,
    /// cpuset.sched_load_balance (v1).
    pub sched_load_balance: u64,
    /// cpuset.sched_relax_domain_level (v1).
    pub sched_relax_domain_level: i64,
}

/// Memory statistics, all in bytes.
#[derive(Serialize, Default, Debug, Clone)]
pub struct Memory {
    /// Page cache (v1 "cache", v2 "file" of memory.stat).
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    /// Memory usage.
    pub usage: MemoryEntry,
    /// Memory+swap usage (on v2 computed as memory + swap, like v1 reports it).
    pub swap: MemoryEntry,
    /// Kernel memory (v1 only).
    pub kernel: MemoryEntry,
    /// Kernel TCP buffers (v1 only).
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// memory.stat as is.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
    /// Pressure stall information (v2 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

/// Usage, limit and peak of one memory counter.
#[derive(Serialize, Default, Debug, Clone)]
pub struct MemoryEntry {
    /// The limit (unlimited reads as the kernel's maximum, `u64::MAX` on v2).
    pub limit: u64,
    /// Current usage.
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Peak usage.
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// How often the limit was hit.
    pub failcnt: u64,
}

/// Process counts.
#[derive(Serialize, Default, Debug, Clone)]
pub struct Pids {
    /// Processes and threads in the cgroup.
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// pids.max; 0 when unlimited.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// Block I/O counters per device.
#[derive(Serialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    /// Bytes transferred.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    /// I/O operations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    /// Queued operations (CFQ only).
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    /// Service time (CFQ only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    /// Wait time (CFQ only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    /// Merged operations (CFQ only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    /// Disk time (CFQ only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    /// Sectors (CFQ only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
    /// Pressure stall information (v2 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

/// One per-device counter.
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct BlkioEntry {
    /// Device major.
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    /// Device minor.
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    /// "Read", "Write", "Sync", "Async", "Discard" or "Total".
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    /// The counter.
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

/// Huge page usage of one page size.
#[derive(Serialize, Default, Debug, Clone)]
pub struct Hugetlb {
    /// Current usage in bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Peak usage in bytes (v1 only).
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// How often allocation failed because of the limit.
    pub failcnt: u64,
}

/// Intel RDT statistics; never collected by this crate.
#[derive(Serialize, Default, Debug, Clone)]
pub struct IntelRdt {}

/// Network interface counters; never collected by this crate (kept for the schema).
#[derive(Serialize, Default, Debug, Clone)]
pub struct NetworkInterface {
    /// Interface name.
    pub name: String,
    /// Received bytes.
    pub rx_bytes: u64,
    /// Received packets.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Dropped received packets.
    pub rx_dropped: u64,
    /// Sent bytes.
    pub tx_bytes: u64,
    /// Sent packets.
    pub tx_packets: u64,
    /// Send errors.
    pub tx_errors: u64,
    /// Dropped sent packets.
    pub tx_dropped: u64,
}

/// The huge page sizes of the host, as cgroup file names spell them ("2MB", "1GB").
pub(crate) fn hugepage_sizes() -> Result<Vec<String>> {
    let dir = "/sys/kernel/mm/hugepages";
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("listing", dir, e)),
    };
    let mut sizes = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(kb) = name
            .strip_prefix("hugepages-")
            .and_then(|s| s.strip_suffix("kB"))
            .and_then(|s| s.parse::<u64>().ok())
        {
            sizes.push(page_size_name(kb));
        }
    }
    sizes.sort();
    Ok(sizes)
}

/// Names a page size given in KiB the way cgroup files do: 2048 → "2MB", 64 → "64KB".
pub(crate) fn page_size_name(kb: u64) -> String {
    let units = ["KB", "MB", "GB", "TB", "PB"];
    let mut size = kb;
    let mut unit = 0;
    while size >= 1024 && size % 1024 == 0 && unit + 1 < units.len() {
        size /= 1024;
        unit += 1;
    }
    format!("{size}{}", units[unit])
}

/// Parses a cpu/mem list such as "0-3,8,10-11".
pub(crate) fn parse_cpu_list(text: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u16>().ok()),
        }
    }
    out
}

/// Parses a pressure file (cpu.pressure, memory.pressure, io.pressure of a cgroup, or
/// /proc/pressure/cpu, memory, io of the host); `None` if absent.
pub fn read_psi(dir: &Path, file: &str) -> Option<Psi> {
    let text = fs::read_to_string(dir.join(file)).ok()?;
    let mut psi = Psi::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let target = match fields.next() {
            Some("some") => &mut psi.some,
            Some("full") => &mut psi.full,
            _ => continue,
        };
        for kv in fields {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            match k {
                "avg10" => target.avg10 = v.parse().unwrap_or(0.0),
                "avg60" => target.avg60 = v.parse().unwrap_or(0.0),
                "avg300" => target.avg300 = v.parse().unwrap_or(0.0),
                "total" => target.total = v.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    Some(psi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_stats_serialize_like_runc() {
        let json = serde_json::to_value(Stats::default()).unwrap();
        assert_eq!(
            json["cpu"],
            serde_json::json!({"usage": {"kernel": 0, "user": 0}, "throttling": {}})
        );
        assert_eq!(
            json["memory"]["usage"],
            serde_json::json!({"limit": 0, "failcnt": 0})
        );
        assert_eq!(json["pids"], serde_json::json!({}));
        assert_eq!(json["blkio"], serde_json::json!({}));
        assert_eq!(json["hugetlb"], serde_json::json!({}));
        assert_eq!(json["network_interfaces"], serde_json::Value::Null);
    }

    #[test]
    fn field_names_match_runc() {
        let mut s = Stats::default();
        s.cpu.throttling.throttled_periods = 1;
        s.memory.kernel_tcp.usage = 2;
        s.blkio.io_service_bytes_recursive.push(BlkioEntry {
            major: 8,
            minor: 0,
            op: "Read".into(),
            value: 3,
        });
        s.blkio.io_queued_recursive.push(BlkioEntry::default());
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["cpu"]["throttling"]["throttledPeriods"], 1);
        assert_eq!(json["memory"]["kernelTCP"]["usage"], 2);
        assert_eq!(
            json["blkio"]["ioServiceBytesRecursive"][0],
            serde_json::json!({"major": 8, "op": "Read", "value": 3})
        );
        assert!(json["blkio"]["ioQueueRecursive"].is_array());
    }

    #[test]
    fn page_sizes_are_named_like_cgroup_files() {
        assert_eq!(page_size_name(2048), "2MB");
        assert_eq!(page_size_name(1_048_576), "1GB");
        assert_eq!(page_size_name(64), "64KB");
    }

    #[test]
    fn cpu_lists_expand() {
        assert_eq!(parse_cpu_list("0-2,5\n"), vec![0, 1, 2, 5]);
        assert!(parse_cpu_list("\n").is_empty());
    }

    #[test]
    fn psi_lines_parse() {
        let dir = std::env::temp_dir().join(format!("mini-cgroups-psi-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("cpu.pressure"),
            "some avg10=1.50 avg60=0.00 avg300=0.00 total=42\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n",
        )
        .unwrap();
        let psi = read_psi(&dir, "cpu.pressure").unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(psi.some.avg10, 1.5);
        assert_eq!(psi.some.total, 42);
        assert_eq!(psi.full.total, 7);
    }
}
