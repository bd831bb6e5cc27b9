//! Reading v1 statistics files into [`Stats`].

use std::path::Path;

use super::V1Manager;
use crate::error::{Error, Result};
use crate::fs;
use crate::stats::{hugepage_sizes, parse_cpu_list, BlkioEntry, Hugetlb, MemoryEntry, Stats};

/// USER_HZ: the unit of cpuacct.stat.
fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

const NANOS_PER_SEC: u64 = 1_000_000_000;

pub(super) fn collect(m: &V1Manager) -> Result<Stats> {
    let mut s = Stats::default();
    if let Some(dir) = m.dir("cpuacct") {
        cpuacct(dir, &mut s)?;
    }
    if let Some(dir) = m.dir("cpu") {
        let st = fs::read_flat_keyed(dir, "cpu.stat")?;
        let t = &mut s.cpu.throttling;
        t.periods = st.get("nr_periods").copied().unwrap_or(0);
        t.throttled_periods = st.get("nr_throttled").copied().unwrap_or(0);
        t.throttled_time = st.get("throttled_time").copied().unwrap_or(0);
    }
    if let Some(dir) = m.dir("cpuset") {
        cpuset(dir, &mut s)?;
    }
    if let Some(dir) = m.dir("memory") {
        memory(dir, &mut s)?;
    }
    if let Some(dir) = m.dir("pids") {
        s.pids.current = fs::read_u64(dir, "pids.current")?;
        s.pids.limit = match fs::read_u64(dir, "pids.max")? {
            u64::MAX => 0,
            v => v,
        };
    }
    if let Some(dir) = m.dir("blkio") {
        blkio(dir, &mut s)?;
    }
    if let Some(dir) = m.dir("hugetlb") {
        for size in hugepage_sizes()? {
            let f = |name: &str| format!("hugetlb.{size}.{name}");
            let entry = Hugetlb {
                usage: fs::read_u64_opt(dir, &f("usage_in_bytes"))?.unwrap_or(0),
                max: fs::read_u64_opt(dir, &f("max_usage_in_bytes"))?.unwrap_or(0),
                failcnt: fs::read_u64_opt(dir, &f("failcnt"))?.unwrap_or(0),
            };
            s.hugetlb.insert(size, entry);
        }
    }
    Ok(s)
}

fn numbers(dir: &Path, file: &str) -> Result<Vec<u64>> {
    if !fs::exists(dir, file) {
        return Ok(Vec::new());
    }
    let text = fs::read(dir, file)?;
    text.split_whitespace()
        .map(|v| fs::parse_u64(&dir.join(file), v))
        .collect()
}

fn cpuacct(dir: &Path, s: &mut Stats) -> Result<()> {
    let u = &mut s.cpu.usage;
    u.total = fs::read_u64(dir, "cpuacct.usage")?;
    u.percpu = numbers(dir, "cpuacct.usage_percpu")?;
    let st = fs::read_flat_keyed(dir, "cpuacct.stat")?;
    let to_ns = |ticks: u64| ticks.saturating_mul(NANOS_PER_SEC) / clock_ticks();
    u.user = to_ns(st.get("user").copied().unwrap_or(0));
    u.kernel = to_ns(st.get("system").copied().unwrap_or(0));
    // "cpu user system" header, then one "N user_ns system_ns" line per CPU.
    if fs::exists(dir, "cpuacct.usage_all") {
        let path = dir.join("cpuacct.usage_all");
        for line in fs::read(dir, "cpuacct.usage_all")?.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() != 3 {
                return Err(Error::Parse {
                    path,
                    content: line.into(),
                });
            }
            u.percpu_user.push(fs::parse_u64(&path, f[1])?);
            u.percpu_kernel.push(fs::parse_u64(&path, f[2])?);
        }
    }
    Ok(())
}

fn cpuset(dir: &Path, s: &mut Stats) -> Result<()> {
    let c = &mut s.cpuset;
    c.cpus = parse_cpu_list(&fs::read(dir, "cpuset.cpus")?);
    c.mems = parse_cpu_list(&fs::read(dir, "cpuset.mems")?);
    let flag = |f: &str| fs::read_u64_opt(dir, f).map(Option::unwrap_or_default);
    c.cpu_exclusive = flag("cpuset.cpu_exclusive")?;
    c.mem_exclusive = flag("cpuset.mem_exclusive")?;
    c.mem_hardwall = flag("cpuset.mem_hardwall")?;
    c.memory_migrate = flag("cpuset.memory_migrate")?;
    c.memory_pressure = flag("cpuset.memory_pressure")?;
    c.memory_spread_page = flag("cpuset.memory_spread_page")?;
    c.memory_spread_slab = flag("cpuset.memory_spread_slab")?;
    c.sched_load_balance = flag("cpuset.sched_load_balance")?;
    if fs::exists(dir, "cpuset.sched_relax_domain_level") {
        let path = dir.join("cpuset.sched_relax_domain_level");
        let text = fs::read(dir, "cpuset.sched_relax_domain_level")?;
        c.sched_relax_domain_level = text.trim().parse().map_err(|_| Error::Parse {
            path,
            content: text.trim().into(),
        })?;
    }
    Ok(())
}

