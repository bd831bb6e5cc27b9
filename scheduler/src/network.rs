//! The cluster network's settings and its node subnets: `mini-sched init` fixes the cluster
//! CIDR, the subnet size, the backend and masquerading (`network.json` in the state
//! directory); each node gets the first free subnet of the CIDR when it joins, recorded on the
//! node, kept while the node exists (re-joins too), freed when it is deleted, so no two nodes
//! ever hold the same one. Every heartbeat sends a node its [`ClusterNetwork`]: its subnet and
//! every other reachable node's, which its agent turns into routes.

use crate::state::State;
use ipnet::Ipv4Net;
use mini_shim::protocol::{ClusterNetwork, NetworkBackend, NetworkPeer};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The settings file in the state directory.
pub const SETTINGS_FILE: &str = "network.json";
/// The default cluster CIDR.
pub const DEFAULT_CIDR: &str = "10.88.0.0/16";
/// The default prefix length of a node's subnet.
pub const DEFAULT_SUBNET_SIZE: u8 = 24;
/// The longest node subnet: a /30 holds the bridge's address and one instance.
pub const MAX_SUBNET_SIZE: u8 = 30;

/// How the cluster network is laid out (`mini-sched init --cluster-cidr --subnet-size
/// --network-backend --no-masquerade`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The whole cluster's addresses.
    pub cluster_cidr: Ipv4Net,
    /// The prefix length of each node's subnet.
    pub subnet_size: u8,
    /// How nodes route to each other's subnets.
    pub backend: NetworkBackend,
    /// Whether instances' traffic leaving the cluster CIDR is masqueraded.
    pub masquerade: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            cluster_cidr: DEFAULT_CIDR.parse().expect("a valid CIDR"),
            subnet_size: DEFAULT_SUBNET_SIZE,
            backend: NetworkBackend::HostGw,
            masquerade: true,
        }
    }
}

impl Settings {
    /// Checks the settings: a CIDR given as its network address, and a subnet size that fits.
    pub fn new(
        cidr: &str,
        subnet_size: u8,
        backend: NetworkBackend,
        masquerade: bool,
    ) -> Result<Settings, String> {
        let cluster_cidr: Ipv4Net = cidr.parse().map_err(|e| {
            format!(
                "--cluster-cidr {cidr:?} is not an IPv4 CIDR ({e}): give one like {DEFAULT_CIDR}"
            )
        })?;
        if cluster_cidr.trunc() != cluster_cidr {
            return Err(format!(
                "--cluster-cidr {cidr} has host bits set: give its network address, {}",
                cluster_cidr.trunc()
            ));
        }
        if subnet_size < cluster_cidr.prefix_len() || subnet_size > MAX_SUBNET_SIZE {
            return Err(format!(
                "--subnet-size {subnet_size} does not fit the cluster CIDR {cluster_cidr}: give \
                 a prefix length from {} to {MAX_SUBNET_SIZE}",
                cluster_cidr.prefix_len()
            ));
        }
        Ok(Settings {
            cluster_cidr,
            subnet_size,
            backend,
            masquerade,
        })
    }

    /// Reads the settings of the cluster in `state_dir`; a cluster made before the network
    /// existed has the defaults.
    pub fn load(state_dir: &Path) -> Result<Settings, String> {
        crate::settings_file::load(state_dir, SETTINGS_FILE)
    }

