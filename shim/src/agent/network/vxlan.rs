//! The `vxlan` backend, for nodes that are only routed to each other (no shared L2 segment):
//! a kernel VXLAN device ([`DEVICE`]) encapsulates instance traffic in UDP between the nodes'
//! own addresses. For each peer the agent keeps, through netlink (rtnetlink):
//!
//! - a route to the peer's subnet via the peer's VXLAN endpoint address (its subnet's network
//!   address, held on its device), `onlink` through [`DEVICE`] ([`super::routes`]);
//! - a permanent neighbour entry: that endpoint address has the peer device's MAC;
//! - a forwarding (FDB) entry: frames for that MAC go to the peer node's address.
//!
//! No address has to be exchanged beyond what the scheduler already sends (each peer's subnet
//! and host address): a device's MAC is derived from its node's subnet ([`mac`]), as flannel
//! derives it from what it publishes. Learning is off, so the entries the agent writes are the
//! only forwarding the device does; entries of peers that are gone are removed.

use super::routes::{connect, netlink_error};
use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::LinkVxlan;
use std::net::{IpAddr, Ipv4Addr};

/// The VXLAN device's name.
pub const DEVICE: &str = "mini-vxlan";
/// The VXLAN network identifier of the cluster network.
pub const VNI: u32 = 1;
/// The UDP port (IANA's VXLAN port).
pub const PORT: u16 = 4789;
/// The MTU of the device and of the instances' interfaces: Ethernet's 1500 less the 50 bytes
/// of the outer IPv4, UDP, VXLAN and Ethernet headers.
pub const MTU: u32 = 1450;

/// A peer node on the VXLAN network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Its subnet.
    pub subnet: Ipv4Net,
    /// Its host address (where its VXLAN packets go).
    pub host: Ipv4Addr,
}

/// The VXLAN endpoint address of the node holding `subnet`: the subnet's network address,
/// which no instance gets (host-local starts at the first host address).
pub fn endpoint(subnet: Ipv4Net) -> Ipv4Addr {
    subnet.network()
}

/// The MAC of the device of the node holding `subnet`: locally administered, unicast
/// (`0a:58`), then the subnet's network address.
pub fn mac(subnet: Ipv4Net) -> [u8; 6] {
    let o = subnet.network().octets();
    [0x0a, 0x58, o[0], o[1], o[2], o[3]]
}

/// What [`sync`] changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    /// The device's index (for the peers' routes).
    pub index: u32,
    /// Neighbour and forwarding entries added.
    pub added: usize,
    /// Neighbour and forwarding entries removed.
    pub removed: usize,
}

/// Makes the device of the node holding `subnet` exist (recreated when its MAC is not the
/// one its peers derive) with its endpoint address; returns its index.
async fn ensure_device(handle: &rtnetlink::Handle, subnet: Ipv4Net) -> Result<u32, String> {
    let wanted = mac(subnet);
    let mut links = handle.link().get().match_name(DEVICE.to_string()).execute();
    match links.try_next().await {
        Ok(Some(link)) => {
            let current = link.attributes.iter().find_map(|a| match a {
                LinkAttribute::Address(m) => Some(m.clone()),
                _ => None,
            });
            if current.as_deref() == Some(&wanted[..]) {
                return Ok(link.header.index);
            }
            handle
                .link()
                .del(link.header.index)
                .execute()
                .await
                .map_err(|e| netlink_error(&format!("replacing {DEVICE}"), e))?;
        }
        Ok(None) => {}
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {}
        Err(e) => return Err(netlink_error(&format!("finding {DEVICE}"), e)),
    }
    let message = LinkVxlan::new(DEVICE, VNI)
        .port(PORT)
        .learning(false)
        .mtu(MTU)
        .address(wanted.to_vec())
        .up()
        .build();
    handle.link().add(message).execute().await.map_err(|e| {
        netlink_error(
            &format!("creating the VXLAN device {DEVICE} (needs the kernel's vxlan module)"),
            e,
        )
    })?;
    let mut links = handle.link().get().match_name(DEVICE.to_string()).execute();
    let index = match links.try_next().await {
        Ok(Some(link)) => link.header.index,
        Ok(None) => return Err(format!("{DEVICE} vanished after it was created")),
        Err(e) => return Err(netlink_error(&format!("finding {DEVICE}"), e)),
    };
    handle
        .address()
        .add(index, IpAddr::V4(endpoint(subnet)), 32)
        .execute()
        .await
        .map_err(|e| netlink_error(&format!("addressing {DEVICE}"), e))?;
    Ok(index)
}

