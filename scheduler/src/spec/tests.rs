//! The spec as SPEC.md describes it: every field, its default, every rule.

use std::collections::BTreeMap;
use std::time::Duration;

use mini_shim::protocol::{self, ImageRef, Network, Probe, Source};

use super::*;
use crate::model::{self, TaintEffect, Topology};
use crate::resources::Resources;

const BASE: &str = "name: web\nsource: {rootfs: /srv/busybox}\n";

/// `BASE` with `extra` added; a top-level field of `extra` replaces `BASE`'s (a key may not
/// appear twice).
fn with(extra: &str) -> Result<WorkloadSpec, Problems> {
    let base: String = BASE
        .lines()
        .filter(|line| {
            let key = line.split(':').next().unwrap_or_default();
            !extra.lines().any(|e| e.starts_with(&format!("{key}:")))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    parse(&format!("{base}{extra}"))
}

fn ok(extra: &str) -> WorkloadSpec {
    with(extra).unwrap_or_else(|p| panic!("{extra}\n→ {p}"))
}

/// The (path, message) of every problem of `BASE + extra`.
fn problems(extra: &str) -> Vec<(String, String)> {
    match with(extra) {
        Ok(spec) => panic!("{extra}\n→ accepted: {spec:?}"),
        Err(p) => p
            .list()
            .iter()
            .map(|p| (p.path.clone(), p.message.clone()))
            .collect(),
    }
}

/// Asserts `BASE + extra` has exactly one problem, at `path`, whose message holds `part`.
fn one_problem(extra: &str, path: &str, part: &str) {
    let found = problems(extra);
    assert_eq!(found.len(), 1, "{extra}\n→ {found:?}");
    assert_eq!(found[0].0, path, "{extra}\n→ {found:?}");
    assert!(found[0].1.contains(part), "{extra}\n→ {found:?}");
}

const FULL_YAML: &str = r#"
name: shop
source:
  image: {path: /var/lib/images/shop.tar, reference: v2}
command: [/bin/shop, --port, "8080"]
env: {MODE: prod, EMPTY: ""}
cwd: /srv
user: "1000:100"
network: host
resources:
  requests: {cpu: 250m, memory: 64Mi, pids: 50}
  limits: {cpu: 1, memory: 128Mi, pids: 100}
replicas: 4
priority: -5
node_selector: {disk: ssd}
affinity:
  - {workload: cache}
  - {workload: db, topology: zone}
anti_affinity:
  - {workload: shop, topology: node}
spread: {topology: zone, max_skew: 2}
tolerations:
  - {key: gpu, value: "yes", effect: NoSchedule}
  - {key: spot}
  - {effect: NoExecute}
depends_on: [db, cache]
restart:
  policy: on-failure
  backoff: {initial: 500ms, max: 2m}
liveness:
  exec: {command: [/bin/check, --quick]}
  period: 5s
  timeout: 2s
  failure_threshold: 4
  initial_delay: 10s
readiness:
  http: {port: 8080, path: /healthz}
  success_threshold: 2
update: {max_surge: "25%", max_unavailable: "10%"}
stop_timeout: 30s
"#;

const FULL_JSON: &str = r#"{
  "name": "shop",
  "source": {"image": {"path": "/var/lib/images/shop.tar", "reference": "v2"}},
  "command": ["/bin/shop", "--port", "8080"],
  "env": {"MODE": "prod", "EMPTY": ""},
  "cwd": "/srv",
  "user": "1000:100",
  "network": "host",
  "resources": {
    "requests": {"cpu": "250m", "memory": "64Mi", "pids": 50},
    "limits": {"cpu": 1, "memory": "128Mi", "pids": 100}
  },
  "replicas": 4,
  "priority": -5,
  "node_selector": {"disk": "ssd"},
  "affinity": [{"workload": "cache"}, {"workload": "db", "topology": "zone"}],
  "anti_affinity": [{"workload": "shop", "topology": "node"}],
  "spread": {"topology": "zone", "max_skew": 2},
  "tolerations": [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}, {"key": "spot"},
                  {"effect": "NoExecute"}],
  "depends_on": ["db", "cache"],
  "restart": {"policy": "on-failure", "backoff": {"initial": "500ms", "max": "2m"}},
  "liveness": {"exec": {"command": ["/bin/check", "--quick"]}, "period": "5s", "timeout": "2s",
               "failure_threshold": 4, "initial_delay": "10s"},
  "readiness": {"http": {"port": 8080, "path": "/healthz"}, "success_threshold": 2},
  "update": {"max_surge": "25%", "max_unavailable": "10%"},
  "stop_timeout": "30s"
}"#;

