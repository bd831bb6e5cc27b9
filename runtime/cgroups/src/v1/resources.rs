//! Writing OCI resources into v1 controller files.

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxNetwork, LinuxResources, LinuxThrottleDevice,
};

use super::V1Manager;
use crate::devices;
use crate::error::{Error, Result};
use crate::fs;
use crate::resources::{pids_max, rdma_lines, v1_limit};

/// Applies everything that is set in `r`.
pub(super) fn apply(m: &V1Manager, r: &LinuxResources) -> Result<()> {
    if let Some(u) = r.unified() {
        if !u.is_empty() {
            return Err(Error::Unsupported(
                "unified (cgroup v2) resources cannot be applied on a cgroup v1 host".into(),
            ));
        }
    }
    if let Some(cpu) = r.cpu() {
        cpuset(m, cpu)?;
    }
    if let Some(rules) = r.devices() {
        device_rules(m, rules)?;
    }
    if let Some(mem) = r.memory() {
        memory(m, mem)?;
    }
    if let Some(c) = r.cpu() {
        cpu(m, c)?;
    }
    if let Some(p) = r.pids() {
        fs::write(
            m.need("pids", "a pids limit")?,
            "pids.max",
            pids_max(p.limit()),
        )?;
    }
    if let Some(b) = r.block_io() {
        blkio(m, b)?;
    }
    if let Some(limits) = r.hugepage_limits() {
        if !limits.is_empty() {
            let dir = m.need("hugetlb", "a huge page limit")?;
            for l in limits {
                let file = format!("hugetlb.{}.limit_in_bytes", l.page_size());
                fs::write(dir, &file, v1_limit("huge page limit", l.limit())?)?;
            }
        }
    }
    if let Some(n) = r.network() {
        network(m, n)?;
    }
    if let Some(rdma) = r.rdma() {
        let lines = rdma_lines(rdma);
        if !lines.is_empty() {
            let dir = m.need("rdma", "an rdma limit")?;
            for line in lines {
                fs::write(dir, "rdma.max", line)?;
            }
        }
    }
    Ok(())
}

fn cpuset(m: &V1Manager, c: &LinuxCpu) -> Result<()> {
    for (value, file) in [(c.cpus(), "cpuset.cpus"), (c.mems(), "cpuset.mems")] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            fs::write(m.need("cpuset", "a cpuset")?, file, v)?;
        }
    }
    Ok(())
}