/// One usage/limit/peak/failcnt group, e.g. prefix "memory.memsw"; missing files read as 0.
fn memory_entry(dir: &Path, prefix: &str) -> Result<MemoryEntry> {
    let get = |name: &str| fs::read_u64_opt(dir, &format!("{prefix}.{name}"));
    Ok(MemoryEntry {
        limit: get("limit_in_bytes")?.unwrap_or(0),
        usage: get("usage_in_bytes")?.unwrap_or(0),
        max: get("max_usage_in_bytes")?.unwrap_or(0),
        failcnt: get("failcnt")?.unwrap_or(0),
    })
}

fn memory(dir: &Path, s: &mut Stats) -> Result<()> {
    let mem = &mut s.memory;
    mem.raw = fs::read_flat_keyed(dir, "memory.stat")?;
    mem.cache = mem.raw.get("cache").copied().unwrap_or(0);
    mem.usage = memory_entry(dir, "memory")?;
    mem.swap = memory_entry(dir, "memory.memsw")?;
    mem.kernel = memory_entry(dir, "memory.kmem")?;
    mem.kernel_tcp = memory_entry(dir, "memory.kmem.tcp")?;
    Ok(())
}

/// Parses "MAJ:MIN Op value" lines ("MAJ:MIN value" in files without operations), skipping
/// the "Total n" summary.
fn blkio_entries(dir: &Path, file: &str) -> Result<Vec<BlkioEntry>> {
    if !fs::exists(dir, file) {
        return Ok(Vec::new());
    }
    let path = dir.join(file);
    let bad = |line: &str| Error::Parse {
        path: path.clone(),
        content: line.into(),
    };
    let mut out = Vec::new();
    for line in fs::read(dir, file)?.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (op, value) = match f.as_slice() {
            [] | ["Total", _] => continue,
            [_, value] => ("", *value),
            [_, op, value] => (*op, *value),
            _ => return Err(bad(line)),
        };
        let (major, minor) = f[0].split_once(':').ok_or_else(|| bad(line))?;
        out.push(BlkioEntry {
            major: fs::parse_u64(&path, major)?,
            minor: fs::parse_u64(&path, minor)?,
            op: op.to_string(),
            value: fs::parse_u64(&path, value)?,
        });
    }
    Ok(out)
}

/// The first of `files` that has entries.
fn first_nonempty(dir: &Path, files: &[&str]) -> Result<Vec<BlkioEntry>> {
    for f in files {
        let entries = blkio_entries(dir, f)?;
        if !entries.is_empty() {
            return Ok(entries);
        }
    }
    Ok(Vec::new())
}

fn blkio(dir: &Path, s: &mut Stats) -> Result<()> {
    let b = &mut s.blkio;
    // The CFQ files first, then BFQ's, then the throttle layer's (which always exist).
    b.io_service_bytes_recursive = first_nonempty(
        dir,
        &[
            "blkio.io_service_bytes_recursive",
            "blkio.bfq.io_service_bytes_recursive",
            "blkio.throttle.io_service_bytes_recursive",
        ],
    )?;
    b.io_serviced_recursive = first_nonempty(
        dir,
        &[
            "blkio.io_serviced_recursive",
            "blkio.bfq.io_serviced_recursive",
            "blkio.throttle.io_serviced_recursive",
        ],
    )?;
    b.io_queued_recursive = blkio_entries(dir, "blkio.io_queued_recursive")?;
    b.io_service_time_recursive = blkio_entries(dir, "blkio.io_service_time_recursive")?;
    b.io_wait_time_recursive = blkio_entries(dir, "blkio.io_wait_time_recursive")?;
    b.io_merged_recursive = blkio_entries(dir, "blkio.io_merged_recursive")?;
    b.io_time_recursive = blkio_entries(dir, "blkio.time_recursive")?;
    b.sectors_recursive = blkio_entries(dir, "blkio.sectors_recursive")?;
    Ok(())
}