#[test]
fn a_minimal_spec_takes_every_default() {
    let spec = ok("");
    assert_eq!(spec.name, "web");
    assert_eq!(spec.source, Source::Rootfs("/srv/busybox".into()));
    assert!(spec.command.is_empty());
    assert!(spec.env.is_empty());
    assert_eq!(spec.cwd, None);
    assert_eq!(spec.user, None);
    assert_eq!(spec.network, Network::Cluster);
    assert_eq!(spec.resources, ResourceSpec::default());
    assert_eq!(spec.resources.limits.memory, None);
    assert_eq!(spec.replicas, 1);
    assert_eq!(spec.priority, 0);
    assert!(spec.node_selector.is_empty());
    assert!(spec.affinity.is_empty() && spec.anti_affinity.is_empty());
    assert_eq!(spec.spread, None);
    assert!(spec.tolerations.is_empty());
    assert!(spec.depends_on.is_empty());
    assert_eq!(spec.restart.policy, RestartPolicy::Always);
    assert_eq!(spec.restart.backoff.initial, Duration::from_secs(1));
    assert_eq!(spec.restart.backoff.max, Duration::from_secs(60));
    assert_eq!(spec.liveness, None);
    assert_eq!(spec.readiness, None);
    assert_eq!(spec.update.max_surge, Amount::Count(1));
    assert_eq!(spec.update.max_unavailable, Amount::Count(0));
    assert_eq!(spec.stop_timeout, Duration::from_secs(10));
}

#[test]
fn every_field_is_read() {
    let spec = parse(FULL_YAML).unwrap();
    assert_eq!(spec.name, "shop");
    assert_eq!(
        spec.source,
        Source::Image(ImageRef {
            path: "/var/lib/images/shop.tar".into(),
            reference: Some("v2".into())
        })
    );
    assert_eq!(spec.command, ["/bin/shop", "--port", "8080"]);
    assert_eq!(spec.env["MODE"], "prod");
    assert_eq!(spec.env["EMPTY"], "");
    assert_eq!(spec.cwd.as_deref(), Some("/srv"));
    assert_eq!(
        spec.user,
        Some(User {
            uid: 1000,
            gid: Some(100)
        })
    );
    assert_eq!(spec.network, Network::Host);
    assert_eq!(
        spec.resources,
        ResourceSpec {
            requests: Requests {
                cpu: 250,
                memory: 64 << 20,
                pids: 50
            },
            limits: Limits {
                cpu: Some(1000),
                memory: Some(128 << 20),
                pids: Some(100)
            },
        }
    );
    assert_eq!(spec.replicas, 4);
    assert_eq!(spec.priority, -5);
    assert_eq!(spec.node_selector["disk"], "ssd");
    assert_eq!(
        spec.affinity,
        [
            WorkloadTermSpec {
                workload: "cache".into(),
                topology: TopologySpec::Node
            },
            WorkloadTermSpec {
                workload: "db".into(),
                topology: TopologySpec::Label("zone".into())
            },
        ]
    );
    assert_eq!(spec.anti_affinity[0].topology, TopologySpec::Node);
    assert_eq!(
        spec.spread,
        Some(SpreadSpec {
            topology: TopologySpec::Label("zone".into()),
            max_skew: 2
        })
    );
    assert_eq!(
        spec.tolerations,
        [
            TolerationSpec {
                key: Some("gpu".into()),
                value: Some("yes".into()),
                effect: Some(EffectSpec::NoSchedule)
            },
            TolerationSpec {
                key: Some("spot".into()),
                value: None,
                effect: None
            },
            TolerationSpec {
                key: None,
                value: None,
                effect: Some(EffectSpec::NoExecute)
            },
        ]
    );
    assert_eq!(spec.depends_on, ["db", "cache"]);
    assert_eq!(
        spec.restart,
        RestartSpec {
            policy: RestartPolicy::OnFailure,
            backoff: Backoff {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(120)
            }
        }
    );
    assert_eq!(
        spec.liveness,
        Some(ProbeSpec {
            check: ProbeCheck::Exec {
                command: vec!["/bin/check".into(), "--quick".into()]
            },
            period: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            failure_threshold: 4,
            success_threshold: 1,
            initial_delay: Duration::from_secs(10),
        })
    );
    assert_eq!(
        spec.readiness,
        Some(ProbeSpec {
            check: ProbeCheck::Http {
                port: 8080,
                path: "/healthz".into()
            },
            period: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            failure_threshold: 3,
            success_threshold: 2,
            initial_delay: Duration::ZERO,
        })
    );
    assert_eq!(
        spec.update,
        UpdateSpec {
            max_surge: Amount::Percent(25),
            max_unavailable: Amount::Percent(10)
        }
    );
    assert_eq!(spec.stop_timeout, Duration::from_secs(30));
}

