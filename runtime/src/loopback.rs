//! The loopback interface of a new network namespace. The kernel creates `lo` down; runc and
//! crun bring it up, so a container on an otherwise isolated network can still reach its own
//! 127.0.0.1 (health checks, sidecars, programs that talk to themselves). Two ioctls on a
//! datagram socket do it: no netlink round trip, no tool.

use crate::error::{Context, Result};
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
use std::os::fd::AsRawFd;

/// Sets `IFF_UP` on `lo` in the calling process's network namespace.
pub fn up() -> Result<()> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context(|| "opening a socket to bring up the loopback interface")?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the interface named in `req` and fills its flags field.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
    nix::errno::Errno::result(r).context(|| "reading the loopback interface's flags")?;
    // SAFETY: the kernel filled the flags member of the union just above.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads `req`, which names lo and carries the new flags.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) };
    nix::errno::Errno::result(r).context(|| "bringing up the loopback interface")?;
    Ok(())
}
