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

/// Serializes as the `lotus-p2p` binary prints events: one object named by
/// its `"event"` field (a [`NodeEvent`]'s own form; `message`,
/// `resource:announced`, `resource:discovered`). A message's payload is
/// embedded when it is JSON, else given as (lossy) text.
impl serde::Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let map = match self {
            Event::Node(event) => return event.serialize(serializer),
            Event::Message {
                from,
                message,
                id,
                verified,
                wire,
            } => {
                let payload = serde_json::from_slice::<serde_json::Value>(&message.payload)
                    .unwrap_or_else(|_| {
                        serde_json::Value::String(
                            String::from_utf8_lossy(&message.payload).into_owned(),
                        )
                    });
                let mut map = serializer.serialize_map(Some(8))?;
                map.serialize_entry("event", "message")?;
                map.serialize_entry("from", &from.to_string())?;
                map.serialize_entry("type", message.kind.as_str())?;
                map.serialize_entry("protocol", &message.protocol.as_ref().map(|p| p.as_str()))?;
                map.serialize_entry("payload", &payload)?;
                map.serialize_entry("verified", verified)?;
                map.serialize_entry("wire", wire.as_str())?;
                map.serialize_entry("id", &id.to_string())?;
                map
            }
            Event::ResourceAnnounced { key, stored_by } => {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("event", "resource:announced")?;
                map.serialize_entry("key", &key.to_string())?;
                map.serialize_entry("storedBy", stored_by)?;
                map
            }
            Event::ResourceDiscovered { record, source } => {
                let mut map = serializer.serialize_map(Some(4))?;
                map.serialize_entry("event", "resource:discovered")?;
                map.serialize_entry("key", &record.key.to_string())?;
                map.serialize_entry("creator", &record.creator.to_string())?;
                map.serialize_entry("source", &source.map(|s| s.to_string()))?;
                map
            }
        };
        map.end()
    }
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
