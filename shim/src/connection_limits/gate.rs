//! Counting a listener's connections: a [`Permit`] per admitted connection, held for its
//! life; a connection over a limit is refused (and closed by the caller at once).

use super::Limits;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often refusals (and failed handshakes) are logged at most; the ones in between are
/// counted into the next line, so a flood cannot flood the log.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// One listener's connection counts.
pub struct Gate {
    limits: Limits,
    counts: Mutex<Counts>,
    reports: Mutex<Reports>,
}

#[derive(Default)]
struct Counts {
    /// Connections admitted since the listener started.
    admitted: u64,
    open: usize,
    unauthenticated: usize,
    per_peer: HashMap<PeerKey, usize>,
}

#[derive(Default)]
struct Reports {
    last: Option<Instant>,
    suppressed: u64,
}

/// A peer address as the per-peer limit counts it: an IPv4 address, or an IPv6 /64 (what one
/// host can trivially hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum PeerKey {
    V4(u32),
    V6Prefix(u64),
}

impl From<IpAddr> for PeerKey {
    fn from(ip: IpAddr) -> PeerKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => PeerKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => PeerKey::V6Prefix((u128::from(v6) >> 64) as u64),
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The listener has its maximum of connections open.
    Full(usize),
    /// It has its maximum of unauthenticated connections open.
    Unauthenticated(usize),
    /// This peer has its maximum of unauthenticated connections open.
    Peer(IpAddr, usize),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Full(n) => write!(f, "{n} connections are open (--max-connections)"),
            Refusal::Unauthenticated(n) => {
                write!(f, "{n} unauthenticated connections are open")
            }
            Refusal::Peer(ip, n) => write!(
                f,
                "{ip} has {n} connections open (--max-connections-per-peer)"
            ),
        }
    }
}

impl Gate {
    /// A gate with no connection open.
    pub fn new(limits: Limits) -> Arc<Gate> {
        Arc::new(Gate {
            limits,
            counts: Mutex::default(),
            reports: Mutex::default(),
        })
    }

    /// The limits it applies.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// How many connections it has admitted since it was made.
    pub fn admitted(&self) -> u64 {
        self.counts().admitted
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a new, unauthenticated connection from `peer` (`None`: a unix socket's), or
    /// says which limit it is over.
    pub fn admit(self: &Arc<Gate>, peer: Option<IpAddr>) -> Result<Permit, Refusal> {
        let mut counts = self.counts();
        if counts.open >= self.limits.max_connections {
            return Err(Refusal::Full(self.limits.max_connections));
        }
        if counts.unauthenticated >= self.limits.max_unauthenticated {
            return Err(Refusal::Unauthenticated(self.limits.max_unauthenticated));
        }
        let key = peer.map(PeerKey::from);
        if let (Some(ip), Some(key)) = (peer, key) {
            let n = counts.per_peer.entry(key).or_default();
            if *n >= self.limits.max_per_peer {
                return Err(Refusal::Peer(ip, self.limits.max_per_peer));
            }
            *n += 1;
        }
        counts.admitted += 1;
        counts.open += 1;
        counts.unauthenticated += 1;
        Ok(Permit {
            gate: self.clone(),
            peer: key,
            unauthenticated: true,
        })
    }

    /// Counts one refusal or failed handshake; returns the line to log when one is due
    /// (the first, then at most one every ten seconds, with how many were not logged).
    pub fn report(&self, what: &str) -> Option<String> {
        let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if reports
            .last
            .is_some_and(|t| now.duration_since(t) < REPORT_EVERY)
        {
            reports.suppressed += 1;
            return None;
        }
        let suppressed = std::mem::take(&mut reports.suppressed);
        reports.last = Some(now);
        Some(if suppressed == 0 {
            what.to_string()
        } else {
            format!("{what} (and {suppressed} more refused or failed since the last report)")
        })
    }

    /// Connections open now: (all, unauthenticated).
    pub fn open(&self) -> (usize, usize) {
        let counts = self.counts();
        (counts.open, counts.unauthenticated)
    }
}

/// An admitted connection's place in its listener's counts, given back when dropped.
pub struct Permit {
    gate: Arc<Gate>,
    peer: Option<PeerKey>,
    unauthenticated: bool,
}

impl Permit {
    /// The peer proved who it is (a client certificate): it no longer counts against the
    /// unauthenticated and per-peer limits, only against the listener's total.
    pub fn authenticated(&mut self) {
        if std::mem::take(&mut self.unauthenticated) {
            let mut counts = self.gate.counts();
            counts.unauthenticated -= 1;
            release_peer(&mut counts, self.peer.take());
        }
    }
}

fn release_peer(counts: &mut Counts, peer: Option<PeerKey>) {
    if let Some(key) = peer {
        if let Some(n) = counts.per_peer.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                counts.per_peer.remove(&key);
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.gate.counts();
        counts.open -= 1;
        if self.unauthenticated {
            counts.unauthenticated -= 1;
            release_peer(&mut counts, self.peer.take());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn gate(max: usize, unauthenticated: usize, per_peer: usize) -> Arc<Gate> {
        Gate::new(Limits {
            max_connections: max,
            max_unauthenticated: unauthenticated,
            max_per_peer: per_peer,
            ..Limits::default()
        })
    }

    fn v4(last: u8) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)))
    }

