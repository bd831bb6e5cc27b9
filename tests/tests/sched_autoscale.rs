//! Horizontal autoscaling with real containers (tests/src/cluster.rs): a cpu burner in one
//! instance of a workload with a 100m cpu request and a 50% target makes the scheduler add
//! instances within a few heartbeats; once the burner stops, the count goes back to the
//! minimum after the (shortened) scale-down window, one instance per period.
//!
//! The reaction times are printed (`--nocapture`) for the README, not asserted.

use mini_sched::api::{Phase, WorkloadView};
use mini_tests::cluster::{Cluster, Options};
use mini_tests::{fixture_rootfs, unique, wait_until};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const SETTLE: Duration = Duration::from_secs(90);

fn ready(c: &Cluster, workload: &str) -> Vec<String> {
    c.instances()
        .into_iter()
        .filter(|i| i.workload == workload && i.phase == Phase::Running && i.ready)
        .map(|i| i.id)
        .collect()
}

/// The body of `GET path` on the daemon's API socket.
fn api_get(c: &Cluster, path: &str) -> String {
    let mut s = UnixStream::connect(c.socket()).expect("the API socket");
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .expect("request");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("answer");
    answer
        .split_once("\r\n\r\n")
        .map_or(answer.clone(), |(_, body)| body.to_string())
}

fn replicas(c: &Cluster, workload: &str) -> u32 {
    c.workloads()
        .into_iter()
        .find(|w: &WorkloadView| w.name == workload)
        .map_or(0, |w| w.replicas)
}

#[test]
fn cpu_load_scales_up_and_its_end_scales_down_one_step_at_a_time() {
    let c = Cluster::start(1, Options::default());
    let w = unique("auto");
    // The burner spins only while /tmp/burn exists in its own instance.
    c.apply_ok(&format!(
        "name: {w}\n\
         source: {{rootfs: {rootfs}}}\n\
         command: [sh, -c, 'while :; do if [ -e /tmp/burn ]; then :; else sleep 1; fi; done']\n\
         resources:\n  requests: {{cpu: 100m, memory: 8Mi}}\n  limits: {{cpu: 300m, memory: 32Mi}}\n\
         autoscale:\n  min: 1\n  max: 4\n  target: {{cpu: 50%}}\n\
         \x20 behavior: {{scale_down: {{window: 6s, max_step: 1, period: 2s}}}}\n\
         stop_timeout: 1s\n",
        rootfs = fixture_rootfs().display()
    ));
    assert!(
        wait_until(SETTLE, || ready(&c, &w).len() == 1),
        "the first instance never became ready:\n{}",
        c.logs()
    );
    let first = ready(&c, &w).remove(0);
    c.cli_ok(&["exec", &first, "--", "touch", "/tmp/burn"]);
    let load_on = Instant::now();
    assert!(
        wait_until(SETTLE, || ready(&c, &w).len() > 1),
        "no instance was added under load:\n{}\n{}",
        c.cli_ok(&["describe", "workload", &w]),
        c.logs()
    );
    let first_new_ready = load_on.elapsed();
    assert!(
        wait_until(SETTLE, || replicas(&c, &w) == 4),
        "the count did not reach the maximum, 4:\n{}",
        c.cli_ok(&["describe", "workload", &w])
    );
    let described = c.cli_ok(&["describe", "workload", &w]);
    assert!(
        described.contains("Autoscaling:") && described.contains("ScaledUp"),
        "{described}"
    );
    let rows = c.cli_ok(&["get", "workloads"]);
    assert!(rows.contains("1–4 cpu"), "{rows}");

    c.cli_ok(&["exec", &first, "--", "rm", "/tmp/burn"]);
    let load_off = Instant::now();
    assert!(
        wait_until(SETTLE, || replicas(&c, &w) == 1),
        "the count did not come back to 1:\n{}",
        c.cli_ok(&["describe", "workload", &w])
    );
    let back_to_min = load_off.elapsed();
    // One step at a time: every scale down removed a single instance.
    let events = c.cli_ok(&["events", "-w", &w]);
    let downs: Vec<&str> = events
        .lines()
        .filter(|l| l.contains("ScaledDown"))
        .collect();
    assert_eq!(downs.len(), 3, "{events}");
    for (line, step) in downs.iter().zip(["4 → 3", "3 → 2", "2 → 1"]) {
        assert!(line.contains(&format!("replicas {step}")), "{events}");
    }
    let metrics = api_get(&c, "/metrics");
    assert!(
        metrics.contains(&format!(
            "mini_sched_autoscale_target_percent{{workload=\"{w}\",metric=\"cpu\"}} 50"
        )),
        "{metrics}"
    );
    eprintln!(
        "reaction: load on → first new instance ready {:.1}s; load off → back to 1 {:.1}s \
         (heartbeat 500ms, scale-down window 6s, 1 instance per 2s)",
        first_new_ready.as_secs_f64(),
        back_to_min.as_secs_f64()
    );
}

#[test]
fn rightsize_apply_rolls_out_the_requests_the_measured_usage_calls_for() {
    let c = Cluster::start(1, Options::default());
    let w = unique("fat");
    // An idle instance that requests far more than it uses (well over 10×).
    c.apply_ok(&format!(
        "name: {w}\n\
         source: {{rootfs: {rootfs}}}\n\
         command: [sh, -c, 'while :; do sleep 1; done']\n\
         resources:\n  requests: {{cpu: 500m, memory: 256Mi}}\n  limits: {{cpu: 1, memory: 512Mi}}\n\
         stop_timeout: 1s\n",
        rootfs = fixture_rootfs().display()
    ));
    let mut described = String::new();
    assert!(
        wait_until(SETTLE, || {
            described = c.cli_ok(&["describe", "workload", &w]);
            described.contains("Recommended:")
        }),
        "no recommendation was shown:\n{described}\n{}",
        c.logs()
    );
    let out = c.cli_ok(&["rightsize", &w, "--apply"]);
    // `resources.requests.cpu: 500m → 1m` and so on, then the apply's answer.
    let changes: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| {
            let (field, change) = l.split_once(": ")?;
            let (_, new) = change.split_once(" → ")?;
            Some((field.to_string(), new.to_string()))
        })
        .collect();
    assert!(
        changes.iter().any(|(f, _)| f == "resources.requests.cpu")
            && out.contains(&format!("workload/{w} updated (revision 2)")),
        "{out}"
    );
    assert!(
        wait_until(SETTLE, || {
            let i = c.instances();
            let live: Vec<_> = i
                .iter()
                .filter(|i| i.workload == w && !i.phase.is_final())
                .collect();
            live.len() == 1 && live[0].revision == 2 && live[0].ready
        }),
        "the rollout of revision 2 did not complete:\n{}",
        c.cli_ok(&["describe", "workload", &w])
    );
    let detail: serde_json::Value =
        serde_json::from_str(&api_get(&c, &format!("/v1/workloads/{w}")))
            .expect("a workload detail");
    let spec = &detail["spec"]["resources"];
    for (field, new) in &changes {
        let mut value = spec;
        for key in field.trim_start_matches("resources.").split('.') {
            value = &value[key];
        }
        assert_eq!(value.as_str(), Some(new.as_str()), "{field} in {detail:#}");
    }
}
