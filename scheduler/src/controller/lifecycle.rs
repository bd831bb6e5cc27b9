//! An instance's life on its node: exits and the restart policy with exponential back-off,
//! liveness probes (failing ones restart the instance), readiness probes (gating rollouts and
//! migrations), and stops.

use super::actions::ProbeKind;
use super::{Action, Daemon};
use crate::agents::CallError;
use crate::api::{ExitView, Phase};
use crate::spec::{RestartPolicy, WorkloadSpec};
use crate::state::{rfc3339, State};
use mini_shim::protocol::{ExitInfo, ProbeResult, Source};
use std::time::{Duration, Instant, SystemTime};

/// `now + wait`, saturating: a wait beyond what the clock can hold ends a century from now
/// (every wait a valid spec gives is at most a day; a stored spec never aborts the daemon).
pub fn after(now: Instant, wait: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
    now.checked_add(wait)
        .or_else(|| now.checked_add(CENTURY))
        .unwrap_or(now)
}

/// The wall-clock time `wait` from now, for people (saturating as [`after`]).
fn wall_after(wait: Duration) -> SystemTime {
    let now = SystemTime::now();
    now.checked_add(wait.min(Duration::from_secs(100 * 365 * 24 * 60 * 60)))
        .unwrap_or(now)
}

/// The wait before restart number `step` (from 0): `initial` doubled per step, at most `max`.
pub fn backoff(initial: Duration, max: Duration, step: u32) -> Duration {
    initial.saturating_mul(1u32 << step.min(20)).min(max)
}

/// An instance's process ended (or was found gone): restart it after the back-off, or let it
/// end, as its restart policy says.
pub fn exited(daemon: &Daemon, state: &mut State, id: &str, exit: Option<&ExitInfo>, what: &str) {
    let Some(spec) = state.spec_of(id).cloned() else {
        return;
    };
    let Some(instance) = state.instances.get_mut(id) else {
        return;
    };
    instance.record.exit = exit.map(|e| ExitView {
        code: e.code,
        signal: e.signal.clone(),
        oom_killed: e.oom_killed,
        finished_at: e.finished_at.clone(),
    });
    let detail = match exit {
        Some(e) if e.oom_killed => format!("{what}: OOM-killed (code {})", e.code),
        Some(e) => match &e.signal {
            Some(sig) => format!("{what}: killed by {sig}"),
            None => format!("{what} with code {}", e.code),
        },
        None => what.to_string(),
    };
    end_or_restart(
        daemon,
        state,
        id,
        &spec,
        exit.map(|e| e.code) == Some(0),
        detail,
    );
}

/// The agent could not start the instance: a failure under the restart policy.
pub fn start_failed(daemon: &Daemon, state: &mut State, id: &str, why: &str) {
    let Some(spec) = state.spec_of(id).cloned() else {
        return;
    };
    end_or_restart(
        daemon,
        state,
        id,
        &spec,
        false,
        format!("failed to start: {why}"),
    );
}

fn end_or_restart(
    daemon: &Daemon,
    state: &mut State,
    id: &str,
    spec: &WorkloadSpec,
    success: bool,
    detail: String,
) {
    let restart = match spec.restart.policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => !success,
        RestartPolicy::Never => false,
    };
    if !restart {
        let phase = if success {
            Phase::Succeeded
        } else {
            Phase::Failed
        };
        state.set_phase(id, phase, Some(detail));
        return;
    }
    let now = daemon.now();
    let Some(instance) = state.instances.get_mut(id) else {
        return;
    };
    let backoff_spec = spec.restart.backoff;
    // A process that ran for twice the longest back-off starts the back-off over.
    if instance
        .live
        .started
        .is_some_and(|s| now.saturating_duration_since(s) > backoff_spec.max.saturating_mul(2))
    {
        instance.live.backoff_step = 0;
    }
    let delay = backoff(
        backoff_spec.initial,
        backoff_spec.max,
        instance.live.backoff_step,
    );
    instance.live.backoff_step = instance.live.backoff_step.saturating_add(1);
    instance.live.not_before = Some(after(now, delay));
    instance.live.started = None;
    instance.live.unknown_since = None;
    instance.record.next_restart_at = Some(rfc3339(wall_after(delay)));
    state.set_phase(
        id,
        Phase::BackOff,
        Some(format!("{detail}; restarting in {delay:?}")),
    );
    daemon.count(|c| c.restarts += 1);
}