    #[test]
    fn one_peer_cannot_take_every_connection() {
        let g = gate(10, 10, 2);
        let a = [g.admit(v4(1)).unwrap(), g.admit(v4(1)).unwrap()];
        assert_eq!(g.admit(v4(1)).err(), Some(Refusal::Peer(v4(1).unwrap(), 2)));
        let b = g.admit(v4(2)).unwrap();
        drop(a);
        assert!(g.admit(v4(1)).is_ok());
        drop(b);
        assert_eq!(g.open(), (0, 0));
    }

    #[test]
    fn the_total_is_bounded() {
        let g = gate(3, 3, 3);
        let held: Vec<Permit> = (1..=3).map(|i| g.admit(v4(i)).unwrap()).collect();
        assert_eq!(g.admit(v4(9)).err(), Some(Refusal::Full(3)));
        assert_eq!(g.admit(None).err(), Some(Refusal::Full(3)));
        drop(held);
        assert!(g.admit(None).is_ok());
    }

    #[test]
    fn authenticated_connections_leave_the_unauthenticated_counts() {
        let g = gate(4, 2, 1);
        let mut a = g.admit(v4(1)).unwrap();
        let _b = g.admit(v4(2)).unwrap();
        assert_eq!(g.admit(v4(3)).err(), Some(Refusal::Unauthenticated(2)));
        a.authenticated();
        a.authenticated();
        assert_eq!(g.open(), (2, 1));
        // Its address may handshake again, and the freed unauthenticated place is usable.
        let _c = g.admit(v4(1)).unwrap();
        drop(a);
        assert_eq!(g.open(), (2, 2));
    }

    #[test]
    fn an_ipv6_slash_64_is_one_peer() {
        let g = gate(10, 10, 1);
        let one = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1));
        let same_64 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 9, 9, 9, 9));
        let other_64 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1));
        let _a = g.admit(Some(one)).unwrap();
        assert!(g.admit(Some(same_64)).is_err());
        assert!(g.admit(Some(other_64)).is_ok());
        // An IPv4-mapped address is its IPv4 address.
        let _m = g.admit(v4(5)).unwrap();
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 5).to_ipv6_mapped());
        assert!(g.admit(Some(mapped)).is_err());
    }

    #[test]
    fn reports_are_throttled() {
        let g = gate(1, 1, 1);
        assert_eq!(g.report("first").as_deref(), Some("first"));
        assert_eq!(g.report("second"), None);
        assert_eq!(g.report("third"), None);
    }
}
