//! mini-sched across real hosts: a scheduler daemon and three or four agents, each in its own
//! network namespace joined to a bridge by veth (tests/src/cluster.rs), running real busybox
//! containers. Deploy with replicas and spread, scale, rolling update and rollback, liveness
//! restarts, host loss by a cut link and by a killed agent (with fencing of the stale copies
//! when the host returns), make-before-break migration, `kill -9` of the scheduler in the
//! middle of a rollout, drain and an unplaceable instance's reason, invalid specs, and a
//! workload's environment kept from other local users on the scheduler's and agents' disks.

use mini_sched::api::{Event, InstanceView, Phase};
use mini_tests::cluster::{Cluster, Options};
use mini_tests::{assert_private, fixture_rootfs, readable_by_nobody, unique, wait_until};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How long a cluster may take to converge after a change (debug builds, a busy 2-core VM).
const SETTLE: Duration = Duration::from_secs(45);

/// A workload spec: `name`, `replicas` instances of `script` (run by the fixture's sh), the
/// small requests every test uses, and `extra` YAML lines appended as they are.
fn spec(name: &str, replicas: u32, script: &str, extra: &str) -> String {
    format!(
        "name: {name}\n\
         source: {{rootfs: {rootfs}}}\n\
         command: [sh, -c, {script:?}]\n\
         replicas: {replicas}\n\
         resources:\n  requests: {{cpu: 50m, memory: 8Mi, pids: 16}}\n\
         stop_timeout: 2s\n\
         {extra}",
        rootfs = fixture_rootfs().display()
    )
}

/// A process that keeps running.
const SLEEPER: &str = "echo started; exec sleep 1000";

/// busybox httpd serving `$GREETING` on 8080, with an HTTP readiness probe.
const WEB: &str = "echo \"$GREETING\" > /tmp/index.html && echo \"greeting $GREETING\" && exec httpd -f -p 8080 -h /tmp";
const WEB_PROBE: &str =
    "readiness:\n  http: {port: 8080, path: /}\n  period: 500ms\n  timeout: 1s\n";

/// The instances of `workload` that are not finished.
fn live(c: &Cluster, workload: &str) -> Vec<InstanceView> {
    c.instances()
        .into_iter()
        .filter(|i| i.workload == workload && !i.phase.is_final())
        .collect()
}

/// The instances of `workload` running and ready.
fn ready(c: &Cluster, workload: &str) -> Vec<InstanceView> {
    live(c, workload)
        .into_iter()
        .filter(|i| i.phase == Phase::Running && i.ready)
        .collect()
}

/// Waits until exactly `n` instances of `workload` are live, all of them running and ready.
fn wait_ready(c: &Cluster, workload: &str, n: usize) -> Vec<InstanceView> {
    let mut last = Vec::new();
    let done = wait_until(SETTLE, || {
        last = live(c, workload);
        last.len() == n && last.iter().all(|i| i.phase == Phase::Running && i.ready)
    });
    assert!(
        done,
        "{workload}: wanted {n} ready instances, have {last:#?}\n{}",
        c.logs()
    );
    last
}

/// Instance ids per node among `instances`.
fn per_node(instances: &[InstanceView]) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in instances {
        m.entry(i.node.clone().expect("placed"))
            .or_default()
            .push(i.id.clone());
    }
    m
}

/// Every container id on every agent that answers (skipping `except`), with its node index.
fn containers_everywhere(c: &Cluster, except: Option<usize>) -> Vec<(usize, String)> {
    (0..c.len())
        .filter(|i| Some(*i) != except)
        .flat_map(|i| c.agent_container_ids(i).into_iter().map(move |id| (i, id)))
        .collect()
}

/// The ids of `workload`'s containers running on the agents (those that answer).
fn running_containers(c: &Cluster, workload: &str, except: Option<usize>) -> Vec<(usize, String)> {
    (0..c.len())
        .filter(|i| Some(*i) != except)
        .flat_map(|i| {
            c.agent_containers(i)
                .containers
                .into_iter()
                .filter(|k| {
                    k.status == mini_shim::protocol::Status::Running
                        && k.labels.get("mini-sched/workload").map(String::as_str) == Some(workload)
                })
                .map(move |k| (i, k.id))
        })
        .collect()
}

