//! Node numbers from the real procfs: a busy loop this test runs shows up in the /proc/stat
//! deltas, ratios stay in range, memory and load are consistent.

use mini_usage::{Capacity, CpuStat, CpuUsage, LoadAvg, MemInfo, NodeSampler};
use std::time::{Duration, Instant};

/// CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Spins until this thread has used `amount` of CPU; returns what it used.
fn burn(amount: Duration) -> Duration {
    let mut x = 0u64;
    while thread_cpu_time() < amount {
        for i in 0..10_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
    }
    std::hint::black_box(x);
    thread_cpu_time()
}

#[test]
fn a_busy_loop_shows_in_the_proc_stat_deltas() {
    let before = CpuStat::read().unwrap();
    let start = Instant::now();
    let burned = std::thread::spawn(|| burn(Duration::from_millis(600)))
        .join()
        .unwrap();
    let after = CpuStat::read().unwrap();
    let wall = start.elapsed().as_secs_f64();
    let u = CpuUsage::between(&before, &after);

    // The node was busy at least as long as our thread ran (other work only adds), within
    // the tick granularity of /proc/stat accounting.
    let tick = 1.0 / after.ticks_per_second as f64;
    assert!(
        u.busy_seconds + 5.0 * tick >= burned.as_secs_f64(),
        "node busy {:.3}s < our thread's {:.3}s: {u:?}",
        u.busy_seconds,
        burned.as_secs_f64()
    );
    // Ratios are fractions, cores at most the CPU count, and the interval is the wall time
    // the two readings spanned.
    for r in [
        u.busy_ratio,
        u.user_ratio,
        u.system_ratio,
        u.iowait_ratio,
        u.steal_ratio,
    ] {
        assert!((0.0..=1.0).contains(&r), "{u:?}");
    }
    assert!(
        u.per_cpu_busy_ratio.iter().all(|r| (0.0..=1.0).contains(r)),
        "{u:?}"
    );
    assert_eq!(u.per_cpu_busy_ratio.len(), u.cpus);
    assert!(u.busy_cores <= u.cpus as f64 && u.busy_cores > 0.0, "{u:?}");
    assert!(
        (u.interval_seconds - wall).abs() <= 0.1 + 0.2 * wall,
        "interval {:.3}s vs wall {wall:.3}s",
        u.interval_seconds
    );
    assert!(
        u.user_ratio > 0.0,
        "a user-mode busy loop counted no user time: {u:?}"
    );
}

#[test]
fn capacity_memory_and_load_are_consistent() {
    let cap = Capacity::read().unwrap();
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) } as usize;
    assert_eq!(cap.cpus, online);
    let m = MemInfo::read().unwrap();
    assert_eq!(cap.memory_bytes, m.total_bytes);
    assert!(
        m.total_bytes > 0 && m.available_bytes <= m.total_bytes && m.free_bytes <= m.total_bytes
    );
    assert!(m.swap_free_bytes <= m.swap_total_bytes);
    let l = LoadAvg::read().unwrap();
    assert!(
        l.one >= 0.0 && l.tasks >= l.runnable && l.tasks > 0,
        "{l:?}"
    );

    let mut sampler = NodeSampler::new().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let s = sampler.sample().unwrap();
    assert_eq!(s.cpu.cpus, cap.cpus);
    // PSI is reported exactly where the kernel has it.
    assert_eq!(
        s.pressure.cpu.is_some(),
        std::path::Path::new("/proc/pressure/cpu").exists()
    );
    let second = sampler.sample().unwrap();
    assert!(second.cpu_stat.all.total() >= s.cpu_stat.all.total());
}
