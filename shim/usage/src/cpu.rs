//! Host CPU time from /proc/stat, and CPU use between two samples of it.

use serde::Serialize;

use crate::error::{parse_error, read, Result};

const PROC_STAT: &str = "/proc/stat";

/// Cumulative CPU time of one CPU (or all of them) since boot, in clock ticks (`USER_HZ`,
/// see [`CpuStat::ticks_per_second`]) as /proc/stat counts it. Guest time is already part of
/// `user` and `nice`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CpuTimes {
    /// Normal processes in user mode.
    pub user: u64,
    /// Niced processes in user mode.
    pub nice: u64,
    /// Kernel mode.
    pub system: u64,
    /// Idle.
    pub idle: u64,
    /// Idle while I/O was outstanding.
    pub iowait: u64,
    /// Hard interrupts.
    pub irq: u64,
    /// Soft interrupts.
    pub softirq: u64,
    /// Taken by the hypervisor for other guests.
    pub steal: u64,
}

impl CpuTimes {
    /// All time counted.
    pub fn total(&self) -> u64 {
        self.busy() + self.idle + self.iowait
    }

    /// Time not idle (and not waiting for I/O).
    pub fn busy(&self) -> u64 {
        self.user + self.nice + self.system + self.irq + self.softirq + self.steal
    }

    /// Field-wise `self - earlier`, clamped at 0 (iowait can go backwards on some kernels).
    fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user.saturating_sub(earlier.user),
            nice: self.nice.saturating_sub(earlier.nice),
            system: self.system.saturating_sub(earlier.system),
            idle: self.idle.saturating_sub(earlier.idle),
            iowait: self.iowait.saturating_sub(earlier.iowait),
            irq: self.irq.saturating_sub(earlier.irq),
            softirq: self.softirq.saturating_sub(earlier.softirq),
            steal: self.steal.saturating_sub(earlier.steal),
        }
    }

    /// The fields as (mode, ticks), in /proc/stat order.
    pub fn modes(&self) -> [(&'static str, u64); 8] {
        [
            ("user", self.user),
            ("nice", self.nice),
            ("system", self.system),
            ("idle", self.idle),
            ("iowait", self.iowait),
            ("irq", self.irq),
            ("softirq", self.softirq),
            ("steal", self.steal),
        ]
    }
}

/// One reading of /proc/stat's CPU lines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuStat {
    /// The "cpu" line: all online CPUs together.
    pub all: CpuTimes,
    /// The "cpuN" lines: one per online CPU.
    pub per_cpu: Vec<CpuTimes>,
    /// `USER_HZ`: clock ticks per second (100 on Linux).
    pub ticks_per_second: u64,
}

impl CpuStat {
    /// Reads /proc/stat.
    pub fn read() -> Result<CpuStat> {
        CpuStat::parse(&read(PROC_STAT)?)
    }

    /// Parses the text of /proc/stat.
    pub fn parse(text: &str) -> Result<CpuStat> {
        let mut all = None;
        let mut per_cpu = Vec::new();
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            let Some(label) = fields.next().filter(|l| l.starts_with("cpu")) else {
                continue;
            };
            let numbers: Vec<u64> = fields
                .map(str::parse)
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| parse_error(PROC_STAT, line))?;
            if numbers.len() < 4 {
                return Err(parse_error(PROC_STAT, line));
            }
            let f = |i: usize| numbers.get(i).copied().unwrap_or(0);
            let times = CpuTimes {
                user: f(0),
                nice: f(1),
                system: f(2),
                idle: f(3),
                iowait: f(4),
                irq: f(5),
                softirq: f(6),
                steal: f(7),
            };
            if label == "cpu" {
                all = Some(times);
            } else {
                per_cpu.push(times);
            }
        }
        Ok(CpuStat {
            all: all.ok_or_else(|| parse_error(PROC_STAT, "no \"cpu\" line"))?,
            per_cpu,
            ticks_per_second: ticks_per_second(),
        })
    }
}

