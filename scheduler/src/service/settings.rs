//! The cluster's service settings, fixed at `mini-sched init` (`services.json` in the state
//! directory): the CIDR virtual addresses come from, the range node ports must fall in and
//! the DNS domain services answer under.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::path::Path;

/// The settings file in the state directory.
pub const SETTINGS_FILE: &str = "services.json";
/// The default service CIDR.
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/16";
/// The default node-port range.
pub const DEFAULT_NODE_PORTS: &str = "30000-32767";
/// The default cluster domain.
pub const DEFAULT_DOMAIN: &str = "cluster.local";

/// How services are laid out (`mini-sched init --service-cidr --node-port-range
/// --cluster-domain`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where virtual addresses come from.
    pub service_cidr: Ipv4Net,
    /// The lowest node port.
    pub node_port_min: u16,
    /// The highest node port.
    pub node_port_max: u16,
    /// The DNS domain: `<service>.<domain>`.
    pub domain: String,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            service_cidr: DEFAULT_SERVICE_CIDR.parse().expect("a valid CIDR"),
            node_port_min: 30000,
            node_port_max: 32767,
            domain: DEFAULT_DOMAIN.into(),
        }
    }
}

impl Settings {
    /// Checks the settings: a CIDR given as its network address with room for services, not
    /// overlapping the cluster network's `cluster_cidr`; a range `LOW-HIGH` of ports from
    /// 1024; a domain of DNS labels.
    pub fn new(
        cidr: &str,
        node_ports: &str,
        domain: &str,
        cluster_cidr: Ipv4Net,
    ) -> Result<Settings, String> {
        let service_cidr: Ipv4Net = cidr.parse().map_err(|e| {
            format!("--service-cidr {cidr:?} is not an IPv4 CIDR ({e}): give one like {DEFAULT_SERVICE_CIDR}")
        })?;
        if service_cidr.trunc() != service_cidr {
            return Err(format!(
                "--service-cidr {cidr} has host bits set: give its network address, {}",
                service_cidr.trunc()
            ));
        }
        if service_cidr.prefix_len() > 28 {
            return Err(format!(
                "--service-cidr {cidr} is too small: give a prefix length of 28 or less"
            ));
        }
        if service_cidr.contains(&cluster_cidr) || cluster_cidr.contains(&service_cidr) {
            return Err(format!(
                "--service-cidr {service_cidr} overlaps the cluster CIDR {cluster_cidr}: give \
                 addresses of their own, e.g. {DEFAULT_SERVICE_CIDR}"
            ));
        }
        let range = node_ports
            .split_once('-')
            .and_then(|(low, high)| Some((low.trim().parse().ok()?, high.trim().parse().ok()?)))
            .filter(|&(low, high): &(u16, u16)| low >= 1024 && low <= high);
        let Some((node_port_min, node_port_max)) = range else {
            return Err(format!(
                "--node-port-range {node_ports:?} is not LOW-HIGH with 1024 <= LOW <= HIGH <= \
                 65535: give one like {DEFAULT_NODE_PORTS}"
            ));
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        if domain.len() > 200 || !domain.split('.').all(label_ok) {
            return Err(format!(
                "--cluster-domain {domain:?} is not a DNS domain of lower-case labels: give one \
                 like {DEFAULT_DOMAIN}"
            ));
        }
        Ok(Settings {
            service_cidr,
            node_port_min,
            node_port_max,
            domain: domain.into(),
        })
    }

    /// The node ports services may use.
    pub fn node_ports(&self) -> RangeInclusive<u16> {
        self.node_port_min..=self.node_port_max
    }

    /// Reads the settings of the cluster in `state_dir`; a cluster made before services
    /// existed has the defaults.
    pub fn load(state_dir: &Path) -> Result<Settings, String> {
        crate::settings_file::load(state_dir, SETTINGS_FILE)
    }

    /// Writes the settings into (a new cluster's) `state_dir`.
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        crate::settings_file::save(self, state_dir, SETTINGS_FILE)
    }

