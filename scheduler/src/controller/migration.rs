//! Moving instances: make-before-break migration, drain, and the rebalancer.
//!
//! A migration creates a replacement (same workload and revision) placed away from the
//! instance's node, or on the named one; the original keeps running and counting toward the
//! replicas until the replacement is *ready*, and only then is it stopped. If the replacement
//! cannot be placed the migration is refused and nothing changes; if it fails later, the
//! original simply stays.
//!
//! The rebalancer compares node load — the largest of the requested and the measured (its
//! instances' cgroups, sampled at each heartbeat) cpu and memory fractions — and moves one instance at a time from the most loaded
//! node to the least loaded one when they differ by more than the threshold. A move is made
//! only if afterwards the source is still at least as loaded as the target (it never
//! overshoots), a moved instance is left alone for the cool-down, and nothing moves while a
//! migration is under way: together this is the hysteresis that keeps it from ping-ponging.

use super::placing::{assign, occupies, place_one, view};
use super::replicas::create_instance;
use super::{Action, Daemon};
use crate::api::{MigrateResult, Phase, RebalanceResult};
use crate::cluster::NodeId;
use crate::placement::Outcome;
use crate::resources::Resources;
use crate::state::{now_rfc3339, State};
use std::collections::HashMap;
use std::time::{Instant, SystemTime};

/// Why a migration was refused.
#[derive(Debug)]
pub enum MigrateError {
    /// No such instance or node.
    NotFound(String),
    /// The instance or target cannot take part now.
    Conflict(String),
}

/// Starts moving instance `id` (to `target`, or where placement prefers).
pub fn migrate(
    daemon: &Daemon,
    state: &mut State,
    id: &str,
    target: Option<&str>,
    actions: &mut Vec<Action>,
) -> Result<MigrateResult, MigrateError> {
    let instance = state
        .instances
        .get(id)
        .ok_or_else(|| MigrateError::NotFound(format!("no instance {id}")))?;
    let r = &instance.record;
    if r.phase != Phase::Running {
        return Err(MigrateError::Conflict(format!(
            "instance {id} is {:?}, not running: only a running instance moves",
            r.phase
        )));
    }
    if let Some(other) = &r.replaced_by {
        return Err(MigrateError::Conflict(format!(
            "instance {id} is already being replaced by {other}"
        )));
    }
    if let Some(target) = target {
        let node = state
            .nodes
            .get(target)
            .ok_or_else(|| MigrateError::NotFound(format!("no node {target}")))?;
        if !node.ready() {
            return Err(MigrateError::Conflict(format!(
                "node {target} is not ready"
            )));
        }
        if r.node.as_deref() == Some(target) {
            return Err(MigrateError::Conflict(format!(
                "instance {id} already runs on {target}"
            )));
        }
    }
    let (workload, revision) = (r.workload.clone(), r.revision);
    let new_id = create_instance(state, &workload, revision);
    {
        let new = &mut state.instances.get_mut(&new_id).expect("created").record;
        new.replaces = Some(id.to_string());
        new.target_node = target.map(str::to_string);
    }
    let mut view = view(state);
    let node = match place_one(daemon, state, &mut view, &new_id) {
        Some(Outcome::Placed { node, .. }) => view.nodes[&node].clone(),
        other => {
            let why = match other {
                Some(Outcome::Unschedulable { why, .. }) => why.to_string(),
                _ => "it would need to preempt other instances".into(),
            };
            state.remove_instance(&new_id);
            state.save_instance(&new_id);
            return Err(MigrateError::Conflict(format!(
                "no node can take a replacement for {id}: {why}"
            )));
        }
    };
    state
        .instances
        .get_mut(id)
        .expect("checked")
        .record
        .replaced_by = Some(new_id.clone());
    state.save_instance(id);
    state.save_instance(&new_id);
    assign(daemon, state, &new_id, &node, actions);
    state.event(
        format!("instance/{id}"),
        "Migrating",
        format!("replacement {new_id} starts on {node}; {id} stops once it is ready"),
    );
    daemon.count(|c| c.migrations += 1);
    Ok(MigrateResult {
        instance: id.to_string(),
        replacement: new_id,
        node,
    })
}