/// `USER_HZ`.
pub(crate) fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// CPU use of the host between two [`CpuStat`] samples: averages over the interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuUsage {
    /// Online CPUs in the later sample.
    pub cpus: usize,
    /// Busy time as a fraction of all CPU time, 0..=1.
    pub busy_ratio: f64,
    /// Busy time in CPUs: `busy_ratio × cpus` (0..=cpus), e.g. 1.5 = one and a half CPUs busy.
    pub busy_cores: f64,
    /// User mode (user + nice), 0..=1.
    pub user_ratio: f64,
    /// Kernel mode (system + irq + softirq), 0..=1.
    pub system_ratio: f64,
    /// Idle with I/O outstanding, 0..=1.
    pub iowait_ratio: f64,
    /// Stolen by the hypervisor, 0..=1.
    pub steal_ratio: f64,
    /// Busy fraction of each CPU, 0..=1 each.
    pub per_cpu_busy_ratio: Vec<f64>,
    /// The interval the averages cover, in seconds (all CPU time / CPUs / `USER_HZ`).
    pub interval_seconds: f64,
    /// Busy CPU time in the interval, in seconds (summed over CPUs).
    pub busy_seconds: f64,
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl CpuUsage {
    /// The use between `earlier` and `later`.
    pub fn between(earlier: &CpuStat, later: &CpuStat) -> CpuUsage {
        let d = later.all.since(&earlier.all);
        let total = d.total();
        let cpus = later.per_cpu.len().max(1);
        let hz = later.ticks_per_second.max(1) as f64;
        let busy_ratio = ratio(d.busy(), total);
        CpuUsage {
            cpus,
            busy_ratio,
            busy_cores: busy_ratio * cpus as f64,
            user_ratio: ratio(d.user + d.nice, total),
            system_ratio: ratio(d.system + d.irq + d.softirq, total),
            iowait_ratio: ratio(d.iowait, total),
            steal_ratio: ratio(d.steal, total),
            per_cpu_busy_ratio: later
                .per_cpu
                .iter()
                .zip(
                    earlier
                        .per_cpu
                        .iter()
                        .chain(std::iter::repeat(&CpuTimes::default())),
                )
                .map(|(l, e)| {
                    let d = l.since(e);
                    ratio(d.busy(), d.total())
                })
                .collect(),
            interval_seconds: total as f64 / cpus as f64 / hz,
            busy_seconds: d.busy() as f64 / hz,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\nintr 1 2 3\n";
    const B: &str = "cpu  250 0 100 1000 50 0 0 0 0 0\ncpu0 200 0 50 400 25 0 0 0 0 0\ncpu1 50 0 50 600 25 0 0 0 0 0\nintr 1 2 3\n";

    #[test]
    fn deltas_become_ratios_and_cores() {
        let (a, b) = (CpuStat::parse(A).unwrap(), CpuStat::parse(B).unwrap());
        assert_eq!(b.per_cpu.len(), 2);
        let u = CpuUsage::between(&a, &b);
        // 400 ticks elapsed over 2 CPUs, 200 busy (150 user + 50 system).
        assert_eq!(u.busy_ratio, 0.5);
        assert_eq!(u.busy_cores, 1.0);
        assert_eq!(u.user_ratio, 150.0 / 400.0);
        assert_eq!(u.system_ratio, 50.0 / 400.0);
        assert_eq!(u.per_cpu_busy_ratio, vec![1.0, 25.0 / 225.0]);
        let hz = b.ticks_per_second as f64;
        assert_eq!(u.interval_seconds, 200.0 / hz);
        assert_eq!(u.busy_seconds, 200.0 / hz);
    }

    #[test]
    fn counters_going_backwards_do_not_underflow() {
        let (a, b) = (CpuStat::parse(B).unwrap(), CpuStat::parse(A).unwrap());
        let u = CpuUsage::between(&a, &b);
        assert_eq!(u.busy_ratio, 0.0);
        assert!(CpuStat::parse("intr 1\n").is_err());
        assert!(CpuStat::parse("cpu 1 x 3 4\n").is_err());
    }
}