#[test]
fn json_and_yaml_give_equal_specs() {
    assert_eq!(parse(FULL_JSON).unwrap(), parse(FULL_YAML).unwrap());
}

#[test]
fn a_spec_round_trips_through_json_and_yaml() {
    for text in [FULL_YAML, BASE, include_str!("../../examples/web.yaml")] {
        let spec = parse(text).unwrap();
        let json = serde_json::to_string_pretty(&spec).unwrap();
        assert_eq!(parse(&json).unwrap(), spec, "{json}");
        assert_eq!(serde_json::from_str::<WorkloadSpec>(&json).unwrap(), spec);
        // Writing the read-back spec again gives the same text: the JSON form is canonical.
        assert_eq!(
            serde_json::to_string_pretty(&parse(&json).unwrap()).unwrap(),
            json
        );
        let yaml = serde_norway::to_string(&spec).unwrap();
        assert_eq!(parse(&yaml).unwrap(), spec, "{yaml}");
    }
}

#[test]
fn the_json_form_writes_amounts_as_text() {
    let spec = ok("resources: {requests: {cpu: 0.5, memory: 1073741824}}\nuser: 7\n");
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(json["resources"]["requests"]["cpu"], "500m");
    assert_eq!(json["resources"]["limits"]["memory"], "1Gi");
    assert_eq!(json["user"], "7");
    assert_eq!(json["stop_timeout"], "10s");
    assert_eq!(json["update"]["max_surge"], 1);
    assert_eq!(json["network"], "cluster");
    assert_eq!(json["source"]["rootfs"], "/srv/busybox");
}

#[test]
fn deserializing_checks_like_parse() {
    let err = serde_json::from_str::<WorkloadSpec>(r#"{"name": "Web", "source": {}}"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("name: \"Web\" is not a workload name"),
        "{err}"
    );
    assert!(err.contains("source: needs `rootfs"), "{err}");
}

#[test]
fn limits_default_to_requests_and_requests_to_limits() {
    let spec = ok("resources: {requests: {cpu: 200m, memory: 32Mi}, limits: {pids: 64}}\n");
    assert_eq!(
        spec.resources,
        ResourceSpec {
            requests: Requests {
                cpu: 200,
                memory: 32 << 20,
                pids: 64
            },
            limits: Limits {
                cpu: Some(200),
                memory: Some(32 << 20),
                pids: Some(64)
            },
        }
    );
    // A request of 0 reserves nothing and limits nothing.
    let spec = ok("resources: {requests: {cpu: 0}}\n");
    assert_eq!(spec.resources.limits.cpu, None);
    assert_eq!(spec.resources.requests.cpu, 0);
}

#[test]
fn scalar_fields_take_their_other_forms() {
    assert_eq!(
        ok("user: 1000\n").user,
        Some(User {
            uid: 1000,
            gid: None
        })
    );
    assert_eq!(ok("user: \"0\"\n").user.unwrap().uid, 0);
    assert_eq!(ok("network: isolated\n").network, Network::Isolated);
    assert_eq!(
        ok("restart: {policy: never}\n").restart.policy,
        RestartPolicy::Never
    );
    assert_eq!(
        ok("restart: {policy: always}\n").restart.backoff,
        Backoff::default()
    );
    assert_eq!(
        ok("spread: {}\n").spread.unwrap().topology,
        TopologySpec::Node
    );
    assert_eq!(ok("spread: {topology: rack}\n").spread.unwrap().max_skew, 1);
    assert_eq!(ok("replicas: 0\n").replicas, 0);
    let probe = ok("readiness: {tcp: {port: 5432}}\n").readiness.unwrap();
    assert_eq!(probe.check, ProbeCheck::Tcp { port: 5432 });
    let probe = ok("readiness: {http: {port: 80}}\n").readiness.unwrap();
    assert_eq!(
        probe.check,
        ProbeCheck::Http {
            port: 80,
            path: "/".into()
        }
    );
    // An empty YAML value is the default.
    assert_eq!(ok("replicas:\ncommand:\n").replicas, 1);
    // A YAML flow mapping starts like JSON and is still read.
    assert_eq!(
        parse("{name: web, source: {rootfs: /x}}").unwrap().name,
        "web"
    );
}

