//! Everything a node reports to its subscribers.

use std::sync::Arc;

use libp2p::PeerId;
use p2p_protocol::{Message, MessageId, ResourceRecord};
use p2p_types::{NodeEvent, ResourceKey};

use crate::messaging::Wire;

/// An event of a running node.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// Connection, identify, DHT and rejection events.
    Node(NodeEvent),
    /// A message passed every inbound check.
    Message {
        /// The authenticated peer it came from (equal to `message.from`).
        from: PeerId,
        /// The message.
        message: Arc<Message>,
        /// Its id.
        id: MessageId,
        /// True if its signature was verified.
        verified: bool,
        /// The protocol it arrived on.
        wire: Wire,
    },
    /// This node announced a resource.
    ResourceAnnounced {
        /// The key.
        key: ResourceKey,
        /// DHT peers that stored it (0 when the DHT put failed or found nobody).
        stored_by: usize,
    },
    /// A resource was found in the DHT and verified.
    ResourceDiscovered {
        /// The verified record.
        record: Arc<ResourceRecord>,
        /// The peer that returned it (`None`: our own store).
        source: Option<PeerId>,
    },
}

impl Event {
    /// The node event inside, if this is one.
    pub fn as_node(&self) -> Option<&NodeEvent> {
        match self {
            Self::Node(event) => Some(event),
            _ => None,
        }
    }
}

impl From<NodeEvent> for Event {
    fn from(event: NodeEvent) -> Self {
        Self::Node(event)
    }
}