    /// Writes the settings into (a new cluster's) `state_dir`.
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        crate::settings_file::save(self, state_dir, SETTINGS_FILE)
    }

    /// The first subnet of the CIDR that no node in `state` holds, or why there is none.
    pub fn allocate(&self, state: &State) -> Result<Ipv4Net, String> {
        let taken: Vec<Ipv4Net> = state
            .nodes
            .values()
            .filter_map(|n| n.record.subnet.as_deref()?.parse().ok())
            .collect();
        let all = self
            .cluster_cidr
            .subnets(self.subnet_size)
            .map_err(|e| format!("the cluster CIDR's subnets: {e}"))?;
        all.into_iter()
            .find(|s| !taken.iter().any(|t| t.contains(s) || s.contains(t)))
            .ok_or_else(|| {
                format!(
                    "the cluster CIDR {} has no free /{} subnet left (the {} nodes hold them \
                     all): delete a node that is gone (mini-sched delete node NAME), or make \
                     the cluster with a larger --cluster-cidr",
                    self.cluster_cidr,
                    self.subnet_size,
                    taken.len()
                )
            })
    }

    /// What node `name` is sent: its subnet, and the subnets of every other node that holds
    /// one and is not lost (a lost node's routes go until it heartbeats again). `None` while
    /// the node has no subnet.
    pub fn for_node(&self, state: &State, name: &str) -> Option<ClusterNetwork> {
        let subnet = state.nodes.get(name)?.record.subnet.clone()?;
        let peers = state
            .nodes
            .values()
            .filter(|n| n.record.name != name && !n.record.lost)
            .filter_map(|n| {
                Some(NetworkPeer {
                    node: n.record.name.clone(),
                    address: n.record.address.ip(),
                    subnet: n.record.subnet.clone()?,
                })
            })
            .collect();
        Some(ClusterNetwork {
            cluster_cidr: self.cluster_cidr.to_string(),
            subnet,
            backend: self.backend,
            masquerade: self.masquerade,
            peers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Node, NodeLive, NodeRecord};

    fn node(name: &str, subnet: Option<&str>) -> Node {
        Node {
            record: NodeRecord {
                subnet: subnet.map(Into::into),
                ..NodeRecord::new(name, "192.0.2.1:7443".parse().unwrap())
            },
            live: NodeLive::default(),
        }
    }

    #[test]
    fn subnets_are_handed_out_first_free_first_and_never_twice() {
        let settings = Settings::new("10.88.0.0/30", 30, NetworkBackend::HostGw, true);
        assert!(settings.is_ok());
        let settings = Settings::new("10.88.0.0/23", 24, NetworkBackend::HostGw, true).unwrap();
        let mut state = State::default();
        let first = settings.allocate(&state).unwrap();
        assert_eq!(first.to_string(), "10.88.0.0/24");
        state
            .nodes
            .insert("a".into(), node("a", Some("10.88.0.0/24")));
        assert_eq!(
            settings.allocate(&state).unwrap().to_string(),
            "10.88.1.0/24"
        );
        state
            .nodes
            .insert("b".into(), node("b", Some("10.88.1.0/24")));
        let full = settings.allocate(&state).unwrap_err();
        assert!(full.contains("no free /24 subnet"), "{full}");
        // A deleted node's subnet is free again.
        state.nodes.remove("a");
        assert_eq!(
            settings.allocate(&state).unwrap().to_string(),
            "10.88.0.0/24"
        );
    }

    #[test]
    fn bad_settings_say_what_to_give() {
        let e = Settings::new("10.88.0.0/16", 8, NetworkBackend::HostGw, true).unwrap_err();
        assert!(e.contains("does not fit"), "{e}");
        let e = Settings::new("10.88.0.0/16", 31, NetworkBackend::HostGw, true).unwrap_err();
        assert!(e.contains("does not fit"), "{e}");
        let e = Settings::new("10.88.1.0/16", 24, NetworkBackend::HostGw, true).unwrap_err();
        assert!(e.contains("host bits"), "{e}");
        let e = Settings::new("nonsense", 24, NetworkBackend::HostGw, true).unwrap_err();
        assert!(e.contains("not an IPv4 CIDR"), "{e}");
    }

    #[test]
    fn a_node_is_sent_its_subnet_and_its_live_peers() {
        let settings = Settings::default();
        let mut state = State::default();
        state
            .nodes
            .insert("a".into(), node("a", Some("10.88.0.0/24")));
        state
            .nodes
            .insert("b".into(), node("b", Some("10.88.1.0/24")));
        let mut lost = node("c", Some("10.88.2.0/24"));
        lost.record.lost = true;
        state.nodes.insert("c".into(), lost);
        state.nodes.insert("d".into(), node("d", None));
        let sent = settings.for_node(&state, "a").unwrap();
        assert_eq!(sent.subnet, "10.88.0.0/24");
        let peers: Vec<&str> = sent.peers.iter().map(|p| p.node.as_str()).collect();
        assert_eq!(peers, ["b"]);
        assert!(settings.for_node(&state, "d").is_none());
    }
}
