//! The routes to the peer nodes' subnets, through netlink (rtnetlink): for the `host-gw`
//! backend one route per peer's subnet via that node's address; for `vxlan` via the peer's
//! VXLAN endpoint, `onlink` through the VXLAN device ([`super::vxlan`]). The agent's routes carry their own protocol number
//! ([`ROUTE_PROTOCOL`]), so it can tell them from everyone else's: a route of that protocol to
//! a subnet no peer has any more is removed.

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::RouteMessageBuilder;
use std::net::Ipv4Addr;

/// The `rtm_protocol` of the agent's routes (`ip route` shows it as `proto 77`); the numbers
/// below 20 are the kernel's and the well-known daemons'.
pub const ROUTE_PROTOCOL: u8 = 77;

/// A route the agent wants: `subnet` via `gateway`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRoute {
    /// The peer's subnet.
    pub subnet: Ipv4Net,
    /// The peer's host address (`host-gw`) or VXLAN endpoint (`vxlan`).
    pub gateway: Ipv4Addr,
    /// The device the gateway is reached through without being on any of its subnets
    /// (`onlink`): the VXLAN device's index; `None` lets the kernel find it.
    pub onlink: Option<u32>,
}

impl PeerRoute {
    /// Whether an existing route is this one (the kernel reports the device it chose).
    fn same(&self, other: &PeerRoute) -> bool {
        self.subnet == other.subnet
            && self.gateway == other.gateway
            && (self.onlink.is_none() || self.onlink == other.onlink)
    }
}

/// A netlink failure of `what`.
pub(super) fn netlink_error(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what} (netlink): {e}")
}

/// A netlink socket served by a task of its own.
pub(super) async fn connect() -> Result<rtnetlink::Handle, String> {
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|e| netlink_error("opening a socket", e))?;
    tokio::spawn(connection);
    Ok(handle)
}

/// The agent's routes now in the main table: (subnet, gateway).
async fn current(handle: &rtnetlink::Handle) -> Result<Vec<(RouteMessage, PeerRoute)>, String> {
    let mut found = Vec::new();
    let mut routes = handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute();
    while let Some(route) = routes
        .try_next()
        .await
        .map_err(|e| netlink_error("listing routes", e))?
    {
        if route.header.protocol != RouteProtocol::Other(ROUTE_PROTOCOL)
            || route.header.address_family != AddressFamily::Inet
        {
            continue;
        }
        let mut dst = None;
        let mut gateway = None;
        let mut device = None;
        for attr in &route.attributes {
            match attr {
                RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = Some(*a),
                RouteAttribute::Gateway(RouteAddress::Inet(a)) => gateway = Some(*a),
                RouteAttribute::Oif(i) => device = Some(*i),
                _ => {}
            }
        }
        if let (Some(dst), Some(gateway)) = (dst, gateway) {
            let Ok(subnet) = Ipv4Net::new(dst, route.header.destination_prefix_length) else {
                continue;
            };
            let onlink = device.filter(|_| route.header.flags.contains(RouteFlags::Onlink));
            found.push((
                route,
                PeerRoute {
                    subnet,
                    gateway,
                    onlink,
                },
            ));
        }
    }
    Ok(found)
}

/// Makes the agent's routes exactly `wanted`: adds (or replaces) what is missing, removes
/// what is no longer wanted. Returns how many routes it added and removed.
pub async fn sync(wanted: &[PeerRoute]) -> Result<(usize, usize), String> {
    let handle = connect().await?;
    let have = current(&handle).await?;
    let mut removed = 0;
    for (message, route) in &have {
        if !wanted.iter().any(|w| w.same(route)) {
            handle
                .route()
                .del(message.clone())
                .execute()
                .await
                .map_err(|e| {
                    netlink_error(&format!("removing the route to {}", route.subnet), e)
                })?;
            removed += 1;
        }
    }
    let mut added = 0;
    for route in wanted {
        if have.iter().any(|(_, r)| route.same(r)) {
            continue;
        }
        let mut builder = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(route.subnet.network(), route.subnet.prefix_len())
            .gateway(route.gateway)
            .protocol(RouteProtocol::Other(ROUTE_PROTOCOL));
        if let Some(index) = route.onlink {
            builder = builder.output_interface(index);
        }
        let mut message = builder.build();
        if route.onlink.is_some() {
            message.header.flags |= RouteFlags::Onlink;
        }
        handle
            .route()
            .add(message)
            .replace()
            .execute()
            .await
            .map_err(|e| {
                netlink_error(
                    &format!("adding the route to {} via {}", route.subnet, route.gateway),
                    e,
                )
            })?;
        added += 1;
    }
    Ok((added, removed))
}

/// Deletes link `name` (absent is fine).
pub async fn remove_link(name: &str) -> Result<(), String> {
    let handle = connect().await?;
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(link)) => handle
            .link()
            .del(link.header.index)
            .execute()
            .await
            .map_err(|e| netlink_error(&format!("removing {name}"), e)),
        Ok(None) => Ok(()),
        // No such device.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(()),
        Err(e) => Err(netlink_error(&format!("finding {name}"), e)),
    }
}
