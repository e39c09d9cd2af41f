//! What a node knows about its peers, bounded.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};

/// Longest lists and strings kept from a peer's identify answer.
const MAX_ADDRS: usize = 32;
const MAX_PROTOCOLS: usize = 64;
const MAX_AGENT_LEN: usize = 256;

/// What a node knows about one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer.
    pub peer_id: PeerId,
    /// Remote addresses of the open connections.
    pub addresses: Vec<Multiaddr>,
    /// Listen addresses the peer reported through identify.
    pub listen_addrs: Vec<Multiaddr>,
    /// Agent version from identify.
    pub agent: Option<String>,
    /// Protocols from identify.
    pub protocols: Vec<String>,
    /// Last ping round-trip time.
    pub rtt: Option<Duration>,
    /// Open connections.
    pub connections: usize,
    /// Last time anything was heard from the peer.
    pub last_seen: Instant,
}

impl PeerInfo {
    fn new(peer_id: PeerId) -> Self {
        Self {
            peer_id,
            addresses: Vec::new(),
            listen_addrs: Vec::new(),
            agent: None,
            protocols: Vec::new(),
            rtt: None,
            connections: 0,
            last_seen: Instant::now(),
        }
    }

    /// True when every open connection runs through a relay (no direct one).
    pub fn is_relayed(&self) -> bool {
        !self.addresses.is_empty() && self.addresses.iter().all(p2p_types::is_relayed)
    }

    /// True while at least one connection is open.
    pub fn is_connected(&self) -> bool {
        self.connections > 0
    }
}

/// Connected peers plus up to `max_known` remembered disconnected ones.
#[derive(Debug)]
pub(crate) struct PeerTable {
    peers: HashMap<PeerId, PeerInfo>,
    max_known: usize,
}

impl PeerTable {
    pub(crate) fn new(max_known: usize) -> Self {
        Self {
            peers: HashMap::new(),
            max_known,
        }
    }

    fn entry(&mut self, peer: PeerId) -> &mut PeerInfo {
        let info = self
            .peers
            .entry(peer)
            .or_insert_with(|| PeerInfo::new(peer));
        info.last_seen = Instant::now();
        info
    }

    pub(crate) fn connected(&mut self, peer: PeerId, address: Multiaddr) {
        let info = self.entry(peer);
        info.connections += 1;
        if !info.addresses.contains(&address) && info.addresses.len() < MAX_ADDRS {
            info.addresses.push(address);
        }
    }

    pub(crate) fn disconnected(&mut self, peer: PeerId, address: &Multiaddr, remaining: usize) {
        let info = self.entry(peer);
        info.connections = remaining;
        info.addresses.retain(|a| a != address);
        if remaining == 0 {
            info.addresses.clear();
            self.evict_disconnected();
        }
    }

    pub(crate) fn identified(
        &mut self,
        peer: PeerId,
        agent: &str,
        protocols: Vec<String>,
        listen_addrs: &[Multiaddr],
    ) {
        let info = self.entry(peer);
        info.agent = Some(agent.chars().take(MAX_AGENT_LEN).collect());
        info.protocols = protocols.into_iter().take(MAX_PROTOCOLS).collect();
        info.listen_addrs = listen_addrs.iter().take(MAX_ADDRS).cloned().collect();
    }

    pub(crate) fn pinged(&mut self, peer: PeerId, rtt: Duration) {
        if let Some(info) = self.peers.get_mut(&peer) {
            info.rtt = Some(rtt);
            info.last_seen = Instant::now();
        }
    }

    pub(crate) fn get(&self, peer: &PeerId) -> Option<&PeerInfo> {
        self.peers.get(peer)
    }

    pub(crate) fn connected_peers(&self) -> impl Iterator<Item = &PeerInfo> {
        self.peers.values().filter(|p| p.is_connected())
    }

    pub(crate) fn known(&self) -> usize {
        self.peers.len()
    }

    /// Drops the least recently seen disconnected peers beyond `max_known`.
    fn evict_disconnected(&mut self) {
        let disconnected = self.peers.values().filter(|p| !p.is_connected()).count();
        if disconnected <= self.max_known {
            return;
        }
        let mut stale: Vec<(Instant, PeerId)> = self
            .peers
            .values()
            .filter(|p| !p.is_connected())
            .map(|p| (p.last_seen, p.peer_id))
            .collect();
        stale.sort_unstable();
        for (_, peer) in stale.into_iter().take(disconnected - self.max_known) {
            self.peers.remove(&peer);
        }
    }
}