#[test]
fn update_percentages_round_as_kubernetes_does() {
    let update = |surge: Amount, unavailable: Amount| UpdateSpec {
        max_surge: surge,
        max_unavailable: unavailable,
    };
    let pct = Amount::Percent;
    let n = Amount::Count;
    assert_eq!(update(pct(25), pct(25)).resolve(10), (3, 2));
    assert_eq!(update(pct(25), pct(25)).resolve(3), (1, 0));
    assert_eq!(update(pct(100), pct(0)).resolve(3), (3, 0));
    assert_eq!(update(n(2), n(1)).resolve(5), (2, 1));
    assert_eq!(UpdateSpec::default().resolve(3), (1, 0));
    // Both coming to 0 would stall the update: one may be unavailable.
    assert_eq!(update(n(0), pct(25)).resolve(3), (0, 1));
}

#[test]
fn unknown_fields_are_problems_wherever_they_are() {
    let found = problems(
        "replica: 3\nresources: {requests: {cpus: 1}}\nreadiness: {tcp: {port: 1, host: x}}\n",
    );
    let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        ["resources.requests.cpus", "readiness.tcp.host", "replica"]
    );
    assert!(found[0].1.contains("expected one of cpu, memory, pids"));
    assert!(found[2]
        .1
        .contains("unknown field: expected one of kind, name, labels, source"));
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let found = parse(
        "name: Web_1\n\
         source: {rootfs: srv/busybox}\n\
         resources: {limits: {memory: 64Q}}\n\
         replicas: -1\n\
         update: {max_surge: 0, max_unavailable: 0}\n",
    )
    .unwrap_err();
    let paths: Vec<&str> = found.list().iter().map(|p| p.path.as_str()).collect();
    assert_eq!(found.list().len(), 5, "{found}");
    for path in [
        "name",
        "source.rootfs",
        "resources.limits.memory",
        "replicas",
        "update",
    ] {
        assert!(paths.contains(&path), "{path} missing from\n{found}");
    }
    assert!(found.to_string().contains(
        "resources.limits.memory: \"64Q\" is not a memory quantity: use bytes or a suffix (k, M, G, Ki, Mi, Gi)"
    ));
    assert_eq!(found.to_string().lines().count(), 5);
    assert_eq!(
        paths,
        [
            "name",
            "source.rootfs",
            "resources.limits.memory",
            "replicas",
            "update"
        ]
    );
}

/// The text between "```LANG\n" following `after` in SPEC.md and the closing fence.
fn spec_md_block(after: &str, lang: &str) -> &'static str {
    let doc = include_str!("../../SPEC.md");
    let rest = &doc[doc.find(after).unwrap()..];
    let start = rest.find(&format!("```{lang}\n")).unwrap() + lang.len() + 4;
    let len = rest[start..].find("```").unwrap();
    &rest[start..start + len]
}

#[test]
fn spec_md_shows_what_parse_does() {
    let example = parse(spec_md_block("## Example", "yaml")).unwrap();
    assert_eq!(
        example,
        parse(include_str!("../../examples/web.yaml")).unwrap()
    );
    let found = parse(
        "name: Web_1\n\
         source: {rootfs: srv/busybox}\n\
         resources: {limits: {memory: 64Q}}\n\
         replicas: -1\n\
         update: {max_surge: 0, max_unavailable: 0}\n",
    )
    .unwrap_err();
    assert_eq!(
        format!("{found}\n"),
        spec_md_block("every** problem", "text")
    );
}

