//! Events a node reports to its subscribers.

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;

use crate::stats::{DhtMode, RejectReason};

/// Why a peer went away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectCause {
    /// We closed the connection.
    Local,
    /// The remote closed it, or it failed; the text says how.
    Remote(String),
}

/// Whether peers on the internet can dial this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reachability {
    /// A peer dialled us back at an address we hold: we are reachable there.
    Public,
    /// Peers tried and could not dial us back (behind NAT or a firewall).
    Private,
    /// Not known yet (no peer asked, or too few answers).
    Unknown,
}

impl Reachability {
    /// `public`, `private` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
            Self::Unknown => "unknown",
        }
    }
}

/// Something that happened in a node, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// The node listens on a new address.
    ListenAddress {
        /// The address, ending in `/p2p/<our id>` is not implied.
        address: Multiaddr,
    },
    /// The first connection to a peer opened.
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// The remote address of that connection.
        address: Multiaddr,
    },
    /// The last connection to a peer closed.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
        /// Why.
        cause: DisconnectCause,
    },
    /// A peer answered identify.
    PeerIdentified {
        /// The peer.
        peer: PeerId,
        /// Its agent version.
        agent: String,
        /// Protocols it supports.
        protocols: Vec<String>,
    },
    /// A peer entered the DHT routing table.
    RoutingUpdated {
        /// The peer.
        peer: PeerId,
        /// Routing-table size afterwards.
        routing_table_size: usize,
    },
    /// What the node learned about its own reachability (AutoNAT), with the
    /// external addresses it holds as confirmed afterwards.
    Reachability {
        /// Public, private or unknown.
        status: Reachability,
        /// Confirmed external addresses (declared ones included).
        addrs: Vec<Multiaddr>,
    },
    /// The addresses the node advertises changed after start (an address
    /// confirmed or expired: declared, confirmed by AutoNAT, or a relay
    /// reservation's).
    Addresses {
        /// The node's external addresses now.
        addrs: Vec<Multiaddr>,
    },
    /// A relay granted us a reservation: peers reach us at `addr` through it.
    RelayReserved {
        /// The relay.
        relay: Option<PeerId>,
        /// Our address through it (`…/p2p-circuit/p2p/<us>`).
        addr: Multiaddr,
    },
    /// A reservation on a relay ended, or was refused: the relay is asked
    /// again after a growing delay while the node is not publicly reachable.
    RelayReservationEnded {
        /// The relay.
        relay: Option<PeerId>,
        /// Why, when the relay or the connection said.
        error: Option<String>,
    },
    /// A hole punch (DCUtR) over a relayed connection to `peer` ended.
    HolePunch {
        /// The peer on the other side of the relay.
        peer: PeerId,
        /// True when a direct connection replaced the relayed one.
        ok: bool,
        /// Why it failed (`None` when it worked).
        error: Option<String>,
    },
    /// The DHT switched mode.
    DhtModeChanged {
        /// The new mode.
        mode: DhtMode,
    },
    /// An inbound message was dropped.
    MessageRejected {
        /// The peer it came from.
        peer: PeerId,
        /// Why.
        reason: RejectReason,
    },
    /// A peer was banned: its connections are closed and new ones refused.
    PeerBanned {
        /// The peer.
        peer: PeerId,
        /// The rejection that pushed its score below the ban threshold;
        /// `None` for a ban asked for by the operator.
        reason: Option<RejectReason>,
        /// How long; `None` for good.
        duration: Option<std::time::Duration>,
    },
    /// A ban ended (ran out or was lifted).
    PeerUnbanned {
        /// The peer.
        peer: PeerId,
    },
}
