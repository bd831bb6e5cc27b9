//! `autoscale:`: the bounds, the target and the behavior of horizontal autoscaling (as a
//! Kubernetes HorizontalPodAutoscaler's), read and checked here; the decisions are
//! [`crate::autoscale`]'s.

use std::time::Duration;

use serde::{Serialize, Serializer};
use serde_json::Value;

use super::problems::{field, Collector};
use super::quantity::show;
use super::read::Reader;
use super::{duration, Amount, WorkloadSpec};

/// The most instances autoscaling may ask for: each decision's step and the daemon's work per
/// evaluation stay bounded (`replicas` by hand may go to [`super::limits::MAX_REPLICAS`]).
pub const MAX_AUTOSCALE_REPLICAS: u32 = 1_000;
/// The highest utilization target, percent of the request (as Kubernetes' HPA allows
/// targets above 100% for bursting workloads, but no further than this).
pub const MAX_TARGET_PERCENT: u32 = 1_000;
/// The longest stabilization window (Kubernetes' limit: one hour).
pub const MAX_WINDOW: Duration = Duration::from_secs(60 * 60);
/// The longest period a step limit counts over (Kubernetes' limit: 30 minutes).
pub const MAX_PERIOD: Duration = Duration::from_secs(30 * 60);

/// Horizontal autoscaling: keep the measured metric near the target by changing the replica
/// count between `min` and `max`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AutoscaleSpec {
    /// The fewest instances (at least 1).
    pub min: u32,
    /// The most instances (at most [`MAX_AUTOSCALE_REPLICAS`]).
    pub max: u32,
    /// What is measured and the value to keep it at.
    pub target: Target,
    /// How fast the count may follow the measurements.
    pub behavior: Behavior,
}

/// The metric autoscaling follows and the value it aims at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Mean cpu use of the ready instances, percent of their cpu request.
    Cpu(u32),
    /// Mean working set of the ready instances, percent of their memory request.
    Memory(u32),
    /// Mean pressure stall (`some avg10`, percent) of a resource on the nodes running ready
    /// instances.
    Pressure(PressureResource, u32),
}

/// A resource whose pressure stall information (PSI) is followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PressureResource {
    /// `/proc/pressure/cpu`.
    Cpu,
    /// `/proc/pressure/memory`.
    Memory,
}

impl Target {
    /// The metric's name as the spec writes it (`cpu`, `memory`, `pressure.cpu`, ...).
    pub fn metric(&self) -> &'static str {
        match self {
            Target::Cpu(_) => "cpu",
            Target::Memory(_) => "memory",
            Target::Pressure(PressureResource::Cpu, _) => "pressure.cpu",
            Target::Pressure(PressureResource::Memory, _) => "pressure.memory",
        }
    }

    /// The target value, percent.
    pub fn percent(&self) -> u32 {
        match *self {
            Target::Cpu(p) | Target::Memory(p) | Target::Pressure(_, p) => p,
        }
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let percent = format!("{}%", self.percent());
        let form = match self {
            Target::Cpu(_) => serde_json::json!({ "cpu": percent }),
            Target::Memory(_) => serde_json::json!({ "memory": percent }),
            Target::Pressure(PressureResource::Cpu, _) => {
                serde_json::json!({ "pressure": { "cpu": percent } })
            }
            Target::Pressure(PressureResource::Memory, _) => {
                serde_json::json!({ "pressure": { "memory": percent } })
            }
        };
        form.serialize(serializer)
    }
}

/// The rules for each direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Behavior {
    /// Growing (default: no window, at most the larger of 4 instances and 100% per 15s).
    pub scale_up: Rules,
    /// Shrinking (default: a 5 minute window, at most 100% per 15s).
    pub scale_down: Rules,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            scale_up: Rules {
                window: Duration::ZERO,
                ..Rules::default()
            },
            scale_down: Rules {
                window: Duration::from_secs(300),
                ..Rules::default()
            },
        }
    }
}

