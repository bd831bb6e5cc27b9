//! Prometheus text exposition (format 0.0.4): a small writer, and the node and container
//! metric families mini-shim's agent serves on /metrics.
//!
//! Units follow Prometheus conventions: seconds and bytes, `_total` for counters, `_ratio`
//! for 0..1 fractions. Every family is written once with all its samples together, as the
//! format requires.

use std::fmt::Write;

use crate::container::ContainerUsage;
use crate::node::{Capacity, NodeUsage};

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets on restart).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// One sample: labels and a value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Label names and values, in output order.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// A sample without labels.
    pub fn new(value: f64) -> Sample {
        Sample {
            labels: Vec::new(),
            value,
        }
    }

    /// Adds a label.
    pub fn label(mut self, name: &str, value: &str) -> Sample {
        self.labels.push((name.to_string(), value.to_string()));
        self
    }
}

/// Prometheus text being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// Whether `name` is a valid metric or label name.
fn valid_name(name: &str, colon: bool) -> bool {
    let ok = |c: char, first: bool| {
        c.is_ascii_alphabetic() || c == '_' || (colon && c == ':') || (!first && c.is_ascii_digit())
    };
    let mut chars = name.chars();
    chars.next().is_some_and(|c| ok(c, true)) && chars.all(|c| ok(c, false))
}

/// Makes any string a valid label name: other characters become `_` (a leading digit gets a
/// `_` prefix).
pub fn label_name(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        s.insert(0, '_');
    }
    s
}

fn escape(text: &str, quote: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Writes a family: `# HELP`, `# TYPE` and its samples. Families without samples are
    /// skipped. Invalid label names are made valid with [`label_name`].
    ///
    /// # Panics
    /// If `name` is not a valid metric name (a programming error).
    pub fn family(&mut self, name: &str, kind: Kind, help: &str, samples: &[Sample]) {
        assert!(valid_name(name, true), "invalid metric name {name:?}");
        if samples.is_empty() {
            return;
        }
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.out, "# HELP {name} {}", escape(help, false));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        for s in samples {
            self.out.push_str(name);
            if !s.labels.is_empty() {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(k, v)| {
                        let k = if valid_name(k, false) {
                            k.clone()
                        } else {
                            label_name(k)
                        };
                        format!("{k}=\"{}\"", escape(v, true))
                    })
                    .collect();
                let _ = write!(self.out, "{{{}}}", labels.join(","));
            }
            let _ = writeln!(self.out, " {}", number(s.value));
        }
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Writes the node's families (prefix `mini_node_`).
pub fn node(e: &mut Exposition, capacity: &Capacity, usage: &NodeUsage) {
    use Kind::{Counter, Gauge};
    let g = |v: f64| vec![Sample::new(v)];
    e.family(
        "mini_node_cpus",
        Gauge,
        "Online CPUs.",
        &g(capacity.cpus as f64),
    );
    e.family(
        "mini_node_memory_total_bytes",
        Gauge,
        "RAM (MemTotal).",
        &g(capacity.memory_bytes as f64),
    );
    let hz = usage.cpu_stat.ticks_per_second.max(1) as f64;
    let modes: Vec<Sample> = usage
        .cpu_stat
        .all
        .modes()
        .iter()
        .map(|(mode, ticks)| Sample::new(*ticks as f64 / hz).label("mode", mode))
        .collect();
    e.family(
        "mini_node_cpu_seconds_total",
        Counter,
        "CPU time since boot by mode, summed over CPUs (/proc/stat).",
        &modes,
    );
    e.family(
        "mini_node_cpu_busy_ratio",
        Gauge,
        "Fraction of CPU time not idle since the previous sample (0..1).",
        &g(usage.cpu.busy_ratio),
    );
    e.family(
        "mini_node_cpu_busy_cores",
        Gauge,
        "CPUs busy on average since the previous sample.",
        &g(usage.cpu.busy_cores),
    );
    let m = &usage.memory;
    for (name, help, v) in [
        (
            "mini_node_memory_available_bytes",
            "Memory available for new work (MemAvailable).",
            m.available_bytes,
        ),
        (
            "mini_node_memory_free_bytes",
            "Unused memory (MemFree).",
            m.free_bytes,
        ),
        (
            "mini_node_memory_cached_bytes",
            "Page cache (Cached).",
            m.cached_bytes,
        ),
        (
            "mini_node_memory_buffers_bytes",
            "Block device buffers (Buffers).",
            m.buffers_bytes,
        ),
        (
            "mini_node_swap_total_bytes",
            "Swap space (SwapTotal).",
            m.swap_total_bytes,
        ),
        (
            "mini_node_swap_free_bytes",
            "Unused swap (SwapFree).",
            m.swap_free_bytes,
        ),
    ] {
        e.family(name, Gauge, help, &g(v as f64));
    }
    for (name, v) in [
        ("mini_node_load1", usage.load.one),
        ("mini_node_load5", usage.load.five),
        ("mini_node_load15", usage.load.fifteen),
    ] {
        e.family(name, Gauge, "Load average (/proc/loadavg).", &g(v));
    }
    let mut stalled = Vec::new();
    let mut avg10 = Vec::new();
    let p = &usage.pressure;
    for (resource, psi) in [("cpu", &p.cpu), ("memory", &p.memory), ("io", &p.io)] {
        let Some(psi) = psi else { continue };
        for (kind, data) in [("some", &psi.some), ("full", &psi.full)] {
            let s = |v| {
                Sample::new(v)
                    .label("resource", resource)
                    .label("kind", kind)
            };
            stalled.push(s(data.total as f64 / 1e6));
            avg10.push(s(data.avg10 / 100.0));
        }
    }
    e.family(
        "mini_node_pressure_stalled_seconds_total",
        Counter,
        "Time tasks stalled on a resource (/proc/pressure).",
        &stalled,
    );
    e.family(
        "mini_node_pressure_avg10_ratio",
        Gauge,
        "Fraction of the last 10 s tasks stalled on a resource (/proc/pressure).",
        &avg10,
    );
}