fn cpu(m: &V1Manager, c: &LinuxCpu) -> Result<()> {
    let dir = || m.need("cpu", "a cpu limit");
    if let Some(shares) = c.shares().filter(|&s| s != 0) {
        fs::write(dir()?, "cpu.shares", shares)?;
    }
    let quota = c.quota().filter(|&q| q != 0);
    let mut period_pending = None;
    if let Some(period) = c.period().filter(|&p| p != 0) {
        match fs::write(dir()?, "cpu.cfs_period_us", period) {
            Ok(()) => {}
            // A shorter period can make the old quota exceed the parent's bandwidth; retry
            // after writing the new quota.
            Err(e) if e.errno() == Some(libc::EINVAL) && quota.is_some() => {
                period_pending = Some(period);
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(q) = quota {
        fs::write(dir()?, "cpu.cfs_quota_us", q.max(-1))?;
        if let Some(period) = period_pending {
            fs::write(dir()?, "cpu.cfs_period_us", period)?;
        }
    }
    if let Some(burst) = c.burst() {
        fs::write(dir()?, "cpu.cfs_burst_us", burst)?;
    }
    if let Some(p) = c.realtime_period().filter(|&p| p != 0) {
        fs::write(dir()?, "cpu.rt_period_us", p)?;
    }
    if let Some(r) = c.realtime_runtime().filter(|&r| r != 0) {
        fs::write(dir()?, "cpu.rt_runtime_us", r)?;
    }
    if let Some(idle) = c.idle() {
        fs::write(dir()?, "cpu.idle", idle)?;
    }
    Ok(())
}

const LIMIT: &str = "memory.limit_in_bytes";
const MEMSW: &str = "memory.memsw.limit_in_bytes";

fn memory(m: &V1Manager, mem: &LinuxMemory) -> Result<()> {
    let dir = || m.need("memory", "a memory limit");
    let limit = mem.limit().unwrap_or(0);
    let mut swap = mem.swap().unwrap_or(0);
    if limit != 0 && mem.check_before_update() == Some(true) {
        let usage = fs::read_u64(dir()?, "memory.usage_in_bytes")?;
        if limit > 0 && (limit as u64) < usage {
            return Err(Error::InvalidResources(format!(
                "memory limit {limit} is below the current usage {usage}"
            )));
        }
    }
    // Unlimited memory with swap unset means unlimited memory+swap too (when swap accounting
    // exists), as runc does.
    if limit == -1 && swap == 0 && fs::exists(dir()?, MEMSW) {
        swap = -1;
    }
    // memory.memsw.limit_in_bytes must stay >= memory.limit_in_bytes at every moment, so the
    // order of the two writes depends on whether the limits grow or shrink.
    let mut swap_first = false;
    if limit != 0 && swap != 0 {
        let current = fs::read_u64(dir()?, LIMIT)?;
        swap_first = swap == -1 || current < swap as u64;
    }
    if swap_first {
        fs::write(dir()?, MEMSW, v1_limit("memory+swap limit", swap)?)?;
    }
    if limit != 0 {
        fs::write(dir()?, LIMIT, v1_limit("memory limit", limit)?)?;
    }
    if swap != 0 && !swap_first {
        fs::write(dir()?, MEMSW, v1_limit("memory+swap limit", swap)?)?;
    }
    if let Some(r) = mem.reservation().filter(|&r| r != 0) {
        fs::write(
            dir()?,
            "memory.soft_limit_in_bytes",
            v1_limit("memory reservation", r)?,
        )?;
    }
    if let Some(s) = mem.swappiness() {
        if s > 100 {
            return Err(Error::InvalidResources(format!(
                "memory swappiness {s} is above 100"
            )));
        }
        fs::write(dir()?, "memory.swappiness", s)?;
    }
    if mem.disable_oom_killer() == Some(true) {
        fs::write(dir()?, "memory.oom_control", 1)?;
    }
    // kernel and kernelTCP limits are deprecated by the kernel and ignored, as in runc.
    Ok(())
}

fn blkio(m: &V1Manager, b: &LinuxBlockIo) -> Result<()> {
    let dir = || m.need("blkio", "a block I/O limit");
    // CFQ-era kernels have blkio.weight; with BFQ the files are blkio.bfq.*.
    let weight_file = |d: &std::path::Path| {
        if fs::exists(d, "blkio.weight") {
            ("blkio.weight", "blkio.weight_device")
        } else {
            ("blkio.bfq.weight", "blkio.bfq.weight_device")
        }
    };
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        let d = dir()?;
        fs::write(d, weight_file(d).0, w)?;
    }
    if let Some(w) = b.leaf_weight().filter(|&w| w != 0) {
        fs::write(dir()?, "blkio.leaf_weight", w)?;
    }
    for wd in b.weight_device().iter().flatten() {
        let d = dir()?;
        if let Some(w) = wd.weight() {
            let line = format!("{}:{} {w}", wd.major(), wd.minor());
            fs::write(d, weight_file(d).1, line)?;
        }
        if let Some(w) = wd.leaf_weight() {
            let line = format!("{}:{} {w}", wd.major(), wd.minor());
            fs::write(d, "blkio.leaf_weight_device", line)?;
        }
    }
    let throttles: [(&Option<Vec<LinuxThrottleDevice>>, &str); 4] = [
        (
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
        ),
        (
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
        ),
        (
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
        ),
        (
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
        ),
    ];
    for (devices, file) in throttles {
        for t in devices.iter().flatten() {
            let line = format!("{}:{} {}", t.major(), t.minor(), t.rate());
            fs::write(dir()?, file, line)?;
        }
    }
    Ok(())
}

fn network(m: &V1Manager, n: &LinuxNetwork) -> Result<()> {
    if let Some(id) = n.class_id() {
        fs::write(
            m.need("net_cls", "a network class id")?,
            "net_cls.classid",
            id,
        )?;
    }
    for p in n.priorities().iter().flatten() {
        let dir = m.need("net_prio", "network priorities")?;
        fs::write(
            dir,
            "net_prio.ifpriomap",
            format!("{} {}", p.name(), p.priority()),
        )?;
    }
    Ok(())
}

/// Denies everything, then writes each rule in order (later rules override earlier ones).
fn device_rules(m: &V1Manager, rules: &[oci_spec::runtime::LinuxDeviceCgroup]) -> Result<()> {
    let rules = devices::normalize(rules)?;
    let dir = m.need("devices", "device rules")?;
    fs::write(dir, "devices.deny", "a")?;
    for rule in &rules {
        let file = if rule.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        fs::write(dir, file, rule.v1_line())?;
    }
    Ok(())
}
