//! Horizontal autoscaling: once per heartbeat interval, each autoscaled workload's instances
//! are measured from the heartbeats' container stats (or their nodes' pressure), the replica
//! rule and the windows ([`crate::autoscale`]) decide a count, and the workload's replicas
//! become that count, which [`super::replicas`] then carries out like a `scale`, rolling
//! update or not (a rollout simply targets the new count, as a Deployment under a
//! HorizontalPodAutoscaler does).
//!
//! Nothing is decided while a `scale` by hand has paused autoscaling (until the next
//! `apply`), nor while one of the workload's instances is being migrated (drain, rebalancer,
//! `migrate`): the move itself changes what is measured. Instances of a lost node are not
//! running, so they are not measured at all (never as 0); instances whose node has been quiet
//! for a few heartbeats count as missing, assumed against the change.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use super::Daemon;
use crate::api::Phase;
use crate::autoscale::status::DECISIONS_KEPT;
use crate::autoscale::{
    propose, AutoscaleStatus, Decision, History, Measurement, Proposal, Rightsizing, Tolerance,
    UsageHistograms,
};
use crate::spec::quantity::format_duration;
use crate::spec::{AutoscaleSpec, PressureResource, Target};
use crate::state::{rfc3339, State};

/// A measurement older than this many heartbeat intervals is missing.
const FRESH_HEARTBEATS: u32 = 3;

/// One workload's autoscaler: its history, what it last saw, and its usage histograms.
#[derive(Debug)]
pub struct Autoscaler {
    history: History,
    last_evaluation: Option<Instant>,
    /// When the measurement of each instance last added to `usage` was taken.
    sampled: BTreeMap<String, Instant>,
    /// The instances' measured cpu and working set, for the vertical recommendation.
    pub usage: UsageHistograms,
    /// What `describe` shows of the horizontal autoscaling.
    pub status: AutoscaleStatus,
}

impl Autoscaler {
    fn new(now: Instant) -> Autoscaler {
        Autoscaler {
            history: History::default(),
            last_evaluation: None,
            sampled: BTreeMap::new(),
            usage: UsageHistograms::new(now),
            status: AutoscaleStatus::default(),
        }
    }
}

/// The autoscalers by workload name (not stored: a restarted daemon starts its windows and
/// histograms anew).
pub type Autoscalers = BTreeMap<String, Autoscaler>;

/// Adds the instances' new measurements to their workloads' histograms, and evaluates every
/// autoscaled workload whose last evaluation is a heartbeat interval old.
pub fn evaluate_due(daemon: &Daemon, state: &mut State, now: Instant) {
    let interval = daemon.settings.heartbeat_interval;
    let mut autoscalers = std::mem::take(&mut state.autoscalers);
    autoscalers.retain(|name, _| state.workloads.contains_key(name));
    let names: Vec<String> = state
        .workloads
        .values()
        .filter(|w| !w.deleting)
        .map(|w| w.name.clone())
        .collect();
    for name in names {
        let a = autoscalers
            .entry(name.clone())
            .or_insert_with(|| Autoscaler::new(now));
        sample(state, &name, a);
        if state.workloads[&name].spec.autoscale.is_none()
            || a.last_evaluation
                .is_some_and(|t| now.saturating_duration_since(t) < interval)
        {
            continue;
        }
        a.last_evaluation = Some(now);
        evaluate(state, &name, a, interval, now);
    }
    state.autoscalers = autoscalers;
}

/// Adds the measurements of `name`'s running instances taken since the last call.
fn sample(state: &State, name: &str, a: &mut Autoscaler) {
    let mut sampled = BTreeMap::new();
    for i in state.instances_of(name) {
        let u = i.live.usage;
        let Some(at) = u.at else { continue };
        if i.record.phase != Phase::Running || !u.rated {
            continue;
        }
        if a.sampled.get(&i.record.id) != Some(&at) {
            a.usage.add(u.cpu_millis, u.memory_bytes, at);
        }
        sampled.insert(i.record.id.clone(), at);
    }
    a.sampled = sampled;
}

