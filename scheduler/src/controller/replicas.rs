//! Replica counts and rolling updates, as a Kubernetes Deployment does them, and deletion.
//!
//! An instance *counts* toward its workload's replicas while it is not finished, not being
//! stopped and not being replaced by a migration (its replacement counts instead); an instance
//! that ended for good under its restart policy (`succeeded`, `failed`) of the current revision
//! counts too, so it is not replaced behind the policy's back. During a rollout, new-revision
//! instances are created while the total stays within `replicas + max_surge`, and old ones are
//! stopped while the ready ones stay at least `replicas − max_unavailable`; unready old
//! instances go first, as they serve nothing.

use super::lifecycle::request_stop;
use crate::api::Phase;
use crate::state::{sequence, Instance, InstanceLive, InstanceRecord, State};

fn counts(instance: &Instance) -> bool {
    let r = &instance.record;
    !r.phase.is_final() && r.phase != Phase::Stopping && r.replaced_by.is_none()
}

fn ended_under_policy(instance: &Instance, revision: u64) -> bool {
    let r = &instance.record;
    r.revision == revision && matches!(r.phase, Phase::Succeeded | Phase::Failed)
}

/// Creates a pending instance of `workload` at `revision`; returns its id.
pub fn create_instance(state: &mut State, workload: &str, revision: u64) -> String {
    let w = state.workloads.get_mut(workload).expect("workload exists");
    let id = format!("{}-{}", w.name, w.next_seq);
    w.next_seq += 1;
    state.save_workload(workload);
    let record = InstanceRecord::pending(&id, workload, revision);
    state.insert_instance(Instance {
        record,
        live: InstanceLive::default(),
    });
    state.save_instance(&id);
    state.event(
        format!("instance/{id}"),
        "Created",
        format!("instance of {workload} revision {revision}"),
    );
    id
}

/// Which of `ids` to stop first when there are too many: pending, then not ready, then the
/// newest.
fn stop_order(state: &State, mut ids: Vec<String>) -> Vec<String> {
    ids.sort_by_key(|id| {
        let r = &state.instances[id].record;
        let seq = sequence(id);
        (
            r.phase != Phase::Pending,
            r.ready,
            r.phase == Phase::Running,
            std::cmp::Reverse(seq),
        )
    });
    ids
}

/// The lost instances of workload `name` that nothing replaces yet, oldest first.
fn unreplaced_lost(state: &State, name: &str) -> Vec<String> {
    let mut lost: Vec<String> = state
        .instances_of(name)
        .filter(|i| i.record.phase == Phase::Lost && i.record.replaced_by.is_none())
        .map(|i| i.record.id.clone())
        .collect();
    lost.sort_by_key(|id| sequence(id));
    lost
}

/// Records that `new` replaces the lost instance `lost`. On a node that is gone for good
/// (deleted) nothing of `lost` can come back: it has ended; otherwise it ends once its copy
/// is fenced ([`fenced`]).
fn replaced(state: &mut State, lost: &str, new: &str) {
    let Some(instance) = state.instances.get_mut(lost) else {
        return;
    };
    instance.record.replaced_by = Some(new.to_string());
    let node = instance.record.node.clone().unwrap_or_default();
    state.save_instance(lost);
    state.event(
        format!("instance/{lost}"),
        "Replacing",
        format!("{new} replaces it"),
    );
    if !state.nodes.contains_key(&node) {
        state.set_phase(
            lost,
            Phase::Replaced,
            Some(format!("replaced by {new}; node {node} was deleted")),
        );
    }
}

/// The stale container `container` was removed from `node` (fencing): if it was the copy of
/// a lost instance that has its replacement, that instance has ended.
pub fn fenced(state: &mut State, node: &str, container: &str) {
    let Some(i) = state.instances.get(container) else {
        return;
    };
    if i.record.phase != Phase::Lost || i.record.node.as_deref() != Some(node) {
        return;
    }
    if let Some(new) = i.record.replaced_by.clone() {
        state.set_phase(
            container,
            Phase::Replaced,
            Some(format!("replaced by {new}; its copy on {node} was removed")),
        );
    }
}

