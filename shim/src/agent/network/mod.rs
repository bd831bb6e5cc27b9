//! The cluster network (`network: cluster`): each such container gets a network namespace of
//! its own, attached by the node's CNI plugin chain (the reference `bridge` plugin with
//! `host-local` IPAM, and `loopback`), run exactly as the CNI spec says ([`cni`]); the node's
//! place in the cluster ([`ClusterNetwork`]: its subnet and its peers) comes from the
//! scheduler and drives the routes to the other nodes ([`routes`]; with the `vxlan` backend
//! through the VXLAN device and its forwarding entries, [`vxlan`]) and the masquerading of
//! outbound traffic ([`masquerade`]).
//!
//! Files: `<state>/network/config.json` (the [`ClusterNetwork`] last applied),
//! `<state>/network/cluster.conflist` (the generated CNI configuration list, replaced by
//! `custom.conflist` when an operator puts one there), `<state>/network/ipam/` (host-local's
//! allocations), and per container `network.json` ([`Record`]: the conflist, namespace and
//! ADD result that CHECK and DEL use), `netns` (the namespace), `hosts` and `resolv.conf`.

pub mod cni;
pub mod masquerade;
pub mod netns;
pub mod routes;
pub mod vxlan;

use super::{Agent, Error};
use crate::protocol::{ClusterNetwork, Network, NetworkBackend, NetworkState, PortMapping};
use cni::{Attachment, Op};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The network directory in the state directory.
pub const NETWORK_DIR: &str = "network";
/// The applied [`ClusterNetwork`] in the network directory.
const CONFIG_FILE: &str = "config.json";
/// The generated CNI configuration list.
pub const CONFLIST_FILE: &str = "cluster.conflist";
/// An operator's CNI configuration list, used instead of the generated one when present.
pub const CUSTOM_CONFLIST_FILE: &str = "custom.conflist";
/// The bridge the generated list attaches containers to (in the agent's network namespace).
pub const BRIDGE: &str = "mini0";
/// The network name of the generated list (host-local keeps its allocations under it).
pub const NETWORK_NAME: &str = "mini-cluster";
/// A container's [`Record`].
const RECORD_FILE: &str = "network.json";
/// A container's network namespace file.
const NETNS_FILE: &str = "netns";
/// The container's interface on the cluster network.
pub const IFNAME: &str = "eth0";

/// What the agent records about a container's attachment, before and after ADD: enough to
/// CHECK it and to DEL it later (after an agent crash, too) with the configuration ADD used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The configuration list ADD ran.
    pub conflist: Value,
    /// The namespace.
    pub netns: PathBuf,
    /// The interface name.
    pub ifname: String,
    /// The list's ADD result, once ADD succeeded.
    #[serde(default)]
    pub result: Option<Value>,
    /// The loopback plugin's ADD succeeded.
    #[serde(default)]
    pub loopback: bool,
    /// The runtime's part of the plugins' configuration (CNI capabilities by name, e.g.
    /// `portMappings`), given to every plugin that declares the capability.
    #[serde(default)]
    pub runtime_config: Value,
}

/// Checks a request's host ports: only on the cluster network (where the `portmap` plugin
/// forwards them), non-zero, each host port and protocol once.
pub fn check_ports(network: Network, ports: &[PortMapping]) -> Result<(), Error> {
    if ports.is_empty() {
        return Ok(());
    }
    if network != Network::Cluster {
        return Err(Error::BadRequest(
            "ports need network cluster (the node's CNI plugins forward them): set network: \
             cluster or remove ports"
                .into(),
        ));
    }
    for (i, p) in ports.iter().enumerate() {
        if p.host_port == 0 || p.container_port == 0 {
            return Err(Error::BadRequest(format!(
                "ports[{i}]: host_port and container_port must be from 1 to 65535"
            )));
        }
        if ports[..i]
            .iter()
            .any(|o| o.host_port == p.host_port && o.protocol == p.protocol)
        {
            return Err(Error::BadRequest(format!(
                "ports[{i}]: host port {}/{} is given twice",
                p.host_port,
                p.protocol.name()
            )));
        }
    }
    Ok(())
}