/// The device's entries of `family`: (the entry as listed, its address, its MAC).
async fn entries(
    handle: &rtnetlink::Handle,
    index: u32,
    family: AddressFamily,
) -> Result<Vec<(NeighbourMessage, Option<Ipv4Addr>, Vec<u8>)>, String> {
    let mut found = Vec::new();
    let mut listed = handle
        .neighbours()
        .get()
        .set_address_family(family)
        .execute();
    while let Some(entry) = listed
        .try_next()
        .await
        .map_err(|e| netlink_error("listing neighbours", e))?
    {
        if entry.header.ifindex != index {
            continue;
        }
        let mut address = None;
        let mut lladdr = Vec::new();
        for attr in &entry.attributes {
            match attr {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => address = Some(*a),
                // A forwarding entry's (family bridge) remote address is not parsed as IPv4.
                NeighbourAttribute::Destination(NeighbourAddress::Other(bytes)) => {
                    address = <[u8; 4]>::try_from(&bytes[..]).ok().map(Ipv4Addr::from);
                }
                NeighbourAttribute::LinkLayerAddress(m) => lladdr = m.clone(),
                _ => {}
            }
        }
        found.push((entry, address, lladdr));
    }
    Ok(found)
}

/// Makes the device of the node holding `subnet` exist and its neighbour and forwarding
/// entries exactly those of `peers`.
pub async fn sync(subnet: Ipv4Net, peers: &[Peer]) -> Result<Changes, String> {
    let handle = connect().await?;
    let index = ensure_device(&handle, subnet).await?;
    let mut changes = Changes {
        index,
        ..Changes::default()
    };
    // (family, address, MAC) of every wanted entry: the neighbour (endpoint → MAC) and the
    // forwarding entry (MAC → host).
    let wanted: Vec<(AddressFamily, Ipv4Addr, [u8; 6])> = peers
        .iter()
        .flat_map(|p| {
            [
                (AddressFamily::Inet, endpoint(p.subnet), mac(p.subnet)),
                (AddressFamily::Bridge, p.host, mac(p.subnet)),
            ]
        })
        .collect();
    for family in [AddressFamily::Inet, AddressFamily::Bridge] {
        let have = entries(&handle, index, family).await?;
        for (message, address, lladdr) in &have {
            // The kernel's own forwarding entries (no remote address) stay.
            let Some(address) = address else { continue };
            if !wanted
                .iter()
                .any(|(f, a, m)| *f == family && a == address && m[..] == lladdr[..])
            {
                handle
                    .neighbours()
                    .del(message.clone())
                    .execute()
                    .await
                    .map_err(|e| netlink_error(&format!("removing the entry of {address}"), e))?;
                changes.removed += 1;
            }
        }
        for (_, address, lladdr) in wanted.iter().filter(|(f, _, _)| *f == family) {
            if have
                .iter()
                .any(|(_, a, m)| *a == Some(*address) && m[..] == lladdr[..])
            {
                continue;
            }
            let request = match family {
                AddressFamily::Bridge => handle
                    .neighbours()
                    .add_bridge(index, lladdr)
                    .destination(IpAddr::V4(*address))
                    .flags(NeighbourFlags::Own),
                _ => handle
                    .neighbours()
                    .add(index, IpAddr::V4(*address))
                    .link_layer_address(lladdr),
            };
            request.replace().execute().await.map_err(|e| {
                netlink_error(&format!("adding the {DEVICE} entry of {address}"), e)
            })?;
            changes.added += 1;
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nodes_mac_and_endpoint_follow_from_its_subnet() {
        let subnet: Ipv4Net = "10.88.3.0/24".parse().unwrap();
        assert_eq!(mac(subnet), [0x0a, 0x58, 10, 88, 3, 0]);
        assert_eq!(endpoint(subnet), Ipv4Addr::new(10, 88, 3, 0));
        // Locally administered unicast.
        assert_eq!(mac(subnet)[0] & 0b11, 0b10);
    }
}
