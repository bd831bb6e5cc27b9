//! Certificates renewed before they expire, so that no lifetime ends a running cluster:
//!
//! - the daemon's own, its client certificate for the agents and the join listener's server
//!   certificate, on disk (the TLS configurations read a replaced file at their next
//!   handshake);
//! - every ready node's, over the mutual TLS channel: the scheduler signs a new certificate
//!   for the key the agent holds (its public key is in the current certificate, on record)
//!   and sends it (`POST /v1/certificate`); the agent checks it and serves it from then on.
//!
//! A certificate is renewed once less than `before` of its life is left (`daemon
//! --cert-renew-before`, by default a third of `--cert-ttl`); they are looked at every
//! quarter of that (between 1 s and 1 min). A node that is down when its turn comes is
//! renewed when it is back, if its certificate has not expired by then; one that has must
//! join again (`mini-sched token create --rejoin NODE`).

use crate::controller::Daemon;
use crate::join::{ClusterPki, JOIN_SERVER, SCHEDULER};
use mini_shim::agent::pki;
use mini_shim::protocol::{CertificateInfo, CertificateRenewal};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long an agent may take to take its new certificate.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The renewal policy and the CA that signs.
#[derive(Debug, Clone)]
pub struct Renewal {
    /// The cluster's certificates.
    pub pki: ClusterPki,
    /// The lifetime of a renewed certificate.
    pub lifetime: Duration,
    /// How long before its expiry a certificate is renewed.
    pub before: Duration,
}

impl Renewal {
    fn due(&self, not_after: SystemTime) -> bool {
        not_after
            .duration_since(SystemTime::now())
            .map_or(true, |left| left < self.before)
    }

    /// Renews the daemon's own certificates that are due.
    pub fn own(&self) {
        for name in [SCHEDULER, JOIN_SERVER] {
            let renewed = match self.pki.own_not_after(name) {
                Ok(not_after) if self.due(not_after) => self.pki.renew_own(name, self.lifetime),
                Ok(_) => continue,
                Err(e) => Err(e),
            };
            match renewed {
                Ok(()) => log(&format!(
                    "renewed the {name} certificate for {}",
                    mini_shim::agent::pki::format_lifetime(self.lifetime)
                )),
                Err(e) => log(&format!("renewing the {name} certificate: {e}")),
            }
        }
    }

    /// Renews every certificate when it is due, until the daemon stops.
    pub async fn run(self, daemon: Arc<Daemon>) {
        let period = (self.before / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            tokio::time::sleep(period).await;
            self.own();
            let due: Vec<(String, SocketAddr, String)> = daemon.with(|s| {
                s.nodes
                    .values()
                    .filter(|n| n.ready())
                    .filter_map(|n| {
                        let pem = n.record.certificate.as_ref()?;
                        let info = pki::inspect(pem).ok()?;
                        self.due(info.not_after)
                            .then(|| (n.record.name.clone(), n.record.address, pem.clone()))
                    })
                    .collect()
            });
            for (node, address, current) in due {
                self.node(&daemon, &node, address, &current).await;
            }
        }
    }

    /// Renews node `node`'s certificate `current`, at `address`.
    async fn node(&self, daemon: &Daemon, node: &str, address: SocketAddr, current: &str) {
        let cert = match pki::inspect(current)
            .map_err(crate::join::Error::from)
            .and_then(|info| {
                self.pki
                    .sign_node(&info.public_key, node, address, self.lifetime)
            }) {
            Ok(cert) => cert,
            Err(e) => return log(&format!("renewing node {node}'s certificate: {e}")),
        };
        let renewal = CertificateRenewal { cert: cert.clone() };
        let answer: Result<CertificateInfo, _> = daemon
            .agents
            .post(address, "/v1/certificate", &renewal, CALL_TIMEOUT)
            .await;
        match answer {
            Ok(answer) => daemon.with(|s| {
                let Some(n) = s.nodes.get_mut(node) else {
                    return;
                };
                // A re-join in the meantime brought a certificate of its own.
                if n.record.certificate.as_deref() != Some(current) {
                    return;
                }
                n.record.certificate = Some(cert);
                s.save_node(node);
                s.event(
                    format!("node/{node}"),
                    "CertificateRenewed",
                    format!("valid until {}", answer.not_after),
                );
            }),
            Err(e) => {
                daemon.count(|c| c.agent_errors += 1);
                log(&format!("renewing node {node}'s certificate: {e}"));
            }
        }
    }
}

fn log(msg: &str) {
    let now = humantime::format_rfc3339_millis(SystemTime::now());
    eprintln!("{now} mini-sched renewal: {msg}");
}