/// Completes migrations whose replacement is ready (the original stops) and abandons those
/// whose replacement ended (the original stays).
pub fn finish(state: &mut State) {
    let pairs: Vec<(String, String)> = state
        .instances
        .values()
        .filter_map(|i| Some((i.record.id.clone(), i.record.replaces.clone()?)))
        .collect();
    for (new, old) in pairs {
        let Some(original) = state.instances.get(&old) else {
            continue;
        };
        if original.record.replaced_by.as_deref() != Some(new.as_str())
            || original.record.phase.is_final()
            || original.record.phase == Phase::Stopping
        {
            continue;
        }
        let replacement = &state.instances[&new].record;
        if replacement.ready {
            let node = replacement.node.clone().unwrap_or_default();
            state
                .instances
                .get_mut(&new)
                .expect("listed")
                .record
                .moved_at = Some(now_rfc3339());
            state.save_instance(&new);
            super::lifecycle::request_stop(state, &old, format!("migrated to {node} as {new}"));
            state.event(
                format!("instance/{old}"),
                "Migrated",
                format!("{new} is ready on {node}"),
            );
        } else if replacement.phase.is_final() || replacement.phase == Phase::Stopping {
            state
                .instances
                .get_mut(&old)
                .expect("listed")
                .record
                .replaced_by = None;
            state.save_instance(&old);
            state.event(
                format!("instance/{old}"),
                "MigrationFailed",
                format!("replacement {new} ended before it was ready; {old} stays"),
            );
        }
    }
}

/// Drains node `name`: cordons it and moves every instance off it (make-before-break where
/// another node can take the instance; otherwise it is stopped and its replacement waits for
/// room).
pub fn drain(
    daemon: &Daemon,
    state: &mut State,
    name: &str,
    actions: &mut Vec<Action>,
) -> Result<(), MigrateError> {
    let node = state
        .nodes
        .get_mut(name)
        .ok_or_else(|| MigrateError::NotFound(format!("no node {name}")))?;
    node.record.cordoned = true;
    state.save_node(name);
    state.event(
        format!("node/{name}"),
        "Drain",
        "cordoned; moving its instances".into(),
    );
    let ids: Vec<String> = state
        .instances
        .values()
        .filter(|i| i.record.node.as_deref() == Some(name) && occupies(i.record.phase))
        .filter(|i| i.record.phase != Phase::Stopping && i.record.replaced_by.is_none())
        .map(|i| i.record.id.clone())
        .collect();
    for id in ids {
        if let Err(MigrateError::Conflict(why) | MigrateError::NotFound(why)) =
            migrate(daemon, state, &id, None, actions)
        {
            super::lifecycle::request_stop(state, &id, format!("node {name} drained ({why})"));
        }
    }
    Ok(())
}

/// Runs the rebalancer when its interval has passed.
pub fn rebalance_due(daemon: &Daemon, state: &mut State, now: Instant, actions: &mut Vec<Action>) {
    let interval = daemon.settings.rebalance_interval;
    if interval.is_zero() {
        return;
    }
    let last = *state.last_rebalance.get_or_insert(now);
    if now.duration_since(last) >= interval {
        state.last_rebalance = Some(now);
        rebalance(daemon, state, actions);
    }
}