    /// The addresses services may hold: the CIDR without its network and broadcast
    /// addresses.
    pub fn usable(&self, address: Ipv4Addr) -> bool {
        self.service_cidr.contains(&address)
            && address != self.service_cidr.network()
            && address != self.service_cidr.broadcast()
    }

    /// The first usable address after `last` (wrapping) that `taken` does not hold: an
    /// address freed by a deleted service comes back only once every other was handed out.
    pub fn allocate(
        &self,
        last: Option<Ipv4Addr>,
        taken: impl Fn(Ipv4Addr) -> bool,
    ) -> Option<Ipv4Addr> {
        let first = u32::from(self.service_cidr.network()) + 1;
        let end = u32::from(self.service_cidr.broadcast());
        let count = end - first;
        let start = last
            .map(u32::from)
            .filter(|&l| (first..end).contains(&l))
            .map_or(first, |l| l + 1);
        (0..count)
            .map(|i| first + (start - first + i) % count)
            .map(Ipv4Addr::from)
            .find(|&a| !taken(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Ipv4Net {
        "10.88.0.0/16".parse().unwrap()
    }

    #[test]
    fn bad_settings_say_what_to_give() {
        let ok = Settings::new(
            DEFAULT_SERVICE_CIDR,
            DEFAULT_NODE_PORTS,
            "cluster.local",
            cluster(),
        );
        assert_eq!(ok.unwrap(), Settings::default());
        let e = Settings::new("10.88.128.0/20", DEFAULT_NODE_PORTS, "c.l", cluster()).unwrap_err();
        assert!(e.contains("overlaps the cluster CIDR"), "{e}");
        let e = Settings::new("10.0.0.0/8", DEFAULT_NODE_PORTS, "c.l", cluster()).unwrap_err();
        assert!(e.contains("overlaps"), "{e}");
        let e = Settings::new("10.96.0.1/16", DEFAULT_NODE_PORTS, "c.l", cluster()).unwrap_err();
        assert!(e.contains("host bits"), "{e}");
        let e = Settings::new("10.96.0.0/30", DEFAULT_NODE_PORTS, "c.l", cluster()).unwrap_err();
        assert!(e.contains("too small"), "{e}");
        for range in ["80-90", "32767-30000", "30000", "a-b", "30000-70000"] {
            let e = Settings::new(DEFAULT_SERVICE_CIDR, range, "c.l", cluster()).unwrap_err();
            assert!(e.contains("--node-port-range"), "{range}: {e}");
        }
        for domain in ["", "Cluster.local", "a..b", "-a.b", "a b"] {
            let e = Settings::new(DEFAULT_SERVICE_CIDR, DEFAULT_NODE_PORTS, domain, cluster())
                .unwrap_err();
            assert!(e.contains("--cluster-domain"), "{domain:?}: {e}");
        }
    }

    #[test]
    fn addresses_go_round_and_are_never_handed_out_twice() {
        let s = Settings::new("10.96.0.0/28", "30000-30010", "c.l", cluster()).unwrap();
        let mut held: Vec<Ipv4Addr> = Vec::new();
        let mut last = None;
        for _ in 0..14 {
            let a = s.allocate(last, |a| held.contains(&a)).unwrap();
            assert!(s.usable(a), "{a}");
            assert!(!held.contains(&a), "{a} handed out twice");
            held.push(a);
            last = Some(a);
        }
        assert_eq!(held[0], Ipv4Addr::new(10, 96, 0, 1));
        assert_eq!(held[13], Ipv4Addr::new(10, 96, 0, 14));
        assert_eq!(s.allocate(last, |a| held.contains(&a)), None);
        // A freed address is not the next one handed out while others are free.
        held.retain(|&a| a != Ipv4Addr::new(10, 96, 0, 3) && a != Ipv4Addr::new(10, 96, 0, 9));
        let next = s.allocate(Some(Ipv4Addr::new(10, 96, 0, 3)), |a| held.contains(&a));
        assert_eq!(next, Some(Ipv4Addr::new(10, 96, 0, 9)));
    }
}
