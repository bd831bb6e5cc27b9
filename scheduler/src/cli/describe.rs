//! `describe`: one object in readable sections, kubectl style.

use super::format::{self, NONE};
use super::table::Table;
use super::tables;
use super::tree;
use crate::api::{
    Amounts, Event, ExitView, InstanceDetail, InstanceView, NodeDetail, ServiceDetail,
    WorkloadDetail,
};
use std::time::SystemTime;

/// Labelled values, their values aligned in one column; a multi-line value continues in that
/// column.
struct Fields {
    rows: Vec<(String, String)>,
}

impl Fields {
    fn new() -> Fields {
        Fields { rows: Vec::new() }
    }

    fn add(&mut self, label: &str, value: impl Into<String>) -> &mut Fields {
        self.rows.push((label.to_string(), value.into()));
        self
    }

    fn render(&self) -> String {
        let column = self
            .rows
            .iter()
            .map(|(l, _)| l.len() + 1)
            .max()
            .unwrap_or(0)
            + 2;
        let mut out = String::new();
        for (label, value) in &self.rows {
            let mut lines = value.lines();
            let first = lines.next().unwrap_or("");
            let head = format!("{label}:");
            out.push_str(format!("{head:<column$}{first}").trim_end());
            out.push('\n');
            for line in lines {
                out.push_str(&format!("{:column$}{line}\n", ""));
            }
        }
        out
    }
}

/// A titled section holding a table indented under the title, or `<none>`.
fn section(title: &str, table: &Table) -> String {
    if table.is_empty() {
        format!("{title}:  {NONE}\n")
    } else {
        format!("{title}:\n{}", table.render_indented(2))
    }
}

fn events(list: &[Event], now: SystemTime) -> String {
    section("Events", &tables::events(list, now))
}

/// The instance columns of a workload's or node's instance list.
fn instance_list(list: &[InstanceView], now: SystemTime) -> Table {
    let mut table = Table::new(&[
        "NAME", "REV", "NODE", "PHASE", "READY", "RESTARTS", "AGE", "REASON",
    ]);
    for i in list {
        let mut row = tables::instance_cells(i, false, now);
        row.push(i.reason.clone().unwrap_or_default());
        table.row(row);
    }
    table
}

fn amounts(a: &Amounts, of: Option<&Amounts>) -> String {
    let share = |part: u64, whole: Option<u64>| {
        whole.map_or_else(String::new, |w| format!(" ({})", format::share(part, w)))
    };
    format!(
        "cpu:     {}{}\nmemory:  {}{}\npids:    {}{}",
        format::cpu(a.cpu_millis),
        share(a.cpu_millis, of.map(|o| o.cpu_millis)),
        format::memory(a.memory_bytes),
        share(a.memory_bytes, of.map(|o| o.memory_bytes)),
        a.pids,
        share(a.pids, of.map(|o| o.pids)),
    )
}

