use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::spec::{Amount, AutoscaleSpec, Behavior, Rules, Target};

const TOLERANCE: Tolerance = Tolerance { up: 0.1, down: 0.1 };

fn measured(values: &[f64]) -> Measurement {
    Measurement {
        values: values.to_vec(),
        ..Measurement::default()
    }
}

#[test]
fn the_rule_is_ceil_of_count_times_measured_over_target() {
    // Two instances at 90% of a 50% target: ceil(2 × 1.8) = 4.
    assert_eq!(
        propose(2, &measured(&[90.0, 90.0]), 50.0, TOLERANCE),
        Proposal::Replicas(4)
    );
    // Four instances at 10% of 50%: ceil(4 × 0.2) = 1.
    assert_eq!(
        propose(4, &measured(&[10.0; 4]), 50.0, TOLERANCE),
        Proposal::Replicas(1)
    );
}

#[test]
fn a_metric_within_the_tolerance_keeps_the_count() {
    assert_eq!(
        propose(3, &measured(&[54.0, 56.0, 55.0]), 50.0, TOLERANCE),
        Proposal::Keep
    );
    assert_eq!(
        propose(3, &measured(&[46.0; 3]), 50.0, TOLERANCE),
        Proposal::Keep
    );
}

#[test]
fn no_measurement_makes_no_recommendation() {
    let m = Measurement {
        missing: 2,
        unready: 1,
        ..Measurement::default()
    };
    assert!(matches!(
        propose(3, &m, 50.0, TOLERANCE),
        Proposal::Unknown(_)
    ));
}

#[test]
fn missing_instances_count_as_zero_when_growing() {
    let m = Measurement {
        values: vec![200.0],
        missing: 1,
        unready: 0,
    };
    // With the missing one at 0: (200 + 0) / 2 = 100% of 50% → ceil(2 × 2) = 4.
    assert_eq!(propose(2, &m, 50.0, TOLERANCE), Proposal::Replicas(4));
    let m = Measurement {
        values: vec![60.0],
        missing: 3,
        unready: 0,
    };
    // Alone 60/50 = 1.2 would grow; with three missing at 0 it is 15/50: keep.
    assert_eq!(propose(4, &m, 50.0, TOLERANCE), Proposal::Keep);
}

#[test]
fn missing_instances_count_as_the_target_when_shrinking() {
    let m = Measurement {
        values: vec![10.0],
        missing: 3,
        unready: 0,
    };
    // (10 + 3 × 50) / 4 = 40% of 50% → ceil(4 × 0.8) = 4, where the measured one alone
    // would go down to 1.
    assert_eq!(propose(4, &m, 50.0, TOLERANCE), Proposal::Replicas(4));
    let alone = propose(4, &measured(&[10.0]), 50.0, TOLERANCE);
    assert_eq!(alone, Proposal::Replicas(1));
}

#[test]
fn unready_instances_count_as_zero_only_against_growth() {
    let growing = Measurement {
        values: vec![100.0],
        missing: 0,
        unready: 1,
    };
    // (100 + 0) / 2 = 50% of 50%: within the band.
    assert_eq!(propose(2, &growing, 50.0, TOLERANCE), Proposal::Keep);
    let shrinking = Measurement {
        values: vec![10.0],
        missing: 0,
        unready: 1,
    };
    assert_eq!(
        propose(2, &shrinking, 50.0, TOLERANCE),
        Proposal::Replicas(1)
    );
}

fn spec(min: u32, max: u32, up: Rules, down: Rules) -> AutoscaleSpec {
    AutoscaleSpec {
        min,
        max,
        target: Target::Cpu(50),
        behavior: Behavior {
            scale_up: up,
            scale_down: down,
        },
    }
}

fn rules(window: u64, step: Option<Amount>, period: u64) -> Rules {
    Rules {
        window: Duration::from_secs(window),
        tolerance: 10,
        max_step: step,
        period: Duration::from_secs(period),
    }
}

#[test]
fn scale_down_follows_the_highest_recommendation_of_its_window() {
    let s = spec(1, 10, rules(0, None, 15), rules(60, None, 15));
    let t0 = Instant::now();
    let mut h = History::default();
    assert_eq!(h.settle(&s, 4, 4, t0).desired, 4);
    let at = |secs| t0 + Duration::from_secs(secs);
    // A dip is ignored while the window still holds the 4.
    let o = h.settle(&s, 4, 1, at(30));
    assert_eq!(o.desired, 4);
    assert!(o.held_by.unwrap().contains("scale-down window"));
    // Once it has passed, the highest left (1) wins.
    assert_eq!(h.settle(&s, 4, 1, at(61)).desired, 1);
}

