//! `update`: change the resource limits of a live container, from runc's flags or from a
//! LinuxResources JSON (`-r FILE`, `-r -` for stdin). As in runc, a value of 0 (or a flag not
//! given) leaves the current setting alone, and device rules are never updated.

use crate::error::{Error, Result};
use crate::input_file;
use crate::state::{ContainerDir, Status};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
use std::path::{Path, PathBuf};

/// What `update` changes; `None` leaves a setting as it is. Memory values are strings in
/// runc's notation (bytes, `512k`, `64m`, `1g`, or `-1` for unlimited).
#[derive(Debug, Clone, Default)]
pub struct UpdateOptions {
    /// A LinuxResources JSON file, or `-` for stdin; excludes every other option.
    pub resources: Option<PathBuf>,
    /// Memory limit.
    pub memory: Option<String>,
    /// Memory soft limit.
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit.
    pub memory_swap: Option<String>,
    /// Kernel memory limit: validated, then ignored (the kernel no longer supports it).
    pub kernel_memory: Option<String>,
    /// CPU shares (relative weight).
    pub cpu_shares: Option<u64>,
    /// CFS period in microseconds.
    pub cpu_period: Option<u64>,
    /// CFS quota in microseconds per period (-1: unlimited).
    pub cpu_quota: Option<i64>,
    /// Realtime period in microseconds.
    pub cpu_rt_period: Option<u64>,
    /// Realtime runtime in microseconds per period.
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs to run on, e.g. "0-1".
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use, e.g. "0".
    pub cpuset_mems: Option<String>,
    /// Maximum number of processes (-1: unlimited).
    pub pids_limit: Option<i64>,
    /// Block I/O weight, 10 to 1000.
    pub blkio_weight: Option<u16>,
}

impl UpdateOptions {
    fn has_flags(&self) -> bool {
        self.memory.is_some()
            || self.memory_reservation.is_some()
            || self.memory_swap.is_some()
            || self.kernel_memory.is_some()
            || self.cpu_shares.is_some()
            || self.cpu_period.is_some()
            || self.cpu_quota.is_some()
            || self.cpu_rt_period.is_some()
            || self.cpu_rt_runtime.is_some()
            || self.cpuset_cpus.is_some()
            || self.cpuset_mems.is_some()
            || self.pids_limit.is_some()
            || self.blkio_weight.is_some()
    }
}

/// Applies the changes in `opts` to the created, running or paused container `id`.
pub fn update(root: &Path, id: &str, opts: &UpdateOptions) -> Result<()> {
    let resources = match &opts.resources {
        Some(_) if opts.has_flags() => return Err(Error::invalid(
            "--resources cannot be combined with other update flags: put every change in the JSON",
        )),
        Some(path) => read_resources(path)?,
        None => from_flags(opts)?,
    };
    let dir = ContainerDir::open(root, id)?;
    let rec = dir.load()?;
    let status = rec.status(&dir);
    if !matches!(status, Status::Created | Status::Running | Status::Paused) {
        return Err(Error::invalid(format!(
            "cannot update container {id:?}: it is {status}, and only a created, running or paused container can be updated"
        )));
    }
    let cgroup = super::cgroup(&rec)?;
    crate::logging::debug(&format!(
        "update {id}: writing the new limits to cgroup {}",
        cgroup.path().display()
    ));
    cgroup.apply(&resources).map_err(|e| {
        let limit = resources.memory().as_ref().and_then(|m| m.limit());
        match (limit, &e) {
            (Some(limit), mini_cgroups::Error::Write { path, source, .. })
                if source.raw_os_error() == Some(libc::EBUSY)
                    && path.to_string_lossy().contains("memory.") =>
            {
                below_usage(id, limit, cgroup.as_ref())
            }
            _ => e.into(),
        }
    })
}

/// The kernel refuses (EBUSY) a v1 memory limit below what the cgroup uses and cannot reclaim:
/// say so with the usage, as runc does.
fn below_usage(id: &str, limit: i64, cgroup: &dyn mini_cgroups::Manager) -> Error {
    let usage = cgroup.stats().map(|s| s.memory.usage);
    let usage = match usage {
        Ok(u) => format!("{} bytes ({} MiB)", u.usage, u.usage >> 20),
        Err(e) => format!("more (its usage could not be read: {e})"),
    };
    Error::invalid(format!(
        "cannot set the memory limit of container {id:?} to {limit} bytes: it uses {usage} now, \
         which the kernel could not reclaim below the limit (EBUSY); free memory in the container \
         or give a limit above its usage"
    ))
}