/// `events -w WORKLOAD -o json`.
fn events(c: &Cluster, workload: &str) -> Vec<Event> {
    let text = c.cli_ok(&["events", "-w", workload, "-o", "json"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("events ({e}): {text}"))
}

/// Asserts no instance id runs as two containers at once.
fn assert_no_duplicates(c: &Cluster, workload: &str, except: Option<usize>) {
    let running = running_containers(c, workload, except);
    let ids: BTreeSet<&String> = running.iter().map(|(_, id)| id).collect();
    assert_eq!(
        ids.len(),
        running.len(),
        "an instance runs twice: {running:?}"
    );
}

#[test]
fn deploy_with_spread_then_scale_down_and_up() {
    let c = Cluster::start(3, Options::default());
    let w = unique("web");
    let out = c.apply_ok(&spec(
        &w,
        6,
        SLEEPER,
        "spread: {topology: zone, max_skew: 1}\n",
    ));
    assert!(out.contains(&w), "apply names the workload: {out}");
    let all = wait_ready(&c, &w, 6);
    let nodes = per_node(&all);
    assert!(nodes.len() >= 2, "6 replicas on one node: {nodes:?}");
    // n0 and n2 are zone z0, n1 is zone z1: spread with max skew 1 puts three in each zone.
    let zone = |n: &str| if n == "n1" { "z1" } else { "z0" };
    let mut zones: BTreeMap<&str, usize> = BTreeMap::new();
    for i in &all {
        *zones.entry(zone(i.node.as_deref().unwrap())).or_default() += 1;
    }
    assert_eq!(zones.get("z0"), Some(&3), "per zone: {zones:?} ({nodes:?})");
    assert_eq!(zones.get("z1"), Some(&3), "per zone: {zones:?} ({nodes:?})");
    // Every instance is a container on the node the scheduler says.
    for i in &all {
        let node = c.index_of(i.node.as_deref().unwrap());
        assert!(
            c.agent_container_ids(node).contains(&i.id),
            "{} is not on {node}",
            i.id
        );
    }
    let table = c.cli_ok(&["get", "workloads"]);
    let row = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(w.as_str()))
        .unwrap_or_else(|| panic!("no row for {w}: {table}"));
    assert!(row.contains("6/6"), "`get workloads` shows 6/6: {row}");

    c.cli_ok(&["scale", &w, "2"]);
    let kept = wait_ready(&c, &w, 2);
    let kept_ids: BTreeSet<String> = kept.iter().map(|i| i.id.clone()).collect();
    let stopped: Vec<InstanceView> = c
        .instances()
        .into_iter()
        .filter(|i| i.workload == w && i.phase == Phase::Stopped)
        .collect();
    assert_eq!(stopped.len(), 4, "4 stopped: {stopped:#?}");
    // The stopped ones' containers are gone from the agents.
    let mut on_agents = Vec::new();
    let gone = wait_until(SETTLE, || {
        on_agents = containers_everywhere(&c, None);
        on_agents
            .iter()
            .map(|(_, id)| id.clone())
            .collect::<BTreeSet<_>>()
            == kept_ids
    });
    assert!(gone, "agents hold {on_agents:?}, want only {kept_ids:?}");

    c.cli_ok(&["scale", &w, "4"]);
    let four = wait_ready(&c, &w, 4);
    assert!(
        kept_ids.iter().all(|k| four.iter().any(|i| &i.id == k)),
        "scaling up keeps the running ones"
    );
    // New instances get new ids: no id of a stopped one comes back.
    assert!(four.iter().all(|i| !stopped.iter().any(|s| s.id == i.id)));

    let traces = c.traces();
    drop(c);
    traces.assert_gone();
}

