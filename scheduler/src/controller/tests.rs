//! Any spec through validation and the controllers, edge values included (0, 1, each maximum
//! and one beyond, the integer types' extremes, huge strings): nothing panics. A spec that
//! validation accepts is applied and its instances are placed, started, probed, killed,
//! restarted and stopped, each call made (against an agent that refuses connections); a spec
//! that skips validation, as a record stored by an older version does, goes through the same
//! pass with arbitrary timings and counts.

use super::actions::ProbeKind;
use super::{lifecycle, Action, Daemon, Settings};
use crate::agents::Agents;
use crate::api::Phase;
use crate::model::Policy;
use crate::spec::{self, WorkloadSpec};
use crate::state::{now_rfc3339, Node, NodeLive, NodeRecord, State, WorkloadRecord};
use crate::store::Store;
use mini_shim::protocol::{ExitInfo, NodeStatus, ProbeResult};
use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A directory of its own for one case's store, removed afterwards.
pub(super) struct Scratch(PathBuf);

impl Scratch {
    /// The directory.
    pub(super) fn path(&self) -> &std::path::Path {
        &self.0
    }

    pub(super) fn new() -> Scratch {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("mini-sched-controller-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A daemon with one ready node whose agent refuses every connection (a closed port).
fn daemon(scratch: &Scratch) -> Arc<Daemon> {
    daemon_with(scratch, Duration::MAX, Duration::MAX)
}

/// [`daemon`] with its heartbeat interval and node timeout.
pub(super) fn daemon_with(
    scratch: &Scratch,
    heartbeat_interval: Duration,
    node_timeout: Duration,
) -> Arc<Daemon> {
    let store = Store::open(&scratch.0.join("state.redb")).unwrap();
    let settings = Settings {
        network: crate::network::Settings::default(),
        heartbeat_interval,
        node_timeout,
        policy: Policy::LeastAllocated,
        rebalance_interval: Duration::ZERO,
        rebalance_threshold: 0.25,
        rebalance_cooldown: Duration::MAX,
    };
    let daemon = Daemon::new(
        State::default(),
        store,
        Agents::without_credentials(),
        settings,
    );
    daemon.with(|s| {
        let record = NodeRecord::new("n1", "127.0.0.1:1".parse().unwrap());
        let status = NodeStatus {
            node: "n1".into(),
            sampled_at: now_rfc3339(),
            cpus: 8192,
            memory_total_bytes: 1 << 60,
            memory_available_bytes: 1 << 60,
            cpu_busy: 0.0,
            load: [0.0; 3],
            pressure: None,
            containers: 0,
            containers_running: 0,
            services_generation: 0,
        };
        let live = NodeLive {
            last_heartbeat: Some(Instant::now()),
            status: Some(status),
            ..NodeLive::default()
        };
        s.nodes.insert("n1".into(), Node { record, live });
    });
    Arc::new(daemon)
}

/// Makes the calls (at most a few of each pass: the agent refuses them all alike).
async fn perform(daemon: &Arc<Daemon>, actions: Vec<Action>) {
    for action in actions.into_iter().take(8) {
        daemon.clone().perform(action).await;
    }
}

/// Runs the controllers over the workload in `daemon`: placement, start, failing probes (a
/// liveness kill), an exit with back-off, the restart, and a stop.
async fn lifecycle_pass(daemon: &Arc<Daemon>) {
    let now = Instant::now();
    let actions = daemon.with(|s| daemon.tick(s, now));
    perform(daemon, actions).await;
    let ids: Vec<String> = daemon.with(|s| s.instances.keys().take(3).cloned().collect());
    let much_later = lifecycle::after(now, Duration::from_secs(3 * 24 * 60 * 60));
    for id in &ids {
        daemon.with(|s| {
            let instance = s.instances.get_mut(id).expect("listed");
            if instance.record.phase == Phase::Starting {
                instance.live.in_flight = false;
                lifecycle::started(s, id, None, Instant::now());
            }
        });
        for kind in [ProbeKind::Readiness, ProbeKind::Liveness] {
            let thresholds = daemon.with(|s| {
                let spec = s.spec_of(id)?;
                let probe = match kind {
                    ProbeKind::Readiness => spec.readiness.as_ref(),
                    ProbeKind::Liveness => spec.liveness.as_ref(),
                }?;
                Some(probe.failure_threshold.min(2_000))
            });
            for _ in 0..thresholds.unwrap_or(0) {
                let failed = Ok(ProbeResult {
                    healthy: false,
                    detail: "refused".into(),
                });
                let actions = daemon.with(|s| lifecycle::probe_outcome(s, id, kind, failed));
                perform(daemon, actions).await;
            }
        }
        let exit = ExitInfo {
            code: 1,
            signal: None,
            oom_killed: false,
            finished_at: now_rfc3339(),
        };
        daemon.with(|s| {
            if let Some(instance) = s.instances.get_mut(id) {
                instance.live.in_flight = false;
                if instance.record.phase == Phase::Running {
                    lifecycle::exited(daemon, s, id, Some(&exit), "exited");
                }
            }
        });
    }
    let actions = daemon.with(|s| daemon.tick(s, much_later));
    perform(daemon, actions).await;
    daemon.with(|s| {
        for id in &ids {
            if let Some(instance) = s.instances.get_mut(id) {
                instance.live.in_flight = false;
            }
            lifecycle::request_stop(s, id, "the test stops it".into());
        }
    });
    let actions = daemon.with(|s| daemon.tick(s, much_later));
    perform(daemon, actions).await;
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Validates `text`; when it is accepted, applies it and runs the controllers over it.
fn validate_and_run(text: &str) {
    let spec = match spec::parse(text) {
        Ok(spec) => spec,
        Err(problems) => {
            assert!(!problems.list().is_empty());
            return;
        }
    };
    let stored: WorkloadSpec = serde_json::from_value(serde_json::to_value(&spec).unwrap())
        .expect("an accepted spec reads back from its stored form");
    assert_eq!(stored, spec);
    let scratch = Scratch::new();
    runtime().block_on(async {
        let daemon = daemon(&scratch);
        crate::server::workloads::apply(&daemon, text.to_owned(), false)
            .await
            .expect("the spec was accepted");
        lifecycle_pass(&daemon).await;
    });
}

/// Puts `spec` into the state as a stored record would be, unchecked, and runs the
/// controllers over it.
fn run_unchecked(spec: WorkloadSpec) {
    let scratch = Scratch::new();
    runtime().block_on(async {
        let daemon = daemon(&scratch);
        daemon.with(|s| {
            s.workloads
                .insert(spec.name.clone(), WorkloadRecord::new(spec, 1, 1));
        });
        lifecycle_pass(&daemon).await;
    });
}

/// Values that pass validation wherever they are used, and values that do not.
type Edges = (&'static [&'static str], &'static [&'static str]);

/// A value from the valid edges mostly, from the invalid ones sometimes: enough specs pass
/// validation to reach the controllers, and every edge is tried.
fn edge((valid, invalid): Edges) -> impl Strategy<Value = &'static str> + Clone {
    prop_oneof![
        12 => prop::sample::select(valid),
        1 => prop::sample::select(invalid),
    ]
}

const REPLICAS: Edges = (
    &["0", "1", "2", "10000"],
    &[
        "10001",
        "4294967295",
        "18446744073709551616",
        "-1",
        "1.5",
        "\"3\"",
    ],
);
const THRESHOLDS: Edges = (&["1", "2", "1000"], &["0", "1001", "4294967295", "-1"]);
const COUNTS: Edges = (
    &["1", "2", "10000"],
    &["10001", "4294967295", "18446744073709551616", "\"101%\""],
);
const DURATIONS: Edges = (
    &["1s", "2s", "24h"],
    &[
        "0s",
        "500ms",
        "25h",
        "18446744073709551615s",
        "18446744073709551616s",
        "-1s",
        "1",
    ],
);
const CPU: Edges = (
    &["1", "500m", "8192"],
    &["8193", "18446744073709551615", "-1", "0.0001"],
);
const MEMORY: Edges = (
    &["1", "64Mi", "1024Ti"],
    &["1025Ti", "18446744073709551615", "-1"],
);
const PIDS: Edges = (
    &["1", "64", "4194304"],
    &["4194305", "18446744073709551615", "-1", "1.5"],
);
const PRIORITIES: Edges = (
    &["0", "1000000000", "-1000000000"],
    &[
        "1000000001",
        "-1000000001",
        "2147483647",
        "-2147483648",
        "9223372036854775807",
    ],
);
const USERS: Edges = (
    &["0", "1000", "\"2147483647:2147483647\""],
    &["2147483648", "4294967295", "\"0:4294967295\"", "-1"],
);
const NAMES: Edges = (
    &["web", "w"],
    &[
        "Web",
        "web-",
        "",
        "a-very-long-name-over-forty-characters-x",
    ],
);
const SOURCES: Edges = (
    &["{rootfs: /srv/r}", "{image: {path: /i, reference: v}}"],
    &["{rootfs: srv}", "{image: {path: /i, reference: \"\"}}"],
);
const CWDS: Edges = (&["/", "/srv"], &["", "a", "\"\\0\""]);
const CHECKS: Edges = (
    &[
        "tcp: {port: 80}",
        "http: {port: 65535, path: /h}",
        "exec: {command: [true]}",
    ],
    &[
        "tcp: {port: 0}",
        "tcp: {port: 65536}",
        "exec: {command: []}",
    ],
);

/// A list of `item`s, its length at the edges of the list maxima (64 terms, 1024 args).
fn list(item: &'static str, max: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        12 => prop::sample::select(vec!["0", "1", max]),
        1 => prop::sample::select(vec!["65", "1025"]),
    ]
    .prop_map(move |len| vec![item; len.parse().unwrap()].join(", "))
}

