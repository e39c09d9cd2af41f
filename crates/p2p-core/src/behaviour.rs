//! The libp2p behaviours a node runs, in the order they see each connection.

use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{autonat, connection_limits, dcutr, identify, memory_connection_limits, ping, relay};

use crate::ip_limits::IpLimiter;
use crate::peer_manager::PeerManager;
use crate::streams;

/// Everything a node speaks. The guards come first so they refuse
/// connections before the other behaviours spend anything on them: the peer
/// manager (scores and bans: refuses banned peers both ways), connection
/// counts, connections per address block, process memory.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) peers: PeerManager,
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) per_ip: IpLimiter,
    pub(crate) memory: memory_connection_limits::Behaviour,
    pub(crate) identify: identify::Behaviour,
    /// Always on: js kad-dht pings a contact before it adds it to its table,
    /// and the round-trip time is reported per peer.
    pub(crate) ping: ping::Behaviour,
    /// Reachability probes, ours and others' (see `crate::nat`); off when
    /// `NatConfig::autonat` is false.
    pub(crate) autonat: Toggle<autonat::Behaviour>,
    /// Relaying for others (`NatConfig::relay_server`); off by default.
    pub(crate) relay: Toggle<relay::Behaviour>,
    /// Reservations on relays and dials through them (see `crate::relays`).
    pub(crate) relay_client: relay::client::Behaviour,
    /// Hole punching over relayed connections (`NatConfig::hole_punching`).
    pub(crate) dcutr: Toggle<dcutr::Behaviour>,
    /// Kademlia with every DHT rule (see `p2p_dht::Behaviour`).
    pub(crate) dht: p2p_dht::Behaviour,
    /// Raw streams per protocol (messaging and handler streams).
    pub(crate) stream: streams::Behaviour,
}