/// Samples `get instances` until `workload`'s `replicas` instances all run `revision` and are
/// ready, asserting on every sample that at least `replicas` are ready (max_unavailable 0)
/// and at most `replicas` + 1 are not being stopped (max_surge 1; instances being stopped do
/// not count against the surge, as in Kubernetes).
fn follow_rollout(c: &Cluster, workload: &str, revision: u64, replicas: usize) {
    let (mut samples, mut least_ready, mut most_up) = (0, usize::MAX, 0);
    let mut all = Vec::new();
    let done = wait_until(SETTLE, || {
        all = live(c, workload);
        samples += 1;
        let ready = all
            .iter()
            .filter(|i| i.phase == Phase::Running && i.ready)
            .count();
        least_ready = least_ready.min(ready);
        most_up = most_up.max(all.iter().filter(|i| i.phase != Phase::Stopping).count());
        all.len() == replicas && all.iter().all(|i| i.revision == revision && i.ready)
    });
    assert!(
        done,
        "the rollout to revision {revision} did not complete: {all:#?}\n{}",
        c.logs()
    );
    println!(
        "rollout to revision {revision}: {samples} samples, at least {least_ready} ready, at \
         most {most_up} not stopping"
    );
    assert!(
        least_ready >= replicas,
        "only {least_ready} ready during the rollout to revision {revision}"
    );
    assert!(
        most_up <= replicas + 1,
        "{most_up} instances up at once with max_surge 1"
    );
}

#[test]
fn rolling_update_keeps_replicas_ready_and_undo_restores_the_template() {
    let c = Cluster::start(3, Options::default());
    let w = unique("web");
    let update = "update: {max_surge: 1, max_unavailable: 0}\n";
    let v1 = spec(
        &w,
        3,
        WEB,
        &format!("env: {{GREETING: one}}\n{WEB_PROBE}{update}"),
    );
    c.apply_ok(&v1);
    let first = wait_ready(&c, &w, 3);
    assert!(first.iter().all(|i| i.revision == 1));

    let v2 = spec(
        &w,
        3,
        WEB,
        &format!("env: {{GREETING: two}}\n{WEB_PROBE}{update}"),
    );
    let out = c.apply_ok(&v2);
    assert!(out.contains("updated"), "{out}");
    follow_rollout(&c, &w, 2, 3);
    let status = c.cli_ok(&["rollout", "status", &w]);
    assert!(status.contains("successfully rolled out"), "{status}");
    for i in ready(&c, &w) {
        let logs = c.cli_ok(&["logs", &i.id]);
        assert!(logs.contains("greeting two"), "{}: {logs}", i.id);
    }

    c.cli_ok(&["rollout", "undo", &w]);
    follow_rollout(&c, &w, 3, 3);
    // Revision 3 runs revision 1's template.
    for i in ready(&c, &w) {
        let logs = c.cli_ok(&["logs", &i.id]);
        assert!(logs.contains("greeting one"), "{}: {logs}", i.id);
    }
    let wl = c
        .workloads()
        .into_iter()
        .find(|x| x.name == w)
        .expect("the workload");
    assert_eq!(wl.revision, 3);
}

#[test]
fn a_failing_liveness_probe_restarts_the_instance_with_back_off() {
    let c = Cluster::start(3, Options::default());
    let w = unique("sick");
    let script = "touch /tmp/healthy; echo up; sleep 3; rm /tmp/healthy; exec sleep 1000";
    let extra = "liveness:\n  exec: {command: [test, -f, /tmp/healthy]}\n  period: 500ms\n  \
                 failure_threshold: 2\n  initial_delay: 1s\n\
                 restart:\n  policy: always\n  backoff: {initial: 1s, max: 10s}\n";
    c.apply_ok(&spec(&w, 1, script, extra));
    let first = wait_ready(&c, &w, 1).remove(0);
    let mut now = first.clone();
    let restarted = wait_until(SETTLE, || {
        now = live(&c, &w).remove(0);
        now.restarts >= 1 && now.phase == Phase::Running
    });
    assert!(
        restarted,
        "no restart: {}\n{}",
        String::from_utf8_lossy(&c.cli(&["describe", "instance", &first.id]).stdout),
        c.logs()
    );
    assert_eq!(now.id, first.id, "restarted in place, same id");
    assert_eq!(
        c.instances().iter().filter(|i| i.workload == w).count(),
        1,
        "no replacement instance"
    );
    let reasons: Vec<String> = events(&c, &w)
        .into_iter()
        .filter(|e| e.object == format!("instance/{}", first.id))
        .map(|e| e.reason)
        .collect();
    assert!(
        reasons.iter().any(|r| r == "Unhealthy"),
        "events: {reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r == "BackOff"),
        "events: {reasons:?}"
    );
    let describe = c.cli_ok(&["describe", "instance", &first.id]);
    assert!(
        describe.contains("BackOff") && describe.contains("Unhealthy"),
        "{describe}"
    );
}

