//! What the agent reports about usage: per-container figures from the container's cgroup
//! (mini-cgroups, v1 or v2) and writable layer, node figures from procfs, and both as
//! Prometheus text. Units and sampling are documented in PROTOCOL.md.

use super::containers::Meta;
use super::{Agent, Error};
use crate::protocol::{ContainerStats, NodeStatus, Pressure, Status};
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// How often the node's CPU busy fraction is sampled.
pub const CPU_SAMPLE: Duration = Duration::from_secs(1);

/// Limits at or above this are "unlimited" (v1 reports unlimited memory as a page-rounded
/// i64::MAX, v2 as `max`, which mini-cgroups reads as u64::MAX).
const UNLIMITED: u64 = 1 << 62;

/// The node's CPU busy fraction between the last two samples of /proc/stat.
#[derive(Default)]
pub struct CpuSampler {
    last: Mutex<(Option<(u64, u64)>, f64)>,
}

impl CpuSampler {
    /// Takes a sample; the busy fraction is updated from the previous one.
    pub fn sample(&self) {
        let Some(now) = proc_stat_jiffies() else {
            return;
        };
        let mut last = self.last.lock().expect("cpu sampler");
        if let Some((busy0, total0)) = last.0 {
            let (busy, total) = (now.0.saturating_sub(busy0), now.1.saturating_sub(total0));
            if total > 0 {
                last.1 = busy as f64 / total as f64;
            }
        }
        last.0 = Some(now);
    }

    /// The last busy fraction (0.0–1.0).
    pub fn busy(&self) -> f64 {
        self.last.lock().expect("cpu sampler").1
    }
}

/// (non-idle, total) jiffies of all CPUs from the `cpu` line of /proc/stat; idle includes
/// iowait.
fn proc_stat_jiffies() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user/nice).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

fn meminfo(field: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':').map(str::to_string))
        })
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|f| f.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// `some avg10` of /proc/pressure/<resource>.
fn pressure(resource: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/pressure/{resource}")).ok()?;
    let some = text.lines().find(|l| l.starts_with("some "))?;
    some.split_whitespace()
        .find_map(|f| f.strip_prefix("avg10="))?
        .parse()
        .ok()
}

fn limit(v: u64) -> Option<u64> {
    (v != 0 && v < UNLIMITED).then_some(v)
}

impl Agent {
    /// `GET /v1/containers/{id}/stats`.
    pub async fn stats(&self, id: &str) -> Result<ContainerStats, Error> {
        let dir = self.existing(id)?;
        let meta = Self::read_meta(&dir)?;
        let id2 = id.to_string();
        tokio::task::spawn_blocking(move || container_stats(&id2, &meta))
            .await
            .map_err(|e| Error::Monitor(format!("reading the usage of {id:?}: {e}")))?
    }

