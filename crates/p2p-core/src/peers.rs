//! What a node knows about its peers, bounded.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
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
    /// Remote addresses of the open connections, one per connection (at
    /// most 32).
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

/// Serializes as the `lotus-p2p` binary reports a peer: `peerId`, `addrs`,
/// `connections` (one `{addr, relayed}` per open connection), `listenAddrs`,
/// `agent`, `protocols`, `rttMs`.
impl serde::Serialize for PeerInfo {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;

        #[derive(serde::Serialize)]
        struct Connection<'a> {
            addr: &'a Multiaddr,
            relayed: bool,
        }
        let connections: Vec<Connection<'_>> = self
            .addresses
            .iter()
            .map(|addr| Connection {
                addr,
                relayed: p2p_types::is_relayed(addr),
            })
            .collect();
        let mut peer = serializer.serialize_struct("PeerInfo", 7)?;
        peer.serialize_field("peerId", &self.peer_id)?;
        peer.serialize_field("addrs", &self.addresses)?;
        peer.serialize_field("connections", &connections)?;
        peer.serialize_field("listenAddrs", &self.listen_addrs)?;
        peer.serialize_field("agent", &self.agent)?;
        peer.serialize_field("protocols", &self.protocols)?;
        peer.serialize_field("rttMs", &self.rtt.map(|d| d.as_secs_f64() * 1000.0))?;
        peer.end()
    }
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

/// Where a connection to `peer` goes. For a circuit a peer opened to us
/// through a relay, libp2p gives only `/p2p/<peer>` as the remote address:
/// this says which relay it came through (`<relay>/p2p-circuit/p2p/<peer>`,
/// from our circuit listen address), so it reads as relayed.
pub(crate) fn remote_address(endpoint: &ConnectedPoint, peer: PeerId) -> Multiaddr {
    match endpoint {
        ConnectedPoint::Listener { local_addr, .. } if p2p_types::is_relayed(local_addr) => {
            local_addr
                .iter()
                .take_while(|p| *p != Protocol::P2pCircuit)
                .chain([Protocol::P2pCircuit, Protocol::P2p(peer)])
                .collect()
        }
        _ => endpoint.get_remote_address().clone(),
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
        if info.addresses.len() < MAX_ADDRS {
            info.addresses.push(address);
        }
    }

    pub(crate) fn disconnected(&mut self, peer: PeerId, address: &Multiaddr, remaining: usize) {
        let info = self.entry(peer);
        info.connections = remaining;
        // One entry per connection: two connections can share an address
        // (two circuits through one relay), and the other one stays.
        if let Some(i) = info.addresses.iter().position(|a| a == address) {
            info.addresses.swap_remove(i);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_closing_leaves_another_at_the_same_address_listed() {
        let mut table = PeerTable::new(8);
        let peer = PeerId::random();
        let circuit: Multiaddr = format!(
            "/ip4/198.51.100.10/tcp/4001/p2p/{}/p2p-circuit",
            PeerId::random()
        )
        .parse()
        .unwrap();
        table.connected(peer, circuit.clone());
        table.connected(peer, circuit.clone());
        table.disconnected(peer, &circuit, 1);
        let info = table.get(&peer).unwrap();
        assert_eq!(info.addresses, vec![circuit.clone()]);
        assert!(info.is_relayed());
        table.disconnected(peer, &circuit, 0);
        assert!(
            table
                .get(&peer)
                .is_none_or(|info| info.addresses.is_empty())
        );
    }
}