/// A probe with each timing and count drawn from the edges (a liveness probe's successes
/// are left at 1).
fn probe(liveness: bool) -> impl Strategy<Value = String> {
    (
        edge(CHECKS),
        [edge(DURATIONS), edge(DURATIONS), edge(DURATIONS)],
        [edge(THRESHOLDS), edge(THRESHOLDS)],
    )
        .prop_map(
            move |(check, [period, timeout, delay], [failures, successes])| {
                let successes = if liveness { "1" } else { successes };
                format!(
                    "{{{check}, period: {period}, timeout: {timeout}, initial_delay: {delay}, \
                 failure_threshold: {failures}, success_threshold: {successes}}}"
                )
            },
        )
}

/// Spec text built from the schema, each field present or not, each value from the edges.
fn spec_text() -> impl Strategy<Value = String> {
    let head = (
        edge(NAMES),
        edge(SOURCES),
        prop::option::of(list("a", "1024")),
        prop::option::of(edge(USERS)),
        prop::option::of(edge(REPLICAS)),
        prop::option::of(edge(PRIORITIES)),
        prop::option::of((edge(CPU), edge(MEMORY), edge(PIDS))),
        prop::option::of((edge(CPU), edge(MEMORY), edge(PIDS))),
    );
    let tail = (
        prop::option::of([edge(DURATIONS), edge(DURATIONS)]),
        prop::option::of(probe(true)),
        prop::option::of(probe(false)),
        prop::option::of([edge(COUNTS), edge(COUNTS)]),
        prop::option::of(edge(COUNTS)),
        prop::option::of(edge(DURATIONS)),
        prop::option::of(edge(CWDS)),
        prop::option::of(list("{key: k}", "64")),
    );
    (head, tail).prop_map(
        |(
            (name, source, command, user, replicas, priority, requests, limits),
            (backoff, liveness, readiness, update, skew, stop, cwd, tolerations),
        )| {
            let mut text = format!("name: \"{name}\"\nsource: {source}\n");
            let mut field = |key: &str, value: Option<String>| {
                if let Some(value) = value {
                    text.push_str(&format!("{key}: {value}\n"));
                }
            };
            field("command", command.map(|c| format!("[{c}]")));
            field("user", user.map(str::to_owned));
            field("replicas", replicas.map(str::to_owned));
            field("priority", priority.map(str::to_owned));
            let amounts = |(cpu, memory, pids): (&str, &str, &str)| {
                format!("{{cpu: {cpu}, memory: {memory}, pids: {pids}}}")
            };
            let resources = match (requests.map(amounts), limits.map(amounts)) {
                (None, None) => None,
                (r, l) => Some(format!(
                    "{{requests: {}, limits: {}}}",
                    r.unwrap_or("{}".into()),
                    l.unwrap_or("{}".into())
                )),
            };
            field("resources", resources);
            field(
                "restart",
                backoff.map(|[i, m]| format!("{{backoff: {{initial: {i}, max: {m}}}}}")),
            );
            field("liveness", liveness);
            field("readiness", readiness);
            field(
                "update",
                update.map(|[s, u]| format!("{{max_surge: {s}, max_unavailable: {u}}}")),
            );
            field("spread", skew.map(|s| format!("{{max_skew: {s}}}")));
            field("stop_timeout", stop.map(str::to_owned));
            field("cwd", cwd.map(str::to_owned));
            field("tolerations", tolerations.map(|t| format!("[{t}]")));
            text
        },
    )
}