/// Reads a LinuxResources JSON and keeps what runc's update applies.
fn read_resources(path: &Path) -> Result<LinuxResources> {
    let stdin = path == Path::new("-");
    let data = if stdin {
        input_file::read_from(std::io::stdin().lock(), input_file::JSON_LIMIT)
    } else {
        input_file::read(path, input_file::JSON_LIMIT)
    }
    .map_err(|e| {
        Error::invalid(format!(
            "reading resources from {}: {e}: give a LinuxResources JSON file",
            if stdin {
                "stdin".to_string()
            } else {
                path.display().to_string()
            }
        ))
    })?;
    let given: LinuxResources = serde_json::from_slice(&data).map_err(|e| {
        Error::invalid(format!(
            "{} is not a LinuxResources JSON object ({e}): see the OCI runtime spec's linux.resources",
            if path == Path::new("-") { "stdin".to_string() } else { path.display().to_string() }
        ))
    })?;
    let mut r = LinuxResources::default();
    r.set_memory(*given.memory());
    r.set_cpu(given.cpu().clone());
    // A pids limit of 0 means "unchanged", as in runc.
    r.set_pids(given.pids().filter(|p| p.limit() != 0));
    r.set_block_io(given.block_io().clone());
    r.set_hugepage_limits(given.hugepage_limits().clone());
    r.set_unified(given.unified().clone());
    Ok(r)
}

/// Builds the resources the flags ask for.
fn from_flags(o: &UpdateOptions) -> Result<LinuxResources> {
    let mut r = LinuxResources::default();
    let bytes =
        |flag: &str, v: &Option<String>| v.as_deref().map(|v| parse_bytes(flag, v)).transpose();
    let limit = bytes("--memory", &o.memory)?;
    let reservation = bytes("--memory-reservation", &o.memory_reservation)?;
    let swap = bytes("--memory-swap", &o.memory_swap)?;
    bytes("--kernel-memory", &o.kernel_memory)?;
    if limit.is_some() || reservation.is_some() || swap.is_some() {
        let mut m = LinuxMemory::default();
        m.set_limit(limit);
        m.set_reservation(reservation);
        m.set_swap(swap);
        r.set_memory(Some(m));
    }
    let cpu_set = o.cpu_shares.is_some()
        || o.cpu_period.is_some()
        || o.cpu_quota.is_some()
        || o.cpu_rt_period.is_some()
        || o.cpu_rt_runtime.is_some()
        || o.cpuset_cpus.is_some()
        || o.cpuset_mems.is_some();
    if cpu_set {
        let mut c = LinuxCpu::default();
        c.set_shares(o.cpu_shares);
        c.set_period(o.cpu_period);
        c.set_quota(o.cpu_quota);
        c.set_realtime_period(o.cpu_rt_period);
        c.set_realtime_runtime(o.cpu_rt_runtime);
        c.set_cpus(o.cpuset_cpus.clone());
        c.set_mems(o.cpuset_mems.clone());
        r.set_cpu(Some(c));
    }
    if let Some(limit) = o.pids_limit.filter(|&l| l != 0) {
        let mut p = LinuxPids::default();
        p.set_limit(limit);
        r.set_pids(Some(p));
    }
    if let Some(w) = o.blkio_weight.filter(|&w| w != 0) {
        if !(10..=1000).contains(&w) {
            return Err(Error::invalid(format!(
                "invalid --blkio-weight {w}: use a weight from 10 to 1000"
            )));
        }
        let mut b = LinuxBlockIo::default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    Ok(r)
}

/// Parses a size as runc (docker's units.RAMInBytes) does: a decimal number with an optional
/// binary unit `k`, `m`, `g`, `t` or `p` (any case, optionally followed by `i` and/or `b`),
/// or `-1` for unlimited.
pub fn parse_bytes(flag: &str, text: &str) -> Result<i64> {
    let bad = || {
        Error::invalid(format!(
            "invalid {flag} value {text:?}: use bytes or a size like 512k, 64m, 1g, or -1 for unlimited"
        ))
    };
    let t = text.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    if !number.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(bad());
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(bad()),
    };
    let bytes = value * (1u64 << shift) as f64;
    if bytes >= i64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_runc() {
        let p = |s| parse_bytes("--memory", s);
        assert_eq!(p("100").unwrap(), 100);
        assert_eq!(p("512k").unwrap(), 512 * 1024);
        assert_eq!(p("64m").unwrap(), 64 << 20);
        assert_eq!(p("64MiB").unwrap(), 64 << 20);
        assert_eq!(p("64 MB").unwrap(), 64 << 20);
        assert_eq!(p("1g").unwrap(), 1 << 30);
        assert_eq!(p("1.5G").unwrap(), 3 << 29);
        assert_eq!(p("-1").unwrap(), -1);
        for bad in ["", "-2", "m", "64x", "1..5m", "99999999p", "64mm"] {
            assert!(p(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn flags_set_only_what_is_given() {
        let r = from_flags(&UpdateOptions {
            memory: Some("64m".into()),
            pids_limit: Some(20),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(r.memory().unwrap().limit(), Some(64 << 20));
        assert_eq!(r.memory().unwrap().swap(), None);
        assert_eq!(r.pids().unwrap().limit(), 20);
        assert!(r.cpu().is_none() && r.block_io().is_none() && r.devices().is_none());
        let none = from_flags(&UpdateOptions {
            pids_limit: Some(0),
            ..Default::default()
        })
        .unwrap();
        assert!(none.pids().is_none());
    }
}