#[test]
fn syntax_errors_are_one_problem_with_line_and_column() {
    for text in [
        "name: web\nsource: [unclosed\n",
        "name: web\n  bad: indent\n",
        "{\"name\": \"web\",\n \"source\": {\"rootfs\": \"/x\"}",
    ] {
        let found = parse(text).unwrap_err();
        assert_eq!(found.list().len(), 1, "{text}: {found}");
        let problem = &found.list()[0];
        assert!(
            problem.path.starts_with("line ") && problem.path.contains(", column "),
            "{text}: {found}"
        );
        let (line, column) = problem.path[5..]
            .split_once(", column ")
            .expect("line, column");
        assert!(
            !problem
                .message
                .contains(&format!(" at line {line} column {column}")),
            "the place is said twice: {found}"
        );
    }
    assert_eq!(
        parse("name: web\nreplicas: 3\n  bad: [\n")
            .unwrap_err()
            .to_string(),
        "line 3, column 6: the spec is not valid YAML: mapping values are not allowed in this \
         context"
    );
    assert!(parse("{\"name\": \"web\"")
        .unwrap_err()
        .to_string()
        .starts_with("line 1, column 14: the spec is not valid JSON: EOF while parsing an object"));
    // Trailing commas are fine in YAML's flow style, which JSON-looking text falls back to.
    assert!(parse("{\"name\": \"web\", \"source\": {\"rootfs\": \"/x\"},}").is_ok());
    assert!(parse("  \n").unwrap_err().to_string().contains("empty"));
    assert!(parse("- a\n- b\n")
        .unwrap_err()
        .to_string()
        .contains("the spec must be a mapping"));
}

#[test]
fn required_fields() {
    let found = parse("replicas: 2\n").unwrap_err();
    let list: Vec<String> = found.list().iter().map(|p| p.to_string()).collect();
    assert_eq!(list, ["name: is required", "source: is required"]);
}

