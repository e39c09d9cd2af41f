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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Reachability {
    /// A peer dialled us back at an address we hold: we are reachable there.
    Public,
    /// Peers tried and could not dial us back (behind NAT or a firewall).
    Private,
    /// Not known yet (no peer asked, or too few answers).
    #[default]
    Unknown,
}

/// A cause serializes as `"local"` or the remote's reason.
impl serde::Serialize for DisconnectCause {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            DisconnectCause::Local => serializer.serialize_str("local"),
            DisconnectCause::Remote(reason) => serializer.serialize_str(reason),
        }
    }
}

/// A status serializes as its name (`"public"`, ...).
impl serde::Serialize for Reachability {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A duration as whole seconds (`None` stays `null`).
fn as_seconds<S: serde::Serializer>(
    duration: &Option<std::time::Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(d) => serializer.serialize_some(&d.as_secs()),
        None => serializer.serialize_none(),
    }
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
///
/// Serializes (serde) as one JSON object named by its `"event"` field
/// (`peer:connect`, `relay_reserved`, ...), as the `lotus-p2p` binary prints
/// and streams events.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event")]
#[non_exhaustive]
pub enum NodeEvent {
    /// The node listens on a new address.
    #[serde(rename = "listen")]
    ListenAddress {
        /// The address, ending in `/p2p/<our id>` is not implied.
        address: Multiaddr,
    },
    /// The first connection to a peer opened.
    #[serde(rename = "peer:connect")]
    PeerConnected {
        /// The peer.
        #[serde(rename = "peerId")]
        peer: PeerId,
        /// The remote address of that connection.
        address: Multiaddr,
    },
    /// The last connection to a peer closed.
    #[serde(rename = "peer:disconnect")]
    PeerDisconnected {
        /// The peer.
        #[serde(rename = "peerId")]
        peer: PeerId,
        /// Why.
        cause: DisconnectCause,
    },
    /// A peer answered identify.
    #[serde(rename = "peer:identify")]
    PeerIdentified {
        /// The peer.
        #[serde(rename = "peerId")]
        peer: PeerId,
        /// Its agent version.
        agent: String,
        /// Protocols it supports.
        protocols: Vec<String>,
    },
    /// A peer entered the DHT routing table.
    #[serde(rename = "routing:updated")]
    RoutingUpdated {
        /// The peer.
        #[serde(rename = "peerId")]
        peer: PeerId,
        /// Routing-table size afterwards.
        #[serde(rename = "routingTableSize")]
        routing_table_size: usize,
    },
    /// What the node learned about its own reachability (AutoNAT), with the
    /// external addresses it holds as confirmed afterwards.
    #[serde(rename = "reachability")]
    Reachability {
        /// Public, private or unknown.
        status: Reachability,
        /// Confirmed external addresses (declared ones included).
        addrs: Vec<Multiaddr>,
    },
    /// The addresses the node advertises changed after start (an address
    /// confirmed or expired: declared, confirmed by AutoNAT, or a relay
    /// reservation's).
    #[serde(rename = "addresses")]
    Addresses {
        /// The node's external addresses now.
        addrs: Vec<Multiaddr>,
    },
    /// A relay granted us a reservation: peers reach us at `addr` through it.
    #[serde(rename = "relay_reserved")]
    RelayReserved {
        /// The relay.
        relay: Option<PeerId>,
        /// Our address through it (`…/p2p-circuit/p2p/<us>`).
        addr: Multiaddr,
    },
    /// A reservation on a relay ended, or was refused: the relay is asked
    /// again after a growing delay while the node is not publicly reachable.
    #[serde(rename = "relay_reservation_ended")]
    RelayReservationEnded {
        /// The relay.
        relay: Option<PeerId>,
        /// Why, when the relay or the connection said.
        error: Option<String>,
    },
    /// A hole punch (DCUtR) over a relayed connection to `peer` ended.
    #[serde(rename = "hole_punch")]
    HolePunch {
        /// The peer on the other side of the relay.
        peer: PeerId,
        /// True when a direct connection replaced the relayed one.
        ok: bool,
        /// Why it failed (`None` when it worked).
        error: Option<String>,
    },
    /// The DHT switched mode.
    #[serde(rename = "dht:mode")]
    DhtModeChanged {
        /// The new mode.
        mode: DhtMode,
    },
    /// An inbound message was dropped.
    #[serde(rename = "message:rejected")]
    MessageRejected {
        /// The peer it came from.
        #[serde(rename = "peerId")]
        peer: PeerId,
        /// Why.
        reason: RejectReason,
    },
    /// A peer was banned: its connections are closed and new ones refused.
    #[serde(rename = "peer:banned")]
    PeerBanned {
        /// The peer.
        #[serde(rename = "peerId")]
        peer: PeerId,
        /// The rejection that pushed its score below the ban threshold;
        /// `None` for a ban asked for by the operator.
        reason: Option<RejectReason>,
        /// How long; `None` for good.
        #[serde(rename = "seconds", serialize_with = "as_seconds")]
        duration: Option<std::time::Duration>,
    },
    /// A ban ended (ran out or was lifted).
    #[serde(rename = "peer:unbanned")]
    PeerUnbanned {
        /// The peer.
        #[serde(rename = "peerId")]
        peer: PeerId,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_as_the_binary_prints_them() {
        let peer = PeerId::random();
        let event = NodeEvent::PeerConnected {
            peer,
            address: "/ip4/127.0.0.1/tcp/1".parse().unwrap(),
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"event": "peer:connect", "peerId": peer.to_string(), "address": "/ip4/127.0.0.1/tcp/1"})
        );
        let banned = NodeEvent::PeerBanned {
            peer,
            reason: Some(RejectReason::BadSignature),
            duration: Some(std::time::Duration::from_secs(60)),
        };
        let banned = serde_json::to_value(&banned).unwrap();
        assert_eq!(banned["event"], "peer:banned");
        assert_eq!(banned["reason"], RejectReason::BadSignature.as_str());
        assert_eq!(banned["seconds"], 60);
        let gone = NodeEvent::PeerDisconnected {
            peer,
            cause: DisconnectCause::Local,
        };
        assert_eq!(serde_json::to_value(&gone).unwrap()["cause"], "local");
    }
}