/// A starting instance's process runs (since `started_at`, RFC 3339, if the agent said; seen
/// at `now`): `Running`, and ready at once when its workload has no readiness probe.
pub fn started(state: &mut State, id: &str, started_at: Option<String>, now: Instant) {
    let Some(instance) = state.instances.get_mut(id) else {
        return;
    };
    instance.live.started = Some(now);
    instance.record.start_failure = None;
    instance.record.started_at = started_at.or_else(|| Some(rfc3339(SystemTime::now())));
    let node = instance.record.node.clone().unwrap_or_default();
    state.set_phase(id, Phase::Running, Some(format!("running on {node}")));
    mark_ready_without_probe(state, id);
}

/// Marks a running instance ready when its workload has no readiness probe.
fn mark_ready_without_probe(state: &mut State, id: &str) {
    let has_probe = state.spec_of(id).is_some_and(|s| s.readiness.is_some());
    if has_probe {
        return;
    }
    if let Some(instance) = state.instances.get_mut(id) {
        if instance.record.phase == Phase::Running && !instance.record.ready {
            instance.record.ready = true;
            state.save_instance(id);
        }
    }
}

fn node_addr(state: &State, node: Option<&str>) -> Option<std::net::SocketAddr> {
    let node = state.nodes.get(node?)?;
    (!node.record.lost).then_some(node.record.address)
}

fn due(not_before: Option<Instant>, now: Instant) -> bool {
    not_before.is_none_or(|t| t <= now)
}

/// Restarts instances whose back-off is over, and repeats starts that did not reach their node.
pub fn restarts_due(state: &mut State, now: Instant, actions: &mut Vec<Action>) {
    let ids: Vec<String> = state
        .instances
        .values()
        .filter(|i| matches!(i.record.phase, Phase::BackOff | Phase::Starting))
        .filter(|i| !i.live.in_flight && due(i.live.not_before, now))
        .map(|i| i.record.id.clone())
        .collect();
    for id in ids {
        // Out of every service's endpoints on every node first, then `stop_drain`.
        if super::endpoints::holds(state, &id, now) {
            continue;
        }
        if awaits_image_digest(state, &id) {
            continue;
        }
        let Some(request) = run_request(state, &id) else {
            continue;
        };
        let Some(addr) = node_addr(state, state.instances[&id].record.node.as_deref()) else {
            continue;
        };
        let restart = state.instances[&id].record.phase == Phase::BackOff;
        let instance = state.instances.get_mut(&id).expect("listed");
        instance.live.in_flight = true;
        instance.live.not_before = Some(now + Duration::from_secs(2));
        instance.live.start_issued = Some(now);
        if restart {
            instance.record.restarts = instance.record.restarts.saturating_add(1);
            instance.record.next_restart_at = None;
            instance.live.liveness_failures = 0;
            instance.live.readiness_successes = 0;
            instance.live.readiness_failures = 0;
            state.set_phase(&id, Phase::Starting, Some("restarting".into()));
        }
        actions.push(Action::Run {
            id,
            addr,
            request: Box::new(request),
            replace: restart,
        });
    }
}