/// The CNI `runtimeConfig` of a container's `ports` (the `portMappings` capability).
fn runtime_config(ports: &[PortMapping]) -> Value {
    if ports.is_empty() {
        return json!({});
    }
    let mappings: Vec<Value> = ports
        .iter()
        .map(|p| {
            json!({
                "hostPort": p.host_port,
                "containerPort": p.container_port,
                "protocol": p.protocol.name(),
            })
        })
        .collect();
    json!({ "portMappings": mappings })
}

/// CNI calls and failures by command, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    calls: [AtomicU64; 3],
    failures: [AtomicU64; 3],
}

impl Counters {
    fn slot(op: Op) -> usize {
        match op {
            Op::Add => 0,
            Op::Check => 1,
            Op::Del => 2,
        }
    }

    /// (command, calls, failures) for each command.
    pub fn snapshot(&self) -> Vec<(&'static str, u64, u64)> {
        [Op::Add, Op::Check, Op::Del]
            .into_iter()
            .map(|op| {
                let i = Self::slot(op);
                (
                    op.name(),
                    self.calls[i].load(Ordering::Relaxed),
                    self.failures[i].load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

/// The loopback network (run beside the list, on `lo`, as container runtimes do).
fn loopback_list() -> Value {
    json!({"cniVersion": "1.0.0", "name": "mini-loopback", "plugins": [{"type": "loopback"}]})
}

/// The generated configuration list for `config`, with host-local's state in `ipam_dir`
/// (with `vxlan`, the instances' MTU leaves room for the encapsulation).
pub fn generated_conflist(config: &ClusterNetwork, ipam_dir: &Path) -> Value {
    let mut list = json!({
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": config.subnet}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": ipam_dir,
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    });
    if config.backend == NetworkBackend::Vxlan {
        list["plugins"][0]["mtu"] = json!(vxlan::MTU);
    }
    list
}

/// Parses a CIDR of `field`.
fn cidr(field: &str, text: &str) -> Result<Ipv4Net, Error> {
    text.parse::<Ipv4Net>()
        .map(|n| n.trunc())
        .map_err(|e| Error::BadRequest(format!("{field} {text:?} is not an IPv4 CIDR: {e}")))
}

/// Checks a [`ClusterNetwork`]: every CIDR parses, the subnets lie in the cluster CIDR and do
/// not overlap, and no node's address is inside the cluster CIDR.
pub fn validate(config: &ClusterNetwork) -> Result<(Ipv4Net, Ipv4Net), Error> {
    let cluster = cidr("cluster_cidr", &config.cluster_cidr)?;
    let subnet = cidr("subnet", &config.subnet)?;
    if !cluster.contains(&subnet) {
        return Err(Error::BadRequest(format!(
            "subnet {subnet} is not inside the cluster CIDR {cluster}"
        )));
    }
    let mut seen = vec![subnet];
    for peer in &config.peers {
        let s = cidr(&format!("peers[{}].subnet", peer.node), &peer.subnet)?;
        if !cluster.contains(&s) || seen.iter().any(|o| o.contains(&s) || s.contains(o)) {
            return Err(Error::BadRequest(format!(
                "node {}'s subnet {s} is outside the cluster CIDR {cluster} or overlaps another",
                peer.node
            )));
        }
        if let std::net::IpAddr::V4(a) = peer.address {
            if cluster.contains(&a) {
                return Err(Error::BadRequest(format!(
                    "node {}'s address {a} is inside the cluster CIDR {cluster}: choose a \
                     cluster CIDR that does not overlap the nodes' addresses",
                    peer.node
                )));
            }
        }
        seen.push(s);
    }
    Ok((cluster, subnet))
}

impl Agent {
    /// `<state-dir>/network`.
    pub fn network_dir(&self) -> PathBuf {
        self.config.state_dir.join(NETWORK_DIR)
    }

    fn read_network_config(&self) -> Option<ClusterNetwork> {
        let path = self.network_dir().join(CONFIG_FILE);
        let text = mini_run::input_file::read(&path, mini_run::input_file::JSON_LIMIT).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// The configuration list containers are attached with: the operator's, else the one
    /// generated from the applied [`ClusterNetwork`].
    fn conflist(&self) -> Result<Value, Error> {
        let custom = self.network_dir().join(CUSTOM_CONFLIST_FILE);
        let path = if custom.exists() {
            custom
        } else {
            self.network_dir().join(CONFLIST_FILE)
        };
        let text = match mini_run::input_file::read(&path, mini_run::input_file::JSON_LIMIT) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::BadRequest(format!(
                    "node {} has no cluster network yet (the scheduler sends it with the \
                     node's subnet; a standalone agent needs POST /v1/network): use network \
                     isolated or host, or retry once the node has joined",
                    self.config.node
                )))
            }
            Err(e) => return Err(Error::io("reading", &path, e)),
        };
        serde_json::from_slice(&text)
            .map_err(|e| Error::Config(format!("{} is not JSON: {e}", path.display())))
    }

    /// `GET /v1/network`.
    pub fn network_state(&self) -> NetworkState {
        NetworkState {
            config: self.read_network_config(),
            conflist: self.conflist().ok().map(|c| c.to_string()),
        }
    }

    /// `POST /v1/network`: records the node's place in the cluster network, writes the
    /// generated conflist, enables forwarding, and makes the routes to the peers and the
    /// masquerading table follow it.
    pub async fn set_network(&self, config: ClusterNetwork) -> Result<NetworkState, Error> {
        let (cluster, _) = validate(&config)?;
        let mut applied = self.network_applied.lock().await;
        let dir = self.network_dir();
        mini_run::private_files::create_dir_all(&dir)
            .map_err(|e| Error::io("creating", &dir, e))?;
        if self.read_network_config().as_ref() != Some(&config) {
            let conflist = generated_conflist(&config, &dir.join("ipam"));
            super::run::write_json(&dir.join(CONFLIST_FILE), &conflist)?;
            super::run::write_json(&dir.join(CONFIG_FILE), &config)?;
            self.log(&format!(
                "network: subnet {} in {}, {} peers",
                config.subnet,
                config.cluster_cidr,
                config.peers.len()
            ));
        }
        if self.hollow().is_some() {
            return Ok(self.network_state()); // a hollow node touches nothing on the host
        }
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(|e| {
            Error::io(
                "enabling forwarding in",
                Path::new("/proc/sys/net/ipv4/ip_forward"),
                e,
            )
        })?;
        let (added, removed) = Self::route_to_peers(&config).await?;
        if added + removed > 0 {
            self.log(&format!(
                "network: {added} routes and entries added, {removed} removed"
            ));
        }
        if applied.as_ref() == Some(&config) {
            return Ok(self.network_state());
        }
        if config.backend != NetworkBackend::Vxlan {
            routes::remove_link(vxlan::DEVICE)
                .await
                .map_err(|e| Error::Config(format!("removing {}: {e}", vxlan::DEVICE)))?;
        }
        let masquerading = config.clone();
        let nat = tokio::task::spawn_blocking(move || {
            if config.masquerade {
                masquerade::apply(cluster)
            } else {
                masquerade::remove()
            }
        })
        .await
        .map_err(|e| Error::Config(format!("masquerading: {e}")))?;
        nat.map_err(|e| Error::Config(format!("masquerading: {e}")))?;
        *applied = Some(masquerading);
        Ok(self.network_state())
    }

    /// Makes the routes to the peers (and with `vxlan` the device's entries) follow
    /// `config`'s peers; returns how many routes and entries were added and removed.
    async fn route_to_peers(config: &ClusterNetwork) -> Result<(usize, usize), Error> {
        let peers: Vec<vxlan::Peer> = config
            .peers
            .iter()
            .filter_map(|p| match p.address {
                std::net::IpAddr::V4(host) => Some(vxlan::Peer {
                    subnet: p.subnet.parse::<Ipv4Net>().ok()?.trunc(),
                    host,
                }),
                std::net::IpAddr::V6(_) => None,
            })
            .collect();
        let failed = |e: String| Error::Config(format!("routing to the peers: {e}"));
        let (wanted, added, removed): (Vec<routes::PeerRoute>, usize, usize) = match config.backend
        {
            NetworkBackend::HostGw => {
                let wanted = peers
                    .iter()
                    .map(|p| routes::PeerRoute {
                        subnet: p.subnet,
                        gateway: p.host,
                        onlink: None,
                    })
                    .collect();
                (wanted, 0, 0)
            }
            NetworkBackend::Vxlan => {
                let subnet = cidr("subnet", &config.subnet)?;
                let changes = vxlan::sync(subnet, &peers).await.map_err(failed)?;
                let wanted = peers
                    .iter()
                    .map(|p| routes::PeerRoute {
                        subnet: p.subnet,
                        gateway: vxlan::endpoint(p.subnet),
                        onlink: Some(changes.index),
                    })
                    .collect();
                (wanted, changes.added, changes.removed)
            }
        };
        let (routes_added, routes_removed) = routes::sync(&wanted).await.map_err(failed)?;
        Ok((added + routes_added, removed + routes_removed))
    }

    /// Removes what the network left in the agent's namespace: the routes to the peers, the
    /// masquerading table, the VXLAN device and the bridge (`--cleanup`, once no container
    /// is left).
    pub async fn cleanup_network(&self) -> Result<(), Error> {
        *self.network_applied.lock().await = None;
        routes::sync(&[])
            .await
            .map_err(|e| Error::Config(format!("removing the routes: {e}")))?;
        tokio::task::spawn_blocking(masquerade::remove)
            .await
            .map_err(|e| Error::Config(format!("removing the nftables table: {e}")))?
            .map_err(Error::Config)?;
        routes::remove_link(vxlan::DEVICE)
            .await
            .map_err(|e| Error::Config(format!("removing {}: {e}", vxlan::DEVICE)))?;
        routes::remove_link(BRIDGE)
            .await
            .map_err(|e| Error::Config(format!("removing bridge {BRIDGE}: {e}")))
    }

    /// Before the bundle is written: makes the container's network namespace, names it in the
    /// OCI config, and mounts its `/etc/hosts` and `/etc/resolv.conf` (on a shared read-only
    /// root only where the root has them: the agent never writes into a shared root).
    pub(super) fn prepare_network(
        &self,
        dir: &Path,
        spec: &mut Value,
        root: &super::bundle::Root,
        ports: &[PortMapping],
    ) -> Result<(), Error> {
        let conflist = self.conflist()?;
        let netns = dir.join(NETNS_FILE);
        let record = Record {
            conflist,
            netns: netns.clone(),
            ifname: IFNAME.into(),
            result: None,
            loopback: false,
            runtime_config: runtime_config(ports),
        };
        // Recorded before anything exists, so every later removal knows what to undo.
        super::run::write_json(&dir.join(RECORD_FILE), &record)?;
        netns::create(&netns)
            .map_err(|e| Error::io("creating a network namespace at", &netns, e))?;
        for ns in spec["linux"]["namespaces"]
            .as_array_mut()
            .expect("the default spec has namespaces")
        {
            if ns["type"] == "network" {
                ns["path"] = json!(netns);
            }
        }
        for name in ["hosts", "resolv.conf"] {
            let inside = root.path.join("etc").join(name);
            if root.readonly && std::fs::symlink_metadata(&inside).is_err() {
                continue;
            }
            let source = dir.join(name);
            std::fs::write(&source, "").map_err(|e| Error::io("writing", &source, e))?;
            spec["mounts"]
                .as_array_mut()
                .expect("the default spec has mounts")
                .push(json!({
                    "destination": format!("/etc/{name}"),
                    "type": "bind",
                    "source": source,
                    "options": ["bind", "ro", "nosuid", "nodev", "noexec"],
                }));
        }
        Ok(())
    }

    /// Runs a plugin list, counting the call.
    async fn cni(
        &self,
        op: Op,
        conflist: Value,
        attachment: Attachment,
        recorded: Option<Value>,
        runtime: Value,
    ) -> Result<Value, cni::CniError> {
        let slot = Counters::slot(op);
        self.cni_counters.calls[slot].fetch_add(1, Ordering::Relaxed);
        let result = tokio::task::spawn_blocking(move || {
            let plugins = cni::Plugins::default();
            cni::run_list(
                op,
                &conflist,
                &attachment,
                recorded.as_ref(),
                &runtime,
                &plugins,
            )
        })
        .await
        .unwrap_or_else(|e| Err(cni::CniError(format!("the plugin call failed: {e}"))));
        if result.is_err() {
            self.cni_counters.failures[slot].fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn attachment(id: &str, record: &Record, ifname: &str) -> Attachment {
        Attachment {
            container_id: id.to_string(),
            netns: record.netns.clone(),
            ifname: ifname.to_string(),
        }
    }

    /// ADD: attaches container `id` (prepared by [`Agent::prepare_network`]) and writes its
    /// hosts files; the result is recorded. A plugin's failure is the start's failure, with
    /// the plugin's message.
    pub(super) async fn attach(&self, dir: &Path, id: &str) -> Result<(), Error> {
        let Some(mut record) = read_record(dir) else {
            return Ok(());
        };
        let failed = |e: cni::CniError| {
            Error::StartFailed(format!("attaching {id:?} to the cluster network: {e}"))
        };
        self.cni(
            Op::Add,
            loopback_list(),
            Self::attachment(id, &record, "lo"),
            None,
            json!({}),
        )
        .await
        .map_err(failed)?;
        record.loopback = true;
        super::run::write_json(&dir.join(RECORD_FILE), &record)?;
        let result = self
            .cni(
                Op::Add,
                record.conflist.clone(),
                Self::attachment(id, &record, &record.ifname),
                None,
                record.runtime_config.clone(),
            )
            .await
            .map_err(failed)?;
        let address = cni::result_address(&result);
        record.result = Some(result);
        super::run::write_json(&dir.join(RECORD_FILE), &record)?;
        let hosts = format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{}",
            address.map(|a| format!("{a}\t{id}\n")).unwrap_or_default()
        );
        let resolv = resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
        for (name, text) in [("hosts", hosts), ("resolv.conf", resolv)] {
            let path = dir.join(name);
            if path.exists() {
                std::fs::write(&path, text).map_err(|e| Error::io("writing", &path, e))?;
            }
        }
        Ok(())
    }

    /// CHECK, for a container adopted after an agent restart: logs what the plugins find wrong.
    pub(super) async fn check_network(&self, dir: &Path, id: &str) {
        let Some(record) = read_record(dir) else {
            return;
        };
        let Some(result) = record.result.clone() else {
            return;
        };
        let attachment = Self::attachment(id, &record, &record.ifname);
        if let Err(e) = self
            .cni(
                Op::Check,
                record.conflist.clone(),
                attachment,
                Some(result),
                record.runtime_config.clone(),
            )
            .await
        {
            self.log(&format!("{id}: the cluster network's CHECK failed: {e}"));
        }
    }

    /// DEL and the namespace's removal, from the container's record (absent: nothing to do).
    /// A failing DEL is logged and counted; the namespace goes anyway, and with it the
    /// container's end of every interface.
    pub(super) async fn detach(&self, dir: &Path) {
        let Some(record) = read_record(dir) else {
            return;
        };
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let attachment = Self::attachment(&id, &record, &record.ifname);
        if let Err(e) = self
            .cni(
                Op::Del,
                record.conflist.clone(),
                attachment,
                record.result.clone(),
                record.runtime_config.clone(),
            )
            .await
        {
            self.log(&format!("{id}: DEL from the cluster network: {e}"));
        }
        if record.loopback {
            let lo = Self::attachment(&id, &record, "lo");
            let _ = self
                .cni(Op::Del, loopback_list(), lo, None, json!({}))
                .await;
        }
        if let Err(e) = netns::remove(&record.netns) {
            self.log(&format!("{id}: removing {}: {e}", record.netns.display()));
        }
        let _ = std::fs::remove_file(dir.join(RECORD_FILE));
    }

    /// The container's cluster address, from its recorded ADD result.
    pub(super) fn address(dir: &Path) -> Option<String> {
        read_record(dir)?
            .result
            .as_ref()
            .and_then(cni::result_address)
    }
}

fn read_record(dir: &Path) -> Option<Record> {
    let text = mini_run::input_file::read(&dir.join(RECORD_FILE), mini_run::input_file::JSON_LIMIT)
        .ok()?;
    serde_json::from_slice(&text).ok()
}

/// The host's resolv.conf without nameservers on loopback (unreachable from the container's
/// namespace); no nameserver left means none.
fn resolv_conf(host: &str) -> String {
    host.lines()
        .filter(|l| {
            let mut words = l.split_whitespace();
            !(words.next() == Some("nameserver")
                && words
                    .next()
                    .and_then(|a| a.parse::<std::net::IpAddr>().ok())
                    .is_some_and(|a| a.is_loopback()))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::NetworkPeer;

    fn config() -> ClusterNetwork {
        ClusterNetwork {
            cluster_cidr: "10.88.0.0/16".into(),
            subnet: "10.88.1.0/24".into(),
            backend: Default::default(),
            masquerade: true,
            peers: vec![NetworkPeer {
                node: "b".into(),
                address: "192.168.0.2".parse().unwrap(),
                subnet: "10.88.2.0/24".into(),
            }],
        }
    }

    #[test]
    fn a_valid_network_passes_and_bad_ones_say_why() {
        assert!(validate(&config()).is_ok());
        let mut c = config();
        c.subnet = "10.99.0.0/24".into();
        assert!(validate(&c).unwrap_err().to_string().contains("not inside"));
        let mut c = config();
        c.peers[0].subnet = "10.88.1.0/24".into();
        assert!(validate(&c).unwrap_err().to_string().contains("overlaps"));
        let mut c = config();
        c.peers[0].address = "10.88.9.9".parse().unwrap();
        assert!(validate(&c)
            .unwrap_err()
            .to_string()
            .contains("inside the cluster CIDR"));
        let mut c = config();
        c.cluster_cidr = "10.88.0.0/33".into();
        assert!(validate(&c).is_err());
    }

    #[test]
    fn the_generated_list_is_bridge_with_host_local_on_the_subnet() {
        let list = generated_conflist(&config(), Path::new("/s/network/ipam"));
        assert_eq!(list["cniVersion"], "1.0.0");
        assert_eq!(list["plugins"][0]["type"], "bridge");
        assert_eq!(list["plugins"][0]["ipam"]["type"], "host-local");
        assert_eq!(
            list["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "10.88.1.0/24"
        );
        assert_eq!(list["plugins"][0]["ipam"]["dataDir"], "/s/network/ipam");
    }

    #[test]
    fn loopback_nameservers_are_dropped_from_resolv_conf() {
        let host = "search example.org\nnameserver 127.0.0.53\nnameserver 192.0.2.1\n";
        assert_eq!(
            resolv_conf(host),
            "search example.org\nnameserver 192.0.2.1\n"
        );
    }
}
