//! From a recommendation to a replica count: the stabilization windows (scale up to the lowest
//! recommendation of the up window, down to the highest of the down window), the step limits
//! per period and the bounds, as the HorizontalPodAutoscaler's
//! `normalizeDesiredReplicasWithBehaviors`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::spec::{Amount, AutoscaleSpec, Rules};

/// What one workload's autoscaler remembers between evaluations.
#[derive(Debug, Default, Clone)]
pub struct History {
    /// Recommendations of the longest window, oldest first.
    recommendations: VecDeque<(Instant, u32)>,
    /// Changes of the replica count (added: positive) of the longest period, oldest first.
    changes: VecDeque<(Instant, i64)>,
}

/// The count an evaluation settles on, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The count to run.
    pub desired: u32,
    /// The recommendation after the windows, before the step limits and bounds.
    pub stabilized: u32,
    /// Why `desired` is not simply the recommendation, if it is not.
    pub held_by: Option<String>,
}

impl History {
    /// Records `recommendation` (the rule's count) at `now` and answers the count to run when
    /// `current` run. A change is remembered for the step limits: the caller must apply it.
    pub fn settle(
        &mut self,
        spec: &AutoscaleSpec,
        current: u32,
        recommendation: u32,
        now: Instant,
    ) -> Outcome {
        let (up, down) = (&spec.behavior.scale_up, &spec.behavior.scale_down);
        self.forget(now, up.window.max(down.window), up.period.max(down.period));
        let mut lowest = recommendation;
        let mut highest = recommendation;
        for &(at, r) in &self.recommendations {
            if after(at, now, up.window) {
                lowest = lowest.min(r);
            }
            if after(at, now, down.window) {
                highest = highest.max(r);
            }
        }
        self.recommendations.push_back((now, recommendation));
        let stabilized = current.max(lowest).min(highest);
        let mut held_by = None;
        if stabilized < recommendation {
            held_by = Some(format!(
                "scale-up window {}: lowest recommendation {lowest}",
                crate::spec::quantity::format_duration(up.window)
            ));
        } else if stabilized > recommendation {
            held_by = Some(format!(
                "scale-down window {}: highest recommendation {highest}",
                crate::spec::quantity::format_duration(down.window)
            ));
        }
        let mut desired = stabilized;
        if desired > current {
            let start = i64::from(current) - self.changed(now, up.period, true);
            let limit = step_limit(up, start, true);
            if desired > limit {
                desired = limit.max(current);
                held_by = Some(format!("scale-up step limit: at most {limit} this period"));
            }
        } else if desired < current {
            let start = i64::from(current) - self.changed(now, down.period, false);
            let limit = step_limit(down, start, false);
            if desired < limit {
                desired = limit.min(current);
                held_by = Some(format!(
                    "scale-down step limit: at least {limit} this period"
                ));
            }
        }
        let bounded = desired.clamp(spec.min, spec.max);
        if bounded != desired {
            held_by = Some(format!("bounds {}–{}", spec.min, spec.max));
            desired = bounded;
        }
        if desired != current {
            self.changes
                .push_back((now, i64::from(desired) - i64::from(current)));
        }
        Outcome {
            desired,
            stabilized,
            held_by,
        }
    }

    /// Forgets what no window or period reaches any more.
    fn forget(&mut self, now: Instant, window: Duration, period: Duration) {
        while self
            .recommendations
            .front()
            .is_some_and(|&(at, _)| !after(at, now, window))
        {
            self.recommendations.pop_front();
        }
        while self
            .changes
            .front()
            .is_some_and(|&(at, _)| !after(at, now, period))
        {
            self.changes.pop_front();
        }
    }

    /// The instances added (`up`) or removed (as a positive number of removals, negated so
    /// `current − changed` is the count at the period's start) within `period` before `now`.
    fn changed(&self, now: Instant, period: Duration, up: bool) -> i64 {
        self.changes
            .iter()
            .filter(|&&(at, _)| after(at, now, period))
            .map(|&(_, n)| n)
            .filter(|&n| (n > 0) == up)
            .sum()
    }
}

/// Whether `at` lies inside the `window` ending at `now` (strictly after its start).
fn after(at: Instant, now: Instant, window: Duration) -> bool {
    now.checked_sub(window).is_none_or(|start| at > start)
}

/// The highest (`up`) or lowest count allowed this period, from `start` instances at its
/// beginning.
fn step_limit(rules: &Rules, start: i64, up: bool) -> u32 {
    let start = start.max(0) as f64;
    let percent = |p: u32| start * f64::from(p) / 100.0;
    let limit = match (up, rules.max_step) {
        // Kubernetes' default: the larger of 4 instances and 100% up, 100% down.
        (true, None) => start + percent(100).max(4.0),
        (false, None) => start - percent(100),
        (true, Some(Amount::Count(n))) => start + f64::from(n),
        (false, Some(Amount::Count(n))) => start - f64::from(n),
        (true, Some(Amount::Percent(p))) => (start + percent(p)).ceil().max(start + 1.0),
        (false, Some(Amount::Percent(p))) => (start - percent(p)).ceil().min(start - 1.0),
    };
    limit.clamp(0.0, f64::from(u32::MAX)) as u32
}