/// Finished instances remembered per workload (for `get instances`, `describe`); older ones
/// are forgotten. A container left on a node by a forgotten instance is removed as stale.
pub const FINISHED_KEPT: usize = 20;

/// Reconciles every workload's instances with its spec.
pub fn reconcile(state: &mut State) {
    let names: Vec<String> = state.workloads.keys().cloned().collect();
    for name in names {
        if state.workloads[&name].deleting {
            delete(state, &name);
        } else {
            scale_and_roll(state, &name);
            forget_old(state, &name);
        }
    }
}

/// Forgets the oldest finished instances beyond [`FINISHED_KEPT`] (not those still counting
/// toward the replicas under their restart policy).
fn forget_old(state: &mut State, name: &str) {
    let revision = state.workloads[name].revision;
    let mut finished: Vec<String> = state
        .instances_of(name)
        .filter(|i| i.record.phase.is_final() && !ended_under_policy(i, revision))
        .filter(|i| !i.live.in_flight)
        .map(|i| i.record.id.clone())
        .collect();
    if finished.len() <= FINISHED_KEPT {
        return;
    }
    finished.sort_by_key(|id| sequence(id));
    let extra = finished.len() - FINISHED_KEPT;
    for id in finished.into_iter().take(extra) {
        state.remove_instance(&id);
        state.save_instance(&id);
    }
}

fn scale_and_roll(state: &mut State, name: &str) {
    let w = &state.workloads[name];
    let (revision, replicas) = (w.revision, w.spec.replicas);
    let (surge, unavailable) = w.spec.update.resolve(replicas);
    let mut new = Vec::new();
    let mut old = Vec::new();
    let mut ended = 0u32;
    let mut ready = 0u32;
    for i in state.instances_of(name) {
        if counts(i) {
            if i.record.ready {
                ready += 1;
            }
            if i.record.revision == revision {
                new.push(i.record.id.clone());
            } else {
                old.push(i.record.id.clone());
            }
        } else if ended_under_policy(i, revision) {
            ended += 1;
        }
    }
    let have_new = new.len() as u32 + ended;
    if have_new > replicas {
        let extra = (have_new - replicas) as usize;
        for id in stop_order(state, new).into_iter().take(extra) {
            request_stop(state, &id, format!("scaled down to {replicas}"));
        }
    } else {
        let ceiling = if old.is_empty() {
            replicas
        } else {
            replicas.saturating_add(surge)
        };
        let total = have_new + old.len() as u32;
        let create = (replicas - have_new).min(ceiling.saturating_sub(total));
        let mut lost = unreplaced_lost(state, name).into_iter();
        for _ in 0..create {
            let new = create_instance(state, name, revision);
            if let Some(lost) = lost.next() {
                replaced(state, &lost, &new);
            }
        }
    }
    if old.is_empty() {
        return;
    }
    // Old instances that serve nothing go at once; ready ones while enough stay ready.
    let (unready_old, ready_old): (Vec<String>, Vec<String>) = old
        .into_iter()
        .partition(|id| !state.instances[id].record.ready);
    for id in unready_old {
        request_stop(state, &id, format!("replaced by revision {revision}"));
    }
    let floor = replicas.saturating_sub(unavailable);
    let removable = ready.saturating_sub(floor) as usize;
    let mut ready_old = ready_old;
    ready_old.sort_by_key(|id| state.instances[id].record.created_at.clone());
    for id in ready_old.into_iter().take(removable) {
        request_stop(state, &id, format!("replaced by revision {revision}"));
    }
}

