//! process.rlimits: validated against the host (raising a hard limit needs CAP_SYS_RESOURCE,
//! which these hosts may lack) and applied in the init before the user's process starts.

use crate::error::{Context, Result};
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

/// The kernel's resource number for a spec rlimit type.
pub fn resource(typ: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match typ {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

fn host_limit(typ: PosixRlimitType) -> libc::rlimit {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    unsafe { libc::getrlimit(resource(typ), &mut cur) };
    cur
}

/// Rejects soft > hard, duplicates, and hard limits above the host's when they cannot be raised.
pub fn validate(list: &[PosixRlimit]) -> Result<(), String> {
    let can_raise = caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_RESOURCE,
    )
    .unwrap_or(false);
    let mut seen = Vec::new();
    for rl in list {
        let name = rl.typ().to_string();
        if seen.contains(&rl.typ()) {
            return Err(format!("rlimit {name} is set twice"));
        }
        seen.push(rl.typ());
        if rl.soft() > rl.hard() {
            return Err(format!(
                "rlimit {name}: soft limit {} exceeds hard limit {}",
                rl.soft(),
                rl.hard()
            ));
        }
        let host = host_limit(rl.typ());
        if !can_raise && rl.hard() > host.rlim_max {
            return Err(format!(
                "rlimit {name}: hard limit {} exceeds this host's hard limit {} and the runtime lacks CAP_SYS_RESOURCE to raise it: lower it to at most {}",
                rl.hard(),
                host.rlim_max,
                host.rlim_max
            ));
        }
    }
    Ok(())
}

/// Applies the limits to the calling process.
pub fn apply(list: &[PosixRlimit]) -> Result<()> {
    for rl in list {
        let lim = libc::rlimit {
            rlim_cur: rl.soft(),
            rlim_max: rl.hard(),
        };
        // SAFETY: setrlimit reads the struct we own.
        let r = unsafe { libc::setrlimit(resource(rl.typ()), &lim) };
        nix::errno::Errno::result(r).context(|| format!("setting rlimit {}", rl.typ()))?;
    }
    Ok(())
}