#[test]
fn scale_up_follows_the_lowest_recommendation_of_its_window() {
    let s = spec(1, 10, rules(30, None, 15), rules(0, None, 15));
    let t0 = Instant::now();
    let mut h = History::default();
    assert_eq!(h.settle(&s, 2, 2, t0).desired, 2);
    assert_eq!(h.settle(&s, 2, 6, t0 + Duration::from_secs(10)).desired, 2);
    assert_eq!(h.settle(&s, 2, 6, t0 + Duration::from_secs(31)).desired, 6);
}

#[test]
fn steps_are_limited_per_period() {
    let s = spec(
        1,
        100,
        rules(0, Some(Amount::Count(1)), 10),
        rules(0, Some(Amount::Count(1)), 10),
    );
    let t0 = Instant::now();
    let mut h = History::default();
    let o = h.settle(&s, 5, 1, t0);
    assert_eq!(o.desired, 4);
    assert!(o.held_by.unwrap().contains("step limit"));
    // Still within the period: 4 started it at 5, one removed already.
    assert_eq!(h.settle(&s, 4, 1, t0 + Duration::from_secs(5)).desired, 4);
    assert_eq!(h.settle(&s, 4, 1, t0 + Duration::from_secs(11)).desired, 3);
    // The default up step: the larger of 4 and 100%.
    let s = spec(1, 100, rules(0, None, 15), rules(0, None, 15));
    assert_eq!(History::default().settle(&s, 1, 50, t0).desired, 5);
    assert_eq!(History::default().settle(&s, 10, 50, t0).desired, 20);
    // A percentage always allows one instance.
    let s = spec(
        1,
        100,
        rules(0, None, 15),
        rules(0, Some(Amount::Percent(10)), 15),
    );
    assert_eq!(History::default().settle(&s, 3, 1, t0).desired, 2);
}

#[test]
fn the_count_stays_within_the_bounds() {
    let s = spec(2, 5, rules(0, None, 15), rules(0, None, 15));
    let t0 = Instant::now();
    assert_eq!(History::default().settle(&s, 3, 40, t0).desired, 5);
    assert_eq!(History::default().settle(&s, 3, 0, t0).desired, 2);
    // Below the minimum (a spec changed under it): up to it at once.
    assert_eq!(History::default().settle(&s, 1, 1, t0).desired, 2);
}

proptest! {
    /// Over any series of recommendations, a scale down never follows a scale up sooner than
    /// the down window, nor a scale up a scale down sooner than the up window: the count
    /// cannot flap faster than the windows allow.
    #[test]
    fn the_count_never_turns_faster_than_the_windows(
        up_window in 0u64..120,
        down_window in 0u64..600,
        up_step in proptest::option::of(1u32..6),
        down_step in proptest::option::of(1u32..6),
        period in 1u64..60,
        min in 1u32..4,
        extra in 0u32..20,
        series in proptest::collection::vec((1u64..40, 0u32..40), 1..200),
    ) {
        let max = min + extra;
        let s = spec(
            min,
            max,
            rules(up_window, up_step.map(Amount::Count), period),
            rules(down_window, down_step.map(Amount::Count), period),
        );
        let t0 = Instant::now();
        let (mut now, mut current) = (Duration::ZERO, min);
        let mut history = History::default();
        // The last change: when, and whether it was up.
        let mut last: Option<(Duration, bool)> = None;
        for (gap, recommendation) in series {
            now += Duration::from_secs(gap);
            let desired = history.settle(&s, current, recommendation, t0 + now).desired;
            prop_assert!((min..=max).contains(&desired));
            if desired != current {
                let up = desired > current;
                if let Some((at, was_up)) = last {
                    if was_up != up {
                        let window = if up { up_window } else { down_window };
                        prop_assert!(
                            now - at >= Duration::from_secs(window),
                            "turned {} after {:?}, window {window}s",
                            if up { "up" } else { "down" },
                            now - at
                        );
                    }
                }
                last = Some((now, up));
                current = desired;
            }
        }
    }
}