    /// `GET /v1/node`.
    pub async fn node_status(&self) -> NodeStatus {
        let list = self.list().await;
        let pressure = match (pressure("cpu"), pressure("memory"), pressure("io")) {
            (Some(cpu), Some(memory), Some(io)) => Some(Pressure { cpu, memory, io }),
            _ => None,
        };
        NodeStatus {
            node: self.config.node.clone(),
            sampled_at: super::containers::now(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            memory_total_bytes: meminfo("MemTotal"),
            memory_available_bytes: meminfo("MemAvailable"),
            cpu_busy: self.cpu.busy(),
            load: loadavg(),
            pressure,
            containers: list.containers.len() as u32,
            containers_running: list
                .containers
                .iter()
                .filter(|c| c.status == Status::Running)
                .count() as u32,
        }
    }

    /// `GET /metrics`: Prometheus text exposition format 0.0.4.
    pub async fn metrics(&self) -> String {
        let node = self.node_status().await;
        let mut m = Metrics::default();
        let n = format!("node=\"{}\"", escape(&node.node));
        m.gauge("mini_shim_node_cpus", "Online CPUs.", &n, node.cpus as f64);
        m.gauge(
            "mini_shim_node_cpu_busy_ratio",
            "Busy fraction of all CPUs over the last second.",
            &n,
            node.cpu_busy,
        );
        m.gauge(
            "mini_shim_node_memory_total_bytes",
            "MemTotal.",
            &n,
            node.memory_total_bytes as f64,
        );
        m.gauge(
            "mini_shim_node_memory_available_bytes",
            "MemAvailable.",
            &n,
            node.memory_available_bytes as f64,
        );
        m.gauge(
            "mini_shim_node_load1",
            "1-minute load average.",
            &n,
            node.load[0],
        );
        m.gauge(
            "mini_shim_node_load5",
            "5-minute load average.",
            &n,
            node.load[1],
        );
        m.gauge(
            "mini_shim_node_load15",
            "15-minute load average.",
            &n,
            node.load[2],
        );
        if let Some(p) = &node.pressure {
            for (res, v) in [("cpu", p.cpu), ("memory", p.memory), ("io", p.io)] {
                let l = format!("{n},resource=\"{res}\"");
                m.gauge(
                    "mini_shim_node_pressure_some_avg10_percent",
                    "PSI some avg10.",
                    &l,
                    v,
                );
            }
        }
        let running = node.containers_running as f64;
        m.gauge(
            "mini_shim_agent_containers",
            "Containers by status.",
            &format!("{n},status=\"running\""),
            running,
        );
        m.gauge(
            "mini_shim_agent_containers",
            "Containers by status.",
            &format!("{n},status=\"not_running\""),
            node.containers as f64 - running,
        );
        for info in self.list().await.containers {
            if info.status != Status::Running {
                continue;
            }
            let Ok(s) = self.stats(&info.id).await else {
                continue; // it ended meanwhile
            };
            let l = format!("{n},container=\"{}\"", escape(&info.id));
            m.counter(
                "mini_shim_container_cpu_usage_seconds_total",
                "CPU time consumed.",
                &l,
                s.cpu_usage_ns as f64 / 1e9,
            );
            m.counter(
                "mini_shim_container_cpu_user_seconds_total",
                "User-mode CPU time.",
                &l,
                s.cpu_user_ns as f64 / 1e9,
            );
            m.counter(
                "mini_shim_container_cpu_system_seconds_total",
                "Kernel-mode CPU time.",
                &l,
                s.cpu_system_ns as f64 / 1e9,
            );
            m.counter(
                "mini_shim_container_cpu_periods_total",
                "CFS periods elapsed.",
                &l,
                s.cpu_periods as f64,
            );
            m.counter(
                "mini_shim_container_cpu_throttled_periods_total",
                "CFS periods throttled.",
                &l,
                s.cpu_throttled_periods as f64,
            );
            m.counter(
                "mini_shim_container_cpu_throttled_seconds_total",
                "Time throttled.",
                &l,
                s.cpu_throttled_ns as f64 / 1e9,
            );
            m.gauge(
                "mini_shim_container_memory_bytes",
                "Memory in use.",
                &l,
                s.memory_bytes as f64,
            );
            m.gauge(
                "mini_shim_container_memory_peak_bytes",
                "Peak memory use.",
                &l,
                s.memory_peak_bytes as f64,
            );
            if let Some(v) = s.memory_limit_bytes {
                m.gauge(
                    "mini_shim_container_memory_limit_bytes",
                    "Memory limit.",
                    &l,
                    v as f64,
                );
            }
            m.gauge(
                "mini_shim_container_pids",
                "Processes and threads.",
                &l,
                s.pids as f64,
            );
            m.counter(
                "mini_shim_container_io_read_bytes_total",
                "Bytes read from block devices.",
                &l,
                s.io_read_bytes as f64,
            );
            m.counter(
                "mini_shim_container_io_write_bytes_total",
                "Bytes written to block devices.",
                &l,
                s.io_write_bytes as f64,
            );
            m.gauge(
                "mini_shim_container_disk_bytes",
                "Disk used by the writable layer.",
                &l,
                s.disk_bytes as f64,
            );
        }
        m.text
    }
}

fn container_stats(id: &str, meta: &Meta) -> Result<ContainerStats, Error> {
    let not_running = |e: &dyn std::fmt::Display| {
        Error::Conflict(format!(
            "container {id:?} has no cgroup to read ({e}); it is not running"
        ))
    };
    let manager = mini_cgroups::new_manager(Some(std::path::Path::new(&meta.cgroups_path)), id)
        .map_err(|e| not_running(&e))?;
    let sampled_at = super::containers::now();
    let st = manager.stats().map_err(|e| not_running(&e))?;
    let io = |op: &str| -> u64 {
        st.blkio
            .io_service_bytes_recursive
            .iter()
            .filter(|e| e.op == op)
            .map(|e| e.value)
            .sum()
    };
    let disk_bytes = match &meta.writable_layer {
        Some(dir) => mini_image::disk_usage(dir).map_or(0, |d| d.bytes),
        None => 0,
    };
    Ok(ContainerStats {
        sampled_at,
        cpu_usage_ns: st.cpu.usage.total,
        cpu_user_ns: st.cpu.usage.user,
        cpu_system_ns: st.cpu.usage.kernel,
        cpu_periods: st.cpu.throttling.periods,
        cpu_throttled_periods: st.cpu.throttling.throttled_periods,
        cpu_throttled_ns: st.cpu.throttling.throttled_time,
        memory_bytes: st.memory.usage.usage,
        memory_peak_bytes: st.memory.usage.max,
        memory_limit_bytes: limit(st.memory.usage.limit),
        pids: st.pids.current,
        pids_limit: limit(st.pids.limit),
        io_read_bytes: io("Read"),
        io_write_bytes: io("Write"),
        disk_bytes,
    })
}

/// Escapes a Prometheus label value.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus text, one HELP/TYPE header per metric name.
#[derive(Default)]
struct Metrics {
    text: String,
    declared: std::collections::BTreeSet<&'static str>,
}

impl Metrics {
    fn sample(&mut self, kind: &str, name: &'static str, help: &str, labels: &str, v: f64) {
        if self.declared.insert(name) {
            let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        }
        let _ = writeln!(self.text, "{name}{{{labels}}} {v}");
    }

    fn gauge(&mut self, name: &'static str, help: &str, labels: &str, v: f64) {
        self.sample("gauge", name, help, labels, v);
    }

    fn counter(&mut self, name: &'static str, help: &str, labels: &str, v: f64) {
        self.sample("counter", name, help, labels, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text_declares_each_name_once() {
        let mut m = Metrics::default();
        m.gauge("a_bytes", "A.", "x=\"1\"", 1.0);
        m.gauge("a_bytes", "A.", "x=\"2\"", 2.5);
        assert_eq!(
            m.text,
            "# HELP a_bytes A.\n# TYPE a_bytes gauge\na_bytes{x=\"1\"} 1\na_bytes{x=\"2\"} 2.5\n"
        );
        assert_eq!(escape("a\"b\\"), "a\\\"b\\\\");
    }

    #[test]
    fn node_cpu_busy_is_a_fraction() {
        let s = CpuSampler::default();
        s.sample();
        std::thread::sleep(Duration::from_millis(50));
        s.sample();
        assert!((0.0..=1.0).contains(&s.busy()));
    }
}