/// Deleting: every instance stops; once all are finished, the records go.
fn delete(state: &mut State, name: &str) {
    let ids: Vec<String> = state
        .instances_of(name)
        .map(|i| i.record.id.clone())
        .collect();
    let mut busy = false;
    for id in &ids {
        let i = &state.instances[id];
        match i.record.phase {
            Phase::Stopped | Phase::Lost | Phase::Replaced => {}
            Phase::Succeeded | Phase::Failed if i.record.node.is_some() => {
                // Its exited container is still on the node: stop removes it.
                state.set_phase(id, Phase::Stopping, Some("workload deleted".into()));
                busy = true;
            }
            Phase::Succeeded | Phase::Failed => {}
            _ => {
                request_stop(state, id, "workload deleted".into());
                busy = true;
            }
        }
    }
    if busy || ids.iter().any(|id| state.instances[id].live.in_flight) {
        return;
    }
    for id in &ids {
        state.remove_instance(id);
        state.save_instance(id);
    }
    state.workloads.remove(name);
    state.save_workload(name);
    state.event(
        format!("workload/{name}"),
        "Deleted",
        "every instance stopped".into(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::WorkloadRecord;

    fn workload(state: &mut State, replicas: u32, surge: u32, unavailable: u32) {
        let spec = crate::spec::parse(&format!(
            "name: web\nsource: {{rootfs: /srv/rootfs}}\ncommand: [sleep, '100']\n\
             replicas: {replicas}\nupdate: {{max_surge: {surge}, max_unavailable: {unavailable}}}\n"
        ))
        .unwrap();
        state
            .workloads
            .insert("web".into(), WorkloadRecord::new(spec, 1, 1));
    }

    fn phases(state: &State, revision: u64) -> Vec<(Phase, bool)> {
        state
            .instances_of("web")
            .filter(|i| i.record.revision == revision)
            .map(|i| (i.record.phase, i.record.ready))
            .collect()
    }

    fn run_all_ready(state: &mut State) {
        for i in state.instances.values_mut() {
            match i.record.phase {
                Phase::Pending | Phase::Starting => {
                    i.record.phase = Phase::Running;
                    i.record.ready = true;
                }
                Phase::Stopping => i.record.phase = Phase::Stopped,
                _ => {}
            }
        }
    }

    fn ready(state: &State) -> usize {
        state
            .instances
            .values()
            .filter(|i| i.record.ready && counts(i))
            .count()
    }

    #[test]
    fn creates_and_removes_instances_to_match_replicas() {
        let mut state = State::default();
        workload(&mut state, 3, 1, 0);
        reconcile(&mut state);
        assert_eq!(phases(&state, 1), vec![(Phase::Pending, false); 3]);
        run_all_ready(&mut state);
        state.workloads.get_mut("web").unwrap().spec.replicas = 1;
        reconcile(&mut state);
        let stopping = state
            .instances
            .values()
            .filter(|i| i.record.phase == Phase::Stopping)
            .count();
        assert_eq!(stopping, 2);
        // The newest go first.
        assert_eq!(state.instances["web-1"].record.phase, Phase::Running);
    }

    #[test]
    fn a_rolling_update_keeps_replicas_ready_and_never_exceeds_the_surge() {
        let mut state = State::default();
        workload(&mut state, 3, 1, 0);
        reconcile(&mut state);
        run_all_ready(&mut state);
        let w = state.workloads.get_mut("web").unwrap();
        w.revision = 2;
        let mut steps = 0;
        loop {
            reconcile(&mut state);
            let live = state.instances.values().filter(|i| counts(i)).count();
            assert!(live <= 4, "surge exceeded: {live} live");
            assert!(ready(&state) >= 3, "fewer than 3 ready mid-rollout");
            run_all_ready(&mut state);
            steps += 1;
            let old = phases(&state, 1)
                .iter()
                .filter(|(p, _)| !p.is_final())
                .count();
            if old == 0
                && phases(&state, 2)
                    .iter()
                    .filter(|(p, _)| *p == Phase::Running)
                    .count()
                    == 3
            {
                break;
            }
            assert!(steps < 20, "the rollout does not converge");
        }
    }

    #[test]
    fn unready_old_instances_go_first_and_deleting_stops_everything() {
        let mut state = State::default();
        workload(&mut state, 2, 1, 0);
        reconcile(&mut state);
        run_all_ready(&mut state);
        state.instances.get_mut("web-1").unwrap().record.ready = false;
        state.workloads.get_mut("web").unwrap().revision = 2;
        reconcile(&mut state);
        assert_eq!(state.instances["web-1"].record.phase, Phase::Stopping);
        assert_eq!(state.instances["web-2"].record.phase, Phase::Running);
        state.workloads.get_mut("web").unwrap().deleting = true;
        reconcile(&mut state);
        assert!(state
            .instances
            .values()
            .all(|i| i.record.phase == Phase::Stopping || i.record.phase == Phase::Stopped));
        run_all_ready(&mut state);
        reconcile(&mut state);
        assert!(state.workloads.is_empty() && state.instances.is_empty());
    }

    /// Puts every instance on `node` and marks them lost, as the heartbeat does.
    fn lose_all(state: &mut State, node: &str) {
        let ids: Vec<String> = state.instances.keys().cloned().collect();
        for id in ids {
            state.bind(&id, node);
            state.set_phase(&id, Phase::Lost, Some(format!("node {node} lost")));
        }
    }

    fn add_node(state: &mut State, name: &str) {
        let record = crate::state::NodeRecord {
            lost: true,
            ..crate::state::NodeRecord::new(name, "127.0.0.1:1".parse().unwrap())
        };
        let node = crate::state::Node {
            record,
            live: Default::default(),
        };
        state.nodes.insert(name.into(), node);
    }

    /// `replicas` ready instances on node `node` (kept in the node list or not), lost, and
    /// the pass that replaces them.
    fn lost_and_replaced(replicas: u32, node: &str, known: bool) -> State {
        let mut state = State::default();
        workload(&mut state, replicas, 1, 0);
        reconcile(&mut state);
        run_all_ready(&mut state);
        if known {
            add_node(&mut state, node);
        }
        lose_all(&mut state, node);
        reconcile(&mut state);
        state
    }

    #[test]
    fn a_lost_instance_ends_as_replaced_once_its_copy_is_fenced() {
        let mut state = lost_and_replaced(2, "n1", true);
        // Each lost instance names its replacement and stays lost while its copy may run.
        for (lost, new) in [("web-1", "web-3"), ("web-2", "web-4")] {
            let r = &state.instances[lost].record;
            assert_eq!(
                (r.phase, r.replaced_by.as_deref()),
                (Phase::Lost, Some(new))
            );
        }
        // A removal elsewhere, or of another container, changes nothing.
        fenced(&mut state, "n2", "web-1");
        fenced(&mut state, "n1", "web-9");
        assert_eq!(state.instances["web-1"].record.phase, Phase::Lost);
        fenced(&mut state, "n1", "web-1");
        let r = &state.instances["web-1"].record;
        assert_eq!(r.phase, Phase::Replaced);
        assert_eq!(
            r.reason.as_deref(),
            Some("replaced by web-3; its copy on n1 was removed")
        );
        assert!(r.phase.is_final() && r.phase.is_ended());
        // The next pass links nothing twice and creates nothing more.
        reconcile(&mut state);
        assert_eq!(state.instances.len(), 4);
    }

    #[test]
    fn a_lost_instance_on_a_deleted_node_ends_as_replaced_at_once() {
        let state = lost_and_replaced(1, "gone", false);
        let r = &state.instances["web-1"].record;
        assert_eq!(r.phase, Phase::Replaced);
        assert_eq!(
            r.reason.as_deref(),
            Some("replaced by web-2; node gone was deleted")
        );
    }
}
