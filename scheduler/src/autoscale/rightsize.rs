//! Vertical recommendations: what each instance of a workload should request, from decaying
//! histograms of its instances' measured cpu and working set (the VerticalPodAutoscaler's
//! recommender, in spirit): the 90th percentile of cpu, the peak of memory plus 15%, and
//! limits that keep the spec's limit-to-request ratios.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::histogram::DecayingHistogram;
use crate::spec::ResourceSpec;

/// How fast old measurements fade (VPA's default: a day).
pub const HALF_LIFE: Duration = Duration::from_secs(24 * 60 * 60);
/// The share of cpu samples the recommended request covers.
pub const CPU_PERCENTILE: f64 = 0.9;
/// Added above the memory peak.
pub const MEMORY_MARGIN: f64 = 0.15;
/// The smallest recommendations: 1 millicore, 4 MiB (below that a container hardly starts).
const MIN_CPU_MILLIS: u64 = 1;
const MIN_MEMORY_BYTES: u64 = 4 << 20;
/// The smallest cpu limit: the kernel refuses a CFS quota under 1 ms per 100 ms period.
const MIN_CPU_LIMIT_MILLIS: u64 = 10;
/// A memory bucket counts toward the peak while its weight is at least this share of the
/// heaviest bucket's (older peaks fade out).
const PEAK_FLOOR: f64 = 1e-3;

/// The measured cpu (millicores) and working set (bytes) of a workload's instances.
#[derive(Debug, Clone)]
pub struct UsageHistograms {
    cpu: DecayingHistogram,
    memory: DecayingHistogram,
    samples: u64,
}

/// What `describe` shows and `rightsize` applies.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rightsizing {
    /// The recommended cpu request, millicores.
    pub cpu_request_millis: u64,
    /// The recommended memory request, bytes (a whole MiB).
    pub memory_request_bytes: u64,
    /// The recommended cpu limit, if the spec has one.
    pub cpu_limit_millis: Option<u64>,
    /// The recommended memory limit, if the spec has one.
    pub memory_limit_bytes: Option<u64>,
    /// Measurements behind it.
    pub samples: u64,
}

impl UsageHistograms {
    /// Empty histograms.
    pub fn new(now: Instant) -> UsageHistograms {
        UsageHistograms {
            cpu: DecayingHistogram::new(1.0, HALF_LIFE, now),
            memory: DecayingHistogram::new(f64::from(1u32 << 20), HALF_LIFE, now),
            samples: 0,
        }
    }

    /// Adds one instance's measurement taken at `at`.
    pub fn add(&mut self, cpu_millis: u64, memory_bytes: u64, at: Instant) {
        self.cpu.add(cpu_millis as f64, at);
        self.memory.add(memory_bytes as f64, at);
        self.samples += 1;
    }

    /// The recommendation for a workload whose instances run with `resources`.
    pub fn recommend(&self, resources: &ResourceSpec) -> Option<Rightsizing> {
        let cpu = self.cpu.percentile(CPU_PERCENTILE)?;
        let memory = self.memory.peak(PEAK_FLOOR)? * (1.0 + MEMORY_MARGIN);
        let cpu = (cpu.ceil() as u64).max(MIN_CPU_MILLIS);
        let mib = 1u64 << 20;
        let memory = ((memory as u64).div_ceil(mib) * mib).max(MIN_MEMORY_BYTES);
        let (requests, limits) = (resources.requests, resources.limits);
        // A limit keeps its ratio to the request (as VPA does); without a request to compare
        // with, it stays as it is.
        let scaled = |limit: Option<u64>, request: u64, new: u64| {
            limit.map(|l| {
                if request == 0 {
                    l
                } else {
                    ((u128::from(l) * u128::from(new)).div_ceil(u128::from(request)) as u64)
                        .max(new)
                }
            })
        };
        Some(Rightsizing {
            cpu_request_millis: cpu,
            memory_request_bytes: memory,
            cpu_limit_millis: scaled(limits.cpu, requests.cpu, cpu)
                .map(|l| l.max(MIN_CPU_LIMIT_MILLIS)),
            memory_limit_bytes: scaled(limits.memory, requests.memory, memory)
                .map(|l| l.div_ceil(mib) * mib),
            samples: self.samples,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Limits, Requests};

    #[test]
    fn requests_follow_p90_cpu_and_peak_memory_and_limits_keep_their_ratio() {
        let t0 = Instant::now();
        let mut h = UsageHistograms::new(t0);
        for i in 0..100u64 {
            // cpu 1..=100m, memory 10 MiB with one 20 MiB peak.
            let memory = if i == 50 { 20 << 20 } else { 10 << 20 };
            h.add(i + 1, memory, t0 + Duration::from_secs(i));
        }
        let resources = ResourceSpec {
            requests: Requests {
                cpu: 1000,
                memory: 256 << 20,
                pids: 0,
            },
            limits: Limits {
                cpu: Some(2000),
                memory: Some(512 << 20),
                pids: None,
            },
        };
        let r = h.recommend(&resources).unwrap();
        assert!((90..=95).contains(&r.cpu_request_millis), "{r:?}");
        // 20 MiB × 1.15 = 23 MiB, within a bucket's 5%: 24 MiB at most.
        assert!(
            (23 << 20..=25 << 20).contains(&r.memory_request_bytes),
            "{r:?}"
        );
        assert_eq!(r.cpu_limit_millis, Some(2 * r.cpu_request_millis));
        assert_eq!(r.memory_limit_bytes, Some(2 * r.memory_request_bytes));
        assert_eq!(r.samples, 100);
        assert!(UsageHistograms::new(t0).recommend(&resources).is_none());
        // An idle instance: the cpu limit stays at the kernel's smallest quota, 10m.
        let mut idle = UsageHistograms::new(t0);
        idle.add(0, 1 << 20, t0);
        let r = idle.recommend(&resources).unwrap();
        assert_eq!((r.cpu_request_millis, r.cpu_limit_millis), (1, Some(10)));
        assert_eq!(r.memory_request_bytes, 4 << 20);
    }
}