/// Deploys 6 replicas over 4 nodes, takes the host of some of them away with `take`, and
/// checks they are replaced on the others in time; `give_back` returns the host, whose stale
/// copies must then be stopped and removed. `stale_copies` lists the containers still on the
/// host while it is away. Returns the time to replacement.
fn host_loss(
    take: impl Fn(&mut Cluster, usize),
    stale_copies: impl Fn(&Cluster, usize) -> Vec<String>,
    give_back: impl Fn(&mut Cluster, usize),
) -> Duration {
    let options = Options::default();
    let timeout = options.node_timeout;
    let mut c = Cluster::start(4, options);
    let w = unique("web");
    c.apply_ok(&spec(
        &w,
        6,
        SLEEPER,
        "spread: {topology: node, max_skew: 1}\n",
    ));
    let before = wait_ready(&c, &w, 6);
    let victim_name = before[0].node.clone().expect("placed");
    let victim = c.index_of(&victim_name);
    let on_victim: Vec<String> = before
        .iter()
        .filter(|i| i.node.as_deref() == Some(victim_name.as_str()))
        .map(|i| i.id.clone())
        .collect();

    let cut = Instant::now();
    take(&mut c, victim);
    let mut last = Vec::new();
    let replaced = wait_until(timeout + SETTLE, || {
        last = live(&c, &w);
        last.len() == 6
            && last.iter().all(|i| {
                i.phase == Phase::Running
                    && i.ready
                    && i.node.as_deref() != Some(victim_name.as_str())
            })
    });
    let took = cut.elapsed();
    assert!(replaced, "not replaced: {last:#?}\n{}", c.logs());
    println!(
        "host loss: {} instances on {victim_name} replaced and ready {took:?} after the host \
         went away (node timeout {timeout:?})",
        on_victim.len()
    );
    let instances = c.instances();
    for id in &on_victim {
        let old = instances.iter().find(|i| &i.id == id).expect("kept");
        assert_eq!(old.phase, Phase::Lost, "{id}");
    }
    let nodes = c.nodes();
    let node = nodes.iter().find(|n| n.name == victim_name).unwrap();
    assert_eq!(node.state, mini_sched::api::NodeState::Lost);
    // Meanwhile the stale copies are still on the cut-off host (it cannot be told).
    assert_no_duplicates(&c, &w, Some(victim));
    let still_there = stale_copies(&c, victim);
    assert!(
        on_victim.iter().all(|id| still_there.contains(id)),
        "{victim_name} holds {still_there:?} while away, expected {on_victim:?}"
    );

    give_back(&mut c, victim);
    let back = Instant::now();
    let mut stale = Vec::new();
    let fenced = wait_until(SETTLE, || {
        stale = c.agent_container_ids(victim);
        assert_no_duplicates(&c, &w, None);
        !stale.iter().any(|id| on_victim.contains(id))
    });
    assert!(
        fenced,
        "stale copies left on {victim_name}: {stale:?}\n{}",
        c.logs()
    );
    println!(
        "fencing: the stale copies on {victim_name} were removed {:?} after it came back",
        back.elapsed()
    );
    let nodes = c.nodes();
    let node = nodes.iter().find(|n| n.name == victim_name).unwrap();
    assert_eq!(node.state, mini_sched::api::NodeState::Ready);
    // The lost instances have ended, replaced (each names its replacement), and only
    // `get instances --all` still lists them.
    let mut kept = Vec::new();
    let ended = wait_until(SETTLE, || {
        kept = c.instances();
        on_victim.iter().all(|id| {
            kept.iter().any(|i| {
                &i.id == id
                    && i.phase == Phase::Replaced
                    && i.reason
                        .as_deref()
                        .is_some_and(|r| r.starts_with("replaced by "))
            })
        })
    });
    assert!(
        ended,
        "the lost instances did not end as replaced: {kept:#?}"
    );
    let shown: Vec<InstanceView> = c.get("instances", &[]);
    assert!(
        shown.iter().all(|i| !on_victim.contains(&i.id)),
        "`get instances` without --all lists replaced instances: {shown:#?}"
    );
    // Never two copies of one id.
    assert_eq!(live(&c, &w).len(), 6);
    assert!(live(&c, &w).iter().all(|i| !on_victim.contains(&i.id)));
    assert_no_duplicates(&c, &w, None);
    let traces = c.traces();
    drop(c);
    traces.assert_gone();
    took
}