/// How one direction follows the recommendations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rules {
    /// Stabilization: scaling up follows the lowest recommendation of this window, scaling
    /// down the highest.
    #[serde(serialize_with = "duration")]
    pub window: Duration,
    /// No change while the metric is within this many percent of the target (default 10%).
    #[serde(serialize_with = "percent")]
    pub tolerance: u32,
    /// The most instances added or removed per `period`: a count or a percentage of the count
    /// at the period's start; `None` is Kubernetes' default (up: the larger of 4 and 100%;
    /// down: 100%).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_step: Option<Amount>,
    /// What `max_step` counts over (default 15s).
    #[serde(serialize_with = "duration")]
    pub period: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            window: Duration::ZERO,
            tolerance: 10,
            max_step: None,
            period: Duration::from_secs(15),
        }
    }
}

fn percent<S: Serializer>(value: &u32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_args!("{value}%"))
}

impl Reader {
    /// `autoscale: {min, max, target, behavior}`.
    pub(super) fn autoscale(&mut self, value: &Value, path: &str) -> Option<AutoscaleSpec> {
        let m = self.mapping(value, path, &["min", "max", "target", "behavior"])?;
        let min = self.optional(m, path, "min", Self::uint).unwrap_or(1);
        let max = self.required(m, path, "max", Self::uint);
        let target = self.required(m, path, "target", Self::target);
        let behavior = self
            .optional(m, path, "behavior", Self::behavior)
            .unwrap_or_default();
        Some(AutoscaleSpec {
            min,
            max: max.unwrap_or(min),
            target: target.unwrap_or(Target::Cpu(100)),
            behavior,
        })
    }

    fn target(&mut self, value: &Value, path: &str) -> Option<Target> {
        let m = self.mapping(value, path, &["cpu", "memory", "pressure"])?;
        let given: Vec<&String> = m.keys().collect();
        if given.len() != 1 {
            self.problems.add(
                path,
                "give one metric: `{cpu: 60%}`, `{memory: 70%}` or `{pressure: {cpu: 20%}}`",
            );
            return None;
        }
        match given[0].as_str() {
            "cpu" => self
                .optional(m, path, "cpu", Self::percent)
                .map(Target::Cpu),
            "memory" => self
                .optional(m, path, "memory", Self::percent)
                .map(Target::Memory),
            "pressure" => self.optional(m, path, "pressure", |r, v, p| {
                let m = r.mapping(v, p, &["cpu", "memory"])?;
                match (m.contains_key("cpu"), m.contains_key("memory")) {
                    (true, false) => r
                        .optional(m, p, "cpu", Self::percent)
                        .map(|n| Target::Pressure(PressureResource::Cpu, n)),
                    (false, true) => r
                        .optional(m, p, "memory", Self::percent)
                        .map(|n| Target::Pressure(PressureResource::Memory, n)),
                    _ => {
                        r.problems
                            .add(p, "give one resource: `{cpu: 20%}` or `{memory: 20%}`");
                        None
                    }
                }
            }),
            // An unknown key was reported by `mapping`.
            _ => None,
        }
    }

