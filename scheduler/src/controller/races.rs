//! The races of issue 16, each replayed against the controllers: an observation that arrives
//! in the worst order, or a state another task changed, must never stop or restart a healthy
//! instance nor end the daemon.

use super::heartbeat::{self, Timing};
use super::tests::{daemon_with, Scratch};
use super::{lifecycle, Action, Daemon};
use crate::agents::CallError;
use crate::api::Phase;
use crate::state::{now_rfc3339, WorkloadRecord};
use mini_shim::protocol::{ContainerInfo, ExitInfo, NodeStatus, ProbeResult, Status};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const SPEC: &str = "name: web\nsource: {rootfs: /srv/r}\n";

/// A running instance of `spec` (the workload `web`) on node `n1`; returns its id.
fn running(daemon: &Daemon, spec: &str) -> String {
    let spec = crate::spec::parse(spec).unwrap();
    daemon.with(|s| {
        s.workloads
            .insert("web".into(), WorkloadRecord::new(spec, 1, 1));
        let id = super::replicas::create_instance(s, "web", 1);
        s.bind(&id, "n1");
        lifecycle::started(s, &id, None, Instant::now());
        id
    })
}

fn phase(daemon: &Daemon, id: &str) -> Phase {
    daemon.with(|s| s.instances[id].record.phase)
}

fn status() -> NodeStatus {
    NodeStatus {
        node: "n1".into(),
        sampled_at: now_rfc3339(),
        cpus: 8,
        memory_total_bytes: 1 << 34,
        memory_available_bytes: 1 << 34,
        cpu_busy: 0.0,
        load: [0.0; 3],
        pressure: None,
        containers: 1,
        containers_running: 1,
        services_generation: 0,
    }
}

/// The container of instance `id` as its agent lists it.
fn container(id: &str, status: Status) -> ContainerInfo {
    let exit = (status == Status::Exited).then(|| ExitInfo {
        code: 1,
        signal: None,
        oom_killed: false,
        finished_at: now_rfc3339(),
    });
    let labels: BTreeMap<String, String> =
        [(heartbeat::INSTANCE_LABEL.to_string(), id.to_string())].into();
    serde_json::from_value(serde_json::json!({
        "id": id,
        "status": status,
        "labels": labels,
        "exit": exit,
        "monitor_alive": status == Status::Running,
    }))
    .expect("a container as agents list it")
}

/// Heartbeat answer from `n1` with `containers`, for a list that began at `began`.
fn heartbeat(daemon: &Daemon, began: Instant, arrived: Instant, containers: Vec<ContainerInfo>) {
    let timing = Timing { began, arrived };
    daemon.with(|s| heartbeat::record(daemon, s, "n1", timing, Ok((status(), containers))));
}

#[test]
fn an_exit_listed_before_a_restart_finished_leaves_the_new_process_running() {
    let scratch = Scratch::new();
    let daemon = daemon_with(&scratch, Duration::MAX, Duration::MAX);
    let id = running(&daemon, SPEC);
    daemon.with(|s| lifecycle::exited(&daemon, s, &id, None, "exited"));
    assert_eq!(phase(&daemon, &id), Phase::BackOff);
    // A heartbeat's list begins while the old process is still listed as exited ...
    let began = Instant::now();
    // ... the back-off ends and the restart is asked for and succeeds ...
    let actions = daemon.with(|s| {
        s.instances.get_mut(&id).unwrap().live.not_before = None;
        daemon.tick(s, lifecycle::after(began, Duration::from_millis(1)))
    });
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Run { id: i, .. } if *i == id)),
        "{actions:?}"
    );
    daemon.with(|s| {
        s.instances.get_mut(&id).unwrap().live.in_flight = false;
        lifecycle::started(s, &id, None, Instant::now());
    });
    assert_eq!(phase(&daemon, &id), Phase::Running);
    // ... then the list arrives, saying the (old) process exited.
    heartbeat(
        &daemon,
        began,
        Instant::now(),
        vec![container(&id, Status::Exited)],
    );
    assert_eq!(
        phase(&daemon, &id),
        Phase::Running,
        "the new process was sent to back-off"
    );
    // A list that began after the restart is believed.
    let later = lifecycle::after(began, Duration::from_secs(1));
    heartbeat(&daemon, later, later, vec![container(&id, Status::Exited)]);
    assert_eq!(phase(&daemon, &id), Phase::BackOff);
}

