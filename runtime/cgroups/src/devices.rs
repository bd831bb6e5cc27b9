//! Device access rules: the OCI rule list normalized once, then rendered for v1
//! (devices.allow / devices.deny lines) or compiled to eBPF for v2 (see `ebpf`).

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

/// Access bits, with the values the kernel's cgroup device eBPF context uses.
pub(crate) const ACCESS_MKNOD: u32 = 1;
pub(crate) const ACCESS_READ: u32 = 2;
pub(crate) const ACCESS_WRITE: u32 = 4;
/// Read, write and mknod.
pub(crate) const ACCESS_ALL: u32 = ACCESS_MKNOD | ACCESS_READ | ACCESS_WRITE;

/// Which kind of device a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    All,
    Block,
    Char,
}

/// One validated device rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceRule {
    pub allow: bool,
    pub kind: Kind,
    /// `None` is the wildcard.
    pub major: Option<u32>,
    /// `None` is the wildcard.
    pub minor: Option<u32>,
    /// A non-empty set of `ACCESS_*` bits.
    pub access: u32,
}

impl DeviceRule {
    /// The line written to v1 devices.allow or devices.deny, e.g. "c 1:3 rwm" or "a".
    pub(crate) fn v1_line(&self) -> String {
        let kind = match self.kind {
            Kind::All => return "a".into(),
            Kind::Block => 'b',
            Kind::Char => 'c',
        };
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        let mut access = String::new();
        for (bit, c) in [(ACCESS_READ, 'r'), (ACCESS_WRITE, 'w'), (ACCESS_MKNOD, 'm')] {
            if self.access & bit != 0 {
                access.push(c);
            }
        }
        format!("{kind} {}:{} {access}", num(self.major), num(self.minor))
    }
}

/// Validates OCI device rules. FIFO rules are dropped: the devices cgroup only governs
/// block and character devices.
pub(crate) fn normalize(rules: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>> {
    let mut out = Vec::with_capacity(rules.len());
    for r in rules {
        let kind = match r.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => Kind::All,
            LinuxDeviceType::B => Kind::Block,
            LinuxDeviceType::C | LinuxDeviceType::U => Kind::Char,
            LinuxDeviceType::P => continue,
        };
        out.push(DeviceRule {
            allow: r.allow(),
            kind,
            major: device_number(r.major(), "major")?,
            minor: device_number(r.minor(), "minor")?,
            access: parse_access(r.access().as_deref().unwrap_or(""))?,
        });
    }
    Ok(out)
}

/// A rule's major or minor: absent or -1 is the wildcard.
fn device_number(n: Option<i64>, what: &str) -> Result<Option<u32>> {
    match n {
        None | Some(-1) => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| Error::InvalidResources(format!("device {what} number {n}"))),
    }
}

/// Parses "rwm" access letters; empty means all. `a` also means all: configs written for runc
/// say "rwa" for a deny-all rule, which runc accepts (it writes a bare `a` for such a rule).
fn parse_access(s: &str) -> Result<u32> {
    if s.is_empty() {
        return Ok(ACCESS_ALL);
    }
    s.chars().try_fold(0, |acc, c| match c {
        'r' => Ok(acc | ACCESS_READ),
        'w' => Ok(acc | ACCESS_WRITE),
        'm' => Ok(acc | ACCESS_MKNOD),
        'a' => Ok(ACCESS_ALL),
        _ => Err(Error::InvalidResources(format!(
            "device access {s:?}: use the letters r, w and m"
        ))),
    })
}

/// The device rules the runtime appends after the spec's own, as runc does: mknod of any
/// block or character device, and read/write/mknod of /dev/null, /dev/zero, /dev/full,
/// /dev/tty, /dev/random, /dev/urandom, /dev/pts/*, /dev/ptmx and /dev/console.
pub fn default_allowed_devices() -> Vec<LinuxDeviceCgroup> {
    let rule = |typ, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    };
    let c = LinuxDeviceType::C;
    vec![
        rule(c, None, None, "m"),
        rule(LinuxDeviceType::B, None, None, "m"),
        rule(c, Some(1), Some(3), "rwm"),
        rule(c, Some(1), Some(5), "rwm"),
        rule(c, Some(1), Some(7), "rwm"),
        rule(c, Some(5), Some(0), "rwm"),
        rule(c, Some(1), Some(8), "rwm"),
        rule(c, Some(1), Some(9), "rwm"),
        rule(c, Some(136), None, "rwm"),
        rule(c, Some(5), Some(2), "rwm"),
        rule(c, Some(5), Some(1), "rwm"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_devices_render_as_runc_writes_them() {
        let rules = normalize(&default_allowed_devices()).unwrap();
        let lines: Vec<String> = rules.iter().map(DeviceRule::v1_line).collect();
        assert_eq!(lines[0], "c *:* m");
        assert_eq!(lines[1], "b *:* m");
        assert_eq!(lines[2], "c 1:3 rwm");
        assert_eq!(lines[8], "c 136:* rwm");
        assert!(rules.iter().all(|r| r.allow));
    }

    #[test]
    fn wildcards_and_defaults_normalize() {
        let mut r = LinuxDeviceCgroup::default();
        r.set_major(Some(-1));
        r.set_access(None);
        let n = normalize(&[r]).unwrap();
        assert_eq!(n[0].kind, Kind::All);
        assert_eq!(n[0].major, None);
        assert_eq!(n[0].access, ACCESS_ALL);
        assert_eq!(n[0].v1_line(), "a");
    }

    #[test]
    fn bad_access_is_rejected() {
        let mut r = LinuxDeviceCgroup::default();
        r.set_access(Some("rx".into()));
        assert!(normalize(&[r]).is_err());
    }
}
