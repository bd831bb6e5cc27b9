//! Unit conversions between OCI resource values and cgroup file values that both the v1 and
//! v2 writers share.

use std::collections::HashMap;

use oci_spec::runtime::LinuxRdma;

use crate::error::{Error, Result};

/// Smallest and largest values the kernel accepts for v1 cpu.shares.
const MIN_SHARES: u64 = 2;
const MAX_SHARES: u64 = 262_144;

/// Converts v1 cpu.shares (2..=262144) to v2 cpu.weight (1..=10000) with crun's formula
/// `1 + ((shares - 2) * 9999) / 262142`; values out of range are clamped first.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(MIN_SHARES, MAX_SHARES);
    1 + ((shares - MIN_SHARES) * 9999) / (MAX_SHARES - MIN_SHARES)
}

/// Converts a v1 blkio weight (10..=1000) to a v2 io.weight (1..=10000), as runc does.
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    let w = u64::from(weight.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// A v2 limit value: -1 is "max", other negatives are invalid.
pub(crate) fn v2_limit(what: &str, value: i64) -> Result<String> {
    match value {
        -1 => Ok("max".into()),
        v if v < 0 => Err(Error::InvalidResources(format!("{what} {v} is negative"))),
        v => Ok(v.to_string()),
    }
}

/// A v1 limit value: -1 means unlimited and is written as is; other negatives are invalid.
pub(crate) fn v1_limit(what: &str, value: i64) -> Result<String> {
    match value {
        v if v < -1 => Err(Error::InvalidResources(format!("{what} {v} is negative"))),
        v => Ok(v.to_string()),
    }
}

/// The pids.max value: runc treats any limit <= 0 as unlimited.
pub(crate) fn pids_max(limit: i64) -> String {
    if limit <= 0 {
        "max".into()
    } else {
        limit.to_string()
    }
}

/// Converts the OCI memory+swap limit to v2 memory.swap.max (swap only), as runc does.
/// Returns `None` when nothing should be written. `limit` and `swap` are 0 when unset.
pub(crate) fn v2_swap(swap: i64, limit: i64) -> Result<Option<String>> {
    // Unlimited memory with swap left unset means unlimited swap too, as on v1.
    if limit == -1 && swap == 0 {
        return Ok(Some("max".into()));
    }
    match swap {
        0 => return Ok(None),
        -1 => return Ok(Some("max".into())),
        s if s < 0 => {
            return Err(Error::InvalidResources(format!(
                "memory swap {s} is negative"
            )))
        }
        _ => {}
    }
    if limit <= 0 {
        return Err(Error::InvalidResources(
            "a swap limit needs a memory limit".into(),
        ));
    }
    if swap < limit {
        return Err(Error::InvalidResources(format!(
            "memory+swap limit {swap} is below the memory limit {limit}"
        )));
    }
    Ok(Some((swap - limit).to_string()))
}

/// rdma.max lines ("mlx4_0 hca_handle=2 hca_object=2000"), the same on v1 and v2; devices
/// with neither limit set are skipped.
pub(crate) fn rdma_lines(rdma: &HashMap<String, LinuxRdma>) -> Vec<String> {
    let mut lines: Vec<String> = rdma
        .iter()
        .filter_map(|(dev, l)| {
            let mut line = dev.clone();
            if let Some(h) = l.hca_handles() {
                line.push_str(&format!(" hca_handle={h}"));
            }
            if let Some(o) = l.hca_objects() {
                line.push_str(&format!(" hca_object={o}"));
            }
            (line.len() > dev.len()).then_some(line)
        })
        .collect();
    lines.sort();
    lines
}

/// Rejects unified keys that would escape the cgroup directory.
pub(crate) fn check_control_file_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::InvalidResources(format!(
            "invalid unified key {name:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_convert_with_crun_formula() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(1_000_000), 10_000);
    }

    #[test]
    fn blkio_weight_converts_to_io_weight() {
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    }

    #[test]
    fn swap_is_converted_to_swap_only_on_v2() {
        assert_eq!(v2_swap(0, 0).unwrap(), None);
        assert_eq!(v2_swap(0, -1).unwrap().as_deref(), Some("max"));
        assert_eq!(v2_swap(-1, 100).unwrap().as_deref(), Some("max"));
        assert_eq!(v2_swap(300, 100).unwrap().as_deref(), Some("200"));
        assert!(v2_swap(50, 100).is_err());
        assert!(v2_swap(50, 0).is_err());
    }

    #[test]
    fn limits_map_minus_one() {
        assert_eq!(v2_limit("m", -1).unwrap(), "max");
        assert_eq!(v2_limit("m", 5).unwrap(), "5");
        assert!(v2_limit("m", -2).is_err());
        assert_eq!(v1_limit("m", -1).unwrap(), "-1");
        assert_eq!(pids_max(0), "max");
        assert_eq!(pids_max(-1), "max");
        assert_eq!(pids_max(10), "10");
    }

    #[test]
    fn unified_keys_cannot_escape() {
        assert!(check_control_file_name("memory.high").is_ok());
        assert!(check_control_file_name("../x").is_err());
        assert!(check_control_file_name("..").is_err());
    }
}