/// The run request for instance `id`: its revision's spec, labelled with the instance.
pub fn run_request(state: &State, id: &str) -> Option<mini_shim::protocol::RunRequest> {
    let record = &state.instances.get(id)?.record;
    let spec = state.spec_of(id)?;
    let labels = [
        (super::heartbeat::INSTANCE_LABEL, record.id.clone()),
        (super::heartbeat::WORKLOAD_LABEL, record.workload.clone()),
        (
            super::heartbeat::REVISION_LABEL,
            record.revision.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut request = spec.run_request(id, labels);
    if let (Source::Registry(image), Some(digest)) =
        (&mut request.source, state.image_digest_of(id))
    {
        image.reference = pinned(&image.reference, digest);
    }
    Some(request)
}

/// Whether instance `id` must wait to start: its revision names a registry image by tag, no
/// digest is recorded for the revision yet, and another instance of it is being started. The
/// first start resolves the tag (the agent reports the digest it pulled); the others then run
/// that digest, so every instance of a revision runs the same bytes even if the tag moves
/// meanwhile.
pub fn awaits_image_digest(state: &State, id: &str) -> bool {
    let Some(instance) = state.instances.get(id) else {
        return false;
    };
    let by_tag = matches!(&state.spec_of(id).map(|s| &s.source),
        Some(Source::Registry(image)) if !image.reference.contains('@'));
    by_tag
        && state.image_digest_of(id).is_none()
        && state.instances_of(&instance.record.workload).any(|other| {
            other.record.id != id
                && other.record.revision == instance.record.revision
                && other.record.phase == Phase::Starting
                && other.live.in_flight
        })
}

/// `reference` pinned to `digest` (`name:tag@digest`), unless it names a digest already.
fn pinned(reference: &str, digest: &str) -> String {
    if reference.contains('@') {
        reference.to_string()
    } else {
        format!("{reference}@{digest}")
    }
}

/// Starts the probes that are due on running instances.
pub fn probes_due(state: &mut State, now: Instant, actions: &mut Vec<Action>) {
    let mut due_probes = Vec::new();
    for instance in state.instances.values() {
        let live = &instance.live;
        if instance.record.phase != Phase::Running || live.in_flight || live.probing {
            continue;
        }
        let (Some(spec), Some(started)) = (state.spec_of(&instance.record.id), live.started) else {
            continue;
        };
        let candidates = [
            (ProbeKind::Liveness, &spec.liveness, live.last_liveness),
            (ProbeKind::Readiness, &spec.readiness, live.last_readiness),
        ];
        for (kind, probe, last) in candidates {
            let Some(probe) = probe else { continue };
            if now.duration_since(started) < probe.initial_delay {
                continue;
            }
            if last.is_some_and(|t| now.duration_since(t) < probe.period) {
                continue;
            }
            due_probes.push((
                instance.record.id.clone(),
                kind,
                probe.to_protocol(),
                probe.timeout,
            ));
            break;
        }
    }
    for (id, kind, probe, timeout) in due_probes {
        let Some(addr) = node_addr(state, state.instances[&id].record.node.as_deref()) else {
            continue;
        };
        let live = &mut state.instances.get_mut(&id).expect("listed").live;
        live.probing = true;
        match kind {
            ProbeKind::Liveness => live.last_liveness = Some(now),
            ProbeKind::Readiness => live.last_readiness = Some(now),
        }
        actions.push(Action::Probe {
            id,
            addr,
            kind,
            probe,
            timeout,
        });
    }
}

/// Records a probe's result; a liveness probe failing its threshold stops the process, whose
/// exit then goes through the restart policy.
pub fn probe_outcome(
    state: &mut State,
    id: &str,
    kind: ProbeKind,
    result: Result<ProbeResult, CallError>,
) -> Vec<Action> {
    let Some(spec) = state.spec_of(id).cloned() else {
        return Vec::new();
    };
    let Some(instance) = state.instances.get_mut(id) else {
        return Vec::new();
    };
    instance.live.probing = false;
    if instance.record.phase != Phase::Running || instance.live.in_flight {
        return Vec::new();
    }
    let (healthy, detail) = match result {
        Ok(r) => (r.healthy, r.detail),
        // An unreachable agent says nothing about the instance; heartbeats judge the node.
        Err(CallError::Unreachable(..)) => return Vec::new(),
        Err(e) => (false, e.to_string()),
    };
    let live = &mut instance.live;
    match kind {
        ProbeKind::Readiness => {
            // The revision probed may be pruned meanwhile and the current spec have no
            // such probe: the result then says nothing.
            let Some(probe) = spec.readiness.as_ref() else {
                return Vec::new();
            };
            if healthy {
                live.readiness_failures = 0;
                live.readiness_successes = live.readiness_successes.saturating_add(1);
            } else {
                live.readiness_successes = 0;
                live.readiness_failures = live.readiness_failures.saturating_add(1);
            }
            let was = instance.record.ready;
            let now_ready = if live.readiness_successes >= probe.success_threshold {
                true
            } else if live.readiness_failures >= probe.failure_threshold {
                false
            } else {
                was
            };
            if now_ready != was {
                instance.record.ready = now_ready;
                state.save_instance(id);
                let (reason, message) = if now_ready {
                    ("Ready", "readiness probe passed".to_string())
                } else {
                    ("NotReady", format!("readiness probe failed: {detail}"))
                };
                state.event(format!("instance/{id}"), reason, message);
            }
            Vec::new()
        }
        ProbeKind::Liveness => {
            let Some(probe) = spec.liveness.as_ref() else {
                return Vec::new();
            };
            if healthy {
                live.liveness_failures = 0;
                return Vec::new();
            }
            live.liveness_failures = live.liveness_failures.saturating_add(1);
            if live.liveness_failures < probe.failure_threshold {
                return Vec::new();
            }
            live.liveness_failures = 0;
            let failures = probe.failure_threshold;
            let Some(addr) = node_addr(state, state.instances[id].record.node.as_deref()) else {
                return Vec::new();
            };
            state
                .instances
                .get_mut(id)
                .expect("looked up")
                .live
                .in_flight = true;
            state.event(
                format!("instance/{id}"),
                "Unhealthy",
                format!("liveness probe failed {failures} times ({detail}): restarting"),
            );
            vec![Action::Kill {
                id: id.to_string(),
                addr,
                timeout: spec.stop_timeout,
            }]
        }
    }
}

/// Stops instances the controllers marked `Stopping`.
pub fn stops_due(state: &mut State, now: Instant, actions: &mut Vec<Action>) {
    let ids: Vec<String> = state
        .instances
        .values()
        .filter(|i| i.record.phase == Phase::Stopping)
        .filter(|i| !i.live.in_flight && due(i.live.not_before, now))
        .map(|i| i.record.id.clone())
        .collect();
    for id in ids {
        let node = state.instances[&id].record.node.clone();
        let Some(node) = node else {
            state.set_phase(&id, Phase::Stopped, None);
            continue;
        };
        let Some(addr) = node_addr(state, Some(&node)) else {
            continue;
        };
        let timeout = state
            .spec_of(&id)
            .map_or(Duration::from_secs(10), |s| s.stop_timeout);
        state.instances.get_mut(&id).expect("listed").live.in_flight = true;
        actions.push(Action::Stop { id, addr, timeout });
    }
}

/// Asks instance `id` to stop, for `reason`; a pending one stops at once.
pub fn request_stop(state: &mut State, id: &str, reason: String) {
    let Some(instance) = state.instances.get(id) else {
        return;
    };
    if instance.record.phase.is_final() || instance.record.phase == Phase::Stopping {
        return;
    }
    state.set_phase(id, Phase::Stopping, Some(reason));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::WorkloadRecord;

    fn state_with(reference: &str, instances: usize) -> (State, Vec<String>) {
        let spec = crate::spec::parse(&format!(
            "name: web\nsource: {{image: \"{reference}\"}}\nreplicas: {instances}\n"
        ))
        .unwrap();
        let mut state = State::default();
        state
            .workloads
            .insert("web".into(), WorkloadRecord::new(spec, 1, 1));
        let ids = (0..instances)
            .map(|_| super::super::replicas::create_instance(&mut state, "web", 1))
            .collect();
        (state, ids)
    }

    fn reference_of(state: &State, id: &str) -> String {
        match run_request(state, id).unwrap().source {
            Source::Registry(image) => image.reference,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_revisions_recorded_digest_pins_every_start_of_it() {
        let (mut state, ids) = state_with("reg:5000/test/busybox:1", 2);
        assert_eq!(reference_of(&state, &ids[0]), "reg:5000/test/busybox:1");
        let digest = format!("sha256:{}", "b".repeat(64));
        state.record_image_digest(&ids[0], &digest);
        assert_eq!(
            reference_of(&state, &ids[1]),
            format!("reg:5000/test/busybox:1@{digest}")
        );
        // The first digest recorded stays: a later start never re-resolves the tag.
        state.record_image_digest(&ids[1], &format!("sha256:{}", "c".repeat(64)));
        assert_eq!(state.image_digest_of(&ids[1]), Some(digest.as_str()));
        // The record survives the store's JSON.
        let w = &state.workloads["web"];
        let back: WorkloadRecord = serde_json::from_slice(&serde_json::to_vec(w).unwrap()).unwrap();
        assert_eq!(
            back.revisions[0].image_digest.as_deref(),
            Some(digest.as_str())
        );
    }

    #[test]
    fn instances_of_an_unresolved_tag_start_one_at_a_time() {
        let (mut state, ids) = state_with("reg:5000/test/busybox:1", 2);
        assert!(!awaits_image_digest(&state, &ids[1]));
        let first = state.instances.get_mut(&ids[0]).unwrap();
        first.record.phase = Phase::Starting;
        first.live.in_flight = true;
        assert!(awaits_image_digest(&state, &ids[1]));
        state.record_image_digest(&ids[0], &format!("sha256:{}", "d".repeat(64)));
        assert!(!awaits_image_digest(&state, &ids[1]));
        // A reference with a digest needs no resolving.
        let pinned = format!("reg:5000/test/busybox@sha256:{}", "e".repeat(64));
        let (mut state, ids) = state_with(&pinned, 2);
        let first = state.instances.get_mut(&ids[0]).unwrap();
        first.record.phase = Phase::Starting;
        first.live.in_flight = true;
        assert!(!awaits_image_digest(&state, &ids[1]));
        assert_eq!(reference_of(&state, &ids[1]), pinned);
    }
}
