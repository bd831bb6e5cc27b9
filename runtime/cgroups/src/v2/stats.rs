//! Reading v2 statistics files into [`Stats`].

use std::path::Path;

use crate::error::{Error, Result};
use crate::fs;
use crate::stats::{
    hugepage_sizes, parse_cpu_list, read_psi, BlkioEntry, Hugetlb, MemoryEntry, Stats,
};

pub(super) fn collect(dir: &Path) -> Result<Stats> {
    let mut s = Stats::default();
    let cpu = fs::read_flat_keyed(dir, "cpu.stat")?;
    let us = |k: &str| cpu.get(k).copied().unwrap_or(0).saturating_mul(1000);
    s.cpu.usage.total = us("usage_usec");
    s.cpu.usage.user = us("user_usec");
    s.cpu.usage.kernel = us("system_usec");
    s.cpu.throttling.periods = cpu.get("nr_periods").copied().unwrap_or(0);
    s.cpu.throttling.throttled_periods = cpu.get("nr_throttled").copied().unwrap_or(0);
    s.cpu.throttling.throttled_time = us("throttled_usec");
    s.cpu.psi = read_psi(dir, "cpu.pressure");

    for (file, out) in [
        ("cpuset.cpus.effective", &mut s.cpuset.cpus),
        ("cpuset.mems.effective", &mut s.cpuset.mems),
    ] {
        if fs::exists(dir, file) {
            *out = parse_cpu_list(&fs::read(dir, file)?);
        }
    }

    if fs::exists(dir, "memory.current") {
        memory(dir, &mut s)?;
    }
    if fs::exists(dir, "pids.current") {
        s.pids.current = fs::read_u64(dir, "pids.current")?;
        s.pids.limit = match fs::read_u64(dir, "pids.max")? {
            u64::MAX => 0,
            v => v,
        };
    }
    io(dir, &mut s)?;
    for size in hugepage_sizes()? {
        let current = format!("hugetlb.{size}.current");
        if let Some(usage) = fs::read_u64_opt(dir, &current)? {
            let events = fs::read_flat_keyed(dir, &format!("hugetlb.{size}.events"))?;
            let failcnt = events.get("max").copied().unwrap_or(0);
            s.hugetlb.insert(
                size,
                Hugetlb {
                    usage,
                    max: 0,
                    failcnt,
                },
            );
        }
    }
    Ok(s)
}

/// "memory" or "memory.swap" usage, limit and peak.
fn memory_entry(dir: &Path, prefix: &str) -> Result<MemoryEntry> {
    let get = |name: &str| fs::read_u64_opt(dir, &format!("{prefix}.{name}"));
    Ok(MemoryEntry {
        usage: get("current")?.unwrap_or(0),
        limit: get("max")?.unwrap_or(0),
        max: get("peak")?.unwrap_or(0),
        failcnt: 0,
    })
}

fn memory(dir: &Path, s: &mut Stats) -> Result<()> {
    let m = &mut s.memory;
    m.raw = fs::read_flat_keyed(dir, "memory.stat")?;
    m.cache = m.raw.get("file").copied().unwrap_or(0);
    m.usage = memory_entry(dir, "memory")?;
    // v1 reports memory+swap; report the same on v2 so consumers need not care.
    let swap = memory_entry(dir, "memory.swap")?;
    m.swap = MemoryEntry {
        usage: swap.usage.saturating_add(m.usage.usage),
        limit: if swap.limit == u64::MAX {
            u64::MAX
        } else {
            swap.limit.saturating_add(m.usage.limit)
        },
        max: 0,
        failcnt: 0,
    };
    m.psi = read_psi(dir, "memory.pressure");
    Ok(())
}

fn io(dir: &Path, s: &mut Stats) -> Result<()> {
    s.blkio.psi = read_psi(dir, "io.pressure");
    if !fs::exists(dir, "io.stat") {
        return Ok(());
    }
    let path = dir.join("io.stat");
    // "MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N"
    for line in fs::read(dir, "io.stat")?.lines() {
        let mut fields = line.split_whitespace();
        let Some(dev) = fields.next() else {
            continue;
        };
        let bad = || Error::Parse {
            path: path.clone(),
            content: line.into(),
        };
        let (major, minor) = dev.split_once(':').ok_or_else(bad)?;
        let (major, minor) = (fs::parse_u64(&path, major)?, fs::parse_u64(&path, minor)?);
        for kv in fields {
            let (k, v) = kv.split_once('=').ok_or_else(bad)?;
            let (list, op) = match k {
                "rbytes" => (&mut s.blkio.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut s.blkio.io_service_bytes_recursive, "Write"),
                "dbytes" => (&mut s.blkio.io_service_bytes_recursive, "Discard"),
                "rios" => (&mut s.blkio.io_serviced_recursive, "Read"),
                "wios" => (&mut s.blkio.io_serviced_recursive, "Write"),
                "dios" => (&mut s.blkio.io_serviced_recursive, "Discard"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value: fs::parse_u64(&path, v)?,
            });
        }
    }
    Ok(())
}