/// The vertical recommendation for workload `name`, once its instances were measured.
pub fn rightsizing(state: &State, name: &str) -> Option<Rightsizing> {
    let w = state.workloads.get(name)?;
    state
        .autoscalers
        .get(name)?
        .usage
        .recommend(&w.spec.resources)
}

fn evaluate(state: &mut State, name: &str, a: &mut Autoscaler, interval: Duration, now: Instant) {
    let w = &state.workloads[name];
    let spec = w.spec.autoscale.clone().expect("autoscaled");
    let current = w.spec.replicas;
    let status = &mut a.status;
    settings(status, &spec, w.autoscale_paused);
    if w.autoscale_paused {
        status.held_by = Some("paused by `scale`; the next `apply` resumes it".into());
        return;
    }
    if let Some(moving) = state
        .instances_of(name)
        .find(|i| i.record.replaced_by.is_some() && !i.record.phase.is_final())
    {
        status.held_by = Some(format!(
            "instance {} is being moved; waiting for the move to end",
            moving.record.id
        ));
        return;
    }
    let m = measure(state, name, &spec, interval, now);
    status.measured_percent = m.mean();
    status.measured = m.values.len() as u32;
    status.missing = m.missing;
    status.unready = m.unready;
    let rules = &spec.behavior;
    let tolerance = Tolerance {
        up: f64::from(rules.scale_up.tolerance) / 100.0,
        down: f64::from(rules.scale_down.tolerance) / 100.0,
    };
    let target = f64::from(spec.target.percent());
    let recommendation = match propose(current, &m, target, tolerance) {
        Proposal::Unknown(why) => {
            status.recommendation = None;
            status.held_by = Some(why);
            // Still within bounds: a count outside them (an apply changed them) moves now.
            if (spec.min..=spec.max).contains(&current) {
                return;
            }
            current
        }
        Proposal::Keep => current,
        Proposal::Replicas(n) => n,
    };
    status.recommendation = Some(recommendation);
    let outcome = a.history.settle(&spec, current, recommendation, now);
    status.desired = Some(outcome.desired);
    status.held_by = outcome.held_by.clone();
    if outcome.desired == current {
        return;
    }
    let measured = match m.mean() {
        Some(mean) => format!(
            "{} {mean:.0}% of {} over {} ready instance(s), target {}%",
            spec.target.metric(),
            basis(&spec.target),
            m.values.len(),
            spec.target.percent()
        ),
        None => format!("outside the bounds {}–{}", spec.min, spec.max),
    };
    let mut reason = format!("{measured}: recommended {recommendation}");
    if let Some(held) = &outcome.held_by {
        reason.push_str(&format!(", {held}"));
    }
    status.decisions.push(Decision {
        time: rfc3339(SystemTime::now()),
        from: current,
        to: outcome.desired,
        reason: reason.clone(),
    });
    if status.decisions.len() > DECISIONS_KEPT {
        status.decisions.remove(0);
    }
    set_replicas(state, name, outcome.desired);
    let verb = if outcome.desired > current {
        "ScaledUp"
    } else {
        "ScaledDown"
    };
    state.event(
        format!("workload/{name}"),
        verb,
        format!("replicas {current} → {}: {reason}", outcome.desired),
    );
}

/// What the percentage is of, for messages.
fn basis(target: &Target) -> &'static str {
    match target {
        Target::Cpu(_) => "the cpu request",
        Target::Memory(_) => "the memory request",
        Target::Pressure(..) => "the time (node pressure)",
    }
}

/// The workload's replica count, in its spec and its current revision's.
fn set_replicas(state: &mut State, name: &str, replicas: u32) {
    let w = state.workloads.get_mut(name).expect("exists");
    w.spec.replicas = replicas;
    if let Some(current) = w.revisions.last_mut() {
        current.spec.replicas = replicas;
    }
    state.save_workload(name);
}

