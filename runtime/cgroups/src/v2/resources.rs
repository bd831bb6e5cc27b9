//! Writing OCI resources into v2 interface files, converting v1-style values as runc and
//! crun do.

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::V2Manager;
use crate::error::{Error, Result};
use crate::resources::{
    blkio_weight_to_io_weight, check_control_file_name, pids_max, rdma_lines, shares_to_weight,
    v2_limit, v2_swap,
};
use crate::{devices, ebpf, fs};

/// Applies everything that is set in `r`.
pub(super) fn apply(m: &V2Manager, r: &LinuxResources) -> Result<()> {
    let dir = m.dir();
    if let Some(c) = r.cpu() {
        cpu(dir, c)?;
    }
    if let Some(mem) = r.memory() {
        memory(dir, mem)?;
    }
    if let Some(p) = r.pids() {
        fs::write(dir, "pids.max", pids_max(p.limit()))?;
    }
    if let Some(b) = r.block_io() {
        io(dir, b)?;
    }
    for l in r.hugepage_limits().iter().flatten() {
        let value = v2_limit("huge page limit", l.limit())?;
        fs::write(dir, &format!("hugetlb.{}.max", l.page_size()), &value)?;
        let rsvd = format!("hugetlb.{}.rsvd.max", l.page_size());
        if fs::exists(dir, &rsvd) {
            fs::write(dir, &rsvd, &value)?;
        }
    }
    if let Some(rdma) = r.rdma() {
        for line in rdma_lines(rdma) {
            fs::write(dir, "rdma.max", line)?;
        }
    }
    if let Some(n) = r.network() {
        if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            return Err(Error::Unsupported(
                "network class ids and priorities need the cgroup v1 net_cls/net_prio controllers"
                    .into(),
            ));
        }
    }
    // Verbatim unified values go last so they can override the converted ones.
    if let Some(unified) = r.unified() {
        let mut keys: Vec<&String> = unified.keys().collect();
        keys.sort();
        for k in keys {
            check_control_file_name(k)?;
            fs::write(dir, k, &unified[k])?;
        }
    }
    if let Some(rules) = r.devices() {
        ebpf::apply(dir, &devices::normalize(rules)?)?;
    }
    Ok(())
}

fn cpu(dir: &std::path::Path, c: &LinuxCpu) -> Result<()> {
    if c.realtime_runtime().is_some_and(|v| v != 0) || c.realtime_period().is_some_and(|v| v != 0) {
        return Err(Error::Unsupported(
            "realtime CPU runtime/period is not supported on cgroup v2".into(),
        ));
    }
    if let Some(shares) = c.shares().filter(|&s| s != 0) {
        fs::write(dir, "cpu.weight", shares_to_weight(shares))?;
    }
    let quota = c.quota().unwrap_or(0);
    let period = c.period().unwrap_or(0);
    if quota != 0 || period != 0 {
        // "$QUOTA $PERIOD"; a negative quota is "max"; an absent quota or period keeps the
        // current one (a live update of the period alone must not lift the quota).
        let mut value = match quota {
            0 => fs::read(dir, "cpu.max")?
                .split_whitespace()
                .next()
                .unwrap_or("max")
                .to_string(),
            q if q > 0 => q.to_string(),
            _ => "max".to_string(),
        };
        if period != 0 {
            value.push_str(&format!(" {period}"));
        }
        fs::write(dir, "cpu.max", value)?;
    }
    if let Some(burst) = c.burst() {
        fs::write(dir, "cpu.max.burst", burst)?;
    }
    if let Some(idle) = c.idle() {
        fs::write(dir, "cpu.idle", idle)?;
    }
    for (value, file) in [(c.cpus(), "cpuset.cpus"), (c.mems(), "cpuset.mems")] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            fs::write(dir, file, v)?;
        }
    }
    Ok(())
}

fn memory(dir: &std::path::Path, mem: &LinuxMemory) -> Result<()> {
    let limit = mem.limit().unwrap_or(0);
    if limit > 0 && mem.check_before_update() == Some(true) {
        let usage = fs::read_u64(dir, "memory.current")?;
        if (limit as u64) < usage {
            return Err(Error::InvalidResources(format!(
                "memory limit {limit} is below the current usage {usage}"
            )));
        }
    }
    if let Some(swap) = v2_swap(mem.swap().unwrap_or(0), limit)? {
        match fs::write(dir, "memory.swap.max", &swap) {
            // Without swap accounting, "unlimited" is what the kernel does anyway.
            Err(e) if swap == "max" && e.errno() == Some(libc::ENOENT) => {}
            other => other?,
        }
    }
    if limit != 0 {
        fs::write(dir, "memory.max", v2_limit("memory limit", limit)?)?;
    }
    if let Some(r) = mem.reservation().filter(|&r| r != 0) {
        fs::write(dir, "memory.low", v2_limit("memory reservation", r)?)?;
    }
    // swappiness, disableOOMKiller, kernel and kernelTCP have no v2 equivalent and are
    // ignored, as in crun.
    Ok(())
}

fn io(dir: &std::path::Path, b: &LinuxBlockIo) -> Result<()> {
    let bfq = fs::exists(dir, "io.bfq.weight");
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        if bfq {
            fs::write(dir, "io.bfq.weight", w)?;
        } else {
            fs::write(dir, "io.weight", blkio_weight_to_io_weight(w))?;
        }
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(w) = wd.weight() {
            let (file, w) = if bfq {
                ("io.bfq.weight", u64::from(w))
            } else {
                ("io.weight", blkio_weight_to_io_weight(w))
            };
            fs::write(dir, file, format!("{}:{} {w}", wd.major(), wd.minor()))?;
        }
    }
    // One io.max line per device and key; a rate of 0 removes the limit, as on v1.
    let throttles = [
        (b.throttle_read_bps_device(), "rbps"),
        (b.throttle_write_bps_device(), "wbps"),
        (b.throttle_read_iops_device(), "riops"),
        (b.throttle_write_iops_device(), "wiops"),
    ];
    for (devices, key) in throttles {
        for t in devices.iter().flatten() {
            let rate = match t.rate() {
                0 => "max".to_string(),
                r => r.to_string(),
            };
            let line = format!("{}:{} {key}={rate}", t.major(), t.minor());
            fs::write(dir, "io.max", line)?;
        }
    }
    Ok(())
}