/// Each rule of SPEC.md's "Validation", broken alone.
#[test]
fn every_rule_is_checked() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str)] = &[
        // name
        ("name: \"1web\"", "name", "not a workload name"),
        ("name: web-", "name", "not a workload name"),
        ("name: we.b", "name", "not a workload name"),
        ("name: \"\"", "name", "not a workload name"),
        ("name: 7", "name", "must be a string"),
        // source
        ("source: {rootfs: relative}", "source.rootfs", "absolute path"),
        ("source: {rootfs: /a, image: {path: /b}}", "source", "not both"),
        ("source: {}", "source", "needs `rootfs"),
        ("source: {image: {reference: x}}", "source.image.path", "is required"),
        ("source: {image: {path: x.tar}}", "source.image.path", "absolute path"),
        ("source: {image: {path: /x.tar, reference: \"\"}}", "source.image.reference", "must not be empty"),
        ("source: /srv", "source", "must be a mapping"),
        ("source: {image: \"a//b:1\"}", "source.image", "[registry[:port]/]name"),
        ("source: {image: \"a:1:2\"}", "source.image", "not an image reference"),
        ("source: {image: a, pull: sometimes}", "source.pull", "not one of if-not-present, always, never"),
        ("source: {rootfs: /a, pull: always}", "source.pull", "only to a registry image"),
        // command, env, cwd, user, network
        ("command: httpd -f", "command", "must be a list"),
        ("command: [httpd, 8080]", "command[1]", "quote it (\"8080\")"),
        ("env: {PORT: 8080}", "env.PORT", "quote it"),
        ("env: {\"A=B\": x}", "env.A=B", "variable name"),
        ("env: [A=B]", "env", "mapping of names to strings"),
        ("cwd: srv", "cwd", "absolute path"),
        ("user: nobody", "user", "numeric"),
        ("user: \"1000:\"", "user", "numeric"),
        ("user: 99999999999", "user", "numeric"),
        ("network: bridge", "network", "not one of isolated, host"),
        // resources
        ("resources: {requests: {cpu: lots}}", "resources.requests.cpu", "not a cpu quantity"),
        ("resources: {requests: {pids: many}}", "resources.requests.pids", "process count"),
        ("resources: {requests: {memory: 1Gi}, limits: {memory: 512Mi}}", "resources.limits.memory", "512Mi is less than the request (1Gi)"),
        ("resources: {requests: {cpu: 2}, limits: {cpu: 500m}}", "resources.limits.cpu", "500m is less than the request (2)"),
        ("resources: {requests: {pids: 10}, limits: {pids: 5}}", "resources.limits.pids", "less than the request"),
        ("resources: {limits: {memory: 0}}", "resources.limits.memory", "a limit of 0"),
        ("resources: {cpu: 1}", "resources.cpu", "unknown field"),
        // counts
        ("replicas: 1.5", "replicas", "not a whole number"),
        ("priority: 3000000000", "priority", "not a whole number from"),
        // placement
        ("node_selector: {\"\": x}", "node_selector.", "not a label key"),
        ("node_selector: {zone: 1}", "node_selector.zone", "must be a string"),
        ("affinity: [{workload: DB}]", "affinity[0].workload", "not a workload name"),
        ("affinity: [{topology: zone}]", "affinity[0].workload", "is required"),
        ("affinity: {workload: db}", "affinity", "must be a list"),
        ("anti_affinity: [{workload: db, topology: \"a zone\"}]", "anti_affinity[0].topology", "not a label key"),
        ("affinity: [{workload: db}]\nanti_affinity: [{workload: db}]", "anti_affinity[0]", "contradicts affinity[0]"),
        ("spread: {topology: zone, max_skew: 0}", "spread.max_skew", "at least 1"),
        ("spread: zone", "spread", "must be a mapping"),
        ("tolerations: [{value: x}]", "tolerations[0].value", "needs a key"),
        ("tolerations: [{key: gpu, effect: NoPlace}]", "tolerations[0].effect", "not one of NoSchedule, PreferNoSchedule, NoExecute"),
        ("tolerations: [{key: \"\"}]", "tolerations[0].key", "not a label key"),
        // depends_on
        ("depends_on: [web]", "depends_on[0]", "cannot depend on itself"),
        ("depends_on: [db, db]", "depends_on[1]", "listed twice"),
        ("depends_on: [Db]", "depends_on[0]", "not a workload name"),
        // restart
        ("restart: {policy: sometimes}", "restart.policy", "not one of always, on-failure, never"),
        ("restart: {backoff: {initial: 0s}}", "restart.backoff.initial", "longer than 0s"),
        ("restart: {backoff: {initial: 10s, max: 5s}}", "restart.backoff.max", "at least `restart.backoff.initial`"),
        ("restart: {backoff: {max: 5}}", "restart.backoff.max", "not a duration"),
        // probes
        ("liveness: {period: 1s}", "liveness", "needs one check"),
        ("liveness: {tcp: {port: 1}, http: {port: 1}}", "liveness", "not several (tcp, http)"),
        ("liveness: {exec: {command: []}}", "liveness.exec.command", "must name a command"),
        ("liveness: {exec: {}}", "liveness.exec.command", "is required"),
        ("liveness: {tcp: {port: 0}}", "liveness.tcp.port", "from 1 to 65535"),
        ("liveness: {tcp: {port: 70000}}", "liveness.tcp.port", "not a port number"),
        ("readiness: {http: {port: 80, path: healthz}}", "readiness.http.path", "start with '/'"),
        ("readiness: {http: {path: /}}", "readiness.http.port", "is required"),
        ("readiness: {tcp: {port: 1}, period: 0s}", "readiness.period", "longer than 0s"),
        ("readiness: {tcp: {port: 1}, timeout: 500ms}", "readiness.timeout", "at least 1s"),
        ("readiness: {tcp: {port: 1}, timeout: 1500ms}", "readiness.timeout", "whole seconds"),
        ("readiness: {tcp: {port: 1}, failure_threshold: 0}", "readiness.failure_threshold", "at least 1"),
        ("readiness: {tcp: {port: 1}, success_threshold: 0}", "readiness.success_threshold", "at least 1"),
        ("liveness: {tcp: {port: 1}, success_threshold: 2}", "liveness.success_threshold", "must be 1 for liveness"),
        ("readiness: {tcp: {port: 1}, initial_delay: soon}", "readiness.initial_delay", "not a duration"),
        // update, stop_timeout
        ("update: {max_surge: 0, max_unavailable: \"0%\"}", "update", "cannot both be 0"),
        ("update: {max_surge: \"150%\"}", "update.max_surge", "more than 100%"),
        ("update: {max_unavailable: \"x%\"}", "update.max_unavailable", "neither a count"),
        ("update: {max_surge: -1}", "update.max_surge", "neither a count"),
        ("stop_timeout: 2500ms", "stop_timeout", "whole seconds"),
        ("stop_timeout: 10", "stop_timeout", "not a duration"),
    ];
    for (extra, path, part) in cases {
        one_problem(&format!("{extra}\n"), path, part);
    }
}

#[test]
fn a_field_that_cannot_be_read_is_not_judged_again() {
    // The bad request is reported once, not again as a limit below it.
    one_problem(
        "resources: {requests: {memory: lots}, limits: {memory: 1Mi}}\n",
        "resources.requests.memory",
        "not a memory quantity",
    );
}