/// Any duration, the extremes likelier than a uniform draw makes them.
fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        Just(Duration::from_secs(u64::MAX)),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

fn any_count() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0), Just(1), Just(u32::MAX), any::<u32>()]
}

/// A spec that skipped validation: timings and counts anything (replicas kept few).
fn unchecked_spec() -> impl Strategy<Value = WorkloadSpec> {
    (
        [
            any_duration(),
            any_duration(),
            any_duration(),
            any_duration(),
        ],
        [any_duration(), any_duration()],
        [any_count(), any_count(), any_count(), any_count()],
        0u32..3,
        any::<i32>(),
    )
        .prop_map(
            |(
                [period, timeout, delay, stop],
                [initial, max],
                [f, s, surge, unavailable],
                replicas,
                priority,
            )| {
                let mut spec = spec::parse(
                    "name: web\nsource: {rootfs: /srv/r}\nliveness: {tcp: {port: 80}}\n\
                     readiness: {tcp: {port: 80}}\n",
                )
                .unwrap();
                for probe in [&mut spec.liveness, &mut spec.readiness]
                    .into_iter()
                    .flatten()
                {
                    probe.period = period;
                    probe.timeout = timeout;
                    probe.initial_delay = delay;
                    probe.failure_threshold = f;
                    probe.success_threshold = s;
                }
                spec.restart.backoff.initial = initial;
                spec.restart.backoff.max = max;
                spec.stop_timeout = stop;
                spec.update.max_surge = spec::Amount::Count(surge);
                spec.update.max_unavailable = spec::Amount::Percent(unavailable);
                spec.replicas = replicas;
                spec.priority = priority;
                spec
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_spec_from_the_schema_validates_and_runs_without_panic(text in spec_text()) {
        validate_and_run(&text);
    }

    #[test]
    fn a_stored_spec_beyond_every_maximum_runs_without_panic(spec in unchecked_spec()) {
        run_unchecked(spec);
    }
}

#[test]
fn the_findings_specs_are_refused() {
    for extra in [
        "readiness: {tcp: {port: 80}, timeout: 18446744073709551615s}",
        "stop_timeout: 18446744073709551615s",
        "replicas: 4294967295",
        "resources: {limits: {pids: 18446744073709551615}}",
        "user: 4294967295",
    ] {
        let text = format!("name: web\nsource: {{rootfs: /srv/r}}\n{extra}\n");
        assert!(spec::parse(&text).is_err(), "{extra} is accepted");
    }
}

#[test]
fn an_instance_stopping_with_the_longest_timeout_is_stopped() {
    run_unchecked({
        let mut spec = spec::parse("name: web\nsource: {rootfs: /srv/r}\n").unwrap();
        spec.stop_timeout = Duration::MAX;
        spec.restart.backoff.max = Duration::MAX;
        spec.restart.backoff.initial = Duration::MAX;
        spec
    });
}
