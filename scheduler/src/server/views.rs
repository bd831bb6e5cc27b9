//! The API's views of the state: rows for `get`, details for `describe`, rollout status.

use crate::api::{
    Amounts, Event, InstanceDetail, InstanceView, NodeDetail, NodeView, Phase, RevisionView,
    RolloutStatus, WorkloadDetail, WorkloadView,
};
use crate::controller::placing::{occupies, NODE_PIDS};
use crate::state::{rfc3339, sequence, Instance, Node, State, WorkloadRecord};

/// Events about `object` or, with `prefix_of`, about instances of the workload too.
pub fn events_about(
    state: &State,
    objects: &[String],
    instance_prefix: Option<&str>,
) -> Vec<Event> {
    state
        .events
        .iter()
        .filter(|e| {
            objects.contains(&e.object)
                || instance_prefix.is_some_and(|p| {
                    e.object
                        .strip_prefix("instance/")
                        .and_then(|id| id.strip_prefix(p))
                        .and_then(|rest| rest.strip_prefix('-'))
                        .is_some_and(|seq| seq.chars().all(|c| c.is_ascii_digit()))
                })
        })
        .cloned()
        .collect()
}

/// A node's row.
pub fn node_view(state: &State, node: &Node) -> NodeView {
    let status = node.live.status.as_ref();
    let mut allocated = Amounts::default();
    let mut instances = 0;
    for i in state.instances_on(&node.record.name) {
        if !occupies(i.record.phase) {
            continue;
        }
        instances += 1;
        if let Some(spec) = state.spec_of(&i.record.id) {
            let r = spec.instance_spec().requests;
            allocated.cpu_millis += r.cpu_millis;
            allocated.memory_bytes += r.memory_bytes;
            allocated.pids += r.pids;
        }
    }
    NodeView {
        name: node.record.name.clone(),
        address: node.record.address.to_string(),
        state: node.state(),
        cordoned: node.record.cordoned,
        labels: node.record.labels.clone(),
        taints: node.record.taints.clone(),
        capacity: Amounts {
            cpu_millis: status.map_or(0, |s| u64::from(s.cpus) * 1000),
            memory_bytes: status.map_or(0, |s| s.memory_total_bytes),
            pids: NODE_PIDS,
        },
        allocated,
        cpu_busy: status.map_or(0.0, |s| s.cpu_busy),
        memory_used_bytes: status.map_or(0, |s| {
            s.memory_total_bytes
                .saturating_sub(s.memory_available_bytes)
        }),
        instances,
        last_heartbeat: node.live.last_heartbeat_at.map(rfc3339),
        subnet: node.record.subnet.clone(),
    }
}

/// A node's details.
pub fn node_detail(state: &State, node: &Node) -> NodeDetail {
    NodeDetail {
        node: node_view(state, node),
        joined_at: node.record.joined_at.clone(),
        instances_list: state
            .instances_on(&node.record.name)
            .filter(|i| !i.record.phase.is_final())
            .map(instance_view)
            .collect(),
        events: events_about(state, &[format!("node/{}", node.record.name)], None),
    }
}

/// An instance's row.
pub fn instance_view(instance: &Instance) -> InstanceView {
    let r = &instance.record;
    InstanceView {
        id: r.id.clone(),
        workload: r.workload.clone(),
        revision: r.revision,
        node: r.node.clone(),
        phase: r.phase,
        ready: r.ready,
        restarts: r.restarts,
        started_at: r.started_at.clone(),
        exit: r.exit.clone(),
        reason: r.reason.clone(),
        created_at: r.created_at.clone(),
        start_failure: r.start_failure.clone(),
        address: instance.live.address.clone(),
    }
}

/// An instance's details.
pub fn instance_detail(state: &State, instance: &Instance) -> InstanceDetail {
    InstanceDetail {
        instance: instance_view(instance),
        next_restart_at: instance.record.next_restart_at.clone(),
        placement: Vec::new(),
        usage: {
            let u = instance.live.usage;
            (u.rated && instance.record.phase == Phase::Running).then_some(Amounts {
                cpu_millis: u.cpu_millis,
                memory_bytes: u.memory_bytes,
                pids: 0,
            })
        },
        events: events_about(state, &[format!("instance/{}", instance.record.id)], None),
    }
}