#[test]
fn a_cut_link_replaces_the_hosts_instances_and_fences_them_when_it_returns() {
    host_loss(
        |c, i| c.cut_link(i),
        |c, i| c.agent_container_ids_from_inside(i),
        |c, i| c.restore_link(i),
    );
}

#[test]
fn a_killed_agent_replaces_the_hosts_instances_and_fences_them_when_it_restarts() {
    // With the agent dead its containers live on under their monitors until the restarted
    // agent adopts them and the scheduler fences them.
    host_loss(
        |c, i| c.kill_agent(i),
        |c, i| c.monitored_containers(i),
        |c, i| c.restart_agent(i),
    );
}

#[test]
fn migrate_makes_the_replacement_ready_before_the_original_stops() {
    let c = Cluster::start(3, Options::default());
    let w = unique("web");
    c.apply_ok(&spec(
        &w,
        2,
        WEB,
        &format!("env: {{GREETING: hi}}\n{WEB_PROBE}"),
    ));
    let two = wait_ready(&c, &w, 2);
    let original = two[0].clone();
    let from = original.node.clone().unwrap();
    let target = (0..3)
        .map(|i| c.node(i).to_string())
        .find(|n| *n != from)
        .unwrap();
    let out = c.cli_ok(&["migrate", &original.id, "--to", &target]);
    println!("{out}");
    let mut least_ready = usize::MAX;
    let mut last = Vec::new();
    let done = wait_until(SETTLE, || {
        last = live(&c, &w);
        least_ready = least_ready.min(
            last.iter()
                .filter(|i| i.phase == Phase::Running && i.ready)
                .count(),
        );
        last.len() == 2 && last.iter().all(|i| i.ready) && !last.iter().any(|i| i.id == original.id)
    });
    assert!(done, "migration did not finish: {last:#?}\n{}", c.logs());
    assert!(
        least_ready >= 2,
        "only {least_ready} ready during the migration"
    );
    let replacement = last
        .iter()
        .find(|i| i.id != two[1].id)
        .expect("the replacement");
    assert_eq!(replacement.node.as_deref(), Some(target.as_str()));
    // Ordering from the events: the replacement turned ready before the original stopped.
    let ev = events(&c, &w);
    let seq = |object: &str, reason: &str| {
        ev.iter()
            .find(|e| e.object == format!("instance/{object}") && e.reason == reason)
            .map(|e| e.seq)
            .unwrap_or_else(|| panic!("no {reason} event for {object}: {ev:#?}"))
    };
    assert!(
        seq(&replacement.id, "Ready") < seq(&original.id, "Stopping"),
        "the original stopped before its replacement was ready: {ev:#?}"
    );
    assert!(!c
        .agent_container_ids(c.index_of(&from))
        .contains(&original.id));
}