    /// A percentage written `"60%"`.
    fn percent(&mut self, value: &Value, path: &str) -> Option<u32> {
        let n = value
            .as_str()
            .and_then(|s| s.strip_suffix('%'))
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse().ok());
        if n.is_none() {
            self.problems.add(
                path,
                format!("{} is not a percentage: write it \"60%\"", show(value)),
            );
        }
        n
    }

    fn behavior(&mut self, value: &Value, path: &str) -> Option<Behavior> {
        let m = self.mapping(value, path, &["scale_up", "scale_down"])?;
        let default = Behavior::default();
        Some(Behavior {
            scale_up: self
                .optional(m, path, "scale_up", |r, v, p| {
                    r.rules(v, p, default.scale_up)
                })
                .unwrap_or(default.scale_up),
            scale_down: self
                .optional(m, path, "scale_down", |r, v, p| {
                    r.rules(v, p, default.scale_down)
                })
                .unwrap_or(default.scale_down),
        })
    }

    fn rules(&mut self, value: &Value, path: &str, default: Rules) -> Option<Rules> {
        let m = self.mapping(value, path, &["window", "tolerance", "max_step", "period"])?;
        Some(Rules {
            window: self
                .optional(m, path, "window", Self::duration)
                .unwrap_or(default.window),
            tolerance: self
                .optional(m, path, "tolerance", Self::percent)
                .unwrap_or(default.tolerance),
            max_step: self.optional(m, path, "max_step", Self::amount),
            period: self
                .optional(m, path, "period", Self::duration)
                .unwrap_or(default.period),
        })
    }
}

