//! Bad specs and a bad `--socket` against the real daemon (issue 12, findings 5–7): a store
//! holding records the daemon cannot act on (stored by a version with looser rules, or
//! corrupt) never keeps it down: it comes up, reports each record (stderr and an `Unreadable`
//! event), runs the rest and takes the workload back when it is applied again. Specs beyond
//! the maxima, nested too deep or repeating a key are refused by `apply`. `--socket` never
//! removes what is not a stale socket. The daemon runs on loopback without agents.

use mini_sched::api::{Event, WorkloadView};
use mini_sched::spec;
use mini_sched::state::WorkloadRecord;
use mini_sched::store::{Batch, Store, Table};
use mini_tests::lone_daemon::{LoneDaemon, START};
use mini_tests::wait_until;
use serde_json::{json, Value};

/// The agentless daemon of these tests, with what they read from its store and events.
struct Daemon(LoneDaemon);

impl std::ops::Deref for Daemon {
    type Target = LoneDaemon;
    fn deref(&self) -> &LoneDaemon {
        &self.0
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut LoneDaemon {
        &mut self.0
    }
}

impl Daemon {
    fn init() -> Daemon {
        Daemon(LoneDaemon::init("sched-bad-spec", &[]))
    }

    fn store(&self) -> Store {
        Store::open(&self.dir.path().join("state/state.redb")).expect("the store")
    }

    fn events(&self) -> Vec<Event> {
        self.json(&["events", "-o", "json"])
    }