#[test]
fn the_scheduler_killed_mid_rollout_resumes_without_duplicates_or_orphans() {
    let mut c = Cluster::start(3, Options::default());
    let w = unique("web");
    let update = "update: {max_surge: 1, max_unavailable: 0}\n";
    c.apply_ok(&spec(
        &w,
        4,
        WEB,
        &format!("env: {{GREETING: one}}\n{WEB_PROBE}{update}"),
    ));
    wait_ready(&c, &w, 4);
    c.apply_ok(&spec(
        &w,
        4,
        WEB,
        &format!("env: {{GREETING: two}}\n{WEB_PROBE}{update}"),
    ));
    // Mid-rollout: a revision-2 instance is ready, revision-1 ones still run.
    let mut seen = Vec::new();
    let midway = wait_until(SETTLE, || {
        seen = live(&c, &w);
        seen.iter().any(|i| i.revision == 2 && i.ready) && seen.iter().any(|i| i.revision == 1)
    });
    assert!(midway, "never caught the rollout midway: {seen:#?}");
    c.kill_scheduler();
    c.restart_scheduler();
    follow_rollout(&c, &w, 2, 4);
    // No duplicate ids, and the agents hold exactly the live instances' containers.
    let all = c.instances();
    let ids: BTreeSet<&String> = all.iter().map(|i| &i.id).collect();
    assert_eq!(ids.len(), all.len(), "duplicate instance ids: {all:#?}");
    let want: BTreeSet<(String, String)> = live(&c, &w)
        .into_iter()
        .map(|i| (i.node.unwrap(), i.id))
        .collect();
    let mut have = BTreeSet::new();
    let settled = wait_until(SETTLE, || {
        have = containers_everywhere(&c, None)
            .into_iter()
            .map(|(n, id)| (c.node(n).to_string(), id))
            .collect();
        have == want
    });
    assert!(
        settled,
        "agents hold {have:?}, the scheduler knows {want:?}"
    );
}

#[test]
fn drain_moves_instances_and_a_too_large_instance_says_why_it_is_pending() {
    let c = Cluster::start(3, Options::default());
    let w = unique("web");
    c.apply_ok(&spec(&w, 3, SLEEPER, ""));
    let before = wait_ready(&c, &w, 3);
    let node = before[0].node.clone().unwrap();
    c.cli_ok(&["drain", &node]);
    let mut last = Vec::new();
    let moved = wait_until(SETTLE, || {
        last = live(&c, &w);
        last.len() == 3
            && last
                .iter()
                .all(|i| i.ready && i.node.as_deref() != Some(node.as_str()))
    });
    assert!(moved, "drain left {last:#?}\n{}", c.logs());
    let n = c.nodes().into_iter().find(|n| n.name == node).unwrap();
    assert!(n.cordoned, "{node} is cordoned after drain");
    assert!(c.agent_container_ids(c.index_of(&node)).is_empty());

    let big = unique("big");
    let text = spec(&big, 1, SLEEPER, "").replace("memory: 8Mi", "memory: 100Ti");
    c.apply_ok(&text);
    let mut pending = None;
    assert!(wait_until(SETTLE, || {
        pending = live(&c, &big).into_iter().next();
        pending.as_ref().is_some_and(|p| p.reason.is_some())
    }));
    let p = pending.unwrap();
    assert_eq!(p.phase, Phase::Pending);
    assert_eq!(
        p.reason.as_deref(),
        Some("0/3 nodes available: 3 insufficient resources")
    );
    let describe = c.cli_ok(&["describe", "instance", &p.id]);
    println!("{describe}");
    assert!(
        describe.contains("0/3 nodes") && describe.contains("insufficient"),
        "{describe}"
    );
}

#[test]
fn an_invalid_spec_is_refused_with_every_problem() {
    let c = Cluster::start(3, Options::default());
    let text = format!(
        "name: Bad_Name!\nsource: {{rootfs: {}}}\nreplicas: -1\n\
         resources:\n  requests: {{cpu: lots, memory: 8Mi}}\nliveness: {{tcp: {{port: 0}}}}\n\
         readiness: {{exec: {{command: []}}}}\n\
         update: {{max_surge: 0, max_unavailable: 0}}\nbogus: 1\n",
        fixture_rootfs().display()
    );
    let out = c.apply(&text);
    let err = String::from_utf8_lossy(&out.stderr);
    println!("{err}");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // One line per problem, each naming the field.
    for field in [
        "name:",
        "replicas:",
        "resources.requests.cpu:",
        "liveness.tcp.port:",
        "readiness.exec.command:",
        "update:",
        "bogus:",
    ] {
        assert!(
            err.lines().any(|l| l.trim_start().starts_with(field)),
            "no problem listed for {field}: {err}"
        );
    }
    // The daemon refuses it on its own too (the CLI checks first): 400 with every problem.
    let spec_file = c.dir().join("invalid.yaml");
    std::fs::write(&spec_file, &text).unwrap();
    let raw = std::process::Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}", "--unix-socket"])
        .arg(c.socket())
        .arg("--data-binary")
        .arg(format!("@{}", spec_file.display()))
        .arg("http://scheduler/v1/apply")
        .output()
        .expect("run curl");
    let answer = String::from_utf8_lossy(&raw.stdout);
    assert!(answer.trim_end().ends_with("400"), "{answer}");
    for field in ["name:", "replicas:", "resources.requests.cpu:", "bogus:"] {
        assert!(
            answer.contains(field),
            "the daemon did not list {field}: {answer}"
        );
    }
    assert!(c.workloads().is_empty(), "nothing was created");
    // The same spec made valid is accepted: the problems were the listed fields only.
    let fixed = text
        .replace("Bad_Name!", "good-name")
        .replace("replicas: -1", "replicas: 1")
        .replace("cpu: lots", "cpu: 50m")
        .replace("port: 0", "port: 8080")
        .replace("command: []", "command: [\"true\"]")
        .replace("max_surge: 0", "max_surge: 1")
        .replace("bogus: 1\n", "");
    c.apply_ok(&fixed);
}