/// The instances of `name` that count toward its replicas, measured against `spec`'s target.
fn measure(
    state: &State,
    name: &str,
    spec: &AutoscaleSpec,
    interval: Duration,
    now: Instant,
) -> Measurement {
    let fresh = interval.saturating_mul(FRESH_HEARTBEATS);
    let mut m = Measurement::default();
    for i in state.instances_of(name) {
        let r = &i.record;
        if r.phase.is_final() || r.phase == Phase::Stopping || r.replaced_by.is_some() {
            continue;
        }
        if !(r.phase == Phase::Running && r.ready) {
            m.unready += 1;
            continue;
        }
        let usage = i.live.usage;
        let recent = usage
            .at
            .is_some_and(|at| now.saturating_duration_since(at) <= fresh);
        let requests = state.spec_of(&r.id).map(|s| s.resources.requests);
        let node = r.node.as_ref().and_then(|n| state.nodes.get(n));
        let value = match spec.target {
            Target::Cpu(_) => requests
                .filter(|q| q.cpu > 0 && recent && usage.rated)
                .map(|q| usage.cpu_millis as f64 * 100.0 / q.cpu as f64),
            Target::Memory(_) => requests
                .filter(|q| q.memory > 0 && recent)
                .map(|q| usage.memory_bytes as f64 * 100.0 / q.memory as f64),
            Target::Pressure(resource, _) => node
                .filter(|n| {
                    n.live
                        .last_heartbeat
                        .is_some_and(|t| now.saturating_duration_since(t) <= fresh)
                })
                .and_then(|n| n.live.status.as_ref()?.pressure.as_ref())
                .map(|p| match resource {
                    PressureResource::Cpu => p.cpu,
                    PressureResource::Memory => p.memory,
                }),
        };
        match value {
            Some(v) => m.values.push(v),
            None => m.missing += 1,
        }
    }
    m
}

/// The status shown for workload `name`, if it is autoscaled.
pub fn status(state: &State, name: &str) -> Option<AutoscaleStatus> {
    let spec = state.workloads.get(name)?.spec.autoscale.as_ref()?;
    let mut status = state
        .autoscalers
        .get(name)
        .map(|a| a.status.clone())
        .unwrap_or_default();
    settings(&mut status, spec, state.workloads[name].autoscale_paused);
    Some(status)
}

/// Copies what the spec (and a pause) say into `status`.
fn settings(status: &mut AutoscaleStatus, spec: &AutoscaleSpec, paused: bool) {
    status.min = spec.min;
    status.max = spec.max;
    status.metric = spec.target.metric().into();
    status.target_percent = spec.target.percent();
    status.scale_up_window = format_duration(spec.behavior.scale_up.window);
    status.scale_down_window = format_duration(spec.behavior.scale_down.window);
    status.paused = paused;
}

/// Records that a `scale` by hand paused the autoscaling of `name`, if it has any.
pub fn pause(state: &mut State, name: &str) -> bool {
    let Some(w) = state.workloads.get_mut(name) else {
        return false;
    };
    if w.spec.autoscale.is_none() || w.autoscale_paused {
        return false;
    }
    w.autoscale_paused = true;
    state.save_workload(name);
    true
}

/// Why `spec` cannot be autoscaled on pressure here: the ready nodes it may run on whose
/// kernel reports no pressure stall information (cgroup v1 hosts, kernels without PSI).
/// Nodes not heard from yet are not judged; their instances show as missing measurements.
pub fn pressure_refused(state: &State, spec: &crate::spec::WorkloadSpec) -> Option<String> {
    let a = spec.autoscale.as_ref()?;
    if !matches!(a.target, Target::Pressure(..)) {
        return None;
    }
    let without: Vec<&str> = state
        .nodes
        .values()
        .filter(|n| n.ready())
        .filter(|n| {
            spec.node_selector
                .iter()
                .all(|(k, v)| n.record.labels.get(k) == Some(v))
        })
        .filter(|n| n.live.status.as_ref().is_some_and(|s| s.pressure.is_none()))
        .map(|n| n.record.name.as_str())
        .collect();
    (!without.is_empty()).then(|| {
        format!(
            "autoscale.target.{}: node(s) {} report no pressure stall information \
             (/proc/pressure: cgroup v1 or a kernel without PSI); target cpu or memory \
             instead, or keep the workload off them with node_selector",
            a.target.metric(),
            without.join(", ")
        )
    })
}