#[test]
fn the_example_is_valid() {
    let spec = parse(include_str!("../../examples/web.yaml")).unwrap();
    assert_eq!(spec.name, "web");
    assert_eq!(spec.replicas, 3);
    assert_eq!(
        spec.spread,
        Some(SpreadSpec {
            topology: TopologySpec::Label("zone".into()),
            max_skew: 1
        })
    );
    assert!(matches!(
        spec.readiness.as_ref().unwrap().check,
        ProbeCheck::Http { port: 8080, .. }
    ));
    assert!(spec.command.join(" ").contains("httpd -f -p 8080"));
    assert!(
        matches!(spec.source, Source::Rootfs(ref dir) if dir.ends_with("rootfs-fixtures/out/busybox"))
    );
}

#[test]
fn instance_spec_carries_placement_fields() {
    let spec = parse(FULL_YAML).unwrap();
    let instance = spec.instance_spec();
    assert_eq!(instance.workload, "shop");
    assert_eq!(instance.requests, Resources::new(250, 64 << 20, 50));
    assert_eq!(instance.limits, Resources::new(1000, 128 << 20, 100));
    assert_eq!(instance.priority, -5);
    assert_eq!(instance.node_selector, spec.node_selector);
    assert_eq!(
        instance.affinity,
        [
            model::WorkloadTerm {
                workload: "cache".into(),
                topology: Topology::Node
            },
            model::WorkloadTerm {
                workload: "db".into(),
                topology: Topology::Label("zone".into())
            },
        ]
    );
    assert_eq!(instance.anti_affinity[0].topology, Topology::Node);
    assert_eq!(
        instance.spread,
        Some(model::Spread {
            topology: Topology::Label("zone".into()),
            max_skew: 2
        })
    );
    assert_eq!(
        instance.tolerations[0],
        model::Toleration {
            key: Some("gpu".into()),
            value: Some("yes".into()),
            effect: Some(TaintEffect::NoSchedule)
        }
    );
    assert_eq!(instance.tolerations[2].effect, Some(TaintEffect::NoExecute));
    // Unlimited is 0 for placement.
    assert_eq!(ok("").instance_spec().limits, Resources::ZERO);
}

#[test]
fn run_request_carries_the_process_and_limits() {
    let spec = parse(FULL_YAML).unwrap();
    let labels = BTreeMap::from([("mini-sched/workload".to_string(), "shop".to_string())]);
    let request = spec.run_request("shop-7", labels.clone());
    assert_eq!(request.id, "shop-7");
    assert_eq!(request.source, spec.source);
    assert_eq!(request.process.args, ["/bin/shop", "--port", "8080"]);
    assert_eq!(request.process.env, ["EMPTY=", "MODE=prod"]);
    assert_eq!(request.process.cwd.as_deref(), Some("/srv"));
    assert_eq!(
        (request.process.uid, request.process.gid),
        (Some(1000), Some(100))
    );
    assert_eq!(
        request.resources,
        protocol::Resources {
            memory_bytes: Some(128 << 20),
            cpu_millis: Some(1000),
            pids: Some(100)
        }
    );
    assert_eq!(request.network, Network::Host);
    assert_eq!(request.labels, labels);
    // The agent accepts what it is sent: the request passes its own strict parsing.
    let wire = serde_json::to_string(&request).unwrap();
    assert_eq!(
        serde_json::from_str::<protocol::RunRequest>(&wire).unwrap(),
        request
    );

    let minimal = ok("").run_request("web-1", BTreeMap::new());
    assert_eq!(minimal.resources, protocol::Resources::default());
    assert_eq!(minimal.process, protocol::ProcessSpec::default());
}

#[test]
fn probes_convert_to_the_agents_form() {
    let spec = parse(FULL_YAML).unwrap();
    assert_eq!(
        spec.probe(ProbeKind::Liveness),
        Some(Probe::Exec {
            args: vec!["/bin/check".into(), "--quick".into()],
            timeout_secs: Some(2)
        })
    );
    assert_eq!(
        spec.probe(ProbeKind::Readiness),
        Some(Probe::Http {
            port: 8080,
            path: Some("/healthz".into()),
            host: None,
            timeout_secs: Some(1)
        })
    );
    let tcp = ok("liveness: {tcp: {port: 6379}}\n");
    assert_eq!(
        tcp.probe(ProbeKind::Liveness),
        Some(Probe::Tcp {
            port: 6379,
            host: None,
            timeout_secs: Some(1)
        })
    );
    assert_eq!(tcp.probe(ProbeKind::Readiness), None);
}

