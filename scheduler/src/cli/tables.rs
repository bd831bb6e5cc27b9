//! The tables of `get` and `events`.

use super::format::{self, NONE};
use super::table::Table;
use crate::api::{Event, InstanceView, NodeView, RevisionView, ServiceView, WorkloadView};
use std::time::SystemTime;

/// `get nodes`; `wide` adds labels, taints, address and measured CPU.
pub fn nodes(nodes: &[NodeView], wide: bool, now: SystemTime) -> Table {
    let mut headers = vec![
        "NAME",
        "STATE",
        "CORDONED",
        "CPU(alloc/cap)",
        "MEMORY(alloc/cap)",
        "INSTANCES",
        "HEARTBEAT-AGE",
    ];
    if wide {
        headers.extend(["LABELS", "TAINTS", "ADDRESS", "CPU-BUSY"]);
    }
    let mut table = Table::new(&headers);
    for n in nodes {
        let mut row = vec![
            n.name.clone(),
            format::node_state(n.state),
            format::yes_no(n.cordoned).to_string(),
            format!(
                "{}/{}",
                format::cpu(n.allocated.cpu_millis),
                format::cpu(n.capacity.cpu_millis)
            ),
            format!(
                "{}/{}",
                format::memory(n.allocated.memory_bytes),
                format::memory(n.capacity.memory_bytes)
            ),
            n.instances.to_string(),
            n.last_heartbeat
                .as_deref()
                .map_or_else(|| "never".to_string(), |t| format::age(t, now)),
        ];
        if wide {
            row.extend([
                format::labels(&n.labels),
                format::taints(&n.taints),
                n.address.clone(),
                format::percent(n.cpu_busy),
            ]);
        }
        table.row(row);
    }
    table
}

/// `get services`.
pub fn services(services: &[ServiceView], now: SystemTime) -> Table {
    let mut table = Table::new(&["NAME", "ADDRESS", "PORTS", "ENDPOINTS", "BALANCE", "AGE"]);
    for s in services {
        table.row(vec![
            s.name.clone(),
            s.address.clone(),
            service_ports(&s.ports),
            format!("{}/{}", s.ready, s.total),
            s.balance.clone(),
            format::age(&s.created_at, now),
        ]);
    }
    table
}

