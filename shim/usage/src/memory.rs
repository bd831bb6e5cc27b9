//! Host memory from /proc/meminfo.

use serde::Serialize;

use crate::error::{parse_error, read, Result};

const MEMINFO: &str = "/proc/meminfo";

/// Host memory, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MemInfo {
    /// Usable RAM (MemTotal).
    pub total_bytes: u64,
    /// Unused RAM (MemFree).
    pub free_bytes: u64,
    /// What new work can get without swapping (MemAvailable): free plus reclaimable cache.
    pub available_bytes: u64,
    /// Block device buffers (Buffers).
    pub buffers_bytes: u64,
    /// Page cache (Cached).
    pub cached_bytes: u64,
    /// Swap space (SwapTotal).
    pub swap_total_bytes: u64,
    /// Unused swap (SwapFree).
    pub swap_free_bytes: u64,
}

impl MemInfo {
    /// Reads /proc/meminfo.
    pub fn read() -> Result<MemInfo> {
        MemInfo::parse(&read(MEMINFO)?)
    }

    /// Parses the text of /proc/meminfo ("Key:   N kB" lines).
    pub fn parse(text: &str) -> Result<MemInfo> {
        let mut m = MemInfo::default();
        let mut seen_total = false;
        for line in text.lines() {
            let Some((key, rest)) = line.split_once(':') else {
                continue;
            };
            let slot = match key {
                "MemTotal" => &mut m.total_bytes,
                "MemFree" => &mut m.free_bytes,
                "MemAvailable" => &mut m.available_bytes,
                "Buffers" => &mut m.buffers_bytes,
                "Cached" => &mut m.cached_bytes,
                "SwapTotal" => &mut m.swap_total_bytes,
                "SwapFree" => &mut m.swap_free_bytes,
                _ => continue,
            };
            let mut f = rest.split_whitespace();
            let value: u64 = f
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| parse_error(MEMINFO, line))?;
            let unit = match f.next() {
                Some("kB") => 1024,
                None => 1,
                Some(_) => return Err(parse_error(MEMINFO, line)),
            };
            *slot = value * unit;
            seen_total |= key == "MemTotal";
        }
        if !seen_total {
            return Err(parse_error(MEMINFO, "no MemTotal line"));
        }
        Ok(m)
    }

    /// RAM in use: total − available.
    pub fn used_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub(self.available_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kilobytes_become_bytes() {
        let m = MemInfo::parse(
            "MemTotal:       16384 kB\nMemFree:  1024 kB\nMemAvailable:    8192 kB\nHugePages_Total:       0\nSwapTotal: 0 kB\n",
        )
        .unwrap();
        assert_eq!(m.total_bytes, 16 << 20);
        assert_eq!(m.available_bytes, 8 << 20);
        assert_eq!(m.used_bytes(), 8 << 20);
        assert!(MemInfo::parse("MemFree: 1 kB\n").is_err());
        assert!(MemInfo::parse("MemTotal: x kB\n").is_err());
    }
}