#[test]
fn a_cluster_torn_down_mid_failure_leaves_nothing() {
    let mut traces = None;
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut c = Cluster::start(3, Options::default());
        let w = unique("web");
        c.apply_ok(&spec(&w, 3, SLEEPER, ""));
        wait_ready(&c, &w, 3);
        traces = Some(c.traces());
        // The messiest moment to fail: a host cut off, an agent and the scheduler dead,
        // containers running everywhere.
        c.cut_link(0);
        c.kill_agent(1);
        c.kill_scheduler();
        panic!("the test fails here");
    }));
    assert!(failed.is_err());
    traces.expect("the cluster ran").assert_gone();
}

#[test]
fn the_stored_environment_is_private_to_root_also_after_an_upgrade() {
    const SECRET: &str = "sched-secret-4711";
    let mut c = Cluster::start(1, Options::default());
    let w = unique("secret");
    c.apply_ok(&spec(
        &w,
        1,
        SLEEPER,
        &format!("env: {{PASSWORD: {SECRET}}}\n"),
    ));
    let id = wait_ready(&c, &w, 1)[0].id.clone();
    let (state, agent) = (c.state_dir(), c.dir().join("agent-0"));
    let store = state.join("state.redb");
    assert_private(&state, 0o700, None);
    assert_private(&store, 0o600, Some(SECRET));
    assert_private(&state.join("pki/ca-key.pem"), 0o600, None);
    assert_private(&agent, 0o700, None);
    let container = agent.join("containers").join(&id);
    assert_private(&container.join("meta.json"), 0o600, Some(SECRET));

    // An older daemon left both readable: the restarted one narrows them.
    c.kill_scheduler();
    for (path, mode) in [(&state, 0o755), (&store, 0o644)] {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    assert!(readable_by_nobody(&store));
    c.restart_scheduler();
    assert_private(&state, 0o700, None);
    assert_private(&store, 0o600, Some(SECRET));
}

/// A workload whose source no node has: `get instances` says the instance cannot start and
/// why (not only its restarts), and `rollout status` fails at once naming the cause instead
/// of waiting out its timeout.
#[test]
fn a_missing_source_fails_the_rollout_at_once_with_the_cause() {
    let c = Cluster::start(1, Options::default());
    let w = unique("nosource");
    let missing = format!("/nonexistent/{w}");
    c.apply_ok(
        &spec(&w, 1, SLEEPER, "").replace(&fixture_rootfs().display().to_string(), &missing),
    );
    let out = c.cli(&["rollout", "status", &w, "--timeout", "10m"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rollout status succeeded: {out:?}");
    assert!(
        stderr.contains(&format!(
            "rollout of {w} failed: {w}-1 cannot start (source_unavailable)"
        )) && stderr.contains(&missing),
        "rollout status does not name the cause: {stderr}\n{}",
        c.logs()
    );
    let table = c.cli_ok(&["get", "instances", "-w", &w]);
    assert!(
        table.contains("StartFailed: source_unavailable"),
        "get instances: {table}"
    );
}