/// Where a workload's rollout stands.
pub fn rollout(state: &State, w: &WorkloadRecord) -> RolloutStatus {
    let live: Vec<&Instance> = state
        .instances_of(&w.name)
        .filter(|i| !i.record.phase.is_final() && i.record.phase != Phase::Stopping)
        .filter(|i| i.record.replaced_by.is_none())
        .collect();
    let updated = live
        .iter()
        .filter(|i| i.record.revision == w.revision)
        .count() as u32;
    let updated_ready = live
        .iter()
        .filter(|i| i.record.revision == w.revision && i.record.ready)
        .count() as u32;
    let old_stopping = state
        .instances_of(&w.name)
        .filter(|i| i.record.revision != w.revision && i.record.phase == Phase::Stopping)
        .count() as u32;
    let old = state
        .instances_of(&w.name)
        .filter(|i| i.record.revision != w.revision && !i.record.phase.is_final())
        .count() as u32;
    let old_running = old - old_stopping;
    let desired = w.spec.replicas;
    let pending: Vec<&Instance> = live
        .iter()
        .copied()
        .filter(|i| i.record.phase == Phase::Pending && i.record.reason.is_some())
        .collect();
    let backing_off = live
        .iter()
        .filter(|i| i.record.phase == Phase::BackOff)
        .count();
    let cannot_start = live
        .iter()
        .find(|i| i.record.revision == w.revision && i.record.start_failure.is_some());
    let (state_name, message) = if let Some(i) = cannot_start {
        (
            "failed",
            format!(
                "{} cannot start ({}): {}",
                i.record.id,
                i.record.start_failure.clone().unwrap_or_default(),
                i.record.reason.clone().unwrap_or_default()
            ),
        )
    } else if updated_ready >= desired && old == 0 && updated == desired {
        (
            "complete",
            format!(
                "revision {} rolled out: {updated_ready}/{desired} ready",
                w.revision
            ),
        )
    } else if let Some(p) = pending.first() {
        (
            "stalled",
            format!(
                "{updated_ready}/{desired} ready; {} pending: {}",
                p.record.id,
                p.record.reason.clone().unwrap_or_default()
            ),
        )
    } else if backing_off > 0 && updated_ready < desired {
        (
            "stalled",
            format!("{updated_ready}/{desired} ready; {backing_off} instance(s) crash-looping"),
        )
    } else {
        let waiting = if updated < desired {
            format!("starting {} updated instance(s)", desired - updated)
        } else if updated_ready < desired {
            format!(
                "waiting for {} updated instance(s) to turn ready",
                desired - updated_ready
            )
        } else {
            format!("waiting for {old} old instance(s) to stop")
        };
        ("progressing", waiting)
    };
    RolloutStatus {
        workload: w.name.clone(),
        revision: w.revision,
        state: state_name.into(),
        desired,
        updated,
        updated_ready,
        old,
        old_running,
        old_stopping,
        message,
    }
}

/// A workload's row.
pub fn workload_view(state: &State, w: &WorkloadRecord) -> WorkloadView {
    let ready = state
        .instances_of(&w.name)
        .filter(|i| i.record.ready && i.record.phase == Phase::Running)
        .filter(|i| i.record.replaced_by.is_none())
        .count() as u32;
    let r = rollout(state, w);
    let status = if w.deleting {
        "deleting"
    } else if r.state == "complete" {
        "available"
    } else if r.state == "stalled" {
        "degraded"
    } else {
        "progressing"
    };
    WorkloadView {
        name: w.name.clone(),
        replicas: w.spec.replicas,
        ready,
        up_to_date: r.updated_ready,
        revision: w.revision,
        priority: w.spec.priority,
        status: status.into(),
        created_at: w.created_at.clone(),
        autoscale: crate::controller::autoscale::status(state, &w.name),
    }
}

/// A workload's details.
pub fn workload_detail(state: &State, w: &WorkloadRecord) -> WorkloadDetail {
    WorkloadDetail {
        workload: workload_view(state, w),
        spec: serde_json::to_value(&w.spec).expect("specs serialize"),
        revisions: w
            .revisions
            .iter()
            .map(|r| RevisionView {
                revision: r.revision,
                created_at: r.created_at.clone(),
                spec: serde_json::to_value(&r.spec).expect("specs serialize"),
            })
            .collect(),
        rollout: rollout(state, w),
        instances: {
            let mut rows: Vec<InstanceView> =
                state.instances_of(&w.name).map(instance_view).collect();
            rows.sort_by_key(|i| sequence(&i.id));
            rows
        },
        events: events_about(state, &[format!("workload/{}", w.name)], Some(&w.name)),
        rightsizing: crate::controller::autoscale::rightsizing(state, &w.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::replicas::create_instance;

    /// A rolling update under way: 3 replicas at revision 2, one of them ready; of revision
    /// 1, one still running and one being stopped.
    #[test]
    fn rollout_counts_updated_ready_old_running_and_old_stopping_apart() {
        let spec = crate::spec::parse("name: web\nreplicas: 3\nsource: {rootfs: /x}\n")
            .expect("a valid spec");
        let mut state = State::default();
        let mut w = WorkloadRecord::new(spec, 1, 1);
        state.workloads.insert("web".into(), w.clone());
        for phase in [Phase::Running, Phase::Stopping] {
            let id = create_instance(&mut state, "web", 1);
            state.instances.get_mut(&id).expect("made").record.phase = phase;
        }
        for ready in [true, false, false] {
            let id = create_instance(&mut state, "web", 2);
            let r = &mut state.instances.get_mut(&id).expect("made").record;
            r.phase = Phase::Running;
            r.ready = ready;
        }
        w.revision = 2;
        let s = rollout(&state, &w);
        assert_eq!(
            (
                s.updated,
                s.updated_ready,
                s.old,
                s.old_running,
                s.old_stopping
            ),
            (3, 1, 2, 1, 1)
        );
        assert_eq!(s.state, "progressing");
        assert_eq!(s.message, "waiting for 2 updated instance(s) to turn ready");
        // One updated instance that cannot start fails the rollout at once, naming it.
        let r = &mut state.instances.get_mut("web-4").expect("made").record;
        r.phase = Phase::BackOff;
        r.start_failure = Some("source_unavailable".into());
        r.reason = Some("failed to start: no rootfs at /x".into());
        let s = rollout(&state, &w);
        assert_eq!(s.state, "failed");
        assert_eq!(
            s.message,
            "web-4 cannot start (source_unavailable): failed to start: no rootfs at /x"
        );
        assert_eq!(
            instance_view(&state.instances["web-4"])
                .start_failure
                .as_deref(),
            Some("source_unavailable")
        );
    }
}