/// `80:8080/tcp,53/udp(node 30053)`.
pub fn service_ports(ports: &[crate::api::ServicePortView]) -> String {
    ports
        .iter()
        .map(|p| {
            let mut text = p.port.to_string();
            if p.target_port != p.port {
                text.push_str(&format!(":{}", p.target_port));
            }
            text.push_str(&format!("/{}", p.protocol));
            if let Some(n) = p.node_port {
                text.push_str(&format!("(node {n})"));
            }
            text
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `get workloads`.
pub fn workloads(workloads: &[WorkloadView], now: SystemTime) -> Table {
    let mut table = Table::new(&[
        "NAME",
        "READY",
        "UP-TO-DATE",
        "REVISION",
        "STATUS",
        "AUTOSCALE",
        "AGE",
    ]);
    for w in workloads {
        table.row(vec![
            w.name.clone(),
            format!("{}/{}", w.ready, w.replicas),
            w.up_to_date.to_string(),
            w.revision.to_string(),
            w.status.clone(),
            super::autoscale::cell(w.autoscale.as_ref()),
            format::age(&w.created_at, now),
        ]);
    }
    table
}

/// An instance's cells: name, workload (if `with_workload`), revision, node, phase, ready,
/// restarts, age.
pub fn instance_cells(i: &InstanceView, with_workload: bool, now: SystemTime) -> Vec<String> {
    let mut cells = vec![i.id.clone()];
    if with_workload {
        cells.push(i.workload.clone());
    }
    cells.extend([
        i.revision.to_string(),
        i.node.clone().unwrap_or_else(|| NONE.to_string()),
        match &i.start_failure {
            Some(code) => format!("StartFailed: {code}"),
            None => format::phase(i.phase),
        },
        format::yes_no(i.ready).to_string(),
        i.restarts.to_string(),
        format::age(&i.created_at, now),
    ]);
    cells
}

/// `get instances`; `wide` adds the cluster address and why an instance is pending or failed.
pub fn instances(instances: &[InstanceView], wide: bool, now: SystemTime) -> Table {
    let mut headers = vec![
        "NAME", "WORKLOAD", "REV", "NODE", "PHASE", "READY", "RESTARTS", "AGE",
    ];
    if wide {
        headers.extend(["ADDRESS", "REASON"]);
    }
    let mut table = Table::new(&headers);
    for i in instances {
        let mut row = instance_cells(i, true, now);
        if wide {
            row.push(i.address.clone().unwrap_or_else(|| NONE.to_string()));
            row.push(i.reason.clone().unwrap_or_else(|| NONE.to_string()));
        }
        table.row(row);
    }
    table
}

/// `events` and the Events section of `describe`.
pub fn events(events: &[Event], now: SystemTime) -> Table {
    let mut table = Table::new(&["AGE", "OBJECT", "REASON", "MESSAGE"]);
    for e in events {
        table.row(vec![
            format::age(&e.time, now),
            e.object.clone(),
            e.reason.clone(),
            e.message.clone(),
        ]);
    }
    table
}

/// A workload's revisions (`rollout history`, `describe workload`), the current one marked.
pub fn revisions(revisions: &[RevisionView], current: u64, now: SystemTime) -> Table {
    let mut table = Table::new(&["REVISION", "CREATED", "AGE"]);
    for rev in revisions {
        let mut number = rev.revision.to_string();
        if rev.revision == current {
            number.push_str(" (current)");
        }
        table.row(vec![
            number,
            rev.created_at.clone(),
            format::age(&rev.created_at, now),
        ]);
    }
    table
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::{Amounts, NodeState, Phase, TaintView};
    use std::collections::BTreeMap;
    use std::time::Duration;

    /// 2023-11-14T22:13:20Z.
    pub(crate) fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    pub(crate) fn node(name: &str) -> NodeView {
        NodeView {
            name: name.into(),
            address: "10.77.0.2:7443".into(),
            state: NodeState::Ready,
            cordoned: false,
            labels: BTreeMap::from([("zone".to_string(), "a".to_string())]),
            taints: vec![],
            capacity: Amounts {
                cpu_millis: 4000,
                memory_bytes: 8 << 30,
                pids: 4096,
            },
            allocated: Amounts {
                cpu_millis: 1500,
                memory_bytes: 192 << 20,
                pids: 300,
            },
            cpu_busy: 0.25,
            memory_used_bytes: 3 << 30,
            instances: 3,
            last_heartbeat: Some("2023-11-14T22:13:19Z".into()),
            subnet: Some("10.88.1.0/24".into()),
        }
    }

    pub(crate) fn instance(id: &str, phase: Phase) -> InstanceView {
        InstanceView {
            id: id.into(),
            workload: "web".into(),
            revision: 2,
            node: Some("n1".into()),
            phase,
            ready: phase == Phase::Running,
            restarts: 0,
            started_at: Some("2023-11-14T22:10:20Z".into()),
            exit: None,
            reason: None,
            created_at: "2023-11-14T22:10:00Z".into(),
            start_failure: None,
            address: None,
        }
    }

    pub(crate) fn event(seq: u64, object: &str, reason: &str, message: &str) -> Event {
        Event {
            seq,
            time: "2023-11-14T22:12:20Z".into(),
            object: object.into(),
            reason: reason.into(),
            message: message.into(),
        }
    }

    #[test]
    fn nodes_show_allocation_over_capacity() {
        let mut lost = node("n2-long-name");
        lost.state = NodeState::Lost;
        lost.cordoned = true;
        lost.last_heartbeat = None;
        lost.allocated = Amounts::default();
        let text = nodes(&[node("n1"), lost], false, now()).render();
        assert_eq!(
            text,
            "NAME          STATE  CORDONED  CPU(alloc/cap)  MEMORY(alloc/cap)  INSTANCES  HEARTBEAT-AGE\n\
             n1            Ready  no        1500m/4         192Mi/8Gi          3          1s\n\
             n2-long-name  Lost   yes       0/4             0/8Gi              3          never\n"
        );
    }

    #[test]
    fn wide_nodes_add_labels_taints_address_and_busy_cpu() {
        let mut n = node("n1");
        n.taints.push(TaintView {
            key: "gpu".into(),
            value: "yes".into(),
            effect: "NoSchedule".into(),
        });
        let text = nodes(&[n], true, now()).render();
        let mut lines = text.lines();
        assert!(lines
            .next()
            .unwrap()
            .ends_with("HEARTBEAT-AGE  LABELS  TAINTS              ADDRESS         CPU-BUSY"));
        assert!(lines
            .next()
            .unwrap()
            .ends_with("1s             zone=a  gpu=yes:NoSchedule  10.77.0.2:7443  25%"));
    }

    #[test]
    fn workloads_show_ready_over_replicas() {
        let w = WorkloadView {
            name: "web".into(),
            replicas: 3,
            ready: 2,
            up_to_date: 1,
            revision: 2,
            priority: 0,
            status: "progressing".into(),
            created_at: "2023-11-14T20:13:20Z".into(),
            autoscale: None,
        };
        let scaled = WorkloadView {
            name: "api".into(),
            autoscale: Some(crate::autoscale::AutoscaleStatus {
                min: 1,
                max: 4,
                metric: "cpu".into(),
                target_percent: 50,
                measured_percent: Some(63.4),
                ..Default::default()
            }),
            ..w.clone()
        };
        assert_eq!(
            workloads(&[w, scaled], now()).render(),
            "NAME  READY  UP-TO-DATE  REVISION  STATUS       AUTOSCALE        AGE\n\
             web   2/3    1           2         progressing  <none>           2h\n\
             api   2/3    1           2         progressing  1–4 cpu 63%/50%  2h\n"
        );
    }

    #[test]
    fn instances_show_none_for_unplaced_and_reason_when_wide() {
        let mut pending = instance("web-4", Phase::Pending);
        pending.node = None;
        pending.reason = Some("0/3 nodes available: 3 insufficient resources".into());
        let rows = [instance("web-3", Phase::Running), pending];
        assert_eq!(
            instances(&rows, false, now()).render(),
            "NAME   WORKLOAD  REV  NODE    PHASE    READY  RESTARTS  AGE\n\
             web-3  web       2    n1      Running  yes    0         3m\n\
             web-4  web       2    <none>  Pending  no     0         3m\n"
        );
        let wide = instances(&rows, true, now()).render();
        assert!(wide
            .lines()
            .next()
            .unwrap()
            .ends_with("AGE  ADDRESS  REASON"));
        assert!(wide
            .lines()
            .nth(1)
            .unwrap()
            .ends_with("3m   <none>   <none>"));
        assert!(wide
            .lines()
            .nth(2)
            .unwrap()
            .ends_with("3m   <none>   0/3 nodes available: 3 insufficient resources"));
    }

    #[test]
    fn an_instance_that_cannot_start_shows_start_failed_with_the_cause() {
        let mut failing = instance("web-5", Phase::BackOff);
        failing.restarts = 14;
        failing.start_failure = Some("source_unavailable".into());
        assert_eq!(
            instances(&[failing], false, now()).render(),
            "NAME   WORKLOAD  REV  NODE  PHASE                            READY  RESTARTS  AGE\n\
             web-5  web       2    n1    StartFailed: source_unavailable  no     14        3m\n"
        );
    }

    #[test]
    fn events_show_age_object_reason_message() {
        let e = [event(1, "instance/web-3", "Scheduled", "placed on n1")];
        assert_eq!(
            events(&e, now()).render(),
            "AGE  OBJECT          REASON     MESSAGE\n\
             1m   instance/web-3  Scheduled  placed on n1\n"
        );
    }
}
