//! `/metrics`: the scheduler's state and counters in Prometheus text format.

use crate::api::{NodeState, Phase};
use crate::controller::Daemon;
use std::collections::BTreeMap;
use std::fmt::Write;

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics text.
pub fn render(daemon: &Daemon) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let (nodes, instances, workloads, heartbeat_age) = daemon.read(|s| {
        let mut nodes: BTreeMap<NodeState, usize> = BTreeMap::new();
        let mut ages = Vec::new();
        for n in s.nodes.values() {
            *nodes.entry(n.state()).or_default() += 1;
            if let Some(t) = n.live.last_heartbeat {
                ages.push((n.record.name.clone(), t.elapsed().as_secs_f64()));
            }
        }
        let mut instances: BTreeMap<(String, Phase), usize> = BTreeMap::new();
        for i in s.instances.values() {
            *instances
                .entry((i.record.workload.clone(), i.record.phase))
                .or_default() += 1;
        }
        let workloads: Vec<(String, u32, usize)> = s
            .workloads
            .values()
            .map(|w| {
                let ready = s
                    .instances_of(&w.name)
                    .filter(|i| i.record.ready && i.record.replaced_by.is_none())
                    .count();
                (w.name.clone(), w.spec.replicas, ready)
            })
            .collect();
        (nodes, instances, workloads, ages)
    });
    metric(
        "mini_sched_nodes",
        "gauge",
        "Nodes by state.",
        nodes
            .iter()
            .map(|(state, n)| (format!("{{state=\"{state:?}\"}}").to_lowercase(), *n as f64))
            .collect(),
    );
    metric(
        "mini_sched_node_heartbeat_age_seconds",
        "gauge",
        "Time since each node's last heartbeat.",
        heartbeat_age
            .into_iter()
            .map(|(n, age)| (format!("{{node=\"{}\"}}", escape(&n)), age))
            .collect(),
    );
    metric(
        "mini_sched_instances",
        "gauge",
        "Instances by workload and phase.",
        instances
            .iter()
            .map(|((w, p), n)| {
                let phase = format!("{p:?}").to_lowercase();
                (
                    format!("{{workload=\"{}\",phase=\"{phase}\"}}", escape(w)),
                    *n as f64,
                )
            })
            .collect(),
    );
    metric(
        "mini_sched_workload_replicas_desired",
        "gauge",
        "Desired replicas per workload.",
        workloads
            .iter()
            .map(|(w, d, _)| (format!("{{workload=\"{}\"}}", escape(w)), f64::from(*d)))
            .collect(),
    );
    metric(
        "mini_sched_workload_replicas_ready",
        "gauge",
        "Ready instances per workload.",
        workloads
            .iter()
            .map(|(w, _, r)| (format!("{{workload=\"{}\"}}", escape(w)), *r as f64))
            .collect(),
    );
    autoscaling(daemon, &mut metric);
    let c = daemon.counters.lock().unwrap_or_else(|e| e.into_inner());
    for (name, help, value) in [
        ("placements", "Instances placed on a node.", c.placements),
        (
            "preemptions",
            "Instances evicted by preemption.",
            c.preemptions,
        ),
        (
            "restarts",
            "Restarts after an exit or failed liveness probe.",
            c.restarts,
        ),
        ("nodes_lost", "Nodes declared lost.", c.nodes_lost),
        (
            "instances_lost",
            "Instances lost with their node and replaced.",
            c.instances_lost,
        ),
        (
            "fenced",
            "Stale or orphaned containers stopped on nodes.",
            c.fenced,
        ),
        ("migrations", "Migrations started.", c.migrations),
        ("agent_errors", "Failed calls to agents.", c.agent_errors),
    ] {
        metric(
            &format!("mini_sched_{name}_total"),
            "counter",
            help,
            vec![(String::new(), value as f64)],
        );
    }
    drop(c);
    out.push_str(&daemon.with(|s| super::services::metrics(s)));
    out
}

/// The autoscaled workloads' metric (as measured), target and desired replicas, labelled
/// with the metric's name.
fn autoscaling(daemon: &Daemon, metric: &mut impl FnMut(&str, &str, &str, Vec<(String, f64)>)) {
    let statuses: Vec<(String, crate::autoscale::AutoscaleStatus)> = daemon.with(|s| {
        s.workloads
            .keys()
            .filter_map(|name| {
                crate::controller::autoscale::status(s, name).map(|a| (name.clone(), a))
            })
            .collect()
    });
    let labels = |w: &str, a: &crate::autoscale::AutoscaleStatus| {
        format!(
            "{{workload=\"{}\",metric=\"{}\"}}",
            escape(w),
            escape(&a.metric)
        )
    };
    metric(
        "mini_sched_autoscale_metric_percent",
        "gauge",
        "The autoscaled metric's mean over the ready instances, percent (of the request for cpu and memory).",
        statuses
            .iter()
            .filter_map(|(w, a)| Some((labels(w, a), a.measured_percent?)))
            .collect(),
    );
    metric(
        "mini_sched_autoscale_target_percent",
        "gauge",
        "The autoscaling target, percent.",
        statuses
            .iter()
            .map(|(w, a)| (labels(w, a), f64::from(a.target_percent)))
            .collect(),
    );
    metric(
        "mini_sched_autoscale_desired_replicas",
        "gauge",
        "The replica count the autoscaler settled on at its last evaluation.",
        statuses
            .iter()
            .filter_map(|(w, a)| Some((labels(w, a), f64::from(a.desired?))))
            .collect(),
    );
}