#[test]
fn a_template_is_everything_but_count_order_priority_and_update() {
    let base = parse(FULL_YAML).unwrap();
    let same = [
        "replicas: 9",
        "priority: 100",
        "depends_on: [cache]",
        "update: {max_surge: 3, max_unavailable: 1}",
    ];
    for change in same {
        let other = edited(&base, change);
        assert_ne!(other, base, "{change}");
        assert!(base.template_eq(&other), "{change}");
    }
    let different = [
        "command: [/bin/shop]",
        "env: {MODE: test}",
        "resources: {limits: {memory: 256Mi}}",
        "node_selector: {disk: hdd}",
        "liveness: {tcp: {port: 1}}",
        "stop_timeout: 5s",
        "network: isolated",
    ];
    for change in different {
        assert!(!base.template_eq(&edited(&base, change)), "{change}");
    }
    assert!(base.template_eq(&base.clone()));
}

/// `spec` with one top-level field replaced by `change` (`field: value` in YAML).
fn edited(spec: &WorkloadSpec, change: &str) -> WorkloadSpec {
    let mut value = serde_json::to_value(spec).unwrap();
    let patch: serde_json::Value = serde_norway::from_str(change).unwrap();
    for (key, v) in patch.as_object().unwrap() {
        value[key] = v.clone();
    }
    serde_json::from_value(value).unwrap()
}

#[test]
fn a_registry_image_takes_kubernetes_pull_defaults_and_round_trips() {
    let source = |text: &str| ok(&format!("source: {text}")).source;
    let registry = |reference: &str, pull| {
        Source::Registry(protocol::RegistryImage {
            reference: reference.into(),
            pull: Some(pull),
        })
    };
    use protocol::PullPolicy::{Always, IfNotPresent, Never};
    assert_eq!(
        source("{image: \"127.0.0.1:5000/test/busybox:1\"}"),
        registry("127.0.0.1:5000/test/busybox:1", IfNotPresent)
    );
    assert_eq!(source("{image: busybox}"), registry("busybox", Always));
    assert_eq!(
        source("{image: \"busybox:latest\"}"),
        registry("busybox:latest", Always)
    );
    assert_eq!(
        source("{image: busybox, pull: never}"),
        registry("busybox", Never)
    );
    let pinned = format!("busybox@sha256:{}", "a".repeat(64));
    assert_eq!(
        source(&format!("{{image: \"{pinned}\"}}")),
        registry(&pinned, IfNotPresent)
    );
    // The spec's own form: `image: REF` and `pull`, read back to the same spec.
    let spec = ok("source: {image: \"reg:5000/team/app:1.4\", pull: always}");
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(
        json["source"],
        serde_json::json!({"image": "reg:5000/team/app:1.4", "pull": "always"})
    );
    assert_eq!(parse(&json.to_string()).unwrap(), spec);
    // The agents get the protocol's form.
    let request = spec.run_request("web-1", BTreeMap::new());
    assert_eq!(request.source, registry("reg:5000/team/app:1.4", Always));
}

#[test]
fn host_ports_are_read_checked_and_sent_to_the_agent() {
    let spec = ok("network: cluster\nports:\n  - {container_port: 8080, host_port: 30080}\n  - {container_port: 53, host_port: 30053, protocol: udp}\n");
    assert_eq!(spec.ports.len(), 2);
    assert_eq!(spec.ports[1].protocol, protocol::PortProtocol::Udp);
    let request = spec.run_request("web-1", BTreeMap::new());
    assert_eq!(request.ports, spec.ports);
    // Kept apart on nodes, and written back in the form it was read.
    assert!(spec
        .instance_spec()
        .anti_affinity
        .iter()
        .any(|t| t.workload == spec.name && t.topology == Topology::Node));
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(json["ports"][0]["host_port"], 30080);
    let back: WorkloadSpec = serde_json::from_value(json).unwrap();
    assert_eq!(back, spec);
    one_problem(
        "network: host\nports: [{container_port: 80, host_port: 8080}]\n",
        "ports",
        "needs network: cluster",
    );
    one_problem(
        "network: cluster\nports: [{container_port: 80, host_port: 8080}, {container_port: 81, host_port: 8080}]\n",
        "ports[1]",
        "given twice",
    );
    one_problem(
        "network: cluster\nports: [{container_port: 0, host_port: 8080}]\n",
        "ports[0]",
        "from 1 to 65535",
    );
    let found = problems("network: cluster\nports: [{protocol: sctp}]\n");
    assert_eq!(found.len(), 3, "{found:?}");
}