/// Records every breach of the rules of `autoscale` (SPEC.md, "Autoscaling").
pub(super) fn check(spec: &WorkloadSpec, out: &mut Collector) {
    let Some(a) = &spec.autoscale else { return };
    if a.min == 0 {
        out.add(
            "autoscale.min",
            "must be at least 1: with no instance there is nothing to measure",
        );
    }
    if a.min > a.max {
        out.add(
            "autoscale.min",
            format!("{} is more than `autoscale.max` ({})", a.min, a.max),
        );
    }
    if a.max > MAX_AUTOSCALE_REPLICAS {
        out.add(
            "autoscale.max",
            format!(
                "{} is more than autoscaling may run, {MAX_AUTOSCALE_REPLICAS}",
                a.max
            ),
        );
    }
    let path = format!("autoscale.target.{}", a.target.metric());
    let p = a.target.percent();
    let highest = match a.target {
        Target::Pressure(..) => 100,
        _ => MAX_TARGET_PERCENT,
    };
    if p == 0 || p > highest {
        out.add(&path, format!("{p}% is outside 1% to {highest}%"));
    }
    let requests = &spec.resources.requests;
    match a.target {
        Target::Cpu(_) if requests.cpu == 0 => out.add(
            &path,
            "a cpu target is a percentage of the cpu request: set `resources.requests.cpu`",
        ),
        Target::Memory(_) if requests.memory == 0 => out.add(
            &path,
            "a memory target is a percentage of the memory request: set `resources.requests.memory`",
        ),
        _ => {}
    }
    let directions = [
        ("scale_up", a.behavior.scale_up),
        ("scale_down", a.behavior.scale_down),
    ];
    for (name, rules) in directions {
        let path = field("autoscale.behavior", name);
        if rules.window > MAX_WINDOW {
            out.add(&field(&path, "window"), "must be at most 1h");
        }
        if rules.tolerance >= 100 {
            out.add(&field(&path, "tolerance"), "must be below 100%");
        }
        if rules.period.is_zero() || rules.period > MAX_PERIOD {
            out.add(
                &field(&path, "period"),
                "must be longer than 0s, at most 30m",
            );
        }
        match rules.max_step {
            Some(Amount::Count(0) | Amount::Percent(0)) => {
                out.add(&field(&path, "max_step"), "must allow at least 1 instance")
            }
            Some(Amount::Count(n)) if n > MAX_AUTOSCALE_REPLICAS => out.add(
                &field(&path, "max_step"),
                format!("must be at most {MAX_AUTOSCALE_REPLICAS}"),
            ),
            Some(Amount::Percent(n)) if n > MAX_TARGET_PERCENT => out.add(
                &field(&path, "max_step"),
                format!("must be at most {MAX_TARGET_PERCENT}%"),
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse;

    const BASE: &str = "name: web\nsource: {rootfs: /x}\nresources: {requests: {cpu: 100m}}\n";

    fn problems(extra: &str) -> Vec<String> {
        parse(&format!("{BASE}{extra}"))
            .unwrap_err()
            .list()
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn defaults_are_kubernetes_and_the_spec_reads_back_equal() {
        let spec = parse(&format!(
            "{BASE}autoscale: {{max: 4, target: {{cpu: 50%}}}}\n"
        ))
        .unwrap();
        let a = spec.autoscale.clone().unwrap();
        assert_eq!((a.min, a.max, a.target), (1, 4, Target::Cpu(50)));
        assert_eq!(a.behavior.scale_up.window, Duration::ZERO);
        assert_eq!(a.behavior.scale_down.window, Duration::from_secs(300));
        assert_eq!(a.behavior.scale_up.tolerance, 10);
        assert_eq!(a.behavior.scale_down.period, Duration::from_secs(15));
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(parse(&json).unwrap(), spec);
        let pressure = parse(
            "name: web\nsource: {rootfs: /x}\nautoscale:\n  max: 3\n  target: {pressure: {memory: 20%}}\n  behavior: {scale_down: {window: 30s, max_step: \"50%\"}}\n",
        )
        .unwrap();
        let a = pressure.autoscale.clone().unwrap();
        assert_eq!(a.target, Target::Pressure(PressureResource::Memory, 20));
        assert_eq!(a.behavior.scale_down.max_step, Some(Amount::Percent(50)));
        let json = serde_json::to_string(&pressure).unwrap();
        assert_eq!(parse(&json).unwrap(), pressure);
    }

    #[test]
    fn every_problem_is_listed() {
        let found = problems(
            "autoscale:\n  min: 1002\n  max: 1001\n  target: {memory: 0%}\n  behavior:\n    scale_up: {window: 2h, tolerance: 100%, period: 0s, max_step: 0}\n",
        );
        let expected = [
            "autoscale.min: 1002 is more than `autoscale.max` (1001)",
            "autoscale.max: 1001 is more than autoscaling may run, 1000",
            // One problem a field: the range, before the missing memory request.
            "autoscale.target.memory: 0% is outside 1% to 1000%",
            "autoscale.behavior.scale_up.window: must be at most 1h",
            "autoscale.behavior.scale_up.tolerance: must be below 100%",
            "autoscale.behavior.scale_up.period: must be longer than 0s",
            "autoscale.behavior.scale_up.max_step: must allow at least 1 instance",
        ];
        for e in expected {
            assert!(
                found.iter().any(|f| f.starts_with(e)),
                "{e} not in {found:#?}"
            );
        }
        assert_eq!(found.len(), expected.len(), "{found:#?}");
    }

    #[test]
    fn targets_out_of_range_unknown_or_without_a_request_are_refused() {
        let found = problems("autoscale: {min: 0, max: 2, target: {cpu: 1001%}}\n");
        assert_eq!(
            found,
            [
                "autoscale.min: must be at least 1: with no instance there is nothing to measure",
                "autoscale.target.cpu: 1001% is outside 1% to 1000%",
            ]
        );
        let found = problems("autoscale: {max: 2, target: {rps: 10%}}\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with(
            "autoscale.target.rps: unknown field: expected one of cpu, memory, pressure"
        ));
        let found = problems("autoscale: {max: 2, target: {pressure: {cpu: 101%}}}\n");
        assert_eq!(
            found,
            ["autoscale.target.pressure.cpu: 101% is outside 1% to 100%"]
        );
        let found =
            parse("name: web\nsource: {rootfs: /x}\nautoscale: {max: 2, target: {cpu: 60%}}\n")
                .unwrap_err();
        assert_eq!(
            found.to_string(),
            "autoscale.target.cpu: a cpu target is a percentage of the cpu request: set `resources.requests.cpu`"
        );
        let found = problems("autoscale: {max: 2, target: {cpu: 60}}\n");
        assert_eq!(
            found,
            ["autoscale.target.cpu: 60 is not a percentage: write it \"60%\""]
        );
    }
}