/// One container's metrics input.
#[derive(Debug, Clone)]
pub struct ContainerSample {
    /// The container id (label `id`).
    pub id: String,
    /// Further labels (e.g. workload names), after `id`.
    pub labels: Vec<(String, String)>,
    /// Its cgroup usage.
    pub usage: ContainerUsage,
    /// Bytes its writable layer takes, if known.
    pub writable_layer_bytes: Option<u64>,
}

fn secs(ns: u64) -> Option<f64> {
    Some(ns as f64 / 1e9)
}

/// Writes the containers' families (prefix `mini_container_`), one sample per container.
pub fn containers(e: &mut Exposition, containers: &[ContainerSample]) {
    use Kind::{Counter, Gauge};
    type Get = fn(&ContainerSample) -> Option<f64>;
    let families: [(&str, Kind, &str, Get); 18] = [
        (
            "mini_container_cpu_usage_seconds_total",
            Counter,
            "CPU time used.",
            |c| secs(c.usage.cpu_usage_ns),
        ),
        (
            "mini_container_cpu_user_seconds_total",
            Counter,
            "CPU time in user mode.",
            |c| secs(c.usage.cpu_user_ns),
        ),
        (
            "mini_container_cpu_system_seconds_total",
            Counter,
            "CPU time in kernel mode.",
            |c| secs(c.usage.cpu_system_ns),
        ),
        (
            "mini_container_cpu_periods_total",
            Counter,
            "CFS enforcement periods elapsed.",
            |c| Some(c.usage.cpu_periods as f64),
        ),
        (
            "mini_container_cpu_throttled_periods_total",
            Counter,
            "CFS periods in which the container was throttled.",
            |c| Some(c.usage.cpu_throttled_periods as f64),
        ),
        (
            "mini_container_cpu_throttled_seconds_total",
            Counter,
            "Time the container was throttled.",
            |c| secs(c.usage.cpu_throttled_ns),
        ),
        (
            "mini_container_memory_usage_bytes",
            Gauge,
            "Memory charged to the container's cgroup.",
            |c| Some(c.usage.memory_usage_bytes as f64),
        ),
        (
            "mini_container_memory_working_set_bytes",
            Gauge,
            "Memory usage minus inactive file cache.",
            |c| Some(c.usage.memory_working_set_bytes as f64),
        ),
        (
            "mini_container_memory_peak_bytes",
            Gauge,
            "Highest memory usage seen.",
            |c| c.usage.memory_peak_bytes.map(|v| v as f64),
        ),
        (
            "mini_container_memory_limit_bytes",
            Gauge,
            "Memory limit (absent when unlimited).",
            |c| c.usage.memory_limit_bytes.map(|v| v as f64),
        ),
        (
            "mini_container_pids",
            Gauge,
            "Processes and threads.",
            |c| Some(c.usage.pids as f64),
        ),
        (
            "mini_container_pids_limit",
            Gauge,
            "Process limit (absent when unlimited).",
            |c| c.usage.pids_limit.map(|v| v as f64),
        ),
        (
            "mini_container_io_read_bytes_total",
            Counter,
            "Bytes read from block devices.",
            |c| Some(c.usage.io_read_bytes as f64),
        ),
        (
            "mini_container_io_write_bytes_total",
            Counter,
            "Bytes written to block devices.",
            |c| Some(c.usage.io_write_bytes as f64),
        ),
        (
            "mini_container_io_reads_total",
            Counter,
            "Block device read operations.",
            |c| Some(c.usage.io_read_ops as f64),
        ),
        (
            "mini_container_io_writes_total",
            Counter,
            "Block device write operations.",
            |c| Some(c.usage.io_write_ops as f64),
        ),
        (
            "mini_container_oom_kills_total",
            Counter,
            "Processes killed by the OOM killer.",
            |c| Some(c.usage.oom_kills as f64),
        ),
        (
            "mini_container_writable_layer_bytes",
            Gauge,
            "Disk space the container's writable layer takes.",
            |c| c.writable_layer_bytes.map(|v| v as f64),
        ),
    ];
    for (name, kind, help, get) in families {
        let samples: Vec<Sample> = containers
            .iter()
            .filter_map(|c| {
                let value = get(c)?;
                let mut s = Sample::new(value).label("id", &c.id);
                s.labels.extend(c.labels.iter().cloned());
                Some(s)
            })
            .collect();
        e.family(name, kind, help, &samples);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_grouped_and_escaped() {
        let mut e = Exposition::new();
        e.family(
            "x_total",
            Kind::Counter,
            "Help with \\ and\nnewline.",
            &[
                Sample::new(1.0).label("a", "q\"uote\\\n"),
                Sample::new(2.5).label("bad-name", "v"),
            ],
        );
        e.family("empty", Kind::Gauge, "skipped", &[]);
        e.family("inf", Kind::Gauge, "h", &[Sample::new(f64::INFINITY)]);
        assert_eq!(
            e.finish(),
            "# HELP x_total Help with \\\\ and\\nnewline.\n# TYPE x_total counter\n\
             x_total{a=\"q\\\"uote\\\\\\n\"} 1\nx_total{bad_name=\"v\"} 2.5\n\
             # HELP inf h\n# TYPE inf gauge\ninf +Inf\n"
        );
        assert_eq!(label_name("9app.kubernetes/io"), "_9app_kubernetes_io");
    }

    #[test]
    fn container_families_hold_every_container() {
        let c = |id: &str, ns| ContainerSample {
            id: id.into(),
            labels: vec![("workload".into(), "web".into())],
            usage: ContainerUsage {
                cpu_usage_ns: ns,
                memory_limit_bytes: (id == "a").then_some(1 << 20),
                ..Default::default()
            },
            writable_layer_bytes: None,
        };
        let mut e = Exposition::new();
        containers(&mut e, &[c("a", 1_500_000_000), c("b", 0)]);
        let text = e.finish();
        assert!(
            text.contains(
                "mini_container_cpu_usage_seconds_total{id=\"a\",workload=\"web\"} 1.5\n\
             mini_container_cpu_usage_seconds_total{id=\"b\",workload=\"web\"} 0\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("mini_container_memory_limit_bytes{id=\"a\",workload=\"web\"} 1048576\n")
        );
        assert!(!text.contains("mini_container_memory_limit_bytes{id=\"b\""));
        assert!(!text.contains("writable_layer"));
        assert_eq!(text.matches("# TYPE mini_container_pids gauge").count(), 1);
    }
}