/// `describe node`.
pub fn node(d: &NodeDetail, now: SystemTime) -> String {
    let n = &d.node;
    let taints = if n.taints.is_empty() {
        NONE.to_string()
    } else {
        n.taints
            .iter()
            .map(format::taint)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut f = Fields::new();
    f.add("Name", &n.name)
        .add("Address", &n.address)
        .add("Subnet", n.subnet.as_deref().unwrap_or(NONE))
        .add("State", format::node_state(n.state))
        .add("Cordoned", format::yes_no(n.cordoned))
        .add("Labels", format::labels_joined(&n.labels, "\n"))
        .add("Taints", taints)
        .add("Joined", format::when(&d.joined_at, now))
        .add(
            "Last Heartbeat",
            n.last_heartbeat
                .as_deref()
                .map_or_else(|| "never".to_string(), |t| format::when(t, now)),
        )
        .add("Capacity", amounts(&n.capacity, None))
        .add("Allocated", amounts(&n.allocated, Some(&n.capacity)))
        .add(
            "Usage",
            format!(
                "cpu:     {} busy\nmemory:  {} used ({})",
                format::percent(n.cpu_busy),
                format::memory(n.memory_used_bytes),
                format::share(n.memory_used_bytes, n.capacity.memory_bytes)
            ),
        )
        .add("Instances", n.instances.to_string());
    let mut out = f.render();
    out.push_str(&section(
        "Instance List",
        &instance_list(&d.instances_list, now),
    ));
    out.push_str(&events(&d.events, now));
    out
}

/// `describe workload`.
pub fn workload(d: &WorkloadDetail, now: SystemTime) -> String {
    let w = &d.workload;
    let r = &d.rollout;
    let mut f = Fields::new();
    f.add("Name", &w.name)
        .add("Status", &w.status)
        .add("Revision", w.revision.to_string())
        .add("Priority", w.priority.to_string())
        .add("Created", format::when(&w.created_at, now))
        .add(
            "Replicas",
            format!(
                "{} desired | {} ready | {} up-to-date",
                w.replicas, w.ready, w.up_to_date
            ),
        )
        .add(
            "Rollout",
            format!(
                "{} (revision {}): {} of {} updated, {} ready; old: {} running, {} stopping\n{}",
                r.state,
                r.revision,
                r.updated,
                r.desired,
                r.updated_ready,
                r.old_running,
                r.old_stopping,
                r.message
            ),
        );
    let mut out = f.render();
    if let Some(a) = &w.autoscale {
        out.push_str(&super::autoscale::section(a, now));
    }
    if let Some(r) = &d.rightsizing {
        out.push_str(&super::autoscale::rightsizing(r));
    }
    out.push_str("Spec:\n");
    out.push_str(&tree::outline(&d.spec, 2));
    let revisions = tables::revisions(&d.revisions, w.revision, now);
    out.push_str(&section("Revisions", &revisions));
    out.push_str(&section("Instances", &instance_list(&d.instances, now)));
    out.push_str(&events(&d.events, now));
    out
}

fn exit(e: &ExitView, now: SystemTime) -> String {
    let mut text = format!("code {}", e.code);
    if let Some(signal) = &e.signal {
        text.push_str(&format!(" ({signal})"));
    }
    if e.oom_killed {
        text.push_str(", OOM killed");
    }
    format!("{text}, at {}", format::when(&e.finished_at, now))
}

/// `describe instance`.
pub fn instance(d: &InstanceDetail, now: SystemTime) -> String {
    let i = &d.instance;
    let mut f = Fields::new();
    f.add("Name", &i.id)
        .add("Workload", &i.workload)
        .add("Revision", i.revision.to_string())
        .add("Node", i.node.as_deref().unwrap_or(NONE))
        .add("Address", i.address.as_deref().unwrap_or(NONE))
        .add("Phase", format::phase(i.phase))
        .add("Ready", format::yes_no(i.ready))
        .add("Restarts", i.restarts.to_string())
        .add("Created", format::when(&i.created_at, now))
        .add(
            "Started",
            i.started_at
                .as_deref()
                .map_or_else(|| NONE.to_string(), |t| format::when(t, now)),
        )
        .add(
            "Last Exit",
            i.exit
                .as_ref()
                .map_or_else(|| NONE.to_string(), |e| exit(e, now)),
        );
    if let Some(at) = &d.next_restart_at {
        f.add("Next Restart", at.clone());
    }
    if let Some(u) = &d.usage {
        f.add(
            "Usage",
            format!(
                "cpu {}, memory {} (measured)",
                format::cpu(u.cpu_millis),
                format::memory(u.memory_bytes)
            ),
        );
    }
    f.add("Reason", i.reason.as_deref().unwrap_or(NONE));
    let mut out = f.render();
    if !d.placement.is_empty() {
        let mut table = Table::new(&["NODE", "VERDICT"]);
        for v in &d.placement {
            table.row(vec![v.node.clone(), v.verdict.clone()]);
        }
        out.push_str(&section("Placement", &table));
    }
    out.push_str(&events(&d.events, now));
    out
}

/// `describe service`.
pub fn service(d: &ServiceDetail, now: SystemTime) -> String {
    let s = &d.service;
    let mut f = Fields::new();
    f.add("Name", &s.name)
        .add("Address", &s.address)
        .add("DNS name", &s.dns_name)
        .add("Ports", tables::service_ports(&s.ports))
        .add("Selector", &s.selector)
        .add("Balance", &s.balance)
        .add(
            "Session affinity",
            d.session_affinity_seconds
                .map_or_else(|| NONE.to_string(), |secs| format!("{secs}s")),
        )
        .add("Endpoints", format!("{} ready of {}", s.ready, s.total))
        .add("Created", format::when(&s.created_at, now));
    let mut out = f.render();
    let mut endpoints = Table::new(&["INSTANCE", "NODE", "ADDRESS", "READY", "WEIGHT", "REASON"]);
    for e in &d.endpoints {
        endpoints.row(vec![
            e.instance.clone(),
            e.node.clone().unwrap_or_else(|| NONE.into()),
            e.address.clone().unwrap_or_else(|| NONE.into()),
            format::yes_no(e.ready).to_string(),
            e.weight.map_or_else(|| NONE.into(), |w| w.to_string()),
            e.reason.clone().unwrap_or_default(),
        ]);
    }
    out.push_str(&section("Endpoints", &endpoints));
    let mut nodes = Table::new(&["NODE", "GENERATION", "ERROR"]);
    for n in &d.nodes {
        nodes.row(vec![
            n.node.clone(),
            n.generation
                .map_or_else(|| "pending".into(), |g| format!("{g}/{}", d.generation)),
            n.error.clone().unwrap_or_default(),
        ]);
    }
    out.push_str(&section("Nodes", &nodes));
    out.push_str(&events(&d.events, now));
    out
}

#[cfg(test)]
mod tests {
    use super::super::tables::tests::{event, instance as view, node as node_view, now};
    use super::*;
    use crate::api::{Phase, RevisionView, RolloutStatus, WorkloadView};

    #[test]
    fn a_pending_instance_says_why() {
        let mut i = view("web-4", Phase::Pending);
        i.node = None;
        i.ready = false;
        i.started_at = None;
        i.reason =
            Some("0/3 nodes available: 2 insufficient resources, 1 untolerated taint".into());
        let d = InstanceDetail {
            instance: i,
            next_restart_at: None,
            placement: vec![
                crate::api::NodeVerdict {
                    node: "n1".into(),
                    verdict: "insufficient resources".into(),
                },
                crate::api::NodeVerdict {
                    node: "n2".into(),
                    verdict: "untolerated taint".into(),
                },
            ],
            usage: None,
            events: vec![event(
                7,
                "instance/web-4",
                "FailedScheduling",
                "0/3 nodes available",
            )],
        };
        assert_eq!(
            instance(&d, now()),
            "Name:       web-4\n\
             Workload:   web\n\
             Revision:   2\n\
             Node:       <none>\n\
             Address:    <none>\n\
             Phase:      Pending\n\
             Ready:      no\n\
             Restarts:   0\n\
             Created:    2023-11-14T22:10:00Z (3m ago)\n\
             Started:    <none>\n\
             Last Exit:  <none>\n\
             Reason:     0/3 nodes available: 2 insufficient resources, 1 untolerated taint\n\
             Placement:\n\
             \x20 NODE  VERDICT\n\
             \x20 n1    insufficient resources\n\
             \x20 n2    untolerated taint\n\
             Events:\n\
             \x20 AGE  OBJECT          REASON            MESSAGE\n\
             \x20 1m   instance/web-4  FailedScheduling  0/3 nodes available\n"
        );
    }

    #[test]
    fn a_restarting_instance_shows_its_last_exit_and_next_restart() {
        let mut i = view("web-1", Phase::BackOff);
        i.restarts = 4;
        i.exit = Some(ExitView {
            code: 137,
            signal: Some("SIGKILL".into()),
            oom_killed: true,
            finished_at: "2023-11-14T22:13:15Z".into(),
        });
        let d = InstanceDetail {
            instance: i,
            next_restart_at: Some("2023-11-14T22:13:31Z".into()),
            placement: Vec::new(),
            usage: Some(Amounts {
                cpu_millis: 412,
                memory_bytes: 3 << 20,
                pids: 0,
            }),
            events: vec![],
        };
        let text = instance(&d, now());
        assert!(text.contains(
            "Last Exit:     code 137 (SIGKILL), OOM killed, at 2023-11-14T22:13:15Z (5s ago)\n"
        ));
        assert!(text.contains("Next Restart:  2023-11-14T22:13:31Z\n"));
        assert!(
            text.contains("Usage:         cpu 412m, memory 3Mi (measured)\n"),
            "{text}"
        );
        assert!(
            text.ends_with("Reason:        <none>\nEvents:  <none>\n"),
            "{text}"
        );
    }

    #[test]
    fn a_node_shows_capacity_allocation_and_usage() {
        let mut n = node_view("n1");
        n.labels.insert("disk".into(), "ssd".into());
        let d = NodeDetail {
            node: n,
            joined_at: "2023-11-14T20:13:20Z".into(),
            instances_list: vec![view("web-3", Phase::Running)],
            events: vec![],
        };
        assert_eq!(
            node(&d, now()),
            "Name:            n1\n\
             Address:         10.77.0.2:7443\n\
             Subnet:          10.88.1.0/24\n\
             State:           Ready\n\
             Cordoned:        no\n\
             Labels:          disk=ssd\n\
             \x20                zone=a\n\
             Taints:          <none>\n\
             Joined:          2023-11-14T20:13:20Z (2h ago)\n\
             Last Heartbeat:  2023-11-14T22:13:19Z (1s ago)\n\
             Capacity:        cpu:     4\n\
             \x20                memory:  8Gi\n\
             \x20                pids:    4096\n\
             Allocated:       cpu:     1500m (38%)\n\
             \x20                memory:  192Mi (2%)\n\
             \x20                pids:    300 (7%)\n\
             Usage:           cpu:     25% busy\n\
             \x20                memory:  3Gi used (38%)\n\
             Instances:       3\n\
             Instance List:\n\
             \x20 NAME   REV  NODE  PHASE    READY  RESTARTS  AGE  REASON\n\
             \x20 web-3  2    n1    Running  yes    0         3m\n\
             Events:  <none>\n"
        );
    }

    #[test]
    fn a_workload_shows_rollout_spec_revisions_instances_and_events() {
        let d = WorkloadDetail {
            workload: WorkloadView {
                name: "web".into(),
                replicas: 3,
                ready: 3,
                up_to_date: 1,
                revision: 2,
                priority: 10,
                status: "progressing".into(),
                created_at: "2023-11-14T20:13:20Z".into(),
                autoscale: None,
            },
            spec: serde_json::json!({"name": "web", "replicas": 3}),
            revisions: vec![
                RevisionView {
                    revision: 1,
                    created_at: "2023-11-14T20:13:20Z".into(),
                    spec: serde_json::json!({}),
                },
                RevisionView {
                    revision: 2,
                    created_at: "2023-11-14T22:12:20Z".into(),
                    spec: serde_json::json!({}),
                },
            ],
            rollout: RolloutStatus {
                workload: "web".into(),
                revision: 2,
                state: "progressing".into(),
                desired: 3,
                updated: 2,
                updated_ready: 1,
                old: 2,
                old_running: 2,
                old_stopping: 0,
                message: "waiting for web-5 to turn ready".into(),
            },
            instances: vec![view("web-4", Phase::Running)],
            events: vec![event(3, "workload/web", "RolloutStarted", "revision 2")],
            rightsizing: None,
        };
        assert_eq!(
            workload(&d, now()),
            "Name:      web\n\
             Status:    progressing\n\
             Revision:  2\n\
             Priority:  10\n\
             Created:   2023-11-14T20:13:20Z (2h ago)\n\
             Replicas:  3 desired | 3 ready | 1 up-to-date\n\
             Rollout:   progressing (revision 2): 2 of 3 updated, 1 ready; old: 2 running, 0 stopping\n\
             \x20          waiting for web-5 to turn ready\n\
             Spec:\n\
             \x20 name: web\n\
             \x20 replicas: 3\n\
             Revisions:\n\
             \x20 REVISION     CREATED               AGE\n\
             \x20 1            2023-11-14T20:13:20Z  2h\n\
             \x20 2 (current)  2023-11-14T22:12:20Z  1m\n\
             Instances:\n\
             \x20 NAME   REV  NODE  PHASE    READY  RESTARTS  AGE  REASON\n\
             \x20 web-4  2    n1    Running  yes    0         3m\n\
             Events:\n\
             \x20 AGE  OBJECT        REASON          MESSAGE\n\
             \x20 1m   workload/web  RolloutStarted  revision 2\n"
        );
    }
}
