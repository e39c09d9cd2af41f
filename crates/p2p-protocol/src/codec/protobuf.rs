//! The native protobuf codec.

use bytes::{Bytes, BytesMut};
use p2p_types::{MessageType, ProtocolName, ResourceId, ResourceKey, ResourceType};
use prost::Message as _;

use super::{Codec, CodecError, DecodeError, name, non_empty, peer_from_bytes};
use crate::message::Message;
use crate::proto;
use crate::record::ResourceRecord;

/// The native encoding: `lotus.p2p.v1.Envelope` and `lotus.p2p.v1.ResourceRecord`.
/// Decoding from a [`Bytes`] frame shares its memory (no payload copy).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProtobufCodec;

impl From<&Message> for proto::Envelope {
    fn from(m: &Message) -> Self {
        proto::Envelope {
            r#type: m.kind.as_str().to_owned(),
            from: m.from.to_bytes().into(),
            to: m.to.map(|p| p.to_bytes().into()).unwrap_or_default(),
            protocol: m
                .protocol
                .as_ref()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            payload: m.payload.clone(),
            timestamp_ms: m.timestamp_ms,
            nonce: m.nonce.clone(),
            sequence: m.sequence.unwrap_or_default(),
            signature: m.signature.clone().unwrap_or_default(),
            public_key: m.public_key.clone().unwrap_or_default(),
        }
    }
}

impl TryFrom<proto::Envelope> for Message {
    type Error = DecodeError;

    fn try_from(e: proto::Envelope) -> Result<Self, DecodeError> {
        Ok(Message {
            kind: name("type", MessageType::new(e.r#type))?,
            from: peer_from_bytes("from", &e.from)?,
            to: if e.to.is_empty() {
                None
            } else {
                Some(peer_from_bytes("to", &e.to)?)
            },
            protocol: if e.protocol.is_empty() {
                None
            } else {
                Some(name("protocol", ProtocolName::new(e.protocol))?)
            },
            payload: e.payload,
            timestamp_ms: e.timestamp_ms,
            nonce: e.nonce,
            sequence: (e.sequence != 0).then_some(e.sequence),
            signature: non_empty(e.signature),
            public_key: non_empty(e.public_key),
        })
    }
}

impl From<&ResourceRecord> for proto::ResourceRecord {
    fn from(r: &ResourceRecord) -> Self {
        proto::ResourceRecord {
            resource_type: r.key.resource_type().as_str().to_owned(),
            resource_id: r.key.resource_id().as_str().to_owned(),
            creator: r.creator.to_bytes().into(),
            data: r.data.clone(),
            created_ms: r.created_ms,
            expires_ms: r.expires_ms.unwrap_or(0),
            signature: r.signature.clone().unwrap_or_default(),
            public_key: r.public_key.clone().unwrap_or_default(),
        }
    }
}

impl TryFrom<proto::ResourceRecord> for ResourceRecord {
    type Error = DecodeError;

    fn try_from(r: proto::ResourceRecord) -> Result<Self, DecodeError> {
        let key = ResourceKey::new(
            name("resource_type", ResourceType::new(r.resource_type))?,
            name("resource_id", ResourceId::new(r.resource_id))?,
        );
        Ok(ResourceRecord {
            key,
            creator: peer_from_bytes("creator", &r.creator)?,
            data: r.data,
            created_ms: r.created_ms,
            expires_ms: (r.expires_ms != 0).then_some(r.expires_ms),
            signature: non_empty(r.signature),
            public_key: non_empty(r.public_key),
        })
    }
}

impl Codec for ProtobufCodec {
    fn name(&self) -> &'static str {
        "protobuf"
    }

    fn encode_message(&self, message: &Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        proto::Envelope::from(message).encode_raw(dst);
        Ok(())
    }

    fn decode_message(&self, src: Bytes) -> Result<Message, CodecError> {
        let envelope = proto::Envelope::decode(src).map_err(DecodeError::from)?;
        Ok(Message::try_from(envelope)?)
    }

    fn encode_record(&self, record: &ResourceRecord, dst: &mut BytesMut) -> Result<(), CodecError> {
        proto::ResourceRecord::from(record).encode_raw(dst);
        Ok(())
    }

    fn decode_record(&self, src: Bytes) -> Result<ResourceRecord, CodecError> {
        let record = proto::ResourceRecord::decode(src).map_err(DecodeError::from)?;
        Ok(ResourceRecord::try_from(record)?)
    }
}
