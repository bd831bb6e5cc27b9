//! The placement benchmark (issue 6): an in-process simulation of a seeded cluster, pinned to one
//! core, printing placements per second, latency per placement and packing quality.
//!
//! `mini-sched-bench [--seed N] [--nodes N] [--instances N]`

use std::process::ExitCode;
use std::time::{Duration, Instant};

use mini_sched::simulation::{self, Constraints};
use mini_sched::{Cluster, InstanceSpec, Outcome, Policy, Scheduler};

struct Options {
    seed: u64,
    nodes: usize,
    instances: usize,
}

fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        seed: 42,
        nodes: 10_000,
        instances: 100_000,
    };
    let mut args = args.skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = value
            .parse::<u64>()
            .map_err(|_| format!("{flag} takes a number, not {value:?}"))?;
        match flag.as_str() {
            "--seed" => options.seed = number,
            "--nodes" => options.nodes = number as usize,
            "--instances" => options.instances = number as usize,
            _ => {
                return Err(format!(
                    "unknown option {flag} (options: --seed, --nodes, --instances)"
                ))
            }
        }
    }
    Ok(options)
}

/// Pins the process to the last cpu it may run on, so the figures are for one core.
fn pin_to_one_core() -> Result<usize, String> {
    // SAFETY: cpu_set_t is plain data; the calls only read and write the set passed to them.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) != 0 {
            return Err(format!(
                "reading the cpu affinity: {}",
                std::io::Error::last_os_error()
            ));
        }
        let cpu = (0..libc::CPU_SETSIZE as usize)
            .rev()
            .find(|&cpu| libc::CPU_ISSET(cpu, &set))
            .ok_or("the process may run on no cpu")?;
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
            return Err(format!(
                "pinning to cpu {cpu}: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(cpu)
    }
}

#[derive(Default)]
struct Tally {
    placed: usize,
    preempting: usize,
    victims: usize,
    unschedulable: usize,
    latencies: Vec<Duration>,
    /// The latencies of the placements that preempted.
    preemptions: Vec<Duration>,
}

/// Places `batch` as one batch, timing each placement: the time from the previous outcome (or
/// the start) to this one, so a batch's preparation counts against its first placement.
fn run(scheduler: &Scheduler, cluster: &mut Cluster, batch: Vec<InstanceSpec>) -> Tally {
    let mut tally = Tally {
        latencies: Vec::with_capacity(batch.len()),
        ..Tally::default()
    };
    let mut last = Instant::now();
    scheduler.place_batch_each(cluster, batch, |_, outcome| {
        let latency = last.elapsed();
        tally.latencies.push(latency);
        match outcome {
            Outcome::Placed { .. } => tally.placed += 1,
            Outcome::Preempted { victims, .. } => {
                tally.preempting += 1;
                tally.victims += victims.len();
                tally.preemptions.push(latency);
            }
            Outcome::Unschedulable { .. } => tally.unschedulable += 1,
        }
        last = Instant::now();
    });
    tally
}

/// The `p` quantile of sorted `latencies`, in microseconds.
fn percentile(latencies: &[Duration], p: f64) -> f64 {
    let n = latencies.len();
    if n == 0 {
        return 0.0;
    }
    latencies[((n as f64 * p) as usize).min(n - 1)].as_secs_f64() * 1e6
}

/// Operations per second over the time they took.
fn rate(latencies: &[Duration]) -> f64 {
    let total: Duration = latencies.iter().sum();
    latencies.len() as f64 / total.as_secs_f64().max(f64::MIN_POSITIVE)
}

