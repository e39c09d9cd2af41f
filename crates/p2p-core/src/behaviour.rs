//! The libp2p behaviours a node runs, in the order they see each connection.

use libp2p::swarm::NetworkBehaviour;
use libp2p::{connection_limits, identify, ping};
use p2p_dht::Kademlia;

/// Everything a node speaks. `limits` comes first so it refuses connections
/// before the other behaviours spend anything on them.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) identify: identify::Behaviour,
    /// Always on: js kad-dht pings a contact before it adds it to its table,
    /// and the round-trip time is reported per peer.
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: Kademlia,
    /// Raw streams per protocol (messaging and handler streams).
    pub(crate) stream: libp2p_stream::Behaviour,
}
