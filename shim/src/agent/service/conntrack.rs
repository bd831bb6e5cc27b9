//! Forgets the connection-tracking entries of addresses that no longer lead to a service, so
//! no flow (a UDP one especially, which never ends on its own) keeps using a removed DNAT.
//! Runs the `conntrack` tool (Debian package `conntrack`): no maintained Rust crate deletes
//! conntrack entries over netlink.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// Deletes every entry whose original destination is `address`. None is fine.
pub fn flush(address: Ipv4Addr) -> Result<(), String> {
    let out = Command::new("conntrack")
        .args(["-D", "-d", &address.to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run conntrack ({e}): install the Debian package conntrack"))?;
    // It exits 1 with "0 flow entries have been deleted" when there was none.
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || stderr.contains("0 flow entries") {
        Ok(())
    } else {
        Err(format!(
            "conntrack -D -d {address}: {}",
            stderr.trim().replace('\n', " ")
        ))
    }
}