    fn workloads(&self) -> Vec<String> {
        let views: Vec<WorkloadView> = self.json(&["get", "workloads", "-o", "json"]);
        views.into_iter().map(|w| w.name).collect()
    }
}

/// A stored workload record (as `apply` would store it) for `spec_text`, then `change`d.
fn record(spec_text: &str, change: impl FnOnce(&mut Value)) -> Value {
    let spec = spec::parse(spec_text).expect("a valid spec");
    let record = WorkloadRecord::new(spec, 1, 1);
    let mut value = serde_json::to_value(record).expect("records serialize");
    change(&mut value);
    value
}

fn spec_of(name: &str) -> String {
    format!("name: {name}\nsource: {{rootfs: /srv/none}}\ncommand: [sleep, '60']\n")
}

/// Sets `field` of the record's current spec and of its revision to `to`.
fn set(field: &'static str, to: Value) -> impl FnOnce(&mut Value) {
    move |record| {
        record["spec"][field] = to.clone();
        record["revisions"][0]["spec"][field] = to;
    }
}

#[test]
fn a_daemon_with_records_it_cannot_act_on_comes_up_reports_them_and_runs_the_rest() {
    let mut daemon = Daemon::init();
    let never = "18446744073709551615s";
    {
        let mut batch = Batch::default();
        let planted = [
            ("good", record(&spec_of("good"), |_| {})),
            ("garbage", json!("not a workload")),
            (
                "slow-probe",
                record(&spec_of("slow-probe"), |r| {
                    let probe = json!({"tcp": {"port": 80}, "timeout": never});
                    set("readiness", probe)(r)
                }),
            ),
            (
                "slow-stop",
                record(&spec_of("slow-stop"), set("stop_timeout", json!(never))),
            ),
            (
                "huge",
                record(&spec_of("huge"), set("replicas", json!(4294967295u32))),
            ),
            (
                "nobody",
                record(&spec_of("nobody"), set("user", json!("4294967295"))),
            ),
        ];
        for (name, value) in &planted {
            batch.put(Table::Workloads, name, value);
        }
        batch.put(Table::Instances, "garbage-1", &json!({"id": 5}));
        daemon.store().commit(batch).expect("planting the records");
    }
    let broken = [
        "workload/garbage",
        "workload/slow-probe",
        "workload/slow-stop",
        "workload/huge",
        "workload/nobody",
        "instance/garbage-1",
    ];
    for round in ["first start", "restart"] {
        daemon.start();
        let events = daemon.events();
        for object in broken {
            assert!(
                events
                    .iter()
                    .any(|e| e.object == object && e.reason == "Unreadable"),
                "{round}: no Unreadable event for {object}: {events:?}"
            );
        }
        assert_eq!(daemon.workloads(), ["good"], "{round}");
        // The controllers run on: the readable workload gets its instance.
        let created = wait_until(START, || {
            daemon
                .events()
                .iter()
                .any(|e| e.object == "instance/good-1" && e.reason == "Created")
        });
        assert!(
            created,
            "{round}: good-1 was never created:\n{}",
            daemon.log()
        );
        daemon.stop();
    }
    let log = daemon.log();
    assert!(
        log.contains("mini-sched: workload huge: the stored workload cannot be read"),
        "{log}"
    );
    daemon.start();
    // Applying the workload again replaces the unreadable record.
    let out = daemon.apply(&format!("{}replicas: 2\n", spec_of("huge")));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(daemon.workloads(), ["good", "huge"]);
    daemon.stop();
    daemon.start();
    assert_eq!(daemon.workloads(), ["good", "huge"]);
}

#[test]
fn apply_refuses_specs_beyond_the_maxima_too_deep_or_with_a_repeated_key() {
    let mut daemon = Daemon::init();
    daemon.start();
    let base = spec_of("web");
    let refused = [
        (
            format!("{base}readiness: {{tcp: {{port: 80}}, timeout: 18446744073709551615s}}\n"),
            "is longer than the maximum, 1day",
        ),
        (
            format!("{base}stop_timeout: 18446744073709551615s\n"),
            "stop_timeout: ",
        ),
        (
            format!("{base}replicas: 4294967295\n"),
            "replicas: 4294967295 is more than the maximum, 10000",
        ),
        (
            format!("{base}resources: {{limits: {{pids: 18446744073709551615}}}}\n"),
            "resources.limits.pids: 18446744073709551615 is more than the maximum, 4194304",
        ),
        (
            format!("{base}user: 4294967295\n"),
            "user: ids above 2147483647",
        ),
        (
            format!(
                "{base}env: {}1{}\n",
                "[".repeat(100_000),
                "]".repeat(100_000)
            ),
            "deeper than 32 levels",
        ),
        (format!("{base}name: other\n"), "\"name\" appears twice"),
    ];
    for (text, part) in &refused {
        let out = daemon.apply(text);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "accepted: {}",
            &text[..text.len().min(200)]
        );
        assert!(stderr.contains(part), "{part}: {stderr}");
    }
    assert!(daemon.workloads().is_empty());
    let applied = daemon.apply(&base);
    assert!(applied.status.success(), "{applied:?}");
    let out = daemon.cli(&["scale", "web", "4294967295"]);
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("more than the maximum, 10000"), "{stderr}");
}

#[test]
fn daemon_socket_is_never_a_file_it_removes_nor_a_live_daemons() {
    let mut daemon = Daemon::init();
    let file = daemon.dir.path().join("precious");
    std::fs::write(&file, "keep me").expect("write the file");
    let out = daemon
        .spawn(&file)
        .wait_timeout(START)
        .expect("the daemon exits");
    assert!(!out.status.success());
    let log = daemon.log();
    let line = format!(
        "--socket {} exists and is not a socket: it is left alone; remove it yourself or \
         choose another --socket",
        file.display()
    );
    assert!(log.contains(&line), "{log}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");

    daemon.start();
    let other = Daemon::init();
    let out = other
        .spawn(&daemon.socket)
        .wait_timeout(START)
        .expect("the second daemon exits");
    assert!(!out.status.success());
    let line = format!("another daemon is listening on {}", daemon.socket.display());
    assert!(other.log().contains(&line), "{}", other.log());
    assert!(daemon.cli(&["get", "workloads"]).status.success());
}