/// One rebalancing step: at most one move, from the most to the least loaded node.
pub fn rebalance(daemon: &Daemon, state: &mut State, actions: &mut Vec<Action>) -> RebalanceResult {
    let quiet = |message: &str| RebalanceResult {
        moves: Vec::new(),
        message: message.to_string(),
    };
    // A migration settles once its original has stopped and its replacement has been measured;
    // until then the loads are not known.
    let settling = state.instances.values().any(|i| {
        let Some(original) = &i.record.replaces else {
            return false;
        };
        let original_gone = state
            .instances
            .get(original)
            .is_none_or(|o| o.record.phase.is_final());
        !i.record.phase.is_final() && (!original_gone || !i.live.usage.rated)
    });
    if settling {
        return quiet("a migration is settling; the next pass measures again");
    }
    let v = view(state);
    // Measured usage per node: the sum of its instances' (container cgroups), so that one
    // host's other tenants or the agent itself never make a node look hot.
    let mut used: HashMap<NodeId, Resources> = HashMap::new();
    for (&bound, id) in &v.instances {
        if state.instances[id].record.phase == Phase::Stopping {
            continue;
        }
        let u = state.instances[id].live.usage;
        let node = v.cluster.instance(bound).expect("bound").node;
        *used.entry(node).or_default() += Resources::new(u.cpu_millis, u.memory_bytes, 0);
    }
    let load = |id| {
        let node = v.cluster.node(id);
        let (cpu, memory) = node.allocated.fractions_of(&node.spec.capacity);
        let measured = used.get(&id).copied().unwrap_or_default();
        let (used_cpu, used_memory) = measured.fractions_of(&node.spec.capacity);
        cpu.max(memory).max(used_cpu).max(used_memory)
    };
    let open: Vec<_> = v
        .nodes
        .keys()
        .copied()
        .filter(|&id| !v.cluster.node(id).spec.cordoned)
        .collect();
    let (Some(&hot), Some(&cold)) = (
        open.iter().max_by(|a, b| load(**a).total_cmp(&load(**b))),
        open.iter().min_by(|a, b| load(**a).total_cmp(&load(**b))),
    ) else {
        return quiet("fewer than two schedulable nodes");
    };
    let (hot_load, cold_load) = (load(hot), load(cold));
    let threshold = daemon.settings.rebalance_threshold;
    if hot_load - cold_load <= threshold {
        return quiet(&format!(
            "balanced: node loads differ by {:.2} (threshold {threshold:.2})",
            hot_load - cold_load
        ));
    }
    let cooldown = daemon.settings.rebalance_cooldown;
    let cooled = |moved: &Option<String>| {
        moved
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_none_or(|age| age >= cooldown)
    };
    let (hot_node, cold_node) = (v.cluster.node(hot), v.cluster.node(cold));
    let mut best: Option<(f64, String)> = None;
    for (&bound, id) in &v.instances {
        let placed = v.cluster.instance(bound).expect("bound");
        if placed.node != hot {
            continue;
        }
        let r = &state.instances[id].record;
        if r.phase != Phase::Running || !r.ready || r.replaces.is_some() || !cooled(&r.moved_at) {
            continue;
        }
        let u = state.instances[id].live.usage;
        let measured = Resources::new(u.cpu_millis, u.memory_bytes, 0);
        let share = |capacity| {
            let (c, m) = placed.spec.requests.fractions_of(capacity);
            let (uc, um) = measured.fractions_of(capacity);
            c.max(m).max(uc).max(um)
        };
        let (from, to) = (
            share(&hot_node.spec.capacity),
            share(&cold_node.spec.capacity),
        );
        if from <= 0.0 || hot_load - from < cold_load + to {
            continue;
        }
        if best.as_ref().is_none_or(|(f, _)| from > *f) {
            best = Some((from, id.clone()));
        }
    }
    let Some((_, id)) = best else {
        return quiet("no instance can move without overshooting");
    };
    let target = v.nodes[&cold].clone();
    match migrate(daemon, state, &id, Some(&target), actions) {
        Ok(moved) => RebalanceResult {
            message: format!(
                "moving {} to {} (loads {hot_load:.2} and {cold_load:.2})",
                moved.instance, moved.node
            ),
            moves: vec![moved],
        },
        Err(MigrateError::Conflict(why) | MigrateError::NotFound(why)) => quiet(&why),
    }
}