fn report(name: &str, policy: Policy, cluster: &Cluster, mut tally: Tally) {
    tally.latencies.sort_unstable();
    tally.preemptions.sort_unstable();
    let packing = simulation::packing(cluster);
    println!(
        "{name:<22} {policy:<14} {:>7} {:>7} {:>7} {:>7} {:>12.0} {:>8.1} {:>8.1} {:>6} {:>6} {:>6.3} {:>6} {:>6.3} {:>5.1}% / {:.1}%",
        tally.placed,
        tally.preempting,
        tally.victims,
        tally.unschedulable,
        rate(&tally.latencies),
        percentile(&tally.latencies, 0.50),
        percentile(&tally.latencies, 0.99),
        packing.nodes_used,
        packing.lower_bound,
        packing.nodes_used as f64 / packing.lower_bound.max(1) as f64,
        packing.shape_bound,
        packing.nodes_used as f64 / packing.shape_bound.max(1) as f64,
        packing.stranded_cpu * 100.0,
        packing.stranded_memory * 100.0,
        policy = format!("{policy:?}"),
    );
    if !tally.preemptions.is_empty() {
        println!(
            "{:<22} {:<14} {} preemptions at {:.0}/s, p50 {:.1} µs, p99 {:.1} µs",
            "",
            "",
            tally.preemptions.len(),
            rate(&tally.preemptions),
            percentile(&tally.preemptions, 0.50),
            percentile(&tally.preemptions, 0.99),
        );
    }
}

fn cluster(options: &Options) -> Cluster {
    let mut cluster = Cluster::new();
    for node in simulation::nodes(options.seed, options.nodes) {
        cluster.add_node(node);
    }
    cluster
}

fn main() -> ExitCode {
    let options = match parse(std::env::args()) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("mini-sched-bench: {message}");
            return ExitCode::from(2);
        }
    };
    println!("bound: max over resources of total requests / capacity (largest nodes first);");
    println!("shape: fewest nodes holding cpu and memory together, even fractionally (LP bound)");
    match pin_to_one_core() {
        Ok(cpu) => println!(
            "pinned to cpu {cpu}; seed {}, {} nodes, {} instances",
            options.seed, options.nodes, options.instances
        ),
        Err(message) => {
            eprintln!("mini-sched-bench: {message}; run where sched_setaffinity is allowed");
            return ExitCode::FAILURE;
        }
    }
    println!(
        "{:<22} {:<14} {:>7} {:>7} {:>7} {:>7} {:>12} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6} {:>14}",
        "scenario",
        "policy",
        "placed",
        "preempt",
        "victims",
        "unsched",
        "placements/s",
        "p50 µs",
        "p99 µs",
        "nodes",
        "bound",
        "ratio",
        "shape",
        "ratio",
        "stranded cpu/mem",
    );
    let scenarios = [
        ("basic fit", Constraints::None, Policy::MostAllocated),
        ("basic fit", Constraints::None, Policy::LeastAllocated),
        ("basic fit", Constraints::None, Policy::Balanced),
        (
            "spread (zone, skew 1)",
            Constraints::Spread,
            Policy::MostAllocated,
        ),
        (
            "anti-affinity (node)",
            Constraints::AntiAffinity,
            Policy::MostAllocated,
        ),
        (
            "spread + anti-affinity",
            Constraints::SpreadAndAntiAffinity,
            Policy::MostAllocated,
        ),
    ];
    for (name, constraints, policy) in scenarios {
        let mut cluster = cluster(&options);
        let scheduler = Scheduler::new(policy);
        let batch = simulation::instances(options.seed, options.instances, constraints);
        let tally = run(&scheduler, &mut cluster, batch);
        report(name, policy, &cluster, tally);
    }
    // Preemption: a cluster filled past its cpu with priority 0, then a tenth as many
    // priority-1000 instances arrive.
    let policy = Policy::MostAllocated;
    let scheduler = Scheduler::new(policy);
    let mut cluster = cluster(&options);
    let fill = simulation::instances(options.seed, options.instances * 17 / 10, Constraints::None);
    let filled = run(&scheduler, &mut cluster, fill);
    report("preemption: fill", policy, &cluster, filled);
    let mut urgent =
        simulation::instances(options.seed + 1, options.instances / 10, Constraints::None);
    for spec in &mut urgent {
        spec.priority = 1000;
    }
    let tally = run(&scheduler, &mut cluster, urgent);
    report("preemption: urgent", policy, &cluster, tally);
    ExitCode::SUCCESS
}