#[test]
fn a_container_whose_state_cannot_be_read_is_not_restarted_until_a_node_timeout() {
    let scratch = Scratch::new();
    let timeout = Duration::from_secs(5);
    let daemon = daemon_with(&scratch, Duration::from_secs(1), timeout);
    let id = running(&daemon, SPEC);
    let t0 = Instant::now();
    heartbeat(&daemon, t0, t0, vec![container(&id, Status::Unknown)]);
    assert_eq!(
        phase(&daemon, &id),
        Phase::Running,
        "restarted on one unknown"
    );
    // It reads again: the count starts over.
    let t1 = t0 + Duration::from_secs(4);
    heartbeat(&daemon, t1, t1, vec![container(&id, Status::Running)]);
    let t2 = t0 + Duration::from_secs(6);
    heartbeat(&daemon, t2, t2, vec![container(&id, Status::Unknown)]);
    assert_eq!(phase(&daemon, &id), Phase::Running);
    let t3 = t2 + Duration::from_secs(4);
    heartbeat(&daemon, t3, t3, vec![container(&id, Status::Unknown)]);
    assert_eq!(phase(&daemon, &id), Phase::Running);
    // Unknown for a whole node timeout: its monitor is gone for good.
    let t4 = t2 + timeout;
    heartbeat(&daemon, t4, t4, vec![container(&id, Status::Unknown)]);
    assert_eq!(phase(&daemon, &id), Phase::BackOff);
}

#[test]
fn a_probe_answer_for_a_pruned_revision_is_ignored() {
    let scratch = Scratch::new();
    let daemon = daemon_with(&scratch, Duration::MAX, Duration::MAX);
    let probed = format!(
        "{SPEC}liveness: {{tcp: {{port: 80}}, failure_threshold: 1}}\nreadiness: {{tcp: {{port: 80}}}}\n"
    );
    let id = running(&daemon, &probed);
    // While its probes are in flight, its revision is pruned and the current spec has none.
    daemon.with(|s| {
        let w = s.workloads.get_mut("web").unwrap();
        w.spec = crate::spec::parse(SPEC).unwrap();
        w.revision = 12;
        w.revisions.retain(|r| r.revision != 1);
    });
    for kind in [
        super::actions::ProbeKind::Liveness,
        super::actions::ProbeKind::Readiness,
    ] {
        let failed: Result<ProbeResult, CallError> = Ok(ProbeResult {
            healthy: false,
            detail: "refused".into(),
        });
        let actions = daemon.with(|s| lifecycle::probe_outcome(s, &id, kind, failed));
        assert!(actions.is_empty(), "{actions:?}");
    }
    assert_eq!(phase(&daemon, &id), Phase::Running);
}

#[test]
fn a_heartbeat_that_arrived_counts_before_it_is_recorded() {
    let scratch = Scratch::new();
    let timeout = Duration::from_secs(5);
    let daemon = daemon_with(&scratch, Duration::from_secs(1), timeout);
    let t0 = Instant::now();
    daemon.with(|s| s.nodes.get_mut("n1").unwrap().live.last_heartbeat = Some(t0));
    // An answer arrives at t0 + 4 s and waits (for the state, or its own recording) ...
    let arrived = t0 + Duration::from_secs(4);
    daemon.hear("n1", arrived);
    // ... while a pass at t0 + 6 s looks for silent nodes: n1 was heard 2 s ago.
    let now = t0 + Duration::from_secs(6);
    daemon.with(|s| heartbeat::detect_lost(&daemon, s, now));
    assert!(
        !daemon.with(|s| s.nodes["n1"].record.lost),
        "lost while answering"
    );
    // Silent for the timeout after that answer: lost.
    let silent = arrived + timeout + Duration::from_millis(1);
    daemon.with(|s| heartbeat::detect_lost(&daemon, s, silent));
    assert!(daemon.with(|s| s.nodes["n1"].record.lost));
}

#[test]
fn a_lost_node_is_polled_with_back_off() {
    let scratch = Scratch::new();
    let interval = Duration::from_secs(1);
    let daemon = daemon_with(&scratch, interval, Duration::from_secs(5));
    daemon.with(|s| {
        let node = s.nodes.get_mut("n1").unwrap();
        node.record.lost = true;
    });
    let t0 = Instant::now();
    let mut polls = 0;
    for second in 0..120 {
        let now = t0 + Duration::from_secs(second);
        let actions = daemon.with(|s| {
            let mut actions = Vec::new();
            heartbeat::due(&daemon, s, now, &mut actions);
            actions
        });
        for action in actions {
            if matches!(action, Action::Poll { .. }) {
                polls += 1;
                let unreachable = Err(CallError::Unreachable(
                    "127.0.0.1:1".parse().unwrap(),
                    "refused".into(),
                ));
                let timing = Timing {
                    began: now,
                    arrived: now,
                };
                daemon.with(|s| heartbeat::record(&daemon, s, "n1", timing, unreachable));
            }
        }
    }
    // 1, 2, 4, 8, 16, 30, 30, 30 ... s apart: not one a second.
    assert!((5..=10).contains(&polls), "{polls} polls in two minutes");
    // It answers: polled every interval again.
    let now = t0 + Duration::from_secs(200);
    heartbeat(&daemon, now, now, Vec::new());
    assert!(!daemon.with(|s| s.nodes["n1"].record.lost));
    let node_interval = daemon.with(|s| heartbeat::poll_interval(interval, &s.nodes["n1"]));
    assert_eq!(node_interval, interval);
}
